"""The native one-pass step of LIF populations with exponential and instant receptors (``Network.step``'s fast path)
against the pure-JAX computation it replaces, and gradients through it."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainsim import _population_step
from brainsim.neurons import LIF
from brainsim.synapses import CurrentOutput, Delta, Instant, Receptor
from brainsim.synapses.receptors import conductance_exp, current_exp

pytestmark = pytest.mark.usefixtures("native_kernels")  # fails if a compiler is present but the kernel does not build

N, STEPS, DT = 300, 60, 0.1


def _population(method, reset, per_neuron):
    k = jax.random.split(jax.random.key(0), 3)
    tau = jax.random.uniform(k[0], (N,), minval=10.0, maxval=30.0) if per_neuron else 20.0
    model = LIF(N, tau_m=tau, C_m=200.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=0.5, reset=reset,
                method=method)
    receptors = {"ge": conductance_exp(5.0, 0.0), "gi": conductance_exp(10.0, -80.0), "ie": current_exp(3.0),
                 "ii": Receptor(Instant(), CurrentOutput()),  # an arrival drives one step only
                 "dq": Receptor(Delta(), CurrentOutput())}  # a charge (pA ms) delivered within one step
    return model, receptors


def _run(step_fn, model, receptors, extra):
    key = jax.random.key(1)
    state = model.init()._replace(v=jax.random.uniform(key, (N,), minval=-60.0, maxval=-50.0))
    recs = {r: jnp.zeros((N,)) for r in receptors}

    def body(carry, k):
        state, recs = carry
        state, spikes, recs = step_fn(model, receptors, state, recs, extra, DT)
        kicks = (jax.random.uniform(k, (5, N)) < 0.05).astype(jnp.float32)  # random arrivals, as spike delivery would add
        recs = {"ge": recs["ge"] + 3.0 * kicks[0], "gi": recs["gi"] + 5.0 * kicks[1], "ie": recs["ie"] + 40.0 * kicks[2],
                "ii": recs["ii"] + 300.0 * kicks[3], "dq": recs["dq"] + 30.0 * kicks[4]}
        return (state, recs), (spikes, state.v)

    return jax.jit(lambda: jax.lax.scan(body, (state, recs), jax.random.split(key, STEPS))[1])()


@pytest.mark.parametrize("method", ["euler", "exp_euler"])
@pytest.mark.parametrize("reset", ["value", "subtract"])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_native_population_step_matches_reference(method, reset, per_neuron):
    model, receptors = _population(method, reset, per_neuron)
    assert _population_step.applicable(model, receptors)
    extra = jnp.linspace(0.0, 300.0, N)  # pA
    s_fast, v_fast = _run(_population_step.population_step, model, receptors, extra)
    s_ref, v_ref = _run(_population_step.reference_step, model, receptors, extra)
    assert float(s_ref.sum()) > 20  # spikes, resets and refractory periods are exercised
    np.testing.assert_array_equal(np.asarray(s_fast), np.asarray(s_ref))
    np.testing.assert_allclose(np.asarray(v_fast), np.asarray(v_ref), atol=1e-3)


def test_gradients_through_the_fast_path_equal_the_reference():
    model, receptors = _population("exp_euler", "value", False)
    state = model.init()._replace(v=jnp.linspace(-60.0, -51.0, N))
    recs = {r: jnp.full((N,), 2.0) for r in receptors}

    def loss(step_fn, g_scale, extra):
        scaled = {r: g * g_scale for r, g in recs.items()}
        new_state, spikes, decayed = step_fn(model, receptors, state, scaled, extra, DT)
        return jnp.sum(new_state.v ** 2) + jnp.sum(decayed["ge"]) + jnp.sum(spikes)

    args = (jnp.float32(1.3), jnp.full((N,), 100.0))
    g_fast = jax.grad(lambda *a: loss(_population_step.population_step, *a), (0, 1))(*args)
    g_ref = jax.grad(lambda *a: loss(_population_step.reference_step, *a), (0, 1))(*args)
    for a, b in zip(g_fast, g_ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5)


def test_not_applicable_models_use_the_general_path():
    from brainsim.neurons import AdaptiveLIF
    from brainsim.synapses.receptors import NMDA

    model, receptors = _population("euler", "value", False)
    assert not _population_step.applicable(AdaptiveLIF(N), receptors)
    assert not _population_step.applicable(model, {"nmda": NMDA()})


def test_large_population_split_over_threads_is_exact():
    """Above 100 000 neurons the kernel splits the population over two threads; forward Euler has no
    exponential, so the native step equals the JAX step bit for bit."""
    n = 250_000
    model = LIF(n, tau_m=20.0, C_m=200.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=5.0, method="euler")
    receptors = {"ge": conductance_exp(5.0, 0.0), "gi": conductance_exp(10.0, -80.0)}
    state = model.init()._replace(v=jax.random.uniform(jax.random.key(0), (n,), minval=-60.0, maxval=-49.0))
    recs = {"ge": jnp.full((n,), 3.0), "gi": jnp.full((n,), 1.0)}
    fast = jax.jit(lambda s, g: _population_step.population_step(model, receptors, s, g, 0.0, DT))(state, recs)
    ref = _population_step.reference_step(model, receptors, state, recs, 0.0, DT)
    assert float(fast[1].sum()) > 1000
    for a, b in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("convention", ["brian2", "nest"])
def test_native_exact_integration_matches_reference(convention):
    import equinox as eqx

    _, receptors = _population("exact", "value", False)
    model = LIF(N, tau_m=20.0, C_m=200.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=1.0, method="exact",
                refractory_convention=convention)
    model = eqx.tree_at(lambda m: m.tau_m, model, jnp.float32(20.0))  # one value shared by all neurons
    assert _population_step.applicable(model, receptors)
    extra = jnp.linspace(0.0, 300.0, N)
    s_fast, v_fast = _run(_population_step.population_step, model, receptors, extra)
    s_ref, v_ref = _run(_population_step.reference_step, model, receptors, extra)
    assert float(s_ref.sum()) > 20
    np.testing.assert_array_equal(np.asarray(s_fast), np.asarray(s_ref))
    np.testing.assert_allclose(np.asarray(v_fast), np.asarray(v_ref), atol=1e-3)
    per_neuron, _ = _population("exact", "value", True)
    assert not _population_step.applicable(per_neuron, receptors)  # one filtered drive per receptor needs one tau_m
