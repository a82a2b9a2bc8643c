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

from .._types import Array
from ..event_matmul import event_matmul
from ..neurons import LIF, AdaptiveLIF
from ..core.integrators import exp_euler_linear
from ..propagation import EventOperator
from ..synapses import Exponential
from . import bptt, fused_lif
from .bijections import Constrained, Positive, resolve


def ml_lif(size: int, *, tau_m=10.0, v_th=1.0, surrogate="fast_sigmoid", slope=10.0, learn_tau=True,
           adaptive=False, **kwargs):
    """An ``LIF`` (or ``AdaptiveLIF``) with ML-friendly defaults (see module docstring).

    With ``learn_tau`` the per-neuron ``tau_m`` (ms) is stored as ``Constrained(Positive(lower=dt-ish 0.5 ms))``.
    """
    params = dict(tau_m=tau_m, C_m=1.0, v_rest=0.0, v_th=v_th, v_reset=0.0, t_ref=0.0, reset="subtract",
                  surrogate=surrogate, slope=slope)
    params.update(kwargs)
    cls = AdaptiveLIF if adaptive else LIF
    neuron = cls(size, **params)
    if learn_tau:
        neuron = eqx.tree_at(lambda m: m.tau_m, neuron,
                             Constrained.from_value(np.asarray(neuron.tau_m), Positive(0.5), "tau_m"))
    return neuron


def _glorot(key, n_in, n_out, scale=1.0):
    return scale * jax.random.normal(key, (n_in, n_out)) * np.sqrt(2.0 / (n_in + n_out))


class Linear(eqx.Module):
    """Dense projection ``x @ W + b`` (W: ``(n_in, n_out)``, pA per unit input; may be ``Constrained``).

    With ``events=True`` (default) the product is ``brainsim.event_matmul``: for spike inputs it visits
    only the nonzero inputs, in the forward pass and in the weight gradient (dense inputs take the dense
    product; the result is the same either way).
    """

    weight: Array
    bias: Optional[Array]
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    events: bool = eqx.field(static=True)

    def __init__(self, n_in: int, n_out: int, *, key, bias: bool = True, scale: float = 1.0, weight=None,
                 events: bool = True):
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.weight = _glorot(key, n_in, n_out, scale) if weight is None else weight
        self.bias = jnp.zeros((n_out,)) if bias else None
        self.events = bool(events)

    def check_input(self, x: Array) -> None:
        if x.shape[-1] != self.n_in:
            raise ValueError(f"Linear: input has {x.shape[-1]} features, expected {self.n_in}")

    def __call__(self, x: Array) -> Array:
        self.check_input(x)
        w = resolve(self.weight)
        y = event_matmul(x, w) if self.events else x @ w
        return y if self.bias is None else y + self.bias


class SparseLinear(eqx.Module):
    """Event-driven sparse projection through ``brainsim.propagation.EventOperator`` (trainable weights).

    ``spikes @ W`` costs O(spikes x fan-out); the gradient with respect to the stored synaptic weights is
    exact (the operator's custom VJP). Accepts one vector ``(n_in,)`` or a sequence ``(T, n_in)``.
    """

    operator: EventOperator
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    def __init__(self, operator: EventOperator):
        self.operator = operator
        self.n_in, self.n_out = operator.n_pre, operator.n_post

    @classmethod
    def random(cls, n_in: int, n_out: int, p: float, *, key, scale: float = 1.0) -> "SparseLinear":
        k1, k2 = jax.random.split(key)
        mask = np.asarray(jax.random.uniform(k1, (n_in, n_out)) < p)
        w = np.asarray(_glorot(k2, n_in, n_out, scale)) / np.sqrt(max(p, 1e-6)) * mask
        w[mask & (w == 0)] = 1e-6  # an exact zero would be read as "no synapse"
        return cls(EventOperator.from_dense(jnp.asarray(w, jnp.float32), native=False))

    def __call__(self, x: Array) -> Array:
        if x.shape[-1] != self.n_in:
            raise ValueError(f"SparseLinear: input has {x.shape[-1]} features, expected {self.n_in}")
        if x.ndim == 1:
            return self.operator(x)
        flat = x.reshape((-1, self.n_in))
        return jax.lax.map(self.operator, flat).reshape(x.shape[:-1] + (self.n_out,))


class LayerState(NamedTuple):
    neuron: tuple  # the neuron model's state (LIFState / ALIFState)
    synapse: Array  # synaptic current, pA (zeros of shape (0,) without a synapse)
    spikes: Array  # spikes emitted in the previous step (recurrent input)


