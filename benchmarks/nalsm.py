"""NALSM: a liquid state machine whose STDP is modulated by an astrocyte (after Ivanov & Michmizos 2021).

    .venv/bin/python benchmarks/nalsm.py [--n 1000] [--epochs 3] [--set-point 4] [--quick]

Task. scikit-learn's 8x8 digits (1 797 images, shipped with scikit-learn; stratified 75/25 split) are encoded
as Poisson spike trains: every pixel drives ``--channels`` (4) input neurons at 100 Hz x intensity for T = 50
steps of 1 ms (about 7.8 input spikes per ms per image). Input neurons project to 10 % of the liquid.

Liquid. ``n`` brainsim LIF neurons (tau_m 20 ms, threshold 1, reset 0, refractory 2 ms; delta synapses,
weights in units of the threshold), 80 % excitatory / 20 % inhibitory, 10 % recurrent connectivity.
Before learning it is strongly supercritical (one extra spike changes about 3 spikes in the next step).

Learning. The excitatory recurrent weights learn by pair STDP on the training images (batches of 64, the
weight change averaged over the batch), ``--epochs`` passes, twice from the same initial liquid with the same
spike keys and STDP constants:

* no astrocyte: plain, balanced pair STDP (A_plus = A_minus, tau 20 ms, weights clipped to [0, w_max]);
* astrocyte (NALSM): one global astrocyte integrates the input and liquid spike counts,
  ``tau_A dA/dt = -A + k (c n_in - n_liq)``, so A > 0 when the liquid fires fewer than ``c`` spikes per input
  spike and A < 0 when it fires more; ``tanh(A)`` shifts STDP towards potentiation or depression
  (``brainsim.astrocytes.AstroSTDP``: LTP x (1 + tanh A), LTD x (1 - tanh A)). The set point ``c``
  (``--set-point``, liquid spikes per input spike) is the astrocyte's one free parameter; see README for the
  sweep that chose it.

Readout. The liquid is frozen; per-neuron spike counts in the two halves of the presentation are standardised
and a ridge classifier is trained on the training split (2 Poisson encodings of each image), its
regularisation chosen by leave-one-out on the training split only (``RidgeClassifierCV``; a fixed small
alpha over-fits the 2 000 features); accuracy on 3 encodings of each test image.

Branching factor (``branching_factor``, astrocyte liquid after learning, test images): the mean number of
descendant spikes of one ancestor spike in the next time step (1 ms = the synaptic delay), measured causally:
at t0 = T/2 of a test presentation one extra spike is added to a liquid neuron (drawn in proportion to its
firing), its membrane reset, and the liquid is stepped once more with the same input spikes; every other
neuron whose spike at t0 + 1 differs from the unperturbed run is a descendant (damage spreading, Derrida &
Pomeau 1986; the order-chaos criterion used for liquids by Bertschinger & Natschlaeger 2004). 1 = critical,
< 1 ordered, > 1 chaotic. Because the input spikes are identical in both runs, spikes caused by the input are
never counted. ``bf_population_*`` is the spike-train estimator mean n(t+1)/n(t) over 1-ms bins
(``brainsim.astrocytes.branching_factor``); it is reported for comparison only: under constant input drive it
stays near 1 (1.2-1.5 here) whatever the recurrence, even for a liquid without recurrent synapses.

Prints one JSON line (``acc_astro``, ``acc_no_astro``, ``branching_factor`` and diagnostics).
"""
import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import RidgeClassifierCV
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from brainsim.astrocytes import AstroSTDP, GlobalAstrocyte, branching_factor
from brainsim.neurons import LIF
from brainsim.neurons.lif import LIFState

DT = 1.0  # ms
T = 50  # steps per image
RATE_HZ = 100.0  # input rate at intensity 1
BATCH = 64
DRAWS_TRAIN, DRAWS_TEST = 2, 3  # Poisson encodings per image for the readout


def build(n, n_in, key):
    """Input weights (n_in, n), excitatory and inhibitory recurrent weights (n, n), plastic mask."""
    n_exc = int(0.8 * n)
    k_min, k_in, k_mask, k_w = jax.random.split(key, 4)
    w_in = jax.random.bernoulli(k_min, 0.1, (n_in, n)) * jax.random.uniform(k_in, (n_in, n), minval=0.5, maxval=1.5) * 0.1
    mask = jax.random.bernoulli(k_mask, 0.1, (n, n)) & ~jnp.eye(n, dtype=bool)
    w = jax.random.uniform(k_w, (n, n), minval=0.5, maxval=1.5) * mask
    exc = (jnp.arange(n) < n_exc)[:, None]
    w_exc = w * 0.05 * exc
    w_inh = w * 0.15 * ~exc
    return w_in, w_exc, w_inh, (mask & exc).astype(jnp.float32)


