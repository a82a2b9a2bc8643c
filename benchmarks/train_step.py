"""SHD-shaped training step in brainsim, the same step as ../shared/peers/train_spyx.py and train_snntorch.py.

T=100 steps of dt = 1 ms, batch 32, 700 inputs -> 256 recurrent LIF (beta = exp(-dt/tau_m) = 0.9,
subtractive reset, fast-sigmoid surrogate) -> 20 leaky-integrator readout (beta 0.9), cross-entropy on
the max over time of the readout membrane, Adam(1e-3). Trainable: all weights and biases, per-neuron
tau_m and v_th, readout tau (``bijections.trainable``: the neuron's other parameters are constants).
``--model ralif``: the recurrent adaptive-threshold LIF of ../shared/peers/train_alif_spyx.py and
train_alif_snntorch.py instead: ``AdaptiveLIF`` with threshold adaptation theta <- 0.99 theta + 0.3 mV per spike
(tau_theta = -dt / ln 0.99), no adaptation current; trainable: weights, biases, per-neuron tau_m and v_th,
readout tau.
Prints one JSON line: ``step_s`` = median seconds per train step (forward + backward + Adam) after warm-up.

    python benchmarks/train_step.py [--model lif|ralif] [--mode full|checkpointed] [--repeats 10]
"""
import argparse
import json
import math
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from brainsim.neurons import AdaptiveLIF
from brainsim.train import LeakyReadout, Sequential, SpikingLayer, make_train_step, ml_lif, trainable
from brainsim.train import losses

T, B, I, H, O = 100, 32, 700, 256, 20
TAU = -1.0 / math.log(0.9)  # ms, so that beta = exp(-dt / tau) = 0.9 at dt = 1 ms


TAU_THETA = -1.0 / math.log(0.99)  # ms: theta decays by 0.99 per 1 ms step


def build(key, model: str = "lif"):
    k1, k2 = jax.random.split(key)
    if model == "ralif":
        neuron = ml_lif(H, tau_m=TAU, adaptive=True, delta_theta=0.3, tau_theta=TAU_THETA)
    else:
        neuron = ml_lif(H, tau_m=TAU)
    hidden = SpikingLayer(I, H, key=k1, recurrent=True, neuron=neuron)
    readout = LeakyReadout(H, O, key=k2, tau=TAU)
    return Sequential([hidden, readout])


def make_step(mode: str = "full", model_name: str = "lif"):
    """Builds the model, optimizer and data; returns ``(run_once, compile_s, reset)``: ``run_once()`` does one
    train step (fed its own previous output, as a training loop does) and returns its loss once it is
    computed; ``reset()`` puts the parameters and optimizer state back to their initial values. The step's
    cost depends on how many neurons spike, which grows as this one batch is learnt (0.8 spikes per example
    and step at the start, 27 after 400 steps)."""
    model = build(jax.random.key(0), model_name)
    params, static = eqx.partition(model, trainable(model))  # weights, biases, tau_m, v_th, readout tau
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)
    x = (jax.random.uniform(jax.random.PRNGKey(1), (T, B, I)) < 0.02).astype(jnp.float32)
    x = jnp.transpose(x, (1, 0, 2))  # examples first: (B, T, I); layout only, outside the timed step
    y = jax.random.randint(jax.random.PRNGKey(2), (B,), 0, O)

    def loss_fn(m, xs, label, key):
        out, _ = m(xs, mode=mode)
        return losses.ce_max_membrane(out, label)

    step = make_train_step(loss_fn, opt, B)
    key = jax.random.key(3)
    state = [params, opt_state]

    def reset():
        state[0], state[1] = params, opt_state

    def run_once():
        state[0], state[1], loss, _ = step(state[0], static, state[1], x, y, key)
        return loss.block_until_ready()

    t0 = time.perf_counter()
    run_once()
    return run_once, time.perf_counter() - t0, reset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="full", choices=["full", "checkpointed"])
    ap.add_argument("--model", default="lif", choices=["lif", "ralif"])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()

    run_once, compile_s, _ = make_step(args.mode, args.model)
    for _ in range(2):
        run_once()
    ts = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        loss = run_once()
        ts.append(time.perf_counter() - t)
    print(json.dumps(dict(bench="train_step", lib="brainsim", model=args.model, mode=args.mode, T=T, batch=B,
                          step_s=round(statistics.median(ts), 4), compile_s=round(compile_s, 2),
                          loss=round(float(loss), 4))))


if __name__ == "__main__":
    main()
