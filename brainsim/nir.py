"""NIR (Neuromorphic Intermediate Representation) graphs in and out: the models of snnTorch, Norse, Spyx, Sinabs,
Rockpool and Lava as brainsim ``Sequential`` models, and brainsim models back.

    model = brainsim.nir.from_nir("net.nir", dt=1e-4)        # a Sequential; dt = 1e-4 s -> model.dt = 0.1 ms
    graph = brainsim.nir.to_nir(model)                       # a nir.NIRGraph; nir.write("out.nir", graph)

NIR gives continuous-time equations (time in seconds) and no time step; what a library computes depends on how it
steps them, so both directions take the time step ``dt`` (s) and a ``discretization``:

- ``"euler"`` (default): the equations stepped by forward Euler at ``dt``, what snnTorch (dt = 1e-4 s, fixed)
  and Norse (dt = 1e-3 s by default) compute. Per step, with summed input ``I``::

      LIF      v <- v + dt/tau (v_leak - v + r I);  z = [v > v_threshold];  v <- v_reset where z
      CubaLIF  i <- i + dt/tau_syn (w_in I - i);  then v as LIF with input i (the new current)
      LI       v <- v + dt/tau (v_leak - v + r I)      (its output is v)
      IF       v <- v + dt r I;  z, reset as LIF

  brainsim's neurons step ``v <- a v + (1 - a)(v_rest + I / g_L)`` (exponential Euler): with ``a = 1 - dt/tau``
  (``tau_m = -dt / ln a``), ``g_L = 1 / r``, ``C_m = tau_m / r`` this is the same step exactly (a > 0 needs
  ``tau > dt``); ``to_nir`` writes ``tau = dt / (1 - a)``, ``r = 1 / g_L`` for the same reason.
- ``"exact"``: the equations integrated exactly for an input held over the step: ``tau_m = 1000 tau`` ms.
  Spikes then differ from a forward-Euler reader at coarse dt and converge to the ODE as dt -> 0.

Reset: NIR resets to ``v_reset`` in the step of the spike (snnTorch's ``reset_mechanism="zero",
reset_delay=False``; its default subtractive reset, applied one step late, is not NIR and is not written into
its files). A brainsim layer with ``reset="subtract"`` or a refractory period has no NIR form: ``to_nir`` refuses it.
Recurrence is a 2-cycle ``neuron <-> Affine/Linear`` (snnTorch's ``lif1.lif <-> lif1.w_rec``), carrying the
previous step's spikes; a recurrent Affine's bias is added every step (also the first, as snnTorch's RLeaky does).
Weights in NIR are ``(out, in)`` (brainsim's ``Linear`` holds ``(in, out)``); convolutions are channels-first
as in brainsim.

Mapped primitives: Input, Output, Affine, Linear, Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten, Scale, LIF,
CubaLIF, LI, IF. The graph must be a chain of layers (maps, then a neuron), each neuron optionally recurrent; an
LI ends the chain (``LeakyReadout``). Anything else is refused with its node name and type.
Known quirks of writers (documented with the reference data in tests/reference/nir/): Norse 1.1 writes
``tau = dt * tau_true`` (read its files with ``time_scale=1 / dt``) and ``w_in = 1`` for its current-jump
``LIFCell``; snnTorch writes ``r = tau / dt`` so that its ``v <- beta v + I`` comes out of the Euler step above.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Optional

import equinox as eqx
import jax
import numpy as np

from .neurons import LIF
from .synapses import Exponential
from .train.bijections import Constrained, Positive, resolve
from .train.layers import LeakyReadout, Linear, Sequential, SparseLinear, SpikingLayer
from .train.precision import Precision
from .train.maps import AvgPool2d, Chain, Conv1d, Conv2d, Dropout, Flatten, Scale, SumPool2d

DISCRETIZATIONS = ("euler", "exact")
_IF_TAU_MS = 1e12  # an IF neuron is a LIF whose leak is beyond float32's resolution over any run


def _nir():
    try:
        import nir
    except ImportError:
        raise ImportError("brainsim.nir needs the 'nir' package: pip install nir (or brainsim[nir])") from None
    return nir


def _check_step(dt, discretization, owner):
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"{owner}: dt must be the time step in seconds (> 0), e.g. 1e-4 for snnTorch's files, "
                         f"got {dt!r}")
    if discretization not in DISCRETIZATIONS:
        raise ValueError(f"{owner}: discretization must be one of {DISCRETIZATIONS}, got {discretization!r}")


# ------------------------------------------------------------------------------------------------------ reading
def _array(value, shape, name, node) -> np.ndarray:
    arr = np.asarray(value, np.float64)
    try:
        arr = np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(f"from_nir: node {node!r}: {name} of shape {arr.shape} does not fit the layer's shape "
                         f"{shape}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"from_nir: node {node!r}: {name} has NaN or infinite values")
    return arr.reshape(-1)


def _decay(tau_s, dt, discretization, name, node):
    """``(a, tau_ms)``: the per-step decay factor of ``tau dx/dt = -x`` and the time constant (ms) with
    ``exp(-dt / tau_ms) = a``."""
    if np.any(tau_s <= 0):
        raise ValueError(f"from_nir: node {node!r}: {name} must be > 0 s, got min {tau_s.min()}")
    if discretization == "exact":
        return np.exp(-dt / tau_s), 1000.0 * tau_s
    a = 1.0 - dt / tau_s
    if np.any(a <= 0):
        raise ValueError(f"from_nir: node {node!r}: forward Euler at dt = {dt} s needs {name} > dt, got min "
                         f"{tau_s.min()} s (use a smaller dt, discretization='exact', or time_scale for files "
                         f"that write tau in other units)")
    return a, -1000.0 * dt / np.log(a)


def _positive(values, name):
    values = np.asarray(values, np.float64)
    return Constrained.from_value(values, Positive(float(0.5 * values.min())), name)


def _neuron(node, name, size, shape, dt, discretization, time_scale):
    """``(LIF, input gain (size,), synapse or None)`` for a LIF, CubaLIF or IF node."""
    nir = _nir()
    p = lambda field: _array(getattr(node, field), shape, field, name)
    r = p("r")
    if np.any(r <= 0):
        raise ValueError(f"from_nir: node {name!r}: r must be > 0, got min {r.min()}")
    v_th, v_reset = p("v_threshold"), p("v_reset")
    gain, synapse = np.ones(size), None
    if isinstance(node, nir.IF):
        # dv/dt = r I: a step adds dt r I (dt in s); as a LIF without leak, g_L = C_m / tau_m -> 0
        c_m = np.full(size, 1e3) / r  # dt_ms I / C_m = dt_s r I
        tau_m, v_rest = np.full(size, _IF_TAU_MS), np.zeros(size)
        method = "euler"
    else:
        tau = (p("tau_mem") if isinstance(node, nir.CubaLIF) else p("tau")) * time_scale
        _, tau_m = _decay(tau, dt, discretization, "tau_mem" if isinstance(node, nir.CubaLIF) else "tau", name)
        c_m, v_rest, method = tau_m / r, p("v_leak"), "exp_euler"
        if isinstance(node, nir.CubaLIF):
            alpha, tau_syn = _decay(p("tau_syn") * time_scale, dt, discretization, "tau_syn", name)
            gain = (1.0 - alpha) * p("w_in")  # i <- alpha i + (1 - alpha) w_in I
            synapse = Exponential(1.0)
            synapse = eqx.tree_at(lambda s: s.tau, synapse, _positive(tau_syn, "tau_syn"))
    f32 = lambda x: np.asarray(x, np.float32)
    neuron = LIF(size, tau_m=f32(tau_m), C_m=f32(c_m), v_rest=f32(v_rest), v_th=f32(v_th), v_reset=f32(v_reset),
                 t_ref=0.0, reset="value", method=method)
    return neuron, gain, synapse


def _pairs(value, n):
    """One integer per axis from NIR's scalar-or-tuple fields; a string (NIR's "same"/"valid" padding) as is."""
    if isinstance(value, str):
        return value
    return tuple(int(v) for v in np.broadcast_to(np.atleast_1d(np.asarray(value)), (n,)))


def _map(node, name, shape):
    """The brainsim synaptic map of a NIR node, reading an input of ``shape``."""
    nir = _nir()
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight, np.float32)
        if w.ndim != 2 or w.shape[1] != int(np.prod(shape)):
            raise ValueError(f"from_nir: node {name!r}: weight of shape {w.shape} does not take an input of "
                             f"{int(np.prod(shape))} ({shape})")
        bias = isinstance(node, nir.Affine)
        lin = Linear(w.shape[1], w.shape[0], key=None, weight=jax.numpy.asarray(w.T), bias=bias)
        if bias:
            lin = eqx.tree_at(lambda m: m.bias, lin, jax.numpy.asarray(np.asarray(node.bias, np.float32)))
        if len(shape) > 1:
            return Chain([Flatten(shape), lin])
        return lin
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        dims = 1 if isinstance(node, nir.Conv1d) else 2
        cls = Conv1d if dims == 1 else Conv2d
        w = np.asarray(node.weight, np.float32)
        bias = np.zeros(w.shape[0], np.float32) if node.bias is None else np.asarray(node.bias, np.float32)
        return cls(shape, w.shape[0], w.shape[2:], stride=_pairs(node.stride, dims),
                   padding=_pairs(node.padding, dims), dilation=_pairs(node.dilation, dims),
                   groups=int(np.asarray(node.groups)), weight=w, bias=bias)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        cls = SumPool2d if isinstance(node, nir.SumPool2d) else AvgPool2d
        return cls(shape, _pairs(node.kernel_size, 2), stride=_pairs(node.stride, 2),
                   padding=_pairs(node.padding, 2))
    if isinstance(node, nir.Flatten):
        return Flatten(shape, int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim)))
    if isinstance(node, nir.Scale):
        scale = np.asarray(node.scale, np.float32)
        return Scale(shape, scale.reshape(scale.shape + (1,) * (len(shape) - scale.ndim)) if scale.ndim else scale)
    return None


_NEURONS = ("LIF", "CubaLIF", "IF")
_MAPS = ("Affine", "Linear", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten", "Scale")


def _unknown(node, name):
    kinds = ", ".join(("Input", "Output") + _MAPS + _NEURONS + ("LI",))
    return ValueError(f"from_nir: node {name!r} is a nir.{type(node).__name__}, which brainsim.nir does not map "
                      f"(it maps {kinds})")


def _chain(graph):
    """``(input name, [node names in order], {neuron: recurrent node})`` of a chain-shaped graph."""
    nir = _nir()
    nodes = graph.nodes
    for name, node in nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise ValueError(f"from_nir: node {name!r} is a nested graph; brainsim.nir reads flat graphs (as "
                             f"snnTorch and Norse write them)")
    inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [n for n, v in nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"from_nir: the graph must have one Input and one Output node, has inputs {inputs} and "
                         f"outputs {outputs}")
    edges = {tuple(e) for e in graph.edges}
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise ValueError(f"from_nir: edge ({a!r}, {b!r}) names a node the graph does not have")
    succ, pred = defaultdict(list), defaultdict(list)
    for a, b in sorted(edges):
        succ[a].append(b)
        pred[b].append(a)
    recurrent = {}
    for a, b in sorted(edges):
        if ((b, a) in edges and type(nodes[a]).__name__ in _NEURONS and isinstance(nodes[b], (nir.Affine, nir.Linear))
                and pred[b] == [a] and succ[b] == [a]):
            recurrent[a] = b
    for a, b in recurrent.items():
        succ[a].remove(b)
        pred[a].remove(b)
    order, current = [], inputs[0]
    while True:
        after = succ[current]
        if len(after) != 1:
            raise ValueError(f"from_nir: node {current!r} feeds {after or 'nothing'}; brainsim.nir reads chains "
                             f"(one successor per node, apart from a neuron's recurrent Affine/Linear)")
        current = after[0]
        if len(pred[current]) != 1:
            raise ValueError(f"from_nir: node {current!r} has several inputs {pred[current]}; brainsim.nir reads "
                             f"chains")
        if current == outputs[0]:
            break
        if current in order:
            raise ValueError(f"from_nir: the graph has a cycle through {current!r} that is not a neuron's "
                             f"recurrent Affine/Linear")
        order.append(current)
    left = set(nodes) - set(order) - set(recurrent.values()) - {inputs[0], outputs[0]}
    if left:
        raise ValueError(f"from_nir: nodes {sorted(left)} are not on the path from input to output")
    return inputs[0], order, recurrent


def from_nir(graph, *, dt: float, discretization: str = "euler", time_scale: float = 1.0) -> Sequential:
    """A NIR graph (a ``nir.NIRGraph`` or the path of a ``.nir`` file) as a brainsim ``Sequential``.

    Args:
        graph: the graph, or a path that ``nir.read`` reads.
        dt: time step in seconds at which the graph is stepped (snnTorch's files: 1e-4; Norse's: 1e-3). The model's
            layers step ``1000 dt`` ms.
        discretization: ``"euler"`` (forward Euler at dt: snnTorch's and Norse's spikes) or ``"exact"`` (module
            docstring).
        time_scale: multiplies every time constant of the file (Norse 1.1 writes ``tau * dt``: ``1 / dt``).

    Returns a ``Sequential`` of ``SpikingLayer``s (LIF, IF; CubaLIF with an exponential synapse) and, if the graph
    ends in an LI, a ``LeakyReadout``; its output is the last layer's spikes (or the LI's membrane). It trains with
    ``fit`` (by default the weights, biases, gains, synaptic and readout time constants; the neurons' parameters are
    constants unless declared learnable with ``constrain``) and runs in ``simulate`` through ``to_network``.
    """
    nir = _nir()
    _check_step(dt, discretization, "from_nir")
    if not (isinstance(time_scale, (int, float)) and math.isfinite(time_scale) and time_scale > 0):
        raise ValueError(f"from_nir: time_scale must be a number > 0, got {time_scale!r}")
    if isinstance(graph, (str, Path)):
        graph = nir.read(str(graph))
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"from_nir: graph must be a nir.NIRGraph or a path to a .nir file, got {type(graph).__name__}")
    start, order, recurrent = _chain(graph)
    shape = tuple(int(n) for n in np.atleast_1d(graph.nodes[start].input_type["input"]))
    dt_ms = 1000.0 * dt
    layers, maps = [], []
    for k, name in enumerate(order):
        node = graph.nodes[name]
        kind = type(node).__name__
        if kind in _MAPS:
            m = _map(node, name, shape)
            maps.append(m)
            shape = m.out_shape
            continue
        if kind not in _NEURONS + ("LI",):
            raise _unknown(node, name)
        if not maps:
            maps.append(Scale(shape))  # a neuron straight after another reads its spikes one to one
        size = int(np.prod(shape))
        if kind == "LI":
            if k != len(order) - 1 or name in recurrent:
                raise ValueError(f"from_nir: node {name!r} (LI) must be the last node of the chain, without "
                                 f"recurrence: brainsim reads it as the LeakyReadout")
            p = lambda field: _array(getattr(node, field), shape, field, name)
            _, tau = _decay(p("tau") * time_scale, dt, discretization, "tau", name)
            # LeakyReadout: v <- a v + (1 - a) tau I_eff; NIR: v <- a v + (1 - a)(v_leak + r I)
            gain = Scale(shape, (p("r") / tau).reshape(shape), (p("v_leak") / tau).reshape(shape))
            readout = LeakyReadout(Chain(maps + [gain]), dt=dt_ms)
            layers.append(eqx.tree_at(lambda m: m.tau, readout, _positive(tau, "tau")))
            maps = []
            continue
        neuron, gain, synapse = _neuron(node, name, size, shape, dt, discretization, time_scale)
        input_map = Chain(maps + [Scale(shape, gain.reshape(shape).astype(np.float32))])
        layer = SpikingLayer(input_map, neuron=neuron, recurrent=name in recurrent, key=jax.random.key(0),
                             dt=dt_ms, tau_syn=None if synapse is None else 1.0)
        if synapse is not None:
            layer = eqx.tree_at(lambda m: m.synapse, layer, synapse)
        if name in recurrent:
            rec = graph.nodes[recurrent[name]]
            w = np.asarray(rec.weight, np.float64)
            if w.shape != (size, size):
                raise ValueError(f"from_nir: recurrent node {recurrent[name]!r} has weights {w.shape}, expected "
                                 f"({size}, {size})")
            layer = eqx.tree_at(lambda m: m.recurrent_weight, layer, jax.numpy.asarray((w.T * gain).astype(np.float32)))
            if isinstance(rec, nir.Affine):  # the feedback's bias reaches the neuron every step, from the first
                bias = np.asarray(rec.bias, np.float64) * gain
                input_map = Chain(maps + [Scale(shape, gain.reshape(shape).astype(np.float32),
                                                bias.reshape(shape).astype(np.float32))])
                layer = eqx.tree_at(lambda m: m.projection, layer, input_map)
        layers.append(layer)
        maps = []
    if maps:
        raise ValueError(f"from_nir: the chain ends in {[type(m).__name__ for m in maps]} after the last neuron; "
                         f"brainsim.nir needs a neuron (LIF, CubaLIF, IF or LI) at the end")
    if not layers:
        raise ValueError("from_nir: the graph has no neuron")
    return Sequential(layers)


# ------------------------------------------------------------------------------------------------------ writing
def _flat_maps(m):
    """A map as the list of its parts (chains and precision policies unrolled; dropout left out: NIR graphs
    describe inference)."""
    if isinstance(m, Dropout):
        return []
    if isinstance(m, Precision):  # its parameters are float32; the compute dtype is the runtime's choice
        return _flat_maps(m.synapses)
    return [part for inner in m.maps for part in _flat_maps(inner)] if isinstance(m, Chain) else [m]


def _symmetric(padding, owner):
    lo = tuple(p[0] for p in padding)
    if any(p[0] != p[1] for p in padding):
        raise ValueError(f"to_nir: {owner} pads unevenly {padding}; NIR gives one padding per axis")
    return lo


def _map_node(m, owner):
    nir = _nir()
    if isinstance(m, Linear):
        w = np.asarray(resolve(m.weight), np.float32).T
        if m.bias is None:
            return nir.Linear(weight=w)
        return nir.Affine(weight=w, bias=np.asarray(m.bias, np.float32))
    if isinstance(m, SparseLinear):  # NIR has no sparse weights: its dense matrix, zeros where no synapse
        return nir.Linear(weight=np.asarray(m.operator.to_dense(), np.float32).T)
    if isinstance(m, (Conv1d, Conv2d)):
        cls = nir.Conv1d if isinstance(m, Conv1d) else nir.Conv2d
        bias = np.zeros(m.out_shape[0], np.float32) if m.bias is None else np.asarray(m.bias, np.float32)
        spatial = m.in_shape[1:]
        return cls(input_shape=spatial[0] if isinstance(m, Conv1d) else spatial, weight=np.asarray(m.weight, np.float32),
                   stride=m.stride[0] if isinstance(m, Conv1d) else m.stride,
                   padding=_symmetric(m.padding, owner)[0] if isinstance(m, Conv1d) else _symmetric(m.padding, owner),
                   dilation=m.dilation[0] if isinstance(m, Conv1d) else m.dilation, groups=m.groups, bias=bias)
    if isinstance(m, (SumPool2d, AvgPool2d)):
        cls = nir.SumPool2d if isinstance(m, SumPool2d) else nir.AvgPool2d
        return cls(kernel_size=np.array(m.kernel_size), stride=np.array(m.stride),
                   padding=np.array(_symmetric(m.padding, owner)))
    if isinstance(m, Flatten):
        return nir.Flatten(input_type={"input": np.array(m.in_shape)}, start_dim=m.start_dim, end_dim=m.end_dim)
    if isinstance(m, Scale):
        if m.bias is not None and np.any(np.asarray(m.bias)):
            if len(m.in_shape) > 1:
                raise ValueError(f"to_nir: {owner} has a Scale with a bias on a {m.in_shape} array, which NIR "
                                 f"cannot express (its Scale has no bias)")
            n = m.n_in
            bias = np.broadcast_to(np.asarray(m.bias, np.float32), m.in_shape).reshape(n)
            scale = np.broadcast_to(np.asarray(m.scale, np.float32), m.in_shape).reshape(n)
            return nir.Affine(weight=np.diag(scale), bias=bias)
        return nir.Scale(scale=np.broadcast_to(np.asarray(m.scale, np.float32), m.in_shape).copy())
    raise ValueError(f"to_nir: {owner} has a {type(m).__name__}, which NIR cannot express (NIR maps: Affine, "
                     f"Linear, Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten, Scale)")


def _step_constants(a, dt, discretization, tau_ms):
    """NIR's tau (s) for a per-step decay ``a``: forward Euler at dt reproduces ``a``; exact writes tau itself."""
    return dt / (1.0 - a) if discretization == "euler" else tau_ms / 1000.0


