"""Peer of ``benchmarks/digits.py --model conv`` in Spyx (JAX + flax nnx): the same convolutional SNN and train step.

Digits (pixels / 16, brainsim's split), direct encoding (T = 20 steps of 1 ms), time-major (T, B, 8, 8, 1) (NHWC).
Conv(1->16, 3x3, SAME) -> LIF -> SumPool 2x2 -> Conv(16->32, 3x3, SAME) -> LIF -> SumPool 2x2 -> Flatten (128) ->
Linear(128 -> 10) -> LI readout; cross-entropy on the max over time of the readout membrane; Adam(2e-3), batch 32.
LIF/LI: Spyx's V <- beta V + x (subtractive reset, threshold 1), beta = exp(-dt / tau) = 0.905, learnable per neuron;
brainsim's input gain (1 - beta) tau / C_m is folded into its initial weights; its fast-sigmoid surrogate (slope 10).
Prints one JSON line: ``step_s`` (median of 20 jitted train steps, batch 32, after 3 warm-up steps), ``compile_s``
(the first call), with ``--epochs N`` (default 0) ``test_accuracy`` after N epochs (shuffled as brainsim's fit)."""
import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
import spyx.axn as axn
import spyx.nn as snn

T, B, DT, TAU, LR = 20, 32, 1.0, 10.0, 2e-3
BETA = float(np.exp(-DT / TAU))  # 0.905
GAIN = (1.0 - BETA) * TAU  # brainsim: v <- beta v + (1 - beta) tau I / C_m, C_m = 1
FAST_SIGMOID = axn.custom(lambda x: 10.0 / (2.0 * (1.0 + 10.0 * jnp.abs(x)) ** 2), axn.heaviside)  # brainsim's, k=10


def weights(scale):  # normal(0, scale * GAIN * sqrt(2 / (fan_in + fan_out))); flax takes conv fans from HWIO kernels
    return nnx.initializers.variance_scaling((scale * GAIN) ** 2, "fan_avg", "normal")


class LIF(snn.LIF):
    """snn.LIF stepped as brainsim (and snnTorch): integrate, then fire and reset. snn.LIF fires on the membrane before
    the step's input, so the readout's first 2 steps get no spikes and the max-over-time loss collapses onto them."""

    def __call__(self, x, V):
        V = jnp.clip(self.beta[...], 0, 1) * V + x
        spikes = self.spike(V - self.threshold)
        return spikes, V - spikes * self.threshold


def per_neuron(layer, shape):  # Spyx's beta=float is one shared scalar Param: make it one per neuron
    layer.beta = nnx.Param(jnp.full(shape, BETA))
    return layer


def build(seed, stock_lif=False):
    rngs, cls = nnx.Rngs(seed), (snn.LIF if stock_lif else LIF)
    lif = lambda shape: per_neuron(cls(shape, beta=BETA, threshold=1.0, activation=FAST_SIGMOID, rngs=rngs), shape)
    conv = lambda c_in, c_out: nnx.Conv(c_in, c_out, (3, 3), padding="SAME", kernel_init=weights(3.0), rngs=rngs)
    return snn.Sequential(conv(1, 16), lif((8, 8, 16)), snn.SumPool((2, 2), (2, 2), "VALID"),
                          conv(16, 32), lif((4, 4, 32)), snn.SumPool((2, 2), (2, 2), "VALID"), snn.Flatten(),
                          nnx.Linear(128, 10, kernel_init=weights(1.0), rngs=rngs),
                          per_neuron(snn.LI((10,), beta=BETA, rngs=rngs), (10,)))


def load():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    enc = lambda a: jnp.broadcast_to(jnp.asarray(a), (T,) + a.shape)  # direct encoding, time-major (T, N, 8, 8, 1)
    return (enc(x_tr), jnp.asarray(y_tr, jnp.int32)), (enc(x_te), jnp.asarray(y_te, jnp.int32))


@nnx.jit
def train_step(model, opt, x, y):
    def loss_fn(m):
        out, _ = snn.run(m, x)  # (T, B, 10) readout membrane
        return optax.softmax_cross_entropy_with_integer_labels(out.max(axis=0), y).mean()
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    opt.update(model, grads)
    return loss


@nnx.jit
def predict(model, x):
    out, _ = snn.run(model, x)
    return out.max(axis=0).argmax(axis=-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stock-lif", action="store_true", help="Spyx's own LIF step order (fire, then integrate)")
    args = ap.parse_args()
    (x_tr, y_tr), (x_te, y_te) = load()
    model = build(args.seed, args.stock_lif)
    opt = nnx.Optimizer(model, optax.adam(LR), wrt=nnx.Param)
    xb, yb = x_tr[:, :B], y_tr[:B]
    t0 = time.perf_counter()
    train_step(model, opt, xb, yb).block_until_ready()
    compile_s = time.perf_counter() - t0
    ts = []
    for _ in range(22):  # 2 more warm-up steps, then 20 timed
        t0 = time.perf_counter()
        train_step(model, opt, xb, yb).block_until_ready()
        ts.append(time.perf_counter() - t0)
    result = dict(lib="spyx_digits_conv" + ("_stock_lif" if args.stock_lif else ""),
                  step_s=round(statistics.median(ts[2:]), 5), compile_s=round(compile_s, 2))
    if args.epochs > 0:
        model = build(args.seed, args.stock_lif)  # a fresh model: the timed steps above trained on one batch
        opt = nnx.Optimizer(model, optax.adam(LR), wrt=nnx.Param)
        n, t0 = y_tr.shape[0], time.perf_counter()
        for epoch in range(args.epochs):  # brainsim fit's order; the last partial batch is dropped, as there
            order = np.random.default_rng([args.seed, epoch]).permutation(n)
            for idx in order[:n // B * B].reshape(-1, B):
                train_step(model, opt, x_tr[:, idx], y_tr[idx])
        jax.block_until_ready(nnx.state(model))
        accuracy = float((predict(model, x_te) == y_te).mean())
        result.update(epochs=args.epochs, train_s=round(time.perf_counter() - t0, 1), test_accuracy=round(accuracy, 4))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
