"""Plots of trajectories: simulated or predicted variables against measurements, and
a fit's losses per step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from .figures import new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_history", "plot_simulation"]

LINES = {"train": "-", "valid": "--", "test": ":"}


def plot_simulation(
    simulation: pd.DataFrame,
    variable: str,
    measurements: pd.DataFrame | None = None,
    *,
    units: Mapping[str, str] | None = None,
    time_unit: str = "h",
    what: str = "simulated",
    splits: Mapping[str, str] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """One variable over time: a line per batch, its measurements as dots.

    Colours follow the order of the batches in `simulation` (viridis), the same in
    every variable's plot; with `splits`, the line style tells the batch's split
    (train solid, valid dashed, test dotted) and the legend names it.

    Args:
        simulation: long table ``batch, time, variable, value`` (as from
            :func:`~hybridxfer.simulate` or :func:`~hybridxfer.predict`), with optional
            ``lower, upper`` columns, drawn as a band.
        variable: the variable to draw.
        measurements: long table of the same form, or None; batches not in
            `simulation` are left out.
        units: unit per variable, for the axis label.
        time_unit: unit of ``time``, for the axis label.
        what: what the lines are, for the title.
        splits: each batch's split, a mapping batch -> split (e.g.
            ``dict(zip(study.batches["batch"], study.batches["split"]))``), or None.
        ax: axes to draw on; None for a new figure.

    Returns:
        The figure drawn on.
    """
    import matplotlib

    fig, ax, new = new_axes(ax, (6, 4))
    batches = list(dict.fromkeys(simulation["batch"]))
    viridis = matplotlib.colormaps["viridis"]
    colours = {b: viridis(i / max(1, len(batches) - 1)) for i, b in enumerate(batches)}
    sim = simulation[simulation["variable"] == variable]
    splits = {} if splits is None else dict(splits)
    for batch, line in sim.groupby("batch", sort=False):
        split = splits.get(batch)
        style = LINES.get(split, "-")
        label = f"{batch} ({split})" if split else batch
        ax.plot(line["time"], line["value"], style, color=colours[batch], lw=1.2, label=label)
        if "lower" in line.columns:
            ax.fill_between(
                line["time"], line["lower"], line["upper"], color=colours[batch], alpha=0.2
            )
    if measurements is not None:
        meas = measurements[measurements["variable"] == variable]
        for batch, dots in meas.groupby("batch", sort=False):
            if batch in colours:
                ax.plot(dots["time"], dots["value"], "o", ms=3, color=colours[batch])
    unit = (units or {}).get(variable)
    ax.set_xlabel(f"time [{time_unit}]")
    ax.set_ylabel(f"{variable} [{unit}]" if unit else variable)
    ax.set_title(f"{variable}: {what} (lines), measured (dots)")
    if len(batches) <= 12:
        ax.legend(fontsize=7, ncol=2)
    if new:
        fig.tight_layout()
    return fig


def plot_history(history: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Training (solid) and validation (dashed) loss per step, one colour per member,
    on a log axis.

    Args:
        history: table ``step, member, train, valid`` (:attr:`FitResult.history
            <hybridxfer.FitResult.history>`).
        ax: axes to draw on; None for a new figure.

    Returns:
        The figure drawn on.
    """
    fig, ax, new = new_axes(ax, (6, 4))
    for r, h in history.groupby("member"):
        ax.semilogy(h["step"], h["train"], color=f"C{r % 10}", lw=1, label=f"member {r} train")
        ax.semilogy(h["step"], h["valid"], color=f"C{r % 10}", lw=1, ls="--", label="valid")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (scaled)")
    ax.legend(fontsize=7, ncol=2)
    if new:
        fig.tight_layout()
    return fig
