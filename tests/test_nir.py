"""brainsim.nir against snnTorch and Norse: graphs they wrote run in brainsim with their spikes, graphs brainsim
writes run in them with brainsim's spikes (reference data and how it was made: tests/reference/nir/README.md)."""
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

nir = pytest.importorskip("nir")

import brainsim.nir as bn
from brainsim.neurons import LIF
from brainsim.train import (Chain, Conv2d, Flatten, LeakyReadout, Linear, MaxPool2d, Sequential, SparseLinear,
                            SpikingLayer, SumPool2d, mixed_precision, ml_lif)

REF = Path(__file__).parent / "reference" / "nir"
sys.path.insert(0, str(REF))
import brainsim_models  # noqa: E402


def _run(model, x):
    """Output and spiking layers' spikes of ``model`` on time-major ``x (T, B, ...)``, time-major."""
    return brainsim_models.run(model, x)


@pytest.mark.parametrize("name,dt,time_scale", [("snntorch_recurrent", 1e-4, 1.0), ("snntorch_conv", 1e-4, 1.0),
                                                ("norse_ff", 1e-3, 1e3)])
def test_graphs_written_by_peers_give_their_spikes(name, dt, time_scale):
    ref = np.load(REF / f"{name}.npz")
    model = bn.from_nir(REF / f"{name}.nir", dt=dt, time_scale=time_scale)
    out, spikes = _run(model, ref["input"])
    hidden = sorted(k for k in ref.files if k.startswith("hidden_"))
    assert hidden and all(ref[k].mean() > 0.05 for k in hidden)
    for i, key in enumerate(hidden):
        np.testing.assert_array_equal(spikes[i].reshape(ref[key].shape), ref[key])
    if name == "norse_ff":  # the output is Norse's LI membrane
        np.testing.assert_allclose(out, ref["output"], rtol=1e-5, atol=5e-6)
    else:
        np.testing.assert_array_equal(out.reshape(ref["output"].shape), ref["output"])


def test_recurrent_cubalif_equals_snntorch_importer():
    # snnTorch's RSynaptic graph with the feedback bias removed (snnTorch's own importer feeds no feedback at the
    # first step, its RSynaptic does); outputs of snnTorch's import of it (tests/reference/nir/README.md)
    ref, imported = np.load(REF / "snntorch_rsynaptic.npz"), np.load(REF / "snntorch_rsynaptic_nobias_imported.npz")
    model = bn.from_nir(REF / "snntorch_rsynaptic_nobias.nir", dt=1e-4)
    assert model.layers[0].synapse is not None and model.layers[0].recurrent
    out, spikes = _run(model, ref["input"])
    np.testing.assert_array_equal(spikes[0], imported["spk__lif1.lif1_lif"])
    np.testing.assert_array_equal(out, imported["output"])


def _same_graph(a, b):
    assert sorted(a.nodes) == sorted(b.nodes)
    assert sorted(map(tuple, a.edges)) == sorted(map(tuple, b.edges))
    for name in a.nodes:
        x, y = a.nodes[name], b.nodes[name]
        assert type(x) is type(y), name
        for field in x.__dataclass_fields__:
            if field in ("input_type", "output_type", "metadata"):
                continue
            u, v = getattr(x, field), getattr(y, field)
            if isinstance(u, str) or isinstance(v, str):
                assert u == v
            else:
                np.testing.assert_allclose(np.asarray(u, np.float64), np.asarray(v, np.float64), rtol=1e-6,
                                           err_msg=f"{name}.{field}")


@pytest.mark.parametrize("name,peer", [("brainsim_recurrent", "snntorch"), ("brainsim_conv", "snntorch"),
                                       ("brainsim_ff", "norse")])
