"""Units at the edge: quantities (pint; brainunit and quantities alike) become brainsim's ms/mV/pA/nS/pF/Hz once,
plain numbers keep brainsim's units, and parameters that look like a unit mistake are warned about."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import brainsim as bs

pint = pytest.importorskip("pint")
u = pint.UnitRegistry()


def test_quantities_are_converted_by_their_dimension():
    lif = bs.LIF(3, tau_m=0.02 * u.second, C_m=0.25 * u.nF, v_rest=-0.07 * u.volt, v_th=-55 * u.mV,
                 v_reset=-70 * u.mV, t_ref=2 * u.ms)
    plain = bs.LIF(3, tau_m=20.0, C_m=250.0, v_rest=-70.0, v_th=-55.0, v_reset=-70.0, t_ref=2.0)
    for name in ("tau_m", "C_m", "v_rest", "v_th", "v_reset", "t_ref"):
        np.testing.assert_allclose(getattr(lif, name), getattr(plain, name), rtol=1e-6, err_msg=name)
    assert float(bs.Exponential(5 * u.ms).tau) == pytest.approx(5.0)
    assert float(bs.ConductanceOutput(-80 * u.mV).E_rev) == pytest.approx(-80.0)
    drive = bs.PoissonInput("E", "ge", 100, 0.01 * u.kHz, 0.5 * u.nS)
    assert float(drive.rate) == pytest.approx(10.0) and float(drive.weight) == pytest.approx(0.5)
    assert float(bs.CurrentStep("E", 1 * u.nA).amplitude) == pytest.approx(1000.0)
    assert float(bs.AdEx(1, a=4 * u.nS, b=0.08 * u.nA, tau_w=144 * u.ms).b[0]) == pytest.approx(80.0)


def test_wrong_dimension_is_an_error_naming_the_parameter():
    with pytest.raises(ValueError, match="tau_m.*no brainsim unit"):
        bs.LIF(2, tau_m=3 * u.meter ** 2)


def test_implausible_values_warn():
    with pytest.warns(UserWarning, match="tau_m = 0.02 ms is very short"):
        bs.LIF(2, tau_m=0.02)
    with pytest.warns(UserWarning, match="volts given as numbers"):
        bs.LIF(2, v_rest=-0.07, v_th=-0.05, v_reset=-0.07)
    with pytest.warns(UserWarning, match="v_th <= v_reset"):
        bs.LIF(2, v_th=-70.0, v_reset=-60.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bs.LIF(2)  # the defaults are plausible
        bs.AdEx(2)
