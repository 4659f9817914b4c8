"""Simulation of a study: solve every batch, check the result, return a long table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .._core.model import HybridModel
from .._data.batch_data import BatchData, batch_data
from .._data.study import Study, StudyError
from .batches import solve
from .failure import SimulationError, first_failure, locate
from .sharding import shard_batches
from .solver import DEFAULT, Solver

__all__ = ["simulate", "to_frame"]


def simulate(
    model: HybridModel,
    study: Study,
    *,
    times: Mapping[str, Sequence[float]] | int | None = None,
    solver: Solver = DEFAULT,
) -> pd.DataFrame:
    """Simulate every batch of `study` from its t=0 values, inputs and constants.

    The batches are split over every local device (:func:`~hybridxfer._solve.
    sharding.shard_batches`; one device: one solve of all).

    Args:
        model: the model.
        study: batches to simulate (measurements give initial values and default times).
        times: output times per batch name; an int n for n equally spaced times from 0
            to each batch's last measurement or input time (measurement times added);
            None: the measurement times.
        solver: integration settings.

    Returns:
        Long table with columns ``batch, time, variable, value`` (variables in
        ``model.variable_names`` order: states, then observations).

    Raises:
        StudyError: if the study lacks what the model needs.
        SimulationError: naming the batch and time where a solve failed or a state
            became non-finite, and the rates that are not finite there (located by
            :func:`~hybridxfer._solve.failure.locate`).
    """
    if isinstance(times, int):
        times = _even_times(study, times)
    data = shard_batches(batch_data(model, study, times))  # one device: unchanged
    names = study.batch_names
    start = locate(model, data, names, solver)  # equations non-finite at t=0: no solve
    if start is not None:
        raise SimulationError(start.message)
    ys, ok = solve(model, data, solver)
    ys, ok = np.asarray(ys), np.asarray(ok)
    failure = first_failure(ys, ok, data, names, model.variable_names, solver.max_steps)
    if failure is not None:  # where the equations turned non-finite, if they did
        located = locate(model, data, names, solver, ys, ok)
        raise SimulationError((located if located.kind == "non-finite" else failure).message)
    return to_frame(ys, data, names, model.variable_names)


def _even_times(study: Study, n: int) -> dict[str, np.ndarray]:
    """Per batch, `n` equally spaced times from 0 to its last measurement or input time
    (:meth:`Study.end_time`), and its measurement times: sorted, unique.

    Raises:
        StudyError: a batch with no measurement or input rows.
    """
    rows = pd.concat([t[["batch", "time"]] for t in (study.measurements, study.inputs)])
    end = rows.groupby("batch", sort=False)["time"].max()
    measured = {b: t.to_numpy() for b, t in study.measurements.groupby("batch", sort=False)["time"]}
    if missing := [b for b in study.batch_names if b not in end.index]:
        raise StudyError(f"{study.name}: batch {missing[0]!r} has no measurement or input rows")
    empty = np.zeros(0)
    return {
        b: np.union1d(np.linspace(0.0, end[b], n), measured.get(b, empty))
        for b in study.batch_names
    }


def to_frame(
    ys: np.ndarray, data: BatchData, batches: Sequence[str], variables: Sequence[str]
) -> pd.DataFrame:
    """Long table ``batch, time, variable, value`` of the real (unpadded) points.

    Args:
        ys: solved values, shape (B, M, n_vars).
        data: the solved batch arrays (output times and their mask).
        batches: names of the first ``len(batches)`` rows of `ys`.
        variables: names of the last axis of `ys`.

    Returns:
        One row per batch, unmasked time and variable.
    """
    n = len(batches)
    times, mask = np.asarray(data.times)[:n], np.asarray(data.mask)[:n]
    b, m = np.nonzero(mask)
    k = len(variables)
    return pd.DataFrame(
        {
            "batch": np.repeat(np.asarray(batches, dtype=object)[b], k),
            "time": np.repeat(times[b, m], k),
            "variable": np.tile(np.asarray(variables, dtype=object), len(b)),
            "value": ys[b, m].reshape(-1),
        }
    )
