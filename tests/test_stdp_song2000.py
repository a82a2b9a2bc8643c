"""benchmarks/stdp_song2000.py: the paper's parameters in brainsim units, and a short run of its competition.

The full reproduction (600 s simulated, ~4 min) is the benchmark itself; here only a few seconds run.
"""
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import stdp_song2000 as song  # noqa: E402


def test_song2000_uses_the_papers_parameters_in_units_of_the_leak():
    net, w0 = song.build(jax.random.key(0), rate_hz=10.0)
    neuron = net.populations["neuron"].model
    g_l = float(neuron.g_L[0])
    assert g_l == pytest.approx(10.0)  # nS: 200 pF / 20 ms
    assert float(neuron.tau_m[0]) == 20.0 and float(neuron.v_rest[0]) == -70.0
    assert float(neuron.v_th[0]) == -54.0 and float(neuron.v_reset[0]) == -60.0 and float(neuron.t_ref[0]) == 0.0
    rule = net.projections["stdp"].rule
    assert rule.w_min == 0.0 and rule.w_max / g_l == pytest.approx(0.015)  # g_max = 0.015 g_L
    assert rule.A_plus / rule.w_max == pytest.approx(0.005) and rule.A_minus / rule.A_plus == pytest.approx(1.05)
    assert (rule.tau_plus, rule.tau_minus, rule.weight_dependence, rule.bounds, rule.pairing) == (
        20.0, 20.0, "additive", "hard", "all_to_all")
    inh = net.projections["inh"]
    assert inh.pre_range == (1000, 1200) and net.projections["stdp"].pre_range == (0, 1000)
    assert np.allclose(np.asarray(inh.operator.weights) / g_l, 0.05)  # fixed g_in = 0.05 g_L
    rates = np.asarray(net.populations["inputs"].model.rate)
    assert np.all(rates[:1000] == 10.0) and np.all(rates[1000:] == 10.0)
    receptors = net.populations["neuron"].receptors
    assert float(receptors["ge"].output.E_rev) == 0.0 and float(receptors["gi"].output.E_rev) == -70.0
    assert float(receptors["ge"].kinetics.tau) == 5.0 and float(receptors["gi"].kinetics.tau) == 5.0
    assert np.all((w0 >= 0) & (w0 <= rule.w_max))


def test_song2000_short_run_depresses_and_pushes_weights_to_the_bounds():
    # 40 Hz inputs from uniform weights (mean 0.5 g_max): the neuron first fires at hundreds of Hz, so
    # depression dominates, weights pile up at 0 and the rate falls: the start of the competition that the
    # benchmark runs to its bimodal end
    out, w = song.run(6000.0, rate_hz=40.0, segments=3, png=None)
    fracs = out["frac_near_bounds_by_segment"]
    assert fracs[0] < fracs[1] < fracs[2] and fracs[2] > 0.35 > out["frac_near_bounds_initial"]
    assert out["frac_low"] > 0.35 and out["frac_high"] < 0.05 and out["mean_weight_over_gmax"] < 0.35
    assert out["post_rate_first_hz"] > 300.0 and 0.0 < out["post_rate_last_hz"] < 0.75 * out["post_rate_first_hz"]
    assert np.all((w >= 0) & (w <= song.G_MAX * (1 + 1e-6)))
