"""Scores of predictions against measurements."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["nrmse"]


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
    keys = ["batch", "time", "variable"]
    both = measurements[keys + ["value"]].merge(
        predictions[keys + ["value"]], on=keys, suffixes=("", "_pred")
    )
    if not include_initial:
        both = both[both["time"] > 0]
    out = {}
    for variable, g in both.groupby("variable", sort=False):
        span = g["value"].max() - g["value"].min()
        rmse = float(np.sqrt(((g["value_pred"] - g["value"]) ** 2).mean()))
        out[variable] = rmse / span if span > 0 else np.nan
    return pd.Series(out, name="nrmse", dtype=float)
