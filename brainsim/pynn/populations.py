"""Population, PopulationView and Assembly of the brainsim backend. Parameters are kept per neuron in PyNN
units (``_parameters``: native name -> array); initial values likewise (``_init_values``)."""
from __future__ import annotations

import numpy as np

from pyNN import common, errors
from pyNN.parameters import ParameterSpace, Sequence, simplify
from pyNN.standardmodels import StandardCellType

from . import simulator
from .recording import Recorder


class Assembly(common.Assembly):
    _simulator = simulator


def _check_spike_times(pop):
    values = pop._parameters.get("spike_times")
    if values is None:
        return
    for seq in np.asarray(values, dtype=object).ravel():
        ts = np.asarray(getattr(seq, "value", seq), dtype=float).ravel()
        if ts.size > 1 and np.any(np.diff(ts) < 0):
            raise errors.InvalidParameterValueError(
                "Spike times given to SpikeSourceArray must be in increasing order")


class _ParameterAccess:
    """``_get_parameters`` shared by Population and PopulationView."""

    def _get_parameters(self, *names):
        if isinstance(self.celltype, StandardCellType):
            if any(name in self.celltype.computed_parameters() for name in names):
                native_names = self.celltype.get_native_names()
            else:
                native_names = self.celltype.get_native_names(*names)
            return self.celltype.reverse_translate(self._get_native_parameters(*native_names))
        return self._get_native_parameters(*names)


class PopulationView(_ParameterAccess, common.PopulationView):
    _assembly_class = Assembly
    _simulator = simulator

    def _get_native_parameters(self, *names):
        values = {name: simplify(self.parent._parameters[name][self.mask]) for name in names}
        return ParameterSpace(values, shape=(self.size,))

    def _set_parameters(self, parameter_space):
        parameter_space.evaluate(simplify=False)
        for name, value in parameter_space.items():
            self.parent._parameters[name][self.mask] = value
        _check_spike_times(self.parent)

    def _set_initial_value_array(self, variable, initial_values):
        parent = self.parent
        values = np.asarray(initial_values.evaluate(simplify=False), dtype=float)
        full = np.array(np.broadcast_to(parent._init_values.get(variable, np.nan), (parent.size,)), dtype=float)
        full[self.mask] = values
        parent._init_values[variable] = full
        dirty = parent._dirty.setdefault(variable, np.zeros(parent.size, bool))
        dirty[self.mask] = True

    def _get_view(self, selector, label=None):
        return PopulationView(self, selector, label)


class Population(_ParameterAccess, common.Population):
    __doc__ = common.Population.__doc__
    _simulator = simulator
    _recorder_class = Recorder
    _assembly_class = Assembly

    def _create_cells(self):
        first = simulator.state.id_counter
        self.all_cells = np.array([simulator.ID(i) for i in range(first, first + self.size)], dtype=simulator.ID)
        self._mask_local = np.ones(self.size, bool)
        for cell in self.all_cells:
            cell.parent = self
        simulator.state.id_counter += self.size
        if isinstance(self.celltype, StandardCellType):
            space = self.celltype.native_parameters
        else:
            space = self.celltype.parameter_space
        space.shape = (self.size,)
        space.evaluate(simplify=False)
        self._parameters = space.as_dict()
        self._init_values, self._dirty = {}, {}
        _check_spike_times(self)
        if not hasattr(self.celltype, "events") and not hasattr(self.celltype, "brainsim_model"):
            raise NotImplementedError(f"{type(self.celltype).__name__} is not available in brainsim.pynn")
        simulator.state.populations.append(self)

    def _native_values(self) -> dict:
        """Parameter name -> per-neuron array, PyNN units."""
        return {k: v for k, v in self._parameters.items()}

    def _set_initial_value_array(self, variable, initial_values):
        values = np.asarray(initial_values.evaluate(simplify=False), dtype=float)
        self._init_values[variable] = np.broadcast_to(values, (self.size,)).copy()
        self._dirty[variable] = np.ones(self.size, bool)

    def _get_view(self, selector, label=None):
        return PopulationView(self, selector, label)

    def _get_native_parameters(self, *names):
        return ParameterSpace({name: simplify(self._parameters[name]) for name in names}, shape=(self.size,))

    def _set_parameters(self, parameter_space):
        parameter_space.evaluate(simplify=False)
        for name, value in parameter_space.items():
            self._parameters[name] = value
        _check_spike_times(self)


__all__ = ["Assembly", "Population", "PopulationView", "Sequence"]
