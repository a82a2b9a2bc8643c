"""A fuzzer over the public entry points: bad input is refused with one readable message, never silently accepted.

Every entry point below is called with valid arguments except one, which gets a value drawn from the bad values
of its kind (NaN, infinities, zero or negative where a positive value is needed, a probability outside [0, 1],
a wrong shape, a string, None, a bool or fractional count). Each call must raise ``ValueError`` or ``TypeError``
from brainsim's own checks (the raising frame is in brainsim, not inside JAX or NumPy) with a message naming the
parameter. ``test_fuzzer_covers_enough`` counts the generated cases (issue 17: >= 300 over >= 20 entry points).
A property-based test (hypothesis) then draws further bad values at random: out-of-range numbers of each kind and
per-neuron arrays with one bad element.
"""
import math
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import brainsim as bs
from brainsim import connectivity
from brainsim.adjoints import Checkpointed, Truncated
from brainsim.astrocytes import AstroModulated, AstroSTDP, GapJunctions, GChI, GlobalAstrocyte, LiRinzel, TripartiteSynapse
from brainsim.distributions import Normal, Uniform
from brainsim.inputs import CurrentStep, PoissonInput, PoissonSource, SpikeTimes
from brainsim.monitors import CountMonitor, MeanMonitor, StateMonitor
from brainsim.network import Network, Population
from brainsim.neurons import HH, LIF, QIF, AdaptiveLIF, AdEx, ExpIF, Izhikevich, LeakyIntegrator, TraubMilesHH
from brainsim.delays import DelayedEventOperator
from brainsim.plasticity import (Oja, HomeostaticThreshold, ModulatedHebbian, RewardModulatedSTDP, SynapticScaling,
                                 TripletSTDP)
from brainsim.plasticity.stdp import STDP
from brainsim.projections import DenseProjection, EventProjection, PlasticProjection
from brainsim.simulate import run, simulate
from brainsim.synapses import (AMPA, GABA_A, NMDA, Alpha, ConductanceOutput, CurrentOutput, DualExponential,
                               Exponential, NMDAOutput, Receptor, TsodyksMarkram)
from brainsim.train import LeakyReadout, Sequential, SpikingLayer, fit

SIZE = 5

# bad values by kind of parameter
NOT_NUMBERS = ["abc", None]
NON_FINITE = [math.nan, math.inf, -math.inf]
BAD = {
    "positive": NON_FINITE + [0.0, -1.0] + NOT_NUMBERS + [np.ones(SIZE + 2)],
    "nonnegative": NON_FINITE + [-0.5] + NOT_NUMBERS + [np.ones(SIZE + 2)],
    "finite": NON_FINITE + NOT_NUMBERS + [np.ones(SIZE + 2)],
    "scalar_positive": NON_FINITE + [0.0, -1.0] + NOT_NUMBERS,
    "scalar_finite": NON_FINITE + NOT_NUMBERS,
    "scalar_nonnegative": NON_FINITE + [-1.0] + NOT_NUMBERS,
    "probability": [math.nan, -0.1, 1.5, math.inf] + NOT_NUMBERS,
    "count": [0, -3, 2.5, "x", None, True],
    "optional_count": [0, -3, 2.5, "x", True],
    "sources": [-3, 2.5, math.nan, "x", None, np.ones((2, 2))],  # an integer >= 0, or one per neuron
    "degree": [-1, 5, 2.5, "x", None, True],  # synapses per neuron, of 4
    "matrix_finite": [np.full((4, 4), math.nan), np.full((4, 4), math.inf), np.ones(4), "abc", None],
    "vector_finite": [np.full(4, math.nan), np.full(4, -math.inf), np.ones((4, 4)), "abc"],
    "range": [(3, 1), (-1, 2), (0, 99), (0.5, 2), "ab", 5],
    "model": [None, "LIF", 3, LIF],
    "mapping": ["abc", 5, [1, 2]],
    "populations": [{}, None, "abc", {"P": LIF(SIZE)}],
    "layers": [[], None, "abc", [LIF(SIZE)]],
    "steps": [-1, 2.5, "x", None, True],
    "positive_steps": [0, -1, 2.5, "x", True],
}


def _net():
    return Network({"P": Population(LIF(SIZE), {"ge": Receptor(Exponential(5.0), CurrentOutput())})})


