"""The twin's checks: names and values it is given, and the consistency of its
innovations."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

__all__ = ["TwinError", "TwinWarning"]

WINDOW = 24  # updates with measurements: the recent stretch a warning also needs


class TwinError(ValueError):
    """An update the twin refuses (out of order, non-finite, unknown signal, failed
    solve); the twin's state is left as it was."""


class TwinWarning(UserWarning):
    """The twin's innovations are persistently inconsistent with its bands."""


def inconsistency(innovations: pd.DataFrame) -> str | None:
    """A message when the NIS is above its 99% range (the bands too narrow: the
    dangerous side) both over all updates and over the last :data:`WINDOW` with
    measurements (persistently: at least that many updates), else None. A NIS below
    its range is expected where a model error is counted as correlated (each reading
    then predicted to scatter more than it does about the tracked state)."""
    whole, recent = _consistency(innovations), _consistency(innovations, WINDOW)
    narrow = "bands too narrow"
    if whole["updates"] >= WINDOW and whole["verdict"] == recent["verdict"] == narrow:
        return (
            f"the twin's {whole['verdict']}: mean NIS per measured value {whole['nis']:.2f} "
            f"over {whole['values']} values ({recent['nis']:.2f} over the last "
            f"{recent['updates']} updates), 99% range for a consistent filter "
            f"{whole['lower']:.2f}-{whole['upper']:.2f}"
        )
    return None


def _consistency(innovations: pd.DataFrame, last: int | None = None) -> dict:
    from scipy.stats import chi2

    measured = innovations[innovations["measured"] > 0]
    if last is not None:
        measured = measured.tail(last)
    m, total = int(measured["measured"].sum()), float(measured["nis"].sum())
    if m == 0:
        nan = float("nan")
        return dict(updates=0, values=0, nis=nan, lower=nan, upper=nan, verdict="no measurements")
    lower, upper = chi2.ppf([0.005, 0.995], m) / m
    verdict = (
        "bands too narrow"
        if total / m > upper
        else "bands too wide"
        if total / m < lower
        else "consistent"
    )
    return dict(
        updates=len(measured), values=m, nis=total / m, lower=lower, upper=upper, verdict=verdict
    )


def _known(what: str, given: Mapping, known) -> None:
    if unknown := [k for k in given if k not in known]:
        raise TwinError(f"{what}: unknown name(s) {unknown}; known: {', '.join(known)}")


def _finite(what: str, given: Mapping, positive: bool = False) -> None:
    for k, v in given.items():
        try:
            ok = math.isfinite(float(v)) and (not positive or float(v) > 0)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            need = "a positive finite number" if positive else "a finite number"
            raise TwinError(f"{what}: {k} = {v!r} is not {need}")
