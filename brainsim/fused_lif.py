"""A whole sequence of a (recurrent) LIF or adaptive-LIF layer as one operation, with its own backward pass.

Running ``brainsim.neurons.LIF.step`` in a ``lax.scan`` costs, per time step, a few dozen small XLA
operations forward and again backward, each with its own dispatch overhead, plus a dense recurrent
product and a dense recurrent weight-gradient update per step. ``layer_sequence`` computes exactly the
same thing (the LIF equations of ``brainsim.neurons.lif``, exponential Euler, current input, refractory
period, value or subtract reset, the chosen surrogate derivative) for all T steps at once:

- forward: the recurrent input ``s_{t-1} W`` visits only the neurons that spiked;
- backward: one reverse sweep per sequence; the weight gradient ``sum_t s_{t-1}^T dI_t`` again
  visits only spiking neurons, and examples of a batch share one weight-gradient accumulator;
- with the input projection fused in (``w_in``/``b_in`` given), the op reads the layer input x instead
  of the currents ``I_ext = x @ w_in + b_in``: the currents are summed per step from the rows of
  ``w_in`` of the nonzero inputs and never stored, and the backward sweep accumulates the gradients of
  ``w_in`` and ``b_in`` over the same nonzero inputs (the currents' cotangent is materialised only if
  the gradient with respect to x itself is asked for);
- with a leaky-integrator readout fused in (``readout=(w_out, b_out, tau)``, used by ``run(order=LayerByLayer())``
  for a ``LeakyIntegrator`` population fed only by the layer), the op also integrates the readout membrane
  ``u_t = v_inf + (u_{t-1} - v_inf) exp(-dt / tau)``, ``v_inf = tau (s_t @ w_out + b_out) / C_m`` (C_m = 1 pF)
  from the spikes as they are made, and the backward sweep takes u's cotangent ``(T, O)``: the spikes'
  cotangent ``dI_out @ w_out.T`` is formed step by step in cache instead of as a ``(T, H)`` array.

- for ``AdaptiveLIF`` neurons (``brainsim.neurons.lif``: adaptation current w, adaptive threshold theta) the
  same sweeps carry the two extra state variables and their adjoints (the LSNN / recurrent-ALIF layers of
  machine-learning models); ``layer_sequence`` returns their values after every step;
- with ``tau_syn`` the currents reach the membrane through a current-based exponential synapse
  (``G_t = G_{t-1} exp(-dt / tau_syn) + I_t``: the ``Exponential`` receptor of ``SpikingLayer(tau_syn=...)``,
  snnTorch's ``Synaptic``, NIR's ``CubaLIF``); ``tau_syn`` (ms, per neuron) is differentiable.

It is a JAX primitive (``lif_layer_p``) with a JVP whose tangent part is a linear primitive
(``lif_layer_lin_p``) transposed by the backward kernel, so ``grad``, ``vmap`` (either order) and
``jit`` compose; under ``vmap`` over examples with shared parameters the examples are stacked into one
batched kernel call and ``grad`` of a batch loss accumulates one weight gradient. On CPU with a C++
compiler the sweeps are native kernels (``brainsim/_kernels/lif_layer.cc``); elsewhere, for float64,
or with ``BRAINSIM_NATIVE=0`` the reference implementation below (a ``lax.scan`` over ``LIF.step``'s
own methods) runs instead, with identical results up to float rounding.

Parameters are packed per neuron as ``P = [tau_m (ms), C_m (pF), v_rest (mV), v_th (mV), v_reset (mV),
t_ref (ms)]``, shape ``(6, H)``, for adaptive neurons followed by ``[a (nS), b (pA), tau_w (ms), delta_theta (mV),
tau_theta (ms)]``, shape ``(11, H)``, and with a synapse by ``tau_syn (ms)`` (one more row); the readout's as ``R = [w_out (H rows); b_out (pA); tau (ms)]``, shape
``(H + 2, O)``.
"""
from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching

from . import _kernels
from ._primitives import register, zero_tangent
from .neurons import LIF, AdaptiveLIF
from .core.integrators import exp_euler_linear, refractory_countdown
from .neurons.lif import ALIFState, LIFState


