"""Solving a model: solver settings, one integration, the batched solve, simulation
and its failures. The other layers import from here only."""

from .batches import solve, solve_batches, solve_rows
from .failure import SimulationError, SolveFailure, check_finite, first_failure
from .integrate import integrate
from .simulate import simulate, to_frame
from .solver import DEFAULT, INTERVALS, TRAINING, TWIN, Solver

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
    "integrate",
    "simulate",
    "solve",
    "solve_batches",
    "solve_rows",
    "to_frame",
]
