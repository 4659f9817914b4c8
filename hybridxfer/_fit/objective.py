"""The fitting objective: scaled, masked errors over all batches at once."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .._core.model import HybridModel
from .._data.batch_data import BatchData
from .._data.cells import StudyError, first_true
from .._data.outliers import robust_span
from .._solve import Solver, solve_batches, solve_rows

__all__ = [
    "Trainable",
    "initial_states",
    "members_objective",
    "objective",
    "scaled_residuals",
    "variable_scales",
]

LIKELIHOODS = ("scaled", "gaussian")


class Trainable(eqx.Module):
    """Everything a fit adjusts.

    Attributes:
        model: shared mechanistic parameters (``model.free``) and network weights.
        process_free: free-parameter values per process, (P, n_free); the entries of
            process-specific parameters are used for each batch's process, the
            others come from ``model.free``.
        initial: log of each batch's initial state; used only for states declared
            ``initial = "estimate"``, shape (B, n_states).
        batch_free: each batch's deviation d_b from its process's free-parameter
            values, used only for parameters with a ``batch_sd``, shape (B, n_free).
        log_noise: log noise standard deviation per variable (states, then
            observations) in scaled units (Gaussian likelihood only), shape (n_vars,).
    """

    model: HybridModel
    process_free: Float[Array, "P n_free"]
    initial: Float[Array, "B n_states"]
    log_noise: Float[Array, " n_vars"]
    batch_free: Float[Array, "B n_free"]

    def for_process(self, p: int) -> HybridModel:
        """The model with process `p`'s values of the process-specific parameters."""
        return eqx.tree_at(lambda m: m.free, self.model, self._free(self.process_free[p]))

    def batch_model(self, data: BatchData) -> HybridModel:
        """The model with per-batch free parameters, (B, n_free): its process's values,
        plus its own deviation for batch-varying parameters."""
        varies = jnp.array(self.model.batch_sd) > 0
        free = self._free(self.process_free[data.process]) + jnp.where(varies, self.batch_free, 0.0)
        return eqx.tree_at(lambda m: m.free, self.model, free)

    def _free(self, process_values):
        specific = jnp.array(self.model.process_specific)
        return jnp.where(specific, process_values, self.model.free)


def initial_states(params: Trainable, data: BatchData) -> Float[Array, "B n_states"]:
    """Initial states per batch: the model's, with estimated states taken from `params`."""
    model = params.batch_model(data)
    one = lambda free, measured, constants: eqx.tree_at(  # noqa: E731
        lambda m: m.free, model, free
    ).initial_state(measured, constants)
    default = jax.vmap(one)(model.free, data.initial, data.constants)
    estimated = jnp.array(model.estimated_states)
    return jnp.where(estimated, jnp.exp(params.initial), default)


# A measured value this many loss scales from its variable's median is garbage (a typo,
# a unit slip, 1e308): its squared residual would swamp or overflow the loss.
ABSURD = 1e6


def variable_scales(
    data: BatchData, mask: Bool[Array, "B M"], names: Sequence[str] = ()
) -> Float[Array, " n_vars"]:
    """Scale of each variable: the robust span of its observations in `mask`, their
    range without far-out values (:func:`hybridxfer._data.outliers.robust_span`; the
    plain range where none is far out), 1 if none or flat. One absurd but finite value
    thus cannot make a variable's residuals vanish.

    Args:
        names: the variables' names (``model.variable_names``), for messages.

    Raises:
        StudyError: an observation more than :data:`ABSURD` scales from its variable's
            median (naming the variable and the value).
    """
    values = np.where(np.asarray(mask)[..., None], np.asarray(data.values), np.nan)
    values = values.reshape(-1, values.shape[-1])
    span = np.array([robust_span(column) for column in values.T])
    scales = np.where(np.isfinite(span) & (span > 0), span, 1.0)
    with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        distance = np.abs(values - np.nanmedian(values, axis=0)) / scales
    absurd = np.isfinite(values) & ~(distance <= ABSURD)
    bad = first_true(absurd.any(axis=0))
    if bad is not None:
        name = repr(names[bad]) if bad < len(names) else f"{bad} (of model.variable_names)"
        value = values[first_true(absurd[:, bad]), bad]
        raise StudyError(
            f"variable {name}: measured value {value:g} lies more than {ABSURD:g} times "
            f"the variable's loss scale ({scales[bad]:g}, the range of its other values) "
            "from its median; its residual would swamp the loss: correct or remove it"
        )
    return jax.device_put(scales)


def scaled_residuals(
    params: Trainable,
    data: BatchData,
    scales: Float[Array, " n_vars"],
    solver: Solver,
) -> tuple[Float[Array, "B M n_vars"], Bool[Array, "B M n_vars"], Float[Array, "B M n_vars"]]:
    """Residuals ``(prediction - measurement) / s`` (0 where unmeasured), with s the
    measurement's ``sd`` where given, else the state's entry of `scales`.

    Returns:
        residuals, which entries are measured, and the predictions.
    """
    ys, _ = solve_batches(params.batch_model(data), data, solver, initial_states(params, data))
    return (*_residuals(ys, data, scales), ys)