def test_graphs_brainsim_writes_give_its_spikes_in_the_peers(name, peer):
    build, _ = brainsim_models.MODELS[name]
    model = build()
    graph = bn.to_nir(model)
    _same_graph(graph, nir.read(str(REF / f"{name}.nir")))  # the graph the peer ran
    x = brainsim_models.inputs(name)
    out, spikes = _run(model, x)
    theirs = np.load(REF / f"{name}_{peer}.npz")
    assert all(s.mean() > 0.05 for s in spikes)
    np.testing.assert_array_equal(out.reshape(theirs["output"].shape), theirs["output"])
    first_hidden = sorted(k for k in theirs.files if k.startswith("spk__layer0"))[0]
    np.testing.assert_array_equal(spikes[0].reshape(theirs[first_hidden].shape), theirs[first_hidden])


def _mixed_model():
    """Conv, pooling, flatten, a recurrent layer with an exponential synapse and a leaky readout."""
    k = jax.random.split(jax.random.key(5), 4)
    conv = Conv2d((1, 6, 6), 3, 3, padding=1, key=k[0], scale=3.0)
    lif = lambda n: LIF(n, tau_m=5.0, C_m=1.0, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0, reset="value")
    pool_dense = Chain([SumPool2d(conv.out_shape, 2), Flatten((3, 3, 3)), Linear(27, 8, key=k[2], scale=3.0)])
    return Sequential([SpikingLayer(conv, neuron=lif(108)),
                       SpikingLayer(pool_dense, neuron=lif(8), recurrent=True, tau_syn=3.0, key=k[1]),
                       LeakyReadout(8, 3, key=k[3], tau=7.0)])


@pytest.mark.parametrize("discretization", ["euler", "exact"])
def test_round_trip_through_nir_keeps_the_model(discretization):
    model = _mixed_model()
    x = np.asarray(jax.random.uniform(jax.random.key(6), (40, 2, 1, 6, 6)) < 0.3, np.float32)
    out, spikes = _run(model, x)
    assert all(s.mean() > 0.02 for s in spikes)
    graph = bn.to_nir(model, discretization=discretization)
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert {"Conv2d", "SumPool2d", "Flatten", "Affine", "LIF", "CubaLIF", "Linear", "LI"} <= kinds
    back = bn.from_nir(graph, dt=1e-3, discretization=discretization)
    out2, spikes2 = _run(back, x)
    for a, b in zip(spikes, spikes2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(out2, out, rtol=1e-4, atol=1e-5)
    # the imported model trains: finite gradients of every parameter
    grads = jax.grad(lambda m: jnp.sum(m(jnp.asarray(x[:, 0]))[0] ** 2))(back)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_array)))


def test_file_paths_and_exact_discretization_of_a_peer_file(tmp_path):
    graph = bn.to_nir(brainsim_models.recurrent_model())
    path = tmp_path / "net.nir"
    nir.write(str(path), graph)
    model = bn.from_nir(str(path), dt=1e-4)
    assert model.dt == pytest.approx(0.1)
    # exact integration of the same equations differs from forward Euler at this coarse step, but little
    euler = bn.from_nir(REF / "snntorch_recurrent.nir", dt=1e-4)
    exact = bn.from_nir(REF / "snntorch_recurrent.nir", dt=1e-4, discretization="exact")
    x = np.load(REF / "snntorch_recurrent.npz")["input"]
    a, b = _run(euler, x)[1][0], _run(exact, x)[1][0]
    assert 0 < np.mean(a != b) < 0.2


