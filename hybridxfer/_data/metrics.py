"""Scores of predictions against measurements."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["nrmse", "relative_rmse"]


def _matched(predictions: pd.DataFrame, measurements: pd.DataFrame, include_initial: bool):
    """Measured points with their predictions (columns ``value``, ``value_pred``)."""
    keys = ["batch", "time", "variable"]
    both = measurements[keys + ["value"]].merge(
        predictions[keys + ["value"]], on=keys, suffixes=("", "_pred")
    )
    return both if include_initial else both[both["time"] > 0]


def nrmse(
    predictions: pd.DataFrame, measurements: pd.DataFrame, include_initial: bool = False
) -> pd.Series:
    """Normalised root-mean-square error per variable: RMSE / range of the measured values.

    Both tables are long (``batch, time, variable, value``); rows are matched on
    batch, time and variable, so only measured points count. Points at t=0 are left
    out unless `include_initial` (a prediction starts from them: they would flatter it).

    Returns:
        NRMSE per variable (dimensionless), for variables present in both tables.
    """
    out = {}
    for variable, g in _matched(predictions, measurements, include_initial).groupby(
        "variable", sort=False
    ):
        span = g["value"].max() - g["value"].min()
        rmse = float(np.sqrt(((g["value_pred"] - g["value"]) ** 2).mean()))
        out[variable] = rmse / span if span > 0 else np.nan
    return pd.Series(out, name="nrmse", dtype=float)


def relative_rmse(
    predictions: pd.DataFrame, measurements: pd.DataFrame, include_initial: bool = False
) -> pd.Series:
    """Root-mean-square relative error per variable, ``sqrt(mean(((y - y_pred) /
    y_pred)^2))`` over the measured points with a nonzero prediction (rows matched as
    in :func:`nrmse`): a model's error as a fraction of what it predicts, e.g. the
    ``model_error`` of a :class:`~hybridxfer.DigitalTwin` (it includes the
    measurement noise, so it errs on the cautious side).

    Returns:
        relative RMSE per variable (dimensionless).
    """
    both = _matched(predictions, measurements, include_initial)
    both = both[both["value_pred"] != 0]
    rel = (both["value"] - both["value_pred"]) / both["value_pred"]
    return np.sqrt((rel**2).groupby(both["variable"], sort=False).mean()).rename("relative_rmse")
