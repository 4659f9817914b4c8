"""Predictions against measurements: the table of residuals, and its parity and
residual plots, split by split (train / valid / test)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from .._data.study import Study
from .figures import new_row

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_parity", "residual_table"]

MARKERS = {"train": "o", "valid": "s", "test": "^"}


def residual_table(prediction: pd.DataFrame, study: Study) -> pd.DataFrame:
    """Every measurement of `study` beside its prediction.

    Args:
        prediction: long table ``batch, time, variable, value`` (+ ``lower, upper``)
            from :func:`~hybridxfer.predict` at the study's measurement times
            (``times=None``).
        study: the measured batches.

    Returns:
        Table ``batch, split, time, variable, measured, predicted`` (+ ``lower, upper``)
        and ``residual = measured - predicted``, in the measurements' order.
    """
    keys = ["batch", "time", "variable"]
    measured = study.measurements[[*keys, "value"]].rename(columns={"value": "measured"})
    predicted = prediction.rename(columns={"value": "predicted"})
    both = measured.merge(predicted, on=keys, how="inner")
    both.insert(1, "split", both["batch"].map(study.batches.set_index("batch")["split"]))
    return both.assign(residual=both["measured"] - both["predicted"])


def plot_parity(
    residuals: pd.DataFrame,
    variable: str,
    *,
    units: Mapping[str, str] | None = None,
    time_unit: str = "h",
) -> Figure:
    """Two panels for one variable: measured against predicted, with the line of
    equality, and the residual (measured - predicted) against time; a marker per split
    (train o, valid s, test ^), so that a fit's error on data it did not see stands out.

    Args:
        residuals: :func:`residual_table`.
        variable: the variable to draw.
        units: unit per variable, for the axis labels.
        time_unit: unit of ``time``, for the axis label.

    Returns:
        The figure.
    """
    fig, (parity, resid) = new_row(2, (10, 4))
    part = residuals[residuals["variable"] == variable]
    unit = (units or {}).get(variable)
    label = f"{variable} [{unit}]" if unit else variable
    for i, (split, dots) in enumerate(part.groupby("split", sort=False)):
        style = dict(marker=MARKERS.get(split, "x"), ls="", ms=4, color=f"C{i}", label=split)
        parity.plot(dots["predicted"], dots["measured"], **style)
        resid.plot(dots["time"], dots["residual"], **style)
    if len(part):
        lo = min(part["predicted"].min(), part["measured"].min())
        hi = max(part["predicted"].max(), part["measured"].max())
        parity.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="measured = predicted")
    resid.axhline(0.0, color="k", lw=0.8)
    parity.set_xlabel(f"predicted {label}")
    parity.set_ylabel(f"measured {label}")
    resid.set_xlabel(f"time [{time_unit}]")
    resid.set_ylabel(f"measured - predicted {label}")
    parity.set_title(f"{variable}: parity")
    resid.set_title(f"{variable}: residuals")
    parity.legend(fontsize=7)
    fig.tight_layout()
    return fig
