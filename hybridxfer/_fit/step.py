"""One optimisation step of every member of a fit, compiled once.

Each member's update is an optax transform over its values as one flat vector
(:func:`optimiser`); its learning-rate factors (0 where a value is held) are part of
the transform. A member whose loss or gradient is not finite keeps its values for
that step; a member that has stopped (``patience`` steps without improvement) keeps
its state, so that it does not depend on the other members.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, Int

from .._data.batch_data import BatchData
from .._solve import Solver
from .config import FitConfig
from .controls import Controls, penalty
from .objective import Trainable, members_objective

__all__ = ["State", "StepSettings", "initial_opt_state", "optimiser", "retire", "step"]


@dataclass(frozen=True)
class StepSettings:
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
    def of(cls, config: FitConfig) -> StepSettings:
        return cls(**{f: getattr(config, f) for f in cls.__dataclass_fields__})


class State(eqx.Module):
    """Every member's optimisation state (each leaf with a leading member axis, K).

    Attributes:
        params: the current values.
        opt_state: the optimiser's state.
        best: the values at the best validation loss so far.
        best_valid: that loss, (K,).
        since_best: steps since it, (K,).
        best_ys: the predictions at the best values, (K, B, M, n_vars): states, then
            observations, at the fitted batches' (padded) output times.
    """

    params: Trainable
    opt_state: optax.OptState
    best: Trainable
    best_valid: Float[Array, " K"]
    since_best: Int[Array, " K"]
    best_ys: Float[Array, "K B M n_vars"]


def optimiser(settings: StepSettings, rate: Float[Array, " n"]) -> optax.GradientTransformation:
    """A member's update of its flat values from their gradient:
    ``chain(hold, clip_by_global_norm(clip), adam(schedule), scale by rate)``, where
    `hold` zeroes the gradient of held values (``rate == 0``), the schedule warms up
    linearly to ``learning_rate`` in ``warmup`` steps and decays by a cosine to 1% of it
    at ``steps``, and `rate` (n,) is each value's learning-rate factor."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=settings.learning_rate,
        warmup_steps=min(settings.warmup, settings.steps // 2),
        decay_steps=settings.steps,
        end_value=settings.learning_rate * 0.01,
    )
    return optax.chain(
        optax.stateless(lambda g, _: jnp.where(rate > 0, g, 0.0)),
        optax.clip_by_global_norm(settings.clip),
        optax.adam(schedule),
        optax.stateless(lambda u, _: u * rate),
    )


@eqx.filter_jit
def initial_opt_state(diff: Trainable, rate: Trainable, settings: StepSettings):
    """Every member's optimiser state over its values as one flat vector (one compile);
    `diff` and `rate` carry a leading member axis."""

    def init(d, r):
        return optimiser(settings, ravel_pytree(r)[0]).init(ravel_pytree(d)[0])

    return eqx.filter_vmap(init)(diff, rate)


def _losses(params: Trainable, controls: Controls, data, scales, settings: StepSettings):
    """Every member's loss to minimise (training loss plus L2-SP penalty), (K,), its
    train and validation losses, (K, 2), and its predictions, (K, B, M, n_vars): all
    members' batches in one solve."""
    losses, ys = members_objective(
        params,
        data,
        scales,
        controls.weights,
        settings.solver,
        settings.likelihood,
        settings.weight_decay,
    )
    return losses[:, 0] + eqx.filter_vmap(penalty)(params, controls), losses, ys


def _member_update(
    params, grads, value, losses, opt_state, best, best_valid, since_best, c, data, patience, config
):
    """One member's update from its gradient. The optimiser sees the member's values as
    one flat vector: a few operations rather than a few per array (the step traces and
    compiles ~0.4 s faster)."""
    diff, static = eqx.partition(params, eqx.is_inexact_array)
    z, unravel = ravel_pytree(diff)
    rate = ravel_pytree(c.rate)[0]
    grad = ravel_pytree(grads)[0]
    finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(grad) | (rate <= 0))
    active = since_best < patience
    updates, new_opt = optimiser(config, rate).update(grad, opt_state, z)
    moves = finite & active
    z = jnp.where(moves, optax.apply_updates(z, updates), z)
    diff, opt_state = unravel(z), _select(moves, new_opt, opt_state)
    valid = jnp.where(jnp.isfinite(losses[1]), losses[1], jnp.inf)
    better = (valid < best_valid) & active
    best = _select(better, params, best)
    since_best = jnp.where(better, 0, since_best + active)
    combined = _center(eqx.combine(diff, static), c.weights[0], data.process)
    best_valid = jnp.where(better, valid, best_valid)
    return combined, opt_state, best, best_valid, since_best, finite


@eqx.filter_jit
def step(
    state: State,
    controls: Controls,
    data: BatchData,
    scales: Float[Array, " n_vars"],
    patience: Int[Array, ""],
    settings: StepSettings,
) -> tuple[State, Float[Array, "K 2"], Bool[Array, " K"], Float[Array, "K B M n_vars"]]:
    """One optimisation step of every member. Module-level and taking the data as an
    argument, so fits with equal shapes and step settings share one compile.

    The members' losses are summed for one gradient: members share no values, so each
    member's part of it is the gradient of its own loss.

    Returns:
        The new state; each member's train and validation loss, whether its step was
        finite, and its predictions, all at the values the step started from.
    """
    diff, static = eqx.partition(state.params, eqx.is_inexact_array)

    def total(diff):
        values, losses, ys = _losses(eqx.combine(diff, static), controls, data, scales, settings)
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
        settings,
    )
    params, opt_state, best, best_valid, since_best, finite = out
    improved = since_best == 0  # this step's start values are the member's best
    best_ys = jnp.where(improved[:, None, None, None], ys, state.best_ys)
    new = State(params, opt_state, best, best_valid, since_best, best_ys)
    return new, losses, finite, ys


def retire(state: State, controls: Controls, members: np.ndarray) -> tuple[State, Controls]:
    """`state` and `controls` (leading member axis) with `members` (a boolean mask over
    it), left behind by a rejected step, set back to their best values and held
    (learning-rate factor 0). Where they were, every later step would fail again, and a
    failed solve spends the solver's whole step budget, which the other members of a
    vmapped step wait for; at their best values the solve costs what it did there."""

    def put(new, old):
        if not eqx.is_array(old):
            return old
        where = members.reshape(-1, *(1,) * (np.ndim(old) - 1))
        return np.where(where, np.asarray(new), np.asarray(old))

    params = jax.tree.map(put, state.best, state.params)
    rate = jax.tree.map(lambda r: put(np.zeros(np.shape(r)), r), controls.rate)
    return (
        eqx.tree_at(lambda s: s.params, state, params),
        eqx.tree_at(lambda c: c.rate, controls, rate),
    )


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
