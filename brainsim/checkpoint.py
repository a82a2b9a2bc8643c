"""Checkpoints of a running simulation, so that an interrupted ``simulate`` continues exactly.

A checkpoint directory holds

- ``checkpoint.npz``: the network state after the last saved chunk (every leaf of ``NetworkState``), the number
  of steps done, and ``meta``: a JSON description of the run (dt, steps, first step, the PRNG key's data, the
  monitors, the state's leaf shapes and dtypes, how many record parts are valid);
- ``records/part_NNNNNN.npz``: the host records of each chunk (what ``simulate`` collects), written as the run
  goes, so nothing recorded is lost.

Every file is written to a temporary name and renamed into place (atomic on POSIX), the record part before the
checkpoint that counts it: a run killed at any point (even by SIGKILL) leaves the last complete checkpoint and
its records. The checkpoint file is also flushed to the disk (fsync); record parts are not (3 ms a file): after a
crash of the machine itself, a lost part is reported as unreadable when resuming. Per-step randomness is ``fold_in(key, step)``, so continuing from the saved state with the same key
reproduces the uninterrupted run exactly.

The format is NumPy's ``.npz`` (plus JSON): no dependency beyond NumPy, readable anywhere, and enough for a
pytree of arrays whose structure the caller knows (the network's own ``init`` gives it); Orbax would add a
dependency and asynchronous machinery that single-host simulation checkpoints do not need.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Optional

import jax
import numpy as np

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable (truncated, corrupted) or written for another run."""


def _atomic_savez(path: Path, arrays: dict, *, sync: bool) -> None:
    """Write under a temporary name, then rename into place; ``sync`` flushes it to the disk first (so that it
    survives a crash of the machine, not only of the process)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def _leaf_arrays(state) -> list:
    leaves = jax.tree_util.tree_leaves(state)
    return [np.asarray(jax.random.key_data(x)) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
            else np.asarray(x) for x in leaves]


def describe_state(state) -> list:
    """Shapes and dtypes of the state's leaves (what a checkpoint must match)."""
    return [[list(a.shape), str(a.dtype)] for a in _leaf_arrays(state)]


class SimulationCheckpoint:
    """The checkpoint directory of one ``simulate`` run (see the module docstring).

    Args:
        directory: where the files go (created if missing).
        meta: the description of the run; a checkpoint found there must have been written with the same one.
    """

    def __init__(self, directory, meta: dict):
        self.directory = Path(directory)
        self.meta = dict(meta, format=FORMAT)
        self.parts = 0  # record parts written or loaded

    @property
    def file(self) -> Path:
        return self.directory / "checkpoint.npz"

    def exists(self) -> bool:
        return self.file.exists()

    def prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Create the directory; refuse to replace an existing checkpoint unless asked (``overwrite``) or continuing
        it (``resume``)."""
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(f"simulate: checkpoint_dir {str(self.directory)!r} exists and is not a directory")
        if self.exists() and not resume and not overwrite:
            raise CheckpointError(f"simulate: {str(self.directory)!r} already holds a checkpoint; pass resume=True to "
                                  "continue that run or overwrite=True to start again")
        (self.directory / "records").mkdir(parents=True, exist_ok=True)
        if self.exists() and overwrite and not resume:
            for part in (self.directory / "records").glob("part_*.npz"):
                part.unlink()
            self.file.unlink()

    def save_part(self, host_records: list) -> None:
        """Write one chunk's host records (a list per monitor of tuples of arrays)."""
        arrays = {}
        for j, record in enumerate(host_records):
            items = record if isinstance(record, tuple) else (record,)
            for k, a in enumerate(items):
                arrays[f"m{j}_{k}"] = np.asarray(a)
            arrays[f"m{j}_n"] = np.asarray(len(items))
        _atomic_savez(self.directory / "records" / f"part_{self.parts:06d}.npz", arrays, sync=False)
        self.parts += 1

    def save(self, state, done: int) -> None:
        """Write the state after ``done`` steps (the record parts written so far count)."""
        leaves = _leaf_arrays(state)
        arrays = {f"leaf_{i}": a for i, a in enumerate(leaves)}
        arrays["done"] = np.asarray(done)
        arrays["meta"] = np.asarray(json.dumps(dict(self.meta, parts=self.parts)))
        _atomic_savez(self.file, arrays, sync=True)

    def load(self, state_like, n_monitors: int):
        """``(state, done, collected)``: the saved state in the structure of ``state_like``, the steps done, and the
        record parts per monitor."""
        try:
            with np.load(self.file, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                done = int(data["done"])
                leaves = [data[f"leaf_{i}"] for i in range(len(jax.tree_util.tree_leaves(state_like)))]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise CheckpointError(f"simulate: the checkpoint {str(self.file)!r} is unreadable (truncated or "
                                  f"corrupted: {err}); it was left as it is. Start again with overwrite=True") from None
        parts = int(meta.pop("parts", 0))
        theirs = {k: v for k, v in meta.items()}
        for name in sorted(set(theirs) | set(self.meta)):
            if theirs.get(name) != self.meta.get(name):
                raise CheckpointError(f"simulate: the checkpoint in {str(self.directory)!r} was written for another run "
                                      f"({name}: {theirs.get(name)!r} there, {self.meta.get(name)!r} now)")
        template = jax.tree_util.tree_leaves(state_like)
        restored = []
        for like, a in zip(template, leaves):
            if jax.dtypes.issubdtype(like.dtype, jax.dtypes.prng_key):
                restored.append(jax.random.wrap_key_data(a, impl=jax.random.key_impl(like)))
            else:
                restored.append(jax.numpy.asarray(a, like.dtype))
        state = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(state_like), restored)
        collected = [[] for _ in range(n_monitors)]
        for p in range(parts):
            path = self.directory / "records" / f"part_{p:06d}.npz"
            try:
                with np.load(path, allow_pickle=False) as data:
                    for j in range(n_monitors):
                        items = tuple(data[f"m{j}_{k}"] for k in range(int(data[f"m{j}_n"])))
                        collected[j].append(items if len(items) > 1 else items[0])
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
                raise CheckpointError(f"simulate: the record part {str(path)!r} is unreadable (truncated or "
                                      f"corrupted: {err}); it was left as it is") from None
        self.parts = parts
        return state, done, collected


def run_meta(dt: float, n_steps: int, first_step: int, key, monitors, state, extra: Optional[dict] = None) -> dict:
    """The description of a ``simulate`` run that a checkpoint must match to be continued."""
    meta: dict[str, Any] = {"dt": float(dt), "n_steps": int(n_steps), "first_step": int(first_step),
                            "key": np.asarray(jax.random.key_data(key)).tolist(),
                            "monitors": [repr(m) for m in monitors], "state": describe_state(state)}
    meta.update(extra or {})
    return meta
