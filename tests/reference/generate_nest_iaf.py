"""NEST reference for brainsim's exact LIF integration: one iaf_psc_exp and one iaf_psc_alpha neuron driven by a
constant current and by excitatory and inhibitory spike trains, dt 0.1 ms.

Writes tests/reference/data/nest_iaf.json: for each model, its parameters, the input spike times (ms, NEST stamps:
the end of the step a spike belongs to), the output spike times and the membrane potential at the end of every
step. Needs NEST (a virtualenv outside the repository: python -m venv /work/nest-venv &&
/work/nest-venv/bin/pip install nest-simulator), then: /work/nest-venv/bin/python tests/reference/generate_nest_iaf.py
"""
import json
import os

import nest
import numpy as np

DT, DURATION, DELAY = 0.1, 500.0, 1.0  # ms
PARAMS = dict(C_m=250.0, tau_m=10.0, E_L=-65.0, V_th=-50.0, V_reset=-65.0, t_ref=2.0, I_e=350.0, V_m=-65.0)
SYNAPSES = {"iaf_psc_exp": dict(tau_syn_ex=0.5, tau_syn_in=2.0), "iaf_psc_alpha": dict(tau_syn_ex=0.5, tau_syn_in=2.0)}
W_EXC, W_INH = 87.8, -351.2  # pA (the Potjans-Diesmann weights)
RATE_EXC, RATE_INH = 3000.0, 100.0  # Hz


def spike_train(rng, rate):
    steps = np.flatnonzero(rng.random(int(DURATION / DT) - 20) < rate * DT / 1000.0) + 1  # on the grid, in (0, T)
    return np.round(steps * DT, 1)


def run(model, exc, inh):
    nest.ResetKernel()
    nest.set_verbosity("M_ERROR")
    nest.resolution = DT
    neuron = nest.Create(model, params={**PARAMS, **SYNAPSES[model]})
    for times, weight in ((exc, W_EXC), (inh, W_INH)):
        generator = nest.Create("spike_generator", params={"spike_times": times.tolist()})
        nest.Connect(generator, neuron, syn_spec={"weight": weight, "delay": DELAY})
    recorder = nest.Create("spike_recorder")
    nest.Connect(neuron, recorder)
    meter = nest.Create("multimeter", params={"record_from": ["V_m"], "interval": DT})
    nest.Connect(meter, neuron)
    nest.Simulate(DURATION)
    events = meter.get("events")
    order = np.argsort(events["times"])
    return (recorder.get("events")["times"].tolist(), np.asarray(events["times"])[order].tolist(),
            np.asarray(events["V_m"])[order].round(6).tolist())


def main():
    rng = np.random.default_rng(2014)
    exc, inh = spike_train(rng, RATE_EXC), spike_train(rng, RATE_INH)
    out = dict(generator=f"NEST {nest.__version__}", dt_ms=DT, duration_ms=DURATION, delay_ms=DELAY,
               weights_pA=dict(exc=W_EXC, inh=W_INH), input_times_ms=dict(exc=exc.tolist(), inh=inh.tolist()),
               models={})
    for model in SYNAPSES:
        spikes, times, v = run(model, exc, inh)
        out["models"][model] = dict(params={**PARAMS, **SYNAPSES[model]}, spike_times_ms=spikes, v_times_ms=times,
                                    v_mV=v)
        print(model, len(spikes), "spikes")
    path = os.path.join(os.path.dirname(__file__), "data", "nest_iaf.json")
    with open(path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
