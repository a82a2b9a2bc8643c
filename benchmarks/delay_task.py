"""Learnable synaptic delays (DCLS) on two synthetic tasks; prints one JSON line.

(a) Timing classification. ``n_in`` input channels each emit exactly one spike per sample; class ``c``
    fixes the order in which the channels fire (a random permutation, one spike every ``spacing`` ms),
    the whole pattern starts at a random onset. Rates, spike counts and the set of inter-spike intervals
    are identical across classes: only the relative timing across channels differs. The model is one
    layer of ``n_classes`` leaky integrate-and-fire membranes (tau_m ``tau`` ms, no reset, read out as
    the maximum membrane potential over time, softmax cross-entropy) fed through ``DelayedDense``.
    With learnable delays every output neuron can align the spikes of its class into one coincidence;
    with all delays fixed at zero the postsynaptic potentials do not overlap (spacing > tau) and the
    layer can only see which channels fired — the same for every class — so it stays near chance.
(b) Planted delays. A teacher ``DelayedDense`` with known integer delays (0..max_delay steps) and
    weights drives leaky membranes with Poisson input; a student with random delays learns weights and
    delays from the teacher's membrane traces (MSE). Reported: Pearson correlation of learned and
    planted delays over all synapses.

usage: python benchmarks/delay_task.py [--small] [--seed S]
prints: {"bench": "delay_task", "acc_learned_delays": ..., "acc_no_delays": ..., "delay_recovery_corr": ...,
         "delay_recovery_mae_steps": ..., "chance": ..., "train_s": ...}
"""
from __future__ import annotations

import argparse
import json
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from brainsim.delays import DelayedDense, anneal_sigma


def leaky_membrane(current, tau: float, dt: float = 1.0):
    """u[t] = beta u[t-1] + I[t] with beta = exp(-dt / tau) (mV for I in mV per step); (..., T, n)."""
    beta = float(np.exp(-dt / tau))

    def step(u, i):
        u = beta * u + i
        return u, u

    x = jnp.moveaxis(current, -2, 0)
    _, us = jax.lax.scan(step, jnp.zeros(x.shape[1:], x.dtype), x)
    return jnp.moveaxis(us, 0, -2)


# ------------------------------------------------------------------------------------------- task (a)
def timing_dataset(rng: np.random.Generator, n: int, perms: np.ndarray, spacing: int, T: int, max_onset: int,
                   jitter: int):
    n_classes, n_in = perms.shape
    labels = rng.integers(0, n_classes, size=n)
    onset = rng.integers(0, max_onset + 1, size=n)
    times = onset[:, None] + spacing * perms[labels] + rng.integers(-jitter, jitter + 1, size=(n, n_in))
    times = np.clip(times, 0, T - 1)
    x = np.zeros((n, T, n_in), np.float32)
    x[np.arange(n)[:, None], times, np.arange(n_in)[None, :]] = 1.0
    return jnp.asarray(x), jnp.asarray(labels)


def train_classifier(layer, x_train, y_train, x_test, y_test, *, steps: int, batch: int, lr: float, tau: float,
                     sigma0: float, key, scale: float = 4.0):
    opt = optax.adam(lr)
    params, static = eqx.partition(layer, eqx.is_inexact_array)
    opt_state = opt.init(params)

    def logits_fn(layer, x, sigma, hard=False):
        u = leaky_membrane(layer(x, sigma, hard=hard), tau)
        return scale * jnp.max(u, axis=-2)

    @jax.jit
    def step(params, opt_state, i, key):
        idx = jax.random.randint(key, (batch,), 0, x_train.shape[0])
        sigma = anneal_sigma(i, steps, sigma0, 0.5)

        def loss(p):
            lg = logits_fn(eqx.combine(p, static), x_train[idx], sigma)
            return optax.softmax_cross_entropy_with_integer_labels(lg, y_train[idx]).mean()

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    for i in range(steps):
        key, sub = jax.random.split(key)
        params, opt_state, _ = step(params, opt_state, i, sub)
    layer = eqx.combine(params, static)
    pred = jnp.argmax(logits_fn(layer, x_test, 0.5, hard=True), axis=-1)
    return float(jnp.mean(pred == y_test)), layer


