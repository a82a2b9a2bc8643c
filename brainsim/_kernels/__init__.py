"""Optional native CPU kernels, compiled on first use and registered as XLA FFI custom calls.

The C++ source ships with the package; the first call compiles it with the system C++ compiler into a
per-user cache (``$BRAINSIM_CACHE`` or ``~/.cache/brainsim``), keyed by the source, jaxlib version
and machine. If no compiler is available, or ``BRAINSIM_NATIVE=0`` is set, ``native_available()``
returns False and callers use their pure-JAX path (which is also what runs on GPU).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Optional
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..spikes import SURROGATES


def _cache_dir() -> Path:
    root = os.environ.get("BRAINSIM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "brainsim")
    return Path(root)


# -fno-trapping-math: the kernels never inspect floating-point exception flags; without it GCC will not
# turn the kernels' conditional selects into vector blends, and their loops stay scalar. -fopenmp-simd:
# honour `#pragma omp simd` (vectorisation hints only; no OpenMP runtime).
KERNEL_DIR = Path(__file__).parent  # every C++ source of brainsim and their shared header

# Constants the C++ kernels share with Python, defined here once and checked against the kernels at load:
# the rows of the LIF parameter array P (population.cc, lif_layer.cc) and the surrogate ids of lif_layer.cc.
LIF_PARAM_ORDER = ("tau_m", "C_m", "v_rest", "v_th", "v_reset", "t_ref")
NATIVE_SURROGATES = tuple(name for name in SURROGATES if name != "membrane")
_COMMON_HEADER = KERNEL_DIR / "kernel_common.h"
_FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-fno-trapping-math", "-fopenmp-simd")


def _cpu_flags() -> str:
    """The CPU's feature flags (Linux), so that a library built with -march=native is never loaded on a
    different CPU that shares the cache."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def find_compiler():
    """The C++ compiler the kernels are built with: ``$CXX``, else the first of g++, c++, clang++ on the PATH
    (None if there is none)."""
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


LIBRARIES: list = []  # every NativeLibrary created (the tests check that each one builds where a compiler exists)


class NativeLibrary:
    """A C++ source file of XLA FFI handlers, compiled on first use and registered for CPU.

    Args:
        source: path of the ``.cc`` file (shipped as package data).
        targets: FFI target name -> exported handler symbol.
        constants: exported ``const char* f()`` symbol -> the comma-separated names Python uses for the same
            constants (parameter order, surrogate ids); a library whose constants differ is not used, and says
            why (``why_unavailable``).
    """

    def __init__(self, source: Path, targets: dict, constants: Optional[dict] = None):
        self.source, self.targets = Path(source), dict(targets)
        self.constants = dict(constants or {})
        self._lock = threading.Lock()
        self._state: dict = {}
        LIBRARIES.append(self)

    def _compile(self) -> Path:
        import jaxlib

        code = self.source.read_bytes() + _COMMON_HEADER.read_bytes()  # the shared header is part of the source
        cpu = platform.machine() + _cpu_flags()
        tag = hashlib.sha256(code + jaxlib.__version__.encode() + cpu.encode() + " ".join(_FLAGS).encode()).hexdigest()[:16]
        out = _cache_dir() / f"{self.source.stem}_{tag}.so"
        if out.exists():
            return out
        generic_note = out.with_suffix(".generic.txt")
        compiler = find_compiler()
        if compiler is None:
            raise RuntimeError("no C++ compiler found")
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            tmp_out = Path(tmp) / out.name
            cmd = [compiler, *_FLAGS, "-I", jax.ffi.include_dir(), str(self.source), "-o", str(tmp_out)]
            # tuned for this CPU (the cache key includes its feature flags); plain -O3 if the compiler refuses
            native = subprocess.run(cmd[:1] + ["-march=native"] + cmd[1:], capture_output=True, text=True, timeout=300)
            if native.returncode != 0:
                subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
                generic_note.write_text(native.stderr)  # why the library is not tuned (see generic_build)
            os.replace(tmp_out, out)  # atomic: concurrent processes never load a half-written library
        return out

    def available(self) -> bool:
        """Whether the library is compiled and its targets registered (compiles it on the first call)."""
        with self._lock:
            if "ok" not in self._state:
                if os.environ.get("BRAINSIM_NATIVE", "1") == "0":
                    self._state.update(ok=False, why="disabled by BRAINSIM_NATIVE=0")
                else:
                    try:
                        lib = ctypes.cdll.LoadLibrary(str(self._compile()))
                        self._check_constants(lib)
                        for target, symbol in self.targets.items():
                            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
                        self._state.update(ok=True, lib=lib)
                    except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as err:
                        stderr = getattr(err, "stderr", None)  # the compiler's messages, if it failed
                        why = f"{type(err).__name__}: {err}" + (f"\n{stderr}" if stderr else "")
                        self._state.update(ok=False, why=why)
            return self._state["ok"]

    def _check_constants(self, lib) -> None:
        for symbol, expected in self.constants.items():
            function = getattr(lib, symbol)
            function.restype = ctypes.c_char_p
            native = function().decode()
            if native != expected:
                raise RuntimeError(f"{self.source.name}: {symbol} is {native!r} in C++ but {expected!r} in Python")

    def library(self):
        """The loaded ``ctypes`` library (for plain C entry points), or None if it is unavailable."""
        return self._state.get("lib") if self.available() else None

    def why_unavailable(self) -> str:
        self.available()
        return self._state.get("why", "")

    def generic_build(self) -> str:
        """The compiler's messages when the library had to be built without ``-march=native`` (slower: no AVX on
        x86), else "". A source that does not compile for this CPU's instruction set falls back silently
        otherwise; the tests fail on it where the compiler accepts ``-march=native``."""
        if not self.available():
            return ""
        note = Path(self._state["lib"]._name).with_suffix(".generic.txt")
        return note.read_text() if note.exists() else ""


