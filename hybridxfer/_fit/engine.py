"""Fitting a hybrid model: mechanistic parameters and network weights together.

Several members (random restarts, or one per plan) are trained at once, vmapped, with
Adam on a warm-up + cosine schedule and gradient clipping; on a CPU they step in
groups, one per core, in threads. Each step solves every member's batches in one
flat vmap and scores the train and validation observations from that one solve;
each member keeps its best parameters on validation and stops after `patience`
steps without improvement. The best member is the fitted model; all members form
an ensemble for prediction bands. A step whose loss or gradient is not finite is
rejected for that member and reported with the batch and time that went bad.
With a checkpoint folder, the state is saved every `checkpoint_every` steps and a
restarted fit resumes from it to the same result.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, Int
from tqdm import tqdm

from .._core.model import HybridModel
from .._data.batch_data import FAR, BatchData, batch_data
from .._data.study import Study, StudyError
from .._solve.simulation import SimulationError, Solver, check_finite, solve_batches, to_frame
from .objective import (
    LIKELIHOODS,
    Trainable,
    initial_states,
    members_objective,
    variable_scales,
)
from .plan import Plan

__all__ = ["FitConfig", "FitError", "FitResult", "FitStep", "fit", "normalise_networks"]

CHECKPOINT_FORMAT = 2  # 2: the optimiser state is over a flat vector


class FitError(RuntimeError):
    """A fit that cannot go on (e.g. every step rejected as non-finite)."""


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`fit`.

    Attributes:
        steps: maximum number of gradient steps.
        learning_rate: peak Adam learning rate (after `warmup` steps; cosine decay to 1%).
        warmup: linear warm-up steps.
        clip: global gradient-norm clip.
        weight_decay: L2 penalty on network weights.
        likelihood: ``"scaled"`` least squares or ``"gaussian"`` (learned noise per state).
        members: random restarts trained together; the best on validation is kept.
        patience: steps without validation improvement before a member stops.
        holdout: with no ``valid`` batches, the fraction of each training batch's
            latest time points held out for validation.
        seed: PRNG seed of the network initialisation.
        checkpoint_every: steps between checkpoints (with a checkpoint folder).
        solver: integration settings used in training.
    """

    steps: int = 1500
    learning_rate: float = 1e-2
    warmup: int = 50
    clip: float = 1.0
    weight_decay: float = 1e-5
    likelihood: str = "scaled"
    members: int = 1
    patience: int = 300
    holdout: float = 0.25
    seed: int = 0
    checkpoint_every: int = 100
    solver: Solver = field(default_factory=lambda: Solver(rtol=1e-5, atol=1e-8, max_steps=1024))

    def __post_init__(self):
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood {self.likelihood!r} is not one of {LIKELIHOODS}")
        if self.steps < 1 or self.members < 1:
            raise ValueError("steps and members must be >= 1")
        if not 0 < self.holdout < 1:
            raise ValueError("holdout must lie in (0, 1)")


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        model: the fitted model (best member, at its best validation step).
        members: every member's fitted model (the ensemble), best first.
        initial: estimated or used initial state of each fitted batch (long table
            ``batch, variable, value``).
        history: ``step, member, train, valid`` losses.
        scores: best validation loss of each member, best first.
        ranking: the members' original indices (plan order), best first.
        process: the process fitted (the primary one), if one was named.
        config: the settings used.
        parameters: parameter table with intervals
            (:func:`hybridxfer.parameter_table`), when computed.
        batch_parameters: each fitted batch's value of the batch-varying parameters
            (those with a ``batch_sd``), long table ``batch, name, value``.
    """

    model: HybridModel
    members: tuple[HybridModel, ...]
    initial: pd.DataFrame
    history: pd.DataFrame
    scores: tuple[float, ...]
    config: FitConfig
    parameters: pd.DataFrame | None = None
    ranking: tuple[int, ...] = ()
    process: str | None = None
    batch_parameters: pd.DataFrame | None = None


@dataclass(frozen=True)
class FitStep:
    """A fit's step, as its `callback` receives it.

    Attributes:
        step: steps taken so far (1 after the first).
        losses: each member's (plan order) train and validation loss at the values
            the step started from, shape (K, 2).
        ys: each member's solve of the fitted batches at those values: states, then
            observations, at the batches' (padded) observation times, shape
            (K, B, M, n_vars); see :meth:`predictions`.
        data, batches, variables: the fitted batches' arrays and names, and the
            variable names (the last axis of `ys`).
    """

    step: int
    losses: np.ndarray
    ys: np.ndarray
    data: BatchData = field(repr=False)
    batches: tuple[str, ...]
    variables: tuple[str, ...]

    def predictions(self, member: int) -> pd.DataFrame:
        """Member `member`'s predictions of the fitted batches at the values the step
        started from: long table ``batch, time, variable, value``."""
        return to_frame(self.ys[member], self.data, self.batches, self.variables)


@dataclass(frozen=True)
class _StepSettings:
    """The settings one optimisation step depends on (a static argument of the
    jitted step, so that other settings, e.g. seed or members, do not recompile)."""

    steps: int
    learning_rate: float
    warmup: int
    clip: float
    weight_decay: float
    likelihood: str
    solver: Solver

    @classmethod
    def of(cls, config: FitConfig) -> _StepSettings:
        return cls(**{f: getattr(config, f) for f in cls.__dataclass_fields__})


class _State(eqx.Module):
    params: Trainable
    opt_state: optax.OptState
    best: Trainable
    best_valid: Float[Array, " R"]
    since_best: Int[Array, " R"]
    step: Int[Array, ""]


def normalise_networks(model: HybridModel, data: BatchData, mask, only=None) -> HybridModel:
    """Set each network's (or each in `only`) input mean and std from the
    observations in `mask` (B, M).

    States use their measured values, inputs their recorded values, constants their
    per-batch values, t the observation times; parameters (embeddings) and variables
    without data get mean 0 and std 1.
    """
    mask = np.asarray(mask)
    batches = mask.any(axis=1)
    values = {}
    for i, s in enumerate(model.state_names):
        v = np.asarray(data.values)[..., i][mask]
        values[s] = v[np.isfinite(v)]
    for i, u in enumerate(model.input_names):
        t, v = np.asarray(data.input_times)[batches, i], np.asarray(data.input_values)[batches, i]
        values[u] = v[t < FAR]
    for i, c in enumerate(model.constant_names):
        values[c] = np.asarray(data.constants)[batches, i]
    values["t"] = np.asarray(data.times)[mask]
    nets = {}
    for name, net in model.networks.items():
        if only is not None and name not in only:
            nets[name] = net
            continue
        cols = [values.get(x, np.zeros(0)) for x in net.spec.inputs]
        cols = [c if c.size else np.zeros(1) for c in cols]
        mean = np.array([c.mean() for c in cols])
        std = np.array([c.std() for c in cols])
        std = np.where(std > 1e-12, std, 1.0)
        nets[name] = eqx.tree_at(
            lambda n: (n.mean, n.std), net, (jnp.asarray(mean), jnp.asarray(std))
        )
    return eqx.tree_at(lambda m: m.networks, model, nets) if nets else model


def fit(
    model: HybridModel,
    study: Study,
    *,
    process: str | None = None,
    config: FitConfig = FitConfig(),
    plan: Plan | Sequence[Plan] = Plan(),
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    callback: Callable[[FitStep], object] | None = None,
) -> FitResult:
    """Fit `model` to the ``train`` batches of `study` (of one `process`, if given).

    ``valid`` batches steer early stopping and the choice among members; without
    them the latest ``config.holdout`` of each training batch's time points do.
    `plan` says which parts are fitted (default: everything, networks afresh); a
    sequence of plans trains one member per plan (``config.members`` is then
    ignored), all at once. The returned models carry `process`'s values of
    process-specific parameters. `callback`, if given, receives a :class:`FitStep`
    after every step (losses and predictions at the values the step started from).

    Raises:
        StudyError: no training batches, or data the model cannot use.
        FitError: if every member's steps keep failing (non-finite loss or gradient).
    """
    plans = [plan] * config.members if isinstance(plan, Plan) else list(plan)
    study, data, scales = _setup(model, study, process, plans)
    names = study.batch_names
    p_primary = study.processes.index(process) if process is not None else 0
    keys = _plan_keys(config.seed, plans)
    starts = [
        _member_start(model, study, data, process, pl, config, k) for pl, k in zip(plans, keys)
    ]
    params, controls = (_stack([m[i] for m in starts]) for i in (0, 1))
    settings, patience = _StepSettings.of(config), np.asarray(config.patience)
    state = _State(
        params=params,
        opt_state=_initial_opt_state(eqx.filter(params, eqx.is_inexact_array), settings),
        best=params,
        best_valid=np.full(len(plans), np.inf),
        since_best=np.zeros(len(plans), dtype=int),
        step=np.asarray(0),
    )

    fingerprint = _fingerprint(model, data, config, plans)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    history = []
    if ckpt is not None and (ckpt / "state.eqx").exists():
        state, history = _load_checkpoint(ckpt, state, fingerprint)
    start = int(state.step)

    rejected = 0
    bar = tqdm(total=config.steps, initial=start, disable=None if progress else True, desc="fit")
    step = start
    groups = _groups(len(plans), _workers())
    parts = [(_take(state, g), _take(controls, g)) for g in groups]

    def run(part):  # one group's step, on one core (the GIL is released while it runs)
        out = _step(part[0], part[1], data, scales, patience, settings)
        return jax.block_until_ready(out)

    with ThreadPoolExecutor(len(groups)) as pool:
        while step < config.steps and not _stopped(parts, config):
            # the first step compiles once, then the groups run at once
            outs = list(pool.map(run, parts)) if step > start else [run(p) for p in parts]
            parts = [(o[0], c) for o, (_, c) in zip(outs, parts)]
            step += 1
            losses, finite = (_join([o[k] for o in outs], groups) for k in (1, 2))
            if callback is not None:
                ys = _join([o[3] for o in outs], groups)
                callback(FitStep(step, losses, ys, data, names, model.variable_names))
            history += [(step, r, *losses[r]) for r in range(len(plans))]
            rejected = rejected + 1 if not finite.any() else 0
            if not finite.all():
                params = _join([p.params for p, _ in parts], groups)
                _report_nonfinite(params, data, names, finite, step, config.solver)
            if rejected > 20:
                raise FitError(
                    f"fit: 20 steps in a row gave a non-finite loss or gradient (step {step})"
                )
            bar.update(1)
            best = min(np.asarray(p.best_valid).min() for p, _ in parts)
            bar.set_postfix(train=f"{losses[:, 0].min():.4g}", valid=f"{best:.4g}")
            if ckpt is not None and step % config.checkpoint_every == 0:
                _save_checkpoint(ckpt, _join_state(parts, groups), history, fingerprint)
    bar.close()
    state = _join_state(parts, groups)
    if ckpt is not None:
        _save_checkpoint(ckpt, state, history, fingerprint)
    fitted = process if process is not None or len(study.processes) > 1 else study.processes[0]
    return replace(_result(state, history, data, names, p_primary, config), process=fitted)


def _setup(model: HybridModel, study: Study, process, plans: Sequence[Plan]):
    """What a fit of `plans` uses: the study's batches it fits (those of `process` and of
    the plans' joint processes; train and valid), their arrays and the variable scales.

    Scales come from the primary process's data alone, so that losses of fits with and
    without joint processes (transfer candidates) are comparable."""
    joint = list(dict.fromkeys(p for pl in plans for p in pl.joint))
    if joint and process is None:
        raise ValueError("a plan with joint processes needs the primary process")
    selected = study.select(process=[process, *joint]) if process is not None else study
    primary = selected.batches["process"] == (
        process if process is not None else selected.batches["process"]
    )
    if "train" not in set(selected.batches["split"][primary]):
        raise StudyError(f"{study.name}: no 'train' batches{_of(process)}")
    study = selected.select(
        split=["train", "valid"] if "valid" in set(selected.batches["split"]) else "train"
    )
    data = batch_data(model, study)
    _check_held_out(plans, study, process)
    own = np.zeros(data.mask.shape[0], dtype=bool)
    own[: len(study.batch_names)] = (
        process is None or study.batches["process"].to_numpy() == process
    )
    return study, data, variable_scales(data, np.asarray(data.mask) & own[:, None])


def _of(process):
    return f" of process {process!r}" if process is not None else ""


def _plan_keys(seed: int, plans: Sequence[Plan]) -> list:
    """A PRNG key per member from the seed and its plan, not its position, so that a
    plan's member starts alike whatever is fitted with it. Equal plans (restarts) get
    successive keys; `held_out` and `all_points` do not count (folds start like the
    full fit)."""
    keys, seen = [], {}
    for plan in plans:
        text = json.dumps(asdict(plan), sort_keys=True)
        repeat = seen[text] = seen.get(text, -1) + 1
        what = asdict(replace(plan, held_out=()))
        del what["all_points"]  # not in the text, so that keys stay as before it existed
        what = json.dumps(what, sort_keys=True)
        key = jax.random.fold_in(jax.random.PRNGKey(seed), zlib.crc32(what.encode()))
        keys.append(jax.random.fold_in(key, repeat))
    return keys


def _check_held_out(plans: Sequence[Plan], study: Study, process) -> None:
    b = study.batches
    train = set(b["batch"][(b["split"] == "train") & (b["process"] == (process or b["process"]))])
    for plan in plans:
        if set(plan.held_out) - train:
            raise StudyError(
                f"{study.name}: held-out batch(es) {sorted(set(plan.held_out) - train)} are "
                f"not 'train' batches{_of(process)}"
            )
        if train <= set(plan.held_out):
            raise StudyError(f"{study.name}: a plan holds out every 'train' batch{_of(process)}")


def _weights(study: Study, data: BatchData, holdout: float, process, plan: Plan):
    """Observation weights (2, B, M): training (primary train batches 1, the plan's
    joint processes' batches `joint_weight`) and validation (primary valid batches,
    with the plan's held-out batches among them, or if none the latest `holdout` of the
    primary train batches' time points, or with `plan.all_points` the training ones)."""
    B = data.mask.shape[0]
    split, proc = np.full(B, "", dtype=object), np.full(B, "", dtype=object)
    held = study.batches["batch"].isin(plan.held_out).to_numpy()
    split[: len(study.batch_names)] = np.where(held, "valid", study.batches["split"].to_numpy())
    proc[: len(study.batch_names)] = study.batches["process"].to_numpy()
    primary = proc == process if process is not None else proc != ""
    mask = np.asarray(data.mask)
    train = mask & (primary & (split == "train"))[:, None]
    if (primary & (split == "valid")).any():
        valid = mask & (primary & (split == "valid"))[:, None]
    elif plan.all_points:
        valid = train
    else:
        times = np.asarray(data.times)
        end = np.where(train, times, -np.inf).max(axis=1, keepdims=True)
        late = times > (1 - holdout) * end
        train, valid = train & ~late, train & late
    joint = mask & np.isin(proc, list(plan.joint))[:, None]
    return np.stack([train + plan.joint_weight * joint, valid]).astype(float)


class _Controls(eqx.Module):
    """Per-member constants of a fit: what may change and how it is scored.

    Attributes:
        weights: training and validation observation weights, (2, B, M).
        rate: learning-rate factor of every value, 0 where held (same tree as params).
        start: the starting values, which the anchor pulls toward.
        anchor: L2-SP strength.
        scale: per free parameter, the anchor's scale in unconstrained units.
        tuned: per network, 1 if its weights are anchored.
    """

    weights: Float[Array, "2 B M"]
    rate: Trainable
    start: Trainable
    anchor: Float[Array, ""]
    scale: Float[Array, " n_free"]
    tuned: Float[Array, " n_networks"]


def _member_start(model, study, data, process, plan: Plan, config: FitConfig, key):
    """Starting params and controls of the member that follows `plan`."""
    weights = _weights(study, data, config.holdout, process, plan)
    relearn = [n for n in model.networks if plan.network_mode(n) == "relearn"]
    start = model.declared() if plan.from_declared else model
    start = normalise_networks(start, data, weights[0] > 0, only=relearn)
    if relearn:
        fresh = start.init_networks(key).networks
        nets = {n: fresh[n] if n in relearn else net for n, net in start.networks.items()}
        start = eqx.tree_at(lambda m: m.networks, start, nets)
    params = _trainable(start, study, data)
    free = [p for p in model.structure.parameters if not p.fixed]
    controls = _Controls(
        weights=weights,
        rate=_rates(params, plan),
        start=eqx.filter(params, eqx.is_inexact_array),
        anchor=np.asarray(float(plan.anchor)),
        scale=np.array([plan.anchor_sd.get(p.name, 1.0) for p in free], dtype=float),
        tuned=np.array(
            [plan.network_mode(n) in ("tune", "last-layer") for n in model.networks], dtype=float
        ),
    )
    return params, controls


def _trainable(start: HybridModel, study: Study, data: BatchData) -> Trainable:
    """The fitted values starting at `start`: every process at its free values, no batch
    deviations, unit noise, estimated initial states at the model's default (log)."""
    default = np.asarray(_initial_state(start, data))
    guess = np.log(np.maximum(np.where(np.isfinite(default), default, 1.0), 1e-6))
    return Trainable(  # host arrays but the model's (stacked over members by _stack)
        model=start,
        process_free=np.tile(np.asarray(start.free), (len(study.processes), 1)),
        initial=guess,
        log_noise=np.zeros(len(start.variable_names)),
        batch_free=np.zeros((data.mask.shape[0], start.free.shape[0])),
    )


@eqx.filter_jit
def _initial_state(model: HybridModel, data: BatchData) -> Float[Array, "B n_states"]:
    """The model's initial state of each batch (one compile per model structure)."""
    return jax.vmap(model.initial_state)(data.initial, data.constants)


def _stack(trees):
    """Stack equal-structured trees along a new leading axis (arrays, as host arrays: no
    eager operation per leaf; the rest from the first)."""
    arrays = [eqx.filter(t, eqx.is_array) for t in trees]
    static = eqx.filter(trees[0], eqx.is_array, inverse=True)
    return eqx.combine(jax.tree.map(lambda *xs: np.stack(xs), *arrays), static)


def _rates(params: Trainable, plan: Plan) -> Trainable:
    """Learning-rate factor of every value under `plan`: 0 where it is held."""
    model = params.model
    free = [p for p in model.structure.parameters if not p.fixed]
    fitted = np.array([plan.fits_parameter(p.name) for p in free], dtype=float)
    specific = np.array(model.process_specific, dtype=bool)
    lr = plan.learning_rate
    # host arrays (stacked over members by _stack): no compile per leaf shape
    rate = jax.tree.map(lambda x: np.full(x.shape, lr), eqx.filter(params, eqx.is_inexact_array))
    rate = eqx.tree_at(lambda t: t.model.free, rate, lr * fitted * ~specific)
    rate = eqx.tree_at(
        lambda t: t.process_free,
        rate,
        np.broadcast_to(lr * fitted * specific, params.process_free.shape),
    )
    varies = np.array(model.batch_sd) > 0
    rate = eqx.tree_at(
        lambda t: t.batch_free,
        rate,
        np.broadcast_to(lr * fitted * varies, params.batch_free.shape),
    )
    nets = {n: _network_rate(net, plan.network_mode(n)) for n, net in rate.model.networks.items()}
    return eqx.tree_at(lambda t: t.model.networks, rate, nets) if nets else rate


def _network_rate(rate, mode: str):
    """Learning-rate factors of one network (given filled with its factor) for a mode."""
    if mode == "frozen":
        return jax.tree.map(np.zeros_like, rate)
    rate = eqx.tree_at(lambda n: (n.mean, n.std), rate, replace_fn=np.zeros_like)
    if mode == "last-layer":
        zeros = jax.tree.map(np.zeros_like, rate.mlp)
        mlp = eqx.tree_at(lambda m: m.layers[-1], zeros, rate.mlp.layers[-1])
        rate = eqx.tree_at(lambda n: n.mlp, rate, mlp)
    return rate


def _penalty(params: Trainable, c: _Controls) -> Float[Array, ""]:
    """L2-SP: ``anchor * (mean ((z - z0) / scale)^2 over fitted parameters
    + sum_n tuned_n * mean (w_n - w0_n)^2 over the networks' weights)``."""
    z = jnp.concatenate([params.model.free[None], params.process_free])
    z0 = jnp.concatenate([c.start.model.free[None], c.start.process_free])
    moving = jnp.concatenate([c.rate.model.free[None], c.rate.process_free]) > 0
    dz = jnp.where(moving, (z - z0) / c.scale, 0.0)
    total = jnp.sum(dz**2) / jnp.maximum(moving.sum(), 1)
    for k, name in enumerate(params.model.networks):
        w = jax.tree.leaves(eqx.filter(params.model.networks[name].mlp, eqx.is_inexact_array))
        w0 = jax.tree.leaves(c.start.model.networks[name].mlp)
        size = sum(x.size for x in w)
        total += c.tuned[k] * sum(jnp.sum((a - b) ** 2) for a, b in zip(w, w0)) / size
    return c.anchor * total


@eqx.filter_jit
def _initial_opt_state(diff, config: _StepSettings):
    """Every member's optimiser state, over its values as one flat vector (one compile)."""
    return eqx.filter_vmap(lambda d: _optimiser(config).init(ravel_pytree(d)[0]))(diff)


def _optimiser(config: FitConfig | _StepSettings) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=min(config.warmup, config.steps // 2),
        decay_steps=config.steps,
        end_value=config.learning_rate * 0.01,
    )
    return optax.chain(optax.clip_by_global_norm(config.clip), optax.adam(schedule))


def _losses(params: Trainable, controls: _Controls, data, scales, config: _StepSettings):
    """Every member's loss to minimise (training loss plus L2-SP penalty), (K,), its
    train and validation losses, (K, 2), and its predictions, (K, B, M, n_vars): all
    members' batches in one solve."""
    losses, ys = members_objective(
        params,
        data,
        scales,
        controls.weights,
        config.solver,
        config.likelihood,
        config.weight_decay,
    )
    return losses[:, 0] + eqx.filter_vmap(_penalty)(params, controls), losses, ys


def _member_update(
    params, grads, value, losses, opt_state, best, best_valid, since_best, c, data, patience, config
):
    """One member's update from its gradient; a member that has stopped (`patience`
    steps without improvement) keeps its state, so that it does not depend on the
    other members. The optimiser sees the member's values as one flat vector: a few
    operations rather than a few per array (the step traces and compiles ~0.4 s faster)."""
    diff, static = eqx.partition(params, eqx.is_inexact_array)
    z, unravel = ravel_pytree(diff)
    rate = ravel_pytree(c.rate)[0]
    grad = jnp.where(rate > 0, ravel_pytree(grads)[0], 0.0)
    finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
    active = since_best < patience
    updates, new_opt = _optimiser(config).update(grad, opt_state, z)
    moves = finite & active
    z = jnp.where(moves, z + updates * rate, z)
    diff, opt_state = unravel(z), _select(moves, new_opt, opt_state)
    valid = jnp.where(jnp.isfinite(losses[1]), losses[1], jnp.inf)
    better = (valid < best_valid) & active
    best = _select(better, params, best)
    since_best = jnp.where(better, 0, since_best + active)
    combined = _center(eqx.combine(diff, static), c.weights[0], data.process)
    best_valid = jnp.where(better, valid, best_valid)
    return combined, opt_state, best, best_valid, since_best, finite


@eqx.filter_jit
def _step(
    state: _State, controls: _Controls, data: BatchData, scales, patience, config: _StepSettings
):
    """One optimisation step of every member. Module-level and taking the data as an
    argument, so fits with equal shapes and step settings share one compile.

    The members' losses are summed for one gradient: members share no values, so each
    member's part of it is the gradient of its own loss."""
    diff, static = eqx.partition(state.params, eqx.is_inexact_array)

    def total(diff):
        values, losses, ys = _losses(eqx.combine(diff, static), controls, data, scales, config)
        return jnp.sum(values), (values, losses, ys)

    (_, (values, losses, ys)), grads = jax.value_and_grad(total, has_aux=True)(diff)
    member = eqx.if_array(0)
    out = eqx.filter_vmap(_member_update, in_axes=(member,) * 9 + (None,) * 3)(
        state.params,
        grads,
        values,
        losses,
        state.opt_state,
        state.best,
        state.best_valid,
        state.since_best,
        controls,
        data,
        patience,
        config,
    )
    params, opt_state, best, best_valid, since_best, finite = out
    new = _State(params, opt_state, best, best_valid, since_best, state.step + 1)
    return new, losses, finite, ys


def _center(params: Trainable, train: Float[Array, "B M"], process: Int[Array, " B"]):
    """Move the training batches' mean deviation d of each batch-varying parameter
    into its shared value (per process for process-specific ones). Every training
    batch keeps its value (z + d_b); the prior on d falls; other batches (valid, new)
    get the population value, the mean of the training batches'."""
    varies = np.array(params.model.batch_sd) > 0
    if not varies.any():
        return params
    specific = np.array(params.model.process_specific)
    n_proc = params.process_free.shape[0]
    trained = (train > 0).any(axis=1)
    own = (process[None, :] == jnp.arange(n_proc)[:, None]) & trained[None, :]  # (P, B)
    d = jnp.where(varies, params.batch_free, 0.0)
    per_process = (own @ d) / jnp.maximum(own.sum(axis=1, keepdims=True), 1)  # (P, n_free)
    overall = (trained @ d) / jnp.maximum(trained.sum(), 1)
    shift = jnp.where(specific, per_process[process], overall)  # (B, n_free)
    return eqx.tree_at(
        lambda t: (t.model.free, t.process_free, t.batch_free),
        params,
        (
            params.model.free + jnp.where(specific, 0.0, overall),
            params.process_free + jnp.where(specific, per_process, 0.0),
            params.batch_free - jnp.where(trained[:, None], shift, 0.0),
        ),
    )


def _select(condition, new, old):
    """`new` where `condition`, else `old`, leaf by leaf (non-array leaves from `new`)."""
    arrays, static = eqx.partition(new, eqx.is_array)
    old_arrays = eqx.filter(old, eqx.is_array)
    picked = jax.tree.map(lambda a, b: jnp.where(condition, a, b), arrays, old_arrays)
    return eqx.combine(picked, static)


def _stopped(parts, config: FitConfig) -> bool:
    return all(np.all(np.asarray(p.since_best) >= config.patience) for p, _ in parts)


def _workers() -> int:
    """How many groups of members step at once: on the CPU backend one per usable core
    (a step of vmapped members runs on about one core: two groups of 17 members took 21
    ms at once, one of 34 took 36 ms), else 1. Usable: the process's CPU affinity, and
    a container's CPU quota (cgroup v2 ``cpu.max``) if it sets one."""
    if jax.default_backend() != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:  # e.g. "200000 100000" for 2 cores; "max 100000" (no quota) fails int()
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        cores = min(cores or 1, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cores or 1


def _groups(n: int, workers: int) -> list[np.ndarray]:
    """Member indices of each group: interleaved, so that slow and fast plans spread,
    and of equal sizes (one compile); a short group repeats its first member."""
    k = min(workers, n)
    return [np.resize(np.arange(g, n, k), -(-n // k)) for g in range(k)]


def _take(tree, index: np.ndarray | int):
    """The members `index` of a stacked tree (a `_State`'s step is shared), or member
    `index` itself, as host arrays (no eager operation per leaf)."""
    pick = lambda x: np.asarray(x)[index]  # noqa: E731
    if isinstance(tree, _State):
        return _State(*(_take(getattr(tree, f), index) for f in _MEMBER_FIELDS), tree.step)
    return jax.tree.map(lambda x: pick(x) if eqx.is_array(x) else x, tree)


_MEMBER_FIELDS = ("params", "opt_state", "best", "best_valid", "since_best")


def _join(trees, groups: list[np.ndarray]):
    """Inverse of `_take` over `groups`: the stacked tree of every member, in order
    (host arrays; a repeated member is taken from its first place)."""
    where = np.concatenate(groups)
    first = np.unique(where, return_index=True)[1]
    join = lambda *xs: np.concatenate([np.asarray(x) for x in xs])[first]  # noqa: E731
    arrays = [eqx.filter(t, eqx.is_array) for t in trees]
    return eqx.combine(
        jax.tree.map(join, *arrays), eqx.filter(trees[0], eqx.is_array, inverse=True)
    )


def _join_state(parts, groups) -> _State:
    states = [p for p, _ in parts]
    fields = [_join([getattr(s, f) for s in states], groups) for f in _MEMBER_FIELDS]
    return _on_device(_State(*fields, states[0].step))


def _on_device(tree):
    """`tree` with its host arrays as JAX arrays (transferred: jnp.asarray would compile
    a program per shape)."""
    return jax.tree.map(lambda x: jax.device_put(x) if isinstance(x, np.ndarray) else x, tree)


def _report_nonfinite(params, data, names, finite, step, solver):
    for r in np.flatnonzero(~finite):
        p = _take(params, int(r))
        ys, ok = solve_batches(p.batch_model(data), data, solver, initial_states(p, data))
        ys, ok = np.asarray(ys), np.asarray(ok)
        try:
            check_finite(ys, ok, data, names, p.model.state_names, solver.max_steps)
            where = "the gradient was not finite"
        except SimulationError as e:
            where = str(e).split(". ")[0]
        warnings.warn(f"fit step {step}, member {r}: step rejected: {where}", stacklevel=3)


def _result(state: _State, history, data: BatchData, names, p: int, config: FitConfig) -> FitResult:
    order = np.argsort(np.asarray(state.best_valid), kind="stable")
    members = [_on_device(_take(state.best, int(r))) for r in order]
    best = members[0]
    y0, free = (np.asarray(x)[: len(names)] for x in _batch_values(best, data))
    initial = pd.DataFrame(y0, index=list(names), columns=list(best.model.state_names))
    initial = initial.rename_axis("batch").reset_index().melt(id_vars="batch", var_name="variable")
    hist = pd.DataFrame(history, columns=["step", "member", "train", "valid"])
    return FitResult(
        batch_parameters=_batch_parameters(best, free, names),
        model=best.for_process(p),
        members=tuple(m.for_process(p) for m in members),
        initial=initial,
        history=hist,
        scores=tuple(float(np.asarray(state.best_valid)[r]) for r in order),
        ranking=tuple(int(r) for r in order),
        config=config,
    )


@eqx.filter_jit
def _batch_values(params: Trainable, data: BatchData):
    """Each batch's initial state and free-parameter values, (B, n_states) and
    (B, n_free) (one compile)."""
    return initial_states(params, data), params.batch_model(data).free


def _batch_parameters(params, free, names) -> pd.DataFrame:
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


# ----------------------------------------------------------------- checkpoints
def _fingerprint(model: HybridModel, data: BatchData, config: FitConfig, plans) -> str:
    h = hashlib.sha256()
    h.update(repr((asdict(config), plans)).encode())
    h.update(repr((model.name, model.state_names, model.free.tolist())).encode())
    for x in jax.tree.leaves(eqx.filter(data, eqx.is_array)):
        h.update(np.asarray(x).tobytes())
    return h.hexdigest()


def _save_checkpoint(folder: Path, state: _State, history, fingerprint: str) -> None:
    """Write history, then state, each atomically; a kill between leaves a state older
    than the history, which loading truncates to the state's step."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = dict(format=CHECKPOINT_FORMAT, fingerprint=fingerprint, history=history)
    (folder / "state.json.tmp").write_text(json.dumps(meta))
    os.replace(folder / "state.json.tmp", folder / "state.json")
    eqx.tree_serialise_leaves(folder / "state.eqx.tmp", state)
    os.replace(folder / "state.eqx.tmp", folder / "state.eqx")


def _load_checkpoint(folder: Path, template: _State, fingerprint: str):
    try:
        meta = json.loads((folder / "state.json").read_text())
        if meta.get("format") != CHECKPOINT_FORMAT or meta.get("fingerprint") != fingerprint:
            raise FitError(
                f"{folder}: this checkpoint belongs to a different fit (other model, data or "
                "settings); remove the folder or fit into another one"
            )
        state = eqx.tree_deserialise_leaves(folder / "state.eqx", template)
    except FitError:
        raise
    except (OSError, ValueError, RuntimeError) as e:
        raise FitError(
            f"{folder}: cannot read checkpoint ({e}); remove it to start afresh"
        ) from None
    step = int(state.step)
    return state, [tuple(h) for h in meta["history"] if h[0] <= step]
