"""NALSM: a liquid state machine whose STDP is modulated by an astrocyte (after Ivanov & Michmizos 2021).

    .venv/bin/python benchmarks/nalsm.py [--n 1000] [--quick]

scikit-learn's 8x8 digits (1 797 images, shipped with scikit-learn) are encoded as Poisson spike trains
(64 inputs, rate = 100 Hz x pixel intensity, T = 50 steps of 1 ms) into a liquid of ``n`` brainsim LIF
neurons (80 % excitatory, 20 % inhibitory, 10 % recurrent connectivity). The excitatory recurrent weights
learn by pair STDP (potentiation-dominated) on the training images, once without and once with the
astrocyte modulation (``brainsim.astrocytes.AstroSTDP``, global astrocyte comparing liquid and input
activity); everything else (weights, spikes keys, STDP constants) is identical. Then the liquid is frozen
and a linear readout (ridge classifier on per-neuron spike counts in two time windows) is trained on the
training split and tested on the test split. Prints one JSON line with ``acc_astro``, ``acc_no_astro`` and
``branching_factor`` (astrocyte run, measured on the test images after learning; Beggs–Plenz estimate on
the liquid's population spike counts per 1 ms bin).
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from brainsim.astrocytes import AstroSTDP, GlobalAstrocyte, branching_factor
from brainsim.neurons import LIF

DT = 1.0
T = 50
RATE_HZ = 100.0


def build(n, key):
    n_exc = int(0.8 * n)
    k_in, k_mask, k_w, k_min = jax.random.split(key, 4)
    mask_in = jax.random.bernoulli(k_min, 0.2, (64, n))
    w_in = mask_in * jax.random.uniform(k_in, (64, n), minval=0.5, maxval=1.5) * 0.3
    mask = jax.random.bernoulli(k_mask, 0.1, (n, n)) & ~jnp.eye(n, dtype=bool)
    w = jax.random.uniform(k_w, (n, n), minval=0.0, maxval=1.0) * mask
    sign = jnp.where(jnp.arange(n) < n_exc, 1.0, -1.0)[:, None]
    w_exc = (w * 0.05) * (sign > 0)
    w_inh = (w * 0.12) * (sign < 0)
    plastic_mask = (mask & (sign > 0)).astype(jnp.float32)
    return w_in, w_exc, w_inh, plastic_mask


def encode(images, key):
    """(B, 64) intensities in [0, 1] -> (T, B, 64) Poisson spikes."""
    p = jnp.asarray(images) * RATE_HZ * DT / 1000.0
    return jax.random.bernoulli(key, jnp.broadcast_to(p, (T,) + p.shape)).astype(jnp.float32)


def liquid_run(neuron, w_in, w_exc, w_inh, spikes_in, rule=None, mask=None, rule_state=None):
    """Run the liquid over (T, B, 64) input spikes; with a rule, w_exc learns. Returns spikes (T, B, n)."""
    B, n = spikes_in.shape[1], w_exc.shape[0]
    v0 = jax.random.uniform(jax.random.key(7), (B, n))  # desynchronised start, v in [0, v_th)
    s0 = jax.vmap(lambda v: neuron.init(v=v))(v0)

    def body(carry, s_in):
        st, s_prev, w_exc, rs = carry
        current = s_in @ w_in + s_prev @ (w_exc - w_inh)
        st, s = jax.vmap(lambda a, i: neuron.step(a, i, DT))(st, current)
        if rule is not None:
            rs, w_exc = rule.step(rs, w_exc, mask, s_prev, s, s_in.sum(-1), DT)
        return (st, s, w_exc, rs), s

    (st, _, w_exc, rs), spikes = jax.lax.scan(body, (s0, jnp.zeros((B, n)), w_exc, rule_state), spikes_in)
    return spikes, w_exc, rs


def features(spikes):
    """(T, B, n) -> (B, 2n) spike counts in the two halves of the presentation."""
    h = spikes.shape[0] // 2
    return jnp.concatenate([spikes[:h].sum(0), spikes[h:].sum(0)], axis=-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="fewer STDP epochs (for tests)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    digits = load_digits()
    x = digits.data / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target, test_size=0.25, random_state=args.seed,
                                              stratify=digits.target)
    key = jax.random.key(args.seed)
    k_net, k_stdp, k_feat = jax.random.split(key, 3)
    n = args.n
    w_in, w_exc0, w_inh, mask = build(n, k_net)
    neuron = LIF(n, tau_m=20.0, C_m=1.0, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=2.0)
    epochs = 1 if args.quick else args.epochs
    batch = 64

    def learn(modulation):
        rule = AstroSTDP(eta=1.0, A_plus=2e-4, A_minus=1e-4, tau_plus=20.0, tau_minus=20.0, w_max=0.2,
                         modulation=modulation, astrocyte=GlobalAstrocyte(tau=50.0, w_in=15.0, w_liq=1.0))
        run = jax.jit(lambda w, s_in: liquid_run(neuron, w_in, w, w_inh, s_in, rule, mask,
                                                 rule.init(n, (s_in.shape[1],)))[1])
        w = w_exc0
        rng = np.random.default_rng(args.seed)
        for ep in range(epochs):
            order = rng.permutation(len(x_tr))
            for b in range(0, len(order) - batch + 1, batch):
                s_in = encode(x_tr[order[b:b + batch]], jax.random.fold_in(k_stdp, ep * 10_000 + b))
                w = run(w, s_in)
        return w

    run_frozen = jax.jit(lambda w, s_in: liquid_run(neuron, w_in, w, w_inh, s_in)[0])

    def evaluate(w):
        def feats(xs, k):
            out, spk = [], []
            for b in range(0, len(xs), 256):
                s = run_frozen(w, encode(xs[b:b + 256], jax.random.fold_in(k, b)))
                out.append(np.asarray(features(s)))
                spk.append(np.asarray(s.sum(-1)).T)  # (B, T) population counts
            return np.concatenate(out), np.concatenate(spk)
        f_tr, _ = feats(x_tr, jax.random.fold_in(k_feat, 0))
        f_te, counts = feats(x_te, jax.random.fold_in(k_feat, 1))
        sc = StandardScaler().fit(f_tr)
        clf = RidgeClassifier(alpha=10.0).fit(sc.transform(f_tr), y_tr)
        acc = float(clf.score(sc.transform(f_te), y_te))
        rate = float(counts.sum() / (counts.shape[0] * n * T * DT / 1000.0))
        return acc, branching_factor(counts[:, 5:]), rate, float(np.asarray(w).sum() / np.asarray(mask).sum())

    acc0, bf0, r0, w0 = evaluate(w_exc0)
    w_plain = learn(0.0)
    acc_plain, bf_plain, r_plain, wm_plain = evaluate(w_plain)
    w_astro = learn(1.0)
    acc_astro, bf_astro, r_astro, wm_astro = evaluate(w_astro)
    print(json.dumps(dict(bench="nalsm", n_liquid=n, dataset="sklearn digits", n_train=len(x_tr), n_test=len(x_te),
                          stdp_epochs=epochs, acc_astro=round(acc_astro, 4), acc_no_astro=round(acc_plain, 4),
                          acc_before_stdp=round(acc0, 4), branching_factor=round(bf_astro, 4),
                          branching_factor_no_astro=round(bf_plain, 4), branching_factor_before=round(bf0, 4),
                          rate_hz_astro=round(r_astro, 2), rate_hz_no_astro=round(r_plain, 2),
                          rate_hz_before=round(r0, 2), mean_w_exc_astro=round(wm_astro, 5),
                          mean_w_exc_no_astro=round(wm_plain, 5), mean_w_exc_before=round(w0, 5),
                          wall_s=round(time.perf_counter() - t0, 1))))


if __name__ == "__main__":
    main()
