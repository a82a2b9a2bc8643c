"""Layers for machine learning built on brainsim's own neuron and synapse models.

A spiking layer is an input projection (dense ``Linear`` or event-driven ``SparseLinear``) feeding the
*same* ``brainsim.neurons.LIF`` / ``AdaptiveLIF`` used in biophysical simulations, optionally through a
current-based ``brainsim.synapses.Exponential`` synapse (learnable tau_syn). Per step of ``dt`` ms:

    I_t    = W_in x_t (+ W_rec s_{t-1} for recurrent layers)              input current, pA
    i_syn  = i_syn * exp(-dt / tau_syn) + I_t   (only with a synapse)     synaptic current, pA
    v, s_t = neuron.step(v, i_syn or I_t, dt)                             membrane (mV), spikes {0, 1}

The ML defaults (``ml_lif``) are dimensionless-looking but still in brainsim units: C_m = 1 pF,
v_rest = v_reset = 0 mV, v_th = 1 mV, subtractive reset, no refractory period, so one step of exact
exponential Euler is ``v <- beta v + (1 - beta) tau_m I`` with ``beta = exp(-dt / tau_m)``: the
snnTorch/Spyx "Leaky" update with an input gain of ``(1 - beta) tau_m / C_m`` mV/pA.

Arrays carry the neuron axis only (one example); batches come from ``jax.vmap``. Every layer has
``init()`` (its state), ``project(xs)`` (the part of the input that does not depend on the layer's own
state, computed for all T steps at once: exact for feed-forward projections) and
``step(state, current_t) -> (state, (out_t, v_t))``. Parameters may be stored as ``Constrained``
(see ``bijections``); layers resolve them before use.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite, check_positive, check_size, positive_number
from .._types import Array
from ..adjoints import AbstractAdjoint, Checkpointed, Direct, Truncated
from ..core.integrators import exp_euler_linear
from ..evaluation import LayerByLayer
from ..event_matmul import event_matmul
from ..monitors import CountMonitor, MeanMonitor, SpikeMonitor, StateMonitor
from ..network import Network, Population
from ..neurons import LIF, AdaptiveLIF, LeakyIntegrator
from ..plasticity.modulators import Signal
from ..delays import DelayedDense
from ..projections import DelayLineProjection, DenseProjection, EventProjection, MappedProjection
from ..propagation import EventOperator
from ..simulate import run
from ..synapses import CurrentOutput, Exponential, Instant, Receptor
from . import bptt
from .bijections import Constrained, Identity, Positive, constrain, resolve
from .maps import BATCH_AXIS, AbstractSynapticMap, with_dropout_keys


def ml_lif(size: int, *, tau_m=10.0, v_th=1.0, surrogate="fast_sigmoid", slope=10.0, learn_tau=True,
           learn_threshold=True, learn=(), adaptive=False, **kwargs):
    """An ``LIF`` (or ``AdaptiveLIF``) with ML-friendly defaults (see module docstring).

    Learnable by default (``bijections.trainable``): with ``learn_tau`` the per-neuron ``tau_m`` (ms), stored as
    ``Constrained(Positive(0.5))``; with ``learn_threshold`` the per-neuron ``v_th`` (mV, unconstrained). The
    other parameters (C_m = 1 pF, v_rest = v_reset = 0 mV, no refractory period) are constants unless named in
    ``learn`` (e.g. ``learn=("v_rest", "v_reset")``: learnable offsets; ``"C_m"``: a learnable per-neuron gain,
    kept > 0).
    ``adaptive=True``: an adaptive threshold in the same units, ``theta <- theta + delta_theta`` (0.3 mV) per
    spike, decaying with ``tau_theta`` (100 ms), and no adaptation current (``a = b = 0``; pass ``a``/``b`` for
    one). Other keyword arguments go to the neuron.
    """
    params = dict(tau_m=tau_m, C_m=1.0, v_rest=0.0, v_th=v_th, v_reset=0.0, t_ref=0.0, reset="subtract",
                  surrogate=surrogate, slope=slope)
    if adaptive:
        params.update(a=0.0, b=0.0, delta_theta=0.3, tau_theta=100.0)
    params.update(kwargs)
    cls = AdaptiveLIF if adaptive else LIF
    neuron = cls(size, **params)
    bijections = {}
    if learn_tau:
        bijections["tau_m"] = Positive(0.5)
    if learn_threshold:
        bijections["v_th"] = Identity()
    for name in learn:
        if name in bijections:
            raise ValueError(f"ml_lif: learn names {name!r}, which learn_tau / learn_threshold already declare")
        bijections[name] = Positive() if name in ("tau_m", "C_m", "tau_w", "tau_theta") else Identity()
    return constrain(neuron, **bijections)


def _glorot(key, n_in, n_out, scale=1.0):
    return scale * jax.random.normal(key, (n_in, n_out)) * np.sqrt(2.0 / (n_in + n_out))


class Linear(AbstractSynapticMap):
    """Dense projection ``x @ W + b`` (W: ``(n_in, n_out)``, pA per unit input; may be ``Constrained``).

    With ``events=True`` (default) the product is ``brainsim.event_matmul``: for spike inputs it visits
    only the nonzero inputs, in the forward pass and in the weight gradient (dense inputs take the dense
    product; the result is the same either way).
    """

    weight: Array
    bias: Optional[Array]
    in_shape: tuple = eqx.field(static=True)
    out_shape: tuple = eqx.field(static=True)
    events: bool = eqx.field(static=True)

    def __init__(self, n_in: int, n_out: int, *, key, bias: bool = True, scale: float = 1.0, weight=None,
                 events: bool = True):
        self.in_shape, self.out_shape = (int(n_in),), (int(n_out),)
        self.weight = _glorot(key, n_in, n_out, scale) if weight is None else weight
        self.bias = jnp.zeros((n_out,)) if bias else None
        self.events = bool(events)

    def apply(self, x: Array) -> Array:
        w = resolve(self.weight)
        y = event_matmul(x, w) if self.events else x @ w
        return y if self.bias is None else y + self.bias


class SparseLinear(AbstractSynapticMap):
    """Event-driven sparse projection through ``brainsim.propagation.EventOperator`` (trainable weights).

    ``spikes @ W`` costs O(spikes x fan-out); the gradient with respect to the stored synaptic weights is
    exact (the operator's custom VJP). Accepts one vector ``(n_in,)`` or a sequence ``(T, n_in)``.
    """

    operator: EventOperator
    in_shape: tuple = eqx.field(static=True)
    out_shape: tuple = eqx.field(static=True)

    def __init__(self, operator: EventOperator):
        self.operator = operator
        self.in_shape, self.out_shape = (operator.n_pre,), (operator.n_post,)

    @classmethod
    def random(cls, n_in: int, n_out: int, p: float, *, key, scale: float = 1.0) -> "SparseLinear":
        k1, k2 = jax.random.split(key)
        mask = np.asarray(jax.random.uniform(k1, (n_in, n_out)) < p)
        w = np.asarray(_glorot(k2, n_in, n_out, scale)) / np.sqrt(max(p, 1e-6)) * mask
        w[mask & (w == 0)] = 1e-6  # an exact zero would be read as "no synapse"
        return cls(EventOperator.from_dense(jnp.asarray(w, jnp.float32), native=False))

    def apply(self, x: Array) -> Array:
        return jax.lax.map(self.operator, x)


class LayerState(NamedTuple):
    neuron: tuple  # the neuron model's state (LIFState / ALIFState)
    synapse: Array  # synaptic current, pA (zeros of shape (0,) without a synapse)
    spikes: Array  # spikes emitted in the previous step (recurrent input)


def _input_projection(n_in, n_out, key, owner: str, *, sparse_p=None, needs_key: bool = False):
    """``(map or None, n_in, n_out)`` from a layer's first arguments: two sizes, or a synaptic map alone."""
    if isinstance(n_in, (AbstractSynapticMap, DelayedDense)):
        if n_out is not None:
            raise ValueError(f"{owner}: give either n_in and n_out or a synaptic map, not both (n_out={n_out!r})")
        if sparse_p is not None:
            raise ValueError(f"{owner}: sparse_p makes a SparseLinear input projection; a map was given")
        if needs_key and key is None:
            raise ValueError(f"{owner}: give key= (a PRNG key) to draw the recurrent weights")
        return n_in, n_in.n_in, n_in.n_out
    if n_out is None:
        raise ValueError(f"{owner}: give n_in and n_out (sizes) or a synaptic map (Conv2d, Chain, ...), "
                         f"got n_in={n_in!r} alone")
    if key is None:
        raise ValueError(f"{owner}: give key= (a PRNG key) to draw the weights")
    return None, check_size(n_in, owner, "n_in"), check_size(n_out, owner, "n_out")


class SpikingLayer(eqx.Module):
    """Feed-forward (``recurrent=False``) or recurrent spiking layer: projection -> [synapse] -> neuron.

    Args:
        n_in, n_out: input features and neurons (a dense ``Linear`` input projection), or, instead of both, a
            synaptic map (``brainsim.train.maps``: ``Conv2d``, ``Chain([Conv2d(...), MaxPool2d(...)])``, ...)
            as the input projection; the layer then has one neuron per output of the map. A
            ``brainsim.delays.DelayedDense`` gives the layer learnable per-synapse delays (a
            ``DelayLineProjection`` in the network form; runs in ``Sequential``'s full and checkpointed modes).
        key: PRNG key for the weights (with a map: only for recurrent weights).
        neuron: a brainsim neuron model of size ``n_out`` (default ``ml_lif(n_out)``, learnable tau_m).
        recurrent: add recurrent weights ``W_rec`` (``(n_out, n_out)``, pA) from the previous step's spikes.
        tau_syn: if given, a current-based exponential synapse with per-neuron learnable time constant
            (ms, > 0) filters the input current.
        sparse_p: if given, the input projection is a ``SparseLinear`` with connection probability p.
        dt: time step, ms.
        fused: in a ``Sequential``, let the layer's population run as one fused operation over the whole
            sequence (or the adjoint's chunks of it) where its structure allows (``brainsim.evaluation.LayerByLayer``:
            ``LIF`` or ``AdaptiveLIF`` neurons, with or without the exponential synapse; same equations, same
            results, much less per-step overhead).
    """

    projection: eqx.Module
    recurrent_weight: Optional[Array]
    synapse: Optional[Exponential]
    neuron: eqx.Module
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    fused: bool = eqx.field(static=True)

    def __init__(self, n_in, n_out: Optional[int] = None, *, key=None, neuron=None, recurrent: bool = False,
                 tau_syn: Optional[float] = None, sparse_p: Optional[float] = None, dt: float = 1.0,
                 scale: float = 1.0, rec_scale: float = 1.0, fused: bool = True):
        owner = "SpikingLayer"
        projection, n_in, n_out = _input_projection(n_in, n_out, key, owner, sparse_p=sparse_p,
                                                    needs_key=recurrent)
        dt = positive_number(dt, "dt", "ms", owner)
        check_finite(scale, "scale", owner)
        check_finite(rec_scale, "rec_scale", owner)
        if tau_syn is not None:
            check_positive(tau_syn, "tau_syn (ms)", owner)
        if sparse_p is not None and not (isinstance(sparse_p, (int, float)) and 0.0 < sparse_p <= 1.0):
            raise ValueError(f"{owner}: sparse_p must be a connection probability in (0, 1], got {sparse_p!r}")
        k_in, k_rec = jax.random.split(key) if key is not None else (None, None)
        self.n_in, self.n_out, self.dt, self.fused = n_in, n_out, dt, bool(fused)
        if projection is not None:
            self.projection = projection
        elif sparse_p is None:
            self.projection = Linear(n_in, n_out, key=k_in, scale=scale)
        else:
            self.projection = SparseLinear.random(n_in, n_out, sparse_p, key=k_in, scale=scale)
        self.recurrent_weight = _glorot(k_rec, n_out, n_out, rec_scale) if recurrent else None
        if tau_syn is None:
            self.synapse = None
        else:
            syn = Exponential(1.0)
            self.synapse = eqx.tree_at(lambda s: s.tau, syn, Constrained.from_value(
                np.full((n_out,), float(tau_syn)), Positive(0.5), "tau_syn"))
        self.neuron = ml_lif(n_out) if neuron is None else neuron
        if self.neuron.size != n_out:
            raise ValueError(f"SpikingLayer: neuron model has size {self.neuron.size}, expected {n_out}")

    @property
    def recurrent(self) -> bool:
        return self.recurrent_weight is not None

    def init(self) -> LayerState:
        syn = self.synapse.init(self.n_out) if self.synapse is not None else jnp.zeros((0,))
        return LayerState(resolve(self.neuron).init(), syn, jnp.zeros((self.n_out,)))

    def project(self, xs: Array) -> Array:
        """Input currents (pA) for all steps at once: ``(T, n_in) -> (T, n_out)``."""
        return self.projection(xs)

    def step(self, state: LayerState, current: Array):
        """One step of ``dt`` ms given this step's projected input ``current`` (pA). Returns (state, (s, v))."""
        p = resolve(self)
        if p.recurrent:
            current = current + event_matmul(state.spikes, p.recurrent_weight)
        syn = state.synapse
        if p.synapse is not None:
            syn = p.synapse.arrive(p.synapse.decay(syn, p.dt), current)
            current = p.synapse.value(syn, p.dt)
        neuron_state, spikes = p.neuron.step(state.neuron, current, p.dt)
        return LayerState(neuron_state, syn, spikes), (spikes, neuron_state.v)


class ReadoutState(NamedTuple):
    v: Array  # mV


class LeakyReadout(eqx.Module):
    """Non-spiking leaky-integrator readout: the LIF membrane equation without threshold.

    ``C_m dv/dt = -(C_m / tau) v + I``, ``I = W s_t + b`` (pA), integrated exactly (exponential Euler):
    ``v <- beta v + (1 - beta) tau I / C_m`` with ``beta = exp(-dt / tau)``, C_m = 1 pF. ``tau`` (ms) is
    per output neuron and learnable through ``Positive(0.5)``.

    Args: ``n_in, n_out`` (a dense ``Linear`` projection drawn with ``key``) or one synaptic map (e.g.
    ``Chain([SumPool2d(...), Flatten(...), Linear(...)])``); ``tau`` (ms), ``dt`` (ms), ``scale`` of the drawn
    weights, ``learn_tau``.
    """

    projection: eqx.Module
    tau: Constrained
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    learn_tau: bool = eqx.field(static=True)

    def __init__(self, n_in, n_out: Optional[int] = None, *, key=None, tau: float = 10.0, dt: float = 1.0,
                 scale: float = 1.0, learn_tau: bool = True):
        owner = "LeakyReadout"
        projection, self.n_in, self.n_out = _input_projection(n_in, n_out, key, owner)
        n_out = self.n_out
        self.dt = positive_number(dt, "dt", "ms", owner)
        check_positive(tau, "tau (ms)", owner)
        check_finite(scale, "scale", owner)
        self.projection = projection if projection is not None else Linear(n_in, n_out, key=key, scale=scale)
        tau_arr = np.full((n_out,), float(tau))
        self.learn_tau = bool(learn_tau)
        self.tau = Constrained.from_value(tau_arr, Positive(0.5), "tau") if learn_tau else jnp.asarray(tau_arr, jnp.float32)

    def time_constant(self) -> Array:
        """tau (ms), held fixed (no gradient) unless ``learn_tau``."""
        tau = resolve(self.tau)
        return tau if self.learn_tau else jax.lax.stop_gradient(tau)

    def init(self) -> ReadoutState:
        return ReadoutState(jnp.zeros((self.n_out,)))

    def project(self, xs: Array) -> Array:
        return self.projection(xs)

    def step(self, state: ReadoutState, current: Array):
        tau = self.time_constant()
        v = exp_euler_linear(state.v, tau * current, 1.0 / tau, self.dt)  # v_inf = I / g_L = tau I / C_m
        return ReadoutState(v), (v, v)


def _is_spiking(layer) -> bool:
    return isinstance(layer, SpikingLayer)


class Sequential(eqx.Module):
    """A stack of layers run over time: ``outputs, aux = net(xs, mode=...)`` for one example ``xs (T, n_in)``.

    The model is a ``Network`` (``to_network``: a ``Signal`` population replaying ``xs``, one population per
    layer, ``DenseProjection(same_step=True)`` between them) and ``__call__`` is ``brainsim.simulate.run`` of it
    with monitors, population by population (``LayerByLayer``: a LIF or adaptive-LIF layer runs as one fused
    operation, together with the readout right behind it; other layers are scanned): ``mode="full"`` with full
    BPTT, ``mode="checkpointed"`` with the ``Checkpointed(chunk)`` adjoint (the scans and the fused operations run
    in chunks recomputed in the backward pass: their residuals take O(sqrt(T)) memory; the layers' spike trains,
    which the next layer reads, and the outputs stay O(T)). For the spatial-only / truncated modes use
    ``net.online_loss`` (the loss must be a sum over steps). Dropout is active only given a ``key`` (``Dropout``).

    Returns ``outputs`` ``(T, n_out)`` (the last layer's output after every step: readout membrane, mV, or
    spikes) and ``aux``, a dict with, per spiking layer, ``counts`` (spikes per neuron over the sequence) and
    ``v_mean``, ``v_sq`` (time-averaged v and v**2 per neuron, after every step), and with ``record=True``
    the full ``spikes`` and ``v``.
    """

    layers: tuple

    def __init__(self, layers):
        if isinstance(layers, (str, bytes)) or not isinstance(layers, (list, tuple)) or not layers:
            raise TypeError(f"Sequential: layers must be a non-empty list of layers, got {layers!r}")
        for i, layer in enumerate(layers):
            if not isinstance(layer, (SpikingLayer, LeakyReadout)):
                raise TypeError(f"Sequential: layers[{i}] must be a SpikingLayer or LeakyReadout, "
                                f"got {type(layer).__name__}")
        self.layers = tuple(layers)
        for a, b in zip(self.layers[:-1], self.layers[1:]):
            if a.n_out != b.n_in:
                raise ValueError(f"Sequential: layer sizes do not chain ({a.n_out} outputs into {b.n_in} inputs)")

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    @property
    def in_shape(self) -> tuple:
        """The shape of one step of input: ``(n_in,)``, or the first map's ``in_shape`` (e.g. ``(C, H, W)``)."""
        return tuple(self.layers[0].projection.in_shape)

    @property
    def dt(self) -> float:
        """The time step (ms) all layers share."""
        dts = {float(layer.dt) for layer in self.layers}
        if len(dts) != 1:
            raise ValueError(f"Sequential: the layers have different time steps {sorted(dts)} ms")
        return dts.pop()

    def check_input(self, xs) -> None:
        shapes = {(self.n_in,), self.in_shape}
        if xs.ndim < 2 or tuple(xs.shape[1:]) not in shapes:
            wanted = " or ".join(f"(T, {', '.join(map(str, s))})" for s in sorted(shapes, key=len))
            raise ValueError(f"Sequential: one example must have shape {wanted}, got {xs.shape}; "
                             "batch with jax.vmap (fit does this)")

    def _flat(self, xs) -> Array:
        self.check_input(xs)
        return xs.reshape((xs.shape[0], self.n_in))

    def init(self):
        return tuple(layer.init() for layer in self.layers)

    def population_names(self) -> list:
        """The network form's population of each layer: ``"layer0"``, ``"layer1"``, ..., ``"readout"``."""
        return ["readout" if isinstance(layer, LeakyReadout) else f"layer{i}" for i, layer in enumerate(self.layers)]

    def __call__(self, xs: Array, *, mode: str = "full", chunk: Optional[int] = None, record: bool = False,
                 dt: Optional[float] = None, key=None):
        """Run one example ``xs (T, n_in)``; ``dt`` (ms), if given, must be the layers' own. ``key`` (training):
        the model's ``Dropout`` maps drop units (one mask per example); without it they pass everything."""
        xs = self._flat(xs)
        bptt.check_mode(mode, "Sequential")
        if mode not in ("full", "checkpointed"):
            raise ValueError(f"Sequential: mode {mode!r} needs a per-step loss; use Sequential.online_loss")
        if dt is not None and float(dt) != self.dt:
            raise ValueError(f"Sequential: dt = {dt} ms, but the layers were built for dt = {self.dt} ms")
        model = self if key is None else with_dropout_keys(self, key)
        return _run_sequential(model, xs, None if mode == "full" else Checkpointed(chunk), record)

    def batch(self, xs: Array, *, mode: str = "full", chunk: Optional[int] = None, record: bool = False, key=None):
        """Run a batch ``xs (B, T, ...)`` of examples: ``__call__`` vmapped over the first axis (as ``fit`` runs it),
        e.g. from Flax NNX as ``EqxModule(model)(xb, method="batch")``; the examples' axis is named ``"batch"``
        (``BatchNorm`` takes its statistics across it). Returns outputs ``(B, T, n_out)`` and ``aux`` with a leading
        batch axis."""
        if xs.ndim < 3:
            raise ValueError(f"Sequential.batch: xs must be (B, T, ...) examples, got shape {xs.shape}; "
                             "one example runs as model(xs)")
        if key is None:
            return jax.vmap(lambda x: self(x, mode=mode, chunk=chunk, record=record), axis_name=BATCH_AXIS)(xs)
        keys = jax.random.split(key, xs.shape[0])  # a dropout mask per example
        return jax.vmap(lambda x, k: self(x, mode=mode, chunk=chunk, record=record, key=k),
                        axis_name=BATCH_AXIS)(xs, keys)

    def step(self, state, x_t):
        """One step through all layers: ``(state, x_t) -> (state, (out_t, [(spikes, v) per spiking layer]))``, for
        loops of one's own (online learning); ``__call__`` and ``online_loss`` run the network form instead."""
        h, new_state, hidden = x_t, [], []
        for i, layer in enumerate(self.layers):
            if isinstance(layer.projection, DelayedDense):
                raise ValueError(f"Sequential.step: layer {i} has learnable delays (DelayedDense), which need the "
                                 f"whole sequence; run the model with model(xs) or its network form")
        for layer, s in zip(self.layers, state):
            s, (h, v) = layer.step(s, layer.project(h))
            new_state.append(s)
            if _is_spiking(layer):
                hidden.append((h, v))
        return tuple(new_state), (h, hidden)

    def to_network(self, xs: Optional[Array] = None, *, n_steps: Optional[int] = None):
        """This model as a ``brainsim.Network`` of the same populations and projections: ``(network, dt)``.

        Populations, in order: ``"in"`` (a ``Signal`` replaying ``xs (T, n_in)``, or zeros for ``n_steps``),
        ``"layer0"``, ``"layer1"``, ... (each layer's own neuron model with a current receptor ``"I"``: its synapse,
        or ``Instant`` without one; shaped as its map's output), and ``"readout"`` for a ``LeakyReadout`` (a
        ``LeakyIntegrator`` with C_m = 1 pF and the readout's tau). Input projections deliver within the step
        (``same_step=True``): a ``DenseProjection`` with the weights and bias of a ``Linear``, an
        ``EventProjection`` with the operator of a ``SparseLinear``, a ``MappedProjection`` through any other map
        (``Conv2d``, ``Chain``, ...); the layer sees its input in the same step. Recurrent weights are ordinary
        ``DenseProjection``s (the previous step's spikes). ``run``/``simulate`` of the network with ``dt`` give the
        model's spikes and membrane potentials (``StateMonitor(..., when="end")`` records what a step produced).
        Works inside ``jit``/``grad`` (the parameters may be traced): ``__call__`` runs this network.
        """
        model = resolve(self)
        dt = self.dt
        if xs is None:
            if n_steps is None:
                raise ValueError("Sequential.to_network: give the input xs (T, n_in) or n_steps")
            xs = jnp.zeros((int(n_steps), self.n_in))
        xs = self._flat(xs)
        populations = {"in": Population(Signal(xs))}
        projections, previous = {}, "in"
        for name, layer in zip(self.population_names(), model.layers):
            if isinstance(layer, LeakyReadout):
                neuron, kinetics = LeakyIntegrator(layer.n_out, tau=layer.time_constant(), C_m=1.0), Instant()
            else:
                neuron, kinetics = layer.neuron, (layer.synapse if layer.synapse is not None else Instant())
            projection = layer.projection
            populations[name] = Population(neuron, {"I": Receptor(kinetics, CurrentOutput())},
                                           shape=projection.out_shape)
            if isinstance(projection, Linear):
                projections[f"{previous}->{name}"] = DenseProjection(previous, name, "I", projection.weight,
                                                                     bias=projection.bias, same_step=True)
            elif isinstance(projection, SparseLinear):
                projections[f"{previous}->{name}"] = EventProjection(previous, name, "I", projection.operator,
                                                                     same_step=True)
            elif isinstance(projection, DelayedDense):
                projections[f"{previous}->{name}"] = DelayLineProjection(previous, name, "I", projection,
                                                                         same_step=True)
            else:
                projections[f"{previous}->{name}"] = MappedProjection(previous, name, "I", projection,
                                                                      same_step=True)
            if isinstance(layer, SpikingLayer) and layer.recurrent:
                projections[f"{name}->{name}"] = DenseProjection(name, name, "I", layer.recurrent_weight)
            previous = name
        return Network(populations, projections), dt

    def online_loss(self, step_loss, xs, *args, window: int = 1, chunk: Optional[int] = None, key=None):
        """Truncated / spatial-only BPTT: ``sum_t step_loss(out_t, *args)`` with the gradient through the state cut
        every ``window`` steps (``window=1``: spatial-only, SLTT).

        ``run`` of the network form with the ``Truncated(window, chunk)`` adjoint: the steps are checkpointed in
        chunks of ``chunk`` (default ``ceil(sqrt(T))``; fused layers: whole windows), so the residuals grow as
        sqrt(T), plus the layers' spike trains and the outputs (O(T)).
        (``bptt.truncated_loss`` over ``Sequential.step`` computes the same gradient in memory independent of T,
        accumulating it window by window.) ``step_loss(out_t, *args) -> scalar``; e.g.
        ``losses.step_cross_entropy`` with the label as arg.
        """
        model = self if key is None else with_dropout_keys(self, key)
        outputs, _ = _run_sequential(model, self._flat(xs), Truncated(window, chunk), False)
        return jnp.sum(jax.vmap(lambda out: step_loss(out, *args))(outputs))


@eqx.filter_jit
def _run_sequential(model: Sequential, xs: Array, adjoint: Optional[AbstractAdjoint], record: bool):
    """``run`` of the model's network form with its monitors, layer by layer (``LayerByLayer``: fused layers run as
    fused sequences, chunked by the adjoint), differentiated by ``adjoint`` (None: full BPTT) (compiled once per
    model structure and input shape, also when called outside ``jit``; inlined inside other transformations)."""
    network, dt = model.to_network(xs)
    names = model.population_names()
    spiking = [name for name, layer in zip(names, model.layers) if _is_spiking(layer)]
    last = names[-1]
    output = (StateMonitor(last, "v", when="end") if isinstance(model.layers[-1], LeakyReadout)
              else SpikeMonitor(last, differentiable=True))
    monitors = [output]
    for name in spiking:
        monitors += [CountMonitor(name), MeanMonitor(name, "v"), MeanMonitor(name, "v", power=2)]
        if record:
            monitors += [SpikeMonitor(name, differentiable=True), StateMonitor(name, "v", when="end")]
    fuse = {name for name, layer in zip(names, model.layers) if not _is_spiking(layer) or layer.fused}
    order, adjoint = LayerByLayer(fuse=fuse), Direct() if adjoint is None else adjoint
    _, records = run(network, network.init(dt), xs.shape[0], dt, key=jax.random.key(0), monitors=monitors,
                     order=order, adjoint=adjoint)
    per_layer = 5 if record else 3
    aux = {"counts": [], "v_mean": [], "v_sq": []}
    if record:
        aux.update(spikes=[], v=[])
    for k in range(len(spiking)):
        values = records[1 + per_layer * k: 1 + per_layer * (k + 1)]
        for key_, value in zip(("counts", "v_mean", "v_sq", "spikes", "v"), values):
            aux[key_].append(value)
    return records[0], aux
