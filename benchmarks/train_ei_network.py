"""Train a biophysical E/I network end to end on evidence accumulation, then simulate it (issue "One model").

400 conductance-based neurons (320 adaptive-threshold LIF E, 80 LIF I; ``brainsim.networks.evidence``), sparse
event-driven connectivity (density <= 0.2), Dale's law, learnable weights and time constants, full-length exact
gradients through ``run`` with the ``Checkpointed`` adjoint, Adam. Prints one JSON line per evaluation while it
trains (``"bench": "train_ei_network.progress"``) and one final line with ``test_accuracy`` (held-out trials),
``n_neurons``, ``density``, ``steps``, ``train_s``, ``peak_rss_mb`` and the compiled temporary memory of one
gradient step under the ``Checkpointed`` and ``Direct`` adjoints at the task's length; then simulates the trained
network on a held-out trial with ``simulate`` and writes a raster + rate + readout PNG.

usage: python benchmarks/train_ei_network.py [--steps 500] [--batch 16] [--time-limit-min 38] [--small]
(``--small``: a short task and a few steps, for CI and the notebook)
"""
import argparse
import json
import resource
import time
from pathlib import Path

import jax
import numpy as np

from brainsim.adjoints import Checkpointed, Direct
from brainsim.networks import evidence


def _grad_temp_mb(params, template, task, batch, adjoint) -> float:
    x, y = evidence.make_trials(jax.random.key(9), batch, task)
    step = jax.jit(jax.grad(lambda p: evidence.loss_fn(p, template, x, y, task, adjoint=adjoint)[0]))
    return step.lower(params).compile().memory_analysis().temp_size_in_bytes / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--n-test", type=int, default=512)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--time-limit-min", type=float, default=38.0, help="stop training after this (minutes)")
    parser.add_argument("--target-accuracy", type=float, default=0.95,
                        help="stop once a held-out evaluation reaches it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="short task, few steps (CI, notebook)")
    parser.add_argument("--out", default="brainsim_out")
    args = parser.parse_args()

    if args.small:
        task = evidence.EvidenceTask(n_cues=3, cue_ms=60.0, gap_ms=40.0, delay_ms=100.0, decision_ms=60.0, dt=2.0)
        args.steps, args.n_test, args.eval_every, args.batch = min(args.steps, 4), 16, 2, min(args.batch, 4)
    else:
        task = evidence.EvidenceTask()

    def log(record):
        if "test_accuracy" in record:
            print(json.dumps({"bench": "train_ei_network.progress", **record}), flush=True)

    t0 = time.perf_counter()
    params, template, history = evidence.train(
        jax.random.key(args.seed), task, steps=args.steps, batch=args.batch, lr=args.lr, n_test=args.n_test,
        eval_every=args.eval_every, time_limit_s=args.time_limit_min * 60, log=log,
        stop_at_accuracy=args.target_accuracy)
    train_s = time.perf_counter() - t0
    last = history[-1]

    net = template
    n_neurons = net.populations["E"].size + net.populations["I"].size
    recurrent = ("EE", "EI", "IE", "II")
    possible = sum(net.populations[net.projections[p].pre].size * net.populations[net.projections[p].post].size
                   for p in recurrent)
    density = sum(net.projections[p].n_synapses for p in recurrent) / possible
    memory = {name: round(_grad_temp_mb(params, template, task, args.batch, adj), 1)
              for name, adj in (("checkpointed", Checkpointed()), ("direct", Direct()))}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = evidence.make_trials(jax.random.key(12345), 1, task)
    result = evidence.simulate_trial(params, template, x[0], task)
    png = out / "train_ei_network.png"
    evidence.plot_trial(result, task, int(y[0]), path=png)
    v = result.traces["out.v"][1]
    decided = int(np.argmax(v[task.decision_start:].mean(axis=0)))

    print(json.dumps(dict(
        bench="train_ei_network", test_accuracy=round(last["test_accuracy"], 4), n_neurons=n_neurons,
        n_exc=net.populations["E"].size, n_inh=net.populations["I"].size, density=round(density, 4),
        steps=last["step"], batch=args.batch, task_ms=task.duration_ms, n_cues=task.n_cues, dt_ms=task.dt,
        train_s=round(train_s, 1), final_loss=round(last["loss"], 4),
        rate_e_hz=round(last["rate_e"], 2), rate_i_hz=round(last["rate_i"], 2),
        grad_temp_mb_checkpointed=memory["checkpointed"], grad_temp_mb_direct=memory["direct"],
        memory_ratio=round(memory["checkpointed"] / memory["direct"], 3),
        simulated_trial={"label": int(y[0]), "decision": decided, "run_s": round(result.run_s, 3)},
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), plot=str(png))))


if __name__ == "__main__":
    main()
