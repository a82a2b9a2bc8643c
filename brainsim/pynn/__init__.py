"""A PyNN backend for brainsim: ``import brainsim.pynn as sim`` works like ``import pyNN.nest as sim``.

PyNN scripts run unchanged; at every ``run()`` the PyNN network is built as a brainsim ``Network`` and
simulated from where the previous run ended (``brainsim.pynn.engine``). Units at the API are PyNN's (ms, mV,
nA, nF, uS, Hz) and are converted to brainsim's (ms, mV, pA, pF, nS, Hz) when the network is built.
"""
from pyNN import errors, random, space  # noqa: F401
from pyNN.connectors import *  # noqa: F401,F403
from pyNN.network import Network  # noqa: F401
from pyNN.random import GSLRNG, NumpyRNG, RandomDistribution  # noqa: F401
from pyNN.recording import *  # noqa: F401,F403
from pyNN.space import Space  # noqa: F401
from pyNN.standardmodels import StandardCellType

from .cells import (EIF_cond_alpha_isfa_ista, EIF_cond_exp_isfa_ista, HH_cond_exp, IF_cond_alpha,  # noqa: F401
                    IF_cond_exp, IF_curr_alpha, IF_curr_exp, Izhikevich, SpikeSourceArray, SpikeSourceGamma,
                    SpikeSourcePoisson, SpikeSourcePoissonRefractory)
from .control import (end, get_current_time, get_max_delay, get_min_delay, get_time_step,  # noqa: F401
                      initialize, num_processes, rank, reset, run, run_for, run_until, setup)
from .electrodes import ACSource, DCSource, NoisyCurrentSource, StepCurrentSource  # noqa: F401
from .populations import Assembly, Population, PopulationView  # noqa: F401
from .procedural_api import connect, create, record, record_gsyn, record_v, set  # noqa: F401
from .projections import Projection  # noqa: F401
from .synapses import (AdditiveWeightDependence, MultiplicativeWeightDependence, SpikePairRule,  # noqa: F401
                       StaticSynapse, STDPMechanism, TsodyksMarkramSynapse)


def list_standard_models():
    """Names of the standard cell types this backend provides."""
    return [obj.__name__ for obj in globals().values()
            if isinstance(obj, type) and issubclass(obj, StandardCellType)]
