"""Prediction of new batches, with ensemble bands."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .._core.model import HybridModel
from .._data.study import Study
from .._solve import DEFAULT, Solver, simulate

__all__ = ["predict"]


def predict(
    models: HybridModel | Sequence[HybridModel],
    study: Study,
    *,
    times: Mapping[str, Sequence[float]] | int | None = None,
    level: float = 0.95,
    solver: Solver = DEFAULT,
) -> pd.DataFrame:
    """Predict every batch of `study` from its t=0 values, inputs and constants.

    With several models (an ensemble, best first: ``FitResult.members``), ``value`` is
    the first model's prediction and ``lower``/``upper`` the central `level` quantiles
    across the ensemble: the spread of equally good fits, not measurement noise.

    Returns:
        Long table ``batch, time, variable, value`` (+ ``lower, upper`` for an ensemble).
    """
    models = [models] if isinstance(models, HybridModel) else list(models)
    runs = [simulate(m, study, times=times, solver=solver) for m in models]
    out = runs[0]
    if len(models) > 1:
        stack = np.stack([r["value"].to_numpy() for r in runs])
        a = (1 - level) / 2
        out = out.assign(
            lower=np.quantile(stack, a, axis=0), upper=np.quantile(stack, 1 - a, axis=0)
        )
    return out