def _residuals(ys, data: BatchData, scales):
    """Scaled residuals of predictions `ys` (..., B, M, n_vars) and which are measured."""
    s = jnp.where(jnp.isfinite(data.sd), data.sd, scales)
    observed = jnp.isfinite(data.values)
    r = jnp.where(observed, (ys - jnp.where(observed, data.values, 0.0)) / s, 0.0)
    return r, observed


def objective(
    params: Trainable,
    data: BatchData,
    scales: Float[Array, " n_vars"],
    weights: Float[Array, "k B M"],
    solver: Solver,
    likelihood: str = "scaled",
    weight_decay: float = 0.0,
) -> tuple[Float[Array, " k"], Float[Array, "B M n_vars"]]:
    """Loss of `params` on each of k observation weightings (e.g. train, valid: 0/1
    masks, or larger weights for some batches) from one solve.

    Residuals are those of :func:`scaled_residuals`, so every variable counts alike.
    For each weighting and state, ``e_v`` is the weighted mean squared residual over
    its observations; the loss averages over observed states:

    - ``"scaled"``: ``mean_v e_v``;
    - ``"gaussian"``: ``mean_v (e_v / (2 sigma_v^2) + log sigma_v)`` with learned sigma.

    plus ``weight_decay * sum(w^2)`` over network weights, and for batch-varying
    parameters the prior of the batch deviations d (first weighting only):
    ``stop_gradient(loss) * sum_(b,k) (d_bk / batch_sd_k)^2 / N``, with N the number
    of observations: the Gaussian prior on the scale of the mean squared residuals,
    which is the residual variance (a MAP estimate of the random effects).

    Returns:
        The k losses, and the predictions (B, M, n_vars).
    """
    r, observed, ys = scaled_residuals(params, data, scales, solver)
    return _weighted_losses(params, r, observed, weights, likelihood, weight_decay), ys


def members_objective(
    params: Trainable,
    data: BatchData,
    scales: Float[Array, " n_vars"],
    weights: Float[Array, "K k B M"],
    solver: Solver,
    likelihood: str = "scaled",
    weight_decay: float = 0.0,
) -> tuple[Float[Array, "K k"], Float[Array, "K B M n_vars"]]:
    """:func:`objective` of K members at once: `params` and `weights` carry a leading
    member axis. The K x B batch solves run as one flat vmap (:func:`solve_rows`).

    Returns:
        Each member's k losses, and its predictions.
    """
    K, B = weights.shape[0], data.times.shape[0]

    def rows(p: Trainable):  # the member's model per batch, and its initial states
        model = p.batch_model(data)
        per_batch = eqx.filter_vmap(lambda f: eqx.tree_at(lambda m: m.free, model, f))
        return per_batch(model.free), initial_states(p, data)

    models, y0 = eqx.filter_vmap(rows)(params)
    flat = lambda x: x.reshape(K * B, *x.shape[2:])  # noqa: E731
    tile = lambda x: flat(jnp.broadcast_to(x, (K, *x.shape)))  # noqa: E731
    ys, _ = solve_rows(_map_arrays(flat, models), _map_arrays(tile, data), solver, flat(y0))
    ys = ys.reshape(K, B, *ys.shape[1:])
    r, observed = _residuals(ys, data, scales)
    losses = eqx.filter_vmap(
        lambda p, r, w: _weighted_losses(p, r, observed, w, likelihood, weight_decay)
    )(params, r, weights)
    return losses, ys


def _map_arrays(f, tree):
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.tree.map(f, arrays), static)


def _weighted_losses(params: Trainable, r, observed, weights, likelihood: str, weight_decay):
    """The k losses of :func:`objective` from the scaled residuals `r` (B, M, n_vars)."""
    w = jnp.where(observed, weights[..., None], 0.0)  # (k, B, M, n)
    count = w.sum(axis=(1, 2))
    e = (w * r**2).sum(axis=(1, 2)) / jnp.where(count > 0, count, 1.0)
    if likelihood == "gaussian":
        sigma2 = jnp.exp(2 * params.log_noise)
        e = e / (2 * sigma2) + params.log_noise
    has = count > 0
    losses = jnp.where(has, e, 0.0).sum(-1) / jnp.maximum(has.sum(-1), 1)
    mlps = [net.mlp for net in params.model.networks.values()]
    decay = sum(jnp.sum(x**2) for x in jax.tree.leaves(eqx.filter(mlps, eqx.is_inexact_array)))
    sd = jnp.array(params.model.batch_sd)
    d = jnp.where(sd > 0, params.batch_free / jnp.where(sd > 0, sd, 1.0), 0.0)
    prior = jax.lax.stop_gradient(losses[0]) * jnp.sum(d**2) / jnp.maximum(count[0].sum(), 1.0)
    return losses.at[0].add(weight_decay * decay + prior)
