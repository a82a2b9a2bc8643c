"""Re-simulate every reference graph from its .nir parameters with the per-step formulas of
README.md (numpy only, float64) and compare with the traces the library produced (.npz).

    /work/ml-peers-venv/bin/python tests/reference/nir/reproduce.py      # any env with nir+numpy

It is a check of the write-up, independent of snnTorch/Norse: if it prints "identical" for
the spikes of a file, the formulas in the README reproduce that library exactly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nir
import numpy as np

HERE = Path(__file__).resolve().parent
FEEDBACK_BIAS_AT_T0 = "--no-t0-bias" not in sys.argv


# ----------------------------------------------------------------------------- static ops
def affine(node, x):
    y = x @ np.asarray(node.weight, np.float64).T
    return y + np.asarray(node.bias, np.float64) if isinstance(node, nir.Affine) else y


def conv2d(node, x):  # x: (B, C, H, W); weight (O, I, kh, kw); groups == 1 only
    w = np.asarray(node.weight, np.float64)
    (ph, pw), (sh, sw) = np.broadcast_to(node.padding, 2), np.broadcast_to(node.stride, 2)
    (dh, dw) = np.broadcast_to(node.dilation, 2)
    assert int(node.groups) == 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    O, I, kh, kw = w.shape
    H = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    W = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((x.shape[0], O, H, W))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i * dh:i * dh + sh * H:sh, j * dw:j * dw + sw * W:sw]
            y += np.einsum("bihw,oi->bohw", patch, w[:, :, i, j])
    return y + np.asarray(node.bias, np.float64)[None, :, None, None]


def avgpool2d(node, x):
    k = np.broadcast_to(node.kernel_size, 2)
    s = np.broadcast_to(node.stride, 2)
    assert np.all(np.asarray(node.padding) == 0)
    H = (x.shape[2] - k[0]) // s[0] + 1
    W = (x.shape[3] - k[1]) // s[1] + 1
    y = np.zeros(x.shape[:2] + (H, W))
    for i in range(k[0]):
        for j in range(k[1]):
            y += x[:, :, i:i + s[0] * H:s[0], j:j + s[1] * W:s[1]]
    return y / (k[0] * k[1])


def flatten(node, x):  # NIR dims exclude the batch axis
    s, e = int(node.start_dim), int(node.end_dim)
    nd = x.ndim - 1
    s, e = (s % nd) + 1, (e % nd) + 1
    return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])


# ----------------------------------------------------------------------------- neurons
class Neuron:
    """One neuron population. step(I) -> (output, record dict)."""

    def __init__(self, node, lib, meta):
        self.node, self.lib = node, lib
        f = lambda k: np.asarray(getattr(node, k), np.float64)  # noqa: E731
        self.kind = type(node).__name__
        self.reset = meta.get("reset_mechanism", "zero")
        self.delay = meta.get("reset_delay", False)
        if lib == "snntorch":
            dt = 1e-4  # hard-coded in snnTorch's export and import
            if self.kind == "LIF":
                self.beta = 1 - dt / f("tau")
                self.gain = f("r") * dt / f("tau")  # == 1 for snnTorch files
            elif self.kind == "CubaLIF":
                self.alpha = 1 - dt / f("tau_syn")
                self.beta = 1 - dt / f("tau_mem")
                self.gain_syn = f("w_in") * dt / f("tau_syn")  # == 1
                self.gain = f("r") * dt / f("tau_mem")  # == 1
            else:
                raise NotImplementedError(self.kind)
        else:  # norse: exported tau = dt * tau_true (norse#411); the cells use forward Euler
            dt = meta["dt"]
            self.dt = dt
            if self.kind in ("LIF", "LI"):
                self.k = dt / (f("tau") / dt)  # dt * tau_mem_inv
            elif self.kind == "CubaLIF":
                self.k = dt / (f("tau_mem") / dt)
                self.k_syn = dt / (f("tau_syn") / dt)
            if self.kind != "IF":
                self.v_leak = f("v_leak")
        if self.kind != "LI":
            self.thr = f("v_threshold")
            self.v_reset = f("v_reset")
        self.v = self.syn = self.z = None

    def step(self, I):
        if self.v is None:
            self.v = np.zeros_like(I)
            self.syn = np.zeros_like(I)
            self.z = np.zeros_like(I)
        rec = {}
        if self.lib == "snntorch":
            if self.kind == "LIF":
                v = self.beta * self.v + self.gain * I
            else:  # CubaLIF: current first, membrane uses the NEW current
                self.syn = self.alpha * self.syn + self.gain_syn * I
                v = self.beta * self.v + self.gain * self.syn
                rec["syn"] = self.syn
            if self.reset == "subtract":  # reset_delay=True: previous step's spike
                v = v - self.z * self.thr
                z = (v > self.thr).astype(float)
                rec["mem"] = v  # pre-reset value is what snnTorch keeps
            elif self.reset == "zero" and self.delay:  # (R)Synaptic zero, reset_delay=True
                v = (1 - self.z) * v
                z = (v > self.thr).astype(float)
                rec["mem"] = v
            else:  # zero, reset_delay=False == NIR semantics
                z = (v > self.thr).astype(float)
                v = np.where(z > 0, self.v_reset, v)
                rec["mem"] = v
            self.v, self.z = v, z
            return z, rec
        # norse
        if self.kind == "LI":
            self.v = self.v + self.k * (self.v_leak - self.v + I)
            rec["mem"] = self.v
            return self.v, rec
        if self.kind == "IF":
            v = self.v + I
        elif self.kind == "LIF":
            v = self.v + self.k * (self.v_leak - self.v + I)
        else:  # CubaLIF == LIFCell: jump current, membrane with the jumped current, then decay
            i_new = self.syn + I
            v = self.v + self.k * (self.v_leak - self.v + i_new)
            self.syn = i_new * (1 - self.k_syn)
            rec["syn"] = self.syn
        z = (v > self.thr).astype(float)
        self.v = np.where(z > 0, self.v_reset, v)
        rec["mem"] = self.v
        return z, rec


# ----------------------------------------------------------------------------- graph
def flat_nodes(graph, prefix=""):
    nodes, edges = {}, []
    for k, v in graph.nodes.items():
        if isinstance(v, nir.NIRGraph):
            sub_nodes, sub_edges = flat_nodes(v, prefix + k + ".")
            nodes.update(sub_nodes)
            edges += sub_edges
        else:
            nodes[prefix + k] = v
    edges += [(prefix + a, prefix + b) for a, b in graph.edges]
    return nodes, edges


def simulate(graph, x, lib, meta):
    nodes, edges = flat_nodes(graph)
    preds = {k: [a for a, b in edges if b == k] for k in nodes}
    succ = {k: sorted(b for a, b in edges if a == k) for k in nodes}
    order, queue = [], [k for k, v in nodes.items() if isinstance(v, nir.Input)]
    while queue:  # breadth first from the input
        k = queue.pop(0)
        if k not in order:
            order.append(k)
            queue += succ[k]
    neurons = {k: Neuron(v, lib, meta) for k, v in nodes.items()
               if isinstance(v, (nir.LIF, nir.CubaLIF, nir.LI, nir.IF))}
    prev = {}
    outs, recs = [], {k: [] for k in neurons}
    for t in range(x.shape[0]):
        cur = {}
        for k in order:
            node = nodes[k]
            if isinstance(node, nir.Input):
                cur[k] = x[t].astype(np.float64)
                continue
            # a predecessor not yet computed this step feeds back its previous-step output;
            # at t = 0 that is the node applied to zero spikes, i.e. an Affine's bias
            # (snnTorch's RLeaky adds W_rec @ 0 + b_rec at t = 0)
            ins = []
            for p in preds[k]:
                if p in cur:
                    ins.append(cur[p])
                elif p in prev:
                    ins.append(prev[p])
                elif isinstance(nodes[p], nir.Affine) and FEEDBACK_BIAS_AT_T0:
                    ins.append(np.asarray(nodes[p].bias, np.float64))
            inp = sum(ins)
            if k in neurons:
                cur[k], r = neurons[k].step(inp)
                recs[k].append(dict(r, spk=cur[k]))
            elif isinstance(node, (nir.Affine, nir.Linear)):
                cur[k] = affine(node, inp)
            elif isinstance(node, nir.Conv2d):
                cur[k] = conv2d(node, inp)
            elif isinstance(node, nir.AvgPool2d):
                cur[k] = avgpool2d(node, inp)
            elif isinstance(node, nir.Flatten):
                cur[k] = flatten(node, inp)
            elif isinstance(node, nir.Output):
                cur[k] = inp
            else:
                raise NotImplementedError(type(node).__name__)
        prev = cur
        outs.append(cur[[k for k, v in nodes.items() if isinstance(v, nir.Output)][0]])
    neuron_order = [k for k in order if k in neurons]
    return np.stack(outs), {k: {f: np.stack([r[f] for r in recs[k]]) for f in recs[k][0]}
                            for k in neuron_order}


def main(names):
    files = names or sorted(p.stem for p in HERE.glob("*.npz"))
    ok_all = True
    for name in files:
        d = np.load(HERE / f"{name}.npz")
        meta = json.loads(str(d["meta"]))
        graph = nir.read(str(HERE / f"{name}.nir"))
        out, rec = simulate(graph, d["input"], meta["library"], meta)
        print(f"{name} ({meta['library']}):")
        keys = list(rec)
        checks = [("output", out)]
        for i, k in enumerate(keys):
            if f"hidden_{i}" in d.files:
                checks.append((f"hidden_{i}", rec[k]["spk"]))
            checks.append((f"mem_{i}", rec[k]["mem"]))
            if "syn" in rec[k] and f"syn_{i}" in d.files:
                checks.append((f"syn_{i}", rec[k]["syn"]))
        for key, val in checks:
            ref = np.asarray(d[key], np.float64)
            diff = np.abs(ref - val)
            spiky = key.startswith("hidden") or (key == "output" and set(np.unique(ref)) <= {0, 1})
            if spiky:
                n = int((diff > 0).sum())
                ok_all &= n == 0
                print(f"   {key:9s} spikes: {'identical' if n == 0 else f'{n} of {ref.size} differ'}")
            else:
                print(f"   {key:9s} max|diff| {diff.max():.2e} (max|ref| {np.abs(ref).max():.3g})")
    print("ALL SPIKES IDENTICAL" if ok_all else "SOME SPIKES DIFFER")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main([a for a in sys.argv[1:] if not a.startswith("--")]))
