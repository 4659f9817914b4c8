"""Prediction of new batches, with calibrated bands."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .._core.model import HybridModel
from .._data.study import Study
from .._fit import FitResult
from .._solve import DEFAULT, Solver, simulate
from .bands import band_widths, unseen_batches

__all__ = ["predict"]


def predict(
    model: FitResult | HybridModel | Sequence[HybridModel],
    study: Study,
    *,
    times: Mapping[str, Sequence[float]] | int | None = None,
    level: float = 0.95,
    cover: str = "state",
    solver: Solver = DEFAULT,
) -> pd.DataFrame:
    """Predict every batch of `study` from its t=0 values, inputs and constants.

    Given a fit (or a transfer's ``result.fit``), ``value`` is its model's prediction
    (its members' weighted mean for a fit with :attr:`~hybridxfer.FitResult.weights`)
    and ``lower``/``upper`` a band calibrated on the observations the fit did not
    train on (:mod:`hybridxfer._uncertainty.bands`): with ``cover="state"`` it holds
    the true state with probability `level`, with ``cover="measurement"`` a new
    measurement (the true state plus measurement noise). Variables the fit has no
    held-out observations of get no band (NaN). With no batch held out whole and a
    :attr:`~hybridxfer.FitResult.reference_calibration` (a transfer from one batch), the
    band is at least as wide as that reference's errors. A fit saved without its calibration
    falls back to the spread of its members, with a warning.

    Given models (an ensemble, best first), ``value`` is the first one's prediction
    and ``lower``/``upper`` the central `level` quantiles across them: the spread of
    equally good fits, not a prediction interval.

    Returns:
        Long table ``batch, time, variable, value`` (+ ``lower, upper`` with a band);
        ``attrs["band"]`` says what the band covers.
    """
    if isinstance(model, FitResult) and model.calibration is not None:
        return _calibrated(_value(model, study, times, solver), model, level, cover)
    if isinstance(model, FitResult):
        warnings.warn(
            "this fit has no calibration (saved by an older hybridxfer): the band is the "
            "spread of its members, not a prediction interval",
            stacklevel=2,
        )
        model = model.members
    models = [model] if isinstance(model, HybridModel) else list(model)
    runs = [simulate(m, study, times=times, solver=solver) for m in models]
    out = runs[0]
    if len(models) > 1:
        stack = np.stack([r["value"].to_numpy() for r in runs])
        a = (1 - level) / 2
        out = out.assign(
            lower=np.quantile(stack, a, axis=0), upper=np.quantile(stack, 1 - a, axis=0)
        )
        out.attrs["band"] = f"{level:.0%} spread of {len(models)} members (not calibrated)"
    return out


def _value(fit: FitResult, study: Study, times, solver: Solver) -> pd.DataFrame:
    """The fit's prediction: its model's, or with :attr:`FitResult.weights` the
    weighted mean of its members'."""
    out = simulate(fit.model, study, times=times, solver=solver)
    if fit.weights is None:
        return out
    others = [simulate(m, study, times=times, solver=solver) for m in fit.members[1:]]
    values = np.stack([out["value"].to_numpy(float), *(o["value"].to_numpy(float) for o in others)])
    return out.assign(value=np.asarray(fit.weights) @ values)


def _calibrated(out: pd.DataFrame, fit: FitResult, level: float, cover: str) -> pd.DataFrame:
    widths = band_widths(fit.calibration, level, cover)
    unseen = unseen_batches(fit.calibration)
    reference = fit.reference_calibration
    widened = not unseen and reference is not None
    if widened:  # at least the reference model's error on a batch it did not see
        q = band_widths(reference, level, cover)["q"].reindex(widths.index)
        widths = widths.assign(q=np.fmax(widths["q"], q))
    value = out["value"].to_numpy(float)
    floor = out["variable"].map(widths["floor"]).to_numpy(float)
    half = out["variable"].map(widths["q"]).to_numpy(float) * (np.abs(value) + floor)
    lower = value - half
    state = out["variable"].isin(fit.model.state_names).to_numpy()
    lower = np.where(state, np.maximum(lower, 0.0), lower)  # concentrations, volumes
    out = out.assign(lower=lower, upper=value + half)
    what = "true state" if cover == "state" else "new measurement"
    out.attrs["band"] = (
        f"{level:.0%} band of the {what}, calibrated on {int(widths['heldout'].sum())} "
        f"observations the model was not trained on ({unseen} batches held out whole)"
        + (
            f"; at least as wide as the source's errors on the {unseen_batches(reference)} "
            "target batch(es) it did not train on"
            if widened
            else ""
        )
    )
    if widened:
        warnings.warn(
            "no batch held out whole: the band is at least as wide as the source model's "
            "errors on the target batch, a cautious guess of how new batches differ; "
            "transfer from 2 or more batches to calibrate it",
            stacklevel=3,
        )
    elif not unseen:
        warnings.warn(
            "the band is calibrated on late time points of the training batches only (no "
            "batch held out whole): it does not show how new batches differ and may be "
            "far too narrow for them; hold out a batch (split 'valid'), or transfer from "
            "2 or more batches",
            stacklevel=3,
        )
    return out
