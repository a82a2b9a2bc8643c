"""Equations written as text (Brian2's syntax), parsed with SymPy into JAX functions for ``EquationNeuron``.

Accepted forms (one item a line; ``#`` starts a comment)::

    dv/dt = (g_L*(E_L - v) + I_syn)/C_m : volt (unless refractory)   # a differential equation
    I_K = g_K*n**4*(E_K - v) : amp                                     # a subexpression
    g_K : siemens                                                      # a parameter declaration

The text after ``:`` (Brian2's unit) is ignored except for the flag ``(unless refractory)``: numbers are
in brainsim's units (ms, mV, pA, nS, pF). Unit names inside expressions (``-65*mV``, ``10*ms``, ``0.1*nS``)
are converted to those units (``volt`` = 1000, ``second`` = 1000, ``Hz`` = 0.001, ...); a parameter or
variable of the same name takes precedence. ``xi`` (or ``xi_<name>``: one independent white noise per name,
shared by the equations that use it) is Gaussian white noise in ms^-1/2, entering additively.

Functions: ``exp``, ``log``, ``sqrt``, ``sin``, ``cos``, ``tan``, ``tanh``, ``sinh``, ``cosh``, ``abs``,
``sign``, ``clip``-free ``Min``/``Max`` as ``minimum``/``maximum``, ``expm1``, ``log1p``, ``exprel`` (``(e^x - 1)/x``, 1 at 0).

SymPy is needed only for text; equations given as Python functions do not import it.
"""
from __future__ import annotations

import functools
import re
from typing import NamedTuple

# value of each unit in brainsim's units (time ms, voltage mV, current pA, conductance nS, capacitance pF)
UNITS = {
    "second": 1e3, "ms": 1.0, "msecond": 1.0, "us": 1e-3, "usecond": 1e-3,
    "volt": 1e3, "mV": 1.0, "mvolt": 1.0, "uV": 1e-3, "uvolt": 1e-3,
    "amp": 1e12, "mA": 1e9, "uA": 1e6, "nA": 1e3, "pA": 1.0, "namp": 1e3, "pamp": 1.0,
    "siemens": 1e9, "mS": 1e6, "uS": 1e3, "nS": 1.0, "pS": 1e-3, "nsiemens": 1.0, "usiemens": 1e3,
    "farad": 1e12, "uF": 1e6, "nF": 1e3, "pF": 1.0, "pfarad": 1.0, "nfarad": 1e3, "ufarad": 1e6,
    "ohm": 1e-9, "Mohm": 1e-3, "Gohm": 1.0,
    "Hz": 1e-3, "hertz": 1e-3, "kHz": 1.0,
}
_FUNCTIONS = ("exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "sinh", "cosh", "Abs", "sign", "Min", "Max",
              "expm1", "log1p")
_ALIASES = {"abs": "Abs", "minimum": "Min", "maximum": "Max"}
_EXTRA = ("exprel",)  # functions SymPy lacks, evaluated by the JAX functions below
_IDENT = re.compile(r"[A-Za-z_]\w*")
_DIFF = re.compile(r"^d\s*([A-Za-z_]\w*)\s*/\s*dt$")
_NOISE = re.compile(r"^xi(_\w+)?$")


