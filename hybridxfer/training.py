"""Fitting a hybrid model: mechanistic parameters and network weights together.

Several members (random restarts) are trained at once, vmapped, with Adam on a
warm-up + cosine schedule and gradient clipping. Each step solves every batch
once and scores the train and validation observations from that one solve;
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from jaxtyping import Array, Float, Int, PRNGKeyArray
from tqdm import tqdm

from .batch_data import FAR, BatchData, batch_data
from .loss import LIKELIHOODS, Trainable, initial_states, objective, variable_scales
from .model import HybridModel
from .simulation import SimulationError, Solver, check_finite, solve_batches
from .study import Study, StudyError

__all__ = ["FitConfig", "FitError", "FitResult", "fit", "normalise_networks"]

CHECKPOINT_FORMAT = 1


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
    solver: Solver = field(default_factory=lambda: Solver(rtol=1e-5, atol=1e-8, max_steps=256))

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
        config: the settings used.
        parameters: parameter table with intervals
            (:func:`hybridxfer.parameter_table`), when computed.
    """

    model: HybridModel
    members: tuple[HybridModel, ...]
    initial: pd.DataFrame
    history: pd.DataFrame
    scores: tuple[float, ...]
    config: FitConfig
    parameters: pd.DataFrame | None = None


class _State(eqx.Module):
    params: Trainable
    opt_state: optax.OptState
    best: Trainable
    best_valid: Float[Array, " R"]
    since_best: Int[Array, " R"]
    step: Int[Array, ""]


