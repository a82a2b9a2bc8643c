"""``fit``: an Optax training loop with one jitted train step, vmapped batches and checkpoints.

The user supplies a per-example loss ``loss_fn(model, x, y, key) -> loss`` or ``-> (loss, metrics)``
(``metrics`` a dict of scalars, e.g. accuracy). ``fit`` vmaps it over the batch, averages, differentiates
with respect to the trainable leaves (``filter_spec``, default ``bijections.trainable``; freeze subsets
with ``bijections.freeze``), applies the Optax update and repeats. The train step is compiled once
(guarded by ``equinox.debug.assert_max_traces``): batches all have ``batch_size`` examples (the
incomplete last batch of an epoch is dropped; evaluation pads and masks instead).

Checkpoints (``save_checkpoint`` / ``load_checkpoint``) hold the model and the optimizer state
(``equinox.tree_serialise_leaves``) plus a JSON side file with the epoch and metrics. With ``checkpoint_path``,
``fit`` writes the best model there and, after every epoch, the whole training state beside it
(``checkpoint_path + ".resume"``: model, optimizer state, best model so far, epoch, step count, early-stopping
counters, history); the data order of an epoch and every step's key depend only on ``seed``, the epoch and the
step, so ``resume=True`` continues bitwise as if never interrupted. An existing checkpoint is never replaced
unless ``resume=True`` or ``overwrite=True``. A non-finite loss stops training with ``NonFiniteLossError``; the
state before the bad step is written to the checkpoint (the last good one) and attached to the error as
``error.last_good``. Ctrl-C (SIGINT) or SIGTERM stops training after its current step with
``TrainingInterrupted`` (one line: where it stopped, what was saved, how to continue); with ``checkpoint_path``
the training state within the epoch is saved first, and ``resume=True`` continues from the next step, bitwise.
"""
from __future__ import annotations

import functools
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from .._checks import check_size
from ..interrupts import StopOnSignal
from .bijections import trainable
from .losses import check_labels
from .batch_norm import calibrate_batch_norm, has_batch_norm
from .layers import Sequential
from .maps import BATCH_AXIS, inference_mode


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss. ``last_good`` = (model, opt_state) before the bad step."""

    def __init__(self, message: str, last_good=None, checkpoint: Optional[str] = None):
        super().__init__(message)
        self.last_good = last_good
        self.checkpoint = checkpoint


class TrainingInterrupted(KeyboardInterrupt):
    """``fit`` stopped on SIGINT (Ctrl-C) or SIGTERM after finishing its current step. ``result`` holds the model
    and optimizer state after it; with ``checkpoint_path`` the whole training state is saved too, and
    ``fit(..., resume=True)`` continues exactly (bitwise) from the next step."""

    def __init__(self, message: str, *, signal_name: str, epoch: int, step: int, result: "FitResult",
                 checkpoint: Optional[str]):
        super().__init__(message)
        self.signal_name, self.epoch, self.step = signal_name, epoch, step
        self.result, self.checkpoint = result, checkpoint


@dataclass
class FitResult:
    model: Any
    opt_state: Any
    history: list = field(default_factory=list)  # one dict per epoch
    best_epoch: int = -1
    stopped_early: bool = False
    n_steps: int = 0
    train_s: float = 0.0
    compile_s: float = 0.0


def save_checkpoint(path, model, opt_state, meta: Optional[dict] = None) -> None:
    """Write ``(model, opt_state)`` leaves to ``path`` and ``meta`` to ``path + '.json'``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    eqx.tree_serialise_leaves(tmp, (model, opt_state))
    tmp.replace(path)
    Path(str(path) + ".json").write_text(json.dumps(meta or {}, default=float))


