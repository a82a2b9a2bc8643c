"""A COBA network (Brette et al. 2007) of N neurons with N Li–Rinzel astrocytes vs. the same network without.

    .venv/bin/python benchmarks/astro_network.py [--n 4000] [--duration 10000] [--astro-dt 1.0]

Excitatory synapses are built with NEST's ``third_factor_bernoulli_with_pool`` rule (p_primary = 80/N,
p_third_if_primary = 0.5, block pools of one astrocyte per target neuron); each paired synapse drives its
astrocyte's IP3 (NEST defaults, IP3(0) = 0.4 µM) and the astrocyte injects its slow inward current
(weight_sic pA per unit SIC) into the target neuron. Astrocytes step every ``astro-dt`` ms (MultiRate)
inside 0.1 ms neuron steps. Prints one JSON line per variant (same connectivity, same key) and the ratio.
"""
import argparse
import json

import jax
from jax.experimental import sparse

from brainsim.astrocytes import LiRinzel, MultiRate, tripartite_bernoulli_with_pool
from brainsim.connectivity import fixed_probability
from brainsim.network import Network, Population, Projection
from brainsim.networks.astrocytes import with_astrocytes
from brainsim.neurons import LIF
from brainsim.propagation import EventOperator
from brainsim.simulate import SpikeMonitor, StateMonitor, simulate
from brainsim.synapses import ConductanceOutput, Exponential, Receptor


def build(n, dt, astro_dt, weight_sic, key, *, drives=(), ip3=0.4):
    """The network without and with astrocytes (``drives`` added to both; ``ip3``: astrocytes' initial IP3, µM)."""
    n_exc = int(0.8 * n)
    p = min(1.0, 80 / n)
    k_t, k_i, k_v, k_e, k_g = jax.random.split(key, 5)
    tri = tripartite_bernoulli_with_pool(k_t, n_exc, n, n, p_primary=p, p_third_if_primary=0.5, pool_size=1,
                                         pool_type="block", weight=6.0, weight_sic=weight_sic)
    w_exc = EventOperator.from_sparse(tri.primary, homogeneous=True)
    w_inh = EventOperator.from_sparse(fixed_probability(k_i, n - n_exc, n, p, 67.0), homogeneous=True)
    neurons = LIF(n, tau_m=20.0, C_m=200.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=5.0, method="euler")
    receptors = {"ge": Receptor(Exponential(5.0), ConductanceOutput(0.0)),
                 "gi": Receptor(Exponential(10.0), ConductanceOutput(-80.0))}
    net = Network({"P": Population(neurons, receptors)},
                  {"exc": Projection("P", "P", "ge", w_exc, pre_range=(0, n_exc)),
                   "inh": Projection("P", "P", "gi", w_inh, pre_range=(n_exc, n))}, drives)
    state = net.init(dt)
    state = state._replace(
        neurons={"P": neurons.init(v=jax.random.uniform(k_v, (n,), minval=-60.0, maxval=-50.0))},
        receptors={"P": {"ge": 4.0 + 1.5 * jax.random.normal(k_e, (n,)),
                         "gi": 20.0 + 12.0 * jax.random.normal(k_g, (n,))}})
    pa = tri.pre_to_astro
    pre_to_astro = sparse.BCOO((pa.data, pa.indices), shape=(n, n))  # inhibitory rows: no astrocytic synapses
    astro = MultiRate.from_dt(LiRinzel(n), dt, astro_dt)  # NEST defaults
    anet = with_astrocytes(net, astro, spike_couplings={"P": pre_to_astro}, sic_couplings={"P": tri.astro_to_post},
                           initial={"IP3": ip3})  # IP3(0) = 0.4 µM as NEST astrocyte_brunel
    astate = anet.init(dt)
    astate = astate._replace(neurons={**astate.neurons, "P": state.neurons["P"]},  # the neurons' initial state
                             receptors={**astate.receptors, "P": {**astate.receptors["P"], **state.receptors["P"]}})
    return net, state, anet, astate, tri


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--duration", type=float, default=10_000.0)
    ap.add_argument("--astro-dt", type=float, default=1.0)
    ap.add_argument("--weight-sic", type=float, default=1.0)
    args = ap.parse_args()
    dt = 0.1
    net, state, anet, astate, tri = build(args.n, dt, args.astro_dt, args.weight_sic, jax.random.key(0))
    k = jax.random.key(1)
    res = {}
    for name, (nw, st, mons) in {"no_astro": (net, state, [SpikeMonitor("P")]),
                                 "astro": (anet, astate, [SpikeMonitor("P"),
                                                          StateMonitor("astro", "Ca", every=1000, indices=tuple(range(0, args.n, 400)))])}.items():
        r = simulate(nw, args.duration, dt, key=k, state=st, monitors=mons, progress=False)
        out = dict(bench="astro_network", variant=name, n_neurons=args.n, n_astrocytes=args.n if name == "astro" else 0,
                   duration_ms=args.duration, dt_ms=dt, astro_dt_ms=args.astro_dt if name == "astro" else None,
                   synapses=int(net.n_synapses),  # same neuronal network in both variants
                   paired_synapses=int((tri.astro_of_synapse >= 0).sum()),
                   compile_s=round(r.compile_s, 3), run_s=round(r.run_s, 3),
                   rate_hz=round(r.spikes["P"].mean_rate(), 2))
        if name == "astro":
            ca = r.traces["astro.Ca"][1]
            out["Ca_mean_uM"] = round(float(ca[-1].mean()), 4)
            out["Ca_max_uM"] = round(float(ca.max()), 4)
        res[name] = out
        print(json.dumps(out), flush=True)
    print(json.dumps(dict(bench="astro_network", ratio_run_s_astro_over_no_astro=round(
        res["astro"]["run_s"] / res["no_astro"]["run_s"], 3))))


if __name__ == "__main__":
    main()