class Namespace(dict):
    """The names an equation function reads: ``q.v`` or ``q["v"]``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"equations read unknown name {name!r}; known: {', '.join(self)}") from None


class Block(NamedTuple):
    """A parsed equations block: derivatives and subexpressions as text, frozen variables, declared parameters."""

    derivatives: dict  # variable -> right-hand side
    subexpressions: dict  # name -> right-hand side (in the order given)
    unless_refractory: tuple  # variables flagged (unless refractory)
    declared: tuple  # names declared as parameters ("name : unit")


def parse_block(text: str, owner: str) -> Block:
    """Split a Brian2-style equations block into its parts (no SymPy yet)."""
    derivatives, subexpressions, frozen, declared = {}, {}, [], []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        body, _, unit = line.partition(":")
        if "=" not in body:
            name = body.strip()
            if not _IDENT.fullmatch(name):
                raise ValueError(f"{owner}: cannot read line {number} of the equations: {raw.strip()!r}")
            declared.append(name)
            continue
        lhs, rhs = (part.strip() for part in body.split("=", 1))
        if not rhs:
            raise ValueError(f"{owner}: line {number} of the equations has no right-hand side: {raw.strip()!r}")
        diff = _DIFF.match(lhs)
        if diff:
            name = diff.group(1)
            if name in derivatives:
                raise ValueError(f"{owner}: variable {name!r} has two differential equations")
            derivatives[name] = rhs
            if "unless refractory" in unit:
                frozen.append(name)
        elif _IDENT.fullmatch(lhs):
            subexpressions[lhs] = rhs
        else:
            raise ValueError(f"{owner}: cannot read line {number} of the equations: {raw.strip()!r} (expected "
                             f"'dx/dt = ...', 'name = ...' or 'name : unit')")
    if not derivatives:
        raise ValueError(f"{owner}: the equations define no differential equation ('dv/dt = ...')")
    return Block(derivatives, subexpressions, tuple(frozen), tuple(declared))


def parse_statements(text: str, owner: str) -> tuple:
    """``"v = v_reset; w += b"`` -> ``(("v", "v_reset"), ("w", "w + (b)"))`` (statements run in order)."""
    out = []
    for stmt in re.split(r"[;\n]", text):
        stmt = stmt.strip()
        if not stmt:
            continue
        m = re.fullmatch(r"([A-Za-z_]\w*)\s*([-+*/]?)=\s*(.+)", stmt)
        if not m:
            raise ValueError(f"{owner}: cannot read reset statement {stmt!r} (expected 'x = ...' or 'x += ...')")
        name, op, rhs = m.groups()
        out.append((name, f"{name} {op} ({rhs})" if op else rhs))
    return tuple(out)


def _sympy():
    try:
        import sympy
    except ImportError:  # pragma: no cover - sympy is in the test extra
        raise ImportError("equations given as text need SymPy: pip install sympy (or give Python functions)") from None
    return sympy


def exprel(x):
    """``(e^x - 1)/x``, 1 at x = 0, finite with a finite gradient everywhere (Brian2's ``exprel``)."""
    import jax.numpy as jnp

    small = jnp.abs(x) < 1e-4
    x_safe = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 + 0.5 * x, jnp.expm1(x_safe) / x_safe)


@functools.lru_cache(maxsize=1)
def _extra_functions() -> dict:
    sympy = _sympy()

    class exprel_(sympy.Function):  # noqa: N801  (printed as its name, evaluated by ``exprel``)
        nargs = 1

        def fdiff(self, argindex=1):
            x = self.args[0]
            return sympy.Piecewise((sympy.Rational(1, 2), sympy.Eq(x, 0)),
                                   ((x * sympy.exp(x) - sympy.exp(x) + 1) / x ** 2, True))

    exprel_.__name__ = "exprel"
    return {"exprel": exprel_}


def _parse(text: str, owner: str, what: str):
    sympy = _sympy()
    from sympy.parsing.sympy_parser import parse_expr, standard_transformations

    local = {}
    for name in set(_IDENT.findall(text)):
        if name in _FUNCTIONS:
            local[name] = getattr(sympy, name)
        elif name in _ALIASES:
            local[name] = getattr(sympy, _ALIASES[name])
        elif name in _EXTRA:
            local[name] = _extra_functions()[name]
        else:
            local[name] = sympy.Symbol(name, real=True)
    try:
        return parse_expr(text.replace("^", "**"), local_dict=local, global_dict={"Integer": sympy.Integer,
                          "Float": sympy.Float, "Rational": sympy.Rational, "Symbol": sympy.Symbol},
                          transformations=standard_transformations, evaluate=True)
    except Exception as e:  # SyntaxError, TokenError, TypeError from SymPy
        raise ValueError(f"{owner}: cannot parse {what} {text!r} ({type(e).__name__}: {e})") from None


