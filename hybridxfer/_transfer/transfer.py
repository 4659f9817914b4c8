"""Transfer of a fitted model to a related process (DESIGN.md §6).

Every strategy is a :class:`~hybridxfer.Plan` (what may change, part by part),
so whole-model strategies and per-part choices run through the same fit:

=====================  =====================================================
strategy               plan
=====================  =====================================================
``none``               nothing changes: the source model as is
``scratch``            everything learned afresh from the declared values
``refit-mechanistic``  process-specific parameters refit; networks frozen
``fine-tune``          everything tuned from the source, learning rate x0.2
``fine-tune-last``     parameters and the networks' last layers tuned
``l2sp``               fine-tune, pulled toward the source (uncertainty-aware)
``embedding``          only the parameters the networks read (the process's
                       embedding vector) refit; networks frozen. Needs a source
                       fitted on several processes with such parameters
                       declared process-specific (see :class:`~hybridxfer.Network`)
``multitask``          source and target fitted together; shared networks,
                       process-specific parameters per process
``auto``               the above but multitask (whose every member would
                       solve the source's batches too: ~9x the cost per
                       member) and per-part plans (each network frozen or
                       tuned), chosen by validation on the target's own
                       batches
=====================  =====================================================

The candidates of one call train together, as members of one fit (one compile);
``none``, which trains nothing, is scored at the fit's first step, by a member that
starts from the source unchanged (the values before that step's update).
``none`` and ``scratch`` are always among the candidates, as baselines: their
validation scores say whether transfer helped, and a warning is given when it is
likely to hurt. Validation: each candidate's *full* member, trained on all the target's
training batches, is scored on the ``valid`` batches, else on the latest time
points of each batch. For ``auto`` with several batches and no ``valid`` ones,
cross-validation scores the candidates too (leave-one-batch-out with 2 or 3
batches), its folds being further members of the same fit, and the full members
of all but the baselines train on every time point, a further member per candidate
(trained on the early points) giving the late-point score: no late points are held
out of the model ``auto`` returns, the chosen candidate's full member (see
:func:`transfer` for the rule).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, replace

import equinox as eqx
import jax
import numpy as np
import pandas as pd

from .._core.model import HybridModel
from .._data.metrics import nrmse
from .._data.study import Study, StudyError
from .._fit.engine import FitConfig, FitResult, FitStep, fit
from .._fit.plan import Plan

__all__ = [
    "BASELINES",
    "MAX_FOLDS",
    "STEPS",
    "TOLERANCE",
    "STRATEGIES",
    "Similarity",
    "TransferResult",
    "anchor_sd",
    "candidate_plans",
    "transfer",
]

MAX_FOLDS = 3
STEPS = 200  # a transfer fit's default steps: what benchmarks/transfer.py measures
TOLERANCE = 0.2
BASELINES = ("none", "scratch")  # always candidates; fitted as their strategies are

STRATEGIES = (
    "none",
    "scratch",
    "refit-mechanistic",
    "fine-tune",
    "fine-tune-last",
    "l2sp",
    "embedding",
    "multitask",
    "auto",
)


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
        warning: why transfer is likely to hurt (no strategy using the source beats
            learning from scratch on the target's validation, or the requested one does
            worse than a baseline), or None.
    """

    zero_shot: pd.Series
    parameters: pd.DataFrame
    distance: float
    mmd: float
    mmd_p: float
    warning: str | None