def load_checkpoint(path, model_like, opt_state_like):
    """Read a checkpoint written by ``save_checkpoint`` into the structure of ``(model_like, opt_state_like)``.

    Returns ``(model, opt_state, meta)``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"load_checkpoint: no checkpoint at {path}")
    model, opt_state = eqx.tree_deserialise_leaves(path, (model_like, opt_state_like))
    meta_path = Path(str(path) + ".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return model, opt_state, meta


def _resume_path(checkpoint_path) -> Path:
    return Path(str(checkpoint_path) + ".resume")


def _save_training_state(checkpoint_path, model, opt_state, best_state, meta: dict) -> None:
    """The whole training state after an epoch (see the module docstring), written atomically."""
    path = _resume_path(checkpoint_path)
    best = best_state if best_state is not None else (model, opt_state)
    save_checkpoint(path, (model, best[0]), (opt_state, best[1]), meta)


def _load_training_state(checkpoint_path, model_like, opt_state_like):
    (model, best_model), (opt_state, best_opt), meta = load_checkpoint(
        _resume_path(checkpoint_path), (model_like, model_like), (opt_state_like, opt_state_like))
    return model, opt_state, (best_model, best_opt), meta


def _split_loss(out):
    if isinstance(out, tuple):
        loss, metrics = out
        return loss, dict(metrics)
    return out, {}


_calibrate = eqx.filter_jit(calibrate_batch_norm)  # compiled once per model structure, not traced per evaluation


def _per_example(loss_fn, model, xb, yb, keys):
    """``loss_fn`` vmapped over a batch: per-example ``(losses, metrics)``."""
    return jax.vmap(lambda x, y, k: _split_loss(loss_fn(model, x, y, k)), axis_name=BATCH_AXIS)(xb, yb, keys)


def _check_data(data, name: str, model, n_classes: Optional[int]):
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"fit: {name} must be a pair (inputs, labels)")
    x, y = data
    leaves_x = jax.tree_util.tree_leaves(x)
    n = {int(np.shape(a)[0]) for a in leaves_x} | {int(np.shape(a)[0]) for a in jax.tree_util.tree_leaves(y)}
    if len(n) != 1:
        raise ValueError(f"fit: {name} inputs and labels disagree on the number of examples "
                         f"(leading axes {sorted(n)}); inputs are (N, T, features), labels (N, ...)")
    if hasattr(model, "check_input"):
        for a in leaves_x:
            if np.ndim(a) < 2:
                raise ValueError(f"fit: {name} inputs must be (N, T, features), got shape {np.shape(a)}")
        try:
            model.check_input(jnp.zeros(np.shape(x)[1:], jnp.float32))
        except ValueError as err:
            raise ValueError(f"fit: {name} inputs of shape {np.shape(x)} do not fit the model: {err}") from None
    y_arr = np.asarray(y)
    if n_classes is not None and np.issubdtype(y_arr.dtype, np.integer):
        check_labels(y_arr, n_classes, f"fit ({name})")
    for a in leaves_x:
        if np.issubdtype(np.asarray(a).dtype, np.floating) and not np.all(np.isfinite(a)):
            raise ValueError(f"fit: {name} inputs contain NaN or infinite values")
    return n.pop()


# XLA's CPU backend hands reductions to YNNPACK by default. For the small reductions of spiking losses
# (the max over time of a (B, T, classes) readout, its gradient's tie count) each such call costs 40-80 us,
# several times XLA's own loop. The train step keeps YNNPACK for matrix products only: 0.23 ms less per
# SHD-shaped step in an in-process A/B (benchmarks/README.md). An XLA without the option uses its defaults.
_CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


@functools.lru_cache(maxsize=None)
def _compiler_options(backend: str):
    """The train step's XLA options for ``backend`` (None: XLA's defaults), checked once per backend."""
    if backend != "cpu":
        return None
    try:
        jax.jit(lambda a: a.max(), compiler_options=_CPU_COMPILER_OPTIONS).lower(jnp.zeros(2)).compile()
    except (jax.errors.JaxRuntimeError, ValueError, TypeError):
        return None
    return _CPU_COMPILER_OPTIONS


def _jit_step(fn):
    """``jax.jit(fn)`` with the train step's compiler options for the default backend."""
    return jax.jit(fn, compiler_options=_compiler_options(jax.default_backend()))


