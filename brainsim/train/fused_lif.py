"""A whole sequence of a (recurrent) LIF layer as one operation, with its own backward pass.

Running ``brainsim.neurons.LIF.step`` in a ``lax.scan`` costs, per time step, a few dozen small XLA
operations forward and again backward, each with its own dispatch overhead, plus a dense recurrent
product and a dense recurrent weight-gradient update per step. ``lif_sequence`` computes exactly the
same thing (the LIF equations of ``brainsim.neurons.lif``, exponential Euler, current input, refractory
period, value or subtract reset, the chosen surrogate derivative) for all T steps at once:

- forward: the recurrent input ``s_{t-1} W`` visits only the neurons that spiked;
- backward: one reverse sweep per sequence; the weight gradient ``sum_t s_{t-1}^T dI_t`` again
  visits only spiking neurons, and examples of a batch share one weight-gradient accumulator.

It is a JAX primitive (``lif_layer_p``) with a JVP whose tangent part is a linear primitive
(``lif_layer_lin_p``) transposed by the backward kernel, so ``grad``, ``vmap`` (either order) and
``jit`` compose; under ``vmap`` over examples with shared parameters the examples are stacked into one
batched kernel call and ``grad`` of a batch loss accumulates one weight gradient. On CPU with a C++
compiler the sweeps are native kernels (``brainsim/_kernels/lif_layer.cc``); elsewhere, for float64,
or with ``BRAINSIM_NATIVE=0`` the reference implementation below (a ``lax.scan`` over ``LIF.step``'s
own methods) runs instead, with identical results up to float rounding.

Parameters are packed per neuron as ``P = [tau_m (ms), C_m (pF), v_rest (mV), v_th (mV), v_reset (mV),
t_ref (ms)]``, shape ``(6, H)``.
"""
from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching

from .. import _kernels
from .._primitives import register, zero_tangent
from ..neurons import LIF
from ..neurons.lif import LIFState
from ..spikes import SURROGATES

PARAM_NAMES = ("tau_m", "C_m", "v_rest", "v_th", "v_reset", "t_ref")
NATIVE_SURROGATES = tuple(s for s in SURROGATES if s != "membrane")  # order of the kernel's switch

lif_layer_p = Primitive("brainsim_lif_layer")
lif_layer_p.multiple_results = True
lif_layer_lin_p = Primitive("brainsim_lif_layer_lin")
lif_layer_lin_p.multiple_results = True

_N_PRIMAL = 6  # i_ext (B, T, H), v0 (B, H), ref0 (B, H), s0 (B, H), w (H, H) or (1, 1), p (6, H)
_N_OUT = 3  # S, V (float) and the refractory mask (uint8), each (B, T, H); the mask is a residual for the
# backward pass, which recomputes I_t and v_new from these


def supports(layer) -> bool:
    """Whether ``lif_sequence`` can run this ``SpikingLayer`` (plain LIF neurons, exponential Euler,
    current input without a synapse, a surrogate other than the population-dependent ``"membrane"``, and
    the layer's own ``step``, not a subclass's)."""
    from .layers import SpikingLayer

    neuron = layer.neuron
    return (type(neuron) is LIF and neuron.method == "exp_euler" and neuron.surrogate in NATIVE_SURROGATES
            and layer.synapse is None
            and type(layer).step is SpikingLayer.step)  # a subclass that changes the step is scanned


def pack_params(neuron: LIF):
    """``(6, H)`` array of the neuron's per-neuron parameters, in ``PARAM_NAMES`` order."""
    return jnp.stack([jnp.broadcast_to(getattr(neuron, n), (neuron.size,)) for n in PARAM_NAMES])