def expression(text: str, owner: str, what: str, substitutions: dict):
    """SymPy expression of ``text`` with subexpressions substituted."""
    expr = _parse(text, owner, what)
    return expr.subs(substitutions) if substitutions else expr


def substitutions(subexpressions: dict, owner: str) -> dict:
    """Subexpressions resolved in terms of variables and parameters only (in any order; cycles are errors)."""
    sympy = _sympy()
    parsed = {name: _parse(text, owner, f"subexpression {name!r}") for name, text in subexpressions.items()}
    resolved = {}

    def resolve(name, path):
        if name in path:
            raise ValueError(f"{owner}: subexpressions refer to each other in a cycle: {' -> '.join(path + (name,))}")
        if name not in resolved:
            expr = parsed[name]
            inner = {sympy.Symbol(n, real=True): resolve(n, path + (name,))
                     for n in sorted(free_names(expr) & set(parsed))}
            resolved[name] = expr.subs(inner) if inner else expr
        return resolved[name]

    for name in parsed:
        resolve(name, ())
    return {sympy.Symbol(name, real=True): expr for name, expr in resolved.items()}


def threshold_distance(text: str, owner: str, subs: dict, what: str = "threshold"):
    """``"v > v_th"`` -> the expression ``v - v_th`` (positive when the condition holds)."""
    sympy = _sympy()
    rel = expression(text, owner, what, subs)
    if isinstance(rel, (sympy.StrictGreaterThan, sympy.GreaterThan)):
        return rel.lhs - rel.rhs
    if isinstance(rel, (sympy.StrictLessThan, sympy.LessThan)):
        return rel.rhs - rel.lhs
    raise ValueError(f"{owner}: {what} must be one comparison like 'v > v_th', got {text!r}")


def split_noise(expr, owner: str, variable: str):
    """``f + sum_k b_k xi_k`` -> ``(f, {xi_k name: b_k})``; raises if the noise does not enter additively."""
    noises = sorted((s for s in expr.free_symbols if _NOISE.match(s.name)), key=lambda s: s.name)
    if not noises:
        return expr, {}
    deterministic = expr.subs({s: 0 for s in noises})
    coefficients = {}
    for s in noises:
        b = _sympy().diff(expr, s)
        if b.free_symbols & set(noises):
            raise ValueError(f"{owner}: the noise {s.name!r} in d{variable}/dt must enter additively "
                             f"(a coefficient times {s.name})")
        coefficients[s.name] = b
    return deterministic, coefficients


def free_names(expr) -> set:
    return {s.name for s in expr.free_symbols}


@functools.lru_cache(maxsize=512)
def _lambdify(args: tuple, expr):
    sympy = _sympy()
    return sympy.lambdify([sympy.Symbol(a, real=True) for a in args], expr, modules=[{"exprel": exprel}, "jax"])


def compile_expression(expr, known: tuple):
    """A function of a namespace (``q[name]``) evaluating ``expr``; unit names not in ``known`` become numbers.

    Compiled functions are cached by their text, so that two models built from the same equations share them
    (and compiled programs that take the models as static configuration)."""
    sympy = _sympy()
    unit_values = {sympy.Symbol(u, real=True): sympy.Float(UNITS[u]) for u in free_names(expr)
                   if u in UNITS and u not in known}
    expr = expr.subs(unit_values)
    args = tuple(sorted(free_names(expr)))
    fn = _lambdify(args, expr)
    return _Compiled(args, fn, str(expr))


class _Compiled:
    """``q -> fn(q[a] for a in args)``; hashable by its text and arguments."""

    def __init__(self, args, fn, text):
        self.args, self.fn, self.text = args, fn, text

    def __call__(self, q):
        return self.fn(*(q[a] for a in self.args))

    def __hash__(self):
        return hash((self.args, self.text))

    def __eq__(self, other):
        return isinstance(other, _Compiled) and (self.args, self.text) == (other.args, other.text)

    def __repr__(self):
        return self.text
