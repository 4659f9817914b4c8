"""Reports of a fitted model: learned factors, rates, training history, parameters,
and of a transfer: its candidates and how far the process moved."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float

from .._core.model import HybridModel
from .._data.batch_data import BatchData, batch_data, input_values_at
from .._data.metrics import nrmse
from .._data.study import Study
from .._fit.engine import FitResult
from .._solve.simulation import Solver, solve
from .._transfer.transfer import BASELINES, TOLERANCE, TransferResult
from .._uncertainty.prediction import predict
from .trajectories import plot_simulation, plt, save_figure

__all__ = ["plot_history", "plot_networks", "plot_transfer", "rates_along", "write_report"]


def rates_along(
    model: HybridModel, study: Study, points: int = 101, mechanistic: bool = False
) -> pd.DataFrame:
    """Every named rate and network factor along each batch's simulated trajectory.

    With ``mechanistic=True`` every network factor is set to 1 first, giving the
    mechanistic part of each rate (what the networks correct).

    Returns:
        Long table ``batch, time, rate, value``.
    """
    times = {b: np.linspace(0.0, study.end_time(b), points) for b in study.batch_names}
    data = batch_data(model, study, times)
    ys = solve(model, data, Solver())[0][..., : len(model.state_names)]
    rates = _rates_at(model, data, ys, mechanistic)
    n = len(study.batch_names)
    frames = []
    for name, values in rates.items():
        v = np.broadcast_to(np.asarray(values), data.times.shape)[:n]
        t, m = np.asarray(data.times)[:n], np.asarray(data.mask)[:n]
        b = np.repeat(np.asarray(study.batch_names, dtype=object)[:, None], t.shape[1], axis=1)
        frames.append(pd.DataFrame(dict(batch=b[m], time=t[m], rate=name, value=v[m])))
    return pd.concat(frames, ignore_index=True)


@eqx.filter_jit
def _rates_at(
    model: HybridModel, data: BatchData, ys: Float[Array, "B M n_states"], mechanistic: bool
) -> dict[str, Float[Array, "B M"]]:
    """Every named rate at each batch's output times and states (compiled once per
    model structure, shape and `mechanistic`; a closure would compile on every call)."""
    replace = dict.fromkeys(model.networks, 1.0) if mechanistic else None

    def at(t, y, it, iv, c):
        return model.rates(t, y, input_values_at(t, it, iv, model.linear_inputs), c, replace)

    per_point = jax.vmap(at, in_axes=(0, 0, None, None, None))
    return jax.vmap(per_point)(data.times, ys, data.input_times, data.input_values, data.constants)


def plot_networks(model: HybridModel, study: Study | None, out: str | Path) -> list[Path]:
    """One PNG per network factor: the factor over its inputs (left) and, along the
    simulated batches of `study` (if given), each rate using it with and without it.

    Inputs range over mean +- 2 std of the training data (the stored normalisation);
    a factor with two inputs is drawn as a contour map, otherwise as lines with the
    other inputs at their mean.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not model.networks:
        return []
    if study is not None:
        hybrid = rates_along(model, study)
        mech = rates_along(model, study, mechanistic=True)
    paths = []
    for name, net in model.networks.items():
        rates = [r for r, _ in model.structure.rates]
        users = [r for r in rates if study is not None and name in _depends(model, r)]
        fig, axes = plt.subplots(
            1, 1 + len(users), figsize=(5 * (1 + len(users)), 4), squeeze=False
        )
        _draw_factor(axes[0, 0], model, net)
        for ax, rate in zip(axes[0, 1:], users):
            for i, (batch, h) in enumerate(
                hybrid[hybrid["rate"] == rate].groupby("batch", sort=False)
            ):
                m = mech[(mech["rate"] == rate) & (mech["batch"] == batch)]
                ax.plot(h["time"], h["value"], color=f"C{i % 10}", lw=1.2)
                ax.plot(m["time"], m["value"], color=f"C{i % 10}", lw=1, ls="--")
            ax.set_title(f"{rate}: hybrid (solid) vs mechanistic, {name} = 1 (dashed)", fontsize=9)
            ax.set_xlabel(f"time [{model.structure.time_unit}]")
            ax.set_ylabel(rate)
        paths.append(save_figure(fig, out / f"network_{name}.png"))
    return paths


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


def _draw_factor(ax, model: HybridModel, net) -> None:
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
        plt.colorbar(cs, ax=ax, label=net.spec.name)
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