@dataclass(frozen=True)
class TransferResult:
    """What :func:`transfer` returns.

    Attributes:
        fit: the transferred model as a fit result (``fit.model``, ``fit.members``;
            save it with :func:`hybridxfer.save_fit`).
        strategy: the strategy used (for ``auto``, the winning candidate).
        candidates: per candidate (rows sorted by `validation`): its loss in each
            view: ``late``, on the late time points or valid batches (with folds, by
            a member trained on the early points), and ``fold1``... on each
            cross-validation fold (``auto`` with several batches); ``validation``, the
            score the choice uses (per view the loss relative to the best candidate's;
            their geometric mean; 1 would be best in every view); ``trained``, how
            many values it trains; ``chosen``, the one used.
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


def candidate_plans(
    model: HybridModel, strategy: str, source_process: str | None, anchor_sd: dict
) -> dict[str, Plan]:
    """The plans a strategy tries, by name: itself (several for ``auto``) plus the
    baselines ``none`` and ``scratch``. ``multitask`` needs `source_process`."""
    nets = list(model.networks)
    specific = tuple(p.name for p in model.structure.parameters if p.process_specific)
    frozen = dict.fromkeys(nets, "frozen")
    plans = {
        "none": Plan(parameters=(), networks=frozen),
        "scratch": Plan(from_declared=True),
        "refit-mechanistic": Plan(parameters=specific or None, networks=frozen),
        "fine-tune": Plan(networks=dict.fromkeys(nets, "tune"), learning_rate=0.2),
        "fine-tune-last": Plan(networks=dict.fromkeys(nets, "last-layer"), learning_rate=0.5),
        "l2sp": Plan(
            networks=dict.fromkeys(nets, "tune"),
            anchor=0.01,
            anchor_sd=anchor_sd,
            learning_rate=0.5,
        ),
    }
    embedding = tuple(  # parameters that networks read: a per-process vector
        p.name
        for p in model.structure.parameters
        if any(p.name in net.spec.inputs for net in model.networks.values())
    )
    if embedding:
        plans["embedding"] = Plan(parameters=embedding, networks=frozen)
    if source_process is not None and strategy == "multitask":
        plans["multitask"] = Plan(
            networks=dict.fromkeys(nets, "tune"), joint=(source_process,), learning_rate=0.5
        )
    if strategy == "auto":
        # no network re-learned alone: from a random start on a few batches it was
        # seldom the best, noisy validation often picked it, and it is the slowest
        # member (stiff solves); scratch re-learns them all (benchmarks/transfer.py)
        for modes in itertools.product(("frozen", "tune"), repeat=len(nets)):
            if len(set(modes)) > 1:  # uniform choices are whole-model strategies above
                name = "parts[" + ",".join(f"{n}={m}" for n, m in zip(nets, modes)) + "]"
                plans[name] = Plan(parameters=specific or None, networks=dict(zip(nets, modes)))
        return plans
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    if strategy not in plans:
        needs = {
            "embedding": "networks that read process-specific parameters (an embedding, e.g. "
            'z1 = { value = 0, unit = "1", positive = false, process_specific = true } among '
            "a network's inputs), fitted on several processes",
            "multitask": "the source process's batches in the study",
        }
        raise ValueError(f"strategy {strategy!r} needs {needs[strategy]}")
    return {k: plans[k] for k in dict.fromkeys([*BASELINES, strategy])}


def transfer(
    source: FitResult,
    study: Study,
    *,
    process: str,
    strategy: str = "auto",
    source_process: str | None = None,
    config: FitConfig | None = None,
    progress: bool = False,
) -> TransferResult:
    """Transfer `source` to the target `process` of `study`.

    All candidates but ``none`` train in one fit (one compile), as members: per
    candidate a *full* member, trained on every target training batch (validated on
    the ``valid`` batches, else on the latest ``config.holdout`` of each batch's time
    points), and for ``auto`` with several training batches and no ``valid`` ones,
    one member per cross-validation fold (:data:`MAX_FOLDS` folds at most; with 2
    or 3 batches, leave-one-batch-out), trained on the other batches and scored on
    the held-out one(s). With folds the full members of all candidates but the
    :data:`BASELINES` train on every time point, and a *late* member of each, held
    out the late points, scores them (the baselines are fitted as their strategies
    are, ``scratch`` with the late points held out: its full member is its late one).
    ``none``, the source as is, is scored on the same observations at the fit's
    first step, before any update, by the members of a candidate that starts from
    the source unchanged (its own members if no candidate does, e.g. for
    ``scratch``); that solve also gives the zero-shot error. The chosen candidate's
    full member is the result.

    ``auto``'s rule: in each view (the late points or valid batches, and each fold)
    a candidate's loss is divided by the best candidate's; its score is the
    geometric mean of these ratios over the views; of the candidates within
    :data:`TOLERANCE` of the best score, the one that trains the fewest values is
    chosen.

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
    plans = candidate_plans(source.model, strategy, source_process, anchor_sd(source))
    names = list(plans)
    folds = _folds(target, strategy)
    trained = [n for n in names if n != "none"]
    # none, the source as is, trains nothing: it is scored at the first step by the
    # members of a candidate that starts from the source unchanged (not a member of
    # its own for all steps: its solve, the slowest of all, would set every step's
    # pace; nor a solve of its own: that compile cost ~2 s of a cold 2-batch auto)
    probe = next((n for n in trained if _starts_as_source(plans[n], source.model)), "none")
    stepped = trained if probe != "none" else [*trained, "none"]
    members = _members({n: plans[n] for n in stepped}, folds)
    index = {key: i for i, key in enumerate(members)}  # (candidate, role) -> member
    for n in stepped:  # a candidate without a late member of its own: its full one's
        index.setdefault((n, "late"), index[n, "full"])
    first: list[FitStep] = []  # the fit's first step
    result = fit(
        source.model,
        study,
        process=process,
        config=config,
        plan=list(members.values()),
        progress=progress,
        callback=lambda s: None if first else first.append(s),
    )
    scores = np.empty(len(members))
    scores[list(result.ranking)] = result.scores
    as_is = first[0].losses[:, 1]  # every member's validation loss before any update
    # the views: each candidate's late member and its folds; none's are the probe's
    # members' before any update
    view_names = ["late", *(f"fold{j + 1}" for j in range(len(folds)))]

    def view(name: str, role: str) -> float:
        return as_is[index[probe, role]] if name == "none" else scores[index[name, role]]

    views = np.array([[view(n, v) for v in view_names] for n in names])
    views = np.where(np.isfinite(views), views, np.inf)
    fits = {  # each candidate's full member; none: the source as is
        n: replace(source, process=process)
        if n == "none"
        else _member_fit(result, index[n, "full"])
        for n in names
    }
    # per view the loss relative to the best candidate's, then their geometric mean:
    # every view counts alike, a ratio's scale is the same
    table = pd.DataFrame(dict(candidate=names) | dict(zip(view_names, views.T)))
    relative = views / np.maximum(views.min(axis=0), 1e-300)
    table["validation"] = np.exp(np.log(relative).mean(axis=1))
    table["trained"] = [_trained_values(source.model, plans[n]) for n in names]
    chosen, reason = _choose(strategy, table, len(folds))
    table["chosen"] = table["candidate"] == chosen
    table = table.sort_values("validation", kind="stable").reset_index(drop=True)
    predicted = first[0].predictions(index[probe, "full"])
    similarity = _similarity(source, fits, chosen, study, process, source_process, table, predicted)
    if similarity.warning:
        warnings.warn(f"transfer to {process!r}: {similarity.warning}", stacklevel=2)
    return TransferResult(
        fit=fits[chosen],
        strategy=chosen,
        candidates=table,
        reason=reason,
        similarity=similarity,
        candidate_fits=fits,
    )


