"""Values far out of a variable's others: a gap test, and the span without them.

Sorted, a variable's values are far out at the top if a few of them (k, at most
``m = max(1, n // 20)``) lie beyond a gap wider than ``FAR`` times the range of the
others (all but the lowest m, which may be absurd too), and likewise at the bottom;
the test repeats on what is left. One absurd value
(a typo, a unit slip, ``1e308``) is so far out; a smooth bioreactor trajectory's values
are not, however skewed they are.

Why not a robust z-score (distance from the median in interquartile ranges): in a
substrate-limited fed-batch most substrate values are near 0 and a few (the start of
each batch) large, so the quartiles sit near 0 and every batch's starting value would
score far out (all starting values of S in the E. coli and penicillin benchmark
families did, at 10 IQRs), and the loss scale would shrink to the near-zero values.

A value is judged against all values of its variable (every batch of the table),
not only its batch's: one batch has too few samples (often < 10) to judge by.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FAR", "far_out", "robust_span"]

FAR = 10.0  # a gap this many times the range of the other values sets values apart


def _inside(values: np.ndarray) -> tuple[float, float]:
    """``(lo, hi)``: the smallest and largest finite value of `values` not far out."""
    x = np.sort(values[np.isfinite(values)]).tolist()  # Python floats overflow to inf quietly
    if not x:
        return np.inf, -np.inf
    lo, hi = 0, len(x) - 1
    most = max(1, len(x) // 20)  # values that may be set apart at each end

    def apart(gap: float, rest: float) -> bool:  # a constant rest cannot judge
        return rest > 0 and gap > FAR * rest

    changed = True
    while changed and hi - lo >= 2:
        changed = False
        for k in range(1, min(most, hi - lo - 1) + 1):
            # the rest leaves out as many values at the other end (absurd at both ends)
            if apart(x[hi - k + 1] - x[hi - k], x[hi - k] - x[min(lo + most, hi - k)]):
                hi, changed = hi - k, True  # the top k
                break
            if apart(x[lo + k] - x[lo + k - 1], x[max(hi - most, lo + k)] - x[lo + k]):
                lo, changed = lo + k, True  # the bottom k
                break
    return x[lo], x[hi]


def far_out(values: np.ndarray) -> np.ndarray:
    """Which entries of the 1-D array `values` are far out (NaN: never)."""
    lo, hi = _inside(values)
    return np.isfinite(values) & ((values < lo) | (values > hi))


def robust_span(values: np.ndarray) -> float:
    """``max - min`` of the finite entries of `values` that are not far out (0 if none).

    Equals the plain range when no value is far out, so clean data are scaled as
    before; a single absurd value does not change it.
    """
    lo, hi = _inside(values)
    return max(hi - lo, 0.0)
