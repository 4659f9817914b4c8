"""Plot of a transfer: why its candidate was chosen, and how far the process moved."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._transfer import BASELINES, TransferResult
from .figures import new_row

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_transfer"]


def plot_transfer(result: TransferResult) -> Figure:
    """Why the candidate was chosen and how far the process moved.

    Left, on a log axis: each candidate's loss relative to the best candidate's in
    each view (dots: the late points, and the folds) and its validation score, their
    geometric mean (bar; 1 would be the best in every view); the chosen candidate red,
    the baselines grey; an average's weights beside the names. Failed candidates
    (non-finite losses) are not drawn.
    Right (if the model has process-specific parameters): each one's distance from
    the source's value after the refit, in source standard deviations.

    Args:
        result: the transfer (:func:`~hybridxfer.transfer`).

    Returns:
        A new figure with one or two axes (the command line writes it as
        ``transfer.png`` beside the saved model).
    """
    table = result.candidates
    finite = lambda x: np.where(np.isfinite(x), x, np.nan)  # noqa: E731
    views = [c for c in table.columns if c == "late" or c.startswith("fold")]
    params = result.similarity.parameters.dropna(subset=["distance"])
    panels = 2 if len(params) else 1
    fig, axes = new_row(panels, (4 + 3.5 * panels, 0.4 * len(table) + 1.6))
    ax, y = axes[0], np.arange(len(table))[::-1]
    baseline = table["candidate"].isin(BASELINES)
    colour = np.where(table["chosen"], "C3", np.where(baseline, "0.6", "C0"))
    score = finite(table["validation"].to_numpy(float))
    ax.barh(y, score - 1, left=1, color=colour, height=0.6)
    ax.plot(score, y, "d", ms=5, color="k", label="score")
    for k, view in enumerate(views):
        loss = finite(table[view].to_numpy(float))
        ax.plot(loss / np.nanmin(loss), y, "o", ms=3, color=f"C{k + 4}", label=view)
    averaged = (table["weight"] > 0).sum() > 1
    names = table["candidate"]
    if averaged:
        names = [f"{n} (w {w:.2f})" for n, w in zip(names, table["weight"])]
    ax.set_xscale("log")
    ax.set_xlim(left=0.9)
    ax.set_yticks(y, names, fontsize=8)
    for label, chosen in zip(ax.get_yticklabels(), table["chosen"]):
        if chosen:
            label.set(color="C3", fontweight="bold")
    ax.set_xlabel("loss relative to the best candidate's (dots: per view; bar: score)")
    title = f"transfer: {result.strategy!r} chosen (red); baselines grey"
    if averaged:
        title = f"transfer: weighted mean of the candidates; {result.strategy!r}'s model (red)"
    if result.similarity.warning:
        title += "\nWARNING: transfer is likely to hurt (see the summary)"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    if len(params):
        ax, y = axes[1], np.arange(len(params))[::-1]
        ax.barh(y, params["distance"], color="C2", height=0.6)
        ax.set_yticks(y, params["name"], fontsize=8)
        ax.set_xlabel("|target - source| in source sd (unconstrained)")
        rms = result.similarity.distance
        ax.set_title(f"process-specific parameters (RMS {rms:.3g})", fontsize=10)
    fig.tight_layout()
    return fig