def encode(images, channels, key):
    """(B, 64) intensities in [0, 1] -> (T, B, 64 * channels) Poisson spikes."""
    p = jnp.repeat(jnp.asarray(images), channels, axis=-1) * RATE_HZ * DT / 1000.0
    return jax.random.bernoulli(key, jnp.broadcast_to(p, (T,) + p.shape)).astype(jnp.float32)


def initial_state(neuron, batch):
    v0 = jax.random.uniform(jax.random.key(7), (batch, neuron.size))  # desynchronised start, v in [0, v_th)
    return jax.vmap(lambda v: neuron.init(v=v))(v0)


def liquid_steps(neuron, w_in, w_rec, st, s_prev, spikes_in):
    """Step the frozen liquid over (steps, B, n_in) input spikes from (state, previous spikes)."""
    def body(carry, s_in):
        st, s_prev = carry
        st, s = jax.vmap(lambda a, i: neuron.step(a, i, DT))(st, s_in @ w_in + s_prev @ w_rec)
        return (st, s), s
    (st, s_prev), spikes = jax.lax.scan(body, (st, s_prev), spikes_in)
    return st, s_prev, spikes


def learn_batch(neuron, w_in, w_inh, mask, rule, w_exc, spikes_in):
    """One batch of STDP (and astrocyte) over (T, B, n_in) input spikes; returns the new excitatory weights."""
    B, n = spikes_in.shape[1], w_exc.shape[0]

    def body(carry, s_in):
        st, s_prev, w_exc, rs = carry
        st, s = jax.vmap(lambda a, i: neuron.step(a, i, DT))(st, s_in @ w_in + s_prev @ (w_exc - w_inh))
        rs, w_exc = rule.step(rs, w_exc, mask, s_prev, s, s_in.sum(-1), DT)
        return (st, s, w_exc, rs), None

    carry = (initial_state(neuron, B), jnp.zeros((B, n)), w_exc, rule.init(n, (B,)))
    return jax.lax.scan(body, carry, spikes_in)[0][2]


