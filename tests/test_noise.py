"""Noise in built-in neurons: a white-noise current (``NoiseCurrent``) drives an LIF membrane to the
Ornstein–Uhlenbeck variance sigma^2 tau_m / (2 C_m^2), whatever dt; draws are reproducible from the key and
independent across neurons."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import brainsim as bs


def _membrane_variance(method, dt, sigma=40.0, tau_m=10.0, C_m=100.0, n=4000, mean=0.0):
    lif = bs.LIF(n, tau_m=tau_m, C_m=C_m, v_rest=-65.0, v_th=1e9, method=method)
    net = bs.Network({"n": bs.Population(lif)}, drives=[bs.NoiseCurrent("n", sigma, mean=mean)])
    every = round(tau_m / dt)
    result = bs.simulate(net, 25 * tau_m, dt, key=jax.random.key(3), monitors=[bs.StateMonitor("n", "v", every=every)])
    _, v = result.traces["n.v"]
    return v[5:]  # 20 snapshots one tau_m apart, after 5 tau_m of relaxation


@pytest.mark.parametrize("method", ["exact", "exp_euler", "euler"])
def test_lif_membrane_variance_matches_ornstein_uhlenbeck(method):
    # sigma^2 tau_m / (2 C_m^2) = 40^2 * 10 / (2 * 100^2) = 0.8 mV^2; 4000 neurons x 20 snapshots give a relative
    # standard error of the variance of ~0.6 %; the bound is 5 % at every dt from 0.01 to 0.1 ms
    expected = 40.0 ** 2 * 10.0 / (2 * 100.0 ** 2)
    for dt in (0.01, 0.05, 0.1):
        if method == "exact" and dt == 0.01:
            continue  # the same integration as exp_euler for a current-only LIF; one fewer 25k-step run
        v = _membrane_variance(method, dt)
        assert abs(np.var(v) / expected - 1) < 0.05, f"{method} dt={dt}: {np.var(v):.4f} vs {expected}"
        assert abs(np.mean(v) + 65.0) < 0.05


def test_mean_and_reproducibility():
    v1 = _membrane_variance("exp_euler", 0.1, mean=200.0, n=500)
    v2 = _membrane_variance("exp_euler", 0.1, mean=200.0, n=500)
    np.testing.assert_array_equal(v1, v2)  # the key decides the draws
    assert abs(np.mean(v1) - (-65.0 + 200.0 * 10.0 / 100.0)) < 0.2  # v_rest + R I
    corr = np.corrcoef(v1[:, :50].T)
    assert np.max(np.abs(corr - np.eye(50))) < 0.9  # neurons draw independent noise


def test_noise_current_errors():
    with pytest.raises(ValueError, match="sigma"):
        bs.NoiseCurrent("n", -1.0)
    with pytest.raises(ValueError, match="mean"):
        bs.NoiseCurrent("n", 1.0, mean=float("nan"))
    with pytest.raises(ValueError, match="unknown population 'x'"):
        bs.Network({"n": bs.Population(bs.LIF(3))}, drives=[bs.NoiseCurrent("x", 1.0)])
    with pytest.raises(ValueError, match="sigma has shape"):
        bs.Network({"n": bs.Population(bs.LIF(3))}, drives=[bs.NoiseCurrent("n", np.ones(4))])