def _simulate(**kw):
    args = dict(duration=1.0, dt=0.1, key=jax.random.key(0), progress=False) | kw
    return simulate(_net(), args.pop("duration"), args.pop("dt"), **args)


def _matrix():
    return connectivity.fixed_probability(jax.random.key(1), 4, 4, 0.5, 1.0)


def _fit(**kw):
    model = Sequential([SpikingLayer(2, 3, key=jax.random.key(0)), LeakyReadout(3, 2, key=jax.random.key(1))])
    x, y = np.zeros((8, 5, 2), np.float32), np.zeros(8, np.int32)
    args = dict(epochs=1, batch_size=4, progress=False) | kw
    return fit(model, lambda m, xb, yb: jnp.float32(0.0), (x, y), **args)


def _run(**kw):
    net = _net()
    args = dict(n_steps=3, dt=0.1, key=jax.random.key(0)) | kw
    return run(net, net.init(0.1), args.pop("n_steps"), args.pop("dt"), **args)


# entry point -> (call(**bad), {parameter: kind}); the message must name the parameter
ENTRY_POINTS = {
    "LIF": (lambda **k: LIF(**({"size": SIZE} | k)), {"tau_m": "positive", "C_m": "positive", "t_ref": "nonnegative",
                                         "v_rest": "finite", "v_th": "finite", "v_reset": "finite",
                                         "slope": "scalar_positive", "size": "count"}),
    "AdaptiveLIF": (lambda **k: AdaptiveLIF(SIZE, **k), {"tau_w": "positive", "tau_theta": "positive", "a": "finite",
                                                         "b": "finite", "delta_theta": "finite"}),
    "ExpIF": (lambda **k: ExpIF(SIZE, **k), {"C_m": "positive", "g_L": "positive", "delta_T": "positive",
                                             "E_L": "finite", "V_T": "finite"}),
    "AdEx": (lambda **k: AdEx(SIZE, **k), {"tau_w": "positive", "a": "finite", "b": "finite"}),
    "QIF": (lambda **k: QIF(SIZE, **k), {"C_m": "positive"}),
    "Izhikevich": (lambda **k: Izhikevich(SIZE, **k), {"a": "finite", "b": "finite", "c": "finite", "d": "finite"}),
    "HH": (lambda **k: HH(SIZE, **k), {"C_m": "positive", "g_Na": "nonnegative", "E_Na": "finite"}),
    "TraubMilesHH": (lambda **k: TraubMilesHH(SIZE, **k), {"C_m": "positive", "g_K": "nonnegative"}),
    "LeakyIntegrator": (lambda **k: LeakyIntegrator(SIZE, **k), {"tau": "positive", "C_m": "positive"}),
    "EquationNeuron": (lambda E=-60.0, **k: bs.EquationNeuron(SIZE, "dv/dt = (E - v)/tau : volt", threshold="v > 0",
                                                              params={"E": E, "tau": 10.0}, **k),
                       {"E": "finite", "refractory": "nonnegative", "threshold_scale": "scalar_positive",
                        "slope": "scalar_positive"}),
    "Exponential": (lambda **k: Exponential(**k), {"tau": "scalar_positive"}),
    "DualExponential": (lambda **k: DualExponential(**k), {"tau_rise": "scalar_positive",
                                                           "tau_decay": "scalar_positive"}),
    "Alpha": (lambda **k: Alpha(**k), {"tau": "scalar_positive"}),
    "ConductanceOutput": (lambda **k: ConductanceOutput(**k), {"E_rev": "scalar_finite"}),
    "NMDAOutput": (lambda **k: NMDAOutput(**k), {"E_rev": "scalar_finite", "mg": "scalar_finite"}),
    "TsodyksMarkram": (lambda **k: TsodyksMarkram(**k), {"U": "probability", "tau_f": "scalar_positive",
                                                         "tau_d": "scalar_positive"}),
    "PoissonSource": (lambda **k: PoissonSource(**({"size": SIZE, "rate": 10.0} | k)),
                      {"size": "count", "rate": "nonnegative"}),
    "PoissonInput": (lambda **k: PoissonInput(**({"target": "P", "receptor": "ge", "n_sources": 10, "rate": 5.0,
                                                  "weight": 1.0} | k)),
                     {"n_sources": "sources", "rate": "scalar_nonnegative", "weight": "scalar_finite"}),
    "CurrentStep": (lambda **k: CurrentStep(**({"target": "P", "amplitude": 10.0} | k)),
                    {"amplitude": "scalar_finite"}),
    "NoiseCurrent": (lambda **k: bs.NoiseCurrent(**({"target": "P", "sigma": 10.0} | k)),
                     {"sigma": "scalar_nonnegative", "mean": "scalar_finite"}),
    "Normal": (lambda **k: Normal(**({"mean": 0.0, "std": 1.0} | k)), {"mean": "scalar_finite",
                                                                       "std": "scalar_nonnegative"}),
    "Uniform": (lambda **k: Uniform(**({"low": 0.0, "high": 1.0} | k)), {"low": "scalar_finite"}),
    "fixed_probability": (lambda **k: connectivity.fixed_probability(
        jax.random.key(0), **({"n_pre": 4, "n_post": 4, "p": 0.5} | k)),
        {"p": "probability", "n_pre": "count", "n_post": "count"}),
    "LiRinzel": (lambda **k: LiRinzel(SIZE, **k), {"Ca_tot": "positive", "tau_IP3": "positive"}),
    "AstroModulated": (lambda **k: AstroModulated(LIF(SIZE), **k), {"tau_astro": "positive",
                                                                    "gain_astro": "finite"}),
    "STDP": (lambda **k: STDP(**k), {"tau_plus": "scalar_positive", "tau_minus": "scalar_positive",
                                     "A_plus": "scalar_finite"}),
    "run": (_run, {"dt": "scalar_positive", "n_steps": "steps"}),
    "simulate": (_simulate, {"duration": "scalar_positive", "dt": "scalar_positive"}),
    "simulate_options": (_simulate, {"checkpoint_every": "positive_steps", "chunk_steps": "positive_steps"}),
    "StateMonitor": (lambda **k: StateMonitor(**({"population": "P", "variable": "v"} | k)),
                     {"every": "positive_steps"}),
    "CountMonitor": (lambda **k: CountMonitor(**({"population": "P"} | k)), {"start": "steps"}),
    "MeanMonitor": (lambda **k: MeanMonitor(**({"population": "P", "variable": "v"} | k)),
                    {"power": "positive_steps"}),
    "Checkpointed": (lambda **k: Checkpointed(**k), {"chunk": "positive_steps"}),
    "Truncated": (lambda **k: Truncated(**({"window": 2} | k)), {"window": "positive_steps",
                                                                 "chunk": "positive_steps"}),
    "SpikingLayer": (lambda **k: SpikingLayer(**({"n_in": 3, "n_out": 4, "key": jax.random.key(0)} | k)),
                     {"n_in": "count", "n_out": "count", "tau_syn": "scalar_positive", "dt": "scalar_positive"}),
    "LeakyReadout": (lambda **k: LeakyReadout(**({"n_in": 3, "n_out": 4, "key": jax.random.key(0)} | k)),
                     {"tau": "scalar_positive", "dt": "scalar_positive"}),
    "EventProjection": (lambda **k: EventProjection(**({"pre": "P", "post": "P", "receptor": "ge",
                                                        "weights": _matrix()} | k)),
                        {"delay": "scalar_nonnegative", "capacity": "optional_count", "pre_range": "range"}),
    "DenseProjection": (lambda **k: DenseProjection(**({"pre": "P", "post": "P", "receptor": "ge",
                                                        "weight": np.ones((4, 4))} | k)),
                        {"weight": "matrix_finite", "bias": "vector_finite"}),
    "PlasticProjection": (lambda **k: PlasticProjection(**({"pre": "P", "post": "P", "receptor": "ge",
                                                            "weights": _matrix(), "rule": STDP()} | k)),
                          {"delay": "scalar_nonnegative", "capacity": "optional_count"}),
    "DelayedEventOperator": (lambda **k: DelayedEventOperator.from_sparse(
        **({"matrix": _matrix(), "delays": 2} | k)),
                             {"delays": "nonnegative", "dt": "scalar_positive", "max_delay": "optional_count",
                              "capacity": "optional_count"}),
    "distance_dependent": (lambda **k: connectivity.distance_dependent(jax.random.key(0), **(
        {"pre_positions": np.zeros((4, 4)), "post_positions": np.zeros((4, 4)), "probability": lambda d: 0.5 + 0 * d}
        | k)), {"pre_positions": "matrix_finite"}),
    "fixed_in_degree": (lambda **k: connectivity.fixed_in_degree(jax.random.key(0), **({"n_pre": 4, "n_post": 4,
                                                                                       "k": 2} | k)),
                        {"n_pre": "count", "n_post": "count", "k": "degree"}),
    "fixed_total_number": (lambda **k: connectivity.fixed_total_number(
        jax.random.key(0), **({"n_pre": 4, "n_post": 4, "n": 6} | k)), {"n_pre": "count", "n_post": "count", "n": "steps"}),
    "fixed_out_degree": (lambda **k: connectivity.fixed_out_degree(jax.random.key(0), **({"n_pre": 4, "n_post": 4,
                                                                                         "k": 2} | k)),
                         {"k": "degree"}),
    "all_to_all": (lambda **k: connectivity.all_to_all(**({"n_pre": 4, "n_post": 4} | k)),
                   {"n_pre": "count", "n_post": "count", "weight": "scalar_finite"}),
    "from_indices": (lambda **k: connectivity.from_indices(**({"pre": [0, 1], "post": [1, 0], "n_pre": 2,
                                                               "n_post": 2} | k)),
                     {"n_pre": "count", "weight": "scalar_finite"}),
    "fit": (_fit, {"epochs": "count", "batch_size": "count", "patience": "optional_count",
                   "max_steps": "optional_count", "min_delta": "scalar_nonnegative"}),
    "TripletSTDP": (lambda **k: TripletSTDP(**k), {"tau_x": "scalar_positive", "A3_plus": "scalar_finite"}),
    "RewardModulatedSTDP": (lambda **k: RewardModulatedSTDP(**k), {"tau_c": "scalar_positive",
                                                                   "tau_d": "scalar_positive", "lr": "scalar_finite"}),
    "ModulatedHebbian": (lambda **k: ModulatedHebbian(**k), {"tau_pre": "scalar_positive", "lr": "scalar_finite"}),
    "Oja": (lambda **k: Oja(**k), {"tau_rate": "scalar_positive", "lr": "scalar_finite"}),
    "SynapticScaling": (lambda **k: SynapticScaling(**k), {"tau_rate": "scalar_positive",
                                                           "target_rate": "scalar_nonnegative"}),
    "HomeostaticThreshold": (lambda **k: HomeostaticThreshold(**({"size": SIZE} | k)),
                             {"size": "count", "tau_rate": "scalar_positive", "eta": "scalar_finite"}),
    "GChI": (lambda **k: GChI(**({"size": SIZE} | k)), {"size": "count", "substeps": "positive_steps"}),
    "TripartiteSynapse": (lambda **k: TripartiteSynapse(**({"size": SIZE} | k)),
                          {"size": "count", "U_0_star": "probability", "Omega_f": "positive"}),
    "GapJunctions": (lambda **k: GapJunctions(**({"pairs": [(0, 1)], "n": SIZE} | k)),
                     {"n": "count", "F": "scalar_finite", "omega_I": "scalar_positive"}),
    "AstroSTDP": (lambda **k: AstroSTDP(**k), {"tau_plus": "scalar_positive", "eta": "scalar_finite"}),
    "GlobalAstrocyte": (lambda **k: GlobalAstrocyte(**k), {"tau": "scalar_positive", "w_in": "scalar_finite"}),
    "AMPA": (lambda **k: AMPA(**k), {"tau": "scalar_positive", "E_rev": "scalar_finite"}),
    "GABA_A": (lambda **k: GABA_A(**k), {"tau": "scalar_positive", "E_rev": "scalar_finite"}),
    "NMDA": (lambda **k: NMDA(**k), {"tau_rise": "scalar_positive", "tau_decay": "scalar_positive"}),
    "SpikeTimes": (lambda **k: SpikeTimes(**({"size": SIZE, "times": [0.5, 1.0], "indices": [0, 1], "dt": 0.1} | k)),
                   {"size": "count", "dt": "scalar_positive", "times": "vector_finite"}),
    "Population": (lambda **k: Population(**({"model": LIF(SIZE)} | k)), {"model": "model", "receptors": "mapping"}),
    "Network": (lambda **k: Network(**({"populations": {"P": Population(LIF(SIZE))}} | k)),
                {"populations": "populations", "projections": "mapping"}),
    "Sequential": (lambda **k: Sequential(**k), {"layers": "layers"}),
}

