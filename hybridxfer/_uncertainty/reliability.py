"""Reliability of prediction bands: nominal against empirical coverage."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._data.study import Study
from .._fit import FitResult
from .prediction import predict

__all__ = ["LEVELS", "reliability"]

LEVELS = (0.5, 0.8, 0.9, 0.95)


def reliability(fit: FitResult, study: Study, levels: Sequence[float] = LEVELS) -> pd.DataFrame:
    """How often the fit's measurement bands (``cover="measurement"``) at each level
    hold the measurements of `study` (t > 0), per variable: a calibrated band holds a
    fraction equal to its level. Score it on batches the fit did not train on.

    Returns:
        Long table ``variable, level, coverage, width, n``: `width` is the band's mean
        width over the range of the variable's measured values; `n` the measurements.
    """
    rows = []
    keys = ["batch", "time", "variable"]
    measured = study.measurements[study.measurements["time"] > 0][[*keys, "value"]]
    for level in levels:
        pred = predict(fit, study, level=level, cover="measurement").dropna(subset=["lower"])
        both = pred.merge(measured.rename(columns={"value": "y"}), on=keys)
        for variable, part in both.groupby("variable", sort=False):
            inside = (part["y"] >= part["lower"]) & (part["y"] <= part["upper"])
            span = max(np.ptp(part["y"].to_numpy(float)), np.finfo(float).tiny)
            width = float((part["upper"] - part["lower"]).mean() / span)
            rows.append((variable, level, float(inside.mean()), width, len(part)))
    return pd.DataFrame(rows, columns=["variable", "level", "coverage", "width", "n"])
