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
import pandas as pd
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
    # rows as flat arrays: m_ measurements, o_ output (batch, time) pairs, s_ continuous
    # input rows, e_ event rows; _b batch row, _k position within the batch's (or the
    # batch's input's) sorted times; each scattered into the padded arrays at once
    names = study.batch_names
    variables, inputs, events = model.variable_names, model.input_names, model.event_names
    n, n_states, n_in, n_ev = len(names), len(model.state_names), len(inputs), len(events)
    meas = study.measurements
    meas = meas[meas["variable"].isin(variables) & meas["batch"].isin(names)]
    m_b, m_j = _codes(meas["batch"], names), _codes(meas["variable"], variables)
    m_t, m_v = meas["time"].to_numpy(float), meas["value"].to_numpy(float)

    if times is None:
        o_b, o_t = m_b, m_t
    elif missing := [b for b in names if b not in times]:
        raise StudyError(f"{study.name}: no output times given for batch(es) {missing}")
    else:
        given = [np.asarray(times[b], float).reshape(-1) for b in names]
        o_b = np.repeat(np.arange(n), [len(t) for t in given])
        o_t = np.concatenate([np.zeros(0), *given])
    o_b, o_t = _unique_pairs(o_b, o_t)
    count = np.bincount(o_b, minlength=n)
    if not count.all():
        raise StudyError(
            f"{study.name}: batch {names[int(np.argmin(count))]!r} has no output times"
        )
    o_k = _rank(o_b)
    end = o_t[np.cumsum(count) - 1]

    inp = study.inputs[study.inputs["batch"].isin(names)]
    i_u = _codes(inp["variable"], inputs)
    i_e = _codes(inp["variable"], events)
    i_b = _codes(inp["batch"], names)
    i_t, i_v = inp["time"].to_numpy(float), inp["value"].to_numpy(float)
    sig = i_u >= 0  # continuous-input rows, by batch, input, time (stable: file order)
    order = np.lexsort((i_t[sig], i_u[sig], i_b[sig]))
    s_b, s_u, s_t, s_v = (a[sig][order] for a in (i_b, i_u, i_t, i_v))
    s_k = _rank(s_b * n_in + s_u)
    ev = i_e >= 0  # event rows, by batch, time
    order = np.lexsort((i_t[ev], i_b[ev]))
    e_b, e_e, e_t, e_v = (a[ev][order] for a in (i_b, i_e, i_t, i_v))
    et_b, et_t = _unique_pairs(e_b, e_t)
    e_count = np.bincount(et_b, minlength=n)
    B = bucket(n)
    K = bucket(max(s_k.max(initial=0) + 1, 1))
    M = bucket(count.max())
    E = bucket(e_count.max()) if len(et_b) else 0

    initial = np.full((B, n_states), np.nan)
    at0 = (m_t == 0.0) & (m_j < n_states)
    initial[m_b[at0], m_j[at0]] = m_v[at0]
    out_times = np.zeros((B, M))
    out_times[:n] = end[:, None]
    out_times[o_b, o_k] = o_t
    mask = np.zeros((B, M), dtype=bool)
    mask[o_b, o_k] = True
    values = np.full((B, M, len(variables)), np.nan)
    sds = np.full((B, M, len(variables)), np.nan)
    at = _find_pairs(o_b, o_t, m_b, m_t)
    hit = at >= 0
    values[m_b[hit], o_k[at[hit]], m_j[hit]] = m_v[hit]
    if "sd" in meas.columns:
        sds[m_b[hit], o_k[at[hit]], m_j[hit]] = meas["sd"].to_numpy(float)[hit]
    in_t = np.full((B, n_in, K), FAR)
    in_t[s_b, s_u, s_k] = s_t
    in_v = np.zeros((B, n_in, K))
    final = np.diff(np.append(s_k, 0)) <= 0  # each signal's last (latest) row
    in_v[s_b[final], s_u[final]] = s_v[final, None]
    in_v[s_b, s_u, s_k] = s_v
    ev_times = np.zeros((B, E))
    ev_times[:n] = end[:, None]
    ev_times[et_b, _rank(et_b)] = np.minimum(et_t, end[et_b])
    ev_amounts = np.zeros((B, E, n_ev))
    e_at = _find_pairs(et_b, et_t, e_b, e_t)
    np.add.at(ev_amounts, (e_b, _rank(et_b)[e_at], e_e), e_v)
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


def _codes(column: pd.Series, known: Sequence[str]) -> np.ndarray:
    """Position of each cell of `column` in `known`, -1 where absent, shape (rows,)."""
    return pd.Index(known).get_indexer(column)


def _unique_pairs(b: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (batch, time) pairs, sorted by batch, then time."""
    order = np.lexsort((t, b))
    b, t = b[order], t[order]
    new = np.ones(len(b), dtype=bool)
    new[1:] = (b[1:] != b[:-1]) | (t[1:] != t[:-1])
    return b[new], t[new]


def _rank(group: np.ndarray) -> np.ndarray:
    """Position of each element within its run of equal values of the sorted `group`."""
    index = np.arange(len(group))
    return index - np.searchsorted(group, group)


def _find_pairs(b: np.ndarray, t: np.ndarray, qb: np.ndarray, qt: np.ndarray) -> np.ndarray:
    """Index of each query pair (qb, qt) among the sorted distinct pairs (b, t), -1
    where absent (exact time equality)."""
    times = np.unique(np.concatenate([t, qt]))  # exact integer keys: batch, time's rank
    key = np.append(b * len(times) + np.searchsorted(times, t), -1)  # -1: never matched
    qkey = qb * len(times) + np.searchsorted(times, qt)
    i = np.minimum(np.searchsorted(key[:-1], qkey), len(key) - 1)
    return np.where(key[i] == qkey, i, -1)


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
