"""brainsim models exported with ``brainsim.nir.to_nir`` and run by snnTorch and Norse from the written graphs.

    .venv/bin/python tests/reference/nir/brainsim_models.py            # writes brainsim_*.nir and brainsim_*_in.npz
    /work/ml-peers-venv/bin/python tests/reference/nir/run_graph.py snntorch \\
        tests/reference/nir/brainsim_recurrent.nir tests/reference/nir/brainsim_recurrent_in.npz \\
        tests/reference/nir/brainsim_recurrent_snntorch.npz           # (the same for brainsim_conv)
    /work/norse-venv/bin/python tests/reference/nir/run_graph.py norse \\
        tests/reference/nir/brainsim_ff.nir tests/reference/nir/brainsim_ff_in.npz \\
        tests/reference/nir/brainsim_ff_norse.npz

The models are built from fixed keys, so tests/test_nir.py rebuilds them, checks that ``to_nir`` still writes
the stored graphs, and compares brainsim's own run with the peers' runs of those graphs. The peers' importers
read what they can express: snnTorch a forward-Euler LIF at dt = 1e-4 s whose ``r dt / tau`` is one number per
layer (so the membranes here share one tau_m and C_m), Norse a LIF with ``r = 1`` (C_m = tau_m, so g_L = 1 nS)
at dt = 1e-3 s.
"""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent


def _lif(n, tau_m, c_m, v_th=1.0):
    from brainsim.neurons import LIF
    return LIF(n, tau_m=tau_m, C_m=c_m, v_rest=0.0, v_th=v_th, v_reset=0.0, t_ref=0.0, reset="value")


def recurrent_model():
    """12 -> 10 recurrent LIF -> 4 LIF at dt = 0.1 ms (snnTorch's 1e-4 s); beta = exp(-0.1 / 1) ~ 0.905."""
    from brainsim.train import Sequential, SpikingLayer
    k = jax.random.split(jax.random.key(11), 2)
    return Sequential([
        SpikingLayer(12, 10, key=k[0], neuron=_lif(10, 1.0, 0.1), recurrent=True, scale=6.0, rec_scale=1.0, dt=0.1),
        SpikingLayer(10, 4, key=k[1], neuron=_lif(4, 1.0, 0.1), scale=5.0, dt=0.1),
    ])


def conv_model():
    """(2, 8, 8) -> Conv2d(4, 3x3, padding 1) -> LIF -> AvgPool2d(2) -> Flatten -> Linear(64, 5) -> LIF, dt 0.1 ms."""
    from brainsim.train import AvgPool2d, Chain, Conv2d, Flatten, Linear, Sequential, SpikingLayer
    k = jax.random.split(jax.random.key(12), 2)
    conv = Conv2d((2, 8, 8), 4, 3, padding=1, key=k[0], scale=2.5)
    return Sequential([
        SpikingLayer(conv, neuron=_lif(256, 1.0, 0.1), dt=0.1),
        SpikingLayer(Chain([AvgPool2d(conv.out_shape, 2), Flatten((4, 4, 4)), Linear(64, 5, key=k[1], scale=12.0)]),
                     neuron=_lif(5, 1.0, 0.1), dt=0.1),
    ])


def ff_model():
    """12 -> 10 LIF -> 4 LIF at dt = 1 ms (Norse's 1e-3 s), r = 1 (C_m = tau_m), per-neuron tau_m."""
    from brainsim.train import Sequential, SpikingLayer
    k = jax.random.split(jax.random.key(13), 3)
    tau1 = np.asarray(8.0 + 4.0 * jax.random.uniform(k[2], (10,)))
    return Sequential([
        SpikingLayer(12, 10, key=k[0], neuron=_lif(10, tau1, tau1), scale=12.0, dt=1.0),
        SpikingLayer(10, 4, key=k[1], neuron=_lif(4, 10.0, 10.0), scale=25.0, dt=1.0),
    ])


MODELS = {"brainsim_recurrent": (recurrent_model, (50, 3, 12)), "brainsim_conv": (conv_model, (30, 2, 2, 8, 8)),
          "brainsim_ff": (ff_model, (50, 3, 12))}


def inputs(name):
    shape = MODELS[name][1]
    return np.asarray(jax.random.uniform(jax.random.key(20), shape) < 0.3, np.float32)


def run(model, x):
    """The model's output and hidden spikes, time-major like the peers' files."""
    out, aux = jax.vmap(lambda xs: model(xs, record=True))(jnp.asarray(x).swapaxes(0, 1))
    return np.asarray(out).swapaxes(0, 1), [np.asarray(s).swapaxes(0, 1) for s in aux["spikes"]]


def main():
    import nir
    from brainsim.nir import to_nir
    for name, (build, _) in MODELS.items():
        model, x = build(), inputs(name)
        nir.write(str(HERE / f"{name}.nir"), to_nir(model))
        out, hidden = run(model, x)
        np.savez_compressed(HERE / f"{name}_in.npz", input=x, output=out,
                            **{f"hidden_{i}": h for i, h in enumerate(hidden[:-1])})
        print(name, "spike rates", [float(h.mean()) for h in hidden])


if __name__ == "__main__":
    main()