def lif_sequence(neuron: LIF, i_ext, v0, ref0, s0, w=None, *, dt: float):
    """Run ``neuron`` (a resolved ``LIF``) over ``i_ext`` ``(T, H)`` (pA) from state ``v0`` (mV), ``ref0``
    (ms), previous spikes ``s0``, with recurrent weights ``w`` ``(H, H)`` (pA per spike) or None.

    Returns ``(spikes, v)``, each ``(T, H)``: the same as scanning ``LIF.step`` with input
    ``i_ext[t] + spikes[t-1] @ w``.
    """
    h = neuron.size
    if i_ext.ndim != 2 or i_ext.shape[1] != h:
        raise ValueError(f"lif_sequence: input currents must have shape (T, {h}), got {i_ext.shape}")
    recurrent = w is not None
    dtype = jnp.result_type(i_ext, v0, neuron.tau_m)
    w_arr = jnp.asarray(w, dtype) if recurrent else jnp.zeros((1, 1), dtype)
    params = dict(dt=float(dt), subtract=neuron.reset == "subtract", recurrent=recurrent,
                  surrogate=neuron.surrogate, slope=float(neuron.slope))
    outs = lif_layer_p.bind(i_ext.astype(dtype)[None], jnp.asarray(v0, dtype)[None], jnp.asarray(ref0, dtype)[None],
                            jnp.asarray(s0, dtype)[None], w_arr, pack_params(neuron).astype(dtype), **params)
    return outs[0][0], outs[1][0]


# --- reference implementation (pure JAX): LIF.step's own methods in a scan -------------------------------

def _neuron_from(p, subtract, surrogate, slope):
    template = LIF(p.shape[1], reset="subtract" if subtract else "value", surrogate=surrogate, slope=slope)
    return eqx.tree_at(lambda n: tuple(getattr(n, k) for k in PARAM_NAMES), template, tuple(p))


def _reference(i_ext, v0, ref0, s0, w, p, *, dt, subtract, recurrent, surrogate, slope):
    neuron = _neuron_from(p, subtract, surrogate, slope)

    def one(i_seq, v, ref, s):
        def step(carry, i_t):
            v, ref, s_prev = carry
            cur = i_t + s_prev @ w if recurrent else i_t
            state, s, v_new, frozen = neuron.step_parts(LIFState(v, ref), cur, dt)
            return (state.v, state.refractory, s), (s, state.v, frozen.astype(jnp.uint8))

        return jax.lax.scan(step, (v, ref, s), i_seq)[1]

    return list(jax.vmap(one)(i_ext, v0, ref0, s0))


def _reference_outputs(primals, params):
    return _reference(*primals, **params)[:2]


# --- evaluation -----------------------------------------------------------------------------------------

def _native_ok(*arrays) -> bool:
    return all(a.dtype == jnp.float32 for a in arrays) and _kernels.lif_layer_available()


def _kernel_attrs(params):
    return dict(dt=np.float32(params["dt"]), subtract=np.int64(params["subtract"]),
                recurrent=np.int64(params["recurrent"]))


def _forward_impl(*primals, **params):
    def native(*a):
        return list(_kernels.lif_forward_native(*a, **_kernel_attrs(params)))

    return _kernels.cpu_or_pure(native, functools.partial(_reference, **params), *primals, usable=_native_ok(*primals))


def _backward(ct_s, ct_v, primals, outs, params):
    """Cotangents of the 6 primal inputs given cotangents of (S, V); ``ct_v`` may be a symbolic zero."""
    ct_v_zero = type(ct_v) is ad.Zero
    ct_v = jnp.zeros((1,), ct_s.dtype) if ct_v_zero else ct_v  # a placeholder the kernel does not read

    def reference(ct_s, ct_v, *primals):
        _, vjp = jax.vjp(lambda *a: _reference_outputs(a, params), *primals)
        return list(vjp([ct_s, jnp.zeros_like(ct_s) if ct_v_zero else ct_v]))

    def native(ct_s, ct_v, *primals):
        i_ext, v0, ref0, s0, w, p = primals
        s, v, frozen = outs
        d_i, d_v0, d_s0, d_w, d_p = _kernels.lif_backward_native(
            ct_s, ct_v, s, v, frozen, i_ext, v0, s0, w, p, surrogate=np.int64(NATIVE_SURROGATES.index(
                params["surrogate"])), slope=np.float32(params["slope"]), ct_v_zero=np.int64(ct_v_zero),
            **_kernel_attrs(params))
        return [d_i, d_v0, jnp.zeros_like(ref0), d_s0, d_w, d_p]

    return _kernels.cpu_or_pure(native, reference, ct_s, ct_v, *primals, usable=_native_ok(ct_s, ct_v, *primals))


