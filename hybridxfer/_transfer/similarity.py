"""How alike source and target processes are, and whether transfer is likely to hurt."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._data.metrics import nrmse
from .._data.study import Study
from .._fit import FitResult

__all__ = ["MIN_GAIN", "SHIFT_P", "Similarity", "anchor_sd", "likely_to_hurt", "similarity"]

SHIFT_P = 0.05  # the processes' data differ: MMD permutation p below this
MIN_GAIN = 2.0  # the source's candidates must beat scratch's validation by this factor


@dataclass(frozen=True)
class Similarity:
    """How alike source and target processes are.

    Attributes:
        zero_shot: NRMSE per variable of the unchanged source model on the target's
            training batches (solved with the fit's solver).
        parameters: per process-specific parameter, its source and refit target
            values and the distance ``|z_target - z_source| / sd_z`` in units of the
            source's standard deviation (unconstrained coordinates).
        distance: root mean square of those distances.
        mmd: maximum mean discrepancy (RBF kernel, median bandwidth) between source
            and target observations (time and states, scaled by their ranges).
        mmd_p: permutation p-value of `mmd` (small: the processes differ).
        warning: why transfer is likely to hurt (the processes differ and no strategy
            using the source beats learning from scratch by
            :data:`MIN_GAIN` on the target's validation; none beats it at
            all; or the requested one does worse than a baseline), or None.
    """

    zero_shot: pd.Series
    parameters: pd.DataFrame
    distance: float
    mmd: float
    mmd_p: float
    warning: str | None


def anchor_sd(source: FitResult) -> dict[str, float]:
    """Each parameter's standard deviation in unconstrained units, from the source's
    95% interval (the interval maps to z +- 1.96 sd_z)."""
    table = source.parameters
    if table is None or "lower95" not in table:
        return {}
    params = {p.name: p for p in source.model.structure.parameters}
    out = {}
    for row in table.itertuples():
        p = params.get(row.name)
        if p is not None and not p.fixed and np.isfinite(row.lower95) and np.isfinite(row.upper95):
            sd = (p.unconstrain(row.upper95) - p.unconstrain(row.lower95)) / (2 * 1.959963984540054)
            if sd > 0:
                out[row.name] = float(sd)
    return out


def likely_to_hurt(score: dict[str, float], mmd_p: float) -> bool:
    """Whether transfer is likely to hurt (the negative-transfer warning's first
    condition): the target's data differ from the source's (MMD permutation p <
    :data:`SHIFT_P`) and the best candidate does not beat ``scratch``'s relative
    validation loss by :data:`MIN_GAIN` (``scratch`` < MIN_GAIN x best). With 1-3
    batches a validation gain below 2x over a process that is not the source's is weak
    evidence. On the transfer suite's unrelated targets at 2 batches it held on 6 of
    the 6 draws it was set on and on 6 of 9 drawn after; on related ones on 4 of 29
    (``benchmarks/results/selection.md``). MIN_GAIN is the smallest factor at which
    it holds on every unrelated draw it was set on; chosen on the other families it is
    2 for three held-out families and 1.5 for the fourth. ``auto`` does not fall back
    on it: a fallback to the better validated baseline scored worse on the 9 later
    unrelated draws than the average (worst 1.32 vs 1.28 of min(none, scratch),
    geometric mean 1.02 vs 0.92)."""
    best = min(score.values())
    return bool(mmd_p < SHIFT_P) and score["scratch"] < MIN_GAIN * best


def similarity(
    source, fits, chosen, study, process, source_process, table, predicted
) -> Similarity:
    """The similarity report; `predicted`: the source model's predictions of the
    target's batches (long table)."""
    target = study.select(process=process, split="train")
    predicted = predicted[predicted["batch"].isin(target.batch_names)]
    zero = nrmse(predicted, target.measurements).dropna()
    zero = zero[
        [v for v in zero.index if target.measurements.query("variable == @v")["time"].nunique() > 1]
    ]
    refit = fits.get("refit-mechanistic", fits[chosen]).model  # trained on every batch
    rows = []
    sd = anchor_sd(source)
    src, tgt = source.model.parameter_values(), refit.parameter_values()
    for p in source.model.structure.parameters:
        if p.process_specific and not p.fixed:
            dz = abs(p.unconstrain(float(tgt[p.name])) - p.unconstrain(float(src[p.name])))
            rows.append(
                dict(
                    name=p.name,
                    unit=p.unit,
                    source=float(src[p.name]),
                    target=float(tgt[p.name]),
                    distance=dz / sd.get(p.name, np.nan),
                )
            )
    params = pd.DataFrame(rows, columns=["name", "unit", "source", "target", "distance"])
    known = params["distance"].dropna()
    distance = float(np.sqrt(np.mean(known**2))) if len(known) else np.nan
    mmd, p_value = _mmd(study, source_process, process)
    score = dict(zip(table["candidate"], table["validation"]))
    warning = None
    best_transfer = min(v for k, v in score.items() if k != "scratch")
    if likely_to_hurt(score, p_value):
        warning = (
            f"negative transfer likely: the target's data differ from the source's (MMD p = "
            f"{p_value:.2g}) and nothing from the source beats learning from scratch by "
            f"{MIN_GAIN:g}x on the target's own validation (best {best_transfer:.4g}, "
            f"scratch {score['scratch']:.4g})"
        )
    elif best_transfer >= score["scratch"]:
        warning = (
            "negative transfer likely: nothing from the source beats learning from scratch on "
            f"the target's own validation (best {best_transfer:.4g}, "
            f"scratch {score['scratch']:.4g})"
        )
        if chosen != "scratch":  # a strategy asked for
            warning += f"; the result is {chosen!r} ({score[chosen]:.4g})"
    elif chosen not in ("none", "scratch") and score[chosen] >= min(
        score["none"], score["scratch"]
    ):
        warning = (
            f"strategy {chosen!r} does worse on validation ({score[chosen]:.4g}) than a "
            f"baseline (none {score['none']:.4g}, scratch {score['scratch']:.4g}); "
            "strategy 'auto' would weigh every candidate by its score"
        )
    return Similarity(zero, params, distance, mmd, p_value, warning)


def _mmd(study: Study, a: str | None, b: str, permutations: int = 200) -> tuple[float, float]:
    """MMD^2 between the observations of processes a and b (rows: time and every
    variable measured at that time, scaled by the pooled range), with a permutation p."""
    if a is None:
        return np.nan, np.nan
    meas = study.select(process=[a, b]).measurements
    wide = meas.pivot_table(index=["batch", "time"], columns="variable", values="value").dropna(
        axis=1
    )
    if wide.empty:
        return np.nan, np.nan
    x = wide.reset_index(level="time").to_numpy(float)
    x = (x - x.min(0)) / np.where(np.ptp(x, 0) > 0, np.ptp(x, 0), 1.0)
    proc = dict(zip(study.batches["batch"], study.batches["process"]))
    label = np.array([proc[bt] == a for bt in wide.index.get_level_values("batch")])
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    k = np.exp(-d2 / np.median(d2[d2 > 0]))

    def stat(lab):
        return k[lab][:, lab].mean() + k[~lab][:, ~lab].mean() - 2 * k[lab][:, ~lab].mean()

    observed = stat(label)
    rng = np.random.default_rng(0)
    null = [stat(rng.permutation(label)) for _ in range(permutations)]
    return float(observed), float((1 + np.sum(np.asarray(null) >= observed)) / (1 + permutations))
