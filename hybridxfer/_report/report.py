"""The report of a fitted model, ``report.md`` with its figures: the transfer that
made it, the parameters, the training history, the learned factors and predictions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .._data.metrics import nrmse
from .._data.study import Study
from .._fit import FitResult, profile_likelihood
from .._fit.intervals import CORRELATED
from .._transfer import TransferResult
from .._uncertainty import predict, reliability
from .figures import save_figure
from .networks import plot_network
from .parity import plot_parity, residual_table
from .profile import plot_profile
from .reliability import plot_reliability
from .trajectories import plot_history, plot_simulation
from .transfer import plot_transfer

__all__ = ["write_report"]


def write_report(
    result: FitResult,
    study: Study | None,
    out: str | Path,
    transfer: TransferResult | None = None,
    profiles: Sequence[str] = (),
) -> Path:
    """Write ``report.md`` and its files to the folder `out` (created if needed).

    In order: given the `transfer` that made `result`, its record
    (:meth:`TransferResult.summary <hybridxfer.TransferResult.summary>`) and
    ``transfer.png`` (:func:`~hybridxfer.plot_transfer`); the parameter table
    (``parameters.csv``, with identifiability flags, and the correlation of the
    estimates); the profile likelihood of each parameter in `profiles`
    (``profile_<name>.csv`` and ``.png``, :func:`~hybridxfer.profile_likelihood`,
    :func:`~hybridxfer.plot_profile`); the training history (``history.png``,
    :func:`~hybridxfer.plot_history`); each network factor (``network_<name>.png``,
    :func:`~hybridxfer.plot_network`, along the study's train batches if it has
    any); and, given a study, predictions with their bands (``predictions.csv``,
    ``predictions/<variable>.png``, :func:`~hybridxfer.plot_simulation`, line style by
    split), every measurement beside its prediction (``residuals.csv``,
    :func:`~hybridxfer.residual_table`; ``parity/<variable>.png``,
    :func:`~hybridxfer.plot_parity`), the NRMSE per split (train / valid / test) and
    variable, and, given test batches, the bands' reliability on them
    (``reliability.png``, :func:`~hybridxfer.plot_reliability`).

    Args:
        result: the fit to report.
        study: batches to predict and score, or None.
        out: the report's folder.
        transfer: the transfer whose fit `result` is, or None.
        profiles: parameters to profile, on the batches the fit trained on (a saved
            fit's: the study's ``train`` batches of its process).

    Raises:
        ValueError: `profiles` for a saved fit without a study that holds its batches.

    Returns:
        The folder, as a :class:`~pathlib.Path`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = result.model
    lines = [f"# Model {model.name!r}", ""]
    if transfer is not None:
        png = save_figure(plot_transfer(transfer), out / "transfer.png")
        lines += ["## Transfer", "", "```", transfer.summary(), "```", ""]
        lines += [f"![transfer]({png.name})", ""]
    result.parameters.to_csv(out / "parameters.csv", index=False)
    lines += ["## Parameters (95% Laplace intervals)", "", _markdown(result.parameters), ""]
    correlation = result.parameters.attrs.get("correlation")
    if correlation is not None and len(correlation):
        table = correlation.rename_axis("parameter").reset_index()
        lines += [f"Correlation of the estimates (flagged above where |r| > {CORRELATED}):", ""]
        lines += [_markdown(table), ""]
    if profiles:
        lines += _profiles(result, study, profiles, out)
    png = save_figure(plot_history(result.history), out / "history.png")
    lines += ["## Training", "", f"![history]({png.name})", ""]
    fitted = (
        study.select(split="train")
        if study is not None and "train" in set(study.batches["split"])
        else None
    )
    for name in model.networks:
        png = save_figure(plot_network(model, name, fitted), out / f"network_{name}.png")
        lines += [f"![{png.stem}]({png.name})", ""]
    if study is not None:
        pred = predict(result, study, times=101)
        pred.to_csv(out / "predictions.csv", index=False)
        residuals = residual_table(predict(result, study), study)
        residuals.to_csv(out / "residuals.csv", index=False)
        scores = {}
        for split in dict.fromkeys(study.batches["split"]):
            part = study.select(split=split)
            at = residuals[residuals["split"] == split].rename(columns={"predicted": "value"})
            scores[split] = nrmse(at, part.measurements)
        table = pd.DataFrame(scores).rename_axis("variable").reset_index()
        lines += ["## Prediction error (NRMSE = RMSE / range)", "", _markdown(table), ""]
        lines += [f"Bands (lower, upper): {pred.attrs.get('band', 'none')}.", ""]
        if result.calibration is not None and "test" in scores:  # not calibrated on
            table = reliability(result, study.select(split="test"))
            png = save_figure(plot_reliability(table), out / "reliability.png")
            lines += ["## Reliability of the bands (test batches)", ""]
            lines += [_markdown(table), "", f"![reliability]({png.name})", ""]
        splits = dict(zip(study.batches["batch"], study.batches["split"]))
        units = dict(units=model.units, time_unit=model.structure.time_unit)
        lines += ["## Predictions and residuals", ""]
        for folder in ("predictions", "parity"):
            (out / folder).mkdir(exist_ok=True)
        for variable in dict.fromkeys(pred["variable"]):
            fig = plot_simulation(pred, variable, study.measurements, splits=splits, **units)
            png = save_figure(fig, out / "predictions" / f"{variable}.png")
            lines.append(f"![{png.stem}](predictions/{png.name})")
            if variable in set(residuals["variable"]):
                png = save_figure(
                    plot_parity(residuals, variable, **units), out / "parity" / f"{variable}.png"
                )
                lines.append(f"![{png.stem} parity](parity/{png.name})")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out


def _profiles(result: FitResult, study: Study | None, names: Sequence[str], out: Path):
    """The report's lines on the profiles of `names`, their tables and figures written."""
    fitted = result.fitted
    if fitted is None and study is not None and result.process in study.processes:
        fitted = study.select(process=result.process, split="train")
    if fitted is None:
        raise ValueError(
            f"profiles need the batches the fit trained on: give a study with process "
            f"{result.process!r}'s train batches"
        )
    laplace = result.parameters.set_index("name")
    rows, figures = [], []
    for name in names:
        profile = profile_likelihood(result, name, fitted)
        profile.to_csv(out / f"profile_{name}.csv", index=False)
        png = save_figure(plot_profile(profile), out / f"profile_{name}.png")
        figures.append(f"![profile of {name}]({png.name})")
        a = profile.attrs
        rows.append(
            dict(parameter=name, estimate=a["estimate"], lower95=a["lower"], upper95=a["upper"])
            | dict(laplace_lower95=laplace.loc[name, "lower95"])
            | dict(laplace_upper95=laplace.loc[name, "upper95"])
            | dict(not_bounded=" and ".join(a["open"]) or "-")
        )
    return [
        "## Profile likelihood (95% intervals)",
        "",
        "Each parameter moved, the other parameters and the networks' output levels "
        "refitted (network weights held): where the data stop bounding it, the "
        "Laplace interval above cannot show it.",
        "",
        _markdown(pd.DataFrame(rows)),
        "",
        *figures,
        "",
    ]


def _markdown(frame: pd.DataFrame) -> str:
    """`frame` as a Markdown table, floats to 4 significant digits."""
    cols = list(frame.columns)
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    rows = [" | ".join(fmt(v) for v in row) for row in frame.itertuples(index=False)]
    return "\n".join([" | ".join(cols), " | ".join("---" for _ in cols), *rows])
