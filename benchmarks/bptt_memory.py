"""Peak temporary memory of the jitted gradient step for each BPTT memory mode, from XLA's own buffer
assignment (``jax.jit(...).lower(...).compile().memory_analysis().temp_size_in_bytes``: every
intermediate buffer the compiled program needs at its peak, inputs/outputs/parameters excluded).

Model: 700 -> 256 recurrent LIF -> 20 leaky readout (the SHD-shaped network), batch 32, dt 1 ms,
loss = sum over steps of the cross-entropy of the readout membrane (a per-step loss, so all three modes
compute the same objective; full and checkpointed differ only in memory, spatial also in the gradient).
Prints one JSON line per (mode, T) and a summary line with the acceptance ratios.

    python benchmarks/bptt_memory.py [--T 100 1000] [--batch 32]
"""
import argparse
import json

import equinox as eqx
import jax
import jax.numpy as jnp

from brainsim.train import LeakyReadout, Sequential, SpikingLayer, losses

I, H, O = 700, 256, 20


def grad_step_temp_bytes(mode: str, T: int, batch: int) -> int:
    k1, k2 = jax.random.split(jax.random.key(0))
    net = Sequential([SpikingLayer(I, H, key=k1, recurrent=True), LeakyReadout(H, O, key=k2)])
    params, static = eqx.partition(net, eqx.is_inexact_array)
    x = jax.ShapeDtypeStruct((batch, T, I), jnp.float32)
    y = jax.ShapeDtypeStruct((batch,), jnp.int32)

    def per_example(m, xs, label):
        if mode == "spatial":
            return m.online_loss(losses.step_cross_entropy, xs, label, window=1)
        out, _ = m(xs, mode=mode)
        return jax.vmap(losses.step_cross_entropy, (0, None))(out, label).sum()

    def loss(p, xb, yb):
        m = eqx.combine(p, static)
        return jax.vmap(lambda a, b: per_example(m, a, b))(xb, yb).mean()

    compiled = jax.jit(jax.grad(loss)).lower(params, x, y).compile()
    return int(compiled.memory_analysis().temp_size_in_bytes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    res = {}
    for mode in ("full", "checkpointed", "spatial"):
        for T in args.T:
            b = grad_step_temp_bytes(mode, T, args.batch)
            res[(mode, T)] = b
            print(json.dumps(dict(bench="bptt_memory", mode=mode, T=T, batch=args.batch, temp_mib=round(b / 2**20, 2))),
                  flush=True)
    hi, lo = max(args.T), min(args.T)
    print(json.dumps(dict(bench="bptt_memory_summary", T=hi,
                          checkpointed_over_full=round(res[("checkpointed", hi)] / res[("full", hi)], 3),
                          spatial_T_over_T0=round(res[("spatial", hi)] / res[("spatial", lo)], 3), T0=lo)))


if __name__ == "__main__":
    main()
