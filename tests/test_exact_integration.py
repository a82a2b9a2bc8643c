"""Exact integration of LIF neurons with current synapses (``LIF(method="exact")``) against NEST 3.10's iaf_psc_exp and
iaf_psc_alpha (tests/reference/generate_nest_iaf.py), and its membrane filters against closed forms."""
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainsim import (LIF, Alpha, CurrentOutput, CurrentStep, Delta, DualExponential, Exponential, Network,
                      Population, Projection, Receptor, SpikeTimes)
from brainsim.propagation import EventOperator
from brainsim.simulate import SpikeMonitor, StateMonitor, simulate

DATA = json.loads((Path(__file__).parent / "reference" / "data" / "nest_iaf.json").read_text())
KINETICS = {"iaf_psc_exp": Exponential, "iaf_psc_alpha": Alpha}


def _nest_model_in_brainsim(model: str, method: str = "exact", convention: str = "nest"):
    p, dt = DATA["models"][model]["params"], DATA["dt_ms"]
    lif = LIF(1, tau_m=p["tau_m"], C_m=p["C_m"], v_rest=p["E_L"], v_th=p["V_th"], v_reset=p["V_reset"],
              t_ref=p["t_ref"], method=method, refractory_convention=convention)
    kinetics = KINETICS[model]
    receptors = {"ex": Receptor(kinetics(p["tau_syn_ex"]), CurrentOutput()),
                 "in": Receptor(kinetics(p["tau_syn_in"]), CurrentOutput())}
    populations, projections = {}, {}
    for name, receptor in (("exc", "ex"), ("inh", "in")):
        # a NEST spike stamped t belongs to the step that ends at t: brainsim's step that starts at t - dt
        times = np.asarray(DATA["input_times_ms"][name]) - dt
        populations[name] = Population(SpikeTimes(1, times, np.zeros(len(times), int), dt))
        weight = EventOperator.from_dense(np.array([[DATA["weights_pA"][name]]], np.float32))
        projections[name] = Projection(name, "P", receptor, weight, delay=DATA["delay_ms"])
    populations["P"] = Population(lif, receptors)
    net = Network(populations, projections, drives=[CurrentStep("P", p["I_e"])])
    state = net.init(dt)
    state = state._replace(neurons={**state.neurons, "P": lif.init(v=p["V_m"])})
    res = simulate(net, DATA["duration_ms"], dt, key=jax.random.key(0), state=state, progress=False,
                   monitors=[SpikeMonitor("P"), StateMonitor("P", "v", when="end")])
    spikes = res.spikes["P"].times + dt  # NEST stamps a spike with the end of its step
    (_, v), = res.traces.values()
    return spikes, v[:, 0]


@pytest.mark.parametrize("model", sorted(KINETICS))
def test_spike_times_and_membrane_match_nest(model):
    reference = DATA["models"][model]
    spikes, v = _nest_model_in_brainsim(model)
    nest_spikes = np.asarray(reference["spike_times_ms"])
    assert len(nest_spikes) > 10
    np.testing.assert_allclose(spikes, nest_spikes, atol=1e-6)  # every spike in the same step
    # NEST's multimeter sample at t is the membrane at the end of the step that ends at t
    steps = np.round(np.asarray(reference["v_times_ms"]) / DATA["dt_ms"]).astype(int) - 1
    assert len(steps) > 4000
    np.testing.assert_allclose(v[steps], np.asarray(reference["v_mV"]), atol=2e-3)  # float32 against double


def test_the_current_constant_scheme_and_brian2_counting_do_not_match_nest():
    # what the exact method fixes: with tau_syn = 0.5 ms the step-constant scheme gives each PSC more charge
    nest_spikes = DATA["models"]["iaf_psc_exp"]["spike_times_ms"]
    with pytest.warns(RuntimeWarning, match="coarse"):  # (exact integration is not limited by tau_syn: no warning)
        held, _ = _nest_model_in_brainsim("iaf_psc_exp", method="exp_euler")
    counted, _ = _nest_model_in_brainsim("iaf_psc_exp", convention="brian2")
    for spikes in (held, counted):
        assert len(spikes) != len(nest_spikes) or not np.allclose(spikes, nest_spikes, atol=1e-6)
    assert held[0] < nest_spikes[0] - 0.5  # more charge per PSC: threshold reached earlier


def _membrane_response(kinetics, state, tau, dt, fine=2000):
    """Reference by quadrature: the membrane's response over one step to the kinetics' time course, as a current."""
    t = np.linspace(0.0, dt, fine + 1)
    values = [float(np.asarray(kinetics.value(kinetics.decay(state, float(ti)), dt))[0]) for ti in t]
    weights = np.exp(-(dt - t) / tau)
    integral = np.trapezoid(np.asarray(values) * weights, t)
    return integral / (tau * (1 - math.exp(-dt / tau)))


@pytest.mark.parametrize("kinetics", [Exponential(0.5), Exponential(10.0), Alpha(0.5), Alpha(10.0),
                                      DualExponential(1.0, 5.0)], ids=repr)
def test_filtered_value_is_the_membrane_response(kinetics):
    dt, tau = 0.1, 10.0
    state = kinetics.arrive(kinetics.init(1), jnp.array([3.0]))
    if isinstance(kinetics, (Alpha, DualExponential)):
        state = kinetics.decay(state, 0.7)  # mid-rise: both state components non-zero
    expected = _membrane_response(kinetics, state, tau, dt)
    got = float(np.asarray(kinetics.filtered_value(state, dt, jnp.float32(tau)))[0])
    assert got == pytest.approx(expected, rel=1e-4)


def test_delta_charge_is_a_jump_at_the_start_of_the_step():
    dt, tau, c_m, q = 0.1, 20.0, 1.0, 0.5  # a charge of 0.5 pA ms on 1 pF: 0.5 mV
    lif = LIF(1, tau_m=tau, C_m=c_m, v_rest=0.0, v_th=100.0, method="exact")
    drive = Delta().filtered_value(jnp.array([q]), dt, lif.tau_m)
    state, _ = lif.step(lif.init(), drive, dt)
    assert float(state.v[0]) == pytest.approx(q / c_m * math.exp(-dt / tau), rel=1e-5)
