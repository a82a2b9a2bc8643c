"""Locate PyNN's system-test scenarios and run them against ``brainsim.pynn``.

``scenario_dir(tmp)`` returns the ``test/system`` directory of the PyNN sdist matching the installed PyNN
(``/tmp/pynn_src`` if unpacked there, else downloaded with pip into ``tmp``), or raises ``LookupError``.
``run_all(sim)`` calls every scenario test function with ``sim`` and returns one row per scenario.
"""
from __future__ import annotations

import glob
import importlib
import inspect
import os
import subprocess
import sys
import tarfile
import time
import traceback

# scenarios that need what brainsim cannot represent at all: (module, function) -> reason
NOT_APPLICABLE = {
    ("test_scenario5", "test_scenario5"): "multicompartment neurons (morphologies, ion channels per section)",
    ("test_synapse_types", "test_simple_stochastic_synapse"):
        "stochastic per-synapse release (SimpleStochasticSynapse): brainsim synapses release deterministically",
    ("test_recording", "test_issue259"):
        "off-grid (precise) spike times (setup(spike_precision='off_grid')): brainsim is time-driven on the dt grid",
}


def scenario_dir(tmp_dir) -> str:
    import pyNN

    version = pyNN.__version__
    for root in (f"/tmp/pynn_src/pynn-{version}", f"/tmp/pynn_src/PyNN-{version}"):
        if os.path.isdir(os.path.join(root, "test", "system", "scenarios")):
            return os.path.join(root, "test", "system")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", f"pyNN=={version}",
           "-d", str(tmp_dir)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        archive = glob.glob(os.path.join(str(tmp_dir), "*.tar.gz"))[0]
        with tarfile.open(archive) as tar:
            tar.extractall(str(tmp_dir))
        found = glob.glob(os.path.join(str(tmp_dir), "*", "test", "system", "scenarios"))[0]
        return os.path.dirname(found)
    except Exception as e:  # noqa: BLE001
        raise LookupError(f"could not get the PyNN {version} sdist with its system tests: {e}") from None


def scenario_functions(system_dir):
    """``[(module name, function name, function)]`` of every ``test_*`` scenario."""
    if system_dir not in sys.path:
        sys.path.insert(0, system_dir)
    out = []
    for path in sorted(glob.glob(os.path.join(system_dir, "scenarios", "test_*.py"))):
        mod_name = os.path.splitext(os.path.basename(path))[0]
        module = importlib.import_module(f"scenarios.{mod_name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("test_") and fn.__module__ == module.__name__:
                out.append((mod_name, name, fn))
    return out


def run_one(fn, sim):
    """``(status, reason)``: 'passed', 'failed' or 'skipped' (a scenario's own pytest.skip)."""
    import pytest

    try:
        fn(sim=sim)
        return "passed", ""
    except pytest.skip.Exception as e:
        return "skipped", str(e)
    except (Exception, pytest.fail.Exception) as e:  # noqa: BLE001
        tb = traceback.extract_tb(e.__traceback__)[-1]
        return "failed", f"{type(e).__name__}: {str(e)[:200]} ({os.path.basename(tb.filename)}:{tb.lineno})"


def run_all(system_dir, sim):
    rows = []
    for mod, name, fn in scenario_functions(system_dir):
        if (mod, name) in NOT_APPLICABLE:
            rows.append((mod, name, "not applicable", NOT_APPLICABLE[(mod, name)], 0.0))
            continue
        t0 = time.perf_counter()
        status, reason = run_one(fn, sim)
        if status == "skipped":
            status = "not applicable"
        rows.append((mod, name, status, reason, time.perf_counter() - t0))
    return rows


def table(rows) -> str:
    lines = [f"{'scenario':<62} {'result':<15} {'s':>5}  reason"]
    for mod, name, status, reason, secs in rows:
        lines.append(f"{mod + '::' + name:<62} {status:<15} {secs:5.1f}  {reason}")
    return "\n".join(lines)
