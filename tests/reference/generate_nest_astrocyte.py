"""Reference traces of NEST's ``astrocyte_lr_1994`` for brainsim's Li–Rinzel astrocyte.

Run with a NEST 3.10 environment kept outside the repo::

    python3 -m venv /work/nest-venv && /work/nest-venv/bin/pip install nest-simulator==3.10.0
    /work/nest-venv/bin/python tests/reference/generate_nest_astrocyte.py

Writes ``tests/reference/data/nest_astrocyte.json`` with three protocols (all at resolution 0.1 ms):

* ``single_spike``: NEST defaults, IP3 = Ca = h = 1 at t = 0, one spike of weight 1 arriving at t = 10 ms
  (spike_generator at 9.9 ms with delay 0.1 ms, as NEST's own ``test_astrocyte.py``); every state
  variable recorded every step, 0.1 .. 100 ms.
* ``poisson_drive``: NEST defaults but ``delta_IP3 = 0.2`` µM, driven by a fixed (stored) spike train of
  about 1 Hz for 20 s (as NEST's ``astrocyte_single`` example); state every 50 ms.
* ``clamped_ip3``: IP3 held at 0.5 µM (IP3 = IP3_0 = 0.5, no input): Li–Rinzel limit cycle over 60 s;
  Ca and h every 40 ms for the last 40 s.
"""
import json
import os

import nest
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "nest_astrocyte.json")
RES = 0.1


def run(params, state, sim_ms, interval, spike_times=(), spike_weights=None):
    nest.ResetKernel()
    nest.resolution = RES
    astro = nest.Create("astrocyte_lr_1994", params={**params, **state})
    mm = nest.Create("multimeter", params={"interval": interval, "record_from": ["IP3", "Ca_astro", "h_IP3R"]})
    nest.Connect(mm, astro)
    if len(spike_times):
        gen = nest.Create("spike_generator", params={
            "spike_times": [round(t - RES, 4) for t in spike_times],
            "spike_weights": list(spike_weights if spike_weights is not None else [1.0] * len(spike_times))})
        nest.Connect(gen, astro, syn_spec={"delay": RES})
    nest.Simulate(sim_ms)
    ev = mm.events
    return {"times_ms": np.round(ev["times"], 4).tolist(),
            "IP3": [float(f"{x:.9g}") for x in ev["IP3"]],
            "Ca": [float(f"{x:.9g}") for x in ev["Ca_astro"]],
            "h": [float(f"{x:.9g}") for x in ev["h_IP3R"]]}


def main():
    defaults = {k: v for k, v in nest.GetDefaults("astrocyte_lr_1994").items()
                if k in ("Ca_tot", "IP3_0", "Kd_IP3_1", "Kd_IP3_2", "Kd_act", "Kd_inh", "Km_SERCA", "SIC_scale",
                         "SIC_th", "delta_IP3", "k_IP3R", "rate_IP3R", "rate_L", "rate_SERCA", "ratio_ER_cyt",
                         "tau_IP3")}
    out = {"nest_version": nest.__version__, "resolution_ms": RES, "defaults": defaults}
    out["single_spike"] = {"spike_times_ms": [10.0], "spike_weights": [1.0],
                           "init": {"IP3": 1.0, "Ca": 1.0, "h": 1.0},
                           **run({}, {"IP3": 1.0, "Ca_astro": 1.0, "h_IP3R": 1.0}, 100.0, RES, [10.0], [1.0])}
    rng = np.random.default_rng(1)
    spikes = np.round(np.sort(rng.uniform(1.0, 20000.0, size=20)), 1)
    spikes = np.unique(spikes)
    out["poisson_drive"] = {"params": {"delta_IP3": 0.2}, "spike_times_ms": spikes.tolist(),
                            **run({"delta_IP3": 0.2}, {}, 20000.0, 50.0, spikes.tolist())}
    clamp = run({"IP3_0": 0.5}, {"IP3": 0.5}, 60000.0, 40.0)
    keep = np.asarray(clamp["times_ms"]) > 20000.0
    out["clamped_ip3"] = {"params": {"IP3_0": 0.5}, "init": {"IP3": 0.5},
                          **{k: np.asarray(v)[keep].tolist() for k, v in clamp.items() if k != "IP3"}}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1024:.1f} KB)")


if __name__ == "__main__":
    main()
