"""Synaptic kinetics defined by their equations: ``EquationKinetics``.

The synaptic variables of one receptor (one set per postsynaptic neuron, all synapses summed, as every brainsim
kinetics) follow linear, homogeneous ODEs, written like Brian2's synaptic equations::

    alpha = EquationKinetics('''
        dg/dt = (e*y - g)/tau : siemens
        dy/dt = -y/tau : siemens
        ''', params={"tau": 2.0, "e": 2.718281828}, on_arrival="y += w", value="g")

``on_arrival`` statements run when weight ``w`` arrives (nS or pA; Brian2's ``on_pre``); ``value`` is the
conductance (nS) or current (pA) the receptor's output reads (default: the first variable). Between arrivals the
variables relax exactly: ``y(t + dt) = expm(A dt) y(t)`` with ``A`` the system's matrix (a system that is not
linear and homogeneous in its variables is refused). Parameters are scalars shared by the receptor's synapses.
Text needs SymPy; functions of a namespace ``q`` (``q.g``, ``q.tau``, ``q.w``) need nothing.
"""
from __future__ import annotations

import collections
import functools
from typing import Any, Callable, Mapping, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite
from .._types import Array
from ..core.contracts import AbstractKinetics
from ..neurons import equation_text
from ..neurons.equation_text import Namespace


@functools.lru_cache(maxsize=64)
def _state_class(variables: tuple):
    return collections.namedtuple("KineticsState", variables)


def _compiled(value, owner: str, what: str, subs: dict, known: tuple):
    if callable(value):
        return value, None
    if isinstance(value, str):
        expr = equation_text.expression(value, owner, what, subs)
        return equation_text.compile_expression(expr, known), expr
    raise TypeError(f"{owner}: {what} must be text or a function of the namespace, got {type(value).__name__}")