# Native binding: the forward and backward sweeps (brainsim/_kernels/lif_layer.cc).
_LIF_FWD_TARGET = "brainsim_lif_forward"
_LIF_BWD_TARGET = "brainsim_lif_backward"
_LIF_LAYER = _kernels.NativeLibrary(_kernels.KERNEL_DIR / "lif_layer.cc",
                                    {_LIF_FWD_TARGET: "BrainsimLifForward", _LIF_BWD_TARGET: "BrainsimLifBackward"},
                                    {"BrainsimLifParamOrder": ",".join(_kernels.LIF_PARAM_ORDER),
                                     "BrainsimAdaptiveParamOrder": ",".join(_kernels.ADAPTIVE_PARAM_ORDER),
                                     "BrainsimLifSurrogates": ",".join(_kernels.NATIVE_SURROGATES)})


def lif_layer_available() -> bool:
    """Whether the fused LIF-layer kernels are compiled and registered (compiles them on first call)."""
    return _LIF_LAYER.available()


def lif_forward_native(x, w_in, b_in, v0, ref0, i0, z0, w, p, r, **attrs):
    """Fused LIF-layer forward sweep (see ``lif_layer.cc``) over ``x``: the input currents ``(B, T, H)``, or
    with ``projected=1`` the layer input ``(B, T, K)`` projected by ``w_in`` ``(K, H)`` and ``b_in`` ``(H,)``
    inside the kernel; with ``readout=1`` a leaky-integrator readout with parameters ``r`` ``(H + 2, O)``
    (W_out rows, b_out, tau) runs behind the layer; with ``adaptive=1`` the neurons are adaptive (``p``
    ``(11, H)``, initial ``z0 = [w_0; theta_0]`` ``(B, 2, H)``). Returns (S, V, u, W, Theta, G, frozen, x_mask,
    flags, s_bits): S and V (B, T, H); u, the readout's membrane (B, T, O) (see ``lif_u_shape``); W and Theta,
    the adaptive neurons' w and theta after each step (B, T, H) (see ``adaptive_shape``); G, the synaptic current
    of each step with ``synaptic=1`` (B, T, H) (P's last row is then tau_syn); frozen (the refractory mask,
    uint8) (B, T, H); and residuals for the backward pass: the bit mask of the projected input's nonzero
    entries (see ``lif_x_mask_shape``), per-example flags (are all nonzero x 1; can no neuron ever be
    refractory: then the refractory mask is left unwritten) and the bit mask of S (see ``lif_s_bits_shape``),
    which the backward pass reads instead of S."""
    shape = x.shape[:2] + (p.shape[1],)
    out = jax.ShapeDtypeStruct(shape, jnp.float32)
    u = jax.ShapeDtypeStruct(lif_u_shape(x.shape, r.shape, bool(attrs["readout"])), jnp.float32)
    adapt = jax.ShapeDtypeStruct(adaptive_shape(shape, bool(attrs["adaptive"])), jnp.float32)
    g = jax.ShapeDtypeStruct(adaptive_shape(shape, bool(attrs["synaptic"])), jnp.float32)
    frozen = jax.ShapeDtypeStruct(shape, jnp.uint8)
    x_mask = jax.ShapeDtypeStruct(lif_x_mask_shape(x.shape, bool(attrs["projected"])), jnp.uint32)
    flags = jax.ShapeDtypeStruct(x.shape[:1], jnp.uint32)
    s_bits = jax.ShapeDtypeStruct(lif_s_bits_shape(shape), jnp.uint32)
    return jax.ffi.ffi_call(_LIF_FWD_TARGET, (out, out, u, adapt, adapt, g, frozen, x_mask, flags, s_bits),
                            vmap_method="sequential")(x, w_in, b_in, v0, ref0, i0, z0, w, p, r, **attrs)


def adaptive_shape(s_shape, present: bool):
    """Shape of a per-step state output (the adaptive neurons' w and theta, the synaptic current G): ``(B, T, H)``
    where the layer has it, a ``(B, 1, 1)`` placeholder otherwise."""
    return tuple(s_shape) if present else (s_shape[0], 1, 1)


def z0_shape(batch: int, h: int, adaptive: bool):
    """Shape of the adaptive neurons' initial ``[w_0; theta_0]``: ``(B, 2, H)``, a ``(B, 1, 1)`` placeholder otherwise."""
    return (batch, 2, h) if adaptive else (batch, 1, 1)


def lif_u_shape(x_shape, r_shape, readout: bool):
    """Shape of the fused readout's membrane: ``(B, T, O)`` with a readout, a ``(B, 1, 1)`` placeholder
    otherwise."""
    return (x_shape[0], x_shape[1], r_shape[1]) if readout else (x_shape[0], 1, 1)


