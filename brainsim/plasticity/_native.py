"""Optional native CPU kernel for the STDP update (XLA FFI), compiled on first use.

Same mechanism as ``brainsim._kernels``: the C++ source (``brainsim/_kernels/stdp.cc``, beside the other
kernels and their shared header) is compiled with the system C++ compiler into ``$BRAINSIM_CACHE`` (default ``~/.cache/brainsim``). If no compiler is found
or ``BRAINSIM_NATIVE=0`` is set, ``native_available()`` is False and STDP uses its pure-JAX path.
"""
from __future__ import annotations

import jax

from .._kernels import KERNEL_DIR, NativeLibrary

_TARGET = "brainsim_stdp_update"
_TARGET_DELIVER = "brainsim_stdp_deliver_update"
_STDP = NativeLibrary(KERNEL_DIR / "stdp.cc",
                      {_TARGET: "BrainsimStdpUpdate", _TARGET_DELIVER: "BrainsimStdpDeliverUpdate"})


def native_available() -> bool:
    """Whether the native STDP kernels are compiled and registered (compiles them on the first call)."""
    return _STDP.available()


def stdp_update_native(weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes, **attrs):
    """In-place STDP step through the native kernel (CPU only; call ``native_available()`` first)."""
    out = (jax.ShapeDtypeStruct(weights.shape, weights.dtype), jax.ShapeDtypeStruct(pre_trace.shape, pre_trace.dtype),
           jax.ShapeDtypeStruct(post_trace.shape, post_trace.dtype))
    return jax.ffi.ffi_call(_TARGET, out, vmap_method="sequential", input_output_aliases={0: 0, 1: 1, 2: 2})(
        weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes, **attrs)


def stdp_deliver_update_native(g, weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes, **attrs):
    """``g + pre_spikes @ W`` with the weights before the update, then the in-place STDP step (CPU only)."""
    out = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in (g, weights, pre_trace, post_trace))
    return jax.ffi.ffi_call(_TARGET_DELIVER, out, vmap_method="sequential",
                            input_output_aliases={0: 0, 1: 1, 2: 2, 3: 3})(
        g, weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes, **attrs)
