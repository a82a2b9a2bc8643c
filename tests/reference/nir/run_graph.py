"""Import a NIR graph with a peer library's own NIR importer and run it step by step.

    /work/ml-peers-venv/bin/python tests/reference/nir/run_graph.py snntorch GRAPH.nir INPUT.npz OUT.npz
    /work/norse-venv/bin/python    tests/reference/nir/run_graph.py norse    GRAPH.nir INPUT.npz OUT.npz

INPUT.npz must hold ``input`` with shape (T, B, ...), time-major. The imported module is
fed ``input[t]`` for t = 0..T-1, starting from the library's zero/initial state, and
OUT.npz receives

* ``output``       (T, B, ...) what the imported module returns at each step,
* ``spk__<name>``  (T, B, ...) the output of every spiking/neuron module of the imported
  network, keyed by the module's name inside the imported torch module (NIR node names
  with '.' replaced by '_'; snnTorch nests recurrent subgraphs, e.g. ``lif1.lif_lif``),
* ``meta``         a JSON string (library, versions, module names, notes).

Unless ``--raw`` is given, documented defects of the importers are worked around first
(see the "loader fixes" below and README.md); they do not change the neuron dynamics.

Norse only: ``--dt DT`` (default 1e-3, Norse's default) is passed to the importer;
``--undo-norse-tau`` divides every tau in the file by dt first, to undo the tau bug of
Norse's exporter (only for files written by Norse's to_nir; see README).

Add ``--compare`` to also print how ``output`` (and ``hidden_i``, matched by order) differ
from the arrays of the same name in INPUT.npz, e.g. to check a round trip through NIR.
"""

from __future__ import annotations

import json
import sys
import warnings
from importlib.metadata import version

import nir
import numpy as np
import torch

warnings.filterwarnings("ignore")


def _first(x):
    while isinstance(x, (tuple, list)):
        x = x[0]
    return x


# ----------------------------------------------------------------------------- loader fixes
# Each fix works around a defect of the importer (see README, "Importer defects"); none
# changes the neuron/synapse dynamics the library implements. --raw disables all of them.

def _topological(graph):
    """Reorder graph.nodes breadth-first from the Input node(s), recursively.

    nir.read returns nodes in alphabetical (HDF5) order; nirtorch 2.6's nir_to_torch then
    converts a nested subgraph twice when it is met before its input is ready and fails
    with "'GraphModule' object has no attribute 'items'"."""
    nodes = {}
    succ = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    queue = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    while queue:
        k = queue.pop(0)
        if k in nodes or k not in graph.nodes:
            continue
        v = graph.nodes[k]
        nodes[k] = _topological(v) if isinstance(v, nir.NIRGraph) else v
        queue.extend(sorted(succ.get(k, [])))
    for k, v in graph.nodes.items():
        if k not in nodes:
            nodes[k] = _topological(v) if isinstance(v, nir.NIRGraph) else v
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), type_check=False)


def _pool_pairs(graph):
    """snnTorch exports AvgPool2d(2) with scalar kernel_size/stride; its importer calls
    tuple() on them. Broadcast them to (h, w) pairs (same meaning)."""
    for v in graph.nodes.values():
        if isinstance(v, nir.NIRGraph):
            _pool_pairs(v)
        elif isinstance(v, (nir.AvgPool2d, nir.SumPool2d)):
            for f in ("kernel_size", "stride", "padding"):
                val = np.asarray(getattr(v, f))
                setattr(v, f, np.broadcast_to(val, (2,)).astype(np.int64).copy())
    return graph


def _flatten_batch(graph):
    """NIR's Flatten dims exclude the batch axis (snnTorch's exporter subtracts 1), but both
    importers pass them unchanged to torch.nn.Flatten, which then also flattens the batch.
    Shift non-negative dims by one for the batched torch module."""
    for v in graph.nodes.values():
        if isinstance(v, nir.NIRGraph):
            _flatten_batch(v)
        elif isinstance(v, nir.Flatten):
            v.start_dim = int(v.start_dim) + 1 if int(v.start_dim) >= 0 else int(v.start_dim)
            v.end_dim = int(v.end_dim) + 1 if int(v.end_dim) >= 0 else int(v.end_dim)
    return graph


def _patch_snntorch_rnn_input():
    """snnTorch 1.0.0's import_nir._create_rnn_subgraph wires the subgraph's input to the
    recurrent weight node (edge (input, w_rec)) instead of to the neuron node, so the
    feed-forward current would be multiplied by W_rec. Rewire it to (input, lif), which is
    what its exporter (and RLeaky) mean."""
    import snntorch.import_nir as sin

    orig = sin._create_rnn_subgraph

    def fixed(graph, lif_nk, w_nk):
        graph = orig(graph, lif_nk, w_nk)
        sg_key = lif_nk.split(".")[0]
        sg = graph.nodes[sg_key]
        sg.edges = [(a, lif_nk) if (a == f"{sg_key}.input" and b == w_nk) else (a, b)
                    for a, b in sg.edges]
        return graph

    sin._create_rnn_subgraph = fixed


def import_snntorch(graph, raw):
    import snntorch as snn
    from snntorch.import_nir import import_from_nir

    if not raw:
        graph = _flatten_batch(_pool_pairs(_topological(graph)))
        _patch_snntorch_rnn_input()
    net = import_from_nir(graph)
    neurons = [(n, m) for n, m in net.named_modules() if isinstance(m, snn.SpikingNeuron)]
    for _, m in neurons:  # fresh modules start from zero anyway; be explicit
        m.reset_mem()

    def step(x, state):
        out, state = net(x, state)
        return out, state

    return net, neurons, step, {"snntorch": version("snntorch")}


