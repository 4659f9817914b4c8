r"""The twin's noise levels from a fit's residuals.

A fit's residuals on its batches (:attr:`FitResult.calibration`: every observation at
the fit's best values, ``heldout`` where the fit did not train on it) are the model's
error plus the measurement's noise. With r the relative residual
:math:`(y - \hat y)/(|\hat y| + f)` (f: 5% of the variable's measured range, so that a
state near 0 does not give an error without bound) and n the noise's relative sd
(:func:`measurement_sd`: declared, a transfer's pooled estimate, or told apart from the
smooth model error in the residuals themselves, :mod:`hybridxfer._uncertainty.noise`),
the noise is taken out of each level, so that the twin does not count it twice (the
twin adds the readings' own sd):

- an observation equation's relative model error (the ``model_error`` e of
  :class:`~hybridxfer.DigitalTwin`): :math:`e^2 = \overline{r^2} - \overline{n^2}`
  over the held-out points (all points where fewer than :data:`MIN_POINTS` are held
  out);
- a state's relative process noise q [1/sqrt(time unit)]: the open-loop relative error
  of a state driven by :math:`dx = f\,dt + q x\,dW` has variance about :math:`q^2 t`
  after time t, so :math:`q^2 = \sum (r^2 - n^2) t / \sum t^2` (least squares
  through the origin) over its points at t > 0;
- the correlation time tau of an observation's model error (``model_error_time``):
  from the lag-one autocorrelation of the model error within each batch at the
  residuals' median spacing :math:`\Delta`,
  :math:`\rho = \sum r_i r_{i-1} / \sum (r_{i-1}^2 - n_{i-1}^2)` (white noise adds to
  the variance, not to the lag-one covariance), and
  :math:`\tau = \Delta (1 + \rho) / (1 - \rho)` (the integral time scale of an AR(1)
  error; :math:`\rho` capped at :data:`MAX_RHO`).

A level the residuals do not lift above the noise is 0 (e, q) or absent (tau). These
are point estimates: where they fall short on a batch (a model that is off there), the
adaptive twin inflates its covariance from the innovations (:mod:`.filter`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .._core.model import HybridModel
from .._fit.config import FitResult
from .._solve import simulate
from .._uncertainty.noise import FLOOR, measurement_sd

__all__ = [
    "noise_from_fit",
    "batch_sd_from",
    "calibration_table",
    "model_error_from",
    "model_error_time_from",
    "process_noise_from",
]

MIN_POINTS = 5
MAX_RHO = 0.99
MIN_BATCH_SD = 1e-3  # floor of a batch-varying parameter's fitted spread
COLUMNS = ["batch", "time", "variable", "measured", "predicted", "heldout"]


def calibration_table(result: FitResult) -> pd.DataFrame | None:
    """The fit's residual table (columns ``batch, time, variable, measured, predicted,
    heldout``): :attr:`FitResult.calibration` where the fit has one, else the fitted
    batches simulated at the fitted model (held out: the ``valid`` batches); None
    for a fit with neither."""
    table = getattr(result, "calibration", None)
    if table is not None:
        return table
    if result.fitted is None:
        return None
    study = result.fitted
    predicted = simulate(result.model, study).rename(columns={"value": "predicted"})
    measured = study.measurements.rename(columns={"value": "measured"})
    both = measured.merge(predicted, on=["batch", "time", "variable"])
    valid = set(study.batches.loc[study.batches["split"] == "valid", "batch"])
    return both.assign(heldout=both["batch"].isin(valid))[COLUMNS]


def _relative(table: pd.DataFrame) -> pd.DataFrame:
    """Rows at t > 0 with a finite prediction and measurement: ``r``, the relative
    residual, and ``n``, the measurement noise's relative sd (0 where unknown), both
    relative to |prediction| + FLOOR x (range of the variable's measured values): a
    state near 0 (a depleted substrate, acetate, titre before production) would
    otherwise give relative errors without bound (the same scale as the bands,
    :mod:`hybridxfer._uncertainty.bands`)."""
    table = table.reset_index(drop=True)
    noise = np.nan_to_num(measurement_sd(table))
    keep = (table["time"] > 0) & np.isfinite(table["measured"]) & np.isfinite(table["predicted"])
    span = table[keep].groupby("variable")["measured"].transform(np.ptp)
    t = table[keep]
    scale = t["predicted"].abs() + FLOOR * span
    keep_t = scale > 0
    t, scale = t[keep_t], scale[keep_t]
    return t.assign(
        r=(t["measured"] - t["predicted"]) / scale,
        n=noise[keep.to_numpy()][keep_t.to_numpy()] / scale,
    )


def _preferred(rows: pd.DataFrame) -> pd.DataFrame:
    held = rows[rows["heldout"].astype(bool)]
    return held if len(held) >= MIN_POINTS else rows


def model_error_from(table: pd.DataFrame, model: HybridModel) -> dict[str, float]:
    """Relative model error e of each observation equation (see the module); an
    observation without residuals, or whose residuals are all noise, gets none."""
    rel, out = _relative(table), {}
    for name in model.variable_names[len(model.state_names) :]:
        rows = _preferred(rel[rel["variable"] == name])
        if len(rows):
            e2 = np.mean(rows["r"] ** 2 - rows["n"] ** 2)
            out[name] = float(np.sqrt(max(e2, 0.0)))
    return {k: v for k, v in out.items() if v > 0}


def process_noise_from(table: pd.DataFrame, model: HybridModel) -> dict[str, float]:
    """Relative process noise q of each measured state [1/sqrt(time unit)] (see the
    module); the reactor volume, which follows the recorded flows, and states without
    residuals get none."""
    reactor = model.structure.reactor
    volume = reactor.volume if reactor.has_volume else None
    rel, out = _relative(table), {}
    for name in model.state_names:
        rows = _preferred(rel[rel["variable"] == name])
        if name != volume and len(rows):
            t = rows["time"].to_numpy(float)
            q2 = np.sum((rows["r"] ** 2 - rows["n"] ** 2) * t) / np.sum(t**2)
            out[name] = float(np.sqrt(max(q2, 0.0)))
    return out


def model_error_time_from(table: pd.DataFrame, model: HybridModel) -> dict[str, float]:
    """Correlation time tau of each observation's model error [model time unit] (see
    the module), from all its residuals (a fit's held-out points are often too few in
    a batch); none where a batch has fewer than two points or the model error is
    uncorrelated."""
    rel, out = _relative(table), {}
    for name in model.variable_names[len(model.state_names) :]:
        rows = rel[rel["variable"] == name].drop_duplicates(["batch", "time"], keep="last")
        rows = rows.sort_values(["batch", "time"])  # one residual per point: a table may
        # hold a point twice (a full fit's prediction and a fold's held-out one)
        runs = [g for _, g in rows.groupby("batch") if len(g) > 1]
        if not runs:
            continue
        r = [g["r"].to_numpy() for g in runs]
        n = [g["n"].to_numpy() for g in runs]
        num = sum(float(np.sum(x[1:] * x[:-1])) for x in r)
        den = sum(float(np.sum(x[:-1] ** 2 - m[:-1] ** 2)) for x, m in zip(r, n))
        rho = min(num / den, MAX_RHO) if den > 0 else 0.0
        spacing = float(np.median(np.concatenate([np.diff(g["time"].to_numpy()) for g in runs])))
        if rho > 0 and spacing > 0:
            out[name] = spacing * (1 + rho) / (1 - rho)
    return out


def batch_sd_from(result: FitResult) -> dict[str, float]:
    """Sample sd of the fitted batches' unconstrained values of each batch-varying
    parameter (3 batches or more, not all equal; at least :data:`MIN_BATCH_SD`)."""
    table = result.batch_parameters
    if table is None or not len(table):
        return {}
    params = {p.name: p for p in result.model.structure.parameters}
    out = {}
    for name, rows in table.groupby("name"):
        z = [params[name].unconstrain(v) for v in rows["value"]] if name in params else []
        spread = float(np.std(z, ddof=1)) if len(z) >= 3 else 0.0
        if spread > 0:  # all equal: the fit did not estimate them (e.g. held)
            out[name] = max(spread, MIN_BATCH_SD)
    return out


def noise_from_fit(
    result: FitResult,
    model_error: Mapping[str, float] | None,
    process_noise: float | Mapping[str, float] | None,
    default_q: float,
    given: Mapping,
) -> dict:
    """The :class:`~hybridxfer.DigitalTwin` arguments ``model_error``,
    ``model_error_time``, ``process_noise`` and ``batch_sd`` from a fit (see the module);
    those given explicitly win: `model_error` per variable, `process_noise` whole, and
    ``model_error_time`` and ``batch_sd`` in `given` (the twin's other arguments)."""
    model = result.model
    table = calibration_table(result)
    if table is not None:  # the noise told apart once, not by each level's estimate
        table = table.reset_index(drop=True)
        table = table.assign(noise=measurement_sd(table))
    out = dict(model_error={} if table is None else model_error_from(table, model))
    out["model_error"] |= dict(model_error or {})
    if process_noise is None:
        reactor = model.structure.reactor
        volume = reactor.volume if reactor.has_volume else None
        process_noise = {s: default_q for s in model.state_names if s != volume}
        if table is not None:
            process_noise |= process_noise_from(table, model)
    out["process_noise"] = process_noise
    if (spread := batch_sd_from(result)) and "batch_sd" not in given:
        out["batch_sd"] = spread
    if table is not None and "model_error_time" not in given:
        tau = model_error_time_from(table, model)
        out["model_error_time"] = {k: v for k, v in tau.items() if k in out["model_error"]}
    return out