# values that are not bad for a particular parameter (documented meanings)
ALLOWED = {
    ("SpikingLayer", "tau_syn", None),  # no synapse
    ("Truncated", "chunk", None), ("Checkpointed", "chunk", None),  # default chunk
    ("simulate_options", "chunk_steps", None),  # default chunk
    ("CurrentStep", "amplitude", None),
    ("DenseProjection", "bias", None),  # no bias
    ("DelayedEventOperator", "dt", None),  # delays in steps
}


def _cases():
    for entry, (_, params) in ENTRY_POINTS.items():
        for param, kind in params.items():
            for value in BAD[kind]:
                if (entry, param, value if value is None else object()) in ALLOWED:
                    continue
                yield pytest.param(entry, param, value, id=f"{entry}-{param}-{_label(value)}")


def _label(value):
    if isinstance(value, np.ndarray):
        return f"shape{value.shape}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_label(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_label(v) for v in value) + "]"
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, (str, bytes, int, float, tuple)) or value is None:
        return repr(value)
    return type(value).__name__ + "(...)"


CASES = list(_cases())


def test_fuzzer_covers_enough():
    assert len(CASES) >= 300 and len(ENTRY_POINTS) >= 20, (len(CASES), len(ENTRY_POINTS))


@pytest.mark.parametrize("entry, param, value", CASES)
def test_bad_input_is_refused_with_a_message_naming_it(entry, param, value):
    call, _ = ENTRY_POINTS[entry]
    with pytest.raises((ValueError, TypeError)) as info:
        call(**{param: value})
    message = str(info.value)
    assert param in message, f"{entry}({param}={_label(value)}): message does not name it: {message!r}"
    frames = traceback.extract_tb(info.value.__traceback__)
    raiser = frames[-1].filename
    assert "/brainsim/" in raiser and "/site-packages/" not in raiser, (
        f"{entry}({param}={_label(value)}) failed inside {raiser}: {message!r}")