def normalise_networks(model: HybridModel, data: BatchData, mask) -> HybridModel:
    """Set each network's input mean and std from the observations in `mask` (B, M).

    States use their measured values, inputs their recorded values, constants their
    per-batch values, t the observation times.
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
        cols = [values[x] if values[x].size else np.zeros(1) for x in net.spec.inputs]
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
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
) -> FitResult:
    """Fit `model` to the ``train`` batches of `study` (of one `process`, if given).

    ``valid`` batches steer early stopping and the choice among members; without
    them the latest ``config.holdout`` of each training batch's time points do.

    Raises:
        StudyError: no training batches, or data the model cannot use.
        FitError: if every member's steps keep failing (non-finite loss or gradient).
    """
    study = study.select(process=process) if process is not None else study
    splits = set(study.batches["split"])
    if "train" not in splits:
        raise StudyError(f"{study.name}: no 'train' batches{_of(process)}")
    study = study.select(split=["train", "valid"] if "valid" in splits else "train")
    data = batch_data(model, study)
    train_mask, valid_mask = _masks(study, data, config.holdout)
    names = study.batch_names
    masks = jnp.stack([train_mask, valid_mask])
    scales = variable_scales(data, train_mask)
    model = normalise_networks(model, data, train_mask)

    keys = jax.random.split(jax.random.PRNGKey(config.seed), config.members)
    params = eqx.filter_vmap(lambda k: _initial_params(model, data, k))(keys)
    optimiser = _optimiser(config)
    state = _State(
        params=params,
        opt_state=eqx.filter_vmap(optimiser.init)(eqx.filter(params, eqx.is_inexact_array)),
        best=params,
        best_valid=jnp.asarray(np.full(config.members, np.inf)),
        since_best=jnp.zeros(config.members, dtype=int),
        step=jnp.array(0, dtype=int),
    )
    step_fn = _make_step(data, scales, masks, config, optimiser)

    fingerprint = _fingerprint(model, data, config)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    history = []
    if ckpt is not None and (ckpt / "state.eqx").exists():
        state, history = _load_checkpoint(ckpt, state, fingerprint)
    start = int(state.step)

    rejected = 0
    bar = tqdm(total=config.steps, initial=start, disable=None if progress else True, desc="fit")
    step = start
    while step < config.steps and not _stopped(state, config):
        state, losses, finite = step_fn(state)
        step += 1
        losses, finite = np.asarray(losses), np.asarray(finite)
        history += [(step, r, *losses[r]) for r in range(config.members)]
        rejected = rejected + 1 if not finite.any() else 0
        if not finite.all():
            _report_nonfinite(state.params, data, names, finite, step, config.solver)
        if rejected > 20:
            raise FitError(
                f"fit: 20 steps in a row gave a non-finite loss or gradient (step {step})"
            )
        bar.update(1)
        bar.set_postfix(
            train=f"{losses[:, 0].min():.4g}", valid=f"{float(state.best_valid.min()):.4g}"
        )
        if ckpt is not None and step % config.checkpoint_every == 0:
            _save_checkpoint(ckpt, state, history, fingerprint)
    bar.close()
    if ckpt is not None:
        _save_checkpoint(ckpt, state, history, fingerprint)
    return _result(state, history, data, names, config)


def _of(process):
    return f" of process {process!r}" if process is not None else ""


def _masks(study: Study, data: BatchData, holdout: float):
    """Train and validation observation masks (B, M)."""
    split = study.batches["split"].to_numpy()
    is_train = np.zeros(data.mask.shape[0], dtype=bool)
    is_train[: len(split)] = split == "train"
    mask = np.asarray(data.mask)
    if (split == "valid").any():
        return jnp.asarray(mask & is_train[:, None]), jnp.asarray(mask & ~is_train[:, None])
    times = np.asarray(data.times)
    end = np.where(mask, times, -np.inf).max(axis=1, keepdims=True)
    cut = (1 - holdout) * end
    late = times > cut
    return jnp.asarray(mask & ~late), jnp.asarray(mask & late)


def _initial_params(model: HybridModel, data: BatchData, key: PRNGKeyArray) -> Trainable:
    model = model.init_networks(key)
    default = jax.vmap(model.initial_state)(data.initial, data.constants)
    guess = jnp.log(jnp.maximum(jnp.where(jnp.isfinite(default), default, 1.0), 1e-6))
    return Trainable(model=model, initial=guess, log_noise=jnp.zeros(len(model.state_names)))


def _optimiser(config: FitConfig) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=min(config.warmup, config.steps // 2),
        decay_steps=config.steps,
        end_value=config.learning_rate * 0.01,
    )
    return optax.chain(optax.clip_by_global_norm(config.clip), optax.adam(schedule))


def _make_step(data, scales, masks, config: FitConfig, optimiser):
    def loss(params):
        losses, _ = objective(
            params, data, scales, masks, config.solver, config.likelihood, config.weight_decay
        )
        return losses[0], losses

    def member_step(params, opt_state, best, best_valid, since_best):
        diff, static = eqx.partition(params, eqx.is_inexact_array)
        (value, losses), grads = jax.value_and_grad(
            lambda d: loss(eqx.combine(d, static)), has_aux=True
        )(diff)
        finite = jnp.isfinite(value) & jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)])
        )
        updates, new_opt = optimiser.update(grads, opt_state, diff)
        new_diff = eqx.apply_updates(diff, updates)
        diff, opt_state = _select(finite, new_diff, diff), _select(finite, new_opt, opt_state)
        valid = jnp.where(jnp.isfinite(losses[1]), losses[1], jnp.inf)
        better = valid < best_valid
        best = _select(better, params, best)
        since_best = jnp.where(better, 0, since_best + 1)
        return (
            eqx.combine(diff, static),
            opt_state,
            best,
            jnp.minimum(valid, best_valid),
            since_best,
            losses,
            finite,
        )

    @eqx.filter_jit
    def step(state: _State):
        out = eqx.filter_vmap(member_step)(
            state.params, state.opt_state, state.best, state.best_valid, state.since_best
        )
        params, opt_state, best, best_valid, since_best, losses, finite = out
        new = _State(params, opt_state, best, best_valid, since_best, state.step + 1)
        return new, losses, finite

    return step


def _select(condition, new, old):
    """`new` where `condition`, else `old`, leaf by leaf (non-array leaves from `new`)."""
    arrays, static = eqx.partition(new, eqx.is_array)
    old_arrays = eqx.filter(old, eqx.is_array)
    picked = jax.tree.map(lambda a, b: jnp.where(condition, a, b), arrays, old_arrays)
    return eqx.combine(picked, static)


def _stopped(state: _State, config: FitConfig) -> bool:
    return bool(np.all(np.asarray(state.since_best) >= config.patience))


def _member(tree, r: int):
    return jax.tree.map(lambda x: x[r] if eqx.is_array(x) else x, tree)


def _report_nonfinite(params, data, names, finite, step, solver):
    for r in np.flatnonzero(~finite):
        p = _member(params, int(r))
        ys, ok = solve_batches(p.model, data, solver, initial_states(p, data))
        try:
            check_finite(np.asarray(ys), np.asarray(ok), data, names, p.model.state_names)
            where = "the gradient was not finite"
        except SimulationError as e:
            where = str(e).split(". ")[0]
        warnings.warn(f"fit step {step}, member {r}: step rejected: {where}", stacklevel=3)


def _result(state: _State, history, data: BatchData, names, config: FitConfig) -> FitResult:
    order = np.argsort(np.asarray(state.best_valid), kind="stable")
    members = [_member(state.best, int(r)) for r in order]
    best = members[0]
    y0 = np.asarray(initial_states(best, data))[: len(names)]
    initial = pd.DataFrame(y0, index=list(names), columns=list(best.model.state_names))
    initial = initial.rename_axis("batch").reset_index().melt(id_vars="batch", var_name="variable")
    hist = pd.DataFrame(history, columns=["step", "member", "train", "valid"])
    return FitResult(
        model=best.model,
        members=tuple(m.model for m in members),
        initial=initial,
        history=hist,
        scores=tuple(float(np.asarray(state.best_valid)[r]) for r in order),
        config=config,
    )


# ----------------------------------------------------------------- checkpoints
def _fingerprint(model: HybridModel, data: BatchData, config: FitConfig) -> str:
    h = hashlib.sha256()
    h.update(repr(asdict(config)).encode())
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