_TARGET = "brainsim_event_deliver"
_PACK_TARGET = "brainsim_pack_spikes"
_EVENTS = NativeLibrary(Path(__file__).with_name("event_deliver.cc"),
                        {_TARGET: "BrainsimEventDeliver", _PACK_TARGET: "BrainsimPackSpikes"})


def cpu_or_pure(native, pure, *args, usable: bool):
    """``native(*args)`` where the computation is lowered for CPU, ``pure(*args)`` elsewhere, and ``pure``
    everywhere if ``usable`` is false (kernel not compiled, unsupported dtypes...). The one switch every
    native kernel of brainsim goes through."""
    if not usable:
        return pure(*args)
    return jax.lax.platform_dependent(*args, cpu=native, default=pure)


def native_available() -> bool:
    """Whether the native event kernels are compiled and registered (compiles them on the first call)."""
    return _EVENTS.available()


def why_unavailable() -> str:
    return _EVENTS.why_unavailable()


def decode_spikes_native(packed):
    """``(rows, neurons)`` of the set bits of a ``numpy.packbits`` raster ``(n_rows, n_bytes)`` (host numpy),
    through the compiled library; None if it is not available or the host is big-endian."""
    lib = _EVENTS.library()
    if sys.byteorder != "little" or lib is None:
        return None
    decode = lib.brainsim_decode_spikes
    decode.restype = ctypes.c_int64
    n_rows, n_bytes = packed.shape
    pad = (-n_bytes) % 8
    if pad == 0:
        words = np.ascontiguousarray(packed).view(np.uint64)
    else:
        words = np.zeros((n_rows, (n_bytes + pad) // 8), np.uint64)
        words.view(np.uint8)[:, :n_bytes] = packed
    ptr = words.ctypes.data_as(ctypes.c_void_p)
    count = decode(ptr, ctypes.c_int64(n_rows), ctypes.c_int64(words.shape[1]), None, None)
    steps, neurons = np.empty(count, np.int64), np.empty(count, np.int32)
    decode(ptr, ctypes.c_int64(n_rows), ctypes.c_int64(words.shape[1]), steps.ctypes.data_as(ctypes.c_void_p),
           neurons.ctypes.data_as(ctypes.c_void_p))
    return steps, neurons


def event_deliver_native(g, spikes, targets, weights, row_offset: int = 0):
    """``g + spikes[row_offset:row_offset + n_pre] @ W`` through the native kernel, in place on ``g``.

    CPU only; call ``native_available()`` first.
    """
    return jax.ffi.ffi_call(_TARGET, jax.ShapeDtypeStruct(g.shape, g.dtype), input_output_aliases={0: 0},
                            vmap_method="sequential")(g, spikes, targets, weights, row_offset=np.int64(row_offset))


def pack_spikes_native(spikes):
    """``numpy.packbits(spikes != 0)`` of a float32 spike vector through the native kernel (CPU only)."""
    n_bytes = -(-spikes.shape[-1] // 8)
    return jax.ffi.ffi_call(_PACK_TARGET, jax.ShapeDtypeStruct((n_bytes,), jnp.uint8),
                            vmap_method="sequential")(spikes)


_MATMUL_TARGET = "brainsim_event_matmul"
_MATMUL_T_TARGET = "brainsim_event_matmul_t"
_MATMUL = NativeLibrary(Path(__file__).with_name("event_matmul.cc"),
                        {_MATMUL_TARGET: "BrainsimEventMatmul", _MATMUL_T_TARGET: "BrainsimEventMatmulT"})


def event_matmul_available() -> bool:
    """Whether the native event-matmul kernels are compiled and registered (compiles them on first call)."""
    return _MATMUL.available()


def event_matmul_native(x, w, max_density: float = 1.0):
    """``x @ w`` for float32 ``x (M, K)``, ``w (K, N)``, visiting only the nonzero entries of x (CPU only);
    a dense product if a sample of x is denser than ``max_density``."""
    return jax.ffi.ffi_call(_MATMUL_TARGET, jax.ShapeDtypeStruct((x.shape[0], w.shape[1]), jnp.float32),
                            vmap_method="sequential")(x, w, max_density=np.float32(max_density))


def event_matmul_t_native(x, g, max_density: float = 1.0):
    """``x.T @ g`` for float32 ``x (M, K)``, ``g (M, N)``, visiting only the nonzero entries of x (CPU only);
    a dense product if a sample of x is denser than ``max_density``."""
    return jax.ffi.ffi_call(_MATMUL_T_TARGET, jax.ShapeDtypeStruct((x.shape[1], g.shape[1]), jnp.float32),
                            vmap_method="sequential")(x, g, max_density=np.float32(max_density))


_LIF_FWD_TARGET = "brainsim_lif_forward"
_LIF_BWD_TARGET = "brainsim_lif_backward"
_LIF_LAYER = NativeLibrary(KERNEL_DIR / "lif_layer.cc",
                           {_LIF_FWD_TARGET: "BrainsimLifForward", _LIF_BWD_TARGET: "BrainsimLifBackward"},
                           {"BrainsimLifParamOrder": ",".join(LIF_PARAM_ORDER),
                            "BrainsimLifSurrogates": ",".join(NATIVE_SURROGATES)})


def lif_layer_available() -> bool:
    """Whether the fused LIF-layer kernels are compiled and registered (compiles them on first call)."""
    return _LIF_LAYER.available()


def lif_forward_native(x, w_in, b_in, v0, ref0, s0, w, p, r, **attrs):
    """Fused LIF-layer forward sweep (see ``lif_layer.cc``) over ``x``: the input currents ``(B, T, H)``, or
    with ``projected=1`` the layer input ``(B, T, K)`` projected by ``w_in`` ``(K, H)`` and ``b_in`` ``(H,)``
    inside the kernel; with ``readout=1`` a leaky-integrator readout with parameters ``r`` ``(H + 2, O)``
    (W_out rows, b_out, tau) runs behind the layer. Returns (S, V, u, frozen, x_mask, flags): S and V
    (B, T, H); u, the readout's membrane (B, T, O) (see ``lif_u_shape``); frozen (the refractory mask,
    uint8) (B, T, H); and residuals for the backward pass: the bit mask of the projected input's nonzero
    entries (see ``lif_x_mask_shape``), per-example flags (are all nonzero x 1; can no neuron ever be
    refractory: then the refractory mask is left unwritten) and the bit mask of S (see ``lif_s_bits_shape``),
    which the backward pass reads instead of S."""
    shape = x.shape[:2] + (p.shape[1],)
    out = jax.ShapeDtypeStruct(shape, jnp.float32)
    u = jax.ShapeDtypeStruct(lif_u_shape(x.shape, r.shape, bool(attrs["readout"])), jnp.float32)
    frozen = jax.ShapeDtypeStruct(shape, jnp.uint8)
    x_mask = jax.ShapeDtypeStruct(lif_x_mask_shape(x.shape, bool(attrs["projected"])), jnp.uint32)
    flags = jax.ShapeDtypeStruct(x.shape[:1], jnp.uint32)
    s_bits = jax.ShapeDtypeStruct(lif_s_bits_shape(shape), jnp.uint32)
    return jax.ffi.ffi_call(_LIF_FWD_TARGET, (out, out, u, frozen, x_mask, flags, s_bits), vmap_method="sequential")(
        x, w_in, b_in, v0, ref0, s0, w, p, r, **attrs)


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


def lif_backward_native(ct_s, ct_v, ct_u, s_bits, v, u, frozen, x_mask, flags, x, w_in, b_in, v0, s0, w, p, r,
                        **attrs):
    """Fused LIF-layer backward sweep: returns (dI, dW_in, db_in, dv0, ds0, dW, dP, dR). dI (the cotangent
    of the input currents, ``(B, T, H)``) is computed only with ``write_di=1`` (a ``(1,)`` placeholder
    otherwise); dW_in and db_in only with ``projected=1``, dW only with ``recurrent=1``, dW_in and dW as the
    two threads' parts ``(2, K, H)`` and ``(2, H, H)`` (the caller sums them); dR (the readout's ``(H + 2, O)``) only with
    ``readout=1``. With ``ct_s_zero=1`` / ``ct_v_zero=1`` the cotangent of S / V is zero and ``ct_s`` /
    ``ct_v`` may be any float32 placeholder."""
    f32 = jnp.float32
    projected = bool(attrs["projected"])
    shapes = (v.shape if attrs["write_di"] else (1,), (2,) + w_in.shape if projected else (1, 1),
              b_in.shape if projected else (1,), v0.shape, s0.shape, (2,) + w.shape if attrs["recurrent"] else (1, 1),
              p.shape,
              r.shape if attrs["readout"] else (1, 1))
    return jax.ffi.ffi_call(_LIF_BWD_TARGET, tuple(jax.ShapeDtypeStruct(sh, f32) for sh in shapes),
                            vmap_method="sequential")(ct_s, ct_v, ct_u, s_bits, v, u, frozen, x_mask, flags, x, w_in,
                                                      b_in, v0, s0, w, p, r, **attrs)


_POPULATION_TARGET = "brainsim_lif_population_step"
_POPULATION = NativeLibrary(KERNEL_DIR / "population.cc", {_POPULATION_TARGET: "BrainsimLifPopulationStep"},
                            {"BrainsimLifParamOrder": ",".join(LIF_PARAM_ORDER)})


def population_available() -> bool:
    """Whether the fused LIF-population step kernel is compiled and registered (compiles it on first call)."""
    return _POPULATION.available()


def lif_population_step_native(v, ref, p, r, i_ext, gs, *, dt: float, subtract: bool, euler: bool):
    """One in-place step of a LIF population with exponential receptors (see ``population.cc``).

    Returns ``(v, refractory, spikes, [g_k after decay])``.
    """
    n = len(gs)
    out = jax.ShapeDtypeStruct(v.shape, jnp.float32)
    aliases = {0: 0, 1: 1, **{5 + k: 3 + k for k in range(n)}}
    results = jax.ffi.ffi_call(_POPULATION_TARGET, (out,) * (3 + n), input_output_aliases=aliases,
                               vmap_method="sequential")(v, ref, p, r, i_ext, *gs, dt=np.float32(dt),
                                                         subtract=np.int64(subtract), euler=np.int64(euler))
    return results[0], results[1], results[2], list(results[3:])
