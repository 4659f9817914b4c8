"""Rate expressions: a small, safe arithmetic language compiled to JAX functions.

Model files write rates and balances as strings such as
``"mu_max * monod(Glc, K_glc) * growth"``. They are parsed with :mod:`ast` and
checked against a whitelist: numbers, names the model declares, ``+ - * / **``,
unary minus, and calls of ``exp, log, sqrt, abs, min, max`` and the
:mod:`kinetics` rate laws. Nothing is ever passed to ``eval``.
"""

from __future__ import annotations

import ast
import inspect
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import jax.numpy as jnp

import kinetics

__all__ = ["Expression", "ExpressionError", "FUNCTIONS", "parse_expression"]

Env = Mapping[str, jnp.ndarray]


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
            unknown name or function, or a wrong number of arguments to a rate law.
    """
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ExpressionError(f"syntax error in {source!r}: {e.msg}") from None
    names: set[str] = set()
    evaluate = _compile(tree.body, frozenset(known), names, source)
    return Expression(source=source, names=frozenset(names), evaluate=evaluate)


def _compile(node: ast.AST, known: frozenset[str], names: set[str], source: str):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value = float(node.value)
        return lambda env: value
    if isinstance(node, ast.Name):
        if node.id not in known:
            raise ExpressionError(f"unknown name {node.id!r} in {source!r}")
        names.add(node.id)
        name = node.id
        return lambda env: env[name]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op = _BINARY[type(node.op)]
        left = _compile(node.left, known, names, source)
        right = _compile(node.right, known, names, source)
        return lambda env: op(left(env), right(env))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        op = _UNARY[type(node.op)]
        operand = _compile(node.operand, known, names, source)
        return lambda env: op(operand(env))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id not in FUNCTIONS:
            raise ExpressionError(
                f"unknown function {node.func.id!r} in {source!r}; "
                f"allowed: {', '.join(sorted(FUNCTIONS))}"
            )
        fn = FUNCTIONS[node.func.id]
        args = [_compile(a, known, names, source) for a in node.args]
        _check_arity(node.func.id, fn, len(args), source)
        return lambda env: fn(*(a(env) for a in args))
    raise ExpressionError(
        f"{type(node).__name__} is not allowed in {source!r}: use numbers, names, "
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
        raise ExpressionError(f"{name}() takes {want} argument(s), got {n} in {source!r}")