def perturbation_branching(neuron, w_in, w_rec, spikes_in, key):
    """Mean number of neurons whose spike at t0 + 1 changes when one extra spike is added at t0 (see docstring)."""
    B, n = spikes_in.shape[1], w_rec.shape[0]
    t0 = T // 2
    st, s_prev, before = liquid_steps(neuron, w_in, w_rec, initial_state(neuron, B), jnp.zeros((B, n)), spikes_in[:t0])
    counts = before.sum(0)
    eligible = (s_prev == 0) & (st.refractory <= 0) & (counts > 0)
    j = jax.random.categorical(key, jnp.where(eligible, jnp.log(jnp.maximum(counts, 1.0)), -jnp.inf), axis=-1)
    extra = jax.nn.one_hot(j, n)
    st_p = LIFState(v=st.v * (1.0 - extra), refractory=jnp.where(extra > 0, neuron.t_ref, st.refractory))
    nxt = spikes_in[t0:t0 + 1]
    _, _, ref = liquid_steps(neuron, w_in, w_rec, st, s_prev, nxt)
    _, _, per = liquid_steps(neuron, w_in, w_rec, st_p, s_prev + extra, nxt)
    return (jnp.abs(per[0] - ref[0]) * (1.0 - extra)).sum(-1)  # (B,) descendants of each ancestor


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--channels", type=int, default=4, help="input neurons per pixel")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--set-point", type=float, default=4.0, help="astrocyte set point c (liquid per input spike)")
    ap.add_argument("--quick", action="store_true", help="1 STDP epoch (smoke test; not yet at equilibrium)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.quick:
        args.epochs = 1
    t_start = time.perf_counter()
    digits = load_digits()
    x = digits.data / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target, test_size=0.25, random_state=args.seed,
                                              stratify=digits.target)
    key = jax.random.key(args.seed)
    k_net, k_stdp, k_feat, k_bf = jax.random.split(key, 4)
    n, ch = args.n, args.channels
    w_in, w_exc0, w_inh, mask = build(n, 64 * ch, k_net)
    neuron = LIF(n, tau_m=20.0, C_m=1.0, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=2.0)

    # the rule is an argument, so both variants (modulation 0 and 1) share one compiled step
    learn_step = jax.jit(lambda rule, w, s_in: learn_batch(neuron, w_in, w_inh, mask, rule, w, s_in))

    def learn(modulation):
        rule = AstroSTDP(eta=1.0, A_plus=1e-3, A_minus=1e-3, tau_plus=20.0, tau_minus=20.0, w_max=0.2,
                         modulation=modulation,
                         astrocyte=GlobalAstrocyte(tau=50.0, w_in=0.05 * args.set_point, w_liq=0.05))
        w, rng = w_exc0, np.random.default_rng(args.seed)
        for ep in range(args.epochs):
            order = rng.permutation(len(x_tr))
            for b in range(0, len(order) - BATCH + 1, BATCH):
                w = learn_step(rule, w, encode(x_tr[order[b:b + BATCH]], ch, jax.random.fold_in(k_stdp, ep * 10_000 + b)))
        return w

    def run_frozen(w_rec, s_in):
        B = s_in.shape[1]
        return liquid_steps(neuron, w_in, w_rec, initial_state(neuron, B), jnp.zeros((B, n)), s_in)[2]

    run_frozen = jax.jit(run_frozen)
    branching = jax.jit(lambda w_rec, s_in, k: perturbation_branching(neuron, w_in, w_rec, s_in, k))

    def evaluate(w_exc):
        w_rec = w_exc - w_inh

        def feats(xs, k):
            out, pop = [], []
            for b in range(0, len(xs), 256):
                s = run_frozen(w_rec, encode(xs[b:b + 256], ch, jax.random.fold_in(k, b)))
                out.append(np.concatenate([np.asarray(s[:T // 2].sum(0)), np.asarray(s[T // 2:].sum(0))], -1))
                pop.append(np.asarray(s.sum(-1)).T)  # (B, T) population spike counts
            return np.concatenate(out), np.concatenate(pop)

        # readout trained on DRAWS_TRAIN Poisson encodings of every training image, tested on DRAWS_TEST
        # encodings of every test image (less encoding noise in the comparison than a single draw)
        f_tr = np.concatenate([feats(x_tr, jax.random.fold_in(k_feat, d))[0] for d in range(DRAWS_TRAIN)])
        tests = [feats(x_te, jax.random.fold_in(k_feat, 100 + d)) for d in range(DRAWS_TEST)]
        f_te, pop = np.concatenate([f for f, _ in tests]), tests[0][1]
        sc = StandardScaler().fit(f_tr)
        clf = RidgeClassifierCV(alphas=np.logspace(-1, 5, 13)).fit(sc.transform(f_tr), np.tile(y_tr, DRAWS_TRAIN))
        s_bf = encode(x_te[:256], ch, jax.random.fold_in(k_bf, 0))
        desc = np.concatenate([np.asarray(branching(w_rec, s_bf, jax.random.fold_in(k_bf, p + 1))) for p in range(8)])
        return dict(acc=float(clf.score(sc.transform(f_te), np.tile(y_te, DRAWS_TEST))), bf=float(desc.mean()),
                    bf_se=float(desc.std() / np.sqrt(len(desc))), bf_pop=branching_factor(pop[:, 10:]),
                    rate=float(f_te.sum() / (len(f_te) * n * T * DT / 1000.0)),
                    w=float(np.asarray(w_exc).sum() / np.asarray(mask).sum()))

    before = evaluate(w_exc0)
    plain = evaluate(learn(0.0))
    astro = evaluate(learn(1.0))
    r = lambda v, d=4: round(v, d)
    print(json.dumps(dict(
        bench="nalsm", n_liquid=n, dataset="sklearn digits", n_train=len(x_tr), n_test=len(x_te),
        stdp_epochs=args.epochs, set_point=args.set_point,
        acc_astro=r(astro["acc"]), acc_no_astro=r(plain["acc"]), acc_before_stdp=r(before["acc"]),
        branching_factor=r(astro["bf"], 3), branching_factor_se=r(astro["bf_se"], 3),
        branching_factor_no_astro=r(plain["bf"], 3), branching_factor_before=r(before["bf"], 3),
        bf_population_astro=r(astro["bf_pop"], 3), bf_population_no_astro=r(plain["bf_pop"], 3),
        bf_population_before=r(before["bf_pop"], 3),
        rate_hz_astro=r(astro["rate"], 2), rate_hz_no_astro=r(plain["rate"], 2), rate_hz_before=r(before["rate"], 2),
        mean_w_exc_astro=r(astro["w"], 5), mean_w_exc_no_astro=r(plain["w"], 5), mean_w_exc_before=r(before["w"], 5),
        wall_s=round(time.perf_counter() - t_start, 1))))


if __name__ == "__main__":
    main()