class SpikingLayer(eqx.Module):
    """Feed-forward (``recurrent=False``) or recurrent spiking layer: projection -> [synapse] -> neuron.

    Args:
        n_in, n_out: input features and neurons.
        key: PRNG key for the weights.
        neuron: a brainsim neuron model of size ``n_out`` (default ``ml_lif(n_out)``, learnable tau_m).
        recurrent: add recurrent weights ``W_rec`` (``(n_out, n_out)``, pA) from the previous step's spikes.
        tau_syn: if given, a current-based exponential synapse with per-neuron learnable time constant
            (ms, > 0) filters the input current.
        sparse_p: if given, the input projection is a ``SparseLinear`` with connection probability p.
        dt: time step, ms.
        fused: in ``Sequential``'s ``"full"`` mode, run the whole sequence of a plain-``LIF`` layer
            without synapse as one fused operation (``brainsim.train.fused_lif``: same equations, same
            results, much less per-step overhead) instead of a scan over ``step``.
    """

    projection: eqx.Module
    recurrent_weight: Optional[Array]
    synapse: Optional[Exponential]
    neuron: eqx.Module
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    fused: bool = eqx.field(static=True)

    def __init__(self, n_in: int, n_out: int, *, key, neuron=None, recurrent: bool = False,
                 tau_syn: Optional[float] = None, sparse_p: Optional[float] = None, dt: float = 1.0,
                 scale: float = 1.0, rec_scale: float = 1.0, fused: bool = True):
        k_in, k_rec = jax.random.split(key)
        self.n_in, self.n_out, self.dt, self.fused = int(n_in), int(n_out), float(dt), bool(fused)
        if sparse_p is None:
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

    def run_fused(self, xs: Array, readout: Optional["LeakyReadout"] = None):
        """All steps at once from ``init()`` (see ``fused_lif``): ``(T, n_in)`` inputs -> (spikes, v).

        An event-driven ``Linear`` projection runs inside the fused operation (the ``(T, n_out)`` input
        currents are never stored, and its weight gradient visits only the nonzero inputs); another
        projection is applied first. With ``readout`` (a ``LeakyReadout`` fed by this layer, see
        ``fused_lif.fusable_readout``) the readout runs inside the operation too, and the result is
        ``(spikes, v, u)`` with ``u`` the readout's output ``(T, readout.n_out)``."""
        p = resolve(self)
        fused_readout = {}
        if readout is not None:
            if not fused_lif.fusable_readout(self, readout):
                raise ValueError("SpikingLayer.run_fused: the readout must be a LeakyReadout with a Linear projection, "
                                 f"{self.n_out} inputs and the layer's dt ({self.dt} ms)")
            r = resolve(readout)
            fused_readout = dict(readout=(r.projection.weight, r.projection.bias, r.tau))
        state = p.init()
        projection = p.projection
        if isinstance(projection, Linear) and projection.events:
            projection.check_input(xs)
            inputs, fused_projection = xs, dict(w_in=projection.weight, b_in=projection.bias)
        else:
            inputs, fused_projection = p.project(xs), {}
        return fused_lif.lif_sequence(p.neuron, inputs, state.neuron.v, state.neuron.refractory, state.spikes,
                                      p.recurrent_weight, dt=p.dt, **fused_projection, **fused_readout)


class ReadoutState(NamedTuple):
    v: Array  # mV


class LeakyReadout(eqx.Module):
    """Non-spiking leaky-integrator readout: the LIF membrane equation without threshold.

    ``C_m dv/dt = -(C_m / tau) v + I``, ``I = W s_t + b`` (pA), integrated exactly (exponential Euler):
    ``v <- beta v + (1 - beta) tau I / C_m`` with ``beta = exp(-dt / tau)``, C_m = 1 pF. ``tau`` (ms) is
    per output neuron and learnable through ``Positive(0.5)``.
    """

    projection: Linear
    tau: Constrained
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(self, n_in: int, n_out: int, *, key, tau: float = 10.0, dt: float = 1.0, scale: float = 1.0,
                 learn_tau: bool = True):
        self.n_in, self.n_out, self.dt = int(n_in), int(n_out), float(dt)
        self.projection = Linear(n_in, n_out, key=key, scale=scale)
        tau_arr = np.full((n_out,), float(tau))
        self.tau = Constrained.from_value(tau_arr, Positive(0.5), "tau") if learn_tau else jnp.asarray(tau_arr, jnp.float32)

    def init(self) -> ReadoutState:
        return ReadoutState(jnp.zeros((self.n_out,)))

    def project(self, xs: Array) -> Array:
        return self.projection(xs)

    def step(self, state: ReadoutState, current: Array):
        tau = resolve(self.tau)
        v = exp_euler_linear(state.v, tau * current, 1.0 / tau, self.dt)  # v_inf = I / g_L = tau I / C_m
        return ReadoutState(v), (v, v)


