"""Astrocyte-modulated plasticity (NALSM, after Ivanov & Michmizos 2021) and the branching factor.

A global (one per network) or local (one per neuron) astrocyte integrates neuronal activity::

    tau_A dA/dt = -A + (w_in * n_in(t) - w_liq * n_liq(t)) / dt          (A dimensionless, dt in ms)

where ``n_in``/``n_liq`` are the input and liquid spike counts (per step, or per target neuron for a
local astrocyte: spikes of its inputs vs. its own). ``A > 0``: the liquid is quiet relative to its drive;
``A < 0``: it is too active. The astrocyte scales pair-based STDP on the liquid's recurrent weights::

    x_pre  <- x_pre exp(-dt/tau_plus) + s_pre,   x_post <- x_post exp(-dt/tau_minus) + s_post
    dW_ij  = eta [ (1 + m tanh(A)) A_plus x_pre_i s_post_j - (1 - m tanh(A)) A_minus s_pre_i x_post_j ]
    W      <- clip(W + dW, 0, w_max)   (only where a synapse exists, ``mask``)

With ``m = 0`` (``modulated=False``) this is plain STDP. This rule works on dense ``(n, n)`` weight
matrices with batches averaged (what a liquid of ~1000 neurons trained on many examples at once needs);
it is self-contained (a minimal local trace rule), not built on ``brainsim.plasticity``.

The astrocyte is a homeostatic controller: its equilibrium ``A = 0`` is a liquid firing ``w_in / w_liq``
spikes per input spike (the set point); STDP then moves the recurrent weights until the liquid sits there.

``branching_factor(counts)`` is the population (spike-train) estimate of the average number of descendant
spikes per ancestor spike (Beggs & Plenz 2003; Haldeman & Beggs 2005): the mean over time bins with activity
of ``n(t+1) / n(t)``. It cannot tell spikes caused by other liquid spikes from spikes caused by the input:
under a steady input drive it stays near 1 (biased upwards by small counts) whatever the recurrence, even
with no recurrent synapses. For a driven liquid measure the branching causally instead, by perturbation (add
one spike, count the spikes it changes in the next step; see ``benchmarks/nalsm.py``).
"""
from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import check_positive
from .._types import Array


class GlobalAstrocyte(eqx.Module):
    """Activity-integrating astrocyte state ``A`` (see module docstring).

    Args:
        tau: integration time constant, ms (> 0).
        w_in, w_liq: weights of input and liquid spike counts (>= 0).
    """

    tau: Array
    w_in: Array
    w_liq: Array

    def __init__(self, tau: float = 100.0, w_in: float = 1.0, w_liq: float = 1.0):
        check_positive(tau, "tau (ms)", "GlobalAstrocyte")
        check_positive(w_in, "w_in", "GlobalAstrocyte", allow_zero=True)
        check_positive(w_liq, "w_liq", "GlobalAstrocyte", allow_zero=True)
        f = jnp.result_type(float)
        self.tau, self.w_in, self.w_liq = jnp.asarray(tau, f), jnp.asarray(w_in, f), jnp.asarray(w_liq, f)

    def init(self, shape=()) -> Array:
        return jnp.zeros(shape)

    def step(self, A: Array, n_in: Array, n_liq: Array, dt: float) -> Array:
        """Exact update over ``dt`` ms for counts held constant over the step."""
        drive = (self.w_in * n_in - self.w_liq * n_liq) / dt
        decay = jnp.exp(-dt / self.tau)
        return drive + (A - drive) * decay


class AstroSTDPState(NamedTuple):
    x_pre: Array  # (..., n) presynaptic traces
    x_post: Array  # (..., n) postsynaptic traces
    A: Array  # astrocyte state (scalar per example for a global astrocyte)


