"""Solve failures: which batch failed, where, and how, as data or as an error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .._data.batch_data import BatchData

__all__ = ["SimulationError", "SolveFailure", "check_finite", "first_failure"]


class SimulationError(RuntimeError):
    """A solve failed or produced a non-finite state; the message names batch and time."""


@dataclass(frozen=True)
class SolveFailure:
    """The first failure of a batched solve.

    Attributes:
        batch: name of the batch that failed.
        time: for ``"non-finite"``, the first output time with a non-finite value; for
            ``"stopped"``, the output time that the solver stopped before [model time].
        variables: the variables that are non-finite at `time` (empty when the solver
            stopped after the last output time, at an event).
        kind: ``"non-finite"`` (a state or observation became NaN or infinite) or
            ``"stopped"`` (the step budget ran out or the step size collapsed).
        message: a readable description naming batch, time and a remedy (the message of
            the :class:`SimulationError` that :func:`check_finite` raises).
    """

    batch: str
    time: float
    variables: tuple[str, ...]
    kind: Literal["non-finite", "stopped"]
    message: str


def first_failure(
    ys: np.ndarray,
    ok: np.ndarray,
    data: BatchData,
    batches: Sequence[str],
    variables: Sequence[str],
    max_steps: int | None = None,
) -> SolveFailure | None:
    """The first batch whose solve failed or went non-finite, or None if all are fine.

    Args:
        ys: solved values, shape (B, M, n_vars) (as :func:`~hybridxfer.solve` returns).
        ok: whether each batch's solve succeeded on every segment, shape (B,).
        data: the solved batch arrays (output times and their mask).
        batches: names of the rows of `data` (the first ``len(batches)`` are checked).
        variables: names of the last axis of `ys`.
        max_steps: the step budget per segment, named in a ``"stopped"`` message.

    Returns:
        A NaN is reported as a non-finite state; a solve that stopped early (`ok` False)
        as the solver stopping, with the step budget. None when every masked value of
        every batch is finite and every solve succeeded.
    """
    times, mask = np.asarray(data.times), np.asarray(data.mask)
    for i, batch in enumerate(batches):
        nan = np.isnan(ys[i]) & mask[i][:, None]
        bad = ~np.isfinite(ys[i]) & mask[i][:, None]
        if ok[i] and not bad.any():
            continue
        if nan.any() or ok[i]:
            where = nan if nan.any() else bad
            j = int(np.argmax(where.any(axis=1)))
            names = tuple(n for n, b in zip(variables, where[j]) if b)
            last = f"; last finite at t={times[i, j - 1]:g}" if j > 0 else ""
            return SolveFailure(
                batch=batch,
                time=float(times[i, j]),
                variables=names,
                kind="non-finite",
                message=(
                    f"batch {batch!r}: non-finite state ({', '.join(names)}) at "
                    f"t={times[i, j]:g}{last}. Check parameters and initial values; for a "
                    "stiff model use solver 'kvaerno5'."
                ),
            )
        # a failed segment leaves inf at its end, and later segments go on from where it
        # stopped: the solver stopped before the first non-finite time (else before the
        # last time: the failed segment ended at an event, not at an output time)
        unreached = mask[i] & bad.any(axis=1)
        j = int(np.flatnonzero(unreached)[0] if unreached.any() else np.flatnonzero(mask[i])[-1])
        budget = f" (max_steps={max_steps} per segment)" if max_steps else ""
        return SolveFailure(
            batch=batch,
            time=float(times[i, j]),
            variables=tuple(n for n, b in zip(variables, bad[j]) if b),
            kind="stopped",
            message=(
                f"batch {batch!r}: the solver stopped before t={times[i, j]:g}: the step "
                f"budget{budget} ran out or the step size collapsed; raise max_steps, or use "
                "solver 'kvaerno5' if stiff."
            ),
        )
    return None


def check_finite(
    ys: np.ndarray,
    ok: np.ndarray,
    data: BatchData,
    batches: Sequence[str],
    variables: Sequence[str],
    max_steps: int | None = None,
) -> None:
    """Raise for the first batch whose solve failed or went non-finite.

    Args and checks as :func:`first_failure`.

    Raises:
        SimulationError: with the failure's message.
    """
    failure = first_failure(ys, ok, data, batches, variables, max_steps)
    if failure is not None:
        raise SimulationError(failure.message)