def _is_spiking(layer) -> bool:
    return isinstance(layer, SpikingLayer)


class Sequential(eqx.Module):
    """A stack of layers run over time: ``outputs, aux = net(xs, mode=...)`` for one example ``xs (T, n_in)``.

    ``mode="full"`` runs layer by layer: each layer's input projection is computed for all T steps at
    once (exact: the layers are feed-forward between each other) and only the state-dependent part is
    scanned; a fused spiking layer (``fused_lif``) runs as one operation, together with a
    ``LeakyReadout`` right behind it. ``mode="checkpointed"`` runs one fused scan over time (projections
    inside the step, so nothing of size T is kept but the outputs) with ``sqrt(T)`` checkpointing. For the spatial-only /
    truncated modes use ``net.online_loss`` (the loss must be a sum over steps).

    Returns ``outputs`` ``(T, n_out)`` (the last layer's output: readout membrane or spikes) and ``aux``,
    a dict with, per spiking layer, ``counts`` (spikes per neuron over the sequence) and ``v_mean``,
    ``v_sq`` (time-averaged v and v**2 per neuron), and with ``record=True`` the full ``spikes`` and ``v``.
    """

    layers: tuple

    def __init__(self, layers):
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

    def check_input(self, xs) -> None:
        if xs.ndim != 2 or xs.shape[-1] != self.n_in:
            raise ValueError(f"Sequential: one example must have shape (T, {self.n_in}), got {xs.shape}; "
                             "batch with jax.vmap (fit does this)")

    def init(self):
        return tuple(layer.init() for layer in self.layers)

    def __call__(self, xs: Array, *, mode: str = "full", chunk: Optional[int] = None, record: bool = False):
        self.check_input(xs)
        bptt.check_mode(mode, "Sequential")
        if mode == "full":
            return self._layerwise(xs, record)
        if mode == "checkpointed":
            return self._fused(xs, chunk, record)
        raise ValueError(f"Sequential: mode {mode!r} needs a per-step loss; use Sequential.online_loss")

    def _layerwise(self, xs, record):
        aux = {"counts": [], "v_mean": [], "v_sq": [], "spikes": [], "v": []}
        h = xs
        layers = [resolve(layer) for layer in self.layers]  # constrained parameters once per sequence
        i = 0
        while i < len(layers):
            layer = layers[i]
            after = layers[i + 1] if i + 1 < len(layers) else None
            readout_out = None  # the output of a readout run inside this layer's fused operation
            if _is_spiking(layer) and layer.fused and fused_lif.supports(layer):
                if fused_lif.fusable_readout(layer, after):
                    h, v, readout_out = layer.run_fused(h, readout=after)
                else:
                    h, v = layer.run_fused(h)
            else:
                _, (h, v) = jax.lax.scan(lambda s, c: layer.step(s, c), layer.init(), layer.project(h))
            if _is_spiking(layer):
                aux["counts"].append(h.sum(0))
                aux["v_mean"].append(v.mean(0))
                aux["v_sq"].append((v * v).mean(0))
                if record:
                    aux["spikes"].append(h)
                    aux["v"].append(v)
            i += 1
            if readout_out is not None:  # the readout behind this layer has run too
                h = readout_out
                i += 1
        if not record:
            del aux["spikes"], aux["v"]
        return h, aux

    def step(self, state, x_t):
        """One fused step through all layers: ``(state, x_t) -> (state, (out_t, [(spikes, v) per spiking layer]))``."""
        h, new_state, hidden = x_t, [], []
        for layer, s in zip(self.layers, state):
            s, (h, v) = layer.step(s, layer.project(h))
            new_state.append(s)
            if _is_spiking(layer):
                hidden.append((h, v))
        return tuple(new_state), (h, hidden)

    def _fused(self, xs, chunk, record):
        net = resolve(self)  # constrained parameters once per sequence, not once per step
        acc0 = [tuple(jnp.zeros((layer.n_out,)) for _ in range(3)) for layer in net.layers if _is_spiking(layer)]

        def body(carry, x_t):
            state, acc = carry
            state, (out, hidden) = net.step(state, x_t)
            acc = [(c + s, vm + v, vs + v * v) for (c, vm, vs), (s, v) in zip(acc, hidden)]
            return (state, acc), ((out, hidden) if record else out)

        (_, acc), ys = bptt.scan(body, (net.init(), acc0), xs, mode="checkpointed", chunk=chunk)
        T = xs.shape[0]
        aux = {"counts": [a[0] for a in acc], "v_mean": [a[1] / T for a in acc], "v_sq": [a[2] / T for a in acc]}
        if record:
            ys, hidden = ys
            aux["spikes"] = [s for s, _ in hidden]
            aux["v"] = [v for _, v in hidden]
        return ys, aux

    def to_network(self, xs: Optional[Array] = None, *, n_steps: Optional[int] = None):
        """This model as a ``brainsim.Network`` of the same populations and projections: ``(network, dt)``.

        Populations, in order: ``"in"`` (a ``Signal`` replaying ``xs (T, n_in)``, or zeros for ``n_steps``),
        ``"layer0"``, ``"layer1"``, ... (each layer's own neuron model with a current receptor ``"I"``: its synapse,
        or ``Instant`` without one), and ``"readout"`` for a ``LeakyReadout`` (an ``LIF`` with C_m = 1 pF, the
        readout's tau and a threshold out of reach). Input projections are ``DenseProjection(same_step=True)``
        (weights and bias of ``Linear``; a ``SparseLinear`` becomes its dense matrix): the layer sees its input
        in the same step, as in ``Sequential``; recurrent weights are ordinary ``DenseProjection``s (the previous
        step's spikes). ``run``/``simulate`` of the network with ``dt`` then reproduce the model's spikes and
        membrane potentials (``StateMonitor`` records at the start of a step: the readout's output at step t is
        its ``v`` recorded at step t + 1).
        """
        from ..network import Network, Population
        from ..plasticity.modulators import Signal
        from ..projections import DenseProjection
        from ..synapses import CurrentOutput, Instant, Receptor

        model = resolve(self)
        dts = {float(layer.dt) for layer in model.layers}
        if len(dts) != 1:
            raise ValueError(f"Sequential.to_network: the layers have different time steps {sorted(dts)} ms")
        if xs is None:
            if n_steps is None:
                raise ValueError("Sequential.to_network: give the input xs (T, n_in) or n_steps")
            xs = jnp.zeros((int(n_steps), self.n_in))
        self.check_input(xs)
        populations = {"in": Population(Signal(np.asarray(xs, np.float32)))}
        projections, previous = {}, "in"
        for i, layer in enumerate(model.layers):
            name = "readout" if isinstance(layer, LeakyReadout) else f"layer{i}"
            if isinstance(layer, LeakyReadout):
                neuron = LIF(layer.n_out, tau_m=layer.tau, C_m=1.0, v_rest=0.0, v_th=1e30, v_reset=0.0, t_ref=0.0)
                kinetics = Instant()
            else:
                neuron, kinetics = layer.neuron, (layer.synapse if layer.synapse is not None else Instant())
            populations[name] = Population(neuron, {"I": Receptor(kinetics, CurrentOutput())})
            projection = layer.projection
            if isinstance(projection, Linear):
                weight, bias = projection.weight, projection.bias
            else:
                weight, bias = projection.operator.to_dense(), None
            projections[f"{previous}->{name}"] = DenseProjection(previous, name, "I", weight, bias=bias, same_step=True)
            if isinstance(layer, SpikingLayer) and layer.recurrent:
                projections[f"{name}->{name}"] = DenseProjection(name, name, "I", layer.recurrent_weight)
            previous = name
        return Network(populations, projections), dts.pop()

    def online_loss(self, step_loss, xs, *args, window: int = 1):
        """Truncated / spatial-only BPTT: ``sum_t step_loss(out_t, *args)`` with O(window) memory.

        ``step_loss(out_t, *args) -> scalar``; e.g. ``losses.step_cross_entropy`` with the label as arg.
        """
        self.check_input(xs)

        def per_step(model, state, x_t, *a):
            state, (out, _) = model.step(state, x_t)
            return state, step_loss(out, *a)

        return bptt.truncated_loss(per_step, self, self.init(), xs, *args, window=window)
