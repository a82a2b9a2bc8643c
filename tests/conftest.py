import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def native_kernels():
    """For native-vs-reference tests, which would otherwise silently compare the pure-JAX reference with
    itself: every native kernel library must build and register. Where a C++ compiler is present (the one
    the loader in ``brainsim._kernels`` uses) and a library does not build, the test FAILS with the loader's
    reason; without a compiler (or with ``BRAINSIM_NATIVE=0``) it is skipped."""
    from brainsim import _kernels
    from brainsim.plasticity import _native  # noqa: F401  (creates the STDP library)

    names = {lib.source.stem for lib in _kernels.LIBRARIES}
    expected = {path.stem for path in _kernels.KERNEL_DIR.glob("*.cc")}  # every C++ source is one library
    assert expected == names, f"C++ sources without a library or libraries without a source: {sorted(expected ^ names)}"
    broken = {lib.source.name: lib.why_unavailable() for lib in _kernels.LIBRARIES if not lib.available()}
    if not broken:
        return
    if os.environ.get("BRAINSIM_NATIVE", "1") == "0":
        pytest.skip("native kernels disabled by BRAINSIM_NATIVE=0")
    compiler = _kernels.find_compiler()
    if compiler is None:
        pytest.skip("no C++ compiler ($CXX, g++, c++ or clang++) to build the native kernels")
    pytest.fail(f"a C++ compiler is present ({compiler}) but native kernels did not build:\n"
                + "\n".join(f"{name}: {why}" for name, why in broken.items()), pytrace=False)


@pytest.fixture(scope="session")
def native(request):
    """``@pytest.mark.parametrize("native", [True, False], indirect=True)``: the test gets the flag, and with
    True it also needs ``native_kernels`` (fails where the kernels should build but do not)."""
    if request.param:
        request.getfixturevalue("native_kernels")
    return request.param
