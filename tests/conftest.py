import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402
import pytest  # noqa: E402

# Implicit promotion between different dtypes (int32 + float32 arrays, bfloat16 + float32, ...) raises in the tests:
# brainsim casts where it means to. Python scalars still adapt to the array they meet (weak types).
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture(scope="session")
def native_kernels():
    """For native-vs-reference tests, which would otherwise silently compare the pure-JAX reference with
    itself: every native kernel library must build and register. Where a C++ compiler is present (the one
    the loader in ``brainsim._kernels`` uses) and a library does not build, the test FAILS with the loader's
    reason; without a compiler (or with ``BRAINSIM_NATIVE=0``) it is skipped."""
    import brainsim.train  # noqa: F401  (every op module that defines a NativeLibrary, e.g. fused_lif)
    from brainsim import _kernels
    from brainsim.plasticity import _native  # noqa: F401  (creates the STDP library)

    names = {lib.source.stem for lib in _kernels.LIBRARIES}
    expected = {path.stem for path in _kernels.KERNEL_DIR.glob("*.cc")}  # every C++ source is one library
    assert expected == names, f"C++ sources without a library or libraries without a source: {sorted(expected ^ names)}"
    broken = {lib.source.name: lib.why_unavailable() for lib in _kernels.LIBRARIES if not lib.available()}
    if not broken:
        generic = {lib.source.name: lib.generic_build() for lib in _kernels.LIBRARIES if lib.generic_build()}
        if generic and _accepts_march_native(_kernels.find_compiler()):
            pytest.fail("native kernels built without -march=native (slow generic code) because the source does not "
                        "compile for this CPU:\n" + "\n".join(f"{n}: {msg[:2000]}" for n, msg in generic.items()),
                        pytrace=False)
        return
    if os.environ.get("BRAINSIM_NATIVE", "1") == "0":
        pytest.skip("native kernels disabled by BRAINSIM_NATIVE=0")
    compiler = _kernels.find_compiler()
    if compiler is None:
        pytest.skip("no C++ compiler ($CXX, g++, c++ or clang++) to build the native kernels")
    pytest.fail(f"a C++ compiler is present ({compiler}) but native kernels did not build:\n"
                + "\n".join(f"{name}: {why}" for name, why in broken.items()), pytrace=False)


def _accepts_march_native(compiler) -> bool:
    """Whether the compiler builds a trivial C++ file with -march=native (some compilers or CPUs refuse it)."""
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "t.cc"
        src.write_text("int f() { return 0; }\n")
        cmd = [compiler, "-march=native", "-O1", "-c", str(src), "-o", str(Path(tmp) / "t.o")]
        return subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def native(request):
    """``@pytest.mark.parametrize("native", [True, False], indirect=True)``: the test gets the flag, and with
    True it also needs ``native_kernels`` (fails where the kernels should build but do not)."""
    if request.param:
        request.getfixturevalue("native_kernels")
    return request.param
