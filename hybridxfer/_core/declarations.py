"""Declarations of a model's variables (states, inputs, batch constants, observations),
and the error of an inconsistent declaration."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = ["Constant", "Input", "ModelError", "Observation", "State", "checked_range"]

UNBOUNDED = (-math.inf, math.inf)


class ModelError(ValueError):
    """An inconsistent model declaration.

    Attributes:
        where: dotted location of the declaration, e.g. ``"rates.mu"`` (model files
            turn it into a line number).
    """

    def __init__(self, message: str, where: str = ""):
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


@dataclass(frozen=True)
class State:
    """A balanced state variable (a concentration, or a titre).

    Attributes:
        name: identifier, also the ``variable`` name in measurements.
        unit: physical unit, e.g. ``"1e9 cells/L"``.
        initial: where the value at t=0 comes from: None = the t=0 measurement of
            each batch; a number; ``"estimate"`` = fitted per batch (starting from
            the t=0 measurement if any, else `guess`); or an expression over
            batch constants and parameters, e.g. ``"X0"``.
        guess: starting value of an estimated initial value without a measurement.
        range: ``(lo, hi)``, the physically possible values [unit]; measurements
            outside it are refused. Default ``(0, inf)``: concentrations, cell densities
            and titres are non-negative. ``(-inf, inf)`` allows any value.
    """

    name: str
    unit: str
    initial: float | str | None = None
    guess: float = 0.0
    range: tuple[float, float] = (0.0, math.inf)

    def __post_init__(self):
        object.__setattr__(self, "range", checked_range(self.range))


@dataclass(frozen=True)
class Input:
    """A time-varying input from ``inputs.csv`` (control or online signal).

    Attributes:
        name: identifier and ``variable`` name in inputs.
        unit: physical unit.
        interpolation: ``"zero-order"`` (hold each value until the next) or ``"linear"``.
    """

    name: str
    unit: str
    interpolation: str = "zero-order"


@dataclass(frozen=True)
class Constant:
    """A per-batch constant: a column of ``batches.csv`` (feed concentration, scale...).

    Attributes:
        name: identifier and column name.
        unit: physical unit.
    """

    name: str
    unit: str


@dataclass(frozen=True)
class Observation:
    """A measured signal that is a function of the state: the observation equation
    ``name = expression``, e.g. the oxygen uptake rate ``OUR = (a_O2 * mu + b_O2) * Xv``.

    The expression reads states, rates, network factors, inputs, batch constants,
    parameters and t. Measurements of `name` in a study are fitted like states'
    (parameters of the expression are fitted with the rest), and a
    :class:`~hybridxfer.DigitalTwin` assimilates them.

    Attributes:
        name: identifier, also the ``variable`` name in measurements and streams.
        unit: physical unit, e.g. ``"mmol/(L h)"``.
        expression: the observation equation's right-hand side.
        sd: typical measurement standard deviation [unit], the digital twin's default.
        range: ``(lo, hi)``, the physically possible values [unit]; measurements
            outside it are refused. Default: any value.
    """

    name: str
    unit: str
    expression: str
    sd: float | None = None
    range: tuple[float, float] = UNBOUNDED

    def __post_init__(self):
        object.__setattr__(self, "range", checked_range(self.range))
        if self.sd is not None and not self.sd > 0:
            raise ValueError(f"sd must be > 0, got {self.sd}")


def checked_range(bounds) -> tuple[float, float]:
    """`bounds` as a ``(lo, hi)`` pair of floats with ``lo < hi`` (either may be infinite).

    Raises:
        ValueError: not two numbers, a NaN, or ``lo >= hi``.
    """
    pair = tuple(bounds) if isinstance(bounds, list | tuple) else ()
    if len(pair) != 2 or not all(
        isinstance(x, numbers.Real) and not isinstance(x, bool) for x in pair
    ):
        raise ValueError(f"range must be [lo, hi] (two numbers), got {bounds!r}")
    lo, hi = (float(x) for x in pair)
    if not lo < hi:
        raise ValueError(f"range must be [lo, hi] with lo < hi, got [{lo:g}, {hi:g}]")
    return lo, hi
