"""Array-level tools, for power users and benchmarks: a study as padded arrays, and
the batched solve that :func:`hybridxfer.simulate` wraps.

Example:
    >>> import hybridxfer.arrays as hxa
    >>> data = hxa.batch_data(model, study, times)  # doctest: +SKIP
    >>> ys, ok = hxa.solve(model, data, hx.Solver())  # doctest: +SKIP
"""

from ._data.batch_data import BatchData, batch_data
from ._solve import solve

__all__ = ["BatchData", "batch_data", "solve"]
