"""Values far out of a variable's distribution: robust fences and a robust span.

The fences of a sample are ``[q25 - FAR * s, q75 + FAR * s]``, with q25, q75 its
quartiles and s its interquartile range (or, where more than half of the values are
equal, the 10-90% range, then the full range). With ``FAR = 10`` a value outside lies
at a robust z-score ``|v - median| / (s / 1.349)`` above 13: no plausible sample of a
smooth bioreactor trajectory has one (every value of the built-in studies lies
inside), while one absurd value (a typo, a unit slip, ``1e308``) does.

A value is judged against all values of its variable (every batch of the table),
not only its batch's: one batch has too few samples (often < 10) for robust
quartiles.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FAR", "far_out", "robust_span"]

FAR = 10.0  # interquartile ranges beyond the quartiles


def _fences(values: np.ndarray) -> tuple[float, float]:
    """``(lo, hi)`` of the finite entries of `values` (see the module docstring)."""
    x = values[np.isfinite(values)]
    if x.size == 0:
        return -np.inf, np.inf
    q10, q25, q75, q90 = np.quantile(x, [0.1, 0.25, 0.75, 0.9])
    spread = next((s for s in (q75 - q25, q90 - q10, x.max() - x.min()) if s > 0), 0.0)
    return q25 - FAR * spread, q75 + FAR * spread


def far_out(values: np.ndarray) -> np.ndarray:
    """Which entries of the 1-D array `values` lie outside its fences (NaN: never)."""
    lo, hi = _fences(values)
    return np.isfinite(values) & ((values < lo) | (values > hi))


def robust_span(values: np.ndarray) -> float:
    """``max - min`` of the finite entries of `values` inside their fences (0 if none).

    Equals the plain range when no value is far out, so clean data are scaled as
    before; a single absurd value changes it by at most the spread of the rest.
    """
    inside = values[np.isfinite(values) & ~far_out(values)]
    return float(inside.max() - inside.min()) if inside.size else 0.0