def _undo_norse_tau(graph, dt):
    """Norse 1.1.0's to_nir writes tau = dt / tau_inv (= dt * tau) instead of 1 / tau_inv
    (norse/norse#411). Undo that (tau -> tau / dt) so that a Norse-exported file can be
    round-tripped. Only applied with --undo-norse-tau (it is wrong for correct files)."""
    for v in graph.nodes.values():
        if isinstance(v, nir.NIRGraph):
            _undo_norse_tau(v, dt)
        for f in ("tau", "tau_mem", "tau_syn"):
            if isinstance(v, (nir.LIF, nir.LI, nir.CubaLIF)) and hasattr(v, f):
                setattr(v, f, np.asarray(getattr(v, f)) / dt)
    return graph


def import_norse(graph, raw, dt):
    import nirtorch
    import norse.torch as nt
    from norse.torch.module.snn import SNNCell
    from norse.torch.utils import import_nir as nin

    if raw:
        net = nt.from_nir(graph, dt=dt)
    else:
        graph = _flatten_batch(_pool_pairs(_topological(graph)))

        def node_map(node):
            # norse 1.1.0 has no mapping for nir.LI: nirtorch.load then silently drops the
            # node (its output is skipped). Map it to Norse's own LIBoxCell, with the same
            # tau convention its LIF import uses (tau_mem_inv = 1 / tau; r is ignored, as
            # for LIF).
            if isinstance(node, nir.LI):
                return nt.LIBoxCell(nt.LIBoxParameters(
                    tau_mem_inv=1 / nin._to_tensor(node.tau),
                    v_leak=nin._to_tensor(node.v_leak)), dt=dt)
            return nin._import_norse_module(node, dt=dt)

        net = nirtorch.load(graph, node_map)  # what norse.torch.from_nir does, plus LI
    neurons = [(n, m) for n, m in net.named_modules()
               if isinstance(m, (SNNCell, nin.CubaLIF)) and not n.endswith((".synapse", ".lif"))]
    # nirtorch's GraphExecutor returns the cached value of the LAST node of its execution
    # order; with a recurrent edge that is the feedback node (e.g. 'lif1.w_rec'), not the
    # graph output. Read the value feeding the Output node from the cache instead.
    out_src = None
    if not raw:
        out_key = [k for k, v in graph.nodes.items() if isinstance(v, nir.Output)][0]
        srcs = [a for a, b in graph.edges if b == out_key]
        out_src = srcs[0].replace(".", "_") if len(srcs) == 1 else None

    def step(x, state):
        out, state = net(x, state)
        if out_src is not None and out_src in state.cache:
            out = state.cache[out_src]
        return out, state

    return net, neurons, step, {"norse": version("norse")}


def main(argv):
    compare = "--compare" in argv
    raw = "--raw" in argv
    undo_tau = "--undo-norse-tau" in argv
    dt = 1e-3
    if "--dt" in argv:
        i = argv.index("--dt")
        dt = float(argv[i + 1])
        del argv[i:i + 2]
    argv = [a for a in argv if a not in ("--compare", "--raw", "--undo-norse-tau")]
    if len(argv) != 4 or argv[0] not in ("snntorch", "norse"):
        sys.exit(__doc__)
    lib, graph_path, in_path, out_path = argv
    graph = nir.read(graph_path)
    ref = np.load(in_path)
    x = torch.from_numpy(np.asarray(ref["input"], dtype=np.float32))

    if undo_tau:
        graph = _undo_norse_tau(graph, dt)
    if lib == "snntorch":
        net, neurons, step, versions = import_snntorch(graph, raw)
    else:
        net, neurons, step, versions = import_norse(graph, raw, dt)
    rec = {name: [] for name, _ in neurons}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: rec[name].append(_first(o).detach().clone()))
             for name, m in neurons]

    outs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            out, state = step(x[t], state)
            outs.append(_first(out).detach().clone())
    for h in hooks:
        h.remove()

    result = {"output": torch.stack(outs).float().numpy()}
    for name, vals in rec.items():
        if vals:
            result[f"spk__{name}"] = torch.stack(vals).float().numpy()
    meta = {"library": lib, "graph": str(graph_path), "loader_fixes": not raw,
            "undo_norse_tau": undo_tau, "norse_dt": dt if lib == "norse" else None,
            "versions": dict(versions, torch=torch.__version__, nir=version("nir"),
                             nirtorch=version("nirtorch")),
            "neuron_modules": [f"{n}: {type(m).__name__}" for n, m in neurons]}
    np.savez_compressed(out_path, meta=np.array(json.dumps(meta, indent=1)), **result)
    print(f"wrote {out_path}: " + ", ".join(f"{k} {v.shape}" for k, v in result.items()))

    if compare:
        spk_keys = [k for k in result if k.startswith("spk__")]
        pairs = [("output", "output")]
        hidden = sorted(k for k in ref.files if k.startswith("hidden_"))
        pairs += list(zip(hidden, spk_keys))
        for rk, ok in pairs:
            if rk not in ref.files:
                continue
            a, b = np.asarray(ref[rk], np.float64), np.asarray(result[ok], np.float64)
            if a.shape != b.shape:
                print(f"  {rk} vs {ok}: shape {a.shape} vs {b.shape}")
                continue
            diff = np.abs(a - b)
            first = np.argwhere(diff > 1e-6)
            print(f"  {rk} vs {ok}: max|diff| {diff.max():.3g}, "
                  f"{int((diff > 1e-6).sum())}/{diff.size} entries differ"
                  + (f", first at (t,b,...)={tuple(int(i) for i in first[0])}" if len(first)
                     else "  -> identical"))


if __name__ == "__main__":
    main(sys.argv[1:])
