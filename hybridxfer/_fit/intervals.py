"""Parameter intervals of a fit: Laplace / Gauss-Newton in the unconstrained coordinates."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Bool, Float

from .._core.model import HybridModel
from .._data.batch_data import batch_data
from .._data.study import Study
from .._solve import INTERVALS, Solver
from .objective import Trainable, scaled_residuals, variable_scales

__all__ = ["covariance", "noise_variances", "parameter_table", "residual_problem"]

Z95 = 1.959963984540054
WIDE = 10.0  # an interval whose upper end is over this many times its lower one
CORRELATED = 0.95  # |correlation| of two parameters' estimates that flags a trade-off
NULL = 1e-9  # an information eigenvalue below this times the largest: not identifiable


def parameter_table(
    model: HybridModel,
    study: Study,
    *,
    initial: pd.DataFrame | None = None,
    solver: Solver = INTERVALS,
) -> pd.DataFrame:
    """Every parameter with its value, unit and a 95% interval from the data in `study`.

    Gauss-Newton / Laplace approximation in the unconstrained coordinates z of the
    free parameters: with J_v the Jacobian of variable v's scaled residuals and
    sigma_v^2 their mean square (n_v - p/n_vars degrees of freedom),

        Cov(z) = (sum_v J_v^T J_v / sigma_v^2)^-1,

    and the interval ``constrain(z +- 1.96 sd_z)`` (asymmetric for log-parametrised
    values; never crosses bounds). ``sd`` is the delta-method standard deviation of
    the value. Network weights and estimated initial values are held at their fitted
    values (intervals conditional on them).

    ``flag`` names what limits a parameter's identifiability: an interval spanning
    more than a decade (upper / lower > :data:`WIDE`), no finite interval, an
    estimate correlated with another's (``|r| >`` :data:`CORRELATED`, from Cov(z)), or
    one that trades off with a network's output level: with each network's output
    bias b_k free too (the same Jacobian, one column per network), the joint
    covariance of (z, b) correlates the parameter with b_k beyond :data:`CORRELATED`:
    the network can absorb the parameter's scale, and its conditional interval is
    too narrow.
    Directions the data do not determine (information eigenvalues below :data:`NULL`
    times the largest) give the parameters moving along them an infinite sd and a
    correlation of +-1 with each other.
    The correlation matrix of the free parameters is ``table.attrs["correlation"]``.

    Args:
        model: fitted model.
        study: the batches it was fitted to.
        initial: estimated initial states (``FitResult.initial``), if any.

    Returns:
        Columns ``name, value, unit, sd, lower95, upper95, fixed, process_specific,
        flag``.
    """
    jr, u, weight, nets = residual_problem(model, study, initial, solver)
    free = [p for p in model.structure.parameters if not p.fixed]
    n = len(free)
    cov = np.full((n, n), np.nan)
    trades = np.zeros((n, len(nets)))
    if free:
        J, r = jr(u)
        sigma2 = noise_variances(r, weight, n)
        info = np.zeros((n + len(nets), n + len(nets)))
        for v in np.flatnonzero(np.isfinite(sigma2)):
            Jv = J[..., v, :][weight[..., v]]
            info += Jv.T @ Jv / sigma2[v]
        cov = covariance(info[:n, :n])
        if nets:
            trades = _correlation(covariance(info))[:n, n:]
    sd_z = np.sqrt(np.clip(np.diag(cov), 0, None)) if free else np.zeros(0)
    values, slope, lower, upper = (np.asarray(x) for x in _intervals(model, sd_z))
    corr = _correlation(cov)
    names = [p.name for p in free]
    rows, k = [], 0
    for i, p in enumerate(model.structure.parameters):
        row = dict(name=p.name, value=float(values[i]), unit=p.unit)
        row |= dict(sd=np.nan, lower95=np.nan, upper95=np.nan, flag="")
        if not p.fixed:
            row.update(sd=abs(slope[k]) * sd_z[k], lower95=lower[k], upper95=upper[k])
            row["flag"] = _flag(lower[k], upper[k], corr[k], names, k, dict(zip(nets, trades[k])))
            k += 1
        rows.append(row | dict(fixed=p.fixed, process_specific=p.process_specific))
    table = pd.DataFrame(rows)
    table.attrs["correlation"] = pd.DataFrame(corr, index=names, columns=names)
    return table


def residual_problem(
    model: HybridModel, study: Study, initial: pd.DataFrame | None, solver: Solver
) -> tuple[Callable, np.ndarray, np.ndarray, list[str]]:
    """The fit's scaled residuals (:func:`~.objective.scaled_residuals`) as a function of
    u = (the free parameters' unconstrained values z, then each network's output shift,
    added to its last layer's bias), network weights and estimated initial values held.

    Returns:
        ``jr``: u -> (Jacobian (B, M, n_vars, n_free + K), residuals (B, M, n_vars)),
        compiled once (one solve with tangents); the fitted u (shifts 0); which
        residuals are observations (B, M, n_vars; not the t = 0 values a state is
        started from); the K networks' names.
    """
    data = batch_data(model, study)
    est = np.array(model.estimated_states)
    log_y0 = np.zeros(data.initial.shape)
    if initial is not None and est.any():
        table = initial.pivot(index="batch", columns="variable", values="value")
        y0 = table.reindex(index=list(study.batch_names), columns=list(model.state_names))
        log_y0[: len(study.batch_names)] = np.log(np.maximum(y0.to_numpy(float), 1e-300))
    params = Trainable(  # host arrays: no eager operation to compile
        model,
        np.asarray(model.free)[None],
        log_y0,
        np.zeros(len(model.variable_names)),
        np.zeros((data.mask.shape[0], model.free.shape[0])),
    )
    scales = variable_scales(data, data.mask, model.variable_names)
    weight = np.asarray(data.mask)[..., None] & np.isfinite(np.asarray(data.values))
    # a state started from its t = 0 measurement has a residual 0 there that no value
    # moves: no information, and no degree of freedom of sigma_v
    s = model.structure
    copied = [e is None and st.initial != "estimate" for st, e in zip(s.states, s.initial_exprs)]
    if s.reactor.has_volume:
        copied.append(dict(s.reactor_exprs).get("volume_initial") is None)
    copied += [False] * len(model.observation_names)
    weight &= ~((np.asarray(data.times) == 0)[..., None] & np.array(copied))
    nets = list(model.networks)
    biases = lambda p: [p.model.networks[n].mlp.layers[-1].bias for n in nets]  # noqa: E731

    def residuals(u):
        z, shift = u[: model.free.shape[0]], u[model.free.shape[0] :]
        moved = eqx.tree_at(lambda p: (p.model.free, p.process_free), params, (z, z[None]))
        moved = eqx.tree_at(biases, moved, [b + d for b, d in zip(biases(moved), shift)])
        return scaled_residuals(moved, data, scales, solver)[0]

    # residuals and Jacobian from one compiled solve with tangents (an eager solve would
    # compile each of its operations on its own)
    both = eqx.filter_jit(jax.jacfwd(lambda u: (residuals(u),) * 2, has_aux=True))

    def jr(u):
        return tuple(np.asarray(x) for x in both(jnp.asarray(u)))

    return jr, np.concatenate([np.asarray(model.free), np.zeros(len(nets))]), weight, nets


def noise_variances(
    r: Float[np.ndarray, "B M n_vars"], weight: Bool[np.ndarray, "B M n_vars"], n: int
) -> Float[np.ndarray, " n_vars"]:
    """Each variable's residual variance sigma_v^2: its observations' sum of squares over
    ``n_v - n / n_vars`` degrees of freedom (n free parameters shared by the variables);
    NaN for a variable without a degree of freedom."""
    out = np.full(r.shape[-1], np.nan)
    for v in range(r.shape[-1]):
        w = weight[..., v]
        dof = w.sum() - n / r.shape[-1]
        if dof > 0:
            out[v] = max((r[..., v][w] ** 2).sum() / dof, 1e-300)
    return out


def covariance(info: np.ndarray) -> np.ndarray:
    """Cov(z) = info^-1 on the directions the data determine; along a direction v they
    do not (eigenvalue below NULL times the largest), the variance of each parameter
    with ``|v_k| > 0.1`` is infinite and the covariance of two of them is
    ``sign(v_k v_j) inf``."""
    w, V = np.linalg.eigh(info)
    null = w <= NULL * max(w.max(), 0.0)
    cov = (V[:, ~null] / w[~null]) @ V[:, ~null].T
    for v in V[:, null].T:
        moving = np.abs(v) > 0.1
        cov[np.ix_(moving, moving)] = np.sign(np.outer(v, v))[np.ix_(moving, moving)] * np.inf
    return cov


def _correlation(cov: np.ndarray) -> np.ndarray:
    """The correlation matrix of a covariance (+-1 where it is infinite)."""
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isinf(cov), np.sign(cov), cov / np.outer(sd, sd))


def _flag(
    lower: float,
    upper: float,
    corr: np.ndarray,
    names: list[str],
    k: int,
    networks: dict[str, float],
) -> str:
    """What limits the identifiability of free parameter `k` (see :func:`parameter_table`);
    `networks`: its correlation with each network's output level."""
    flags = []
    if not (np.isfinite(lower) and np.isfinite(upper)):
        flags.append("no finite interval")
    elif lower > 0 and upper / lower > WIDE:
        flags.append(f"interval spans {upper / lower:.3g}x")
    flags += [
        f"correlated with {names[j]} (r = {corr[j]:.2f})"
        for j in range(len(names))
        if j != k and abs(corr[j]) > CORRELATED
    ]
    flags += [
        f"trades off with network {name}'s output level (r = {r:.2f})"
        for name, r in networks.items()
        if abs(r) > CORRELATED
    ]
    return "; ".join(flags)


@eqx.filter_jit
def _intervals(model: HybridModel, sd_z: Float[Array, " n_free"]):
    """Every parameter's value, (n_parameters,), and per free parameter the slope
    ``d value / dz`` and the interval ``constrain(z -+ 1.96 sd_z)``, (n_free,) each (one
    compile, not one per operation and parameter)."""
    free = [p for p in model.structure.parameters if not p.fixed]
    z = [model.free[k] for k in range(len(free))]
    slope = [jax.grad(p.constrain)(zk) for p, zk in zip(free, z)]
    lower = [p.constrain(zk - Z95 * s) for p, zk, s in zip(free, z, sd_z)]
    upper = [p.constrain(zk + Z95 * s) for p, zk, s in zip(free, z, sd_z)]
    values = model.parameter_values()
    stack = lambda xs: jnp.stack(xs) if xs else jnp.zeros(0)  # noqa: E731
    return stack(list(values.values())), stack(slope), stack(lower), stack(upper)
