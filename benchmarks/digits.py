"""Train a spiking network on scikit-learn's digits (8x8 images, 10 classes, 1797 examples).

Fixed split: ``train_test_split(test_size=0.25, random_state=0, stratify=y)`` (1347 train / 450 test).
Encoding: each pixel (0..16 -> 0..1) is injected as a constant current for T = 20 steps of 1 ms
(``encoders.direct``). Network: 64 -> 256 LIF (learnable tau_m, v_th) -> 10 leaky readout;
loss: cross-entropy on the max-over-time readout membrane; Adam(2e-3), batch 32, seed 0.
Prints one JSON line with ``test_accuracy`` and ``train_s`` (wall time of ``fit``, compile included).

    python benchmarks/digits.py [--epochs 40] [--seed 0] [--hidden 256]
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from brainsim.train import LeakyReadout, Sequential, SpikingLayer, encoders, fit, losses


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
    return Sequential([SpikingLayer(64, hidden, key=k1, scale=3.0), LeakyReadout(hidden, 10, key=k2)])


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
    args = ap.parse_args()
    train, test = load(args.steps)
    model = build(jax.random.key(args.seed), args.hidden)
    t0 = time.perf_counter()
    result = fit(model, loss_fn, train, optimizer=optax.adam(args.lr), epochs=args.epochs, batch_size=32, seed=args.seed,
                 eval_data=test, restore_best=False, progress=args.progress)  # final model: no selection on test
    train_s = time.perf_counter() - t0
    last = result.history[-1]
    print(json.dumps(dict(bench="digits", test_accuracy=round(last["eval_accuracy"], 4),
                          epochs=len(result.history), train_s=round(train_s, 1), compile_s=round(result.compile_s, 2),
                          train_accuracy=round(last["train_accuracy"], 4))))


if __name__ == "__main__":
    main()