def _folds(target: Study, strategy: str) -> list[tuple[str, ...]]:
    """The held-out batches of each cross-validation fold: for ``auto`` with several
    training batches and no valid ones, ``k = min(n, MAX_FOLDS)`` folds (batch i in
    fold i mod k); else none."""
    splits = dict(zip(target.batches["batch"], target.batches["split"]))
    train = [b for b, s in splits.items() if s == "train"]
    if strategy != "auto" or len(train) < 2 or "valid" in splits.values():
        return []
    k = min(len(train), MAX_FOLDS)
    return [tuple(train[i::k]) for i in range(k)]


def _members(plans: dict[str, Plan], folds: list[tuple[str, ...]]) -> dict[tuple[str, str], Plan]:
    """Each candidate's members, by (candidate, role), in member order: ``full``, its
    result, trained on every training batch; with folds (the full member then trains
    on every time point, but for the :data:`BASELINES`, fitted as their strategies
    are) also ``late``, trained on the early time points and scored on the late ones
    (for the baselines, their full member is), and ``fold1``... holding out each
    fold's batches."""
    members = {}
    for name, plan in plans.items():
        own_late = bool(folds) and name not in BASELINES
        members[name, "full"] = replace(plan, all_points=own_late)
        if own_late:
            members[name, "late"] = plan
        for j, held_out in enumerate(folds):
            members[name, f"fold{j + 1}"] = replace(plan, held_out=held_out)
    return members


