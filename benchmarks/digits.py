"""Train a spiking network on scikit-learn's digits (8x8 images, 10 classes, 1797 examples).

Fixed split: ``train_test_split(test_size=0.25, random_state=0, stratify=y)`` (1347 train / 450 test).
Encoding: each pixel (0..16 -> 0..1) is injected as a constant current for T = 20 steps of 1 ms
(``encoders.direct``). Network: 64 -> 256 LIF (learnable tau_m, v_th, v_rest, v_reset) -> 10 leaky readout;
loss: cross-entropy on the max-over-time readout membrane; Adam(2e-3), batch 32, seed 0.
``--model conv``: a convolutional SNN on the 1 x 8 x 8 images instead: Conv2d(1->16, 3x3, padding 1) -> LIF
(16 x 8 x 8) -> SumPool2d(2) -> Conv2d(16->32, 3x3, padding 1) -> LIF (32 x 4 x 4) -> SumPool2d(2) -> Flatten ->
Linear(128 -> 10) -> leaky readout; each LIF layer runs fused, fed by its convolution computed for all steps at
once (``brainsim.evaluation.LayerByLayer``).
Prints one JSON line with ``test_accuracy`` and ``train_s`` (wall time of ``fit``, compile included), and
``step_s``, the median time of one train step (batch 32) timed after ``fit``.

``--precision bfloat16`` (or float16): the layers' input projections computed in that dtype
(``brainsim.train.mixed_precision``; parameters, membranes and the loss stay float32).

    python benchmarks/digits.py [--model mlp|conv] [--precision float32|bfloat16|float16] [--epochs 40] [--seed 0]
        [--hidden 256]
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from brainsim.train import (LeakyReadout, Linear, Sequential, SpikingLayer, encoders, fit, losses, make_train_step,
                            mixed_precision, ml_lif)
from brainsim.train import Chain, Conv2d, Flatten, SumPool2d


def load(n_steps: int):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    enc = lambda a: np.asarray(jax.vmap(lambda r: encoders.direct(r, n_steps))(jnp.asarray(a)))
    return (enc(x_tr), y_tr.astype(np.int32)), (enc(x_te), y_te.astype(np.int32))


def build(key, hidden=256):
    k1, k2 = jax.random.split(key)
    neuron = ml_lif(hidden, learn=("v_rest", "v_reset"))  # learnable tau_m, v_th and offsets
    return Sequential([SpikingLayer(64, hidden, key=k1, scale=3.0, neuron=neuron), LeakyReadout(hidden, 10, key=k2)])


def build_conv(key, c1=16, c2=32):
    k1, k2, k3 = jax.random.split(key, 3)
    conv1 = Conv2d((1, 8, 8), c1, 3, padding=1, key=k1, scale=3.0)
    conv2 = Conv2d((c1, 4, 4), c2, 3, padding=1, key=k2, scale=3.0)
    return Sequential([
        SpikingLayer(conv1),
        SpikingLayer(Chain([SumPool2d(conv1.out_shape, 2), conv2])),
        LeakyReadout(Chain([SumPool2d(conv2.out_shape, 2), Flatten((c2, 2, 2)), Linear(c2 * 4, 10, key=k3)])),
    ])


def step_time(model, train, repeats=20):
    """Median seconds of one train step (batch 32, Adam) on the first training batch, after warm-up."""
    import statistics
    import equinox as eqx
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt = optax.adam(1e-3)
    step = make_train_step(loss_fn, opt, 32)
    opt_state = opt.init(params)
    x, y = jnp.asarray(train[0][:32]), jnp.asarray(train[1][:32])
    key = jax.random.key(0)
    for _ in range(3):
        out = step(params, static, opt_state, x, y, key)
    jax.block_until_ready(out)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(step(params, static, opt_state, x, y, key))
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def loss_fn(model, x, y, key):
    out, _ = model(x)
    return losses.ce_max_membrane(out, y), {"accuracy": losses.accuracy_max_membrane(out, y)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0, help="model initialisation and shuffling seed")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--hidden", type=int, default=256, help="hidden LIF neurons")
    ap.add_argument("--model", default="mlp", choices=["mlp", "conv"])
    ap.add_argument("--precision", default="float32", choices=["float32", "bfloat16", "float16"])
    args = ap.parse_args()
    train, test = load(args.steps)
    if args.model == "conv":
        train = (train[0].reshape(-1, args.steps, 1, 8, 8), train[1])
        test = (test[0].reshape(-1, args.steps, 1, 8, 8), test[1])
        model = build_conv(jax.random.key(args.seed))
    else:
        model = build(jax.random.key(args.seed), args.hidden)
    if args.precision != "float32":
        model = mixed_precision(model, args.precision)
    if args.epochs == 0:  # the step time alone
        print(json.dumps(dict(bench="digits", model=args.model, precision=args.precision,
                              step_s=round(step_time(model, train), 5))))
        return
    t0 = time.perf_counter()
    result = fit(model, loss_fn, train, optimizer=optax.adam(args.lr), epochs=args.epochs, batch_size=32, seed=args.seed,
                 eval_data=test, restore_best=False, progress=args.progress)  # final model: no selection on test
    train_s = time.perf_counter() - t0
    last = result.history[-1]
    step_s = step_time(result.model, train)
    print(json.dumps(dict(bench="digits", model=args.model, precision=args.precision, test_accuracy=round(last["eval_accuracy"], 4),
                          step_s=round(step_s, 5),
                          epochs=len(result.history), train_s=round(train_s, 1), compile_s=round(result.compile_s, 2),
                          train_accuracy=round(last["train_accuracy"], 4))))


if __name__ == "__main__":
    main()
