"""Bad input is caught before any work, with one message naming the parameter (issue: nothing silent)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainsim import connectivity
from brainsim.network import Network, Population, Projection
from brainsim.neurons import LIF, AdEx, Izhikevich
from brainsim.simulate import run, simulate
from brainsim.synapses import AMPA, NMDA, CurrentOutput, Exponential, Receptor


@pytest.mark.parametrize("make, message", [
    (lambda: AMPA(E_rev=np.nan), "E_rev"),
    (lambda: AMPA(tau=np.nan), "tau"),
    (lambda: NMDA(mg=np.nan), "mg"),
    (lambda: NMDA(E_rev=np.inf), "E_rev"),
    (lambda: Exponential(tau=np.nan), "tau"),
    (lambda: Exponential(tau=np.inf), "tau"),
    (lambda: LIF(3, slope=np.nan), "slope"),
    (lambda: LIF(3, slope=0.0), "slope"),
    (lambda: AdEx(3, slope=-1.0), "slope"),
    (lambda: Izhikevich(3, slope=np.inf), "slope"),
    (lambda: LIF(3, tau_m=np.nan), "tau_m"),
])
def test_nan_and_inf_parameters_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _net(delay=0.0):
    w = connectivity.from_indices([0, 1], [1, 0], 2, 2, 5.0)
    return Network({"P": Population(LIF(2), {"e": Receptor(Exponential(5.0), CurrentOutput())})},
                   {"pp": Projection("P", "P", "e", w, delay=delay)})


def test_duration_that_dt_does_not_divide_is_rejected():
    with pytest.raises(ValueError, match=r"duration 1.0 ms is not a whole number of steps of dt = 0.3 ms .* 0.9 or 1.2 ms"):
        simulate(_net(), 1.0, 0.3, key=jax.random.key(0))
    assert simulate(_net(), 1.2, 0.3, key=jax.random.key(0), progress=False).duration == pytest.approx(1.2)


def test_delay_below_half_a_step_is_rejected_and_an_off_grid_delay_warns():
    with pytest.raises(ValueError, match="less than half a step of dt = 0.1 ms"):
        _net(delay=0.04).init(0.1)
    with pytest.warns(UserWarning, match="rounded to 0.2 ms"):
        _net(delay=0.17).init(0.1)


def test_connection_indices_must_be_whole_numbers():
    with pytest.raises(ValueError, match="whole numbers"):
        connectivity.from_indices([0.0, 1.5], [1, 0], 2, 2)
    with pytest.raises(ValueError, match="integer neuron indices"):
        connectivity.from_indices(np.array([True, False]), [1, 0], 2, 2)
    w = connectivity.from_indices(np.array([0.0, 1.0]), [1, 0], 2, 2)  # whole floats are fine
    np.testing.assert_array_equal(np.asarray(w.todense()), [[0, 1], [1, 0]])


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(dt=-0.1), ValueError, "dt must be > 0"),
    (dict(dt=0.0), ValueError, "dt must be > 0"),
    (dict(n_steps=-1), ValueError, "n_steps must be an integer >= 0"),
    (dict(n_steps=2.5), ValueError, "n_steps must be an integer >= 0"),
    (dict(key=None), TypeError, "key must be a JAX PRNG key"),
    (dict(key=0), TypeError, "key must be a JAX PRNG key"),
])
def test_run_rejects_bad_steps_dt_and_keys(kwargs, error, message):
    net = _net()
    args = dict(n_steps=3, dt=0.1, key=jax.random.key(0)) | kwargs
    with pytest.raises(error, match=message):
        run(net, net.init(0.1), args["n_steps"], args["dt"], key=args["key"])


def test_simulate_rejects_an_int_key_and_accepts_both_key_kinds():
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        simulate(_net(), 1.0, 0.1, key=0)
    a = simulate(_net(), 1.0, 0.1, key=jax.random.PRNGKey(0), progress=False)
    assert a.duration == pytest.approx(1.0)
    net = _net()
    state, _ = jax.jit(lambda k: run(net, net.init(0.1), 5, 0.1, key=k))(jax.random.key(1))  # a traced key
    assert int(state.step) == 5 and jnp.all(jnp.isfinite(state.neurons["P"].v))


def test_coarse_dt_is_warned_about_naming_the_time_constant():
    import warnings

    from brainsim.networks import build

    coarse = build("coba", n=100, dt=1.0, key=jax.random.key(0))
    with pytest.warns(RuntimeWarning, match=r"dt = 1 ms is coarse .*\(5 ms, receptor 'ge' of 'P'\).* dt <= 0\.5 ms"):
        simulate(coarse.network, 2.0, 1.0, key=jax.random.key(1), state=coarse.state, progress=False)
    fine = build("coba", n=100, dt=0.1, key=jax.random.key(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        simulate(fine.network, 2.0, 0.1, key=jax.random.key(1), state=fine.state, progress=False)
