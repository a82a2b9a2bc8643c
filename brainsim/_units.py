"""Physical quantities at the edge: values with units (pint, brainunit, quantities) become brainsim's numbers.

brainsim computes in ms, mV, pA, nS, pF, Hz and µM. A parameter given as a quantity is converted once, by its own
dimension, to the unit of that dimension (``20 * ureg.ms`` -> 20.0, ``0.02 * ureg.second`` -> 20.0,
``3 * ureg.nA`` -> 3000.0, ``10 * ureg.Hz`` -> 10.0, ``0.1 * ureg.uS`` -> 100.0); plain numbers are taken to be
in those units already. A quantity of any other dimension is an error naming it.
"""
from __future__ import annotations

BASE_UNITS = ("ms", "mV", "pA", "nS", "pF", "Hz", "uM", "fC", "um", "dimensionless")


def _pint_magnitude(q):
    for unit in BASE_UNITS:
        try:
            return q.to(unit).magnitude
        except Exception:  # pint.DimensionalityError (pint is optional)
            continue
    raise ValueError(f"a quantity in {q.units} has no brainsim unit (ms, mV, pA, nS, pF, Hz, uM)")


def _brainunit_magnitude(q):
    import brainunit as bu

    for unit in ("ms", "mV", "pA", "nS", "pF", "Hz", "uM"):
        target = getattr(bu, unit)
        if q.dim == target.dim:
            return q.to_decimal(target)
    if q.dim == bu.DIMENSIONLESS:
        return q.to_decimal()
    raise ValueError(f"a quantity in {q.unit} has no brainsim unit (ms, mV, pA, nS, pF, Hz, uM)")


def _quantities_magnitude(q):
    for unit in ("ms", "mV", "pA", "nS", "pF", "Hz", "uM"):
        try:
            return q.rescale(unit).magnitude
        except ValueError:
            continue
    raise ValueError(f"a quantity in {q.dimensionality} has no brainsim unit (ms, mV, pA, nS, pF, Hz, uM)")


def is_quantity(value) -> bool:
    """Whether ``value`` carries units (pint, brainunit or quantities)."""
    module = type(value).__module__.split(".")[0]
    return module in ("pint", "brainunit", "quantities")


def magnitude(value):
    """``value`` in brainsim's units: a quantity converted by its dimension, anything else unchanged."""
    if not is_quantity(value):
        return value
    module = type(value).__module__.split(".")[0]
    if module == "pint":
        return _pint_magnitude(value)
    if module == "brainunit":
        return _brainunit_magnitude(value)
    return _quantities_magnitude(value)
