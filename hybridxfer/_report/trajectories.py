"""Plots of simulated trajectories against measurements."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["plot_simulation", "save_figure"]


def save_figure(fig, path: Path) -> Path:
    """Write `fig` as a PNG at `path` and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_simulation(
    simulation: pd.DataFrame,
    measurements: pd.DataFrame | None,
    out: str | Path,
    units: Mapping[str, str] | None = None,
    time_unit: str = "h",
    what: str = "simulated",
) -> list[Path]:
    """One PNG per simulated variable: a line per batch, measurements as dots.

    Args:
        simulation: long table ``batch, time, variable, value`` (+ optional ``lower,
            upper``, drawn as a band).
        measurements: long table of the same form, or None.
        out: folder for ``<variable>.png``.
        units: unit per variable for the axis labels.
        what: what the lines are, for the titles.

    Returns:
        The paths written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    units = units or {}
    batches = list(dict.fromkeys(simulation["batch"]))
    colours = {b: plt.cm.viridis(i / max(1, len(batches) - 1)) for i, b in enumerate(batches)}
    paths = []
    for variable, sim in simulation.groupby("variable", sort=False):
        fig, ax = plt.subplots(figsize=(6, 4))
        for batch, line in sim.groupby("batch", sort=False):
            ax.plot(line["time"], line["value"], color=colours[batch], lw=1.2, label=batch)
            if "lower" in line.columns:
                ax.fill_between(
                    line["time"], line["lower"], line["upper"], color=colours[batch], alpha=0.2
                )
        if measurements is not None:
            meas = measurements[measurements["variable"] == variable]
            for batch, dots in meas.groupby("batch", sort=False):
                if batch in colours:
                    ax.plot(dots["time"], dots["value"], "o", ms=3, color=colours[batch])
        unit = units.get(variable)
        ax.set_xlabel(f"time [{time_unit}]")
        ax.set_ylabel(f"{variable} [{unit}]" if unit else variable)
        ax.set_title(f"{variable}: {what} (lines), measured (dots)")
        if len(batches) <= 12:
            ax.legend(fontsize=7, ncol=2)
        paths.append(save_figure(fig, out / f"{variable}.png"))
    return paths
