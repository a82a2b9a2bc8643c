"""Nothing lost: interrupted simulations continue exactly, checkpoints are never silently replaced or misread.

- A COBA run in a child process is stopped by SIGINT, SIGTERM or SIGKILL at a random point (after its first
  checkpoint) and resumed in a new process: its spikes are identical to an uninterrupted run's and the time axis
  is continuous (SIGINT/SIGTERM end with one line and exit codes 130/143; SIGKILL leaves the last checkpoint);
- Ctrl-C inside a session stops ``simulate`` after its chunk with the state and the records so far;
- a truncated or corrupted checkpoint gives a clear error and is left as it is; a checkpoint of another run is
  refused naming what differs; an existing checkpoint is not replaced without ``overwrite=True``;
- the CLI resumes with ``brainsim run --resume OUT``.
"""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from typing import ClassVar

import jax
import numpy as np
import pytest

from brainsim import CheckpointError, SimulationInterrupted
from brainsim.monitors import AbstractMonitor, SpikeMonitor
from brainsim.networks import build
from brainsim.simulate import simulate

N, DURATION, CHUNK = 1000, 10000.0, 500  # 100 000 steps in 200 chunks (a few seconds)

CHILD = textwrap.dedent("""
    import sys, jax
    from brainsim.networks import build
    from brainsim.simulate import SimulationInterrupted, SpikeMonitor, simulate
    out, resume = sys.argv[1], sys.argv[2] == "1"
    prepared = build("coba", n={n}, dt=0.1, key=jax.random.key(7))
    try:
        result = simulate(prepared.network, {duration}, 0.1, key=jax.random.key(8), state=prepared.state,
                          monitors=[SpikeMonitor("P")], chunk_steps={chunk}, progress=False,
                          checkpoint_dir=out + "/checkpoint", resume=resume)
    except SimulationInterrupted as stop:
        print(stop, file=sys.stderr)
        sys.exit(143 if stop.signal_name == "SIGTERM" else 130)
    result.save(out + "/spikes.npz")
""").format(n=N, duration=DURATION, chunk=CHUNK)


