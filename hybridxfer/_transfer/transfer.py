"""Transfer of a fitted model to a related process (DESIGN.md §6).

Every strategy is a :class:`~hybridxfer.Plan` (what may change, part by part; see
:mod:`.strategies`), so whole-model strategies and per-part choices run through the
same fit: the candidates of one call train together, as members of one fit (one
compile), each with the members its validation needs (:mod:`.protocol`). ``none``,
which trains nothing, is scored by the fit's evaluation at step 0, before any update,
of a member that starts from the source unchanged. ``none`` and ``scratch`` are always
among the candidates, as baselines: their validation scores say whether transfer
helped (:mod:`.selection`), and a warning is given when it is likely to hurt
(:mod:`.similarity`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .._core.model import HybridModel
from .._data.study import Study, StudyError
from .._fit import FitConfig, FitResult, Members, train
from .._uncertainty.bands import unseen_batches
from .._uncertainty.noise import with_noise
from . import protocol
from .selection import choose
from .similarity import Similarity, anchor_sd, similarity
from .strategies import candidate_plans, starts_as_source, trained_values

__all__ = ["STEPS", "TransferResult", "transfer"]

STEPS = 200  # a transfer fit's default steps: what benchmarks/transfer.py measures


@dataclass(frozen=True)
class TransferResult:
    """What :func:`transfer` returns.

    Attributes:
        fit: the transferred model as a fit result (``fit.model``, ``fit.members``;
            save it with :func:`hybridxfer.save_fit`).
        strategy: the strategy used (for ``auto``, the candidate whose model is the
            result's: the best scored, whose predictions are averaged with the others';
            see :func:`transfer`).
        candidates: per candidate (rows sorted by `validation`): its loss in each
            view: ``late``, on the late time points or valid batches (with folds, by
            a member trained on the early points), and ``fold1``... on each
            cross-validation fold (``auto`` with several batches); ``validation``, the
            score the choice uses (per view the loss relative to the best candidate's;
            their geometric mean; 1 would be best in every view); ``trained``, how
            many values it trains; ``chosen``, the one whose model is the result's;
            ``weight``, its weight in the result's predictions.
        reason: why this strategy was used.
        similarity: how alike the processes are, and the warning if any.
        candidate_fits: every candidate's fit on all the target's training batches
            (its full member; ``none``: the source), by candidate name.
    """

    fit: FitResult
    strategy: str
    candidates: pd.DataFrame
    reason: str
    similarity: Similarity
    candidate_fits: dict[str, FitResult]

    @property
    def model(self) -> HybridModel:
        """The transferred model (the target's parameter values)."""
        return self.fit.model

    def __repr__(self) -> str:
        """A short summary: the choice, the candidates' scores, the warning (the whole
        record: :meth:`summary`)."""
        sim = self.similarity
        best = self.candidates.set_index("candidate")["validation"]
        return "\n".join(
            [
                f"TransferResult to process {self.fit.process!r}: {self.strategy!r}",
                f"  {self.reason}",
                f"  candidates: {len(best)}; validation (1 = best): "
                + ", ".join(f"{k} {v:.3g}" for k, v in best.head(4).items())
                + (", ..." if len(best) > 4 else ""),
                f"  WARNING: {sim.warning}" if sim.warning else "  no negative-transfer warning",
            ]
        )

    __str__ = __repr__

    def summary(self) -> str:
        """The candidates, the choice and the similarity report, as text."""
        sim = self.similarity
        lines = [
            f"strategy: {self.strategy} ({self.reason})",
            "candidates (validation: loss relative to the best, lower is better):",
            self.candidates.to_string(index=False, float_format=lambda x: f"{x:.4g}"),
            "similarity:",
            "  zero-shot NRMSE of the source model: "
            + ", ".join(f"{k} {v:.3f}" for k, v in sim.zero_shot.items()),
            f"  parameter distance (source sd units, RMS): {sim.distance:.3g}",
            f"  MMD between processes: {sim.mmd:.3g} (permutation p = {sim.mmd_p:.3g})",
        ]
        if len(sim.parameters):
            lines.append(sim.parameters.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        lines.append(f"WARNING: {sim.warning}" if sim.warning else "no negative-transfer warning")
        return "\n".join(lines)


def transfer(
    source: FitResult,
    study: Study,
    *,
    process: str,
    strategy: str = "auto",
    source_process: str | None = None,
    config: FitConfig | None = None,
    progress: bool = True,
) -> TransferResult:
    """Transfer `source` to the target `process` of `study`.

    All candidates but ``none`` train in one fit (one compile), as members: per
    candidate a *full* member, trained on every target training batch (validated on
    the ``valid`` batches, else on the latest ``config.holdout`` of each batch's time
    points), and for ``auto`` with several training batches and no ``valid`` ones,
    one member per cross-validation fold (:data:`~.protocol.MAX_FOLDS` folds at most;
    with 2 or 3 batches, leave-one-batch-out), trained on the other batches and scored
    on the held-out one(s). With folds the full members of all candidates but the
    baselines train on every time point, and a *late* member of each, held out the late
    points, scores them (the baselines are fitted as their strategies are, ``scratch``
    with the late points held out: its full member is its late one). ``none``, the
    source as is, is scored on the same observations at step 0, before any update, by
    the members of a candidate that starts from the source unchanged (its own members
    if no candidate does, e.g. for ``scratch``); that evaluation also gives the
    zero-shot error. The chosen candidate's full member is the result.

    ``auto``'s rule: in each view (the late points or valid batches, and each fold)
    a candidate's loss is divided by the best candidate's; its score is the
    geometric mean of these ratios over the views. The result predicts the mean of all
    candidates' predictions weighted by (best score / score)^2
    (:attr:`FitResult.weights`; its ``model`` is the best candidate's, the model the
    twin runs and whose parameters are reported), calibrated on the same mean of
    their held-out predictions (:func:`~.selection.choose`). A warning says when
    transfer is likely to hurt: the target's data differ from the source's (MMD
    permutation p < 0.05) and no candidate beats ``scratch``'s validation by 2x
    (:func:`~.similarity.likely_to_hurt`), or none beats it at all.

    The source's parameter intervals (``source.parameters``) scale ``l2sp``'s pull
    and the parameter distances; parameters without a finite interval are named in a
    warning (unit scale; no distance).

    Args:
        source: the fitted source model (``hybridxfer.fit`` or ``load_fit``).
        study: holds the target's batches (``train``, optional ``valid``), and the
            source's for ``multitask``.
        process: the target process.
        strategy: one of :data:`STRATEGIES`.
        source_process: the source's process name in `study` (default: the one the
            source was fitted to, if the study has it).
        config: fit settings (default: the source fit's, with at most :data:`STEPS`
            steps: candidates start from a fitted model, and the benchmark's
            accuracy is measured with this many).
        progress: show a progress bar of the candidates' fit (tqdm.auto: in Jupyter
            too).

    Raises:
        StudyError: if the target has no training batches.
        ValueError: for an unknown strategy.
    """
    config = config or replace(source.config, steps=min(source.config.steps, STEPS))
    source_process = source_process or source.process
    if source_process not in study.processes:
        source_process = None
    target = study.select(process=process)
    if "train" not in set(target.batches["split"]):
        raise StudyError(f"{study.name}: process {process!r} has no 'train' batches")
    scales = anchor_sd(source)
    unscaled = [
        p.name for p in source.model.structure.parameters if not p.fixed and p.name not in scales
    ]
    if unscaled:
        warnings.warn(
            f"transfer to {process!r}: the source has no finite interval for "
            f"{', '.join(unscaled)}: l2sp pulls them with unit scale and their distance "
            "is not reported",
            stacklevel=2,
        )
    plans = candidate_plans(source.model, strategy, source_process, scales)
    names = list(plans)
    folds = protocol.folds(target, strategy)
    trained = [n for n in names if n != "none"]
    # none, the source as is, trains nothing: it is scored at step 0 by the members of a
    # candidate that starts from the source unchanged (not a member of its own for all
    # steps: its solve, the slowest of all, would set every step's pace; nor a solve of
    # its own: that compile cost ~2 s of a cold 2-batch auto)
    probe = next((n for n in trained if starts_as_source(plans[n], source.model)), "none")
    stepped = trained if probe != "none" else [*trained, "none"]
    members = protocol.members({n: plans[n] for n in stepped}, folds)
    index = {key: i for i, key in enumerate(members)}  # (candidate, role) -> member
    for n in stepped:  # a candidate without a late member of its own: its full one's
        index.setdefault((n, "late"), index[n, "full"])
    result = train(
        source.model,
        study,
        list(members.values()),
        process=process,
        config=config,
        progress=progress,
    )
    # the views: each candidate's late member and its folds; none's are the probe's
    # members' at step 0
    view_names = ["late", *(f"fold{j + 1}" for j in range(len(folds)))]

    def view(name: str, role: str) -> float:
        if name == "none":
            return result.start[index[probe, role], 1]
        return result.scores[index[name, role]]

    views = np.array([[view(n, v) for v in view_names] for n in names])
    views = np.where(np.isfinite(views), views, np.inf)
    fitted = target.select(split="train")

    def candidate_fit(name: str) -> FitResult:
        """Its full member (none: the source as is), calibrated on what it did not train
        on (none: every target observation)."""
        fit = (
            replace(source, process=process)
            if name == "none"
            else result.result([index[name, "full"]], config, process, fitted)
        )
        table = _calibration(result, index, name, probe, len(folds))
        return replace(fit, calibration=with_noise(table, source.calibration))

    fits = {n: candidate_fit(n) for n in names}
    # per view the loss relative to the best candidate's, then their geometric mean:
    # every view counts alike, a ratio's scale is the same
    table = pd.DataFrame(dict(candidate=names) | dict(zip(view_names, views.T)))
    relative = views / np.maximum(views.min(axis=0), 1e-300)
    table["validation"] = np.exp(np.log(relative).mean(axis=1))
    table["trained"] = [trained_values(source.model, plans[n]) for n in names]
    chosen, reason, weights = choose(strategy, table, len(folds))
    table["chosen"] = table["candidate"] == chosen
    table["weight"] = table["candidate"].map(weights).fillna(0.0)
    table = table.sort_values("validation", kind="stable").reset_index(drop=True)
    predicted = result.start_frame(index[probe, "full"])
    sim = similarity(source, fits, chosen, study, process, source_process, table, predicted)
    if sim.warning:
        warnings.warn(f"transfer to {process!r}: {sim.warning}", stacklevel=2)
    fit = fits[chosen] if len(weights) == 1 else _averaged(fits, weights, source.calibration)
    if "none" in fits and not unseen_batches(fit.calibration):  # one batch: the source's
        fit = replace(fit, reference_calibration=fits["none"].calibration)  # errors bound a band
    return TransferResult(
        fit=fit,
        strategy=chosen,
        candidates=table,
        reason=reason,
        similarity=sim,
        candidate_fits=fits,
    )


def _averaged(fits: dict[str, FitResult], weights: dict[str, float], source) -> FitResult:
    """The candidates as one fit whose predictions are their weighted mean
    (:attr:`FitResult.weights`; the heaviest first: its model is the fit's), calibrated
    on the same mean of their predictions, held out where all of theirs are. `source`:
    the source's calibration (its measurement noise, :func:`with_noise`)."""
    names = list(weights)  # heaviest first
    keys = ["batch", "time", "variable"]
    rows = next(fits[n].calibration for n in names if n != "none")  # full + folds' rows
    predicted, heldout = [], []
    for n in names:
        table = fits[n].calibration
        if n == "none":  # the source: one prediction per observation, none trained on
            table = rows[keys].merge(table, on=keys, how="left", validate="many_to_one")
        elif len(table) != len(rows) or not (table[keys].to_numpy() == rows[keys].to_numpy()).all():
            raise RuntimeError(f"transfer: candidate {n!r}'s calibration rows do not align")
        predicted.append(table["predicted"].to_numpy(float))
        heldout.append(table["heldout"].to_numpy(bool))
    table = rows.drop(columns="noise", errors="ignore").assign(
        predicted=np.array(list(weights.values())) @ np.array(predicted),
        heldout=np.logical_and.reduce(heldout),
    )
    best = fits[names[0]]
    return replace(
        best,
        members=tuple(fits[n].model for n in names),
        scores=tuple(fits[n].scores[0] for n in names),
        weights=tuple(weights.values()),
        calibration=with_noise(table, source),
    )


def _calibration(result: Members, index, name: str, probe: str, folds: int) -> pd.DataFrame:
    """A candidate's predictions of the target's observations (see
    :attr:`FitResult.calibration`): its full member's, with each fold member's
    predictions of its held-out batches; for ``none``, the source's of every
    observation (none of which it was trained on)."""
    if name == "none":
        return result.calibration(index[probe, "full"], at_start=True)
    held = [result.calibration(index[name, f"fold{j + 1}"]) for j in range(folds)]
    full = result.calibration(index[name, "full"])
    return pd.concat([full, *(h[h["heldout"]] for h in held)], ignore_index=True)
