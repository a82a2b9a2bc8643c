"""The main job: `brainsim run ...` prints a summary, writes PNG + npz; mistakes exit 2 with one line."""
import json
import subprocess
import sys

import numpy as np
import pytest

from brainsim.cli import main


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "brainsim", *args], capture_output=True, text=True, timeout=300)


def test_run_writes_summary_plot_and_data(tmp_path, capsys):
    assert main(["run", "coba", "--n", "400", "--duration", "50", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for field in ("neurons", "synapses", "rate_E_hz", "rate_I_hz", "cv_isi", "compile_s", "run_s"):
        assert field in summary
    assert summary["neurons"] == 400
    data = np.load(tmp_path / "coba_n400.npz")
    assert data["spikes/P/times_ms"].shape == data["spikes/P/indices"].shape
    png = (tmp_path / "coba_n400.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_run_brunel_in_a_state(tmp_path, capsys):
    assert main(["run", "brunel", "--state", "SI-slow", "--n", "500", "--duration", "100", "--out", str(tmp_path),
                 "--json", "--no-plot"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["neurons"] == 500 and summary["synapses"] == 500 * 50  # C_E + C_I = 0.1 N
    assert summary["rate_hz"] > 0 and (tmp_path / "brunel_n500.npz").exists()


def test_run_microcircuit_reports_every_population(tmp_path, capsys):
    assert main(["run", "microcircuit", "--scale", "0.02", "--duration", "100", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert all(f"rate_{name}_hz" in summary for name in ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I"))
    for name in ("microcircuit_scale0.02.npz", "microcircuit_scale0.02.png", "microcircuit_scale0.02_rates.png"):
        assert (tmp_path / name).exists(), name


@pytest.mark.parametrize("args, message", [
    (["run", "cobra"], "invalid choice: 'cobra'"),
    (["run", "coba", "--duration", "-5"], "--duration must be > 0"),
    (["run", "coba", "--dt", "0"], "--dt must be > 0"),
    (["run", "coba", "--n", "abc"], "--n must be an integer"),
    (["run", "coba", "--n", "3"], "--n must be at least 10"),
    (["run", "coba", "--duration", "0.01"], "shorter than one step"),
    (["run", "coba", "--duration", "1.05", "--dt", "0.1"], "not a whole number of steps"),
    (["run", "coba", "--seed", "99999999999999999999"], "--seed must be an integer in [0, 9223372036854775807]"),
    (["run", "coba", "--seed", "-1"], "--seed must be an integer in [0,"),
    (["run", "coba", "--n", "100000000000"], "needs about"),
    (["run", "coba", "--out", "/proc/version"], "exists and is not a directory"),
    (["run"], "the following arguments are required: network (or --resume OUT)"),
    (["run", "coba", "--resume", "somewhere"], "not both"),
    (["run", "coba", "--state", "AI"], "--state applies to brunel only, not coba"),
    (["run", "coba", "--scale", "0.5"], "--scale applies to microcircuit only, not coba"),
    (["run", "microcircuit", "--n", "500"], "--n does not apply to microcircuit"),
    (["run", "microcircuit", "--scale", "2"], "--scale must be in (0, 1]"),
    (["run", "brunel", "--state", "XY"], "invalid choice: 'XY'"),
    (["run", "brunel", "--n", "20"], "n must be at least 50 neurons"),
])
def test_mistakes_exit_2_with_one_line(args, message):
    proc = _cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