def _starts_as_source(plan: Plan, model: HybridModel) -> bool:
    """Whether a member following `plan` starts with `model`'s values unchanged."""
    return not plan.from_declared and all(plan.network_mode(n) != "relearn" for n in model.networks)


def _member_fit(result: FitResult, member: int) -> FitResult:
    """Member `member` (plan order) of `result` as a fit result of its own."""
    rank = result.ranking.index(member)
    history = result.history[result.history["member"] == member].assign(member=0)
    return replace(
        result,
        model=result.members[rank],
        members=(result.members[rank],),
        history=history.reset_index(drop=True),
        scores=(result.scores[rank],),
        ranking=(0,),
    )


def _trained_values(model: HybridModel, plan: Plan) -> int:
    """How many values `plan` trains (free parameters, per process for process-specific
    ones if joint, and network weights): a measure of how much it changes."""
    free = [p for p in model.structure.parameters if not p.fixed]
    count = sum(
        (1 + len(plan.joint) if p.process_specific else 1)
        for p in free
        if plan.fits_parameter(p.name)
    )
    for name, net in model.networks.items():
        layers = {"frozen": [], "last-layer": net.mlp.layers[-1:]}.get(
            plan.network_mode(name), net.mlp.layers
        )
        count += sum(x.size for x in jax.tree.leaves(eqx.filter(layers, eqx.is_inexact_array)))
    return int(count)


def _choose(strategy: str, table: pd.DataFrame, n_folds: int) -> tuple[str, str]:
    """The candidate used and why (``auto``: see :func:`transfer`)."""
    score = dict(zip(table["candidate"], table["validation"]))
    trained = dict(zip(table["candidate"], table["trained"]))
    how = f"the late points and {n_folds}-fold cross-validation" if n_folds else "validation"
    base = f"none {score['none']:.3g}, scratch {score['scratch']:.3g}"
    if strategy != "auto":
        verdict = (
            "better" if score[strategy] < min(score["none"], score["scratch"]) else "NOT better"
        )
        return strategy, f"strategy {strategy!r} as asked; on {how} it is {verdict} than a baseline"
    best = min(score, key=score.get)
    near = [n for n in score if score[n] <= (1 + TOLERANCE) * score[best]]
    chosen = min(near, key=lambda n: (trained[n], score[n]))
    why = (
        f"{chosen!r} has the best score on {how} ({score[chosen]:.3g}, relative loss; {base})"
        if chosen == best
        else f"{chosen!r} ({score[chosen]:.3g}) is within {TOLERANCE:.0%} of the best score "
        f"({best!r} {score[best]:.3g}; relative loss on {how}; {base}) and trains the fewest "
        f"values of those ({trained[chosen]} vs {trained[best]})"
    )
    return chosen, why


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


def _similarity(
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
    if best_transfer >= score["scratch"]:
        warning = (
            "negative transfer likely: nothing from the source beats learning from scratch on "
            f"the target's own validation (best {best_transfer:.4g}, "
            f"scratch {score['scratch']:.4g})"
        )
        if chosen != "scratch":  # e.g. auto: within the tolerance, fewer values trained
            warning += f"; the result is {chosen!r} ({score[chosen]:.4g})"
    elif chosen not in ("none", "scratch") and score[chosen] >= min(
        score["none"], score["scratch"]
    ):
        warning = (
            f"strategy {chosen!r} does worse on validation ({score[chosen]:.4g}) than a "
            f"baseline (none {score['none']:.4g}, scratch {score['scratch']:.4g}); "
            "strategy 'auto' would fall back"
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