# ------------------------------------------------------------------------------------------- task (b)
def planted_delays(key, *, n_in: int, n_out: int, max_delay: int, T: int, rate: float, steps: int, batch: int,
                   lr: float, tau: float):
    k_t, k_w, k_s, k_x = jax.random.split(key, 4)
    rng = np.random.default_rng(int(jax.random.randint(k_t, (), 0, 2**31 - 1)))
    true_delays = rng.integers(0, max_delay + 1, size=(n_in, n_out))
    teacher = DelayedDense(n_in, n_out, max_delay, key=k_w, init_delays=np.clip(true_delays, 0, max_delay))
    teacher = eqx.tree_at(lambda l: l.weight, teacher, jnp.asarray(rng.uniform(0.5, 1.5, (n_in, n_out)), jnp.float32))
    student = DelayedDense(n_in, n_out, max_delay, key=k_s, weight_scale=0.1)
    opt = optax.adam(lr)
    params, static = eqx.partition(student, eqx.is_inexact_array)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, i, key):
        x = (jax.random.uniform(key, (batch, T, n_in)) < rate).astype(jnp.float32)
        target = leaky_membrane(teacher(x, hard=True), tau)
        sigma = anneal_sigma(i, steps, max_delay / 3.0, 0.5)

        def loss(p):
            out = leaky_membrane(eqx.combine(p, static)(x, sigma), tau)
            return jnp.mean((out - target) ** 2)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    for i in range(steps):
        k_x, sub = jax.random.split(k_x)
        params, opt_state, _ = step(params, opt_state, i, sub)
    learned = np.asarray(eqx.combine(params, static).delays)
    true = np.asarray(teacher.delays)
    corr = float(np.corrcoef(learned.ravel(), true.ravel())[0, 1])
    mae = float(np.mean(np.abs(np.rint(learned) - np.rint(true))))
    return corr, mae


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="fewer training steps (CI / notebooks)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(run(small=args.small, seed=args.seed)))


def run(*, small: bool = False, seed: int = 0) -> dict:
    t0 = time.perf_counter()
    key = jax.random.key(seed)
    k_a, k_b, k_c, k_d, k_e = jax.random.split(key, 5)
    rng = np.random.default_rng(seed)
    n_in, n_classes, spacing, tau = 8, 4, 4, 0.5
    perms = np.stack([rng.permutation(n_in) for _ in range(n_classes)])
    max_delay = spacing * (n_in - 1) + 2
    T = max_delay + spacing * n_in + 12
    x_train, y_train = timing_dataset(rng, 1024, perms, spacing, T, max_onset=8, jitter=0)
    x_test, y_test = timing_dataset(rng, 512, perms, spacing, T, max_onset=8, jitter=0)
    steps = 150 if small else 400
    acc_delays, _ = train_classifier(DelayedDense(n_in, n_classes, max_delay, key=k_a, weight_scale=0.5),
                                     x_train, y_train, x_test, y_test, steps=steps, batch=64, lr=0.05, tau=tau,
                                     sigma0=max_delay / 4.0, key=k_b)
    no_delay = DelayedDense(n_in, n_classes, max_delay, key=k_a, weight_scale=0.5, init_delays=0.0,
                            learn_delays=False)
    acc_plain, _ = train_classifier(no_delay, x_train, y_train, x_test, y_test, steps=steps, batch=64, lr=0.05,
                                    tau=tau, sigma0=0.5, key=k_c)
    corr, mae = planted_delays(k_d, n_in=12, n_out=4, max_delay=16, T=120, rate=0.05,
                               steps=200 if small else 600, batch=16, lr=0.05, tau=4.0)
    return dict(bench="delay_task", acc_learned_delays=round(acc_delays, 4), acc_no_delays=round(acc_plain, 4),
                delay_recovery_corr=round(corr, 4), delay_recovery_mae_steps=round(mae, 3),
                chance=round(1.0 / n_classes, 4), small=small, train_s=round(time.perf_counter() - t0, 2))


if __name__ == "__main__":
    main()
