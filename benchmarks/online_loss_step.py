"""Gradient step of ``Sequential.online_loss`` (truncated / spatial-only BPTT) on the SHD-shaped network.

700 inputs -> 256 recurrent LIF -> 20 leaky readout, batch 32, T = 100 steps, per-step cross-entropy; jitted
``value_and_grad`` at windows 1 and 10, median of 20 calls after compiling. Prints one JSON line.

    python benchmarks/online_loss_step.py
"""
import json
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp

from brainsim.train import LeakyReadout, Sequential, SpikingLayer, losses


def main():
    k1, k2 = jax.random.split(jax.random.key(0))
    net = Sequential([SpikingLayer(700, 256, key=k1, recurrent=True), LeakyReadout(256, 20, key=k2)])
    params, static = eqx.partition(net, eqx.is_inexact_array)
    x = (jax.random.uniform(jax.random.key(1), (32, 100, 700)) < 0.02).astype(jnp.float32)
    y = jnp.arange(32) % 20
    out = {"bench": "online_loss_step"}
    for window in (1, 10):
        def loss(p, window=window):
            m = eqx.combine(p, static)
            return jax.vmap(lambda a, b: m.online_loss(losses.step_cross_entropy, a, b, window=window))(x, y).mean()

        step = jax.jit(jax.value_and_grad(loss))
        value, _ = jax.block_until_ready(step(params))
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            jax.block_until_ready(step(params))
            times.append(time.perf_counter() - t0)
        out[f"window{window}_s"] = round(statistics.median(times), 4)
        out[f"loss_window{window}"] = float(value)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
