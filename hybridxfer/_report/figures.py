"""Figures: the caller's axes or new ones, and a figure written as a PNG.

matplotlib is imported here, inside the functions, so that importing the report code
loads it only when something is drawn; pyplot picks its backend then (the command line
chooses a non-interactive one first).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DPI", "new_axes", "new_row", "save_figure"]

DPI = 110
"""Resolution of the PNGs written by :func:`save_figure` [dots per inch]."""


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes, bool]:
    """The axes to draw on.

    Args:
        ax: the caller's axes, or None for a new figure.
        figsize: size of a new figure (width, height) [inch].

    Returns:
        ``(figure, axes, new)``: `ax` and its figure, or a new figure with one axes;
        ``new`` says whether the figure is new (its layout is then the drawer's).
    """
    if ax is not None:
        return ax.get_figure(), ax, False
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax, True


def new_row(columns: int, figsize: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """A new figure with one row of `columns` axes, of `figsize` (width, height) [inch]."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, columns, figsize=figsize, squeeze=False)
    return fig, list(axes[0])


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write `fig` as a PNG of :data:`DPI` at `path`, then close it (pyplot keeps every
    figure it made until closed).

    Returns:
        `path`, as a :class:`~pathlib.Path`.
    """
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)
