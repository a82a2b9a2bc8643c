"""Projection of the brainsim backend. Connections are kept as arrays (global pre/post cell ids and attributes
in PyNN units); at each run they become brainsim projections, one per (pre population, post population) pair:
an ``EventProjection`` when all delays are equal, a ``DelayedProjection`` (per-synapse delays) otherwise.
Weights: nA -> pA (current-based) or uS -> nS (conductance-based) via the target cell type's ``weight_scale``;
delays in ms rounded to whole steps. A delay d delivers a spike of time t into the receptor at t + d."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

import brainsim as bs
from brainsim import connectivity
from brainsim.plasticity.stdp import STDP
from pyNN import common
from pyNN.space import Space

from . import simulator
from .synapses import STDPMechanism, StaticSynapse


class Connection(common.Connection):
    """One connection, a view onto its projection's arrays (indices relative to ``projection.pre``/``post``)."""

    def __init__(self, projection, k):
        object.__setattr__(self, "_prj", projection)
        object.__setattr__(self, "_k", k)

    @property
    def presynaptic_index(self):
        return int(self._prj._pre_index[self._k])

    @property
    def postsynaptic_index(self):
        return int(self._prj._post_index[self._k])

    def __getattr__(self, name):
        attrs = object.__getattribute__(self, "_prj")._attrs
        if name not in attrs and name + "s" in attrs:  # PyNN's get() drops a final "s" (weights -> weight)
            name = name + "s"
        if name in attrs:
            return float(attrs[name][object.__getattribute__(self, "_k")])
        raise AttributeError(name)

    def __setattr__(self, name, value):
        if name in self._prj._attrs:
            self._prj._attrs[name][self._k] = value
        else:
            object.__setattr__(self, name, value)

    def as_tuple(self, *names):
        return tuple(getattr(self, n) for n in names)


