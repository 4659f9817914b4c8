"""Diagnosis of rejected steps: where a member's solve went bad, and why."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import numpy as np
from jaxtyping import Array, Float

from .._core.model import HybridModel
from .._data.batch_data import BatchData
from .._solve import Solver, solve
from .._solve.failure import SolveFailure, field_failure, locate
from .objective import Trainable, initial_states
from .scheduler import take

__all__ = ["at_start", "rejection"]


def at_start(
    params: Trainable, data: BatchData, batches: Sequence[str], member: int
) -> SolveFailure | None:
    """Member `member`'s first batch with non-finite rates or balances at its start
    (t=0), found without solving (:func:`~hybridxfer._solve.failure.field_failure`),
    or None. `params` are stacked over members."""
    model, y0 = _start(take(params, member), data)
    n = len(batches)
    return field_failure(model, data, batches, np.zeros(n), np.asarray(y0)[:n])


def rejection(
    params: Trainable, data: BatchData, batches: Sequence[str], member: int, solver: Solver
) -> SolveFailure | None:
    """Why member `member`'s step was rejected (`params` stacked over members): the
    batch, time and rates of the first non-finite value, or where the solver stopped
    (:func:`~hybridxfer._solve.failure.locate`); None if the solve went well (then the
    gradient was not finite)."""
    model, y0 = _start(take(params, member), data)
    failure = locate(model, data, batches, solver, y0=y0)  # the start, without solving
    if failure is None:
        ys, ok = solve(model, data, solver, y0)
        failure = locate(model, data, batches, solver, np.asarray(ys), np.asarray(ok), y0)
    return failure


@eqx.filter_jit
def _start(params: Trainable, data: BatchData) -> tuple[HybridModel, Float[Array, "B n_states"]]:
    """One member's model with each batch's free values, (B, n_free), and each batch's
    initial state, (B, n_states): one compiled program (run eagerly, its few dozen
    operations were each compiled on first use: ~0.4 s before a fit's first step)."""
    return params.batch_model(data), initial_states(params, data)
