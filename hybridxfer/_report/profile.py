"""The profile likelihood of a parameter, drawn."""

from __future__ import annotations

import math

import pandas as pd

from .figures import new_axes

__all__ = ["plot_profile"]


def plot_profile(profile: pd.DataFrame, ax=None):
    """The profile's statistic Delta against the parameter's value
    (:func:`hybridxfer.profile_likelihood`'s table), with the threshold of its level,
    the interval shaded, and a side the data do not bound said in the title.

    Args:
        profile: ``value, z, delta`` and its attrs.
        ax: axes to draw on; a new figure if None.

    Returns:
        The figure drawn on.
    """
    a = profile.attrs
    fig, ax, new = new_axes(ax, (4.5, 3.5))
    ax.plot(profile["value"], profile["delta"], "o-", color="C0", ms=4, label="profile")
    ax.axhline(a["threshold"], color="0.4", ls="--", lw=1, label=f"{a['level']:.0%} threshold")
    lower, upper = (a[k] for k in ("lower", "upper"))
    shown = profile["value"]
    ax.axvspan(
        max(lower, shown.min()) if math.isfinite(lower) else shown.min(),
        min(upper, shown.max()) if math.isfinite(upper) else shown.max(),
        color="C0",
        alpha=0.12,
        label="interval",
    )
    ax.axvline(a["estimate"], color="C3", lw=1, label="estimate")
    ax.set_xlabel(f"{a['parameter']} [{a['unit']}]" if a["unit"] else a["parameter"])
    ax.set_ylabel("Δ (−2 log likelihood ratio)")
    ax.set_ylim(0, max(2 * a["threshold"], min(profile["delta"].max(), 4 * a["threshold"])))
    title = f"profile likelihood of {a['parameter']}"
    if a["open"]:
        title += f"\n(not bounded by the data: {' and '.join(a['open'])} side)"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    if new:
        fig.tight_layout()
    return fig
