"""Neuron models defined by their equations, as in Brian2: state variables, derivatives, threshold, reset.

::

    adex = EquationNeuron(100, '''
        dv/dt = (g_L*(E_L - v) + g_L*delta_T*exp((v - V_T)/delta_T) - w + I_syn)/C_m : volt (unless refractory)
        dw/dt = (a*(v - E_L) - w)/tau_w : amp
        ''', params=dict(C_m=281.0, g_L=30.0, E_L=-70.6, V_T=-50.4, delta_T=2.0, a=4.0, tau_w=144.0, b=80.5,
                         v_reset=-70.6), threshold="v > 0", reset="v = v_reset; w += b", initial={"v": "E_L"})

Noise is part of the equations, e.g. a membrane with an Ornstein–Uhlenbeck conductance (Destexhe et al. 2001)::

    dv/dt = (g_L*(E_L - v) + g_e*(E_e - v) + I_syn)/C_m : volt
    dg_e/dt = (g_e0 - g_e)/tau_e + sigma_e*sqrt(2/tau_e)*xi_e : siemens

Equations are text (Brian2's syntax, parsed with SymPy: ``brainsim.neurons.equation_text``) or Python
functions of a namespace ``q`` (``q.v``, ``q.C_m``, ``q.I_syn``): ``{"v": lambda q: (q.E_L - q.v)/q.tau}``.
Numbers are in brainsim's units (ms, mV, pA, nS, pF); time derivatives are per ms.

Names the equations may use: the state variables, the parameters (``params``: scalars or one value per
neuron; constants unless declared learnable with ``constrain``), ``I_syn`` (pA: the total synaptic and injected current at the membrane
variable's present value, ``current + sum_k g_k (E_k - v)``), and white noise ``xi``/``xi_<name>``
(ms^-1/2; Brian2's ``xi``).

One step of ``dt`` ms:

1. the refractory countdown advances (or, for a refractory condition such as ``"v > -20"`` (Brian2's
   ``refractory='v > -20*mV'``), a neuron that has spiked stays refractory until the condition is false at the
   start of a step); a neuron still
   refractory keeps its ``unless_refractory`` variables (Brian2's ``(unless refractory)`` flag) and cannot spike;
2. every variable advances by the chosen ``method`` from the values at the start of the step:

   - ``"euler"``: forward Euler; ``"rk2"``: the midpoint method; ``"rk4"``: classical Runge–Kutta;
   - ``"exp_euler"``: exponential Euler, each variable's derivative linearised in that variable
     (``f = A + B x``, ``B = df/dx`` by automatic differentiation) and integrated exactly with the others held
     (Brian2's ``exponential_euler``; exact for a variable that is linear in itself, such as a gating variable
     or a membrane with conductance input);
   - ``"exact"``: the matrix exponential of the system linearised at the start of the step (exact for linear
     systems with inputs constant over the step, e.g. a leaky membrane with exponential current variables);

   noise terms ``b xi`` add ``b sqrt(dt) N(0, 1)`` (Euler–Maruyama, ``b`` at the start of the step), or for
   ``"exp_euler"``/``"exact"`` the exact Ornstein–Uhlenbeck increment ``b sqrt((e^{2 B dt} - 1)/(2 B)) N(0, 1)``,
   so that the variance of a linear variable does not depend on dt;
3. threshold: a spike where the condition holds (``"v > v_th"``; a function returns how far above threshold,
   crossing at 0); the surrogate derivative is evaluated at that distance over ``threshold_scale``. With an
   ``escape_rate`` rho (per ms, so ``"40*Hz"`` reads as it should; escape noise, e.g.
   ``"rho0*exp((v - v_th)/delta)"``) a neuron also spikes with probability ``1 - exp(-rho dt)`` (surrogate derivative at that probability minus the uniform draw);
4. reset statements run in order for the neurons that spiked (``"v = v_reset; w += b"``), and their refractory
   period ``refractory`` (ms) starts.
"""
from __future__ import annotations

