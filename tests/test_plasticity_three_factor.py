"""Three-factor rules: distal reward (Izhikevich 2007), modulated Hebbian readout learning, modulators."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainsim.plasticity import (ModulatedHebbian, ReverseIndex, RewardModulatedSTDP, Signal,
                                 attention_gated_signal)


def distal_reward_protocol(seed=0, seconds=200, n_pre=100, rate_hz=0.2, period_ms=4000, dt=1.0):
    """Input 0 -> the neuron is paired (pre, post 5 ms later) every ``period_ms``; reward 1-3 s later."""
    rng = np.random.default_rng(seed)
    T = int(seconds * 1000 / dt)
    pre = rng.random((T, n_pre)) < rate_hz * dt / 1000
    post = rng.random((T, 1)) < rate_hz * dt / 1000
    reward = np.zeros(T, np.float32)
    for t0 in range(500, T - 3500, period_ms):
        pre[t0, 0] = True
        post[t0 + 5, 0] = True
        reward[t0 + rng.integers(1000, 3001)] = 1.0
    return pre.astype(np.float32), post.astype(np.float32), reward


def test_distal_reward_grows_the_rewarded_synapse_only():
    pre, post, reward = distal_reward_protocol()
    n_pre = pre.shape[1]
    rng = np.random.default_rng(1)
    w0 = rng.uniform(0.5, 1.5, (n_pre, 1)).astype(np.float32)
    targets = jnp.zeros((n_pre, 1), jnp.int32)
    rule = RewardModulatedSTDP(A_plus=1.0, A_minus=1.5, lr=0.015, w_max=4.0)
    rev = ReverseIndex(targets, 1)

    @jax.jit
    def run(state, pre, post, reward):
        def body(s, x):
            return rule.update(s, targets, rev, x[0], x[1], 1.0, modulator=x[2]), None
        return jax.lax.scan(body, state, (pre, post, reward))[0]

    final = run(rule.init_state(jnp.asarray(w0), n_pre, 1), pre, post, reward)
    w = np.asarray(final.weights)[:, 0]
    assert w[0] >= 0.95 * rule.w_max, w[0]
    others, init = w[1:], w0[1:, 0]
    assert abs(others.mean() - init.mean()) < 0.3, (others.mean(), init.mean())
    assert np.percentile(others, 95) < 0.6 * rule.w_max
    assert np.mean(np.abs(others - init) < 1.0) > 0.9


def test_modulated_hebbian_delta_rule_learns_a_readout():
    # readout y = W^T x(t) of pre traces learns a target linear map from the error signal M = target - y
    rng = np.random.default_rng(0)
    n_pre, n_post, T, dt = 20, 3, 4000, 1.0
    w_true = rng.normal(0, 1, (n_pre, n_post)).astype(np.float32)
    targets = jnp.broadcast_to(jnp.arange(n_post, dtype=jnp.int32), (n_pre, n_post))
    rule = ModulatedHebbian(lr=4e-3, tau_pre=10.0)
    spikes = jnp.asarray((rng.random((T, n_pre)) < 0.05).astype(np.float32))

    @jax.jit
    def run(state):
        def body(s, x):
            trace = s.pre_trace * np.exp(-dt / 10.0) + x
            err = trace @ w_true - trace @ s.weights  # error of each output, an ordinary signal
            return rule.update(s, targets, None, x, jnp.zeros(n_post), dt, modulator=err), jnp.mean(err ** 2)
        return jax.lax.scan(body, state, spikes)

    state, mse = run(rule.init_state(jnp.zeros((n_pre, n_post)), n_pre, n_post))
    mse = np.asarray(mse)
    assert mse[-500:].mean() < 0.05 * mse[:500].mean()
    assert np.corrcoef(np.asarray(state.weights).ravel(), w_true.ravel())[0, 1] > 0.95


def test_attention_gated_signal_and_signal_source():
    m = attention_gated_signal(1.0, 0.25, 2, 4)
    np.testing.assert_allclose(np.asarray(m), [0, 0, 0.75, 0])
    sig = Signal([0.0, 1.0, 2.0])
    s = sig.init()
    outs = []
    for _ in range(5):
        s, o = sig.step(s, None, 0.1)
        outs.append(float(o[0]))
    assert outs == [0.0, 1.0, 2.0, 0.0, 0.0]


@pytest.mark.parametrize("make, message", [
    (lambda: RewardModulatedSTDP(lr=np.ones(2)), "lr (learning rate) must be a scalar, got an array of shape (2,)"),
    (lambda: RewardModulatedSTDP(tau_c=-1.0), "tau_c (ms) must be > 0"),
    (lambda: ModulatedHebbian(lr=np.ones((2, 2))), "lr (learning rate) must be a scalar, got an array of shape (2, 2)"),
    (lambda: Signal(np.ones((2, 2, 2))), "values must have shape (n_steps,) or (n_steps, size)"),
])
def test_three_factor_bad_input(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


def test_modulator_of_wrong_size_rejected():
    rule = ModulatedHebbian()
    targets = jnp.zeros((4, 1), jnp.int32) + jnp.arange(1)
    st = rule.init_state(jnp.ones((4, 1)), 4, 3)
    with pytest.raises(ValueError, match="modulator has 2 values; expected 1 .global. or 3"):
        rule.update(st, targets, None, jnp.ones(4), jnp.ones(3), 1.0, modulator=jnp.ones(2))