def lif_x_mask_shape(x_shape, projected: bool):
    """Shape of the fused LIF layer's bit mask of nonzero inputs: ``(B, T, ceil(K / 32))`` uint32 words
    when the projection is fused in, a ``(B, 1, 1)`` placeholder otherwise."""
    b, t, k = x_shape
    return (b, t, (k + 31) // 32) if projected else (b, 1, 1)


def lif_s_bits_shape(s_shape):
    """Shape of the bit mask of the fused LIF layer's spikes S ``(B, T, H)``: ``(B, T, ceil(H / 32))`` uint32 words."""
    b, t, h = s_shape
    return (b, t, (h + 31) // 32)


def lif_backward_native(ct_s, ct_v, ct_u, ct_w, ct_th, ct_g, s_bits, v, u, w_seq, th_seq, g_seq, frozen, x_mask, flags,
                        x, w_in, b_in, v0, i0, z0, w, p, r, **attrs):
    """Fused LIF-layer backward sweep: returns (dI, dW_in, db_in, dv0, di0, dz0, dW, dP, dR). dI (the cotangent
    of the input currents, ``(B, T, H)``) is computed only with ``write_di=1`` (a ``(1,)`` placeholder
    otherwise); dW_in and db_in only with ``projected=1``, dW only with ``recurrent=1``, dW_in and dW as the
    two threads' parts ``(2, K, H)`` and ``(2, H, H)`` (the caller sums them); dR (the readout's ``(H + 2, O)``) only with
    ``readout=1``; dz0 ``(B, 2, H)`` only with ``adaptive=1``. With ``ct_s_zero=1`` / ``ct_v_zero=1`` /
    ``ct_a_zero=1`` / ``ct_g_zero=1`` the cotangent of S / V / (W and Theta) / G is zero and ``ct_s`` / ``ct_v`` /
    ``ct_w``, ``ct_th`` / ``ct_g`` may be any float32 placeholder."""
    f32 = jnp.float32
    projected = bool(attrs["projected"])
    shapes = (v.shape if attrs["write_di"] else (1,), (2,) + w_in.shape if projected else (1, 1),
              b_in.shape if projected else (1,), v0.shape, i0.shape, z0.shape if attrs["adaptive"] else (1,),
              (2,) + w.shape if attrs["recurrent"] else (1, 1), p.shape, r.shape if attrs["readout"] else (1, 1))
    return jax.ffi.ffi_call(_LIF_BWD_TARGET, tuple(jax.ShapeDtypeStruct(sh, f32) for sh in shapes),
                            vmap_method="sequential")(ct_s, ct_v, ct_u, ct_w, ct_th, ct_g, s_bits, v, u, w_seq, th_seq,
                                                      g_seq, frozen, x_mask, flags, x, w_in, b_in, v0, i0, z0, w, p,
                                                      r, **attrs)



PARAM_NAMES = _kernels.LIF_PARAM_ORDER  # rows of the packed parameters, checked against the kernel at load
ADAPTIVE_PARAM_NAMES = _kernels.ADAPTIVE_PARAM_ORDER  # the adaptive neurons' further rows, checked likewise
NATIVE_SURROGATES = _kernels.NATIVE_SURROGATES  # order of the kernel's switch, checked at load

lif_layer_p = Primitive("brainsim_lif_layer")
lif_layer_p.multiple_results = True
lif_layer_lin_p = Primitive("brainsim_lif_layer_lin")
lif_layer_lin_p.multiple_results = True

_N_PRIMAL = 10  # x: i_ext (B, T, H) or the layer input (B, T, K); w_in (K, H), b_in (H,) (placeholders (1, 1),
# (1,) unless projected); v0, ref0, i0 (B, H); z0 (B, 2, H) or (B, 1, 1); w (H, H) or (1, 1); p (6, H) or (11, H),
# one row more (tau_syn) with a synapse;
# r (H + 2, O) or (1, 1)
_N_OUT = 10  # S, V (float, (B, T, H)), the readout's u (B, T, O) or a (B, 1, 1) placeholder, the adaptive neurons'
# W and Theta and the synaptic current G (B, T, H) or (B, 1, 1) placeholders, the refractory mask
# (uint8, (B, T, H); left unwritten for examples that can never be refractory), then the bit mask of the
# projected input's nonzero entries, per-example flags (uint32; "all nonzero inputs are 1", "never
# refractory") and the bit mask of S (uint32, (B, T, ceil(H / 32))): residuals for the backward pass, which
# recomputes I_t and v_new from these
_N_DIFF = 6  # S, V, u, W, Theta, G: the differentiable outputs

# The neuron models whose equations the kernels implement (final classes), and whether they adapt
_MODELS = {LIF: False, AdaptiveLIF: True}


def supports(neuron) -> bool:
    """Whether ``layer_sequence`` can run populations of ``neuron``: ``LIF`` or ``AdaptiveLIF`` (final classes)
    with exponential Euler, Brian2's refractory counting and a surrogate the kernel implements (not the
    population-dependent ``"membrane"``)."""
    return (type(neuron) in _MODELS and neuron.method == "exp_euler" and neuron.refractory_convention == "brian2"
            and neuron.surrogate in NATIVE_SURROGATES)


def pack_params(neuron):
    """``(6, H)`` array of the neuron's per-neuron parameters in ``PARAM_NAMES`` order; ``(11, H)`` with the
    ``ADAPTIVE_PARAM_NAMES`` rows after them for an ``AdaptiveLIF``."""
    names = PARAM_NAMES + (ADAPTIVE_PARAM_NAMES if _MODELS[type(neuron)] else ())
    return jnp.stack([jnp.broadcast_to(getattr(neuron, n), (neuron.size,)) for n in names])


class SequenceOutputs(NamedTuple):
    """What ``layer_sequence`` returns, each over the ``T`` steps: spikes and membrane potential (mV) ``(T, H)``;
    the readout's membrane ``u`` (mV) ``(T, O)`` or None; an adaptive neuron's adaptation current ``w`` (pA) and
    threshold increase ``theta`` (mV) after each step ``(T, H)``, or None; the synaptic current ``g`` (pA) that
    drove each step ``(T, H)`` (with ``tau_syn``), or None."""

    spikes: jax.Array
    v: jax.Array
    u: Optional[jax.Array]
    w: Optional[jax.Array]
    theta: Optional[jax.Array]
    g: Optional[jax.Array] = None


def lif_sequence(neuron: LIF, i_ext, v0, ref0, i0=None, w=None, *, dt: float, w_in=None, b_in=None, readout=None):
    """``layer_sequence`` for plain ``LIF`` neurons, returning ``(spikes, v)``, or ``(spikes, v, u)`` with a readout."""
    if _MODELS.get(type(neuron)):
        raise ValueError("lif_sequence: adaptive neurons carry w and theta; use layer_sequence")
    out = layer_sequence(neuron, i_ext, v0, ref0, i0, w, dt=dt, w_in=w_in, b_in=b_in, readout=readout)
    return out[:2] if readout is None else out[:3]


def layer_sequence(neuron, i_ext, v0, ref0, i0=None, w=None, *, dt: float, w_in=None, b_in=None, readout=None,
                   w0=None, theta0=None, tau_syn=None) -> SequenceOutputs:
    """Run ``neuron`` (a resolved ``LIF`` or ``AdaptiveLIF``) over ``i_ext`` ``(T, H)`` (pA) from state ``v0`` (mV), ``ref0``
    (ms), with recurrent weights ``w`` ``(H, H)`` (pA per spike) or None. ``i0`` ``(H,)`` (pA, default 0) is the
    current already at the neurons when the sequence starts (what the spikes of the step before it sent through
    ``w`` in a continued run), added to the input of the first step.

    With ``w_in`` ``(K, H)`` (pA per unit input) and optionally ``b_in`` ``(H,)`` (pA), ``i_ext`` is the
    layer input ``x`` ``(T, K)`` instead, and the currents ``x @ w_in + b_in`` are computed inside the op.

    With ``readout = (w_out, b_out, tau)`` (``(H, O)`` pA per spike, ``(O,)`` pA or None, ``(O,)`` ms) a
    leaky-integrator readout from ``u = 0`` runs behind the layer (``LeakyReadout.step`` on the spikes).

    An ``AdaptiveLIF`` starts from adaptation current ``w0`` (pA) and threshold increase ``theta0`` (mV)
    ``(H,)`` (default 0). (``w`` is the recurrent weight matrix; ``w0`` and ``SequenceOutputs.w`` are the
    adaptation current, ``ALIFState.w``.)

    With ``tau_syn`` (ms, scalar or ``(H,)``) the currents pass through an exponential synapse,
    ``G_t = G_{t-1} exp(-dt / tau_syn) + I_t`` from ``G_{-1} = 0`` (a synapse already charged at the start comes in
    as ``i0``), and the neurons integrate ``G_t``.

    Returns ``SequenceOutputs``: the same as scanning the neuron's ``step`` with input
    ``i_ext[t] + spikes[t-1] @ w`` (``+ i0`` at t = 0).
    """
    if not supports(neuron):
        raise ValueError(f"layer_sequence: {type(neuron).__name__} with method={neuron.method!r}, "
                         f"surrogate={neuron.surrogate!r} has no fused kernel (see fused_lif.supports)")
    adaptive = _MODELS[type(neuron)]
    h = neuron.size
    projected = w_in is not None
    if projected:
        k = i_ext.shape[-1]
        if i_ext.ndim != 2 or w_in.shape != (k, h):
            raise ValueError(f"layer_sequence: need inputs (T, K) and w_in (K, {h}), got {i_ext.shape} and {w_in.shape}")
        if b_in is not None and jnp.shape(b_in) != (h,):
            raise ValueError(f"layer_sequence: b_in must have shape ({h},), got {jnp.shape(b_in)}")
    elif i_ext.ndim != 2 or i_ext.shape[1] != h:
        raise ValueError(f"layer_sequence: input currents must have shape (T, {h}), got {i_ext.shape}")
    recurrent = w is not None
    dtype = jnp.result_type(i_ext, v0, neuron.tau_m, *((w_in,) if projected else ()),
                            *((readout[0],) if readout is not None else ()))
    w_arr = jnp.asarray(w, dtype) if recurrent else jnp.zeros((1, 1), dtype)
    if projected:
        w_in = jnp.asarray(w_in, dtype)
        b_in = jnp.zeros((h,), dtype) if b_in is None else jnp.asarray(b_in, dtype)
    else:
        w_in, b_in = jnp.zeros((1, 1), dtype), jnp.zeros((1,), dtype)
    r = jnp.zeros((1, 1), dtype) if readout is None else pack_readout(*readout, h, dtype)
    i0 = jnp.zeros((h,), dtype) if i0 is None else jnp.broadcast_to(jnp.asarray(i0, dtype), (h,))
    if adaptive:
        z0 = jnp.stack([jnp.zeros((h,), dtype) if z is None else jnp.broadcast_to(jnp.asarray(z, dtype), (h,))
                        for z in (w0, theta0)])[None]
    else:
        if w0 is not None or theta0 is not None:
            raise ValueError("layer_sequence: w0 and theta0 belong to adaptive neurons")
        z0 = jnp.zeros(z0_shape(1, h, False), dtype)
    synaptic = tau_syn is not None
    p = pack_params(neuron).astype(dtype)
    if synaptic:
        p = jnp.concatenate([p, jnp.broadcast_to(jnp.asarray(tau_syn, dtype), (h,))[None]])
    params = dict(dt=float(dt), subtract=neuron.reset == "subtract", recurrent=recurrent, projected=projected,
                  readout=readout is not None, adaptive=adaptive, synaptic=synaptic, surrogate=neuron.surrogate,
                  slope=float(neuron.slope))
    outs = lif_layer_p.bind(i_ext.astype(dtype)[None], w_in, b_in, jnp.asarray(v0, dtype)[None],
                            jnp.asarray(ref0, dtype)[None], i0[None], z0, w_arr, p, r, **params)
    return SequenceOutputs(outs[0][0], outs[1][0], outs[2][0] if readout is not None else None,
                           outs[3][0] if adaptive else None, outs[4][0] if adaptive else None,
                           outs[5][0] if synaptic else None)


def adaptation_start(neuron, state) -> dict:
    """``layer_sequence``'s ``w0``/``theta0`` from an ``AdaptiveLIF``'s state (``ALIFState``); {} for ``LIF``."""
    return dict(w0=state.w, theta0=state.theta) if _MODELS[type(neuron)] else {}


def state_after(neuron, state, out: SequenceOutputs, refractory):
    """The neuron state after a ``layer_sequence`` started from ``state``, given the refractory counter (ms)
    after it (the kernel does not return it)."""
    extra = dict(w=out.w[-1], theta=out.theta[-1]) if _MODELS[type(neuron)] else {}
    return state._replace(v=out.v[-1], refractory=refractory, **extra)


def pack_readout(w_out, b_out, tau, h: int, dtype):
    """``R = [w_out; b_out; tau]``, shape ``(H + 2, O)``, checking the shapes."""
    w_out = jnp.asarray(w_out, dtype)
    if w_out.ndim != 2 or w_out.shape[0] != h:
        raise ValueError(f"layer_sequence: the readout weights must be ({h}, O), got {w_out.shape}")
    o = w_out.shape[1]
    b_out = jnp.zeros((o,), dtype) if b_out is None else jnp.asarray(b_out, dtype)
    tau = jnp.broadcast_to(jnp.asarray(tau, dtype), (o,))
    if b_out.shape != (o,):
        raise ValueError(f"layer_sequence: the readout bias must have shape ({o},), got {b_out.shape}")
    return jnp.concatenate([w_out, b_out[None], tau[None]], axis=0)


# --- reference implementation (pure JAX): LIF.step's own methods in a scan -------------------------------

def _neuron_from(p, subtract, adaptive, surrogate, slope):
    cls, names = (AdaptiveLIF, PARAM_NAMES + ADAPTIVE_PARAM_NAMES) if adaptive else (LIF, PARAM_NAMES)
    template = cls(p.shape[1], reset="subtract" if subtract else "value", surrogate=surrogate, slope=slope)
    return eqx.tree_at(lambda n: tuple(getattr(n, k) for k in names), template, tuple(p))


def _readout_reference(s, r, dt):
    """The readout membrane ``(B, T, O)`` from the spikes ``(B, T, H)``: ``LeakyReadout.step`` in a scan."""
    w_out, b_out, tau = r[:-2], r[-2], r[-1]
    currents = jnp.moveaxis(s @ w_out + b_out, 1, 0)  # (T, B, O), pA

    def step(u, i_t):
        u = exp_euler_linear(u, tau * i_t, 1.0 / tau, dt)  # v_inf = tau I / C_m, C_m = 1 pF
        return u, u

    return jnp.moveaxis(jax.lax.scan(step, jnp.zeros(currents.shape[1:], s.dtype), currents)[1], 0, 1)


def _reference(x, w_in, b_in, v0, ref0, i0, z0, w, p, r, *, dt, subtract, recurrent, projected, readout, adaptive,
               synaptic, surrogate, slope):
    neuron = _neuron_from(p[:-1] if synaptic else p, subtract, adaptive, surrogate, slope)
    decay = jnp.exp(-dt / p[-1]) if synaptic else None
    i_ext = x @ w_in + b_in if projected else x
    none = jnp.zeros((1,), x.dtype)

    def one(i_seq, v, ref, z):
        state0 = ALIFState(v, z[0], z[1], ref) if adaptive else LIFState(v, ref)

        def step(carry, i_t):
            state, s_prev, g = carry
            cur = i_t + s_prev @ w if recurrent else i_t
            if synaptic:
                g = g * decay + cur
                cur = g
            frozen = refractory_countdown(state.refractory, dt)[1]
            state, s = neuron.step(state, cur, dt)
            adapt = (state.w, state.theta) if adaptive else (none, none)
            return (state, s, g), (s, state.v, *adapt, g if synaptic else none, frozen.astype(jnp.uint8))

        return jax.lax.scan(step, (state0, jnp.zeros_like(v), jnp.zeros_like(v)), i_seq)[1]

    s, v, w_seq, th_seq, g_seq, frozen = jax.vmap(one)(i_ext.at[:, 0].add(i0), v0, ref0, z0)
    if not adaptive:
        w_seq = th_seq = jnp.zeros(adaptive_shape(s.shape, False), s.dtype)
    if not synaptic:
        g_seq = jnp.zeros(adaptive_shape(s.shape, False), s.dtype)
    u = _readout_reference(s, r, dt) if readout else jnp.zeros(lif_u_shape(x.shape, r.shape, False), s.dtype)
    # the kernel's input residuals, unused by this path's own (autodiff) backward pass
    return [s, v, u, w_seq, th_seq, g_seq, frozen, jnp.zeros(lif_x_mask_shape(x.shape, projected), jnp.uint32),
            jnp.zeros(x.shape[:1], jnp.uint32), jnp.zeros(lif_s_bits_shape(s.shape), jnp.uint32)]


def _reference_outputs(primals, params):
    return _reference(*primals, **params)[:_N_DIFF]


# --- evaluation -----------------------------------------------------------------------------------------

def _native_ok(*arrays) -> bool:
    return all(a.dtype == jnp.float32 for a in arrays) and lif_layer_available()


def _kernel_attrs(params):
    return dict(dt=np.float32(params["dt"]), subtract=np.int64(params["subtract"]),
                recurrent=np.int64(params["recurrent"]), projected=np.int64(params["projected"]),
                readout=np.int64(params["readout"]), adaptive=np.int64(params["adaptive"]),
                synaptic=np.int64(params["synaptic"]))


def _forward_impl(*primals, **params):
    def native(*a):
        return list(lif_forward_native(*a, **_kernel_attrs(params)))

    return _kernels.cpu_or_pure(native, functools.partial(_reference, **params), *primals, usable=_native_ok(*primals))


def _backward(cts, primals, outs, params, needed):
    """Cotangents of the primal inputs flagged in ``needed`` (one bool per primal, in order) given
    cotangents ``cts`` of (S, V, u, W, Theta, G), any of which may be a symbolic zero."""
    zero = [type(c) is ad.Zero for c in cts]
    dtype = outs[0].dtype
    # a symbolic zero becomes a placeholder the kernel does not read (u's cotangent: zeros, it is small);
    # W's and Theta's are read together, unless both are zero
    ct_s, ct_v = (jnp.zeros((1,), dtype) if z else c for c, z in zip(cts[:2], zero))
    ct_u = ad.instantiate_zeros(cts[2]) if params["readout"] else jnp.zeros((1,), dtype)
    adapt_zero = not params["adaptive"] or (zero[3] and zero[4])
    ct_w, ct_th = ((jnp.zeros((1,), dtype),) * 2 if adapt_zero
                   else tuple(ad.instantiate_zeros(c) for c in cts[3:5]))
    g_zero = not params["synaptic"] or zero[5]
    ct_g = jnp.zeros((1,), dtype) if g_zero else cts[5]

    def reference(ct_s, ct_v, ct_u, ct_w, ct_th, ct_g, *primals):
        _, vjp = jax.vjp(lambda *a: _reference_outputs(a, params), *primals)
        zeros = zero[:2] + [zero[2] or not params["readout"]] + [adapt_zero] * 2 + [g_zero]
        grads = vjp([jnp.zeros_like(o) if z else c
                     for c, o, z in zip((ct_s, ct_v, ct_u, ct_w, ct_th, ct_g), outs, zeros)])
        return [g for g, n in zip(grads, needed) if n]

    def native(ct_s, ct_v, ct_u, ct_w, ct_th, ct_g, *primals):
        x, w_in, b_in, v0, ref0, i0, z0, w, p, r = primals
        _, v, u, w_seq, th_seq, g_seq, frozen, x_mask, flags, s_bits = outs
        projected = params["projected"]
        write_di = needed[0]  # the currents' cotangent: x's own gradient, or needed to form it
        surrogate = np.int64(NATIVE_SURROGATES.index(params["surrogate"]))
        d_i, d_w_in, d_b_in, d_v0, d_i0, d_z0, d_w, d_p, d_r = lif_backward_native(
            ct_s, ct_v, ct_u, ct_w, ct_th, ct_g, s_bits, v, u, w_seq, th_seq, g_seq, frozen, x_mask, flags, x, w_in,
            b_in, v0, i0, z0, w, p, r, surrogate=surrogate, slope=np.float32(params["slope"]),
            ct_s_zero=np.int64(zero[0]), ct_v_zero=np.int64(zero[1]), ct_a_zero=np.int64(adapt_zero),
            ct_g_zero=np.int64(g_zero), write_di=np.int64(write_di), **_kernel_attrs(params))
        # dW_in and dW come as the kernel threads' two parts: summed here, the sum fuses into their consumers
        d_w = d_w[0] + d_w[1] if params["recurrent"] else jnp.zeros_like(w)
        if projected:
            d_w_in = d_w_in[0] + d_w_in[1]
            d_x = d_i @ w_in.T if write_di else None  # I = x @ w_in + b_in
        else:
            d_x, d_w_in, d_b_in = d_i, jnp.zeros_like(w_in), jnp.zeros_like(b_in)
        if not params["readout"]:
            d_r = jnp.zeros_like(r)
        if not params["adaptive"]:
            d_z0 = jnp.zeros_like(z0)
        grads = [d_x, d_w_in, d_b_in, d_v0, jnp.zeros_like(ref0), d_i0, d_z0, d_w, d_p, d_r]
        return [g for g, n in zip(grads, needed) if n]

    return _kernels.cpu_or_pure(native, reference, ct_s, ct_v, ct_u, ct_w, ct_th, ct_g, *primals,
                                usable=_native_ok(ct_s, ct_v, ct_u, ct_w, ct_th, ct_g, *primals))


def _lin_impl(*args, **params):
    primals, tangents = args[:_N_PRIMAL], args[_N_PRIMAL + _N_OUT:]
    return list(jax.jvp(lambda *a: _reference_outputs(a, params), primals, tangents)[1])


_PARAMS = ("dt", "subtract", "recurrent", "projected", "readout", "adaptive", "synaptic", "surrogate", "slope")
register(lif_layer_p, _forward_impl, _PARAMS, multiple_results=True)
register(lif_layer_lin_p, _lin_impl, _PARAMS, multiple_results=True)


@lif_layer_p.def_abstract_eval
def _forward_abstract(x, w_in, b_in, v0, ref0, i0, z0, w, p, r, **params):
    shape = x.shape[:2] + (p.shape[1],)  # (B, T, H)
    adapt = jax.core.ShapedArray(adaptive_shape(shape, params["adaptive"]), x.dtype)
    g = jax.core.ShapedArray(adaptive_shape(shape, params["synaptic"]), x.dtype)
    return [jax.core.ShapedArray(shape, x.dtype), jax.core.ShapedArray(shape, x.dtype),
            jax.core.ShapedArray(lif_u_shape(x.shape, r.shape, params["readout"]), x.dtype), adapt, adapt, g,
            jax.core.ShapedArray(shape, jnp.uint8),
            jax.core.ShapedArray(lif_x_mask_shape(x.shape, params["projected"]), jnp.uint32),
            jax.core.ShapedArray(x.shape[:1], jnp.uint32),
            jax.core.ShapedArray(lif_s_bits_shape(shape), jnp.uint32)]


@lif_layer_lin_p.def_abstract_eval
def _lin_abstract(*args, **params):
    return [jax.core.ShapedArray(o.shape, o.dtype) for o in args[_N_PRIMAL:_N_PRIMAL + _N_DIFF]]  # S, V, u, W, Theta, G


# --- differentiation --------------------------------------------------------------------------------------

def _forward_jvp(primals, tangents, **params):
    outs = lif_layer_p.bind(*primals, **params)
    if all(type(t) is ad.Zero for t in tangents):
        return outs, [zero_tangent(o) for o in outs]
    tangents = [ad.instantiate_zeros(t) for t in tangents]
    d_outs = lif_layer_lin_p.bind(*primals, *outs, *tangents, **params)  # tangents of S, V, u, W, Theta, G
    # the refractory mask and the input residuals are internal: not differentiated
    return outs, list(d_outs) + [zero_tangent(o) for o in outs[_N_DIFF:]]


def _lin_transpose(cts, *args, **params):
    primals, outs = args[:_N_PRIMAL], args[_N_PRIMAL:_N_PRIMAL + _N_OUT]
    tangents = args[_N_PRIMAL + _N_OUT:]
    if any(ad.is_undefined_primal(a) for a in primals + outs):
        raise ValueError("layer_sequence: the tangent map is linear in the tangents only")
    needed = tuple(ad.is_undefined_primal(t) for t in tangents)
    grads = iter(_backward(cts, primals, outs, params, needed))
    return [None] * (_N_PRIMAL + _N_OUT) + [next(grads) if n else None for n in needed]


ad.primitive_jvps[lif_layer_p] = _forward_jvp
ad.primitive_transposes[lif_layer_lin_p] = _lin_transpose


# --- batching ---------------------------------------------------------------------------------------------

_PER_EXAMPLE = (0, 3, 4, 5, 6)  # x, v0, ref0, i0, z0: the primals with the kernel's batch axis
_SHARED = (1, 2, 7, 8, 9)  # w_in, b_in, w, p, r


def _forward_batch(args, dims, **params):
    if all(dims[k] is None for k in _SHARED):  # shared parameters: fold the vmapped axis into the kernel's batch
        n = next(a.shape[d] for a, d in zip(args, dims) if d is not None)

        def fold(a, d):
            a = jnp.broadcast_to(a, (n,) + a.shape) if d is None else jnp.moveaxis(a, d, 0)
            return a.reshape((n * a.shape[1],) + a.shape[2:])

        args = list(args)
        for k in _PER_EXAMPLE:
            args[k] = fold(args[k], dims[k])
        outs = lif_layer_p.bind(*args, **params)
        return [o.reshape((n, o.shape[0] // n) + o.shape[1:]) for o in outs], [0] * _N_OUT
    outs = jax.vmap(functools.partial(_reference, **params), in_axes=tuple(dims))(*args)
    return list(outs), [0] * _N_OUT


def _lin_batch(args, dims, **params):
    outs = jax.vmap(functools.partial(_lin_impl, **params), in_axes=tuple(dims))(*args)
    return list(outs), [0] * _N_DIFF


batching.primitive_batchers[lif_layer_p] = _forward_batch
batching.primitive_batchers[lif_layer_lin_p] = _lin_batch
