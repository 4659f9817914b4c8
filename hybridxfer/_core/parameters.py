"""Named mechanistic parameters with units, bounds and a positivity-preserving parametrisation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = ["Parameter", "ParameterError", "constrain_all"]


class ParameterError(ValueError):
    """An invalid parameter declaration."""


@dataclass(frozen=True)
class Parameter:
    """A mechanistic parameter.

    Optimisers work on an unconstrained value z; the physical value is

    - positive (default): ``value = exp(z)``;
    - positive with bounds [lo, hi]: ``value = lo * (hi/lo)**sigmoid(z)`` (log-uniform);
    - real (``positive=False``): ``value = z``, or ``lo + (hi - lo) * sigmoid(z)`` with bounds.

    Attributes:
        name: identifier used in expressions.
        value: initial (or fitted) value, in `unit`.
        unit: physical unit, e.g. ``"1/h"``; ``"1"`` for dimensionless. Required.
        bounds: optional (lo, hi) with lo < value < hi.
        fixed: if True the value is a constant, never fitted.
        positive: if True (default) the value is kept > 0 by a log parametrisation.
        process_specific: if True the parameter may differ between processes
            (refit on transfer); otherwise it is shared.
        batch_sd: if given, the parameter varies from batch to batch (a random
            effect): batch b has ``z + d_b`` with prior ``d_b ~ N(0, batch_sd^2)`` in
            unconstrained units (for an unbounded positive parameter, about a relative
            sd: 0.1 = 10%). A fit estimates d_b for each training batch; a prediction
            for a new batch uses z; a :class:`~hybridxfer.DigitalTwin` estimates d_b
            online.
    """

    name: str
    value: float
    unit: str
    bounds: tuple[float, float] | None = None
    fixed: bool = False
    positive: bool = True
    process_specific: bool = False
    batch_sd: float | None = None

    def __post_init__(self):
        if not self.unit or not isinstance(self.unit, str):
            raise ParameterError(
                f'parameter {self.name!r} has no unit; give one, e.g. unit = "1/h" '
                '(use "1" for dimensionless)'
            )
        v = float(self.value)
        if not np.isfinite(v):
            raise ParameterError(f"parameter {self.name!r}: value {self.value!r} is not finite")
        if self.positive and v <= 0:
            raise ParameterError(
                f"parameter {self.name!r}: value {v} must be > 0 (declare positive = false "
                "for a parameter that may be zero or negative)"
            )
        if self.bounds is not None:
            lo, hi = (float(b) for b in self.bounds)
            if not lo < hi or (self.positive and lo <= 0):
                raise ParameterError(
                    f"parameter {self.name!r}: bounds {list(self.bounds)} must satisfy "
                    f"{'0 < ' if self.positive else ''}lo < hi"
                )
            if not lo < v < hi:
                raise ParameterError(
                    f"parameter {self.name!r}: value {v} lies outside its bounds [{lo}, {hi}]"
                )
            object.__setattr__(self, "bounds", (lo, hi))
        object.__setattr__(self, "value", v)
        if self.batch_sd is not None and (self.fixed or not float(self.batch_sd) > 0):
            raise ParameterError(
                f"parameter {self.name!r}: batch_sd must be > 0, on a parameter that is not fixed"
            )

    def constrain(self, z: Float[Array, ""]) -> Float[Array, ""]:
        """Physical value from the unconstrained value `z` (:func:`constrain_all`)."""
        return constrain_all((self,), jnp.reshape(z, (1,)))[0]

    def unconstrain(self, value: float) -> float:
        """Unconstrained value z with ``constrain(z) == value``."""
        v = float(value)
        if self.bounds is None:
            return float(np.log(v)) if self.positive else v
        lo, hi = self.bounds
        u = np.log(v / lo) / np.log(hi / lo) if self.positive else (v - lo) / (hi - lo)
        return float(np.log(u) - np.log1p(-u))


def constrain_all(parameters: Sequence[Parameter], z: Float[Array, " n"]) -> Float[Array, " n"]:
    """Physical values of `parameters` from their unconstrained values `z`, all at once
    (one exp and one sigmoid for the vector, not one per parameter: a smaller compiled
    program). With ``s = sigmoid(z)`` for a bounded parameter and ``s = z`` otherwise,
    ``u = a + b s`` and the value is ``exp(u)`` if positive, else ``u``, where
    ``(a, b) = (log lo, log(hi/lo))`` (positive) or ``(lo, hi - lo)`` (real) for bounds
    [lo, hi], and ``(0, 1)`` without: the parametrisations of :class:`Parameter`."""
    bounded = np.array([p.bounds is not None for p in parameters])
    positive = np.array([p.positive for p in parameters])
    a, b = np.zeros(len(parameters)), np.ones(len(parameters))
    for i, p in enumerate(parameters):
        if p.bounds is not None:
            lo, hi = p.bounds
            a[i], b[i] = (np.log(lo), np.log(hi / lo)) if p.positive else (lo, hi - lo)
    z = jnp.asarray(z)
    # the unused branch of each where gets a harmless argument: an inf there would
    # make the gradient NaN
    s = jnp.where(bounded, jax.nn.sigmoid(jnp.where(bounded, z, 0.0)), z)
    u = a + b * s
    return jnp.where(positive, jnp.exp(jnp.where(positive, u, 0.0)), u)
