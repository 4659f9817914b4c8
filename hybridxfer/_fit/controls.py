"""A member's start and controls: its starting values (networks normalised, re-learned
ones initialised), which values it trains at what rate, and its L2-SP anchor."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import asdict

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._core.model import HybridModel
from .._data.batch_data import FAR, BatchData
from .._data.study import Study
from .objective import Trainable
from .plan import Plan
from .validation import Validation, observation_weights

__all__ = ["Controls", "member_keys", "member_start", "normalise_networks", "penalty", "stack"]


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


def member_keys(seed: int, members: Sequence[tuple[Plan, Validation]]) -> list:
    """A PRNG key per member from the seed and its plan, not its position, so that a
    plan's member starts alike whatever is fitted with it. Equal members (restarts) get
    successive keys; the validation does not count (folds start like the full fit)."""
    keys, seen = [], {}
    for plan, validation in members:
        text = json.dumps([asdict(plan), asdict(validation)], sort_keys=True)
        repeat = seen[text] = seen.get(text, -1) + 1
        # "held_out": [] keeps the keys of the plans from before Validation was split off
        what = json.dumps(asdict(plan) | {"held_out": []}, sort_keys=True)
        key = jax.random.fold_in(jax.random.PRNGKey(seed), zlib.crc32(what.encode()))
        keys.append(jax.random.fold_in(key, repeat))
    return keys


class Controls(eqx.Module):
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


def member_start(
    model: HybridModel,
    study: Study,
    data: BatchData,
    process: str | None,
    member: tuple[Plan, Validation],
    holdout: float,
    key,
) -> tuple[Trainable, Controls]:
    """Starting values and controls of the member that follows `member`'s plan and
    validation (`holdout`: ``FitConfig.holdout``)."""
    plan, validation = member
    weights = observation_weights(study, data, holdout, process, plan, validation)
    relearn = [n for n in model.networks if plan.network_mode(n) == "relearn"]
    start = model.declared() if plan.from_declared else model
    start = normalise_networks(start, data, weights[0] > 0, only=relearn)
    if relearn:
        fresh = start.init_networks(key).networks
        nets = {n: fresh[n] if n in relearn else net for n, net in start.networks.items()}
        start = eqx.tree_at(lambda m: m.networks, start, nets)
    params = _trainable(start, study, data)
    free = [p for p in model.structure.parameters if not p.fixed]
    controls = Controls(
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
    return Trainable(  # host arrays but the model's (stacked over members by stack)
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


def stack(trees):
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
    # host arrays (stacked over members by stack): no compile per leaf shape
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


def penalty(params: Trainable, c: Controls) -> Float[Array, ""]:
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
