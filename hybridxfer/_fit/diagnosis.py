"""Diagnosis of rejected steps: where a member's solve went bad."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from .._data.batch_data import BatchData
from .._solve import Solver, first_failure, solve_batches
from .objective import Trainable, initial_states
from .scheduler import take

__all__ = ["warn_rejected"]


def warn_rejected(
    params: Trainable,
    data: BatchData,
    batches: Sequence[str],
    finite: np.ndarray,
    step: int,
    solver: Solver,
) -> None:
    """Warn, for each member whose step was rejected (`finite` False; `params` stacked
    over members), where its solve failed: the batch, time and variables of the first
    non-finite state or of the solver stopping, or else that the gradient was not
    finite."""
    for r in np.flatnonzero(~finite):
        p = take(params, int(r))
        ys, ok = solve_batches(p.batch_model(data), data, solver, initial_states(p, data))
        failure = first_failure(
            np.asarray(ys), np.asarray(ok), data, batches, p.model.variable_names, solver.max_steps
        )
        if failure is None:
            where = "the gradient was not finite"
        elif failure.kind == "non-finite":
            where = (
                f"batch {failure.batch!r}: non-finite {', '.join(failure.variables)} "
                f"at t={failure.time:g}"
            )
        else:
            where = (
                f"batch {failure.batch!r}: the solver stopped before t={failure.time:g} "
                f"(step budget max_steps={solver.max_steps} per segment ran out, or the step "
                "size collapsed)"
            )
        warnings.warn(f"fit step {step}, member {r}: step rejected: {where}", stacklevel=4)
