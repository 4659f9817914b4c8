"""Solving a model: solver settings, the batched solve, simulation and its failures."""

from .failure import SimulationError, SolveFailure, check_finite, first_failure
from .simulation import (
    DEFAULT,
    INTERVALS,
    TRAINING,
    TWIN,
    Solver,
    simulate,
    solve,
    solve_batches,
    solve_rows,
    to_frame,
)

__all__ = [
    "DEFAULT",
    "INTERVALS",
    "TRAINING",
    "TWIN",
    "SimulationError",
    "SolveFailure",
    "Solver",
    "check_finite",
    "first_failure",
    "simulate",
    "solve",
    "solve_batches",
    "solve_rows",
    "to_frame",
]
