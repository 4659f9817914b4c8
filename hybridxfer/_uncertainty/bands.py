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
measurement noise: with m_n the noise's mean square and m_h the held-out errors' (both
scaled), the state band shrinks by ``sqrt(max(1 - m_n / m_h+, 0))``, m_h+ = n m_h /
chi2_0.05(n) the one-sided 95% upper bound on m_h from its n errors: a band shrinks
only as far as the held-out errors show with confidence (with few held-out batches
their mean square is itself uncertain, and the point estimate shrank the band to 0
in some 2-batch transfers). The noise is the
study's declared ``sd`` where it has one; else the table's ``noise`` column (a
transfer's estimate, pooled with its source's residuals); else estimated from the
table's own residuals (:mod:`.noise`: white noise told apart from the model's smooth
error within each batch). Observations at t = 0 (initial values, taken from the data)
do not count. States are concentrations and volumes: a band never goes below 0.

Only batches held out whole (valid batches, cross-validation folds, a transfer's
``none``) show how a new batch differs from the ones trained on; the late points of
training batches show the error of running on in time only. A fit calibrated on late
points alone gets bands that can be far too narrow for new batches:
:func:`unseen_batches` counts them, and ``predict`` says so. A transfer from one batch
keeps its source's predictions of that batch (``reference_calibration``; the source
did not train on it): its q_v is then at least the source's there. On 57 cells of the
transfer suite at one batch (4 families, 3 seeds; ``benchmarks/results/bands_n1``) this
took the 95% band's coverage of the truth from median 0.55 to 0.99 on the three
families held out when the rule was chosen (cell-variables covered >= 0.90: 18% ->
76%), at a median width of 0.42 of the truth's range (0.10 before): with one batch,
a cautious band.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .noise import FLOOR, measurement_sd, scaled_residuals, upper_mean_square

__all__ = ["COVERS", "FLOOR", "band_widths", "held_out_whole", "unseen_batches"]

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
    calibration = calibration.reset_index(drop=True)
    sd = measurement_sd(calibration) if cover == "state" else None
    for variable, part in scaled_residuals(calibration).items():
        held = part["heldout"].to_numpy(bool) & np.isfinite(part["r"])
        error = np.abs(part["r"].to_numpy()[held])
        if not len(error):
            continue
        k = min(math.ceil((len(error) + 1) * level), len(error))
        q = np.sort(error)[k - 1]
        if cover == "state":
            scale = np.abs(part["predicted"].to_numpy(float)[held]) + part["floor"].iloc[0]
            noise = np.nan_to_num(sd[part.index.to_numpy()][held]) / scale
            upper = upper_mean_square(np.mean(error**2), len(error))
            q *= math.sqrt(max(1 - np.mean(noise**2) / upper, 0.0))
        rows[variable] = dict(floor=part["floor"].iloc[0], q=q, heldout=len(error))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["floor", "q", "heldout"])


def held_out_whole(calibration: pd.DataFrame) -> set[str]:
    """The batches a calibration table holds out whole: held out at their first time
    after 0 (the late points a fit holds out never include it)."""
    rows = calibration[calibration["time"] > 0]
    first = rows.groupby("batch")["time"].transform("min")
    held = rows["heldout"].to_numpy(bool) & (rows["time"] == first).to_numpy()
    return set(rows.loc[held, "batch"])


def unseen_batches(calibration: pd.DataFrame) -> int:
    """How many batches a calibration table holds out whole (:func:`held_out_whole`)."""
    return len(held_out_whole(calibration))