class Projection(common.Projection):
    __doc__ = common.Projection.__doc__
    _simulator = simulator
    _static_synapse_class = StaticSynapse

    def __init__(self, presynaptic_population, postsynaptic_population, connector, synapse_type=None,
                 source=None, receptor_type=None, space=Space(), label=None):
        super().__init__(presynaptic_population, postsynaptic_population, connector, synapse_type, source,
                         receptor_type, space, label)
        self._pre_chunks, self._post_chunks, self._attr_chunks = [], [], defaultdict(list)
        self._plastic = {}  # brainsim projection name -> (rows, pre indices, post indices, weight scale)
        connector.connect(self)
        self._finish()
        simulator.state.projections.append(self)

    # ---- connection creation (called by PyNN's connectors) -------------------------------------------------
    def _convergent_connect(self, presynaptic_indices, postsynaptic_index, location_selector=None,
                            **connection_parameters):
        if location_selector is not None:
            raise NotImplementedError("brainsim.pynn has no multicompartment neurons")
        pre = np.asarray(presynaptic_indices, dtype=np.int64).ravel()
        if pre.size == 0:
            return
        self._pre_chunks.append(pre)
        self._post_chunks.append(np.full(pre.size, int(postsynaptic_index), np.int64))
        for name, value in connection_parameters.items():
            self._attr_chunks[name].append(np.broadcast_to(np.asarray(value, dtype=float), pre.shape).copy())

    def _finish(self):
        cat = (lambda parts: np.concatenate(parts) if parts else np.zeros(0))
        self._pre_index = cat(self._pre_chunks).astype(np.int64)
        self._post_index = cat(self._post_chunks).astype(np.int64)
        self._attrs = {name: cat(parts) for name, parts in self._attr_chunks.items()}
        for name, value in self.synapse_type.native_parameters.items():
            if name not in self._attrs:
                value.shape = (1,)
                self._attrs[name] = np.full(len(self._pre_index), float(value.evaluate(simplify=True)))
        if "delay" in self._attrs:
            self._attrs["delay"] = self._round_delay(self._attrs["delay"])
        del self._pre_chunks, self._post_chunks, self._attr_chunks

    @staticmethod
    def _round_delay(d):
        dt = simulator.state.dt
        return np.maximum(np.rint(np.asarray(d, float) / dt), 1) * dt

    def __len__(self):
        return len(self._pre_index)

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            if i < 0:
                i += len(self)
            if not 0 <= i < len(self):
                raise IndexError(i)
            return Connection(self, int(i))
        return [Connection(self, k) for k in range(len(self))[i]]

    @property
    def connections(self):
        return [Connection(self, k) for k in range(len(self))]

    def _set_attributes(self, parameter_space):
        parameter_space.evaluate(simplify=False)
        for name, value in parameter_space.items():
            arr = np.asarray(value, dtype=float)
            new = arr[self._pre_index, self._post_index] if arr.ndim == 2 else np.broadcast_to(arr, self._pre_index.shape)
            self._attrs[name] = np.array(new, dtype=float)
            if name == "delay":
                self._attrs[name] = self._round_delay(self._attrs[name])

    def _set_initial_value_array(self, variable, initial_value):
        raise NotImplementedError("brainsim.pynn: synaptic initial values are not supported")

    # ---- brainsim projections -------------------------------------------------------------------------
    def _brainsim_projections(self, prefix, names, state):
        """``{name: brainsim projection}`` for this projection's connections."""
        if not len(self):
            return {}
        pre_ids = np.asarray(self.pre.all_cells, dtype=np.int64)[self._pre_index]
        post_ids = np.asarray(self.post.all_cells, dtype=np.int64)[self._post_index]
        out = {}
        for pre_pop, pre_idx, where in state.population_of(pre_ids):
            for post_pop, post_idx, sub in state.population_of(post_ids[where]):
                rows = where[sub]
                name = f"{prefix}_{names[pre_pop]}_{names[post_pop]}"
                out[name] = self._one(names[pre_pop], names[post_pop], pre_pop.size, post_pop.size,
                                      pre_idx[sub], post_idx, rows, post_pop, state.dt)
                if isinstance(self.synapse_type, STDPMechanism):
                    scale = getattr(post_pop.celltype, "weight_scale", 1000.0)
                    self._plastic[name] = (rows, pre_idx[sub], post_idx, scale)
        return out

    def _stdp(self, rows, scale):
        """brainsim's ``STDP`` rule for the connections ``rows`` (weights in brainsim units)."""
        a = {k: float(np.mean(self._attrs[k][rows])) for k in ("tau_plus", "tau_minus", "A_plus", "A_minus",
                                                               "w_min", "w_max")}
        w_min, w_max = a["w_min"] * scale, a["w_max"] * scale
        soft = self.synapse_type.weight_dependence.bounds == "soft"
        amplitude = (w_max - w_min) if soft else w_max  # PyNN's amplitudes are relative to the weight range
        return STDP(tau_plus=a["tau_plus"], tau_minus=a["tau_minus"], A_plus=a["A_plus"] * amplitude,
                    A_minus=a["A_minus"] * amplitude, w_min=w_min, w_max=max(w_max, w_min + 1e-12),
                    bounds="soft" if soft else "hard")

    def _read_learned(self, net, net_state) -> None:
        """Copy the weights learned in the last run back into the connections (PyNN units)."""
        for name, (rows, pre_idx, post_idx, scale) in self._plastic.items():
            projection = net.projections[name]
            learned = np.asarray(projection.learned(net_state.projections[name]).weights).ravel()
            slots = projection.synapse_slots(list(zip(pre_idx.tolist(), post_idx.tolist())))
            self._attrs["weight"][rows] = learned[slots] / scale

    def _stp(self, rows):
        if "tau_rec" not in self._attrs:
            return None
        U = float(np.mean(self._attrs["U"][rows]))
        tau_rec = float(np.mean(self._attrs["tau_rec"][rows]))
        tau_facil = float(np.mean(self._attrs["tau_facil"][rows]))
        if tau_facil <= 0:
            # no facilitation: release u x with u = U at every spike; brainsim increments u before release
            # (u <- u + U_b (1 - u) from rest U_b), so U_b (2 - U_b) = U
            return bs.TsodyksMarkram(U=1.0 - np.sqrt(1.0 - U), tau_f=1e-3, tau_d=tau_rec)
        return bs.TsodyksMarkram(U=U, tau_f=tau_facil, tau_d=tau_rec)

    def _one(self, pre, post, n_pre, n_post, pre_idx, post_idx, rows, post_pop, dt):
        scale = getattr(post_pop.celltype, "weight_scale", 1000.0)
        weights = self._attrs["weight"][rows] * scale
        delays = self._attrs["delay"][rows]
        receptor = self.receptor_type
        stp = self._stp(rows)
        rule = self._stdp(rows, scale) if isinstance(self.synapse_type, STDPMechanism) else None
        if np.allclose(delays, delays[0]):
            matrix = connectivity.from_indices(pre_idx, post_idx, n_pre, n_post, weights.astype(np.float32),
                                               multapses=rule is None)
            return bs.Projection(pre, post, receptor, matrix, delay=float(delays[0]), stp=stp, plasticity=rule)
        if rule is not None:
            raise NotImplementedError("brainsim.pynn: STDP with heterogeneous delays in one projection")
        op = bs.DelayedEventOperator.from_indices(pre_idx, post_idx, n_pre, n_post, weights.astype(np.float32),
                                                  delays, dt=dt)
        return bs.DelayedProjection(pre, post, receptor, op, stp=stp)
