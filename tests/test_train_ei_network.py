"""The biophysical E/I network of ``brainsim.networks.evidence``: task, gradients (finite differences in float64 on a
smooth path; Checkpointed == Direct on the spiking path) and the small mode of its benchmark."""
import json
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from brainsim.adjoints import Checkpointed, Direct
from brainsim.networks import evidence
from brainsim.simulate import StateMonitor, run

SMALL = evidence.EvidenceTask(n_cues=3, cue_ms=20.0, gap_ms=10.0, delay_ms=20.0, decision_ms=10.0, dt=1.0, n_group=4)


def test_trials_have_majority_labels_and_cue_spikes():
    task = evidence.EvidenceTask(n_cues=5, cue_ms=50.0, gap_ms=20.0, delay_ms=50.0, decision_ms=30.0, dt=1.0,
                                 cue_hz=200.0)
    x, y = evidence.make_trials(jax.random.key(0), 64, task)
    assert x.shape == (64, task.n_steps, 4 * task.n_group) and set(np.unique(np.asarray(x))) <= {0.0, 1.0}
    g = task.n_group
    cue_steps = task.n_cues * task.steps(70.0)
    left = np.asarray(x[:, :cue_steps, :g].sum(axis=(1, 2)))
    right = np.asarray(x[:, :cue_steps, g:2 * g].sum(axis=(1, 2)))
    assert np.mean((right > left) == (np.asarray(y) == 1)) > 0.9  # labels follow the cue counts
    assert 0.25 < float(np.mean(np.asarray(y))) < 0.75
    decision = np.asarray(x[:, task.decision_start:, 2 * g:3 * g]).sum()
    assert decision > 0 and np.asarray(x[:, :task.decision_start, 2 * g:3 * g]).sum() == 0
    with pytest.raises(ValueError, match="n_cues must be a positive odd number"):
        evidence.EvidenceTask(n_cues=4)


def test_gradients_match_finite_differences_in_float64():
    # a smooth path: thresholds out of reach (the triangle surrogate is exactly 0 there), so the loss -- the E and I
    # membrane potentials over the trial -- is a smooth function of the weights and time constants
    with jax.enable_x64(True):
        template, params = evidence.ei_network(jax.random.key(1), SMALL, n_e=16, n_i=4, p_rec=0.2, p_in=0.5,
                                               p_out=0.5, surrogate="triangle")
        template = eqx.tree_at(lambda n: (n.populations["E"].model.v_th, n.populations["I"].model.v_th), template,
                               (jnp.full((16,), 100.0), jnp.full((4,), 100.0)))
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        flat, unravel = jax.flatten_util.ravel_pytree(params)
        x, _ = evidence.make_trials(jax.random.key(2), 1, SMALL)
        x = jnp.asarray(x[0], jnp.float64)

        def loss(p, adjoint=Checkpointed()):
            net = evidence.apply(p, template, x)
            _, (ve, vi) = run(net, net.init(SMALL.dt), SMALL.n_steps, SMALL.dt, key=jax.random.key(0),
                              monitors=[StateMonitor("E", "v"), StateMonitor("I", "v")], adjoint=adjoint)
            return jnp.mean((ve + 60.0) ** 2) + jnp.mean((vi + 60.0) ** 2)

        grads = jax.grad(loss)(params)
        loss_at = jax.jit(lambda flat: loss(unravel(flat)))  # one compilation for all the evaluations
        np.testing.assert_allclose(np.asarray(jax.grad(lambda p: loss(p, Direct()))(params)["tau_m_E"]),
                                   np.asarray(grads["tau_m_E"]), rtol=1e-10)
        g_flat, _ = jax.flatten_util.ravel_pytree(grads)
        nonzero = np.flatnonzero(np.abs(np.asarray(g_flat)) > 1e-8)
        assert len(nonzero) > 20
        rng = np.random.default_rng(0)
        eps = 1e-5
        for i in rng.choice(nonzero, 12, replace=False):
            e = jnp.zeros_like(flat).at[i].set(eps)
            fd = (loss_at(flat + e) - loss_at(flat - e)) / (2 * eps)
            np.testing.assert_allclose(float(g_flat[i]), float(fd), rtol=1e-5, atol=1e-9)


def test_spiking_gradients_reach_every_parameter_and_checkpointing_is_exact():
    template, params = evidence.ei_network(jax.random.key(3), SMALL, n_e=40, n_i=10, p_rec=0.2)
    x, y = evidence.make_trials(jax.random.key(4), 4, SMALL)
    def grad(adjoint):  # one program each (eager grad dispatches op by op: twice the time)
        return jax.jit(jax.grad(lambda p: evidence.loss_fn(p, template, x, y, SMALL, adjoint=adjoint)[0]))(params)

    g_ckpt, g_direct = grad(Checkpointed()), grad(Direct())
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g_ckpt), jax.tree_util.tree_leaves(g_direct)):
        assert np.all(np.isfinite(np.asarray(a))), path
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-7, err_msg=str(path))
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree_util.tree_leaves(g_ckpt))


def test_benchmark_small_mode(tmp_path):
    script = Path(__file__).parent.parent / "benchmarks" / "train_ei_network.py"
    out = subprocess.run([sys.executable, str(script), "--small", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("test_accuracy", "n_neurons", "density", "steps", "train_s", "peak_rss_mb"):
        assert key in result
    assert result["n_neurons"] >= 400 and result["density"] <= 0.2 and result["memory_ratio"] < 1.0
    assert (tmp_path / "train_ei_network.png").stat().st_size > 10_000
