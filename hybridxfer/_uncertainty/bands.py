"""Prediction bands calibrated on observations the model was not trained on.

A fit (or transfer) keeps its model's predictions of the observations it was trained
or scored on (:attr:`~hybridxfer.FitResult.calibration`). For each variable v the
error of a prediction y_hat is scaled by

    s_v(y_hat) = |y_hat| + f_v,        f_v = FLOOR * (range of v's measured values),

a relative error with an absolute floor near zero. On the held-out observations
(valid batches, late points or cross-validation folds) the scaled errors
``|y - y_hat| / s_v`` give the split-conformal quantile q_v at the level (the
ceil((n + 1) level)-th smallest of n): a band ``y_hat +- q_v s_v(y_hat)`` that holds
a *new measurement* with that probability. The *true state* is closer by the
measurement noise where the study declares it (its ``sd`` column): with m_h the
held-out errors' mean square and m_sd that of the declared sd (both scaled), the state
band shrinks by ``sqrt(max(1 - m_sd / m_h, 0))``; without a declared sd the state band
is the measurement band, which holds the true state at least as often (an estimate of
the noise from the residuals themselves, e.g. from their successive differences,
took model error for noise and under-covered: 0.60-0.71 for a source fit). Observations
at t = 0 (initial values, taken from the data) do not count. States are
concentrations and volumes: a band never goes below 0.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["COVERS", "FLOOR", "band_widths"]

FLOOR = 0.05
COVERS = ("state", "measurement")


def band_widths(calibration: pd.DataFrame, level: float, cover: str) -> pd.DataFrame:
    """Per variable the scale's floor f_v and the band's half-width q_v in units of
    s_v (see the module docstring), from a calibration table (``batch, time,
    variable, measured, sd, predicted, heldout``).

    Returns:
        Table indexed by variable: ``floor, q, heldout`` (heldout: how many
        observations calibrate it); variables without held-out observations absent.
    """
    if cover not in COVERS:
        raise ValueError(f"cover must be one of {COVERS}, not {cover!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), not {level}")
    rows = {}
    calibration = calibration[calibration["time"] > 0]
    for variable, part in calibration.groupby("variable", sort=False):
        measured = part["measured"].to_numpy(float)
        floor = FLOOR * max(np.ptp(measured), np.finfo(float).tiny)
        error = measured - part["predicted"].to_numpy(float)
        scaled = error / (np.abs(part["predicted"].to_numpy(float)) + floor)
        held = np.abs(scaled[part["heldout"].to_numpy(bool) & np.isfinite(scaled)])
        if not len(held):
            continue
        k = min(math.ceil((len(held) + 1) * level), len(held))
        q = np.sort(held)[k - 1]
        sd = part["sd"].to_numpy(float) / (np.abs(part["predicted"].to_numpy(float)) + floor)
        sd = sd[part["heldout"].to_numpy(bool) & np.isfinite(scaled) & np.isfinite(sd)]
        if cover == "state" and len(sd):
            q *= math.sqrt(max(1 - np.mean(sd**2) / np.mean(held**2), 0.0))
        rows[variable] = dict(floor=floor, q=q, heldout=len(held))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["floor", "q", "heldout"])
