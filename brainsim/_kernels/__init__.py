"""The loader of brainsim's optional native CPU kernels, compiled on first use and registered as XLA FFI custom calls.

Every C++ source is in this folder (with the shared ``kernel_common.h``); ``NativeLibrary`` compiles one with the
system C++ compiler into a per-user cache (``$BRAINSIM_CACHE`` or ``~/.cache/brainsim``), keyed by the source,
jaxlib version and machine, and registers its targets. Each op's binding (its ``NativeLibrary`` and ``ffi_call``
wrappers) lives in the op's own module beside its pure-JAX reference and gradient: ``brainsim.propagation`` (event
delivery, spike packing), ``brainsim.event_matmul``, ``brainsim._population_step``, ``brainsim.fused_lif``,
``brainsim.plasticity._native`` (STDP). ``cpu_or_pure`` is the one switch between native and pure code; without a
compiler, or with ``BRAINSIM_NATIVE=0``, every op uses its pure-JAX path (which is also what runs on GPU).
Constants shared with C++ (``LIF_PARAM_ORDER``, ``ADAPTIVE_PARAM_ORDER``, ``NATIVE_SURROGATES``) are defined here once and checked against
the compiled library when it loads.
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
from typing import Optional
from pathlib import Path

import jax

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
ADAPTIVE_PARAM_ORDER = ("a", "b", "tau_w", "delta_theta", "tau_theta")  # lif_layer.cc: P's rows after those
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


def cpu_or_pure(native, pure, *args, usable: bool):
    """``native(*args)`` where the computation is lowered for CPU, ``pure(*args)`` elsewhere, and ``pure``
    everywhere if ``usable`` is false (kernel not compiled, unsupported dtypes...). The one switch every
    native kernel of brainsim goes through."""
    if not usable:
        return pure(*args)
    return jax.lax.platform_dependent(*args, cpu=native, default=pure)
