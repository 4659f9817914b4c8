"""Rates along simulated trajectories: every named rate and network factor of a model
evaluated at the states of its own solve (what the networks learned, in context)."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
import pandas as pd
from jaxtyping import Array, Float

from .._core.model import HybridModel
from .._data.batch_data import BatchData, batch_data, input_values_at
from .._data.study import Study
from .batches import solve
from .solver import DEFAULT

__all__ = ["rates_along"]


def rates_along(
    model: HybridModel, study: Study, points: int = 101, mechanistic: bool = False
) -> pd.DataFrame:
    """Every named rate and network factor along each batch's simulated trajectory.

    Each batch of `study` is solved with the default :class:`~hybridxfer.Solver` at
    `points` equally spaced times from 0 to its last row's time
    (:meth:`~hybridxfer.Study.end_time`), and every rate of the model's ``[rates]`` is
    evaluated at those states, inputs and constants.

    Args:
        model: the model whose rates to evaluate.
        study: the batches (initial values, inputs, constants) to simulate.
        points: output times per batch.
        mechanistic: set every network factor to 1 first, giving the mechanistic part
            of each rate (what the networks correct).

    Returns:
        Long table ``batch, time, rate, value``: ``points`` rows per batch and rate,
        values in the rate's own unit per the model's time unit.
    """
    times = {b: np.linspace(0.0, study.end_time(b), points) for b in study.batch_names}
    data = batch_data(model, study, times)
    ys = solve(model, data, DEFAULT)[0][..., : len(model.state_names)]
    rates = _rates_at(model, data, ys, mechanistic)
    n = len(study.batch_names)
    frames = []
    for name, values in rates.items():
        v = np.broadcast_to(np.asarray(values), data.times.shape)[:n]
        t, m = np.asarray(data.times)[:n], np.asarray(data.mask)[:n]
        b = np.repeat(np.asarray(study.batch_names, dtype=object)[:, None], t.shape[1], axis=1)
        frames.append(pd.DataFrame(dict(batch=b[m], time=t[m], rate=name, value=v[m])))
    return pd.concat(frames, ignore_index=True)


@eqx.filter_jit
def _rates_at(
    model: HybridModel, data: BatchData, ys: Float[Array, "B M n_states"], mechanistic: bool
) -> dict[str, Float[Array, "B M"]]:
    """Every named rate at each batch's output times and states (compiled once per
    model structure, shape and `mechanistic`; a closure would compile on every call)."""
    replace = dict.fromkeys(model.networks, 1.0) if mechanistic else None

    def at(t, y, it, iv, c):
        return model.rates(t, y, input_values_at(t, it, iv, model.linear_inputs), c, replace)

    per_point = jax.vmap(at, in_axes=(0, 0, None, None, None))
    return jax.vmap(per_point)(data.times, ys, data.input_times, data.input_values, data.constants)
