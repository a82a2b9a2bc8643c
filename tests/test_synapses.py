"""Synaptic kinetics against closed forms; NMDA block values; Tsodyks–Markram against its recurrence."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from brainsim.synapses import (AMPA, GABA_A, NMDA, Alpha, ConductanceOutput, Delta, DualExponential,
                               Exponential, NMDAOutput, TsodyksMarkram)


def _response(kin, w=2.0, dt=0.01, t_end=60.0):
    state = kin.arrive(kin.init(1), jnp.array([w]))
    values = []
    for _ in range(int(round(t_end / dt))):
        values.append(float(kin.value(state, dt)[0]))
        state = kin.decay(state, dt)
    return np.arange(len(values)) * dt, np.array(values)


def test_exponential_is_exact():
    t, g = _response(Exponential(5.0))
    np.testing.assert_allclose(g, 2.0 * np.exp(-t / 5.0), rtol=1e-4)


def test_alpha_closed_form_and_peak():
    t, g = _response(Alpha(3.0))
    np.testing.assert_allclose(g, 2.0 * (t / 3.0) * np.exp(1 - t / 3.0), atol=2e-5)
    assert abs(t[np.argmax(g)] - 3.0) < 0.011 and abs(g.max() - 2.0) < 1e-4


def test_dual_exponential_peaks_at_weight():
    t, g = _response(DualExponential(2.0, 30.0), t_end=200.0)
    t_peak = 2.0 * 30.0 / 28.0 * math.log(15.0)
    assert abs(t[np.argmax(g)] - t_peak) < 0.011
    assert abs(g.max() - 2.0) < 1e-4
    shape = np.exp(-t / 30.0) - np.exp(-t / 2.0)
    np.testing.assert_allclose(g, 2.0 * shape / shape.max(), atol=1e-4)


def test_delta_delivers_charge_in_one_step():
    kin = Delta()
    state = kin.arrive(kin.init(2), jnp.array([50.0, 0.0]))
    np.testing.assert_allclose(np.asarray(kin.value(state, 0.1)), [500.0, 0.0])
    np.testing.assert_allclose(np.asarray(kin.value(kin.decay(state, 0.1), 0.1)), [0.0, 0.0])


def test_conductance_and_nmda_outputs():
    out = ConductanceOutput(-80.0).input(jnp.array([2.0]), jnp.array([-60.0]))
    assert float(out.total_current(jnp.array([-60.0]))[0]) == pytest.approx(2.0 * (-80.0 + 60.0))
    nmda = NMDAOutput(0.0, mg=1.0)
    # Jahr & Stevens: B(v) = 1 / (1 + [Mg]/3.57 exp(-0.062 v))
    for v in (-80.0, -40.0, 0.0):
        assert float(nmda.block(jnp.array(v))) == pytest.approx(1 / (1 + np.exp(-0.062 * v) / 3.57), rel=1e-5)
    assert float(NMDAOutput(0.0, mg=0.0).block(jnp.array(-80.0))) == pytest.approx(1.0)


def test_presets():
    assert float(AMPA().output.E_rev) == 0.0 and float(GABA_A().output.E_rev) == -80.0
    assert isinstance(NMDA().kinetics, DualExponential) and isinstance(NMDA().output, NMDAOutput)


def test_tsodyks_markram_regular_train_matches_recurrence():
    U, tau_f, tau_d, dt, isi = 0.2, 50.0, 300.0, 0.1, 20.0
    stp = TsodyksMarkram(U, tau_f, tau_d)
    state = stp.init(1)
    released = []
    steps_per_isi = int(round(isi / dt))
    for step in range(10 * steps_per_isi):
        s = jnp.array([1.0 if step % steps_per_isi == 0 else 0.0])
        state, r = stp.step(state, s, dt)
        if s[0] > 0:
            released.append(float(r[0]))
    # closed-form recurrence between spikes separated by isi
    u, x, expected = U, 1.0, []
    for k in range(10):
        if k > 0:
            u = U + (u - U) * math.exp(-isi / tau_f)
            x = 1 + (x - 1) * math.exp(-isi / tau_d)
        u = u + U * (1 - u)
        expected.append(u * x)
        x -= u * x
    # the first spike arrives after one relaxation step from rest (no effect at rest)
    np.testing.assert_allclose(released, expected, rtol=1e-4)


def test_bad_parameters():
    with pytest.raises(ValueError, match=r"tau \(ms\) must be > 0"):
        Exponential(-1.0)
    with pytest.raises(ValueError, match="tau_decay .* must exceed tau_rise"):
        DualExponential(5.0, 2.0)
    with pytest.raises(ValueError, match=r"U must be in \(0, 1\]"):
        TsodyksMarkram(U=1.5)
    with pytest.raises(ValueError, match=r"mg \(mM\) must be >= 0"):
        NMDAOutput(mg=-1.0)