def _neuron_node(layer, owner, dt, discretization):
    nir = _nir()
    neuron = resolve(layer.neuron)
    if type(neuron) is not LIF:
        raise ValueError(f"to_nir: {owner} has a {type(neuron).__name__}; NIR has LIF, CubaLIF, IF and LI neurons "
                         f"(brainsim writes LIF and LeakyReadout)")
    if neuron.reset != "value":
        raise ValueError(f"to_nir: {owner} resets by subtraction, which NIR cannot express (it resets to v_reset "
                         f"in the step of the spike): build the layer's LIF with reset='value'")
    if np.any(np.asarray(neuron.t_ref) > 0):
        raise ValueError(f"to_nir: {owner} has a refractory period (t_ref > 0), which NIR cannot express")
    if neuron.method == "exact" and layer.synapse is not None:
        raise ValueError(f"to_nir: {owner} integrates its synaptic current within the step (method='exact'), "
                         f"which CubaLIF's step does not; build the LIF with method='exp_euler'")
    dt_ms = 1000.0 * dt
    tau_m, c_m = np.asarray(neuron.tau_m, np.float64), np.asarray(neuron.C_m, np.float64)
    a = 1.0 - dt_ms / tau_m if neuron.method == "euler" else np.exp(-dt_ms / tau_m)
    n, shape = neuron.size, tuple(layer.projection.out_shape)
    f32 = lambda x: np.broadcast_to(np.asarray(x, np.float32), (n,)).reshape(shape).copy()
    common = dict(r=f32(tau_m / c_m), v_leak=f32(neuron.v_rest), v_threshold=f32(neuron.v_th),
                  v_reset=f32(neuron.v_reset))
    tau = _step_constants(a, dt, discretization, tau_m)
    if layer.synapse is None:
        return nir.LIF(tau=f32(tau), **common)
    tau_s = np.broadcast_to(np.asarray(resolve(layer.synapse.tau), np.float64), (n,))
    alpha = np.exp(-dt_ms / tau_s)
    # brainsim: i <- alpha i + I; NIR's step: i <- alpha i + (1 - alpha) w_in I
    return (nir.CubaLIF(tau_mem=f32(tau), tau_syn=f32(_step_constants(alpha, dt, discretization, tau_s)),
                        w_in=f32(1.0 / (1.0 - alpha)), **common))


