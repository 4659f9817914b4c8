"""Plots of a learned network factor: the factor over its inputs, and what it does to
the rates along simulated batches."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .._core.model import HybridModel
from .._data.study import Study
from .._solve.rates import rates_along
from .figures import new_row

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_network"]


def plot_network(model: HybridModel, network: str, study: Study | None = None) -> Figure:
    """A network factor over its inputs (left) and, along the simulated batches of
    `study` (if given), each rate using it with (solid) and without it (dashed: the
    factor set to 1; :func:`~hybridxfer.rates_along`).

    Inputs range over mean ± 2 std of the training data (the stored normalisation),
    states from 0 at the least. A factor of one input is a line over it, in its units;
    of two inputs, a contour map; of more, lines over each input (in std from its mean)
    with the others at their mean. Where the study measured the inputs, those values
    are marked (dots on the map, a rug under a line): the factor is learned there and
    extrapolated elsewhere.

    Args:
        model: the model.
        network: the network's name (a key of ``model.networks``).
        study: batches to simulate for the rates' panels; None for the factor only.

    Returns:
        A new figure: one axes for the factor, one per rate that reads it.

    Raises:
        KeyError: `network` is not one of the model's networks.
    """
    net = model.networks[network]
    users = []
    if study is not None:
        users = [r for r, _ in model.structure.rates if network in _depends(model, r)]
    fig, axes = new_row(1 + len(users), (5 * (1 + len(users)), 4))
    _draw_factor(axes[0], model, net, study)
    if users:
        hybrid = rates_along(model, study)
        mech = rates_along(model, study, mechanistic=True)
    for ax, rate in zip(axes[1:], users):
        for i, (batch, h) in enumerate(hybrid[hybrid["rate"] == rate].groupby("batch", sort=False)):
            m = mech[(mech["rate"] == rate) & (mech["batch"] == batch)]
            ax.plot(h["time"], h["value"], color=f"C{i % 10}", lw=1.2, label=batch)
            ax.plot(m["time"], m["value"], color=f"C{i % 10}", lw=1, ls="--")
        ax.plot([], [], "k-", lw=1.2, label="hybrid")
        ax.plot([], [], "k--", lw=1, label=f"mechanistic ({network} = 1)")
        ax.set_title(f"rate {rate} along the batches", fontsize=9)
        ax.set_xlabel(f"time [{model.structure.time_unit}]")
        ax.set_ylabel(f"{rate} [{model.units[rate]}]" if rate in model.units else rate)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _depends(model: HybridModel, rate: str) -> set[str]:
    """Names a rate reads, directly or through other rates."""
    exprs = dict(model.structure.rates)
    seen, todo = set(), [rate]
    while todo:
        for n in exprs[todo.pop()].names - seen:
            seen.add(n)
            if n in exprs:
                todo.append(n)
    return seen


def _draw_factor(ax: Axes, model: HybridModel, net, study: Study | None) -> None:
    units = model.units
    mean, std = np.asarray(net.mean), np.asarray(net.std)
    states = set(model.state_names)
    lo = np.where(
        [x in states for x in net.spec.inputs], np.maximum(mean - 2 * std, 0), mean - 2 * std
    )
    grids = [np.linspace(a, b, 60) for a, b in zip(lo, mean + 2 * std)]
    f = jax.jit(jax.vmap(net))
    label = lambda x: f"{x} [{units[x]}]" if x in units else x  # noqa: E731
    seen = _measured(study, net.spec.inputs)
    if len(grids) == 1:
        ax.plot(grids[0], np.asarray(f(jnp.asarray(grids[0])[:, None])), lw=1.5)
        if seen is not None:
            ax.plot(
                seen.iloc[:, 0],
                np.zeros(len(seen)),
                "|",
                color="k",
                ms=10,
                transform=ax.get_xaxis_transform(),
                label="measured (training data)",
            )
            ax.legend(fontsize=8)
        ax.set_xlabel(label(net.spec.inputs[0]))
        ax.set_ylabel(net.spec.name)
    elif len(grids) == 2:
        g0, g1 = np.meshgrid(*grids, indexing="ij")
        z = np.asarray(f(jnp.stack([g0.ravel(), g1.ravel()], axis=1))).reshape(g0.shape)
        cs = ax.contourf(g0, g1, z, levels=20, cmap="viridis")
        ax.get_figure().colorbar(cs, ax=ax, label=net.spec.name)
        if seen is not None:
            ax.plot(
                seen.iloc[:, 0],
                seen.iloc[:, 1],
                "o",
                ms=3,
                mfc="white",
                mec="k",
                mew=0.5,
                label="measured (training data)",
            )
            ax.legend(fontsize=8)
        ax.set_xlabel(label(net.spec.inputs[0]))
        ax.set_ylabel(label(net.spec.inputs[1]))
    else:
        for k, x in enumerate(net.spec.inputs):
            pts = np.tile(mean, (len(grids[k]), 1))
            pts[:, k] = grids[k]
            ax.plot((grids[k] - mean[k]) / std[k], np.asarray(f(jnp.asarray(pts))), label=label(x))
        ax.set_xlabel("input, in std from its training mean (others at their mean)")
        ax.set_ylabel(net.spec.name)
        ax.legend(fontsize=8)
    ax.set_title(f"learned factor {net.spec.name}({', '.join(net.spec.inputs)})", fontsize=9)


def _measured(study: Study | None, inputs) -> pd.DataFrame | None:
    """The study's observations where every input was measured at once (one column per
    input), or None if there are none."""
    if study is None:
        return None
    m = study.measurements[study.measurements["variable"].isin(inputs)]
    wide = m.pivot_table(index=["batch", "time"], columns="variable", values="value")
    wide = wide.reindex(columns=list(inputs)).dropna()
    return wide if len(wide) else None