def plot_history(history: pd.DataFrame, out: str | Path) -> Path:
    """Training and validation loss per step (one line pair per member)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for r, h in history.groupby("member"):
        ax.semilogy(h["step"], h["train"], color=f"C{r % 10}", lw=1, label=f"member {r} train")
        ax.semilogy(h["step"], h["valid"], color=f"C{r % 10}", lw=1, ls="--", label="valid")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (scaled)")
    ax.legend(fontsize=7, ncol=2)
    return save_figure(fig, Path(out) / "history.png")


def plot_transfer(result: TransferResult, out: str | Path) -> Path:
    """``transfer.png``: why the candidate was chosen and how far the process moved.

    Left, on a log axis: each candidate's loss relative to the best candidate's in
    each view (dots: the late points, and the folds) and its validation score, their
    geometric mean (bar; 1 would be the best in every view); the chosen candidate red,
    the baselines grey, and dashed the tolerance within which the candidate training
    the fewest values is chosen.
    Right (if the model has process-specific parameters): each one's distance from
    the source's value after the refit, in source standard deviations.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = result.candidates
    finite = lambda x: np.where(np.isfinite(x), x, np.nan)  # noqa: E731  (failed: not drawn)
    views = [c for c in table.columns if c == "late" or c.startswith("fold")]
    params = result.similarity.parameters.dropna(subset=["distance"])
    panels = 2 if len(params) else 1
    fig, axes = plt.subplots(
        1, panels, figsize=(4 + 3.5 * panels, 0.4 * len(table) + 1.6), squeeze=False
    )
    ax, y = axes[0, 0], np.arange(len(table))[::-1]
    baseline = table["candidate"].isin(BASELINES)
    colour = np.where(table["chosen"], "C3", np.where(baseline, "0.6", "C0"))
    score = finite(table["validation"].to_numpy(float))
    ax.barh(y, score - 1, left=1, color=colour, height=0.6)
    ax.plot(score, y, "d", ms=5, color="k", label="score")
    for k, view in enumerate(views):
        loss = finite(table[view].to_numpy(float))
        ax.plot(loss / np.nanmin(loss), y, "o", ms=3, color=f"C{k + 4}", label=view)
    near = (1 + TOLERANCE) * np.nanmin(score)
    ax.axvline(near, color="k", ls="--", lw=1, label=f"best score x{1 + TOLERANCE:g}")
    ax.set_xscale("log")
    ax.set_xlim(left=0.9)
    ax.set_yticks(y, table["candidate"], fontsize=8)
    for label, chosen in zip(ax.get_yticklabels(), table["chosen"]):
        if chosen:
            label.set(color="C3", fontweight="bold")
    ax.set_xlabel("loss relative to the best candidate's (dots: per view; bar: score)")
    title = f"transfer: {result.strategy!r} chosen (red); baselines grey"
    if result.similarity.warning:
        title += "\nWARNING: transfer is likely to hurt (see the summary)"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    if len(params):
        ax, y = axes[0, 1], np.arange(len(params))[::-1]
        ax.barh(y, params["distance"], color="C2", height=0.6)
        ax.set_yticks(y, params["name"], fontsize=8)
        ax.set_xlabel("|target - source| in source sd (unconstrained)")
        rms = result.similarity.distance
        ax.set_title(f"process-specific parameters (RMS {rms:.3g})", fontsize=10)
    return save_figure(fig, out / "transfer.png")


def write_report(
    result: FitResult,
    study: Study | None,
    out: str | Path,
    transfer: TransferResult | None = None,
) -> Path:
    """Write ``report.md`` with the parameter table, training history, learned
    factors and, given a study, predictions with ensemble bands and their NRMSE
    per split (train / valid / test) and variable; given the `transfer` that made
    `result`, first its record (:meth:`TransferResult.summary`) and ``transfer.png``
    (:func:`plot_transfer`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = result.model
    lines = [f"# Model {model.name!r}", ""]
    if transfer is not None:
        lines += ["## Transfer", "", "```", transfer.summary(), "```", ""]
        lines += [f"![transfer]({plot_transfer(transfer, out).name})", ""]
    if result.parameters is not None:
        result.parameters.to_csv(out / "parameters.csv", index=False)
        lines += ["## Parameters (95% Laplace intervals)", "", _markdown(result.parameters), ""]
    lines += ["## Training", "", f"![history]({plot_history(result.history, out).name})", ""]
    fitted = (
        study.select(split="train")
        if study is not None and "train" in set(study.batches["split"])
        else None
    )
    for path in plot_networks(model, fitted, out):
        lines += [f"![{path.stem}]({path.name})", ""]
    if study is not None:
        pred = predict(result.members, study, times=101)
        pred.to_csv(out / "predictions.csv", index=False)
        scores = {}
        for split in dict.fromkeys(study.batches["split"]):
            part = study.select(split=split)
            scores[split] = nrmse(pred[pred["batch"].isin(part.batch_names)], part.measurements)
        table = pd.DataFrame(scores).rename_axis("variable").reset_index()
        lines += ["## Prediction error (NRMSE = RMSE / range)", "", _markdown(table), ""]
        plots = plot_simulation(pred, study.measurements, out / "predictions", model.units)
        lines += [f"![{p.stem}](predictions/{p.name})" for p in plots]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out


def _markdown(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    rows = [" | ".join(fmt(v) for v in row) for row in frame.itertuples(index=False)]
    return "\n".join([" | ".join(cols), " | ".join("---" for _ in cols), *rows])
