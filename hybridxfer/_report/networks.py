"""Plots of a learned network factor: the factor over its inputs, and what it does to
the rates along simulated batches."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

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
    states from 0 at the least; a factor with two inputs is drawn as a contour map,
    otherwise as lines over each input (in std from its mean) with the other inputs at
    their mean.

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
    _draw_factor(axes[0], model, net)
    if users:
        hybrid = rates_along(model, study)
        mech = rates_along(model, study, mechanistic=True)
    for ax, rate in zip(axes[1:], users):
        for i, (batch, h) in enumerate(hybrid[hybrid["rate"] == rate].groupby("batch", sort=False)):
            m = mech[(mech["rate"] == rate) & (mech["batch"] == batch)]
            ax.plot(h["time"], h["value"], color=f"C{i % 10}", lw=1.2)
            ax.plot(m["time"], m["value"], color=f"C{i % 10}", lw=1, ls="--")
        ax.set_title(f"{rate}: hybrid (solid) vs mechanistic, {network} = 1 (dashed)", fontsize=9)
        ax.set_xlabel(f"time [{model.structure.time_unit}]")
        ax.set_ylabel(rate)
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


def _draw_factor(ax: Axes, model: HybridModel, net) -> None:
    units = model.units
    mean, std = np.asarray(net.mean), np.asarray(net.std)
    states = set(model.state_names)
    lo = np.where(
        [x in states for x in net.spec.inputs], np.maximum(mean - 2 * std, 0), mean - 2 * std
    )
    grids = [np.linspace(a, b, 60) for a, b in zip(lo, mean + 2 * std)]
    f = jax.jit(jax.vmap(net))
    label = lambda x: f"{x} [{units[x]}]" if x in units else x  # noqa: E731
    if len(grids) == 2:
        g0, g1 = np.meshgrid(*grids, indexing="ij")
        z = np.asarray(f(jnp.stack([g0.ravel(), g1.ravel()], axis=1))).reshape(g0.shape)
        cs = ax.contourf(g0, g1, z, levels=20, cmap="viridis")
        ax.get_figure().colorbar(cs, ax=ax, label=net.spec.name)
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