def _child(out, resume):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(out), "1" if resume else "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _spikes(path):
    data = np.load(path)
    return data["spikes/P/times_ms"], data["spikes/P/indices"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    proc = _child(out, False)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    times, indices = _spikes(out / "spikes.npz")
    assert len(times) > 1000
    return times, indices


def _wait_for_chunks(proc, out, n_chunks):
    """Wait until the run in ``proc`` has saved the records of ``n_chunks`` chunks (its progress, not a time)."""
    records = out / "checkpoint" / "records"
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if records.is_dir() and sum(1 for _ in records.glob("part_*.npz")) >= n_chunks:
            return
        time.sleep(0.002)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_killed_and_resumed_runs_give_identical_spikes(sig, uninterrupted, tmp_path):
    proc = _child(tmp_path, False)
    n_chunks = round(DURATION / 0.1) // CHUNK
    _wait_for_chunks(proc, tmp_path, random.Random(int(sig)).randint(1, n_chunks // 2))  # a random point of the run
    proc.send_signal(sig)
    code = proc.wait(timeout=300)
    stderr = proc.stderr.read()
    if code == 0:
        pytest.skip("the run ended before the signal arrived")  # (a very fast machine)
    if sig != signal.SIGKILL:
        assert code == (130 if sig == signal.SIGINT else 143), stderr
        line = stderr.strip().splitlines()[-1]
        assert f"interrupted by {signal.Signals(sig).name}" in line and "resume=True" in line
        assert "Traceback" not in stderr
    resumed = _child(tmp_path, True)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    times, indices = _spikes(tmp_path / "spikes.npz")
    np.testing.assert_array_equal(times, uninterrupted[0])  # the same spikes at the same times from t = 0
    np.testing.assert_array_equal(indices, uninterrupted[1])


@dataclass(frozen=True)
class CtrlC(AbstractMonitor):
    """Presses Ctrl-C (sends SIGINT to this process) when the chunk starting at step ``at`` reaches the host."""

    population: str
    at: int
    section: ClassVar[str] = "rates"

    def for_simulate(self):
        return self

    def init(self, size, n_steps):
        return None

    def update(self, acc, i, before, after, spikes, dt):
        return acc, spikes.sum()

    def finish(self, acc, ys, n_steps):
        return ys

    def record_sequence(self, steps, before, after, spikes, dt):
        return spikes.sum(-1)

    def to_host(self, record, first_step, dt):
        if first_step == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return super().to_host(record, first_step, dt)


def _small():
    return build("coba", n=400, dt=0.1, key=jax.random.key(1))


def test_ctrl_c_stops_after_the_chunk_with_state_and_records(tmp_path):
    prepared = _small()
    handler = signal.getsignal(signal.SIGINT)
    kwargs = dict(key=jax.random.key(2), state=prepared.state, chunk_steps=100, progress=False)
    with pytest.raises(SimulationInterrupted, match=r"interrupted by SIGINT at t = 30 ms \(step 300 of 1000\)") as err:
        simulate(prepared.network, 100.0, 0.1, monitors=[SpikeMonitor("P"), CtrlC("P", at=100)], **kwargs,
                 checkpoint_dir=tmp_path / "ck")
    stop = err.value
    assert isinstance(stop, KeyboardInterrupt) and int(stop.state.step) == 300 and stop.result.duration == 30.0
    assert stop.checkpoint_dir == str(tmp_path / "ck")
    whole = simulate(prepared.network, 100.0, 0.1, monitors=[SpikeMonitor("P")], **kwargs)
    early = whole.spikes["P"].times < 30.0
    np.testing.assert_array_equal(stop.result.spikes["P"].times, whole.spikes["P"].times[early])
    assert signal.getsignal(signal.SIGINT) is handler  # the handler is put back


def test_checkpoint_errors_leave_files_as_they_are(tmp_path):
    prepared = _small()
    kwargs = dict(key=jax.random.key(2), state=prepared.state, chunk_steps=100, progress=False,
                  monitors=[SpikeMonitor("P")])
    directory = tmp_path / "ck"
    done = simulate(prepared.network, 50.0, 0.1, checkpoint_dir=directory, **kwargs)
    with pytest.raises(CheckpointError, match="already holds a checkpoint; pass resume=True"):
        simulate(prepared.network, 50.0, 0.1, checkpoint_dir=directory, **kwargs)
    again = simulate(prepared.network, 50.0, 0.1, checkpoint_dir=directory, resume=True, **kwargs)  # nothing to run
    np.testing.assert_array_equal(again.spikes["P"].times, done.spikes["P"].times)
    with pytest.raises(CheckpointError, match=r"another run \(n_steps: 500 there, 600 now\)"):
        simulate(prepared.network, 60.0, 0.1, checkpoint_dir=directory, resume=True, **kwargs)
    with pytest.raises(CheckpointError, match="another run \\(key"):
        simulate(prepared.network, 50.0, 0.1, checkpoint_dir=directory, resume=True,
                 **dict(kwargs, key=jax.random.key(3)))
    file = directory / "checkpoint.npz"
    content = file.read_bytes()
    file.write_bytes(content[: len(content) // 2])  # truncated
    with pytest.raises(CheckpointError, match="unreadable \\(truncated or corrupted"):
        simulate(prepared.network, 50.0, 0.1, checkpoint_dir=directory, resume=True, **kwargs)
    assert file.read_bytes() == content[: len(content) // 2]
    with pytest.raises(ValueError, match="resume=True needs the checkpoint_dir"):
        simulate(prepared.network, 50.0, 0.1, resume=True, **kwargs)
    fresh = simulate(prepared.network, 50.0, 0.1, checkpoint_dir=directory, overwrite=True, **kwargs)
    np.testing.assert_array_equal(fresh.spikes["P"].times, done.spikes["P"].times)


def test_cli_resume(tmp_path):
    from brainsim.cli import main

    out = tmp_path / "run"
    assert main(["run", "coba", "--n", "400", "--duration", "40", "--out", str(out), "--json", "--no-plot"]) == 0
    whole = _spikes(out / "coba_n400.npz")
    # the kept checkpoint is complete: resuming it writes the same spikes again
    assert main(["run", "--resume", str(out), "--json", "--no-plot"]) == 0
    again = _spikes(out / "coba_n400.npz")
    np.testing.assert_array_equal(whole[0], again[0])
    proc = subprocess.run([sys.executable, "-m", "brainsim", "run", "--resume", str(tmp_path / "nothing")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "no interrupted run there" in proc.stderr and "Traceback" not in proc.stderr
