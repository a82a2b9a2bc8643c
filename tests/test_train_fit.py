"""fit (Optax loop, compile once, checkpoints, NaN handling, bad input), NNX adapter, biophysical rate fit."""
import json
import os
import signal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from brainsim.train import (LeakyReadout, NonFiniteLossError, Sequential, SpikingLayer, TrainingInterrupted, encoders,
                            fit, freeze, load_checkpoint, losses, make_train_step)


def _task(n=64, T=12, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int32)
    intensity = np.where(y[:, None] == 1, [0.9, 0.1, 0.5, 0.5], [0.1, 0.9, 0.5, 0.5]).astype(np.float32)
    x = np.asarray(jax.vmap(lambda v: encoders.direct(v, T))(jnp.asarray(intensity)))
    return x, y


def _net(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return Sequential([SpikingLayer(4, 12, key=k1, recurrent=True, scale=3.0), LeakyReadout(12, 2, key=k2)])


def _loss(model, x, y, key):
    out, _ = model(x)
    return losses.ce_max_membrane(out, y), {"accuracy": losses.accuracy_max_membrane(out, y)}


def test_train_step_reuses_compilation_and_reads_frozen_arrays():
    # a model re-partitioned before every step (new static objects, same structure) compiles once
    # (assert_max_traces(1) inside); frozen arrays in the static part are arguments, not baked constants
    x, y = _task(n=16)
    model = _net()
    spec = freeze(model, lambda m: m.layers[0].recurrent_weight)
    opt = optax.adam(1e-2)
    step = make_train_step(_loss, opt, 16)
    opt_state = opt.init(eqx.partition(model, spec)[0])
    key = jax.random.key(0)
    for _ in range(3):
        params, static = eqx.partition(model, spec)
        params, opt_state, loss, _ = step(params, static, opt_state, x, y, key)
        model = eqx.combine(params, static)
    params, static = eqx.partition(model, spec)
    louder = eqx.tree_at(lambda m: m.layers[0].recurrent_weight, static, static.layers[0].recurrent_weight * 3.0)
    _, _, loss_a, _ = step(params, static, opt_state, x, y, key)
    _, _, loss_b, _ = step(params, louder, opt_state, x, y, key)

    def reference(st):
        m = eqx.combine(params, st)
        return jnp.mean(jax.vmap(lambda a, b: _loss(m, a, b, key)[0])(x, y))

    np.testing.assert_allclose(loss_a, reference(static), rtol=1e-5)
    np.testing.assert_allclose(loss_b, reference(louder), rtol=1e-5)
    assert abs(float(loss_a) - float(loss_b)) > 1e-6


def test_train_step_fed_its_own_output_matches_a_fresh_flatten():
    # the step reuses the flat leaves of its previous output only for those very objects
    x, y = _task(n=16)
    model = _net()
    params, static = eqx.partition(model, freeze(model, lambda m: m.layers[0].recurrent_weight))
    opt = optax.adam(1e-2)
    step = make_train_step(_loss, opt, 16)
    key = jax.random.key(0)
    p1, s1, _, _ = step(params, static, opt.init(params), x, y, key)
    p2, s2, loss2, _ = step(p1, static, s1, x, y, key)  # its own output: the cached leaves
    copy = lambda tree: jax.tree_util.tree_map(lambda a: a, tree)  # new containers, same arrays
    p3, s3, loss3, _ = step(copy(p1), static, copy(s1), x, y, key)  # flattened afresh
    assert float(loss2) == float(loss3)
    for a, b in zip(jax.tree_util.tree_leaves((p2, s2)), jax.tree_util.tree_leaves((p3, s3))):
        np.testing.assert_array_equal(a, b)
    halved = jax.tree_util.tree_map(lambda a: a * 0.5, p3)  # other params with the cached opt_state
    _, _, loss4, _ = step(halved, static, s3, x, y, key)
    m = eqx.combine(halved, static)
    np.testing.assert_allclose(loss4, jnp.mean(jax.vmap(lambda a, b: _loss(m, a, b, key)[0])(x, y)), rtol=1e-5)


def test_train_step_keeps_reductions_out_of_ynnpack(monkeypatch):
    # on CPU the step is compiled with YNNPACK for matrix products only (fit._CPU_COMPILER_OPTIONS): its
    # max-over-time reduction is XLA's own loop, and the loss is the same as with XLA's defaults
    import importlib

    fit_module = importlib.import_module("brainsim.train.fit")  # the module (the package exports the function)

    if fit_module._compiler_options(jax.default_backend()) is None:
        pytest.skip("this XLA does not take the option (or the backend is not a CPU)")
    jitted = []
    real = fit_module._jit_step
    monkeypatch.setattr(fit_module, "_jit_step", lambda fn: jitted.append(real(fn)) or jitted[-1])
    # 100 steps and 20 classes: XLA's defaults would give this max over time to YNNPACK (smaller ones not)
    x = (jax.random.uniform(jax.random.PRNGKey(1), (16, 100, 4)) < 0.3).astype(jnp.float32)
    y = jax.random.randint(jax.random.PRNGKey(2), (16,), 0, 20)
    k1, k2 = jax.random.split(jax.random.key(0))
    model = Sequential([SpikingLayer(4, 12, key=k1, recurrent=True, scale=3.0), LeakyReadout(12, 20, key=k2)])
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt = optax.adam(1e-2)
    step = make_train_step(_loss, opt, 16)
    key = jax.random.key(0)
    _, _, loss, _ = step(params, static, opt.init(params), x, y, key)
    (flat_step,) = jitted
    leaves = jax.tree_util.tree_leaves((params, opt.init(params)))
    args = (leaves, jax.tree_util.tree_leaves(eqx.partition(static, eqx.is_array)[0]), x, y, key)
    hlo = flat_step.lower(*args).compile().as_text()
    assert "reduce" in hlo and not any("ynn" in line and "reduce" in line for line in hlo.splitlines())
    m = eqx.combine(params, static)
    np.testing.assert_allclose(loss, jnp.mean(jax.vmap(lambda a, b: _loss(m, a, b, key)[0])(x, y)), rtol=1e-6)


def test_fit_learns_compiles_once_and_is_reproducible(tmp_path):
    data = _task()
    ckpt = tmp_path / "ckpt.eqx"
    r1 = fit(_net(), _loss, data, optimizer=optax.adam(2e-2), epochs=6, batch_size=16, seed=3, eval_data=data,
             checkpoint_path=ckpt, progress=False)  # the train step carries assert_max_traces(1): 24 steps, one trace
    assert r1.history[-1]["train_loss"] < r1.history[0]["train_loss"]
    assert r1.history[-1]["eval_accuracy"] >= 0.9
    r2 = fit(_net(), _loss, data, optimizer=optax.adam(2e-2), epochs=6, batch_size=16, seed=3, eval_data=data, progress=False)
    for a, b in zip(jax.tree_util.tree_leaves(r1.model), jax.tree_util.tree_leaves(r2.model)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # checkpoint round trip: model + optimizer state
    model, opt_state, meta = load_checkpoint(ckpt, _net(), r1.opt_state)
    assert meta["epoch"] == r1.best_epoch
    best = jax.tree_util.tree_leaves(r1.model)  # restore_best=True: r1.model is the checkpointed one
    for a, b in zip(best, jax.tree_util.tree_leaves(model)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # resume continues after the last epoch, with the history so far
    r3 = fit(_net(), _loss, data, optimizer=optax.adam(2e-2), epochs=8, batch_size=16, seed=3, eval_data=data,
             checkpoint_path=ckpt, resume=True, progress=False)
    assert [h["epoch"] for h in r3.history] == list(range(8))
    # an existing checkpoint is not replaced without asking
    with pytest.raises(ValueError, match="already holds a checkpoint; pass resume=True"):
        fit(_net(), _loss, data, epochs=1, batch_size=16, checkpoint_path=ckpt, progress=False)
    with pytest.raises(ValueError, match="resume=True needs the checkpoint_path"):
        fit(_net(), _loss, data, epochs=1, batch_size=16, resume=True, progress=False)


@pytest.mark.parametrize("restore_best", [False, True])
def test_resumed_training_is_bitwise_the_uninterrupted_one(tmp_path, restore_best):
    data = _task()
    kwargs = dict(optimizer=optax.adam(2e-2), batch_size=16, seed=5, eval_data=data, restore_best=restore_best,
                  progress=False)
    whole = fit(_net(), _loss, data, epochs=5, **kwargs)
    ckpt = tmp_path / "ckpt.eqx"
    fit(_net(), _loss, data, epochs=2, checkpoint_path=ckpt, **kwargs)  # stopped after two epochs
    resumed = fit(_net(), _loss, data, epochs=5, checkpoint_path=ckpt, resume=True, **kwargs)
    for a, b in zip(jax.tree_util.tree_leaves((whole.model, whole.opt_state)),
                    jax.tree_util.tree_leaves((resumed.model, resumed.opt_state))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resumed.best_epoch == whole.best_epoch and resumed.n_steps == whole.n_steps
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in whole.history]


def _counting_loss(on_call):
    """``_loss`` calling ``on_call()`` from the running train step (a host callback, once per example)."""
    def loss(model, x, y, key):
        jax.debug.callback(lambda: on_call())
        return _loss(model, x, y, key)
    return loss


@pytest.fixture(scope="module")
def calls_per_step():
    calls = []
    fit(_net(), _counting_loss(lambda: calls.append(1)), _task(), batch_size=16, epochs=1, max_steps=1,
        progress=False)
    return len(calls)


def _signal_at_step(sig, at_step, calls_per_step):
    """A loss that sends ``sig`` to this process while train step ``at_step`` (counted from 1) runs."""
    calls = []

    def on_call():
        calls.append(1)
        if len(calls) == (at_step - 1) * calls_per_step + 1:
            os.kill(os.getpid(), sig)
    return _counting_loss(on_call)


@pytest.mark.parametrize("sig, at_step", [(signal.SIGINT, 7), (signal.SIGTERM, 4), (signal.SIGINT, 8)])
def test_interrupted_training_saves_its_state_and_resumes_bitwise(tmp_path, sig, at_step, calls_per_step):
    # 64 examples in batches of 16: 4 steps an epoch; step 7 stops within epoch 1, steps 4 and 8 at an epoch's end
    data = _task()
    # no eval_data: the counting loss then runs only in train steps
    kwargs = dict(optimizer=optax.adam(2e-2), batch_size=16, seed=5, epochs=4, progress=False)
    whole = fit(_net(), _loss, data, **kwargs)
    ckpt = tmp_path / "ckpt.eqx"
    with pytest.raises(TrainingInterrupted) as info:
        fit(_net(), _signal_at_step(sig, at_step, calls_per_step), data, checkpoint_path=ckpt, **kwargs)
    stop = info.value
    epoch, step = divmod(at_step, 4)
    assert (stop.signal_name, stop.epoch, stop.step) == (signal.Signals(sig).name, epoch, step)
    message = str(stop)
    assert f"interrupted by {signal.Signals(sig).name} at epoch {epoch}, step {step} of 4" in message
    assert "resume=True" in message and "\n" not in message
    resumed = fit(_net(), _loss, data, checkpoint_path=ckpt, resume=True, **kwargs)
    for a, b in zip(jax.tree_util.tree_leaves((whole.model, whole.opt_state)),
                    jax.tree_util.tree_leaves((resumed.model, resumed.opt_state))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in whole.history]
    assert resumed.n_steps == whole.n_steps == 16
    # without a checkpoint the state so far comes with the exception
    with pytest.raises(TrainingInterrupted, match="in this exception's .result") as info:
        fit(_net(), _signal_at_step(sig, 2, calls_per_step), data, **kwargs)
    assert info.value.result.model is not None


def test_early_stopping():
    data = _task()
    # the parameters never change: the epoch means differ only by the rounding of the shuffled batch order
    r = fit(_net(), _loss, data, optimizer=optax.sgd(0.0), epochs=20, batch_size=16, patience=2, progress=False)
    assert r.stopped_early and len(r.history) == 3
    # an improvement smaller than min_delta does not count
    r = fit(_net(), _loss, data, optimizer=optax.adam(1e-4), epochs=20, batch_size=16, patience=2, min_delta=10.0,
            progress=False)
    assert r.stopped_early and len(r.history) == 3 and r.best_epoch == 0
    with pytest.raises(ValueError, match="min_delta"):
        fit(_net(), _loss, data, min_delta=-1.0, progress=False)


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path):
    data = _task()

    def nan_after_a_while(model, x, y, key):
        loss, metrics = _loss(model, x, y, key)
        # becomes NaN once the readout bias has moved far enough (a few steps of large-lr SGD)
        return jnp.where(jnp.abs(model.layers[-1].projection.bias).max() > 0.5, jnp.nan, loss), metrics

    ckpt = tmp_path / "last_good.eqx"
    with pytest.raises(NonFiniteLossError, match="loss became nan") as info:
        fit(_net(), nan_after_a_while, data, optimizer=optax.sgd(0.3), epochs=30, batch_size=16,
            checkpoint_path=ckpt, progress=False)
    good_model, _ = info.value.last_good
    assert float(jnp.abs(good_model.layers[-1].projection.bias).max()) <= 0.5
    restored, _, meta = load_checkpoint(ckpt, _net(), info.value.last_good[1])
    np.testing.assert_array_equal(np.asarray(restored.layers[-1].projection.bias),
                                  np.asarray(good_model.layers[-1].projection.bias))
    assert "non-finite" in meta["reason"]


def test_fit_bad_input_messages():
    x, y = _task(n=32)
    with pytest.raises(ValueError, match="disagree on the number of examples"):
        fit(_net(), _loss, (x, y[:-1]), progress=False)
    with pytest.raises(ValueError, match=r"do not fit the model.*\(T, 4\)"):
        fit(_net(), _loss, (x[..., :3], y), progress=False)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        fit(_net(), _loss, (x, y + 5), progress=False)
    with pytest.raises(ValueError, match="fewer than one batch"):
        fit(_net(), _loss, (x, y), batch_size=64, progress=False)
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit(_net(), _loss, (bad, y), progress=False)


def test_nnx_adapter_trains_an_nnx_model():
    nnx = pytest.importorskip("flax.nnx")
    from brainsim.train.nnx import EqxModule

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.encoder = nnx.Linear(4, 8, rngs=rngs)
            k1, k2 = jax.random.split(jax.random.key(0))
            self.snn = EqxModule(Sequential([SpikingLayer(8, 16, key=k1, scale=3.0), LeakyReadout(16, 2, key=k2)]))

        def __call__(self, x):
            out, _ = self.snn(self.encoder(x))
            return out

    model = Net(nnx.Rngs(0))
    opt = nnx.Optimizer(model, optax.adam(2e-2), wrt=nnx.Param)
    x, y = _task(n=32)
    x, y = jnp.asarray(x), jnp.asarray(y)
    tau_before = np.asarray(model.snn.module.layers[0].neuron.tau_m.value)

    @nnx.jit
    def step(model, opt, x, y):
        loss, grads = nnx.value_and_grad(lambda m: jax.vmap(lambda a, b: losses.ce_max_membrane(m(a), b))(x, y).mean())(model)
        with jax.numpy_dtype_promotion("standard"):  # Optax mixes its int32 step count with float arrays
            opt.update(model, grads)
        return loss

    first = float(step(model, opt, x, y))
    for _ in range(25):
        last = float(step(model, opt, x, y))
    assert last < 0.5 * first
    assert not np.allclose(np.asarray(model.snn.module.layers[0].neuron.tau_m.value), tau_before)


def test_biophysical_rate_fit_machinery_small():
    """The benchmark's machinery (coba + spike_counts + surrogate grads through EventOperator) on n = 100."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    import fit_coba_rates as fcr
    import brainsim.networks as nets

    prepared = nets.coba(100)
    loss = fcr.make_loss(prepared, 600, 200, targets={"E": 5.0, "I": 15.0})
    (value, rates), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(jnp.zeros(4))
    assert np.all(np.isfinite(np.asarray(g))) and float(jnp.abs(g).sum()) > 0
    assert float(g[0]) != 0.0 and float(g[1]) != 0.0  # homogeneous scalar weights get gradients
    e_rate = float(rates["E"])
    # the gradient of the loss w.r.t. the E bias current points the right way
    assert (float(g[2]) > 0) == (e_rate > 5.0)
    theta, history = fcr.fit_rates(prepared, iters=3, lr=0.1, n_steps=600, record_from=200)
    assert len(history) == 3 and all(np.isfinite(h["loss"]) for h in history)
    after, trains = fcr.simulate_rates(prepared, theta, duration=200.0, skip=50.0)  # the ordinary simulator
    assert set(after) == {"E", "I"} and all(np.isfinite(v) for v in after.values())


def test_interleaved_train_step_harness_on_generated_peer_scripts(tmp_path):
    """benchmarks/train_step_interleaved.py drives brainsim's SHD step and two peers' steps in turn; the
    peers' real scripts need their own virtualenvs, so here two generated stand-ins in their format (set-up
    code, then the warm-up loop the harness cuts at) run under this interpreter."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "train_spyx.py").write_text(
        "import time\n"
        "class Done:\n    def block_until_ready(self):\n        return self\n"
        "model, opt, x, y = 1, 2, 3, 4\n"
        "def step(model, opt, x, y):\n    time.sleep(0.02)\n    return Done()\n"
        "for _ in range(3): step(model, opt, x, y).block_until_ready()\n"
        "raise SystemExit('the harness must not run the timing part')\n")
    (tmp_path / "train_snntorch.py").write_text(
        "import time\n"
        "def step():\n    time.sleep(0.2)\n"
        "for _ in range(3): step()\n"
        "raise SystemExit('the harness must not run the timing part')\n")
    script = Path(__file__).parent.parent / "benchmarks" / "train_step_interleaved.py"
    out = subprocess.run([sys.executable, str(script), "--spyx-python", sys.executable, "--snntorch-python",
                          sys.executable, "--peers", str(tmp_path), "--rounds", "2", "--steps", "2", "--warmup-s", "0.1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line.get("round") for line in lines[:2]] == [1, 2]
    for line in lines[:2]:
        assert 0.015 < line["spyx_s"] < 0.1 and 0.15 < line["snntorch_s"] < 0.6 and line["brainsim_s"] > 0
        assert abs(line["vs_spyx"] - line["brainsim_s"] / line["spyx_s"]) <= 0.05 * line["vs_spyx"]  # rounded times
    summary = lines[-1]
    assert summary["bench"] == "train_step_interleaved" and summary["rounds"] == 2
