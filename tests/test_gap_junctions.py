"""Gap junctions (``GapJunctionProjection``): two passive cells reach the analytic coupled steady state, current
is conserved and flows both ways, and the coupling is differentiable (gradient equal to finite differences)."""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse

import brainsim as bs
from brainsim.synapses import Instant

TAU, C = 10.0, 100.0  # ms, pF: leak g_L = C / tau = 10 nS
GAP = {"gap": bs.Receptor(Instant(), bs.CurrentOutput())}


def _pair(g, n=2, **lif):
    lif = bs.LIF(n, tau_m=TAU, C_m=C, v_rest=-65.0, **({"v_th": 1e9} | lif))
    pairs = [(i, i + 1) for i in range(0, n, 2)]
    rows = np.array([p for a, b in pairs for p in ((a, b), (b, a))])
    conductances = sparse.BCOO((jnp.full(len(rows), g), jnp.asarray(rows)), shape=(n, n))
    return bs.Network({"n": bs.Population(lif, GAP)}, {"gj": bs.GapJunctionProjection("n", "n", "gap", conductances)})


@pytest.mark.parametrize("g", [2.0, 10.0])
def test_two_passive_cells_reach_the_coupled_steady_state(g):
    # current I into cell 0 only: (g_L + g) u0 - g u1 = I, (g_L + g) u1 - g u0 = 0 (u: depolarisation)
    g_L, I = C / TAU, 200.0
    net = _pair(g)
    currents = {"n": jnp.broadcast_to(jnp.array([I, 0.0]), (2000, 2))}
    _, v = bs.simulate(net, 200.0, 0.1, key=jax.random.key(0), currents=currents,
                       monitors=[bs.StateMonitor("n", "v", when="end")]).traces["n.v"]
    u0 = I * (g_L + g) / ((g_L + g) ** 2 - g ** 2)
    u1 = g * u0 / (g_L + g)
    np.testing.assert_allclose(v[-1] + 65.0, [u0, u1], rtol=2e-3)


def test_current_is_conserved_and_transmitted_both_ways():
    net = _pair(5.0)
    state = net.init(0.1)
    state = state._replace(neurons={"n": state.neurons["n"]._replace(v=jnp.array([-50.0, -70.0]))})
    state, _ = net.step(state, 0.1, key=jax.random.key(0))
    i_gap = state.receptors["n"]["gap"]
    assert float(jnp.sum(i_gap)) == pytest.approx(0.0, abs=1e-4)
    assert float(i_gap[1]) > 0 > float(i_gap[0])  # from the depolarised cell into the other


def test_gradient_through_the_coupling():
    def depolarisation_of_cell_1(g):
        net = eqx.tree_at(lambda n: n.projections["gj"].conductances, _pair(1.0), replace_fn=lambda c: c * g)
        currents = {"n": jnp.broadcast_to(jnp.array([200.0, 0.0]), (300, 2))}
        _, (v,) = bs.run(net, net.init(0.1), 300, 0.1, key=jax.random.key(0), currents=currents,
                         monitors=[bs.MeanMonitor("n", "v")])
        return v[1] + 65.0

    grad = jax.grad(depolarisation_of_cell_1)(5.0)
    fd = (depolarisation_of_cell_1(5.01) - depolarisation_of_cell_1(4.99)) / 0.02
    assert float(grad) > 0 and abs(float(grad) - float(fd)) < 1e-2 * abs(float(fd))


def test_gap_junction_errors():
    asym = sparse.BCOO((jnp.array([1.0]), jnp.array([[0, 1]])), shape=(2, 2))
    with pytest.raises(ValueError, match="symmetric"):
        bs.GapJunctionProjection("n", "n", "gap", asym)
    with pytest.raises(ValueError, match=">= 0 nS"):
        bs.GapJunctionProjection("n", "n", "gap", sparse.BCOO((jnp.array([-1.0, -1.0]), jnp.array([[0, 1], [1, 0]])),
                                                              shape=(2, 2)))
    lif = bs.LIF(2)
    with pytest.raises(ValueError, match="CurrentOutput"):
        bs.Network({"n": bs.Population(lif, {"gap": bs.Receptor(Instant(), bs.ConductanceOutput(0.0))})},
                   {"gj": bs.GapJunctionProjection("n", "n", "gap", asym, symmetric=False)})
    with pytest.raises(ValueError, match="membrane potential"):
        bs.Network({"s": bs.Population(bs.PoissonSource(2, 5.0)), "n": bs.Population(lif, GAP)},
                   {"gj": bs.GapJunctionProjection("s", "n", "gap", asym, symmetric=False)})
