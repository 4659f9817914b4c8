"""Solver names, in saved models' ``meta.json`` and on the command line (``"tsit5"``).

Solver names become classes here only (reactor modes: :mod:`.model_file`). The names
are plain strings, importable without diffrax (the command line's help lists them);
diffrax is imported when a name becomes a class.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import diffrax as dfx

    from .._solve import Solver

__all__ = [
    "MAX_STEPS",
    "SOLVERS",
    "solver_class",
    "solver_from_dict",
    "solver_name",
    "solver_to_dict",
]

_CLASSES = {"tsit5": "Tsit5", "dopri5": "Dopri5", "kvaerno5": "Kvaerno5"}  # in diffrax

SOLVERS: tuple[str, ...] = tuple(_CLASSES)
"""The named solvers: ``tsit5``, ``dopri5`` (explicit), ``kvaerno5`` (implicit, stiff)."""


def solver_class(name: str) -> type[dfx.AbstractSolver]:
    """The diffrax class of a solver name (one of :data:`SOLVERS`), e.g.
    :class:`diffrax.Tsit5` for ``"tsit5"``."""
    import diffrax as dfx

    return getattr(dfx, _CLASSES[name])


def solver_name(solver: dfx.AbstractSolver) -> str:
    """The name of a diffrax solver, e.g. ``"tsit5"`` for :class:`diffrax.Tsit5`.

    Raises:
        ValueError: for a solver class without a name (one of :data:`SOLVERS`).
    """
    for name in SOLVERS:
        if type(solver) is solver_class(name):
            return name
    raise ValueError(f"{type(solver).__name__} has no name; named: {', '.join(SOLVERS)}")


def solver_to_dict(solver: Solver) -> dict[str, Any]:
    """A Solver as JSON-ready settings: ``name, rtol, atol, max_steps, forward_mode``."""
    return dict(
        name=solver_name(solver.solver),
        rtol=solver.rtol,
        atol=solver.atol,
        max_steps=solver.max_steps,
        forward_mode=solver.forward_mode,
    )


MAX_STEPS = 10_000_000  # a step budget per segment beyond any model's need


def solver_from_dict(d: Mapping[str, Any]) -> Solver:
    """The Solver of :func:`solver_to_dict` output (read from a file: each setting of
    its type and range); absent keys take their defaults.

    Raises:
        ValueError: for an unknown solver name, or a setting of the wrong type or out
            of range (rtol in (0, 1), atol positive, max_steps from 1 to :data:`MAX_STEPS`).
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"solver settings must be an object, not {type(d).__name__}")
    d = dict(d)
    name = d.pop("name", "tsit5")
    if not isinstance(name, str) or name not in SOLVERS:
        raise ValueError(f"solver {name!r:.40} is not one of {', '.join(SOLVERS)}")
    checks = {
        "rtol": lambda x: _real(x) and 0 < x < 1,
        "atol": lambda x: _real(x) and 0 < x < math.inf,
        "max_steps": lambda x: (
            isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= MAX_STEPS
        ),
        "forward_mode": lambda x: isinstance(x, bool),
    }
    for key, ok in checks.items():
        if key in d and not ok(d[key]):
            raise ValueError(f"solver {key} = {d[key]!r:.40} is out of its type or range")
    from .._solve import Solver

    return Solver(solver_class(name)(), **{k: d[k] for k in checks if k in d})


def _real(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)
