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
import tempfile
import threading
from pathlib import Path

import jax
import jax.numpy as jnp


def _cache_dir() -> Path:
    root = os.environ.get("BRAINSIM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "brainsim")
    return Path(root)


class NativeLibrary:
    """A C++ source file of XLA FFI handlers, compiled on first use and registered for CPU.

    Args:
        source: path of the ``.cc`` file (shipped as package data).
        targets: FFI target name -> exported handler symbol.
    """

    def __init__(self, source: Path, targets: dict):
        self.source, self.targets = Path(source), dict(targets)
        self._lock = threading.Lock()
        self._state: dict = {}

    def _compile(self) -> Path:
        import jaxlib

        code = self.source.read_bytes()
        tag = hashlib.sha256(code + jaxlib.__version__.encode() + platform.machine().encode()).hexdigest()[:16]
        out = _cache_dir() / f"{self.source.stem}_{tag}.so"
        if out.exists():
            return out
        compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
        if compiler is None:
            raise RuntimeError("no C++ compiler found")
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            tmp_out = Path(tmp) / out.name
            cmd = [compiler, "-O3", "-std=c++17", "-shared", "-fPIC", "-I", jax.ffi.include_dir(), str(self.source),
                   "-o", str(tmp_out)]
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
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
                        for target, symbol in self.targets.items():
                            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
                        self._state.update(ok=True, lib=lib)
                    except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as err:
                        self._state.update(ok=False, why=f"{type(err).__name__}: {err}")
            return self._state["ok"]

    def why_unavailable(self) -> str:
        self.available()
        return self._state.get("why", "")


_TARGET = "brainsim_event_deliver"
_PACK_TARGET = "brainsim_pack_spikes"
_EVENTS = NativeLibrary(Path(__file__).with_name("event_deliver.cc"),
                        {_TARGET: "BrainsimEventDeliver", _PACK_TARGET: "BrainsimPackSpikes"})


def native_available() -> bool:
    """Whether the native event kernels are compiled and registered (compiles them on the first call)."""
    return _EVENTS.available()


def why_unavailable() -> str:
    return _EVENTS.why_unavailable()


def event_deliver_native(g, spikes, targets, weights, row_offset: int = 0):
    """``g + spikes[row_offset:row_offset + n_pre] @ W`` through the native kernel, in place on ``g``.

    CPU only; call ``native_available()`` first.
    """
    import numpy as np

    return jax.ffi.ffi_call(_TARGET, jax.ShapeDtypeStruct(g.shape, g.dtype), input_output_aliases={0: 0},
                            vmap_method="sequential")(g, spikes, targets, weights, row_offset=np.int64(row_offset))


def pack_spikes_native(spikes):
    """``numpy.packbits(spikes != 0)`` of a float32 spike vector through the native kernel (CPU only)."""
    n_bytes = -(-spikes.shape[-1] // 8)
    return jax.ffi.ffi_call(_PACK_TARGET, jax.ShapeDtypeStruct((n_bytes,), jnp.uint8),
                            vmap_method="sequential")(spikes)
