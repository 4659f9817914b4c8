r"""What the twin keeps of each update (:class:`Snapshot`), and what an adaptive twin
learns of a state's process noise on the running batch (:class:`Learned`).

A sample z of state i (sd r), dt after its previous one, with innovation :math:`\nu`
and predicted variance S (before any inflation), asks for the process noise

.. math:: g = q_i^2 + (\nu^2 - S) / (x_i^2\,dt), \quad x_i = \max(|\hat x_i|, |\nu|, r)

(the :math:`q^2` under which :math:`E[\nu^2]` would have been S, as the variance
:math:`x^2 q^2 dt` that q adds over dt: covariance matching). The scale x is the
predicted value :math:`\hat x_i`, the relative innovation :math:`|\nu| / x` being at
most 1 (and x at least the sample's sd r): a relative noise vanishes with its state, so
a state predicted at 0 that a sample finds above it would otherwise ask for a q without
bound (acetate predicted at 2e-9 g/L and sampled at 0.06 asked for q = 8e6 per
sqrt(h); once acetate rose, the band of every state it drives exploded), where now
:math:`g \le q_i^2 + 1/dt`. Once the batch's m
samples of the state together reject its predicted variance (:math:`\sum \nu^2/S`
beyond the 95% chi-square quantile with m degrees of freedom), the twin runs with
:math:`q_i^2 = \max(q_{0,i}^2, (q_{0,i}^2 + \sum g) / (1 + m))`: the mean of the
samples' g with the fit's :math:`q_0` counted as one of them, never below :math:`q_0`.
The test and the floor keep a consistent twin's bands as they are: a few samples'
chi-square scatter would otherwise widen or narrow them at random (a correctly
specified twin's mean NIS: 0.89 with the floor alone, 1.23 with neither).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Array, Float

from .._uncertainty.noise import Z95_ONE_SIDED, chi2_quantile

__all__ = ["Learned", "Record", "Snapshot"]


@dataclass(frozen=True)
class Learned:
    """Per state, what the batch's samples asked of its process noise so far."""

    asked: np.ndarray  # the sum of the samples' g, (n_states,)
    samples: np.ndarray  # the number m of samples
    surprise: np.ndarray  # the sum of the samples' nu^2 / S

    @classmethod
    def nothing(cls, n_states: int) -> Learned:
        return cls(*np.zeros((3, n_states)))

    def q(self, q0: np.ndarray) -> np.ndarray:
        """Each state's q for the next interval, from the fit's `q0` (see the module)."""
        off = self.surprise > chi2_quantile(np.maximum(self.samples, 1), Z95_ONE_SIDED)
        pooled = np.maximum(q0**2, (q0**2 + self.asked) / (1 + self.samples))
        return np.sqrt(np.where(off, pooled, q0**2))

    def after(self, q, nu, var, predicted, sd, dt, sampled) -> Learned:
        """With the samples of one update: per state the q in use, the innovation, its
        predicted variance, the predicted value, the sample's sd, the time since the
        state's previous sample, and whether it was sampled (and learns)."""
        scale = np.maximum.reduce([np.abs(predicted), np.abs(nu), sd])
        sampled = sampled & (scale > 0)
        x = np.where(sampled, scale, 1.0)
        g = q**2 + (nu**2 - var) / (x**2 * dt)
        return Learned(
            self.asked + np.where(sampled, g, 0.0),
            self.samples + sampled,
            self.surprise + np.where(sampled, nu**2 / var, 0.0),
        )


@dataclass(frozen=True)
class Snapshot:
    """The filter after processing the record at `time`: the mean s and covariance P of
    the states and batch-parameter deviations."""

    time: float
    s: Float[Array, " n_s"]
    P: Float[Array, "n_s n_s"]
    u: np.ndarray  # held continuous inputs, (n_inputs,)
    last: np.ndarray  # when each variable was last measured, (n_vars,)
    learned: Learned  # of the states' process noise, from the batch's samples
    nis: float = 0.0  # normalised innovation squared of the update's measurements
    measured: int = 0  # number of measured values in the update
    inflation: float = 1.0  # factor the update inflated the predicted covariance by


@dataclass(frozen=True)
class Record:
    """What arrived for `time`: measured variables and inputs, and their sds."""

    time: float
    values: Mapping[str, float]
    sd: Mapping[str, float] = field(default_factory=dict)