def make_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation, batch_size: int,
                    max_traces: int = 1):
    """The jitted step ``(params, static, opt_state, xb, yb, key) -> (params, opt_state, loss, metrics)``.

    ``loss_fn(model, x, y, key)`` is per example and is vmapped over the ``batch_size`` examples of
    ``xb``/``yb``; the step is compiled once per structure of ``static`` (``assert_max_traces``).

    The step is a ``jax.jit`` of the flattened arrays. The arrays of ``static`` (e.g. frozen parameters)
    are arguments too; its other leaves and the pytree structures pick the compiled step. For the
    ``static`` object of the previous call nothing is re-partitioned or hashed: ``eqx.filter_jit`` would
    do both for every argument on every call, milliseconds of Python per step for a small network.
    Given the ``params`` and ``opt_state`` objects the previous call returned (the usual training loop), the
    step reuses their flat leaves instead of flattening them again (it keeps a reference to that output).
    On CPU it is compiled with YNNPACK for matrix products only (``_CPU_COMPILER_OPTIONS``).
    """

    def batch_loss(params, static, xb, yb, keys):
        losses, metrics = _per_example(loss_fn, eqx.combine(params, static), xb, yb, keys)
        return losses.mean(), jax.tree_util.tree_map(jnp.mean, metrics)

    def step(params, static, opt_state, xb, yb, key):
        keys = jax.random.split(key, batch_size)
        (loss, metrics), grads = jax.value_and_grad(batch_loss, has_aux=True)(params, static, xb, yb, keys)
        with jax.numpy_dtype_promotion("standard"):  # Optax mixes its int32 step count with float arrays
            updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, metrics

    traced_step = eqx.debug.assert_max_traces(step, max_traces=max_traces)  # counts traces over all structures

    def compile_for(treedef, static_def, static_rest):
        @_jit_step
        def flat_step(leaves, static_leaves, xb, yb, key):
            params, opt_state = jax.tree_util.tree_unflatten(treedef, leaves)
            full_static = eqx.combine(jax.tree_util.tree_unflatten(static_def, static_leaves), static_rest)
            params, opt_state, loss, metrics = traced_step(params, full_static, opt_state, xb, yb, key)
            return jax.tree_util.tree_leaves((params, opt_state)), loss, metrics

        return flat_step

    compiled = {}  # structure key -> jitted flat step (a few entries: one per model structure seen)
    last = {}  # the previous call's static object (held, so that its id stays unique) and what it maps to

    def prepare(static, treedef):
        static_arrays, static_rest = eqx.partition(static, eqx.is_array)
        static_leaves, static_def = jax.tree_util.tree_flatten(static_arrays)
        rest_leaves, rest_def = jax.tree_util.tree_flatten(static_rest)
        key = (treedef, static_def, rest_def, tuple(rest_leaves))
        try:
            hash(key)
        except TypeError:  # an unhashable static leaf: a step for this static object only, not kept
            flat_step = compile_for(treedef, static_def, static_rest)
        else:
            if key not in compiled:
                if len(compiled) >= 8:
                    compiled.pop(next(iter(compiled)))
                compiled[key] = compile_for(treedef, static_def, static_rest)
            flat_step = compiled[key]
        last.update(static=static, treedef=treedef, static_leaves=static_leaves, step=flat_step)

    def train_step(params, static, opt_state, xb, yb, key):
        previous = last.get("out")
        if previous is not None and previous[0] is params and previous[1] is opt_state:
            leaves, treedef = previous[2], previous[3]  # the previous step's own output: already flat
        else:
            leaves, treedef = jax.tree_util.tree_flatten((params, opt_state))
        if last.get("static") is not static or last.get("treedef") != treedef:
            prepare(static, treedef)
        new_leaves, loss, metrics = last["step"](leaves, last["static_leaves"], xb, yb, key)
        params, opt_state = jax.tree_util.tree_unflatten(treedef, new_leaves)
        last["out"] = (params, opt_state, new_leaves, treedef)
        return params, opt_state, loss, metrics

    return train_step


