"""Study tables -> padded arrays that one vmapped, jitted solve can take.

Batches differ in sampling times, input changes and events. Every array is padded
to a shape bucket (the next power of two) so that a new batch count or sampling
pattern reuses the compiled solve unless it crosses a bucket boundary. Padded
batches copy the first batch and are masked out; padded times repeat a batch's
last time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .model import HybridModel
from .study import Study

__all__ = ["BatchData", "batch_data", "bucket"]

FAR = 1e30  # time of padded input changes: never reached


def bucket(n: int) -> int:
    """Smallest power of two >= n (and >= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


class BatchData(eqx.Module):
    """Padded per-batch arrays for B batches (B a bucket size), time points M, input
    change points K per input, events E.

    Attributes:
        names: real batch names (static); rows past ``len(names)`` are padding.
        initial: t=0 measurement of each state, NaN where absent, (B, n_states).
        constants: batch constants, (B, n_constants).
        input_times, input_values: change points of each continuous input,
            (B, n_inputs, K); padded with time FAR.
        event_times: (B, E), sorted; padding at the batch's end time.
        event_amounts: event-input values at those times, 0 where none, (B, E, n_events).
        times: output times, sorted, (B, M); padding repeats the last.
        mask: which output times are real, (B, M).
    """

    initial: Float[Array, "B n_states"]
    constants: Float[Array, "B n_constants"]
    input_times: Float[Array, "B n_inputs K"]
    input_values: Float[Array, "B n_inputs K"]
    event_times: Float[Array, "B E"]
    event_amounts: Float[Array, "B E n_events"]
    times: Float[Array, "B M"]
    mask: Bool[Array, "B M"]
    names: tuple[str, ...] = eqx.field(static=True)


def batch_data(
    model: HybridModel,
    study: Study,
    times: Mapping[str, Sequence[float]] | None = None,
) -> BatchData:
    """Arrays for every batch of `study`, checked against what `model` needs.

    Args:
        model: the model (fixes the order of states, inputs, constants, events).
        study: the data; see :class:`hybridxfer.Study`.
        times: output times per batch name; default: the batch's measurement times.

    Raises:
        StudyError: if the study lacks something the model needs.
    """
    study.check(model.study_needs())
    names = study.batch_names
    meas, inp = study.measurements, study.inputs
    n_states = len(model.state_names)
    per_batch = []
    for b in names:
        m = meas[meas["batch"] == b]
        u = inp[inp["batch"] == b]
        t0 = m[m["time"] == 0.0].set_index("variable")["value"]
        initial = np.array([t0.get(s, np.nan) for s in model.state_names], dtype=float)
        out_t = np.unique(np.asarray(times[b] if times is not None else m["time"], dtype=float))
        const = study.batches.set_index("batch").loc[b, list(model.constant_names)]
        signals = [u[u["variable"] == s].sort_values("time") for s in model.input_names]
        ev = u[u["variable"].isin(model.event_names)]
        ev_t = np.unique(ev["time"].to_numpy(float))
        amounts = np.zeros((len(ev_t), len(model.event_names)))
        for j, e in enumerate(model.event_names):
            rows = ev[ev["variable"] == e].groupby("time")["value"].sum()
            amounts[np.searchsorted(ev_t, rows.index.to_numpy(float)), j] = rows.to_numpy(float)
        per_batch.append((initial, np.asarray(const, dtype=float), signals, out_t, ev_t, amounts))

    B = bucket(len(names))
    K = bucket(
        max(
            [len(s) for *_, sig, _, _, _ in [(0, 0, p[2], 0, 0, 0) for p in per_batch] for s in sig]
            or [1]
        )
    )
    M = bucket(max(len(p[3]) for p in per_batch))
    E = max(len(p[4]) for p in per_batch)
    E = bucket(E) if E else 0
    n_in, n_ev = len(model.input_names), len(model.event_names)

    initial = np.full((B, n_states), np.nan)
    constants = np.zeros((B, len(model.constant_names)))
    in_t = np.full((B, n_in, K), FAR)
    in_v = np.zeros((B, n_in, K))
    ev_times = np.zeros((B, E))
    ev_amounts = np.zeros((B, E, n_ev))
    out_times = np.zeros((B, M))
    mask = np.zeros((B, M), dtype=bool)
    for i in range(B):
        init, const, signals, out_t, ev_t, amounts = per_batch[i if i < len(names) else 0]
        initial[i], constants[i] = init, const
        for j, s in enumerate(signals):
            k = len(s)
            in_t[i, j, :k] = s["time"].to_numpy(float)
            in_v[i, j, :k] = s["value"].to_numpy(float)
            in_v[i, j, k:] = in_v[i, j, k - 1]
        end = out_t[-1]
        ev_times[i] = end
        ev_times[i, : len(ev_t)] = np.minimum(ev_t, end)
        ev_amounts[i, : len(ev_t)] = amounts
        out_times[i] = end
        out_times[i, : len(out_t)] = out_t
        mask[i, : len(out_t)] = i < len(names)
    return BatchData(
        initial=jnp.asarray(initial),
        constants=jnp.asarray(constants),
        input_times=jnp.asarray(in_t),
        input_values=jnp.asarray(in_v),
        event_times=jnp.asarray(ev_times),
        event_amounts=jnp.asarray(ev_amounts),
        times=jnp.asarray(out_times),
        mask=jnp.asarray(mask),
        names=tuple(names),
    )


def input_values_at(
    t: Float[Array, ""],
    times: Float[Array, "n_inputs K"],
    values: Float[Array, "n_inputs K"],
    linear: tuple[bool, ...],
) -> Float[Array, " n_inputs"]:
    """Value of each input at time t: zero-order hold (right-continuous) or linear."""
    if not linear:
        return jnp.zeros((0,))
    idx = jnp.clip(jnp.sum(times <= t, axis=-1) - 1, 0, times.shape[-1] - 1)
    held = jnp.take_along_axis(values, idx[:, None], axis=-1)[:, 0]
    if not any(linear):
        return held
    nxt = jnp.minimum(idx + 1, times.shape[-1] - 1)
    t0 = jnp.take_along_axis(times, idx[:, None], axis=-1)[:, 0]
    t1 = jnp.take_along_axis(times, nxt[:, None], axis=-1)[:, 0]
    v1 = jnp.take_along_axis(values, nxt[:, None], axis=-1)[:, 0]
    w = jnp.clip((t - t0) / jnp.where(t1 > t0, t1 - t0, 1.0), 0.0, 1.0)
    interp = held + w * (v1 - held)
    return jnp.where(jnp.asarray(linear), interp, held)