def test_errors_name_what_cannot_be_mapped():
    lif = LIF(4, tau_m=5.0, C_m=1.0, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0, reset="subtract")
    with pytest.raises(ValueError, match="resets by subtraction"):
        bn.to_nir(Sequential([SpikingLayer(3, 4, key=jax.random.key(0), neuron=lif)]))
    refractory = LIF(4, tau_m=5.0, C_m=1.0, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=1.0, reset="value")
    with pytest.raises(ValueError, match="refractory"):
        bn.to_nir(Sequential([SpikingLayer(3, 4, key=jax.random.key(0), neuron=refractory)]))
    plain = LIF(4, tau_m=5.0, C_m=1.0, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0, reset="value")
    pool = Chain([MaxPool2d((1, 4, 4), 2), Flatten((1, 2, 2))])
    with pytest.raises(ValueError, match="MaxPool2d"):
        bn.to_nir(Sequential([SpikingLayer(pool, neuron=plain)]))
    with pytest.raises(ValueError, match="dt must be the time step in seconds"):
        bn.to_nir(Sequential([SpikingLayer(3, 4, key=jax.random.key(0), neuron=plain)]), dt=-1.0)
    with pytest.raises(TypeError, match="Sequential"):
        bn.to_nir(plain)
    n = 4
    lif_node = nir.LIF(tau=np.full(n, 1e-3), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n),
                       v_reset=np.zeros(n))
    nodes = {"input": nir.Input(input_type={"input": np.array([n])}), "delay": nir.Delay(delay=np.ones(n)),
             "lif": lif_node, "output": nir.Output(output_type={"output": np.array([n])})}
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "delay"), ("delay", "lif"), ("lif", "output")])
    with pytest.raises(ValueError, match="node 'delay' is a nir.Delay"):
        bn.from_nir(graph, dt=1e-4)
    branch = nir.NIRGraph(nodes={"input": nodes["input"], "a": nir.Scale(scale=np.ones(n)),
                                 "b": nir.Scale(scale=np.ones(n)), "lif": lif_node, "output": nodes["output"]},
                          edges=[("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"), ("lif", "output")])
    with pytest.raises(ValueError, match="node 'input' feeds"):
        bn.from_nir(branch, dt=1e-4)
    chain = nir.NIRGraph(nodes={"input": nodes["input"], "lif": lif_node, "output": nodes["output"]},
                         edges=[("input", "lif"), ("lif", "output")])
    with pytest.raises(ValueError, match="forward Euler at dt = 0.01 s needs tau > dt"):
        bn.from_nir(chain, dt=1e-2)
    assert bn.from_nir(chain, dt=1e-2, discretization="exact").dt == pytest.approx(10.0)


def test_sparse_and_mixed_precision_models_are_written_as_dense_float32():
    """A ``SparseLinear`` input projection becomes a dense NIR ``Linear`` (zeros where there is no synapse), a
    bfloat16 ``mixed_precision`` model float32 arrays; reading the graph back gives the same spikes."""
    k1, k2, k3 = jax.random.split(jax.random.key(9), 3)
    model = Sequential([SpikingLayer(SparseLinear.random(12, 16, 0.3, key=k1, scale=4.0), key=k2,
                                     neuron=ml_lif(16, reset="value")),
                        LeakyReadout(16, 3, key=k3)])
    x = np.asarray(jax.random.uniform(jax.random.key(10), (30, 12)) < 0.3, np.float32)
    graph = bn.to_nir(model)
    (w,) = [n.weight for n in graph.nodes.values() if type(n).__name__ == "Linear" and n.weight.shape == (16, 12)]
    assert w.dtype == np.float32 and 0.1 < float((w != 0).mean()) < 0.5
    back = bn.from_nir(graph, dt=model.dt / 1000.0)
    out, aux = model(jnp.asarray(x), record=True)
    out2, aux2 = back(jnp.asarray(x), record=True)
    assert float(aux["spikes"][0].mean()) > 0.02
    np.testing.assert_array_equal(np.asarray(aux["spikes"][0]), np.asarray(aux2["spikes"][0]))
    np.testing.assert_allclose(np.asarray(out2), np.asarray(out), rtol=1e-4, atol=1e-5)
    low = bn.to_nir(mixed_precision(model, jnp.bfloat16))
    assert all(np.asarray(v).dtype != jnp.bfloat16 for n in low.nodes.values()
               for v in vars(n).values() if isinstance(v, np.ndarray))
