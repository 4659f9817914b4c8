"""Study tables -> padded arrays that one vmapped, jitted solve can take.

Batches differ in sampling times, input changes and events. Every array is padded
to a shape bucket (the next power of two) so that a new batch count or sampling
pattern reuses the compiled solve unless it crosses a bucket boundary. Padded
batches copy the first batch and are masked out; padded times repeat a batch's
last time. The arrays carry no names (names would be static and force a
recompile per study): row i is ``study.batch_names[i]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._core.model import HybridModel
from .study import Study, StudyError, StudyNeeds

__all__ = ["BatchData", "batch_data", "bucket"]

FAR = 1e30  # time of padded input changes: never reached


def bucket(n: int) -> int:
    """Smallest power of two >= n (and >= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


class BatchData(eqx.Module):
    """Padded per-batch arrays for B batches (B a bucket size), time points M, input
    change points K per input, events E. Row i is the i-th batch of the study it was
    made from; rows past the study's batch count are padding (``mask`` all False).

    Attributes:
        initial: t=0 measurement of each state, NaN where absent, (B, n_states).
        constants: batch constants, (B, n_constants).
        input_times, input_values: change points of each continuous input,
            (B, n_inputs, K); padded with time FAR.
        event_times: (B, E), sorted; padding at the batch's end time.
        event_amounts: event-input values at those times, 0 where none, (B, E, n_events).
        times: output times, sorted, (B, M); padding repeats the last.
        mask: which output times are real, (B, M).
        values: measured value of each variable (``model.variable_names``: states,
            then observations) at each output time, NaN where not measured, (B, M, n_vars).
        sd: measurement standard deviation where given, else NaN, (B, M, n_vars).
        process: index of each batch's process in ``study.processes``, (B,).
    """

    initial: Float[Array, "B n_states"]
    constants: Float[Array, "B n_constants"]
    input_times: Float[Array, "B n_inputs K"]
    input_values: Float[Array, "B n_inputs K"]
    event_times: Float[Array, "B E"]
    event_amounts: Float[Array, "B E n_events"]
    times: Float[Array, "B M"]
    mask: Bool[Array, "B M"]
    values: Float[Array, "B M n_vars"]
    sd: Float[Array, "B M n_vars"]
    process: Int[Array, " B"]


def batch_data(
    model: HybridModel,
    study: Study,
    times: Mapping[str, Sequence[float]] | None = None,
) -> BatchData:
    """Arrays for every batch of `study` (in ``study.batch_names`` order), checked
    against what `model` needs.

    Args:
        model: the model (fixes the order of states, inputs, constants, events).
        study: the data; see :class:`hybridxfer.Study`.
        times: output times per batch name; default: the batch's measurement times.

    Raises:
        StudyError: if the study lacks something the model needs.
    """
    study.check(study_needs(model))
    names = study.batch_names
    variables, inputs, events = model.variable_names, model.input_names, model.event_names
    n, n_states, n_in, n_ev = len(names), len(model.state_names), len(inputs), len(events)
    meas = study.measurements
    meas = meas[meas["variable"].isin(variables)]
    inp = study.inputs.sort_values("time", kind="stable")
    by_batch = {b: g for b, g in meas.groupby("batch", sort=False)}
    inp_by_batch = {b: g for b, g in inp.groupby("batch", sort=False)}
    empty_m, empty_u = meas.iloc[:0], inp.iloc[:0]

    if times is not None and (missing := [b for b in names if b not in times]):
        raise StudyError(f"{study.name}: no output times given for batch(es) {missing}")
    out_t = [
        np.unique(
            np.asarray(times[b] if times is not None else by_batch.get(b, empty_m)["time"], float)
        )
        for b in names
    ]
    signals = [
        {v: g for v, g in inp_by_batch.get(b, empty_u).groupby("variable", sort=False)}
        for b in names
    ]
    ev_t = [
        np.unique(np.concatenate([[]] + [s[e]["time"].to_numpy(float) for e in events if e in s]))
        for s in signals
    ]
    B = bucket(n)
    K = bucket(max([len(s[u]) for s in signals for u in inputs if u in s] or [1]))
    M = bucket(max(len(t) for t in out_t))
    E = bucket(max(len(t) for t in ev_t)) if any(len(t) for t in ev_t) else 0

    initial = np.full((B, n_states), np.nan)
    in_t = np.full((B, n_in, K), FAR)
    in_v = np.zeros((B, n_in, K))
    ev_times = np.zeros((B, E))
    ev_amounts = np.zeros((B, E, n_ev))
    out_times = np.zeros((B, M))
    mask = np.zeros((B, M), dtype=bool)
    values = np.full((B, M, len(variables)), np.nan)
    sds = np.full((B, M, len(variables)), np.nan)
    col = {s: j for j, s in enumerate(variables)}
    for i, b in enumerate(names):
        m = by_batch.get(b, empty_m)
        t, end = out_t[i], out_t[i][-1]
        j = m["variable"].map(col).to_numpy(int)
        at0 = (m["time"].to_numpy(float) == 0.0) & (j < n_states)
        initial[i, j[at0]] = m["value"].to_numpy(float)[at0]
        k = np.searchsorted(t, m["time"].to_numpy(float))
        hit = (k < len(t)) & (t[np.minimum(k, len(t) - 1)] == m["time"].to_numpy(float))
        values[i, k[hit], j[hit]] = m["value"].to_numpy(float)[hit]
        if "sd" in m.columns:
            sds[i, k[hit], j[hit]] = m["sd"].to_numpy(float)[hit]
        out_times[i], out_times[i, : len(t)], mask[i, : len(t)] = end, t, True
        for u, name in enumerate(inputs):
            s = signals[i][name]
            in_t[i, u, : len(s)] = s["time"].to_numpy(float)
            in_v[i, u, : len(s)] = s["value"].to_numpy(float)
            in_v[i, u, len(s) :] = in_v[i, u, len(s) - 1]
        ev_times[i] = end
        ev_times[i, : len(ev_t[i])] = np.minimum(ev_t[i], end)
        for e, name in enumerate(events):
            if name in signals[i]:
                s = signals[i][name]
                np.add.at(ev_amounts[i, :, e], np.searchsorted(ev_t[i], s["time"]), s["value"])
    constants = study.batches.set_index("batch").loc[list(names), list(model.constant_names)]
    constants = np.vstack([constants.to_numpy(float), np.zeros((B - n, len(model.constant_names)))])
    process = np.zeros(B, dtype=int)
    process[:n] = [study.processes.index(p) for p in study.batches["process"]]
    # padding batches copy the first batch's inputs so their (discarded) solves are benign
    for a in (initial, constants, in_t, in_v, ev_times, ev_amounts, out_times):
        a[n:] = a[0]
    data = BatchData(
        initial=initial,
        constants=constants,
        input_times=in_t,
        input_values=in_v,
        event_times=ev_times,
        event_amounts=ev_amounts,
        times=out_times,
        mask=mask,
        values=values,
        sd=sds,
        process=process,
    )
    return jax.device_put(data)  # one transfer; jnp.asarray compiles a program per shape


def study_needs(model: HybridModel) -> StudyNeeds:
    """What `model` needs from a study (see :meth:`Study.check`)."""
    s = model.structure
    r = s.reactor
    from_data = [st.name for st in s.states if st.initial is None]
    if r.has_volume and r.volume_initial is None:
        from_data.append(r.volume)
    return StudyNeeds(
        variables=model.variable_names,
        initial_from_data=tuple(from_data),
        inputs=model.input_names,
        events=r.events,
        constants=model.constant_names,
        ranges=tuple((v, *bounds) for v, bounds in model.ranges.items()),
        units=(*model.units.items(), ("time", s.time_unit)),
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
