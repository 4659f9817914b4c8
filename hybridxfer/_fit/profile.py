"""Profile likelihood of one parameter: how much worse the fit gets as the parameter is
moved and everything else the data can adjust follows it (as COPASI and pyFOOMB
offer). Where the Laplace interval (:func:`~.intervals.parameter_table`) assumes the
fit is locally quadratic, the profile follows it as far as the data bound the
parameter, and shows a side they do not bound.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats

from .._core.model import HybridModel
from .._data.study import Study
from .._solve import INTERVALS, Solver
from .config import FitResult
from .intervals import covariance, noise_variances, residual_problem

__all__ = ["profile_likelihood"]

STEPS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0)  # in Laplace sds of z_j
UNIT_STEP = 0.5  # the step in z where the Laplace sd is 0 or infinite
PAST = 1.5  # a side stops once the profile passes this many times the threshold


def profile_likelihood(
    fit: FitResult | HybridModel,
    parameter: str,
    study: Study | None = None,
    *,
    initial: pd.DataFrame | None = None,
    level: float = 0.95,
    solver: Solver = INTERVALS,
) -> pd.DataFrame:
    """The profile likelihood of free `parameter` of a fit (or fitted model) on `study`.

    With u the free parameters' unconstrained values z and each network's output
    shift (its last layer's bias; network weights and estimated initial values held at
    their fitted values, as for the parameter table), e(u) every observation's scaled
    residual over its variable's residual sd sigma_v at the fit, and S(u) = |e(u)|^2
    (-2 log-likelihood up to a constant):

        PL(z_j) = min over the other u of S(u),        Delta(z_j) = PL(z_j) - min_u S(u).

    Delta is a likelihood-ratio statistic, chi-square with 1 degree of freedom: the
    profile interval at `level` is where Delta <= chi2_1(level) (3.84 at 95%). From
    the optimum (S minimised over all of u first, from the fit) the profile walks out
    on each side in steps of :data:`STEPS` times h, the Laplace sd of z_j with the
    networks' output levels free (:data:`UNIT_STEP` where that is 0 or infinite), each
    point minimised by scipy's trust-region least squares with the exact Jacobian,
    starting from its neighbour's optimum. A side stops once Delta passes
    :data:`PAST` times the threshold; a side where it never reaches the threshold is
    *open*: the data do not bound the parameter there, and the interval's end is the
    parameter's bound (0 or infinity without one).

    Args:
        fit: a fit (its model, estimated initial states and fitted batches are used) or
            a fitted model.
        parameter: the name of a free parameter.
        study: the batches the model was fitted to (default: the fit's own; a saved
            fit does not keep them).
        initial: a model's estimated initial states (``FitResult.initial``), if any.
        level: the interval's confidence level.

    Returns:
        Table ``value`` (the parameter, in its unit), ``z`` (unconstrained), ``delta``
        (inf where a solve failed), sorted by value. ``attrs``: ``parameter, unit,
        estimate, lower, upper`` (the interval, interpolated linearly in z),
        ``level, threshold``, ``open`` (the sides the data do not bound: "lower",
        "upper").

    Raises:
        ValueError: `parameter` is not a free parameter of the model; `level` not in
            (0, 1); no `study` for a model or a saved fit.
    """
    if isinstance(fit, FitResult):
        model, initial, study = fit.model, fit.initial, study or fit.fitted
    else:
        model = fit
    if study is None:
        raise ValueError(
            "profile_likelihood: give the batches the model was fitted to (study): "
            "a model, or a fit read from a saved model, does not keep them"
        )
    free = [p for p in model.structure.parameters if not p.fixed]
    names = [p.name for p in free]
    if parameter not in names:
        raise ValueError(
            f"profile_likelihood: {parameter!r} is not a free parameter of model "
            f"{model.name!r} (free: {', '.join(names) or 'none'})"
        )
    if not 0 < level < 1:
        raise ValueError(f"profile_likelihood: level must lie in (0, 1), not {level}")
    j, p = names.index(parameter), free[names.index(parameter)]
    threshold = float(scipy.stats.chi2.ppf(level, 1))
    jr, u0, weight, _ = residual_problem(model, study, initial, solver)
    sigma = np.sqrt(noise_variances(jr(u0)[1], weight, len(free)))
    use = weight & np.isfinite(sigma)
    cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def evaluate(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """e(u) and its Jacobian (one solve with tangents, kept for the same u)."""
        key = u.tobytes()
        if key not in cache:
            J, r = jr(u)
            e, Je = (r / sigma)[use], (J / sigma[:, None])[use]
            ok = np.isfinite(e).all() and np.isfinite(Je).all()
            cache.clear()  # least_squares asks for the Jacobian where it last evaluated
            cache[key] = (e, Je) if ok else (np.full(e.shape, np.inf), np.zeros(Je.shape))
        return cache[key]

    def minimise(u: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, float]:
        """u with its values where `keep` minimising S from `u`; S there."""

        def residual(x):
            e = evaluate(_put(u, keep, x))[0]
            return np.where(np.isfinite(e), e, 1e100)

        def jacobian(x):
            return evaluate(_put(u, keep, x))[1][:, keep]

        e = evaluate(u)[0]
        if not (np.isfinite(e).all() and keep.any()):  # a failed solve; nothing to adjust
            return u, float(np.sum(e**2))
        sol = scipy.optimize.least_squares(
            residual, u[keep], jac=jacobian, method="trf", x_scale="jac", ftol=1e-12, xtol=1e-12
        )
        best = _put(u, keep, sol.x)
        return best, float(np.sum(evaluate(best)[0] ** 2))

    u_star, s_star = minimise(u0, np.ones(len(u0), bool))
    Je = evaluate(u_star)[1]
    h = math.sqrt(max(covariance(Je.T @ Je)[j, j], 0.0))
    h = h if math.isfinite(h) and h > 0 else UNIT_STEP
    points = [(u_star[j], s_star)]
    others = np.arange(len(u0)) != j
    for side in (-1.0, 1.0):
        u = u_star
        for step in STEPS:
            u = u.copy()
            u[j] = u_star[j] + side * step * h
            u, s = minimise(u, others)
            points.append((u[j], s))
            if not s - min(x for _, x in points) <= PAST * threshold:
                break
    z, s = np.array(points).T
    delta = s - s.min()
    order = np.argsort(z)
    z, delta = z[order], delta[order]
    values = np.array([float(p.constrain(jnp.asarray(x))) for x in z])
    best = float(z[np.argmin(delta)])
    lower, upper = (_crossing(z, delta, best, threshold, d) for d in (-1, 1))
    out = pd.DataFrame(dict(value=values, z=z, delta=delta))
    out.attrs |= dict(parameter=parameter, unit=p.unit, level=level, threshold=threshold)
    out.attrs |= dict(
        estimate=float(p.constrain(jnp.asarray(best))),
        lower=float(p.constrain(jnp.asarray(lower))),
        upper=float(p.constrain(jnp.asarray(upper))),
        open=[name for name, end in (("lower", lower), ("upper", upper)) if math.isinf(end)],
    )
    return out


def _put(u: np.ndarray, keep: np.ndarray, x: np.ndarray) -> np.ndarray:
    out = u.copy()
    out[keep] = x
    return out


def _crossing(z: np.ndarray, delta: np.ndarray, z0: float, threshold: float, side: int) -> float:
    """Where the profile first reaches `threshold` walking from `z0` to `side` (-1, +1),
    linear in z between the points around it; -inf / inf if it never does."""
    order = np.argsort(side * (z - z0))
    z, delta = z[order], delta[order]
    z, delta = z[side * (z - z0) >= 0], delta[side * (z - z0) >= 0]
    for k in range(1, len(z)):
        if delta[k] >= threshold:  # (a failed solve, inf: at its neighbour)
            f = (threshold - delta[k - 1]) / (delta[k] - delta[k - 1])
            return float(z[k - 1] + f * (z[k] - z[k - 1]))
    return side * math.inf