def fit(model, loss_fn: Callable, data, *, optimizer: Optional[optax.GradientTransformation] = None,
        epochs: int = 10, batch_size: int = 32, seed: int = 0, eval_data=None,
        filter_spec=None, patience: Optional[int] = None, monitor: Optional[str] = None,
        min_delta: float = 0.0, restore_best: bool = True, checkpoint_path=None, resume: bool = False,
        overwrite: bool = False, n_classes: Optional[int] = None, progress: bool = True,
        max_steps: Optional[int] = None, calibration_examples: int = 256) -> FitResult:
    """Train ``model`` on ``data = (x, y)`` (leading axis = examples) with Optax.

    Args:
        model: any Equinox module (e.g. ``Sequential``); its trainable leaves are chosen by ``filter_spec``.
        loss_fn: ``loss_fn(model, x, y, key) -> loss | (loss, metrics)`` for ONE example.
        optimizer: Optax transformation (default ``adam(1e-3)``).
        epochs, batch_size: passes over the data; examples per step (the last partial batch is dropped).
        seed: seeds the shuffling and the per-example keys: same seed, same result.
        eval_data: optional ``(x, y)`` evaluated after each epoch (``eval_loss``, ``eval_<metric>``), with the model
            in ``inference_mode`` (dropout off, batch norms on their running statistics).
        patience: early stopping after this many epochs without improvement of ``monitor``
            (default ``"eval_loss"`` with eval data, else ``"train_loss"``; names ending in ``accuracy``
            are maximised).
        min_delta: the least change of ``monitor`` that counts as an improvement (absolute, >= 0). A change
            within float32 rounding of the best value (relative 1e-6) never counts: the same parameters
            give epoch means that differ in the last bits when the batches come in another order.
        restore_best: return the best model seen (by ``monitor``) rather than the last.
        checkpoint_path: file to save (model, optimizer state) to after every improving epoch; the training
            state goes beside it after every epoch (``checkpoint_path + ".resume"``).
        resume: continue the training whose checkpoint is at ``checkpoint_path`` exactly where it stopped (the
            end of its last whole epoch, or the step where Ctrl-C/SIGTERM stopped it); without one, start it.
        overwrite: replace an existing checkpoint at ``checkpoint_path`` (otherwise an error).
        n_classes: check integer labels lie in ``[0, n_classes)`` (default ``model.n_out`` if present).
        max_steps: stop after this many train steps (for quick tests).
        calibration_examples: a model with ``BatchNorm`` maps gets their running statistics from this many of the
            first training examples before each evaluation and at the end (``calibrate_batch_norm``).
    """
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    epochs, batch_size = check_size(epochs, "fit", "epochs"), check_size(batch_size, "fit", "batch_size")
    patience = None if patience is None else check_size(patience, "fit", "patience")
    max_steps = None if max_steps is None else check_size(max_steps, "fit", "max_steps")
    calibration_examples = check_size(calibration_examples, "fit", "calibration_examples")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ValueError(f"fit: seed must be an integer in [0, 2**63 - 1], got {seed!r}")
    try:
        min_delta = float(min_delta)
    except (TypeError, ValueError):
        raise ValueError(f"fit: min_delta must be a number >= 0, got {min_delta!r}") from None
    if not (math.isfinite(min_delta) and min_delta >= 0.0):
        raise ValueError(f"fit: min_delta must be a finite number >= 0, got {min_delta!r}")
    if n_classes is None:
        n_classes = getattr(model, "n_out", None)
    n_train = _check_data(data, "data", model, n_classes)
    if eval_data is not None:
        _check_data(eval_data, "eval_data", model, n_classes)
    if n_train < batch_size:
        raise ValueError(f"fit: {n_train} training examples are fewer than one batch of {batch_size}")
    monitor = monitor or ("eval_loss" if eval_data is not None else "train_loss")
    maximise = monitor.endswith("accuracy")

    spec = trainable(model) if filter_spec is None else filter_spec
    params, static = eqx.partition(model, spec)
    opt_state = optimizer.init(params)
    if resume and checkpoint_path is None:
        raise ValueError("fit: resume=True needs the checkpoint_path of the training to continue")
    existing = checkpoint_path is not None and (Path(checkpoint_path).exists() or _resume_path(checkpoint_path).exists())
    if existing and not resume and not overwrite:
        raise ValueError(f"fit: {str(checkpoint_path)!r} already holds a checkpoint; pass resume=True to continue "
                         "that training or overwrite=True to replace it")
    start_epoch, restored = 0, None
    if resume and existing:
        if _resume_path(checkpoint_path).exists():
            model, opt_state, best_restored, meta = _load_training_state(checkpoint_path, model, opt_state)
            restored = (best_restored, meta)
        else:  # a checkpoint of the best model only (written by an earlier version): continue from it
            model, opt_state, meta = load_checkpoint(checkpoint_path, model, opt_state)
        params, static = eqx.partition(model, spec)
        start_epoch = int(meta.get("epoch", -1)) + 1
        if meta.get("partial") is not None:  # stopped within an epoch: continue it from the next step
            start_epoch = int(meta["partial"]["epoch"])

    train_step = make_train_step(loss_fn, optimizer, batch_size)

    @eqx.filter_jit
    def eval_step(params, static, xb, yb, mask, key):
        keys = jax.random.split(key, batch_size)  # batches are padded to batch_size
        model = inference_mode(eqx.combine(params, static))  # dropout off, whatever key loss_fn passes
        losses, metrics = _per_example(loss_fn, model, xb, yb, keys)
        w = mask / jnp.maximum(mask.sum(), 1.0)
        return jnp.sum(losses * w), jax.tree_util.tree_map(lambda a: jnp.sum(a * w), metrics), mask.sum()

    one_array = not isinstance(data[0], (tuple, list, dict)) and len(jax.tree_util.tree_leaves(data[0])) == 1
    calibrates = isinstance(model, Sequential) and has_batch_norm(model) and one_array
    if has_batch_norm(model) and not calibrates:
        warnings.warn("fit: the model has BatchNorm maps but is not a Sequential fed with one array: their running "
                      "statistics are not calibrated (call calibrate_batch_norm yourself before inference)",
                      stacklevel=2)

    def calibrated(params, static):
        """A model with batch norms: their running statistics from the first training examples (``batch_norm``)."""
        if not calibrates:
            return params, static
        examples = jnp.asarray(x_all[:calibration_examples])
        return eqx.partition(_calibrate(eqx.combine(params, static), examples), spec)

    def evaluate(params, x, y, key):  # x, y: host (numpy) arrays
        params, static_now = calibrated(params, static)
        n = len(y)
        totals, count = {}, 0.0
        for start in range(0, n, batch_size):
            idx = np.arange(start, start + batch_size)
            mask = (idx < n).astype(np.float32)
            idx = np.minimum(idx, n - 1)
            take = lambda a: jnp.asarray(a[idx])
            out = eval_step(params, static_now, jax.tree_util.tree_map(take, x), take(y), jnp.asarray(mask),
                            jax.random.fold_in(key, start))
            loss, metrics, k = jax.device_get(out)  # one transfer per batch
            k = float(k)
            for name, val in {"loss": loss, **metrics}.items():
                totals[name] = totals.get(name, 0.0) + float(val) * k
            count += k
        return {f"eval_{name}": val / count for name, val in totals.items()}

    key = jax.random.key(seed)
    x_all = jax.tree_util.tree_map(np.asarray, data[0])
    y_all = np.asarray(data[1])
    if eval_data is not None:  # on the host once, not once per evaluated batch
        x_eval, y_eval = jax.tree_util.tree_map(np.asarray, eval_data[0]), np.asarray(eval_data[1])
    steps_per_epoch = n_train // batch_size
    result = FitResult(model=eqx.combine(params, static), opt_state=opt_state)
    best, best_state, bad_epochs, n_steps, previous = None, None, 0, 0, None
    first_step, first_sums = 0, {}  # where the first epoch starts (within it, after an interrupted one)
    if restored is not None:
        (best_model, best_opt), meta = restored
        best, bad_epochs, n_steps = meta["best"], meta["bad_epochs"], meta["n_steps"]
        result.best_epoch, result.history = meta["best_epoch"], list(meta["history"])
        best_state = None if meta.get("no_best") else (eqx.partition(best_model, spec)[0], best_opt)
        if meta.get("partial") is not None:
            first_step, first_sums = int(meta["partial"]["steps"]), dict(meta["partial"]["sums"])

    def training_state(epoch, partial=None) -> dict:
        return {"epoch": epoch, "best": best, "bad_epochs": bad_epochs, "best_epoch": result.best_epoch,
                "n_steps": n_steps, "history": result.history, "no_best": best_state is None, "partial": partial}

    def save_state(meta) -> None:
        _save_training_state(checkpoint_path, eqx.combine(params, static), opt_state,
                             None if best_state is None else (eqx.combine(best_state[0], static), best_state[1]),
                             meta)

    t_start = time.perf_counter()
    epoch_bar = tqdm(range(start_epoch, epochs), disable=not progress, desc="fit", unit="epoch")
    with StopOnSignal() as stop:
        for epoch in epoch_bar:
            order = np.random.default_rng([seed, epoch]).permutation(n_train)  # this epoch's order, from the seed
            sums, t0 = dict(first_sums), time.perf_counter()
            for b in range(first_step, steps_per_epoch):
                idx = order[b * batch_size:(b + 1) * batch_size]
                xb = jax.tree_util.tree_map(lambda a: jnp.asarray(a[idx]), x_all)
                yb = jnp.asarray(y_all[idx])
                step_key = jax.random.fold_in(key, epoch * steps_per_epoch + b)
                t_call = time.perf_counter()
                new_params, new_opt_state, loss, metrics = train_step(params, static, opt_state, xb, yb, step_key)
                loss, metrics = jax.device_get((loss, metrics))  # one host transfer per step (NaN check, sums)
                loss = float(loss)
                if n_steps == 0:
                    result.compile_s = time.perf_counter() - t_call
                if not math.isfinite(loss):
                    # the current parameters gave a non-finite loss: the last good ones are those before the
                    # update that produced them (the initial ones if this is the first step)
                    good_params, good_opt_state = previous if previous is not None else (params, opt_state)
                    last_good = (eqx.combine(good_params, static), good_opt_state)
                    msg = (f"fit: loss became {loss} at epoch {epoch}, step {b}; training stopped. The last model "
                           "and optimizer state with a finite loss are in error.last_good")
                    if checkpoint_path is not None:
                        save_checkpoint(checkpoint_path, *last_good, {"epoch": epoch - 1, "step": b,
                                                                      "reason": "last good before non-finite loss"})
                        msg += f" and were saved to {checkpoint_path}"
                    raise NonFiniteLossError(msg + ".", last_good=last_good,
                                             checkpoint=None if checkpoint_path is None else str(checkpoint_path))
                previous = (params, opt_state)
                params, opt_state = new_params, new_opt_state
                n_steps += 1
                sums["loss"] = sums.get("loss", 0.0) + loss
                for name, val in metrics.items():
                    sums[name] = sums.get(name, 0.0) + float(val)
                if stop.received is not None and b + 1 < steps_per_epoch:
                    _interrupted(stop.name, epoch, b + 1, steps_per_epoch, result, params, opt_state, static,
                                 checkpoint_path, lambda: save_state(training_state(
                                     epoch - 1, {"epoch": epoch, "steps": b + 1, "sums": sums})))
                if max_steps is not None and n_steps >= max_steps:
                    break
            first_step, first_sums = 0, {}
            n_done = b + 1
            record = {"epoch": epoch, **{f"train_{k}": v / n_done for k, v in sums.items()},
                      "epoch_s": time.perf_counter() - t0}
            if eval_data is not None:
                record.update(evaluate(params, x_eval, y_eval,
                                       jax.random.fold_in(jax.random.fold_in(key, 2**31 - 1), epoch)))
            result.history.append(record)
            epoch_bar.set_postfix({k: round(v, 4) for k, v in record.items() if k != "epoch"})
            score = record.get(monitor)
            if score is None:
                raise ValueError(f"fit: monitor {monitor!r} is not among the metrics {sorted(record)}")
            margin = max(float(min_delta), 1e-6 * abs(best)) if best is not None else 0.0
            improved = best is None or (score > best + margin if maximise else score < best - margin)
            if improved:
                best, bad_epochs, result.best_epoch = score, 0, epoch
                best_state = (params, opt_state)
                if checkpoint_path is not None:  # (batch norms calibrated, as the returned model)
                    save_checkpoint(checkpoint_path, eqx.combine(*calibrated(params, static)), opt_state, record)
            else:
                bad_epochs += 1
            if checkpoint_path is not None:
                save_state(training_state(epoch))
            finished = (epoch + 1 == epochs or (max_steps is not None and n_steps >= max_steps)
                        or (patience is not None and bad_epochs >= patience))
            if stop.received is not None and not finished:
                _interrupted(stop.name, epoch + 1, 0, steps_per_epoch, result, params, opt_state, static,
                             checkpoint_path, None)
            if max_steps is not None and n_steps >= max_steps:
                break
            if patience is not None and bad_epochs >= patience:
                result.stopped_early = True
                break
    epoch_bar.close()
    if restore_best and best_state is not None:
        params, opt_state = best_state
    result.model, result.opt_state = eqx.combine(*calibrated(params, static)), opt_state
    result.n_steps = n_steps
    result.train_s = time.perf_counter() - t_start
    return result


def _interrupted(signal_name, epoch, step, steps_per_epoch, result, params, opt_state, static, checkpoint_path,
                 save) -> None:
    """Raise ``TrainingInterrupted`` at ``step`` of ``epoch`` (the steps before it done), saving first."""
    result.model, result.opt_state = eqx.combine(params, static), opt_state
    if save is not None and checkpoint_path is not None:
        save()
    where = (f"training state saved to {str(_resume_path(checkpoint_path))!r}: continue with fit(..., "
             f"checkpoint_path={str(checkpoint_path)!r}, resume=True)" if checkpoint_path is not None else
             "the model and optimizer state so far are in this exception's .result (give checkpoint_path= to keep "
             "them on disk)")
    raise TrainingInterrupted(f"fit: interrupted by {signal_name} at epoch {epoch}, step {step} of {steps_per_epoch}; "
                              f"{where}", signal_name=signal_name, epoch=epoch, step=step, result=result,
                              checkpoint=None if checkpoint_path is None else str(checkpoint_path))