def to_nir(model: Sequential, *, dt: Optional[float] = None, discretization: str = "euler"):
    """A brainsim ``Sequential`` as a ``nir.NIRGraph`` (write it with ``nir.write(path, graph)``).

    Args:
        model: layers ``SpikingLayer`` (an ``LIF`` with ``reset="value"``, no refractory period; with a synapse:
            ``CubaLIF``; recurrent weights: a ``Linear`` 2-cycle named ``layerK.lif <-> layerK.w_rec``) and an
            optional final ``LeakyReadout`` (``LI``); input maps ``Linear``, ``SparseLinear`` (written as a dense
            ``Linear``), ``Conv1d``, ``Conv2d``, ``SumPool2d``, ``AvgPool2d``, ``Flatten``, ``Scale`` (chained
            freely; ``Dropout`` is left out). A ``mixed_precision`` model is written in float32.
        dt: the time step (s) at which readers will step the graph; default the model's own (``model.dt / 1000``).
            snnTorch reads at 1e-4 s, Norse at 1e-3 s by default.
        discretization: ``"euler"``: parameters whose forward-Euler step at dt is the model's own step (a reader
            that steps by forward Euler reproduces its spikes); ``"exact"``: the model's time constants themselves.
    """
    nir = _nir()
    if not isinstance(model, Sequential):
        raise TypeError(f"to_nir: model must be a brainsim.train.Sequential, got {type(model).__name__}")
    dt = model.dt / 1000.0 if dt is None else dt
    _check_step(dt, discretization, "to_nir")
    model = resolve(model)
    nodes = {"input": nir.Input(input_type={"input": np.array(model.in_shape)})}
    edges, previous, shape = [], "input", tuple(model.in_shape)
    for i, layer in enumerate(model.layers):
        owner = f"layer {i} ({type(layer).__name__})"
        for j, m in enumerate(_flat_maps(layer.projection)):
            if isinstance(m, Linear) and len(shape) > 1:  # a dense map reads the flat layout of a spatial output
                name = f"layer{i}_flatten{j}"
                nodes[name] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
                edges.append((previous, name))
                previous = name
            name = f"layer{i}_map{j}"
            nodes[name] = _map_node(m, owner)
            edges.append((previous, name))
            previous, shape = name, tuple(m.out_shape)
        if isinstance(layer, LeakyReadout):
            shape = tuple(layer.projection.out_shape)
            tau = np.broadcast_to(np.asarray(layer.tau, np.float64), (layer.n_out,))
            a = np.exp(-1000.0 * dt / tau)
            # brainsim: v <- a v + (1 - a) tau I; NIR: v <- a v + (1 - a)(v_leak + r I)
            name = "readout"
            f32 = lambda x: np.asarray(x, np.float32).reshape(shape)
            nodes[name] = nir.LI(tau=f32(_step_constants(a, dt, discretization, tau)), r=f32(tau),
                                 v_leak=np.zeros(shape, np.float32))
        else:
            node = _neuron_node(layer, owner, dt, discretization)
            name = f"layer{i}.lif" if layer.recurrent else f"layer{i}"
            nodes[name] = node
            if layer.recurrent:  # (input gain folded: the synapse adds what arrives, i <- alpha i + I)
                w = np.asarray(layer.recurrent_weight, np.float64)
                nodes[f"layer{i}.w_rec"] = nir.Linear(weight=w.T.astype(np.float32))
                edges += [(name, f"layer{i}.w_rec"), (f"layer{i}.w_rec", name)]
        edges.append((previous, name))
        previous, shape = name, tuple(layer.projection.out_shape)
    nodes["output"] = nir.Output(output_type={"output": np.array(model.layers[-1].projection.out_shape)})
    edges.append((previous, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)
