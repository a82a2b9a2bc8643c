"""``run(adjoint=...)``: every adjoint gives the same trajectory; Checkpointed gives Direct's gradients with less
memory; Truncated cuts the gradient through the state; CountMonitor counts differentiably."""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainsim as bs
from brainsim import connectivity as conn
from brainsim.adjoints import Checkpointed, Direct, Truncated
from brainsim.network import Network, Population, Projection
from brainsim.simulate import CountMonitor, SpikeMonitor, StateMonitor, run, simulate

DT = 0.5


def _net(w=2.0):
    lif = dict(tau_m=10.0, C_m=100.0, v_rest=-65.0, v_th=-50.0, v_reset=-65.0, t_ref=1.0)
    return Network({"src": Population(bs.PoissonSource(30, rate=80.0)),
                    "E": Population(bs.LIF(20, **lif), {"ge": bs.AMPA(tau=5.0)})},
                   {"in": Projection("src", "E", "ge", conn.fixed_probability(jax.random.key(1), 30, 20, 0.5, w)),
                    "rec": Projection("E", "E", "ge", conn.fixed_probability(jax.random.key(2), 20, 20, 0.2, 1.0))})


NET = _net()


def _loss(w, adjoint, n_steps=200):
    net = eqx.tree_at(lambda n: n.projections["in"].operator.weights, NET, w)
    _, (v, counts) = run(net, net.init(DT), n_steps, DT, key=jax.random.key(3), adjoint=adjoint,
                         monitors=[StateMonitor("E", "v"), CountMonitor("E")])
    return jnp.mean((v + 60.0) ** 2) + jnp.sum(counts)


def test_every_adjoint_gives_the_same_trajectory():
    net = _net()
    outs = [run(net, net.init(DT), 150, DT, key=jax.random.key(0), adjoint=adj,
                monitors=[SpikeMonitor("E"), StateMonitor("E", "v", every=3), CountMonitor("E", start=20)])
            for adj in (Direct(), Checkpointed(), Checkpointed(chunk=7), Truncated(5))]
    (_, ref) = outs[0]
    assert int(ref[0].sum()) > 10
    np.testing.assert_array_equal(np.asarray(ref[2]), np.asarray(ref[0][20:].sum(axis=0)))  # counts from step 20
    for _, rec in outs[1:]:
        for a, b in zip(ref, rec):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_checkpointed_gradients_equal_direct_and_use_less_memory():
    w = NET.projections["in"].operator.weights
    g_direct = jax.grad(_loss)(w, Direct())
    g_ckpt = jax.grad(_loss)(w, Checkpointed())
    assert float(jnp.abs(g_direct).sum()) > 0
    np.testing.assert_allclose(np.asarray(g_ckpt), np.asarray(g_direct), rtol=1e-5, atol=1e-6)
    # Truncated with a window longer than the run cuts only at step 0: same gradient in the weights
    np.testing.assert_allclose(np.asarray(jax.grad(_loss)(w, Truncated(10_000))), np.asarray(g_direct),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(jax.grad(_loss)(w, Truncated(5))), np.asarray(g_direct), rtol=1e-3)

    def temp_bytes(adjoint):
        compiled = jax.jit(jax.grad(lambda w: _loss(w, adjoint, 2000))).lower(w).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    assert temp_bytes(Checkpointed()) < 0.35 * temp_bytes(Direct())


def test_truncated_window_cuts_the_state_gradient_but_not_the_records():
    # counts accumulated in earlier windows keep their gradient: if the cut also reset the records' gradient,
    # the gradient of all 60 steps' counts would equal that of the last window's counts alone
    def counts(w, start):
        net = eqx.tree_at(lambda n: n.projections["in"].operator.weights, NET, w)
        _, (c,) = run(net, net.init(DT), 60, DT, key=jax.random.key(3), adjoint=Truncated(5),
                      monitors=[CountMonitor("E", start=start)])
        return jnp.sum(c)

    w = NET.projections["in"].operator.weights
    g_all, g_last = jax.grad(counts)(w, 0), jax.grad(counts)(w, 55)
    assert np.all(np.isfinite(np.asarray(g_all))) and float(jnp.abs(g_all).sum()) > 0
    assert not np.allclose(np.asarray(g_all), np.asarray(g_last))


def test_bad_adjoints_and_count_monitors():
    net = _net()
    with pytest.raises(TypeError, match="adjoint must be an AbstractAdjoint"):
        run(net, net.init(DT), 5, DT, key=jax.random.key(0), adjoint="checkpointed")
    with pytest.raises(ValueError, match="window must be a positive integer"):
        Truncated(0)
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        Checkpointed(chunk=2.5)
    with pytest.raises(ValueError, match="start must be a non-negative integer"):
        CountMonitor("E", start=-1)
    with pytest.raises(ValueError, match="CountMonitor is for run"):
        simulate(net, 5.0, DT, key=jax.random.key(0), monitors=[CountMonitor("E")])
