"""Fitting a hybrid model: mechanistic parameters and network weights together.

Several members (random restarts, or one per plan) are trained at once, vmapped, with
Adam on a warm-up + cosine schedule and gradient clipping (:mod:`.step`); on a CPU
they step in groups, one per core, in threads (:mod:`.scheduler`). Each step solves
every member's batches in one flat vmap and scores the train and validation
observations from that one solve; each member keeps its best parameters on
validation and stops after `patience` steps without improvement. The best member is
the fitted model; all members form an ensemble for prediction bands.

A step whose loss or gradient is not finite is rejected for that member: its values
and optimiser state stay, so its next step would be the same step, rejected again.
The member is reported once, with the batch, time and rate that went bad
(:mod:`.diagnosis`), and left behind, held at its best values (:func:`.step.retire`:
there its solve costs what it did, not a failed solve's whole step budget, which the
other members of a vmapped step would wait for at every step). A step that every
member rejects stops the fit at once with that diagnosis: with an error at the first
step (and before any step is compiled, for equations that are not finite at every
member's start), later with a warning, keeping what each member learnt (its best
values so far). Unless the explicit solver ran out of steps (or its step size
collapsed), the sign of stiff equations: the step is then taken again with the
implicit Kvaerno5, which the fit goes on with. With a checkpoint folder (one writer at
a time: :func:`.checkpoint.writer`), the state is saved every `checkpoint_every` steps
and a restarted fit resumes from it to the same result
(:mod:`.checkpoint`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import diffrax as dfx
import equinox as eqx
import jax
import numpy as np
import pandas as pd
from jaxtyping import Array, Float
from tqdm.auto import tqdm

from .._core.model import HybridModel
from .._data.batch_data import BatchData, batch_data
from .._data.study import Study, StudyError
from .._solve import Solver, to_frame
from .._solve.failure import SolveFailure
from . import checkpoint as checkpoints
from . import scheduler
from .config import FitConfig, FitError, FitResult
from .controls import member_keys, member_start, stack
from .diagnosis import at_start, rejection
from .objective import Trainable, initial_states, variable_scales
from .plan import Plan
from .step import State, StepSettings, initial_opt_state, retire, step
from .validation import Validation, check_held_out

__all__ = ["Members", "fit", "train"]


@dataclass(frozen=True)
class Members:
    """Every member of a fit, in the order given (see :func:`train`).

    Attributes:
        best: each member's values at its best validation step, stacked over members
            (leading axis K; host arrays).
        scores: each member's best validation loss, (K,) (inf if never finite).
        start: each member's train and validation loss at its starting values, before
            any update (step 0), (K, 2); None for a fit resumed past step 0.
        start_predictions: each member's predictions of the fitted batches at its
            starting values: states then observations at the batches' (padded) output
            times, (K, B, M, n_vars); None as `start`.
        best_predictions: each member's predictions at its best values, as
            `start_predictions`.
        weights: each member's training and validation weights of the observations,
            (K, 2, B, M) (see :func:`~hybridxfer._fit.validation.observation_weights`).
        history: ``step, member, train, valid`` losses (member: index in the order given).
        study: the batches fitted (train and valid; of the primary and joint processes).
        data: their arrays.
        process: the primary process's index in ``study.processes``.
        solver: the solver that trained them last (``config.solver``, or the implicit
            one :func:`train` went on with).
    """

    best: Trainable
    scores: np.ndarray
    start: np.ndarray | None
    start_predictions: np.ndarray | None
    best_predictions: np.ndarray
    weights: np.ndarray
    history: pd.DataFrame
    study: Study = field(repr=False)
    data: BatchData = field(repr=False)
    process: int
    solver: Solver

    def model(self, k: int) -> HybridModel:
        """Member `k`'s fitted model (the primary process's values)."""
        return scheduler.on_device(scheduler.take(self.best, k)).for_process(self.process)

    def calibration(self, k: int, at_start: bool = False) -> pd.DataFrame:
        """Member `k`'s predictions of the observations it trained or was scored on, at
        its best values (or at its starting values, before any training):

        long table ``batch, time, variable, measured, sd, predicted, heldout`` (`sd`:
        the measurement's declared sd, NaN if none), where
        `heldout` marks the observations it was scored on but not trained on (valid
        batches, late points, a fold's batches; every one `at_start`)."""
        ys = (self.start_predictions if at_start else self.best_predictions)[k]
        train, valid = self.weights[k] > 0
        values = np.asarray(self.data.values)
        n = len(self.study.batch_names)
        used = (train | valid)[..., None] & np.isfinite(values)
        used[n:] = False  # padding rows
        b, m, v = np.nonzero(used)
        names = np.asarray(self.study.batch_names, dtype=object)
        variables = np.asarray(self.best.model.variable_names, dtype=object)
        return pd.DataFrame(
            dict(
                batch=names[b],
                time=np.asarray(self.data.times)[b, m],
                variable=variables[v],
                measured=values[b, m, v],
                sd=np.asarray(self.data.sd)[b, m, v],
                predicted=ys[b, m, v],
                heldout=at_start | (valid & ~train)[b, m],
            )
        )

    def start_frame(self, k: int) -> pd.DataFrame:
        """Member `k`'s predictions at its starting values: long table ``batch, time,
        variable, value`` of the fitted batches."""
        variables = self.best.model.variable_names
        return to_frame(self.start_predictions[k], self.data, self.study.batch_names, variables)

    def result(
        self, order: Sequence[int], config: FitConfig, process: str | None, fitted: Study
    ) -> FitResult:
        """Members `order` (best first) as a fit result, its history numbering them in
        the order given; `fitted`: its training batches (for the parameter table)."""
        best = scheduler.on_device(scheduler.take(self.best, int(order[0])))
        names = self.study.batch_names
        y0, free = (np.asarray(x)[: len(names)] for x in _batch_values(best, self.data))
        initial = pd.DataFrame(y0, index=list(names), columns=list(best.model.state_names))
        initial = initial.rename_axis("batch").reset_index()
        initial = initial.melt(id_vars="batch", var_name="variable")
        kept = sorted(int(k) for k in order)
        history = self.history[self.history["member"].isin(kept)]
        history = history.assign(member=history["member"].map({k: i for i, k in enumerate(kept)}))
        return FitResult(
            model=self.model(int(order[0])),
            members=tuple(self.model(int(k)) for k in order),
            initial=initial,
            history=history.reset_index(drop=True),
            scores=tuple(float(self.scores[k]) for k in order),
            config=replace(config, solver=self.solver),
            process=process,
            batch_parameters=_batch_parameters(best, free, names),
            calibration=self.calibration(int(order[0])),
            fitted=fitted,
        )


def fit(
    model: HybridModel,
    study: Study,
    *,
    process: str | None = None,
    config: FitConfig = FitConfig(),
    plan: Plan | Sequence[Plan] = Plan(),
    validation: Validation | Sequence[Validation] = Validation(),
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
) -> FitResult:
    """Fit `model` to the ``train`` batches of `study` (of one `process`, if given).

    ``valid`` batches steer early stopping and the choice among members; without
    them the latest ``config.holdout`` of each training batch's time points do (see
    :class:`~hybridxfer.Validation`). `plan` says which parts are fitted (default:
    everything, networks afresh); a sequence of plans (and of validations, or one for
    all) trains one member per plan (``config.members`` is then ignored), all at once.
    The returned models carry `process`'s values of process-specific parameters; the
    result's parameter table (:attr:`FitResult.parameters`) is computed on the
    training batches when first asked for. `progress` shows a progress bar on stderr,
    in a terminal and in a notebook alike.

    Raises:
        StudyError: no training batches, or data the model cannot use.
        FitError: every member's equations are not finite at the start, or every
            member's first step was rejected (a non-finite loss or gradient), naming
            the batch, time and rate (a later step that every member rejects stops the
            fit with a warning, keeping each member's best values; an explicit solver
            that runs out of steps goes on with Kvaerno5 instead, see :func:`train`);
            another fit holds the checkpoint folder.
    """
    plans = [plan] * config.members if isinstance(plan, Plan) else list(plan)
    validations = (
        [validation] * len(plans) if isinstance(validation, Validation) else list(validation)
    )
    if len(validations) != len(plans):
        raise ValueError(f"{len(plans)} plans but {len(validations)} validations")
    members = train(
        model,
        study,
        list(zip(plans, validations)),
        process=process,
        config=config,
        checkpoint=checkpoint,
        progress=progress,
    )
    order = np.argsort(members.scores, kind="stable")
    fitted = process if process is not None or len(study.processes) > 1 else study.processes[0]
    train_batches = study.select(process=process) if process is not None else study
    return members.result(order, config, fitted, train_batches.select(split="train"))


def train(
    model: HybridModel,
    study: Study,
    members: Sequence[tuple[Plan, Validation]],
    *,
    process: str | None = None,
    config: FitConfig = FitConfig(),
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
) -> Members:
    """Train one member per (plan, validation) pair on the batches of `study` (see
    :func:`fit`), all at once, and return every member in the order given, with its
    losses and predictions at its starting values (step 0).

    Stiff equations: when the explicit ``config.solver`` runs out of steps (or its step
    size collapses) on every member's step, at the first step or later, that step is
    taken again with the implicit Kvaerno5 (same tolerances and step budget) and the
    fit goes on with it, from the same values (a rejected step changes nothing), with
    a warning; ``Members.solver`` says which solver trained last."""
    study, data, scales = _setup(model, study, process, members)
    names = study.batch_names
    keys = member_keys(config.seed, members)
    starts = [
        member_start(model, study, data, process, m, config.holdout, k)
        for m, k in zip(members, keys)
    ]
    params, controls = (stack([s[i] for s in starts]) for i in (0, 1))
    failures = [at_start(params, data, names, r) for r in range(len(members))]
    if all(f is not None for f in failures):  # found in milliseconds, without a solve
        raise FitError(f"fit: cannot start: {failures[0].message}")
    settings, patience = StepSettings.of(config), np.asarray(config.patience)
    state = State(
        params=params,
        opt_state=initial_opt_state(
            eqx.filter(params, eqx.is_inexact_array), controls.rate, settings
        ),
        best=params,
        best_valid=np.full(len(members), np.inf),
        since_best=np.zeros(len(members), dtype=int),
        best_ys=np.full((len(members), *data.values.shape), np.nan),
    )

    folder = Path(checkpoint) if checkpoint is not None else None
    fingerprint = checkpoints.fingerprint(model, data, config, members) if folder else None
    # one writer per checkpoint folder: a second fit into it is refused at once
    lock = checkpoints.writer(folder) if folder is not None else contextlib.nullcontext()
    with lock:
        history, start = [], 0
        if folder is not None and (folder / "state.eqx").exists():
            state, start, history = checkpoints.load(folder, state, fingerprint)

        left, step0 = set(), None  # members left behind; losses and predictions at step 0
        bar = tqdm(total=config.steps, initial=start, disable=not progress, desc="fit")
        with contextlib.closing(bar):  # closed before an error is printed, on its own line
            n = start
            groups = scheduler.groups(len(members), scheduler.workers())
            parts = [(scheduler.take(state, g), scheduler.take(controls, g)) for g in groups]

            def run(part):  # one group's step, on one core (the GIL is released while it runs)
                out = step(part[0], part[1], data, scales, patience, settings)
                return jax.block_until_ready(out)

            compiled = False
            with ThreadPoolExecutor(len(groups)) as pool:
                while n < config.steps and not _stopped(parts, config):
                    # the first step compiles once, then the groups run at once
                    outs = list(pool.map(run, parts)) if compiled else [run(p) for p in parts]
                    compiled = True
                    parts = [(o[0], c) for o, (_, c) in zip(outs, parts)]
                    losses, finite = (scheduler.join([o[k] for o in outs], groups) for k in (1, 2))
                    if n == 0:
                        step0 = losses, scheduler.join([o[3] for o in outs], groups)
                    n += 1
                    history += [(n, r, *losses[r]) for r in range(len(members))]
                    best = min(np.asarray(p.best_valid).min() for p, _ in parts)
                    if not finite.all():
                        params = scheduler.join([p.params for p, _ in parts], groups)
                        new = _left_behind(params, data, names, finite, left, n, settings.solver)
                        if new:
                            parts = [retire(*p, np.isin(g, new)) for p, g in zip(parts, groups)]
                    if not finite.any():
                        failure = rejection(params, data, names, 0, settings.solver)
                        stiff = _stiff(failure, settings.solver)
                        if stiff is not None:  # the step again, implicit (it changed nothing)
                            _warn_stiff(failure, settings.solver, n)
                            settings, compiled = replace(settings, solver=stiff), False
                            n, history = n - 1, history[: -len(members)]
                            step0 = None if n == 0 else step0
                            continue
                        _stop(failure, n, found=n > 1 and bool(np.isfinite(best)))
                        break
                    bar.update(1)
                    bar.set_postfix(train=f"{losses[:, 0].min():.4g}", valid=f"{best:.4g}")
                    if folder is not None and n % config.checkpoint_every == 0:
                        state = scheduler.join([p for p, _ in parts], groups)
                        checkpoints.save(folder, state, n, history, fingerprint)
        state = scheduler.join([p for p, _ in parts], groups)
        if folder is not None:
            checkpoints.save(folder, state, n, history, fingerprint)
    p_primary = study.processes.index(process) if process is not None else 0
    return Members(
        best=state.best,
        scores=np.asarray(state.best_valid),
        start=None if step0 is None else step0[0],
        start_predictions=None if step0 is None else step0[1],
        best_predictions=np.asarray(state.best_ys),
        weights=np.asarray(controls.weights),
        history=pd.DataFrame(history, columns=["step", "member", "train", "valid"]),
        study=study,
        data=data,
        process=p_primary,
        solver=settings.solver,
    )


def _setup(model: HybridModel, study: Study, process, members):
    """What a fit of `members` uses: the study's batches it fits (those of `process` and
    of the plans' joint processes; train and valid), their arrays and the variable
    scales.

    Scales come from the primary process's data alone, so that losses of fits with and
    without joint processes (transfer candidates) are comparable."""
    joint = list(dict.fromkeys(p for plan, _ in members for p in plan.joint))
    if joint and process is None:
        raise ValueError("a plan with joint processes needs the primary process")
    selected = study.select(process=[process, *joint]) if process is not None else study
    primary = selected.batches["process"] == (
        process if process is not None else selected.batches["process"]
    )
    if "train" not in set(selected.batches["split"][primary]):
        of = f" of process {process!r}" if process is not None else ""
        raise StudyError(f"{study.name}: no 'train' batches{of}")
    study = selected.select(
        split=["train", "valid"] if "valid" in set(selected.batches["split"]) else "train"
    )
    data = batch_data(model, study)
    check_held_out([v for _, v in members], study, process)
    own = np.zeros(data.mask.shape[0], dtype=bool)
    own[: len(study.batch_names)] = (
        process is None or study.batches["process"].to_numpy() == process
    )
    mask = np.asarray(data.mask) & own[:, None]
    return study, data, variable_scales(data, mask, model.variable_names)


def _left_behind(params, data, names, finite: np.ndarray, left: set, n: int, solver) -> list:
    """The members newly left behind by a rejected step `n` while others go on (it
    changes nothing: it would be repeated), each warned about once."""
    new = [int(r) for r in np.flatnonzero(~finite) if finite.any() and int(r) not in left]
    for r in new:
        left.add(r)
        why = _why(rejection(params, data, names, r, solver))
        warnings.warn(
            f"fit step {n}, member {r}: step rejected, the member is held at its best "
            f"values: {why}",
            stacklevel=4,
        )
    return new


def _stop(failure: SolveFailure | None, n: int, found: bool) -> None:
    """Every member's step `n` was rejected, for `failure` (None: a gradient that was not
    finite): the fit stops, with a warning, keeping each member's best values so far if
    `found` (some member has moved and has a finite validation loss); else FitError."""
    what = f"fit step {n}: every member's step was rejected: {_why(failure)}"
    if not found:
        raise FitError(f"{what} (a rejected step changes nothing; the fit stops)", failure, n)
    warnings.warn(
        f"{what}; the fit stops here (a rejected step changes nothing) and keeps each "
        "member's best values so far",
        stacklevel=4,
    )


def _why(failure: SolveFailure | None) -> str:
    return "the gradient was not finite" if failure is None else failure.message


def _stiff(failure: SolveFailure | None, solver: Solver) -> Solver | None:
    """The implicit solver to go on with, if `failure` says the explicit `solver` ran out
    of steps (or its step size collapsed): the sign of stiff equations. Kvaerno5 (an
    L-stable ESDIRK method) with the same tolerances and step budget; None otherwise."""
    stopped = failure is not None and failure.kind == "stopped"
    if stopped and not isinstance(solver.solver, dfx.AbstractImplicitSolver):
        return eqx.tree_at(lambda s: s.solver, solver, dfx.Kvaerno5())
    return None


def _warn_stiff(failure: SolveFailure, solver: Solver, n: int) -> None:
    warnings.warn(
        f"fit step {n}: {failure.message.rstrip('.')}. The equations look stiff for "
        f"{type(solver.solver).__name__}: fitting on with Kvaerno5 from here (same "
        "tolerances; choose with FitConfig(solver=...) or --solver)",
        stacklevel=4,
    )


def _stopped(parts, config: FitConfig) -> bool:
    return all(np.all(np.asarray(p.since_best) >= config.patience) for p, _ in parts)


@eqx.filter_jit
def _batch_values(
    params: Trainable, data: BatchData
) -> tuple[Float[Array, "B n_states"], Float[Array, "B n_free"]]:
    """Each batch's initial state and free-parameter values (one compile)."""
    return initial_states(params, data), params.batch_model(data).free


def _batch_parameters(params: Trainable, free: np.ndarray, names) -> pd.DataFrame:
    """Each batch's physical value of the batch-varying parameters, from the free
    values of each batch (B, n_free)."""
    params_ = [p for p in params.model.structure.parameters if not p.fixed]
    rows = [
        (b, p.name, float(p.constrain(free[i, k])))
        for k, p in enumerate(params_)
        if p.batch_sd
        for i, b in enumerate(names)
    ]
    return pd.DataFrame(rows, columns=["batch", "name", "value"])