def _lin_impl(*args, **params):
    primals, tangents = args[:_N_PRIMAL], args[_N_PRIMAL + _N_OUT:]
    return list(jax.jvp(lambda *a: _reference_outputs(a, params), primals, tangents)[1])


_PARAMS = ("dt", "subtract", "recurrent", "surrogate", "slope")
register(lif_layer_p, _forward_impl, _PARAMS, multiple_results=True)
register(lif_layer_lin_p, _lin_impl, _PARAMS, multiple_results=True)


@lif_layer_p.def_abstract_eval
def _forward_abstract(i_ext, v0, ref0, s0, w, p, **params):
    return [jax.core.ShapedArray(i_ext.shape, i_ext.dtype), jax.core.ShapedArray(i_ext.shape, i_ext.dtype),
            jax.core.ShapedArray(i_ext.shape, jnp.uint8)]


@lif_layer_lin_p.def_abstract_eval
def _lin_abstract(*args, **params):
    return [jax.core.ShapedArray(args[0].shape, args[0].dtype) for _ in range(2)]


# --- differentiation --------------------------------------------------------------------------------------

def _forward_jvp(primals, tangents, **params):
    outs = lif_layer_p.bind(*primals, **params)
    if all(type(t) is ad.Zero for t in tangents):
        return outs, [zero_tangent(o) for o in outs]
    tangents = [ad.instantiate_zeros(t) for t in tangents]
    d_s, d_v = lif_layer_lin_p.bind(*primals, *outs, *tangents, **params)
    # the refractory mask is an internal residual: not differentiated
    return outs, [d_s, d_v] + [zero_tangent(o) for o in outs[2:]]


def _lin_transpose(cts, *args, **params):
    primals, outs = args[:_N_PRIMAL], args[_N_PRIMAL:_N_PRIMAL + _N_OUT]
    tangents = args[_N_PRIMAL + _N_OUT:]
    if any(ad.is_undefined_primal(a) for a in primals + outs):
        raise ValueError("lif_sequence: the tangent map is linear in the tangents only")
    ct_s, ct_v = ad.instantiate_zeros(cts[0]), cts[1]
    grads = _backward(ct_s, ct_v, primals, outs, params)
    return [None] * (_N_PRIMAL + _N_OUT) + [g if ad.is_undefined_primal(t) else None
                                            for g, t in zip(grads, tangents)]


ad.primitive_jvps[lif_layer_p] = _forward_jvp
ad.primitive_transposes[lif_layer_lin_p] = _lin_transpose


# --- batching ---------------------------------------------------------------------------------------------

def _forward_batch(args, dims, **params):
    i_ext, v0, ref0, s0, w, p = args
    d_i, d_v0, d_ref0, d_s0, d_w, d_p = dims
    if d_w is None and d_p is None:  # shared parameters: fold the vmapped axis into the kernel's batch
        n = next(a.shape[d] for a, d in zip(args, dims) if d is not None)

        def fold(a, d, per_example_shape):
            a = jnp.broadcast_to(a, (n,) + a.shape) if d is None else jnp.moveaxis(a, d, 0)
            return a.reshape((n * a.shape[1],) + per_example_shape)

        b, t, h = i_ext.shape if d_i is None else tuple(s for k, s in enumerate(i_ext.shape) if k != d_i)
        outs = lif_layer_p.bind(fold(i_ext, d_i, (t, h)), fold(v0, d_v0, (h,)), fold(ref0, d_ref0, (h,)),
                                fold(s0, d_s0, (h,)), w, p, **params)
        return [o.reshape((n, b, t, h)) for o in outs], [0] * _N_OUT
    outs = jax.vmap(functools.partial(_reference, **params), in_axes=tuple(dims))(*args)
    return list(outs), [0] * _N_OUT


def _lin_batch(args, dims, **params):
    outs = jax.vmap(functools.partial(_lin_impl, **params), in_axes=tuple(dims))(*args)
    return list(outs), [0, 0]


batching.primitive_batchers[lif_layer_p] = _forward_batch
batching.primitive_batchers[lif_layer_lin_p] = _lin_batch
