"""Rate expressions: a small, safe arithmetic language compiled to JAX functions.

Model files write rates and balances as strings such as
``"mu_max * monod(Glc, K_glc) * growth"``. They are parsed with :mod:`ast` and
checked against a whitelist: numbers, names the model declares, ``+ - * / **``,
unary minus, and calls of ``exp, log, sqrt, abs, min, max`` and the
:mod:`kinetics` rate laws. Nothing is ever passed to ``eval``.

Hostile or careless sources are bounded before anything is built from them: at most
:data:`MAX_LENGTH` characters, :data:`MAX_NODES` syntax-tree nodes and
:data:`MAX_DEPTH` levels of nesting (checked without recursion), literals of at most
:data:`MAX_LITERAL` in magnitude; parts made of numbers only (``9**9**9**9``,
``1/0``) are computed once, when parsed, and must give a finite real number.
"""

from __future__ import annotations

import ast
import inspect
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import jax.numpy as jnp

import kinetics

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_LITERAL",
    "MAX_NODES",
    "Expression",
    "ExpressionError",
    "FUNCTIONS",
    "parse_expression",
]

Env = Mapping[str, jnp.ndarray]
MAX_LENGTH = 2000  # characters of an expression's source
MAX_NODES = 500  # nodes of its syntax tree (a name, a number, an operation, a call)
MAX_DEPTH = 100  # levels of nesting of its syntax tree (a sum of n terms: n - 1)
MAX_LITERAL = 1e100  # magnitude of a number written in it


class ExpressionError(ValueError):
    """An expression uses syntax or names outside the whitelist."""


def _fold(f):
    def folded(*args):
        if len(args) < 2:
            raise TypeError("needs at least two arguments")
        out = args[0]
        for a in args[1:]:
            out = f(out, a)
        return out

    return folded


FUNCTIONS: dict[str, Callable] = {
    "exp": jnp.exp,
    "log": jnp.log,
    "sqrt": jnp.sqrt,
    "abs": jnp.abs,
    "min": _fold(jnp.minimum),
    "max": _fold(jnp.maximum),
    **kinetics.RATE_LAWS,
}
"""Functions an expression may call: elementary functions and every kinetics rate law."""

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its source text, the names it reads, and its evaluator.

    Call it with an environment mapping every name in `names` to a value. Two
    expressions are equal when their source and names are (so rebuilt models
    share compiled code).
    """

    source: str
    names: frozenset[str]
    evaluate: Callable[[Env], jnp.ndarray] = field(compare=False)

    def __call__(self, env: Env) -> jnp.ndarray:
        return self.evaluate(env)


def parse_expression(source: str, known: frozenset[str] | set[str]) -> Expression:
    """Parse `source` into an :class:`Expression` that may read only names in `known`.

    Raises:
        ExpressionError: on a syntax error, a construct outside the whitelist, an
            unknown name or function, a wrong number of arguments to a rate law, a
            source beyond the size limits (see the module), a literal above
            :data:`MAX_LITERAL`, or numbers only whose value is not a finite real.
    """
    text = source.strip()
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression of {len(text)} characters (at most {MAX_LENGTH}): {_short(source)}"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise ExpressionError(f"syntax error in {_short(source)}: {e.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"expression nested too deeply: {_short(source)}") from None
    _check_size(tree.body, source)
    names: set[str] = set()
    compiled = _compile(tree.body, frozenset(known), names, source)
    return Expression(source=source, names=frozenset(names), evaluate=_function(compiled))


def _short(source: str, n: int = 60) -> str:
    """`source` quoted, cut to `n` characters (a hostile one can be long)."""
    return repr(source) if len(source) <= n else repr(source[:n]) + f"... ({len(source)} chars)"


def _check_size(root: ast.expr, source: str) -> None:
    """Refuse a tree of more than :data:`MAX_NODES` nodes (names, numbers, operations,
    calls) or nested more than :data:`MAX_DEPTH` levels (a name or number: level 0),
    walking it without recursion (so that :func:`_compile` may recurse)."""
    stack, count = [(root, 0)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"expression of more than {MAX_NODES} terms: {_short(source)}")
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"expression nested more than {MAX_DEPTH} levels deep (each operation and "
                f"call is a level; a sum of n terms, n - 1): {_short(source)}"
            )
        children = ast.iter_child_nodes(node)
        stack.extend((c, depth + 1) for c in children if isinstance(c, ast.expr))


Compiled = float | Callable[[Env], jnp.ndarray]  # a number (parts of numbers only) or code


def _function(c: Compiled) -> Callable[[Env], jnp.ndarray]:
    return c if callable(c) else (lambda env: c)


def _constant(value, what: str, source: str) -> float:
    """`value` (a literal, or numbers only computed) as a float, if a finite real."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ExpressionError(f"{what} is not a real number in {_short(source)}")
    try:
        value = float(value)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise ExpressionError(f"{what} is not a finite number in {_short(source)}")
    return value


def _fold(fn: Callable, args: list[float], what: str, source: str) -> float:
    """`fn` of numbers only, computed once when parsed."""
    try:
        value = fn(*args)
    except (OverflowError, ZeroDivisionError, ValueError, TypeError):
        value = math.nan
    value = value if isinstance(value, int | float | complex) else float(jnp.asarray(value))
    return _constant(value, what, source)


def _compile(node: ast.AST, known: frozenset[str], names: set[str], source: str) -> Compiled:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if abs(node.value) > MAX_LITERAL:
            raise ExpressionError(
                f"number {_short(str(node.value), 20)} is larger than {MAX_LITERAL:g} in "
                f"{_short(source)}"
            )
        return _constant(node.value, "number", source)
    if isinstance(node, ast.Name):
        if node.id not in known:
            raise ExpressionError(f"unknown name {node.id!r} in {_short(source)}")
        names.add(node.id)
        name = node.id
        return lambda env: env[name]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op = _BINARY[type(node.op)]
        left = _compile(node.left, known, names, source)
        right = _compile(node.right, known, names, source)
        if not (callable(left) or callable(right)):
            return _fold(op, [left, right], f"{ast.unparse(node)[:40]!r}", source)
        left, right = _function(left), _function(right)
        return lambda env: op(left(env), right(env))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        op = _UNARY[type(node.op)]
        operand = _compile(node.operand, known, names, source)
        if not callable(operand):
            return op(operand)
        return lambda env: op(operand(env))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id not in FUNCTIONS:
            raise ExpressionError(
                f"unknown function {node.func.id!r} in {_short(source)}; "
                f"allowed: {', '.join(sorted(FUNCTIONS))}"
            )
        fn = FUNCTIONS[node.func.id]
        args = [_compile(a, known, names, source) for a in node.args]
        _check_arity(node.func.id, fn, len(args), source)
        if not any(callable(a) for a in args):
            return _fold(fn, args, f"{ast.unparse(node)[:40]!r}", source)
        args = [_function(a) for a in args]
        return lambda env: fn(*(a(env) for a in args))
    raise ExpressionError(
        f"{type(node).__name__} is not allowed in {_short(source)}: use numbers, names, "
        "+ - * / **, and calls of whitelisted functions"
    )


def _check_arity(name: str, fn: Callable, n: int, source: str) -> None:
    if name in ("min", "max"):
        ok, want = n >= 2, "at least 2"
    elif name in ("exp", "log", "sqrt", "abs"):
        ok, want = n == 1, "1"
    else:
        want_n = len(inspect.signature(fn).parameters)
        ok, want = n == want_n, str(want_n)
    if not ok:
        raise ExpressionError(f"{name}() takes {want} argument(s), got {n} in {_short(source)}")