class AstroSTDP(eqx.Module):
    """Astrocyte-modulated pair STDP on a dense weight matrix (see module docstring).

    Args:
        eta: learning rate; A_plus, A_minus: potentiation / depression amplitudes (>= 0);
        tau_plus, tau_minus: trace time constants, ms (> 0); w_max: upper weight bound (> 0);
        modulation: m, strength of the astrocyte modulation (0 = plain STDP), in [0, 1].
        astrocyte: the ``GlobalAstrocyte``.
    """

    eta: Array
    A_plus: Array
    A_minus: Array
    tau_plus: Array
    tau_minus: Array
    w_max: Array
    modulation: Array
    astrocyte: GlobalAstrocyte

    def __init__(self, *, eta: float = 1.0, A_plus: float = 0.01, A_minus: float = 0.01, tau_plus: float = 20.0,
                 tau_minus: float = 20.0, w_max: float = 1.0, modulation: float = 1.0,
                 astrocyte: GlobalAstrocyte | None = None):
        owner = "AstroSTDP"
        for name, v, zero in (("eta", eta, True), ("A_plus", A_plus, True), ("A_minus", A_minus, True),
                              ("tau_plus (ms)", tau_plus, False), ("tau_minus (ms)", tau_minus, False),
                              ("w_max", w_max, False), ("modulation", modulation, True)):
            check_positive(v, name, owner, allow_zero=zero)
        if modulation > 1:
            raise ValueError(f"{owner}: modulation must be in [0, 1], got {modulation}")
        f = jnp.result_type(float)
        self.eta, self.A_plus, self.A_minus = (jnp.asarray(x, f) for x in (eta, A_plus, A_minus))
        self.tau_plus, self.tau_minus, self.w_max = (jnp.asarray(x, f) for x in (tau_plus, tau_minus, w_max))
        self.modulation = jnp.asarray(modulation, f)
        self.astrocyte = GlobalAstrocyte() if astrocyte is None else astrocyte

    def init(self, n: int, batch_shape=()) -> AstroSTDPState:
        z = jnp.zeros(tuple(batch_shape) + (n,))
        return AstroSTDPState(z, z, jnp.zeros(tuple(batch_shape)))

    def step(self, state: AstroSTDPState, W: Array, mask: Array, s_pre: Array, s_post: Array, n_in: Array,
             dt: float):
        """Update traces, the astrocyte and ``W`` ``(n, n)`` for spikes ``(batch..., n)``; the weight change is
        averaged over the batch. ``n_in``: input spike count per example. Returns ``(state, W)``."""
        x_pre = state.x_pre * jnp.exp(-dt / self.tau_plus) + s_pre
        x_post = state.x_post * jnp.exp(-dt / self.tau_minus) + s_post
        A = self.astrocyte.step(state.A, n_in, s_post.sum(-1), dt)
        g = self.modulation * jnp.tanh(A)
        ltp = jnp.einsum("...i,...j->ij", x_pre * (1.0 + g)[..., None], s_post)
        ltd = jnp.einsum("...i,...j->ij", s_pre * (1.0 - g)[..., None], x_post)
        n_examples = max(int(np.prod(s_post.shape[:-1])), 1)
        dW = self.eta * (self.A_plus * ltp - self.A_minus * ltd) / n_examples
        W = jnp.clip(W + dW * mask, 0.0, self.w_max) * mask
        return AstroSTDPState(x_pre, x_post, A), W


def branching_factor(counts, min_count: int = 1) -> float:
    """Mean descendants per ancestor: average of ``n(t+1)/n(t)`` over bins with ``n(t) >= min_count``
    (population estimator; see the module docstring for its limits under input drive).

    ``counts``: spike counts per time bin, shape ``(T,)`` or ``(batch, T)`` (ratios pooled over the batch).
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim == 1:
        c = c[None]
    anc, desc = c[:, :-1], c[:, 1:]
    ok = anc >= min_count
    if not ok.any():
        return float("nan")
    return float(np.mean(desc[ok] / anc[ok]))