class EquationKinetics(AbstractKinetics):
    """Linear synaptic kinetics from equations (see the module docstring).

    Args:
        equations: a Brian2-style block (``"dg/dt = -g/tau : siemens"`` lines, subexpressions allowed) or a mapping
            variable -> derivative (text or function of ``q``), per ms.
        params: parameter name -> scalar value.
        on_arrival: statements run on an arrival of weight ``w``, text (``"y += w"``) or a mapping variable ->
            new value (text or function of ``q``, which holds ``w``).
        value: the receptor's conductance/current, text or function of ``q`` (default: the first variable).
    """

    params: dict
    variables: tuple = eqx.field(static=True)
    derivatives: tuple = eqx.field(static=True)
    on_arrival: tuple = eqx.field(static=True)
    value_fn: Callable = eqx.field(static=True)

    def __init__(self, equations, *, params: Optional[Mapping[str, Any]] = None, on_arrival="", value=None):
        owner = "EquationKinetics"
        params = dict(params or {})
        for name, v in params.items():
            check_finite(v, name, owner)
            if np.ndim(v) != 0:
                raise ValueError(f"{owner}: parameter {name!r} must be a scalar (shared by the receptor's synapses)")
        subs = {}
        if isinstance(equations, str):
            block = equation_text.parse_block(equations, owner)
            subs = equation_text.substitutions(block.subexpressions, owner)
            equations = block.derivatives
        elif not isinstance(equations, Mapping) or not equations:
            raise TypeError(f"{owner}: equations must be text or a non-empty mapping variable -> derivative")
        self.variables = tuple(equations)
        known = self.variables + tuple(params) + ("w",)
        texts = {}
        derivatives = []
        for name, rhs in equations.items():
            fn, expr = _compiled(rhs, owner, f"d{name}/dt", subs, known)
            derivatives.append(fn)
            if expr is not None:
                texts[f"d{name}/dt"] = expr
        statements = (equation_text.parse_statements(on_arrival, owner) if isinstance(on_arrival, str)
                      else tuple(dict(on_arrival).items()))
        if not statements:
            raise ValueError(f"{owner}: on_arrival must say what an arrival of weight w does (e.g. 'g += w')")
        arrivals = []
        for name, rhs in statements:
            if name not in self.variables:
                raise ValueError(f"{owner}: on_arrival sets unknown variable {name!r}; variables: "
                                 f"{', '.join(self.variables)}")
            fn, expr = _compiled(rhs, owner, f"on_arrival of {name!r}", subs, known)
            arrivals.append((name, fn))
            if expr is not None:
                texts[f"on_arrival of {name!r}"] = expr
        self.value_fn, expr = _compiled(value if value is not None else self.variables[0], owner, "value", subs,
                                        known)
        if expr is not None:
            texts["value"] = expr
        for what, e in texts.items():
            unknown = sorted(equation_text.free_names(e) - set(known) - set(equation_text.UNITS))
            if unknown:
                raise ValueError(f"{owner}: {what} uses {', '.join(map(repr, unknown))} without a value; give "
                                 f"params={{{unknown[0]!r}: ...}}")
        self.derivatives, self.on_arrival = tuple(derivatives), tuple(arrivals)
        self.params = {k: jnp.asarray(v, jnp.result_type(float)) for k, v in params.items()}
        self._check_linear(owner)

    # --------------------------------------------------------------------------------------------- dynamics
    def _rhs(self, y: dict) -> dict:
        q = Namespace(self.params)
        q.update(y)
        return {k: jnp.broadcast_to(jnp.asarray(fn(q), jnp.result_type(float)), y[k].shape)
                for k, fn in zip(self.variables, self.derivatives)}

    def matrix(self) -> Array:
        """The system matrix ``A`` (1/ms): ``dy/dt = A y``."""
        n = len(self.variables)
        eye = jnp.eye(n)
        columns = [self._rhs({k: eye[j, i:i + 1] for i, k in enumerate(self.variables)}) for j in range(n)]
        return jnp.stack([jnp.concatenate([col[k] for k in self.variables]) for col in columns], axis=1)

    def _check_linear(self, owner: str) -> None:
        rng = np.random.default_rng(0)
        a, b = (rng.normal(size=(len(self.variables), 3)) for _ in range(2))
        f = lambda x: np.stack([np.asarray(v) for v in self._rhs(  # noqa: E731
            {k: jnp.asarray(x[i]) for i, k in enumerate(self.variables)}).values()])
        if not np.allclose(f(a + 2.0 * b), f(a) + 2.0 * f(b), rtol=1e-4, atol=1e-6) or np.any(np.abs(f(0 * a)) > 1e-9):
            raise ValueError(f"{owner}: the equations must be linear and homogeneous in {', '.join(self.variables)} "
                             f"(no constant terms, no products of variables): they are integrated exactly between "
                             f"arrivals")

    # --------------------------------------------------------------------------------------------- contract
    def init(self, size: int):
        return _state_class(self.variables)(*(jnp.zeros((size,)) for _ in self.variables))

    def decay(self, state, dt: float):
        propagator = jax.scipy.linalg.expm(self.matrix() * dt)
        y = jnp.stack(state)  # (n_variables, size)
        return _state_class(self.variables)(*(propagator @ y))

    def arrive(self, state, amount: Array):
        q = Namespace(self.params)
        q.update(state._asdict())
        q["w"] = amount
        new = dict(state._asdict())
        for name, fn in self.on_arrival:
            new[name] = jnp.broadcast_to(jnp.asarray(fn(q), amount.dtype), amount.shape)
            q[name] = new[name]
        return _state_class(self.variables)(**new)

    def arrive_into(self, state, deliver):
        amount, aux = deliver(jnp.zeros_like(state[0]))
        return self.arrive(state, amount), aux

    def value(self, state, dt: float) -> Array:
        q = Namespace(self.params)
        q.update(state._asdict())
        return jnp.broadcast_to(jnp.asarray(self.value_fn(q), state[0].dtype), state[0].shape)

    def time_constants(self) -> tuple:
        rates = -np.real(np.linalg.eigvals(np.asarray(self.matrix())))
        return tuple(jnp.asarray(1.0 / r) for r in rates if r > 0)
