r"""The measurement noise, told apart from model error in a fit's residuals.

A residual of variable v, scaled as the bands scale it (:mod:`.bands`),
:math:`r = (y - \hat y) / s_v(\hat y)`, is the model's error plus the measurement's
noise. Within a batch the model's error changes smoothly with time, the noise does not.
So the scaled residuals :math:`r_b` of each batch b (at its times :math:`t_b`) are
modelled as

.. math::

    r_b \sim N\big(0,\; v\,[(1 - \lambda) K_\tau + \lambda I]\big),\qquad
    (K_\tau)_{ij} = e^{-|t_i - t_j| / \tau},

a model error with variance :math:`(1-\lambda) v` and correlation time τ, plus white
noise with variance :math:`\sigma^2 = \lambda v`. The likelihood of all batches is
maximised over τ and λ on a grid (τ from 0.05 to 200 sampling intervals, λ in steps of
0.01), v in closed form (:math:`\hat v = \frac1N \sum_b r_b^\top C_b^{-1} r_b`). A
batch's training and held-out residuals are separate groups (a transfer holds a
batch out in one member and trains on it in another); a batch of more than
:data:`CHUNK` points is taken in runs of that many. Where the model's error does
not vary smoothly at the sampling interval, the two cannot be told apart and σ comes
out small: the state band then stays close to the measurement band, on the cautious
side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "chi2_quantile",
    "measurement_sd",
    "noise_scale",
    "scaled_residuals",
    "upper_mean_square",
    "with_noise",
    "Z95_ONE_SIDED",
]

FLOOR = 0.05
Z95_ONE_SIDED = 1.6448536269514722  # the standard normal's 95% quantile
CHUNK = 200  # a longer batch is taken in runs of this many points (eigh costs n^3)
TAUS = np.geomspace(0.05, 200.0, 30)  # in median sampling intervals
LAMBDAS = np.linspace(0.0, 1.0, 101)


def scaled_residuals(calibration: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per variable its rows at t > 0 with the floor ``f = FLOOR * range(measured)``
    and the scaled residual ``r = (measured - predicted) / (|predicted| + f)``."""
    out = {}
    calibration = calibration[calibration["time"] > 0]
    for variable, part in calibration.groupby("variable", sort=False):
        measured = part["measured"].to_numpy(float)
        floor = FLOOR * max(np.ptp(measured), np.finfo(float).tiny)
        predicted = part["predicted"].to_numpy(float)
        r = (measured - predicted) / (abs(predicted) + floor)
        out[variable] = part.assign(floor=floor, r=r)
    return out


def noise_scale(calibrations: Sequence[pd.DataFrame]) -> Mapping[str, float]:
    """The white-noise sd σ of each variable's scaled residuals (see the module),
    estimated from the batches of all the given calibration tables together (each
    scaled by its own floor). Variables without a batch of two or more finite
    residuals are absent."""
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for table in calibrations:
        for variable, part in scaled_residuals(table).items():
            part = part[np.isfinite(part["r"])]
            for _, g in part.groupby(["batch", "heldout"], sort=False):
                g = g.sort_values("time")
                for start in range(0, len(g) - 1, CHUNK):
                    run = g.iloc[start : start + CHUNK]
                    if len(run) > 1:
                        groups.setdefault(variable, []).append(
                            (run["time"].to_numpy(float), run["r"].to_numpy(float))
                        )
    return {v: _sigma(g) for v, g in groups.items()}


def _sigma(groups: list[tuple[np.ndarray, np.ndarray]]) -> float:
    spacing = np.median(np.concatenate([np.diff(np.sort(t)) for t, _ in groups]))
    spacing = spacing if spacing > 0 else 1.0
    n = sum(len(r) for _, r in groups)
    best, sigma2 = np.inf, 0.0
    for tau in TAUS * spacing:
        quad = np.zeros_like(LAMBDAS)
        logdet = np.zeros_like(LAMBDAS)
        for t, r in groups:
            # C = (1 - lam) K + lam I shares K's eigenvectors: eigenvalues (1-lam) e + lam
            e, u = np.linalg.eigh(np.exp(-abs(t[:, None] - t[None, :]) / tau))
            c = (1 - LAMBDAS[:, None]) * np.maximum(e, 0.0)[None] + LAMBDAS[:, None]
            c = np.maximum(c, 1e-12)
            quad += ((u.T @ r) ** 2 / c).sum(axis=1)
            logdet += np.log(c).sum(axis=1)
        v = np.maximum(quad / n, 1e-300)
        nll = n * np.log(v) + logdet
        k = int(np.argmin(nll))
        if nll[k] < best - 1e-9:
            best, sigma2 = nll[k], LAMBDAS[k] * v[k]
    return float(np.sqrt(sigma2))


def with_noise(calibration: pd.DataFrame, *others: pd.DataFrame | None) -> pd.DataFrame:
    """`calibration` with a ``noise`` column: each row's measurement noise sd,
    ``sigma_v * (|predicted| + f_v)``, with σ estimated from `calibration` and the
    `others` together (e.g. a transfer's source fit: the same assays measured its
    batches, and its many batches tell noise from model error better than 1-3
    target batches do). NaN for variables without an estimate."""
    sigma = noise_scale([calibration, *(o for o in others if o is not None)])
    floor = {v: p["floor"].iloc[0] for v, p in scaled_residuals(calibration).items()}
    scale = np.abs(calibration["predicted"].to_numpy(float)) + calibration["variable"].map(
        floor
    ).to_numpy(float)
    return calibration.assign(noise=calibration["variable"].map(sigma).to_numpy(float) * scale)


def measurement_sd(calibration: pd.DataFrame) -> np.ndarray:
    """Each row's measurement noise sd [the variable's unit]: the study's declared
    ``sd``, else the table's ``noise`` column (a transfer's pooled estimate), else
    estimated from the table's own residuals (:func:`with_noise`); NaN for a variable
    without any."""
    n = len(calibration)
    sd = calibration["sd"].to_numpy(float) if "sd" in calibration else np.full(n, np.nan)
    if "noise" in calibration:
        sd = np.where(np.isfinite(sd), sd, calibration["noise"].to_numpy(float))
    if not np.isfinite(sd).all():
        estimate = with_noise(calibration.drop(columns="noise", errors="ignore"))["noise"]
        sd = np.where(np.isfinite(sd), sd, estimate.to_numpy(float))
    return sd


def chi2_quantile(k, z: float):
    """The chi-square quantile with k degrees of freedom at the normal quantile z
    (z = 1.645: 95%, z = -1.645: 5%), by Wilson-Hilferty:
    ``k (1 - 2/(9k) + z sqrt(2/(9k)))^3``; within 1% for k >= 10, within 3% at k = 1.
    Plain arithmetic: k may be a number or a (traced) JAX array."""
    return k * (1 - 2 / (9 * k) + z * (2 / (9 * k)) ** 0.5) ** 3


def upper_mean_square(mean_square: float, n: int) -> float:
    """The one-sided 95% upper bound on a mean square of n errors,
    ``n m / chi2_0.05(n)`` (:func:`chi2_quantile`): with few errors their mean square
    is itself uncertain, and what is subtracted from it (the noise) should not take the
    bound to 0 by chance."""
    return mean_square * n / chi2_quantile(n, -Z95_ONE_SIDED)