import collections
import functools
from typing import Any, Callable, Mapping, Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import as_param, check_choice, check_positive, check_size
from .._types import Array, ArrayLike
from ..core.integrators import refractory_countdown, rk4
from ..spikes import check_slope, check_surrogate, spike
from . import equation_text
from .equation_text import Namespace
from .base import AbstractNeuron, SynapticInput, as_input

EQUATION_METHODS = ("euler", "rk2", "rk4", "exp_euler", "exact")
_RESERVED = ("refractory", "I_syn", "t", "dt")


@functools.lru_cache(maxsize=128)
def state_class(variables: tuple):
    """The state ``NamedTuple`` of a model with these variables (one class per set of names)."""
    return collections.namedtuple("EquationState", variables + ("refractory",))


_phi1 = equation_text.exprel  # (e^z - 1)/z


def _as_function(value, owner: str, what: str, subs: dict):
    if callable(value):
        return value, None
    if isinstance(value, str):
        return None, equation_text.expression(value, owner, what, subs)
    raise TypeError(f"{owner}: {what} must be text or a function of the namespace, got {type(value).__name__}")


class EquationNeuron(AbstractNeuron):
    """A neuron model defined by its equations (see the module docstring for the step).

    Args:
        size: number of neurons.
        equations: a Brian2-style block of text (``"dv/dt = ... : volt (unless refractory)"`` lines, with
            subexpressions and parameter declarations), or a mapping variable -> derivative (text or a function
            of the namespace ``q``), per ms.
        params: parameter name -> value (scalar or one per neuron), in the units the equations assume.
        threshold: spike condition, text (``"v > v_th"``) or a function of ``q`` returning the distance above
            threshold (spike where > 0).
        reset: statements run in order on spiking neurons, text (``"v = v_reset; w += b"``) or a mapping
            variable -> new value (text or function of ``q``).
        refractory: refractory period, ms (>= 0; scalar or per neuron), or a condition (text or a function of ``q``
            like ``threshold``) under which a neuron that has spiked stays refractory: with ``"v > -20"`` a
            spike needs an upward crossing.
        initial: variable -> initial value (a number, or the name of a parameter); default 0.
        method: ``"euler"``, ``"rk2"``, ``"rk4"``, ``"exp_euler"`` or ``"exact"``.
        membrane: the membrane potential variable (mV), read by conductance-based receptors and ``I_syn``.
        input_current: the name under which the equations read the synaptic and injected current (default
            ``I_syn``; ``"I"`` runs Brian2 equations whose input parameter is ``I`` as they are).
        unless_refractory: variables held during the refractory period (default: those flagged
            ``(unless refractory)`` in a text block; the membrane variable for equations given as a mapping).
        noise: for equations given as functions: variable -> function of ``q`` giving the coefficient ``b`` of
            an independent white noise in d(variable)/dt (unit of the variable per ms^1/2).
        threshold_scale: the distance above threshold at which the surrogate derivative is evaluated is divided
            by this (unit of the threshold expression; default 1).
        escape_rate: escape noise: the instantaneous firing intensity (1/ms), text or a function of ``q``, evaluated
            after the update; ``threshold`` may then be ``None`` (no deterministic threshold).
        surrogate, slope: surrogate derivative of the spike (``brainsim.spikes``).
    """

    params: dict
    initial_values: dict
    t_ref: Array  # ms
    size: int = eqx.field(static=True)
    variables: tuple = eqx.field(static=True)
    derivatives: tuple = eqx.field(static=True)
    noise_terms: tuple = eqx.field(static=True)  # (variable, noise name, coefficient function)
    threshold: Optional[Callable] = eqx.field(static=True)
    escape_rate: Optional[Callable] = eqx.field(static=True)
    refractory_condition: Optional[Callable] = eqx.field(static=True)
    reset: tuple = eqx.field(static=True)  # (variable, function)
    membrane: str = eqx.field(static=True)
    input_current: str = eqx.field(static=True)
    unless_refractory: tuple = eqx.field(static=True)
    method: str = eqx.field(static=True)
    threshold_scale: float = eqx.field(static=True)
    surrogate: str = eqx.field(static=True)
    slope: float = eqx.field(static=True)

    def __init__(self, size: int, equations, *, params: Optional[Mapping[str, ArrayLike]] = None,
                 threshold, reset=(), refractory: ArrayLike = 0.0, initial: Optional[Mapping[str, Any]] = None,
                 method: str = "euler", membrane: str = "v", input_current: str = "I_syn", unless_refractory=None,
                 noise: Optional[Mapping[str, Callable]] = None, threshold_scale: float = 1.0,
                 escape_rate=None, surrogate: str = "fast_sigmoid", slope: float = 10.0):
        owner = "EquationNeuron"
        self.size = check_size(size, owner)
        self.method = check_choice(method, EQUATION_METHODS, "method", owner)
        self.surrogate = check_surrogate(surrogate, owner)
        self.slope = check_slope(slope, owner)
        check_positive(threshold_scale, "threshold_scale", owner)
        self.threshold_scale = float(threshold_scale)
        condition = refractory if isinstance(refractory, str) or callable(refractory) else None
        if condition is None:
            check_positive(refractory, "refractory (ms)", owner, allow_zero=True)
        self.t_ref = as_param(0.0 if condition is not None else refractory, size, "refractory", owner)
        params = dict(params or {})

        flagged, subs = None, {}
        if isinstance(equations, str):
            block = equation_text.parse_block(equations, owner)
            subs = equation_text.substitutions(block.subexpressions, owner)
            flagged, equations = block.unless_refractory, block.derivatives
        elif not isinstance(equations, Mapping) or not equations:
            raise TypeError(f"{owner}: equations must be text or a non-empty mapping variable -> derivative, "
                            f"got {type(equations).__name__}")
        self.variables = tuple(equations)
        self.input_current = input_current
        if input_current in params:
            raise ValueError(f"{owner}: input_current {input_current!r} is also a parameter")
        for name in self.variables:
            if name in _RESERVED + (input_current,) or name in params:
                raise ValueError(f"{owner}: variable name {name!r} is reserved or also a parameter")
        if membrane not in self.variables:
            raise ValueError(f"{owner}: membrane {membrane!r} is not a variable; variables: {', '.join(self.variables)}")
        self.membrane = membrane

        # every piece as a function of the namespace; text goes through SymPy
        texts = {}  # piece -> SymPy expression, checked for unknown names below
        derivatives, noise_terms = [], []
        for name, rhs in equations.items():
            fn, expr = _as_function(rhs, owner, f"d{name}/dt", subs)
            if expr is not None:
                expr, coefficients = equation_text.split_noise(expr, owner, name)
                texts[f"d{name}/dt"] = expr
                for xi, b in coefficients.items():
                    texts[f"noise {xi} in d{name}/dt"] = b
                    noise_terms.append((name, xi, b))
            derivatives.append(fn if fn is not None else expr)
        for name, fn in (noise or {}).items():
            if name not in self.variables:
                raise ValueError(f"{owner}: noise given for unknown variable {name!r}")
            if not callable(fn):
                raise TypeError(f"{owner}: noise[{name!r}] must be a function of the namespace (text equations "
                                f"write the noise as '... + b*xi')")
            noise_terms.append((name, f"xi_{name}", fn))

        if isinstance(threshold, str):
            texts["threshold"] = thr = equation_text.threshold_distance(threshold, owner, subs)
        elif callable(threshold) or (threshold is None and escape_rate is not None):
            thr = threshold
        else:
            raise TypeError(f"{owner}: threshold must be text ('v > v_th') or a function (or None with an "
                            f"escape_rate), got {type(threshold).__name__}")
        escape = escape_rate
        if isinstance(escape_rate, str):
            texts["escape_rate"] = escape = equation_text.expression(escape_rate, owner, "escape_rate", subs)
        elif escape_rate is not None and not callable(escape_rate):
            raise TypeError(f"{owner}: escape_rate must be text or a function, got {type(escape_rate).__name__}")
        if isinstance(condition, str):
            texts["refractory"] = condition = equation_text.threshold_distance(condition, owner, subs, "refractory")
        statements = equation_text.parse_statements(reset, owner) if isinstance(reset, str) else tuple(
            dict(reset).items())
        resets = []
        for name, value in statements:
            if name not in self.variables:
                raise ValueError(f"{owner}: reset sets unknown variable {name!r}; variables: {', '.join(self.variables)}")
            fn, expr = _as_function(value, owner, f"reset of {name!r}", subs)
            if expr is not None:
                texts[f"reset of {name!r}"] = expr
            resets.append((name, fn if fn is not None else expr))

        known = self.variables + tuple(params) + (input_current,)
        noise_names = {xi for _, xi, _ in noise_terms}
        for what, expr in texts.items():
            unknown = sorted(equation_text.free_names(expr) - set(known) - set(equation_text.UNITS) - noise_names)
            if unknown:
                raise ValueError(f"{owner}: {what} uses {', '.join(map(repr, unknown))} without a value; give "
                                 f"params={{{unknown[0]!r}: ...}}")

        def compiled(piece):
            return piece if callable(piece) else equation_text.compile_expression(piece, known)

        self.derivatives = tuple(compiled(d) for d in derivatives)
        self.noise_terms = tuple((v, xi, compiled(b)) for v, xi, b in noise_terms)
        self.threshold = None if thr is None else compiled(thr)
        self.escape_rate = None if escape is None else compiled(escape)
        self.refractory_condition = None if condition is None else compiled(condition)
        self.reset = tuple((v, compiled(fn)) for v, fn in resets)
        frozen = (tuple(unless_refractory) if unless_refractory is not None
                  else flagged if flagged is not None else (membrane,))
        for name in frozen:
            if name not in self.variables:
                raise ValueError(f"{owner}: unless_refractory names unknown variable {name!r}")
        self.unless_refractory = frozen
        self.params = {name: as_param(value, size, name, owner) for name, value in params.items()}
        initial = dict(initial or {})
        for name in initial:
            if name not in self.variables:
                raise ValueError(f"{owner}: initial value given for unknown variable {name!r}")
        self.initial_values = {
            name: (self.params[initial[name]] if isinstance(initial.get(name), str) and initial[name] in self.params
                   else as_param(initial.get(name, 0.0), size, f"initial {name}", owner))
            for name in self.variables}

    # ------------------------------------------------------------------ contract
    def membrane_potential(self, state) -> Array:
        return getattr(state, self.membrane)

    def init(self, *, key=None, **values):
        """The initial values (``initial``, or variable=value here, broadcast to ``(size,)``), not refractory."""
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            raise TypeError(f"EquationNeuron.init: unknown variables {unknown}; variables: {', '.join(self.variables)}")
        y = {name: jnp.broadcast_to(jnp.asarray(values[name] if name in values else self.initial_values[name],
                                                jnp.result_type(float)), (self.size,))
             for name in self.variables}
        return state_class(self.variables)(**y, refractory=jnp.zeros((self.size,), jnp.result_type(float)))

    def step(self, state, inputs: SynapticInput | ArrayLike | None, dt: float, *, key=None):
        inputs = as_input(inputs, self.size)
        y = {name: getattr(state, name) for name in self.variables}
        if self.refractory_condition is None:
            refractory, frozen = refractory_countdown(state.refractory, dt)
        else:
            # Brian2: a neuron that spiked stays refractory until the condition is false at the start of a step
            still = self._broadcast(self.refractory_condition(self._namespace(y, inputs))) > 0
            frozen = (state.refractory > 0) & still
            refractory = frozen.astype(state.refractory.dtype)
        rhs = functools.partial(self._derivatives, inputs)
        new, rates = self._integrate(rhs, y, dt)
        if self.noise_terms:
            new = self._add_noise(new, y, rates, inputs, dt, key)
        for name in self.unless_refractory:
            new[name] = jnp.where(frozen, y[name], new[name])
        q = self._namespace(new, inputs)
        spikes = jnp.zeros((self.size,), jnp.result_type(float))
        if self.threshold is not None:
            spikes = spike(self._broadcast(self.threshold(q)) / self.threshold_scale, self.surrogate, self.slope)
        if self.escape_rate is not None:
            if key is None:
                raise ValueError("EquationNeuron.step: escape noise (escape_rate) needs a key")
            p = -jnp.expm1(-self._broadcast(self.escape_rate(q)) * dt)
            draw = jax.random.uniform(jax.random.fold_in(key, 1), (self.size,), p.dtype)
            spikes = jnp.maximum(spikes, spike(p - draw, self.surrogate, self.slope))
        spikes = jnp.where(frozen, 0.0, spikes)
        for name, fn in self.reset:
            new[name] = new[name] + spikes * (self._broadcast(fn(q)) - new[name])
            q[name] = new[name]
        refractory = jnp.where(spikes > 0, self.t_ref if self.refractory_condition is None else 1.0, refractory)
        return state_class(self.variables)(**new, refractory=refractory), spikes

    # ------------------------------------------------------------------ pieces
    def _broadcast(self, x) -> Array:
        return jnp.broadcast_to(jnp.asarray(x, jnp.result_type(float)), (self.size,))

    def _namespace(self, y: dict, inputs: SynapticInput) -> Namespace:
        q = Namespace(self.params)
        q.update(y)
        q[self.input_current] = inputs.total_current(y[self.membrane])
        return q

    def _derivatives(self, inputs: SynapticInput, y: dict) -> dict:
        q = self._namespace(y, inputs)
        return {name: self._broadcast(fn(q)) for name, fn in zip(self.variables, self.derivatives)}

    def _jacobian_columns(self, rhs, y: dict) -> dict:
        """``{y_j: {x: d(dx/dt)/dy_j}}`` at ``y``: one forward-mode pass a variable (the models are elementwise
        across neurons, so a tangent of ones gives each neuron's own derivative)."""
        columns = {}
        for name in self.variables:
            tangent = {k: jnp.ones_like(v) if k == name else jnp.zeros_like(v) for k, v in y.items()}
            columns[name] = jax.jvp(rhs, (y,), (tangent,))[1]
        return columns

    def _integrate(self, rhs, y: dict, dt: float) -> tuple[dict, Optional[dict]]:
        """``(values after dt, self-rates B = d(dx/dt)/dx or None)`` by the model's method, without noise."""
        if self.method == "euler":
            f = rhs(y)
            return {k: y[k] + dt * f[k] for k in y}, None
        if self.method == "rk2":
            f = rhs(y)
            f_mid = rhs({k: y[k] + 0.5 * dt * f[k] for k in y})
            return {k: y[k] + dt * f_mid[k] for k in y}, None
        if self.method == "rk4":
            return rk4(rhs, y, dt), None
        f, columns = rhs(y), self._jacobian_columns(rhs, y)
        rates = {k: columns[k][k] for k in self.variables}
        if self.method == "exp_euler":
            return {k: y[k] + dt * _phi1(rates[k] * dt) * f[k] for k in y}, rates
        # exact: y + [expm([[J dt, f dt], [0, 0]])]_{:n, n}
        names, n = self.variables, len(self.variables)
        jac = jnp.stack([jnp.stack([columns[j][k] for k in names], axis=-1) for j in names], axis=-1)  # (size, n, n)
        top = jnp.concatenate([jac, jnp.stack([f[k] for k in names], axis=-1)[..., None]], axis=-1) * dt
        aug = jnp.concatenate([top, jnp.zeros((self.size, 1, n + 1), top.dtype)], axis=1)
        delta = jax.scipy.linalg.expm(aug)[:, :n, n]
        return {k: y[k] + delta[:, i] for i, k in enumerate(names)}, rates

    def _add_noise(self, new: dict, y: dict, rates: Optional[dict], inputs: SynapticInput, dt: float, key) -> dict:
        if key is None:
            raise ValueError("EquationNeuron.step: the equations have noise (xi): give a key")
        names = sorted({xi for _, xi, _ in self.noise_terms})
        draws = dict(zip(names, jax.random.normal(key, (len(names), self.size), jnp.result_type(float))))
        q = self._namespace(y, inputs)
        new = dict(new)
        for name, xi, fn in self.noise_terms:
            variance = dt if rates is None else dt * _phi1(2.0 * rates[name] * dt)
            new[name] = new[name] + self._broadcast(fn(q)) * jnp.sqrt(variance) * draws[xi]
        return new
