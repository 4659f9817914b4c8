"""The reliability diagram of prediction bands."""

from __future__ import annotations

import pandas as pd

from .figures import new_axes

__all__ = ["plot_reliability"]


def plot_reliability(table: pd.DataFrame, ax=None):
    """Nominal against empirical coverage of the bands, one line per variable, with the
    diagonal a calibrated band follows (:func:`hybridxfer.reliability`'s table).

    Args:
        table: ``variable, level, coverage, width, n``.
        ax: axes to draw on; a new figure if None.

    Returns:
        The figure drawn on.
    """
    fig, ax, new = new_axes(ax, (4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="calibrated")
    for k, (variable, part) in enumerate(table.groupby("variable", sort=False)):
        part = part.sort_values("level")
        ax.plot(part["level"], part["coverage"], "o-", color=f"C{k % 10}", label=variable)
    ax.set(xlim=(0.4, 1.0), ylim=(0.0, 1.02), xlabel="nominal level of the band")
    ax.set_ylabel("fraction of measurements inside")
    ax.set_title("reliability of the prediction bands (held-out batches)", fontsize=9)
    ax.legend(fontsize=7)
    if new:
        fig.tight_layout()
    return fig
