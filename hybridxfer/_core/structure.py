"""A model's structure: its declaration checked and compiled (names, units, the
parsed expressions, rates in evaluation order), everything about a model that is not
trained (:class:`hybridxfer.HybridModel` holds it beside its trained arrays)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .declarations import Constant, Input, ModelError, Observation, State
from .expressions import Expression, ExpressionError, parse_expression
from .networks import Network
from .parameters import Parameter
from .reactor import AbstractReactor

__all__ = ["INTERPOLATIONS", "RESERVED", "Structure", "compiled"]

RESERVED = frozenset({"t"})
INTERPOLATIONS = ("zero-order", "linear")


@dataclass(frozen=True)
class Structure:
    """Everything about a model that is not trained: names, units, compiled expressions."""

    name: str
    time_unit: str
    states: tuple[State, ...]
    inputs: tuple[Input, ...]
    constants: tuple[Constant, ...]
    parameters: tuple[Parameter, ...]
    networks: tuple[Network, ...]
    reactor: AbstractReactor
    rates: tuple[tuple[str, Expression], ...]  # in evaluation order
    balances: tuple[Expression, ...]  # one per state
    reactor_exprs: tuple[tuple[str, Expression], ...]
    initial_exprs: tuple[Expression | None, ...]  # per state; None: data or estimate
    observations: tuple[Observation, ...] = ()
    observation_exprs: tuple[Expression, ...] = ()


def compiled(
    *,
    name: str,
    states: Sequence[State],
    parameters: Sequence[Parameter],
    rates: Mapping[str, str],
    balances: Mapping[str, str],
    reactor: AbstractReactor,
    inputs: Sequence[Input],
    constants: Sequence[Constant],
    networks: Sequence[Network],
    observations: Sequence[Observation],
    time_unit: str,
) -> Structure:
    """The structure of a model declaration (see :meth:`hybridxfer.HybridModel.build`),
    checked and compiled.

    Raises:
        ModelError: naming the offending declaration.
    """
    groups = {
        "state": [s.name for s in states],
        "input": [i.name for i in inputs],
        "constant": [c.name for c in constants],
        "parameter": [p.name for p in parameters],
        "network": [n.name for n in networks],
        "rate": list(rates),
        "observation": [o.name for o in observations],
    }
    if reactor.has_volume:
        groups["state"].append(reactor.volume)
    _check_names(groups)
    for i in inputs:
        if i.interpolation not in INTERPOLATIONS:
            raise ModelError(
                f"interpolation {i.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}",
                f"inputs.{i.name}",
            )
    state_names = groups["state"]
    readable = {*state_names, *groups["input"], *groups["constant"], *groups["parameter"]}
    for n in networks:
        bad = [x for x in n.inputs if x not in readable | RESERVED]
        if bad:
            raise ModelError(
                f"unknown input(s) {bad}; a network reads states, inputs, batch constants, "
                "parameters (e.g. a per-process embedding) or t",
                f"networks.{n.name}",
            )
    events = set(reactor.events)
    missing = events - set(groups["input"])
    if missing:
        raise ModelError(f"event input(s) {sorted(missing)} are not declared inputs", "reactor")
    for s in reactor.species:
        if s not in state_names:
            raise ModelError(f"{s!r} is not a state", "reactor")
    missing = [s.name for s in states if s.name not in balances]
    extra = [b for b in balances if b not in state_names]
    if missing or extra:
        problems = [f"missing for state(s) {missing}"] if missing else []
        problems += [f"unknown state(s) {extra}"] if extra else []
        raise ModelError("; ".join(problems), "balances")

    everything = frozenset(n for k, g in groups.items() if k != "observation" for n in g) | RESERVED
    static = frozenset(groups["constant"]) | frozenset(groups["parameter"])

    def parse(where: str, source, known) -> Expression:
        try:
            return parse_expression(str(source), known)
        except ExpressionError as e:
            raise ModelError(str(e), where) from None

    rate_exprs = {r: parse(f"rates.{r}", src, everything) for r, src in rates.items()}
    order = _evaluation_order(rate_exprs)
    balance_exprs = tuple(parse(f"balances.{s.name}", balances[s.name], everything) for s in states)
    reactor_exprs = tuple(
        (
            k,
            parse(
                f"reactor.{k}",
                v,
                static if k == "volume_initial" or k.startswith("bolus.") else everything,
            ),
        )
        for k, v in reactor.expressions().items()
    )
    initial_exprs = tuple(
        parse(f"states.{s.name}.initial", s.initial, static)
        if s.initial is not None and s.initial != "estimate"
        else None
        for s in states
    )
    observation_exprs = tuple(
        parse(f"observations.{o.name}", o.expression, everything) for o in observations
    )
    return Structure(
        name=name,
        time_unit=time_unit,
        states=tuple(states),
        inputs=tuple(inputs),
        constants=tuple(constants),
        parameters=tuple(parameters),
        networks=tuple(networks),
        reactor=reactor,
        rates=tuple((r, rate_exprs[r]) for r in order),
        balances=balance_exprs,
        reactor_exprs=reactor_exprs,
        initial_exprs=initial_exprs,
        observations=tuple(observations),
        observation_exprs=observation_exprs,
    )


def _check_names(groups: dict[str, list[str]]) -> None:
    seen: dict[str, str] = {}
    for kind, names in groups.items():
        for n in names:
            if not n.isidentifier():
                raise ModelError(f"{kind} name {n!r} is not a valid identifier", kind + "s." + n)
            if n in RESERVED:
                raise ModelError(f"{kind} name {n!r} is reserved (t is time)", kind + "s." + n)
            if n in seen:
                raise ModelError(
                    f"name {n!r} is declared twice (as {seen[n]} and as {kind})", kind + "s." + n
                )
            seen[n] = kind


def _evaluation_order(rates: dict[str, Expression]) -> list[str]:
    """Rates in an order where each comes after the rates it reads."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(r: str, path: tuple[str, ...]):
        if state.get(r) == 2:
            return
        if state.get(r) == 1:
            raise ModelError(f"circular definition {' -> '.join((*path, r))}", f"rates.{r}")
        state[r] = 1
        for dep in sorted(rates[r].names & rates.keys()):
            visit(dep, (*path, r))
        state[r] = 2
        order.append(r)

    for r in rates:
        visit(r, ())
    return order
