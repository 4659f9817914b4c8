"""Solver names, in saved models' ``meta.json`` and on the command line (``"tsit5"``).

Solver names become classes here only (reactor modes: :mod:`.model_file`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import diffrax as dfx

from .._solve import Solver

__all__ = [
    "SOLVERS",
    "solver_from_dict",
    "solver_name",
    "solver_to_dict",
]

SOLVERS: dict[str, type[dfx.AbstractSolver]] = {
    "tsit5": dfx.Tsit5,
    "dopri5": dfx.Dopri5,
    "kvaerno5": dfx.Kvaerno5,
}


def solver_name(solver: dfx.AbstractSolver) -> str:
    """The name of a diffrax solver, e.g. ``"tsit5"`` for :class:`diffrax.Tsit5`.

    Raises:
        ValueError: for a solver class without a name (one of :data:`SOLVERS`).
    """
    for name, cls in SOLVERS.items():
        if type(solver) is cls:
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


def solver_from_dict(d: Mapping[str, Any]) -> Solver:
    """The Solver of :func:`solver_to_dict` output; absent keys take their defaults.

    Raises:
        ValueError: for an unknown solver name.
    """
    d = dict(d)
    name = d.pop("name", "tsit5")
    if name not in SOLVERS:
        raise ValueError(f"solver {name!r} is not one of {', '.join(SOLVERS)}")
    keys = ("rtol", "atol", "max_steps", "forward_mode")
    return Solver(SOLVERS[name](), **{k: d[k] for k in keys if k in d})
