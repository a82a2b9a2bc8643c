"""A biophysical E/I network trained end to end on evidence accumulation (Morcos & Harvey 2016; Bellec et al. 2020).

The task: during the cue period ``n_cues`` cues of ``cue_ms`` ms (gaps of ``gap_ms`` ms) come from the left or the
right, each side with probability 1/2; after a delay of ``delay_ms`` ms a decision cue of ``decision_ms`` ms asks
which side gave more cues (``n_cues`` is odd; chance is 1/2). Inputs are Poisson spike trains of 4 groups of
``n_group`` neurons: left cues, right cues, the decision cue, and background noise.

The network (``ei_network``) is an ordinary ``brainsim.Network``:

- ``"in"``: the input spikes, a ``Signal`` population replaying one trial;
- ``"E"``: ``n_e`` conductance-based adaptive-threshold LIF neurons (``AdaptiveLIF``), ``"I"``: ``n_i``
  conductance-based LIF neurons (80 % / 20 %), with AMPA (``ge``, 0 mV) and GABA_A (``gi``, -80 mV) receptors
  and a constant bias current;
- ``"out"``: 2 non-firing leaky integrators (``LIF`` with an unreachable threshold) reading out the E spikes
  through current synapses; the decision is the one with the higher mean membrane potential during the decision
  cue;
- event-driven projections (``EventProjection``) with sparse fixed-probability connectivity: in -> E, in -> I,
  E -> E, E -> I, I -> E, I -> I, E -> out. Dale's law holds by construction: every weight is a conductance
  (nS) or, for the readout, a current amplitude (pA) kept >= 0 (``exp`` of a free parameter), and the sign of
  a neuron's effect is that of its receptor's reversal potential.

Trainable parameters (``params``, a dict of unconstrained arrays, all positive quantities stored as their
logarithm): every synaptic weight, the membrane time constants of E and I (ms), the threshold-adaptation time
constant of E (ms) and the readout time constant (ms; initially 5 s: the readout starts as a nearly perfect
integrator of the E activity over the trial, and may learn to forget). The loss is the cross-entropy of the readout during the decision cue plus a penalty on
E and I rates away from ``target_hz``; its gradient goes through the whole trial (``brainsim.simulate.run``
with a ``Checkpointed`` adjoint: exact full-length gradients in O(sqrt(T)) memory).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import connectivity as conn
from ..adjoints import AbstractAdjoint, Checkpointed
from ..core.parameters import Exp
from ..inputs import CurrentStep
from ..network import Network, Population
from ..neurons import LIF, AdaptiveLIF
from ..plasticity.modulators import Signal
from ..projections import EventProjection
from ..propagation import EventOperator
from ..simulate import CountMonitor, StateMonitor, run
from ..synapses import AMPA, GABA_A, CurrentOutput, Exponential, Receptor

PROJECTIONS = ("inE", "inI", "EE", "EI", "IE", "II", "Eout")
_TAU = Exp()  # time constants (ms) stored as their logarithm: updates are relative, as for the weights


@dataclass(frozen=True)
class EvidenceTask:
    """Timing (ms) and input statistics (Hz) of the evidence-accumulation task."""

    n_cues: int = 5
    cue_ms: float = 100.0
    gap_ms: float = 50.0
    delay_ms: float = 250.0
    decision_ms: float = 100.0
    n_group: int = 10  # input neurons per group (left, right, decision, noise)
    cue_hz: float = 40.0
    noise_hz: float = 10.0
    dt: float = 1.0  # ms

    def __post_init__(self):
        if self.n_cues < 1 or self.n_cues % 2 == 0:
            raise ValueError(f"EvidenceTask: n_cues must be a positive odd number (a majority exists), got {self.n_cues}")
        for name in ("cue_ms", "decision_ms", "dt"):
            if not getattr(self, name) > 0:
                raise ValueError(f"EvidenceTask: {name} must be > 0 ms, got {getattr(self, name)}")

    def steps(self, ms: float) -> int:
        return int(round(ms / self.dt))

    @property
    def n_steps(self) -> int:
        return self.steps(self.n_cues * (self.cue_ms + self.gap_ms) + self.delay_ms + self.decision_ms)

    @property
    def decision_start(self) -> int:
        return self.n_steps - self.steps(self.decision_ms)

    @property
    def duration_ms(self) -> float:
        return self.n_steps * self.dt

    @property
    def n_inputs(self) -> int:
        return 4 * self.n_group


def make_trials(key, n_trials: int, task: EvidenceTask = EvidenceTask()):
    """``(spikes (n_trials, T, 4 n_group) float32, labels (n_trials,) int32: 0 = left, 1 = right)``."""
    k_side, k_spikes = jax.random.split(key)
    sides = jax.random.bernoulli(k_side, 0.5, (n_trials, task.n_cues)).astype(jnp.int32)  # 1 = right
    labels = (2 * sides.sum(axis=1) > task.n_cues).astype(jnp.int32)
    T, g = task.n_steps, task.n_group
    t = np.arange(T)
    period = task.steps(task.cue_ms + task.gap_ms)
    cue_index = np.minimum(t // period, task.n_cues - 1)
    in_cue = (t < task.n_cues * period) & ((t % period) < task.steps(task.cue_ms))
    rate = np.zeros((T, 4))
    rate[:, 3] = task.noise_hz
    rate[task.decision_start:, 2] = task.cue_hz
    side_now = jnp.take(sides, jnp.asarray(cue_index), axis=1)  # (n, T)
    on = jnp.asarray(in_cue)[None, :]
    rates = jnp.broadcast_to(jnp.asarray(rate, jnp.float32), (n_trials, T, 4))
    rates = rates.at[:, :, 0].set(jnp.where(on & (side_now == 0), task.cue_hz, 0.0))
    rates = rates.at[:, :, 1].set(jnp.where(on & (side_now == 1), task.cue_hz, 0.0))
    p = jnp.repeat(rates, g, axis=2) * (task.dt / 1000.0)
    spikes = (jax.random.uniform(k_spikes, p.shape, p.dtype) < p).astype(jnp.float32)
    return spikes, labels


def _sparse(key, n_pre, n_post, p, w):
    return EventOperator.from_sparse(conn.fixed_probability(key, n_pre, n_post, p, w))


def ei_network(key, task: EvidenceTask = EvidenceTask(), *, n_e: int = 320, n_i: int = 80, p_rec: float = 0.1,
               p_in: float = 0.2, p_out: float = 0.2, bias_pA: float = 70.0, tau_out: float = 5000.0,
               surrogate: str = "fast_sigmoid"):
    """``(template Network, initial params)``; ``apply(params, template, spikes)`` gives the network of one trial.

    Weights are drawn as conductances (nS) for in -> E/I (1.5), E -> E/I (0.5), I -> E/I (2.0) and as currents
    (pA) for E -> out (50); the readout's leak conductance is 1 nS (its capacitance, pF, is ``tau_out`` in ms).
    Every connection probability is at most ``max(p_rec, p_in, p_out)``.
    """
    ks = jax.random.split(key, len(PROJECTIONS))
    neuron = dict(tau_m=20.0, C_m=200.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=2.0, surrogate=surrogate,
                  slope=5.0)
    receptors = {"ge": AMPA(tau=5.0), "gi": GABA_A(tau=10.0)}
    E = AdaptiveLIF(n_e, a=0.0, b=0.0, delta_theta=1.0, tau_theta=800.0, **neuron)
    I = LIF(n_i, **neuron)
    out = LIF(2, tau_m=tau_out, C_m=tau_out, v_rest=0.0, v_th=1e6, v_reset=0.0, t_ref=0.0, surrogate="triangle")
    n_in = task.n_inputs
    sizes = {"in": n_in, "E": n_e, "I": n_i, "out": 2}
    spec = {"inE": ("in", "E", "ge", p_in, 1.5), "inI": ("in", "I", "ge", p_in, 1.5),
            "EE": ("E", "E", "ge", p_rec, 0.5), "EI": ("E", "I", "ge", p_rec, 0.5),
            "IE": ("I", "E", "gi", p_rec, 2.0), "II": ("I", "I", "gi", p_rec, 2.0),
            "Eout": ("E", "out", "i", p_out, 50.0)}
    projections = {name: EventProjection(pre, post, rec, _sparse(k, sizes[pre], sizes[post], p, w))
                   for k, (name, (pre, post, rec, p, w)) in zip(ks, spec.items())}
    net = Network({"in": Population(Signal(np.zeros((task.n_steps, n_in), np.float32))),
                   "E": Population(E, receptors), "I": Population(I, receptors),
                   "out": Population(out, {"i": Receptor(Exponential(10.0), CurrentOutput())})},
                  projections,
                  drives=[CurrentStep("E", bias_pA), CurrentStep("I", bias_pA)])
    params = {"log_w": {name: jnp.log(jnp.maximum(projections[name].operator.weights, 1e-6)) for name in PROJECTIONS},
              "tau_m_E": _TAU.inverse(jnp.full((n_e,), 20.0)), "tau_m_I": _TAU.inverse(jnp.full((n_i,), 20.0)),
              "tau_theta_E": _TAU.inverse(jnp.full((n_e,), 800.0)), "tau_out": _TAU.inverse(jnp.full((2,), tau_out))}
    return net, params


def apply(params, template: Network, spikes: Optional[jax.Array] = None) -> Network:
    """The network with ``params`` (and, if given, the input ``spikes (T, n_in)`` of one trial)."""
    net = template
    for name in PROJECTIONS:
        net = eqx.tree_at(lambda n: n.projections[name].operator.weights, net, jnp.exp(params["log_w"][name]))
    net = eqx.tree_at(lambda n: (n.populations["E"].model.tau_m, n.populations["I"].model.tau_m,
                                 n.populations["E"].model.tau_theta, n.populations["out"].model.tau_m),
                      net, (_TAU.forward(params["tau_m_E"]), _TAU.forward(params["tau_m_I"]),
                            _TAU.forward(params["tau_theta_E"]), _TAU.forward(params["tau_out"])))
    if spikes is not None:
        net = eqx.tree_at(lambda n: n.populations["in"].model.values, net, spikes)
    return net


def trial(params, template: Network, spikes, task: EvidenceTask, *, adjoint: AbstractAdjoint = Checkpointed(),
          key=None):
    """Run one trial: ``(readout logits (2,), E rate Hz, I rate Hz)``; differentiable in ``params``."""
    net = apply(params, template, spikes)
    start = task.decision_start
    monitors = [StateMonitor("out", "v"), CountMonitor("E"), CountMonitor("I")]
    key = jax.random.key(0) if key is None else key
    _, (v, count_e, count_i) = run(net, net.init(task.dt), task.n_steps, task.dt, key=key, monitors=monitors,
                                   adjoint=adjoint)
    logits = v[start:].mean(axis=0)  # mean readout potential (mV) during the decision cue
    seconds = task.duration_ms / 1000.0
    return logits, count_e.mean() / seconds, count_i.mean() / seconds


def loss_fn(params, template, spikes, labels, task: EvidenceTask, *, adjoint: AbstractAdjoint = Checkpointed(),
            target_hz: float = 10.0, rate_weight: float = 1e-3, logit_scale: float = 0.5):
    """Mean cross-entropy of the batch + ``rate_weight`` (E/I rate - ``target_hz``)^2; ``(loss, aux)``.

    The logits are the readout potentials (mV) times ``logit_scale`` (1/mV)."""
    logits, rate_e, rate_i = jax.vmap(lambda x: trial(params, template, x, task, adjoint=adjoint))(spikes)
    ce = optax.softmax_cross_entropy_with_integer_labels(logit_scale * logits, labels).mean()
    reg = rate_weight * (jnp.mean((rate_e - target_hz) ** 2) + jnp.mean((rate_i - target_hz) ** 2))
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
    return ce + reg, {"ce": ce, "accuracy": accuracy, "rate_e": rate_e.mean(), "rate_i": rate_i.mean()}


def train(key, task: EvidenceTask = EvidenceTask(), *, steps: int = 300, batch: int = 32, lr: float = 3e-3,
          n_test: int = 256, eval_every: int = 50, time_limit_s: float = float("inf"),
          adjoint: AbstractAdjoint = Checkpointed(), log: Optional[Callable[[dict], None]] = None,
          stop_at_accuracy: float = 1.01, **network_kwargs):
    """Train with Adam (gradients clipped to norm 1, learning rate ``lr`` decaying to ``lr / 10`` over ``steps`` on a
    cosine); returns ``(params, template, history)``.

    ``history`` holds one dict per step (loss, batch accuracy, rates, elapsed seconds; ``test_accuracy`` on the
    ``n_test`` held-out trials every ``eval_every`` steps). Training stops after ``steps`` steps, after
    ``time_limit_s`` seconds, or at an evaluation whose held-out accuracy reaches ``stop_at_accuracy``.
    """
    k_net, k_test, k_data = jax.random.split(key, 3)
    template, params = ei_network(k_net, task, **network_kwargs)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(optax.cosine_decay_schedule(lr, steps, 0.1)))
    opt_state = optimizer.init(params)
    x_test, y_test = make_trials(k_test, n_test, task)

    @jax.jit
    def update(params, opt_state, x, y):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, template, x, y, task, adjoint=adjoint)
        with jax.numpy_dtype_promotion("standard"):  # Optax mixes its int32 step count with float arrays
            updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, aux

    @jax.jit
    def evaluate(params, x, y):
        return loss_fn(params, template, x, y, task)[1]

    def test_accuracy(params):
        parts = [evaluate(params, x_test[i:i + batch], y_test[i:i + batch]) for i in range(0, n_test, batch)]
        return float(np.mean([float(p["accuracy"]) for p in parts]))

    history, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        x, y = make_trials(jax.random.fold_in(k_data, step), batch, task)
        params, opt_state, loss, aux = update(params, opt_state, x, y)
        record = {"step": step, "loss": float(loss), **{k: float(v) for k, v in aux.items()},
                  "elapsed_s": round(time.perf_counter() - t0, 1)}
        if step % eval_every == 0 or step == steps:
            record["test_accuracy"] = test_accuracy(params)
        history.append(record)
        if log is not None:
            log(record)
        if time.perf_counter() - t0 > time_limit_s or record.get("test_accuracy", 0.0) >= stop_at_accuracy:
            break
    if "test_accuracy" not in history[-1]:
        history[-1]["test_accuracy"] = test_accuracy(params)
    return params, template, history


def simulate_trial(params, template: Network, spikes, task: EvidenceTask = EvidenceTask(), *, key=None):
    """The trained network of one trial under ``brainsim.simulate.simulate``, with spike and readout monitors."""
    from ..simulate import SpikeMonitor, simulate

    net = apply(params, template, spikes)
    monitors = [SpikeMonitor("in"), SpikeMonitor("E"), SpikeMonitor("I"), StateMonitor("out", "v")]
    return simulate(net, task.duration_ms, task.dt, key=jax.random.key(0) if key is None else key,
                    monitors=monitors, progress=False)


def plot_trial(result, task: EvidenceTask, label: int, path=None, bin_ms: float = 20.0):
    """Raster of the inputs, E and I neurons above their rates and the two readout potentials (PNG if ``path``)."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..plotting import population_rate

    fig, (ax_raster, ax_rate, ax_out) = plt.subplots(3, 1, figsize=(9, 8), sharex=True,
                                                     gridspec_kw={"height_ratios": [3, 1, 1]})
    offset = 0
    for name, color in (("in", "tab:gray"), ("E", "tab:red"), ("I", "tab:blue")):
        trains = result.spikes[name]
        ax_raster.scatter(trains.times, trains.indices + offset, s=1.5, c=color, marker=".", linewidths=0,
                          rasterized=True, label=name)
        centres, rate = population_rate(trains, bin_ms)
        ax_rate.plot(centres, rate, color=color, lw=1, label=f"{name}: {rate.mean():.1f} Hz")
        offset += trains.size
    g = task.n_group
    for k, text in enumerate(("left", "right", "decision", "noise")):
        ax_raster.text(2, k * g + g / 2, text, fontsize=7, va="center")
    ax_raster.set_ylabel("neuron (in | E | I)")
    ax_raster.set_title(f"evidence accumulation, trained E/I network: {'right' if label else 'left'} has more cues")
    ax_rate.set_ylabel(f"rate (Hz, {bin_ms:g} ms)")
    ax_rate.legend(loc="upper right", fontsize=7)
    t, v = result.traces["out.v"]
    for k, (text, color) in enumerate((("left", "tab:green"), ("right", "tab:purple"))):
        ax_out.plot(t, v[:, k], color=color, label=f"readout {text}")
    ax_out.axvspan(task.decision_start * task.dt, task.duration_ms, color="0.9", zorder=0)
    ax_out.set_ylabel("readout v (mV)")
    ax_out.set_xlabel("time (ms)")
    ax_out.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return None
    return fig
