"""Generate NIR reference graphs and simulation traces with snnTorch and Norse.

Run with the peer library's own virtualenv (neither library is a brainsim dependency):

    /work/ml-peers-venv/bin/python tests/reference/nir/generate.py snntorch
    /work/norse-venv/bin/python    tests/reference/nir/generate.py norse

For every network NAME this writes, next to this script:

* ``NAME.nir``  - the graph written by the library's own NIR exporter (``nir.write``).
  The only change made to the exported graph is that its edge list is sorted
  (nirtorch builds it from a ``set``, so its order is otherwise random).
* ``NAME.npz``  - ``input`` (T, B, ...) binary float32, ``output`` (T, B, ...) and the
  per-layer traces listed in the ``meta`` entry (a JSON string; read it with
  ``json.loads(str(np.load(f)["meta"]))``).

The networks are built with fixed seeds, exported, and then run step by step from a
zero state by the library itself (not through NIR). See README.md for the conventions.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import nir
import numpy as np
import torch

HERE = Path(__file__).resolve().parent

warnings.filterwarnings("ignore")
torch.set_default_dtype(torch.float32)


# ----------------------------------------------------------------------------- helpers
def binary_input(shape, p, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).float()


def set_weights(mod, seed, w_mean, w_std, b_mean=0.0, b_std=0.0):
    """Deterministic Gaussian weights/biases (independent of torch's default init)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mod.weight.copy_(w_mean + w_std * torch.randn(mod.weight.shape, generator=g))
        if getattr(mod, "bias", None) is not None:
            mod.bias.copy_(b_mean + b_std * torch.randn(mod.bias.shape, generator=g))


def save(name, graph, arrays, meta):
    graph.edges = sorted(graph.edges)
    nir.write(str(HERE / f"{name}.nir"), graph)
    out = {k: np.ascontiguousarray(v.detach().numpy() if torch.is_tensor(v) else v)
           for k, v in arrays.items()}
    for k, v in out.items():
        if v.dtype == np.float64:
            out[k] = v.astype(np.float32)
    meta = dict(meta)
    meta["keys"] = {k: list(out[k].shape) for k in out}
    rates = {k: float(out[k].mean()) for k in out
             if k.startswith("hidden_") or (k == "output" and set(np.unique(out[k])) <= {0.0, 1.0})}
    meta["spike_rates"] = rates
    np.savez_compressed(HERE / f"{name}.npz", meta=np.array(json.dumps(meta, indent=1)), **out)
    sizes = (HERE / f"{name}.nir").stat().st_size, (HERE / f"{name}.npz").stat().st_size
    print(f"{name}: nir {sizes[0]} B, npz {sizes[1]} B, rates {rates}")
    for k, v in sorted(graph.nodes.items()):
        print(f"    node {k!r}: {type(v).__name__}")
    print(f"    edges {graph.edges}")


class Recorder:
    """Forward hooks that collect each step's spikes (and state) of selected modules."""

    def __init__(self, modules, state_fn):
        self.data = {i: [] for i in range(len(modules))}
        self.handles = []
        for i, m in enumerate(modules):
            self.handles.append(m.register_forward_hook(self._hook(i, state_fn)))

    def _hook(self, i, state_fn):
        def hook(module, inputs, output):
            self.data[i].append({k: v.detach().clone() for k, v in state_fn(module, output).items()})
        return hook

    def stacked(self, i, key):
        return torch.stack([d[key] for d in self.data[i]])

    def remove(self):
        for h in self.handles:
            h.remove()


# ----------------------------------------------------------------------------- snnTorch
def generate_snntorch():
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    nn = torch.nn

    def snn_state(module, output):
        spk = output[0] if isinstance(output, tuple) else output
        d = {"spk": spk, "mem": module.mem}
        if hasattr(module, "syn"):
            d["syn"] = module.syn
        return d

    def run(net, spiking, x):
        for m in spiking:
            m.reset_mem()
        rec = Recorder(spiking, snn_state)
        outs = []
        with torch.no_grad():
            for t in range(x.shape[0]):
                outs.append(net(x[t]))
        rec.remove()
        arrays = {"input": x, "output": torch.stack(outs)}
        for i, m in enumerate(spiking):
            if i < len(spiking) - 1:
                arrays[f"hidden_{i}"] = rec.stacked(i, "spk")
            arrays[f"mem_{i}"] = rec.stacked(i, "mem")
            if "syn" in rec.data[i][0]:
                arrays[f"syn_{i}"] = rec.stacked(i, "syn")
        return arrays

    def export(net, sample):
        # Export after the run; export_to_nir calls forward once (on zeros), which is
        # harmless then. ignore_dims=[0] drops the batch axis from Input/Output types.
        return export_to_nir(net, sample, ignore_dims=[0])

    common_meta = {
        "library": "snntorch",
        "versions": {"snntorch": snn.__version__, "torch": torch.__version__,
                     "nir": _version("nir"), "nirtorch": _version("nirtorch")},
        "export_dt": 1e-4,
        "layout": "time-major: (T, B, features...) / (T, B, C, H, W)",
        "state_start": "all states zero at t=0 (mem, syn, recurrent spikes)",
    }

    # ---- recurrent: Linear -> RLeaky -> Linear -> Leaky (and RSynaptic -> Synaptic) ----
    class RecNet(nn.Module):
        def __init__(self, kind, reset, reset_delay, seed):
            super().__init__()
            torch.manual_seed(seed)
            n_in, n_hid, n_out = 12, 10, 4
            self.fc1 = nn.Linear(n_in, n_hid)
            thr_h, thr_o = torch.ones(n_hid), torch.ones(n_out)
            # per-neuron (heterogeneous) decay factors: tests that per-neuron tau is honoured
            beta_h = torch.linspace(0.85, 0.95, n_hid)
            beta_o = torch.linspace(0.75, 0.85, n_out)
            kw = dict(init_hidden=True, reset_mechanism=reset, reset_delay=reset_delay)
            if kind == "rleaky":
                self.lif1 = snn.RLeaky(beta=beta_h, threshold=thr_h, linear_features=n_hid, **kw)
            else:
                alpha_h = torch.linspace(0.5, 0.7, n_hid)
                self.lif1 = snn.RSynaptic(alpha=alpha_h, beta=beta_h, threshold=thr_h,
                                          linear_features=n_hid, **kw)
            self.fc2 = nn.Linear(n_hid, n_out)
            if kind == "rleaky":
                self.lif2 = snn.Leaky(beta=beta_o, threshold=thr_o, **kw)
            else:
                # RSynaptic's reset_delay=False path crashes in snnTorch 1.0.0 (it uses the
                # `spk` argument, None under init_hidden); Synaptic's works.
                self.lif2 = snn.Synaptic(alpha=torch.linspace(0.5, 0.7, n_out), beta=beta_o,
                                         threshold=thr_o, **kw)
            syn = kind == "rsynaptic"
            set_weights(self.fc1, seed + 1, 0.08 if not syn else 0.03, 0.35 if not syn else 0.12)
            set_weights(self.lif1.recurrent, seed + 2, 0.0, 0.25 if not syn else 0.08, 0.0, 0.05)
            set_weights(self.fc2, seed + 3, 0.15 if not syn else 0.10, 0.30 if not syn else 0.10,
                        0.0, 0.05)

        def forward(self, x):
            return self.lif2(self.fc2(self.lif1(self.fc1(x))))

    T, B = 50, 3
    x = binary_input((T, B, 12), 0.3, seed=101)
    variants = [
        ("snntorch_recurrent", "rleaky", "zero", False,
         "RLeaky+Leaky, reset_mechanism='zero', reset_delay=False: the configuration whose "
         "dynamics the NIR file describes exactly (and the one snnTorch's importer builds)."),
        ("snntorch_recurrent_subtract", "rleaky", "subtract", True,
         "RLeaky+Leaky with snnTorch defaults (reset_mechanism='subtract', reset_delay=True). "
         "The exported NIR file has the same structure (LIF, v_reset=0): the subtractive reset "
         "is NOT representable and is lost on export."),
        ("snntorch_rsynaptic", "rsynaptic", "zero", True,
         "RSynaptic+Synaptic, reset_mechanism='zero', reset_delay=True (snnTorch's zero reset of "
         "(R)Synaptic forces mem to 0 on the step AFTER a spike, discarding that step's input "
         "to mem). Exported as CubaLIF."),
    ]
    for name, kind, reset, delay, desc in variants:
        net = RecNet(kind, reset, delay, seed=11)
        arrays = run(net, [net.lif1, net.lif2], x)
        graph = export(net, torch.zeros(B, 12))
        meta = dict(common_meta, description=desc,
                    network=f"fc1=Linear(12,10) -> lif1={type(net.lif1).__name__}(10, all_to_all "
                            f"recurrent Linear(10,10) with bias) -> fc2=Linear(10,4) -> "
                            f"lif2={type(net.lif2).__name__}(4)",
                    reset_mechanism=reset, reset_delay=delay,
                    key_to_layer={"hidden_0": "spikes of lif1 (NIR subgraph 'lif1': nodes "
                                              "'lif1.lif' + 'lif1.w_rec')",
                                  "mem_0": "membrane of lif1 as snnTorch holds it after the step "
                                           + ("(post-reset)" if not delay else "(pre-reset; the "
                                              "reset is applied at the start of the next step)"),
                                  "mem_1": "membrane of lif2 (same convention)",
                                  "syn_0": "synaptic current of lif1 (rsynaptic only)",
                                  "syn_1": "synaptic current of lif2 (rsynaptic only)",
                                  "output": "spikes of lif2 (NIR node 'lif2')"},
                    T=T, B=B, input_p=0.3)
        save(name, graph, arrays, meta)

    # ---- conv: Conv2d -> Leaky -> AvgPool2d -> Flatten -> Linear -> Leaky ----
    class ConvNet(nn.Module):
        def __init__(self, seed):
            super().__init__()
            torch.manual_seed(seed)
            kw = dict(init_hidden=True, reset_mechanism="zero", reset_delay=False)
            self.conv = nn.Conv2d(2, 4, 3, padding=1)
            self.lif1 = snn.Leaky(beta=torch.full((4, 8, 8), 0.9), threshold=torch.ones(4, 8, 8), **kw)
            self.pool = nn.AvgPool2d(2)
            self.flat = nn.Flatten()
            self.fc = nn.Linear(4 * 4 * 4, 5)
            self.lif2 = snn.Leaky(beta=torch.full((5,), 0.8), threshold=torch.ones(5), **kw)
            set_weights(self.conv, seed + 1, 0.05, 0.25, 0.0, 0.05)
            set_weights(self.fc, seed + 2, 0.0, 0.30, 0.0, 0.05)

        def forward(self, x):
            return self.lif2(self.fc(self.flat(self.pool(self.lif1(self.conv(x))))))

    T, B = 30, 2
    x = binary_input((T, B, 2, 8, 8), 0.3, seed=202)
    net = ConvNet(seed=21)
    arrays = run(net, [net.lif1, net.lif2], x)
    graph = export(net, torch.zeros(B, 2, 8, 8))
    meta = dict(common_meta,
                description="Conv SNN, Leaky reset_mechanism='zero', reset_delay=False "
                            "(exactly representable). AvgPool2d is exported as nir.AvgPool2d.",
                network="conv=Conv2d(2,4,3,padding=1) -> lif1=Leaky((4,8,8)) -> "
                        "pool=AvgPool2d(2) -> flat=Flatten() -> fc=Linear(64,5) -> lif2=Leaky(5)",
                reset_mechanism="zero", reset_delay=False,
                key_to_layer={"hidden_0": "spikes of lif1, (T,B,4,8,8) channels-first",
                              "mem_0": "membrane of lif1 (post-reset)",
                              "mem_1": "membrane of lif2 (post-reset)",
                              "output": "spikes of lif2"},
                T=T, B=B, input_p=0.3)
    save("snntorch_conv", graph, arrays, meta)


# ----------------------------------------------------------------------------- Norse
def generate_norse():
    import norse
    import norse.torch as nt

    nn = torch.nn
    dt = 1e-3  # Norse's default dt, both for the cells and for to_nir/from_nir

    def norse_state(module, output):
        z, s = output
        d = {"out": z}
        for f in ("v", "i"):
            if hasattr(s, f):
                d[f] = getattr(s, f)
        return d

    def run(model, cells, x):
        rec = Recorder(cells, norse_state)
        outs, state = [], None
        with torch.no_grad():
            for t in range(x.shape[0]):
                o, state = model(x[t], state)
                outs.append(o)
        rec.remove()
        arrays = {"input": x, "output": torch.stack(outs)}
        for i, c in enumerate(cells):
            if i < len(cells) - 1:
                arrays[f"hidden_{i}"] = rec.stacked(i, "out")
            arrays[f"mem_{i}"] = rec.stacked(i, "v")
            if "i" in rec.data[i][0]:
                arrays[f"syn_{i}"] = rec.stacked(i, "i")
        return arrays

    common_meta = {
        "library": "norse",
        "versions": {"norse": _version("norse"), "torch": torch.__version__,
                     "nir": _version("nir"), "nirtorch": _version("nirtorch")},
        "dt": dt,
        "layout": "time-major: (T, B, features)",
        "state_start": "Norse's own initial state: v = v_leak (= 0 here), i = 0",
    }
    T, B = 50, 3
    x = binary_input((T, B, 12), 0.3, seed=303)

    # ---- norse_ff: Linear -> LIFBoxCell -> Linear -> LIBoxCell  (LIF + LI) ----
    torch.manual_seed(31)
    tau_h = torch.linspace(8e-3, 12e-3, 10)  # seconds, per neuron
    tau_o = torch.linspace(15e-3, 25e-3, 4)
    lif = nt.LIFBoxCell(nt.LIFBoxParameters(tau_mem_inv=1 / tau_h, v_leak=torch.zeros(10),
                                            v_th=torch.ones(10), v_reset=torch.zeros(10)), dt=dt)
    li = nt.LIBoxCell(nt.LIBoxParameters(tau_mem_inv=1 / tau_o, v_leak=torch.zeros(4)), dt=dt)
    fc1, fc2 = nn.Linear(12, 10), nn.Linear(10, 4)
    set_weights(fc1, 32, 1.0, 3.5, 0.0, 0.5)
    set_weights(fc2, 33, 1.0, 2.0, 0.0, 0.5)
    model = nt.SequentialState(fc1, lif, fc2, li)
    arrays = run(model, [lif, li], x)
    graph = norse.torch.to_nir(model, torch.zeros(12), dt=dt)  # unbatched sample, see README
    meta = dict(common_meta,
                description="Feed-forward Norse net with the 'box' cells (no synaptic current).",
                network="0=Linear(12,10) -> 1=LIFBoxCell(10) -> 2=Linear(10,4) -> 3=LIBoxCell(4)",
                params={"lif_tau_mem_s": tau_h.tolist(), "li_tau_mem_s": tau_o.tolist(),
                        "v_th": 1.0, "v_leak": 0.0, "v_reset": 0.0},
                key_to_layer={"hidden_0": "spikes of node '1' (LIFBoxCell)",
                              "mem_0": "v of node '1' after the step (post-reset)",
                              "mem_1": "v of node '3' (LIBoxCell) = output",
                              "output": "LIBoxCell membrane v (node '3'); the network output is "
                                        "a voltage, not spikes"},
                T=T, B=B, input_p=0.3)
    save("norse_ff", graph, arrays, meta)

    # ---- norse_ff_cuba: Linear -> LIFCell -> Linear -> IAFCell  (CubaLIF + IF) ----
    torch.manual_seed(41)
    tsyn = torch.linspace(4e-3, 6e-3, 10)
    lifc = nt.LIFCell(nt.LIFParameters(tau_syn_inv=1 / tsyn, tau_mem_inv=1 / tau_h,
                                       v_leak=torch.zeros(10), v_th=torch.ones(10),
                                       v_reset=torch.zeros(10)), dt=dt)
    iaf = nt.IAFCell(nt.IAFParameters(v_th=torch.full((4,), 1.0), v_reset=torch.zeros(4)), dt=dt)
    fc1, fc2 = nn.Linear(12, 10), nn.Linear(10, 4)
    set_weights(fc1, 42, 0.25, 0.9, 0.0, 0.1)
    set_weights(fc2, 43, 0.08, 0.25, 0.0, 0.02)
    model = nt.SequentialState(fc1, lifc, fc2, iaf)
    arrays = run(model, [lifc, iaf], x)
    graph = norse.torch.to_nir(model, torch.zeros(12), dt=dt)  # unbatched sample, see README
    meta = dict(common_meta,
                description="Feed-forward Norse net with current-based LIFCell (-> CubaLIF) and "
                            "IAFCell (-> IF).",
                network="0=Linear(12,10) -> 1=LIFCell(10) -> 2=Linear(10,4) -> 3=IAFCell(4)",
                params={"lif_tau_mem_s": tau_h.tolist(), "lif_tau_syn_s": tsyn.tolist(),
                        "v_th": 1.0, "v_leak": 0.0, "v_reset": 0.0},
                key_to_layer={"hidden_0": "spikes of node '1' (LIFCell)",
                              "mem_0": "v of node '1' after the step (post-reset)",
                              "syn_0": "i of node '1' after the step (already decayed)",
                              "mem_1": "v of node '3' (IAFCell, post-reset)",
                              "output": "spikes of node '3' (IAFCell)"},
                T=T, B=B, input_p=0.3)
    save("norse_ff_cuba", graph, arrays, meta)


def _version(pkg):
    from importlib.metadata import version
    return version(pkg)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("snntorch", "norse"):
        sys.exit("usage: generate.py {snntorch|norse}")
    {"snntorch": generate_snntorch, "norse": generate_norse}[sys.argv[1]]()