# the same property with values drawn at random (hypothesis): out-of-range numbers of every kind, and per-neuron
# arrays of the right shape with one bad element
_tiny = 1e-300
_nonfinite = st.sampled_from(NON_FINITE)
DRAWN = {
    "positive": st.floats(max_value=0.0) | _nonfinite,
    "nonnegative": st.floats(max_value=-_tiny) | _nonfinite,
    "finite": _nonfinite,
    # (1 + 2e-16 is 1 in float32, where probabilities are kept: bad values start beyond its rounding)
    "probability": st.floats(min_value=1.0 + 1e-6) | st.floats(max_value=-_tiny) | _nonfinite,
    "count": st.integers(max_value=0) | st.floats(0.01, 1e6).filter(lambda v: v != int(v)),
    "steps": st.integers(max_value=-1) | st.floats(0.01, 1e6).filter(lambda v: v != int(v)),
    "sources": st.integers(max_value=-1) | st.floats(0.01, 1e6).filter(lambda v: v != int(v)),
    "positive_steps": st.integers(max_value=0) | st.floats(0.01, 1e6).filter(lambda v: v != int(v)),
}
DRAWN.update({"scalar_" + kind: DRAWN[kind] for kind in ("positive", "nonnegative", "finite")})
PER_NEURON = {"positive", "nonnegative", "finite"}  # also given as one value per neuron
PARAMS = [(entry, param, kind) for entry, (_, params) in ENTRY_POINTS.items() for param, kind in params.items()]


@settings(max_examples=400, deadline=None, derandomize=True)  # the same draws in every run (CI)
@given(data=st.data())
def test_drawn_bad_inputs_are_refused_with_a_message_naming_them(data):
    entry, param, kind = data.draw(st.sampled_from(PARAMS), label="parameter")
    if kind not in DRAWN:
        value = data.draw(st.sampled_from(BAD[kind]), label="value")
    else:
        value = data.draw(DRAWN[kind], label="value")
        if kind in PER_NEURON and data.draw(st.booleans(), label="as an array"):
            array = np.ones(SIZE)
            array[data.draw(st.integers(0, SIZE - 1), label="index")] = value
            value = array
    assume((entry, param, value if value is None else object()) not in ALLOWED)
    call, _ = ENTRY_POINTS[entry]
    with pytest.raises((ValueError, TypeError)) as info:
        call(**{param: value})
    assert param in str(info.value), f"{entry}({param}={_label(value)}): {info.value}"
    raiser = traceback.extract_tb(info.value.__traceback__)[-1].filename
    assert "/brainsim/" in raiser and "/site-packages/" not in raiser, f"{entry}({param}): raised in {raiser}"
