"""Solve failures: which batch failed, where, and how, as data or as an error.

:func:`first_failure` reads a solve's output: the first batch with a non-finite value
or an unfinished solve, at an output time. :func:`locate` goes further, with the
model: a non-finite rate or balance at the start is found without solving
(:func:`field_failure`, milliseconds); a solve that failed later is solved again on
finer and finer output grids between the last finite output time and the first
failed one (:data:`ZOOMS` levels of :data:`GRID` points: the time of failure to
1/4096 of that interval), and the rates and balances are evaluated at the last
finite state and one Euler step past it, naming those that are not finite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._core.model import HybridModel
from .._data.batch_data import BatchData, input_values_at
from .batches import solve
from .solver import Solver

__all__ = [
    "SimulationError",
    "SolveFailure",
    "check_finite",
    "field_failure",
    "first_failure",
    "locate",
]

GRID, ZOOMS = 16, 3  # output points per refinement, and refinements, of locate


class SimulationError(RuntimeError):
    """A solve failed or produced a non-finite state; the message names batch and time."""


@dataclass(frozen=True)
class SolveFailure:
    """The first failure of a batched solve.

    Attributes:
        batch: name of the batch that failed.
        time: for ``"non-finite"``, the first output time with a non-finite value; for
            ``"stopped"``, the output time that the solver stopped before [model time].
        variables: the variables that are non-finite at `time` (empty when the solver
            stopped after the last output time, at an event).
        kind: ``"non-finite"`` (a state or observation became NaN or infinite) or
            ``"stopped"`` (the step budget ran out or the step size collapsed).
        message: a readable description naming batch, time and a remedy (the message of
            the :class:`SimulationError` that :func:`check_finite` raises).
        rates: the named rates that are not finite there (:func:`field_failure`,
            :func:`locate`; empty otherwise).
    """

    batch: str
    time: float
    variables: tuple[str, ...]
    kind: Literal["non-finite", "stopped"]
    message: str
    rates: tuple[str, ...] = ()


def first_failure(
    ys: np.ndarray,
    ok: np.ndarray,
    data: BatchData,
    batches: Sequence[str],
    variables: Sequence[str],
    max_steps: int | None = None,
) -> SolveFailure | None:
    """The first batch whose solve failed or went non-finite, or None if all are fine.

    Args:
        ys: solved values, shape (B, M, n_vars) (as :func:`~hybridxfer.solve` returns).
        ok: whether each batch's solve succeeded on every segment, shape (B,).
        data: the solved batch arrays (output times and their mask).
        batches: names of the rows of `data` (the first ``len(batches)`` are checked).
        variables: names of the last axis of `ys`.
        max_steps: the step budget per segment, named in a ``"stopped"`` message.

    Returns:
        A NaN is reported as a non-finite state; a solve that stopped early (`ok` False)
        as the solver stopping, with the step budget. None when every masked value of
        every batch is finite and every solve succeeded.
    """
    times, mask = np.asarray(data.times), np.asarray(data.mask)
    for i, batch in enumerate(batches):
        nan = np.isnan(ys[i]) & mask[i][:, None]
        bad = ~np.isfinite(ys[i]) & mask[i][:, None]
        if ok[i] and not bad.any():
            continue
        if nan.any() or ok[i]:
            where = nan if nan.any() else bad
            j = int(np.argmax(where.any(axis=1)))
            names = tuple(n for n, b in zip(variables, where[j]) if b)
            last = f"; last finite at t={times[i, j - 1]:g}" if j > 0 else ""
            return SolveFailure(
                batch=batch,
                time=float(times[i, j]),
                variables=names,
                kind="non-finite",
                message=(
                    f"batch {batch!r}: non-finite state ({', '.join(names)}) at "
                    f"t={times[i, j]:g}{last}. Check parameters and initial values; for a "
                    "stiff model use solver 'kvaerno5'."
                ),
            )
        # a failed segment leaves inf at its end, and later segments go on from where it
        # stopped: the solver stopped before the first non-finite time (else before the
        # last time: the failed segment ended at an event, not at an output time)
        unreached = mask[i] & bad.any(axis=1)
        j = int(np.flatnonzero(unreached)[0] if unreached.any() else np.flatnonzero(mask[i])[-1])
        budget = f" (max_steps={max_steps} per segment)" if max_steps else ""
        return SolveFailure(
            batch=batch,
            time=float(times[i, j]),
            variables=tuple(n for n, b in zip(variables, bad[j]) if b),
            kind="stopped",
            message=(
                f"batch {batch!r}: the solver stopped before t={times[i, j]:g}: the step "
                f"budget{budget} ran out or the step size collapsed; raise max_steps, or use "
                "solver 'kvaerno5' if stiff."
            ),
        )
    return None


def check_finite(
    ys: np.ndarray,
    ok: np.ndarray,
    data: BatchData,
    batches: Sequence[str],
    variables: Sequence[str],
    max_steps: int | None = None,
) -> None:
    """Raise for the first batch whose solve failed or went non-finite.

    Args and checks as :func:`first_failure`.

    Raises:
        SimulationError: with the failure's message.
    """
    failure = first_failure(ys, ok, data, batches, variables, max_steps)
    if failure is not None:
        raise SimulationError(failure.message)


def field_failure(
    model: HybridModel,
    data: BatchData,
    batches: Sequence[str],
    times: Float[Array, " B"],
    states: Float[Array, "B n_states"],
) -> SolveFailure | None:
    """The first batch whose named rates or balances (dy/dt) are not finite at its
    time and state, or None: the model's equations evaluated directly, without a solve
    (one compile per model structure).

    Args:
        model: the model; ``free`` may carry a leading batch axis (B, n_free).
        data: the batches' arrays (inputs and constants are read).
        batches: names of the rows of `data` (the first ``len(batches)`` are checked).
        times: a time per batch, (B,) [model time unit].
        states: a state per batch, (B, n_states).

    Returns:
        A ``"non-finite"`` failure whose `variables` are the states with a non-finite
        value or derivative and whose `rates` are the non-finite rates, its message
        naming them with the state's values.
    """
    times, states = np.asarray(times, dtype=float), np.asarray(states, dtype=float)
    rates, dy = (np.asarray(a) for a in _derivatives(model, data, times, states))
    for i, batch in enumerate(batches):
        bad_rates = tuple(k for k, v in zip(_rate_names(model), rates[i]) if not np.isfinite(v))
        bad = ~np.isfinite(dy[i]) | ~np.isfinite(np.asarray(states[i]))
        if not bad.any() and not bad_rates:
            continue
        names = tuple(n for n, b in zip(model.state_names, bad) if b)
        at = ", ".join(f"{n}={float(v):.6g}" for n, v in zip(model.state_names, states[i]))
        what = f"rate(s) {', '.join(bad_rates)}" if bad_rates else "no named rate"
        return SolveFailure(
            batch=batch,
            time=float(times[i]),
            variables=names,
            kind="non-finite",
            rates=bad_rates,
            message=(
                f"batch {batch!r}: the model's equations give a non-finite value at "
                f"t={float(times[i]):g}: {what}, the balance of {', '.join(names) or '-'} "
                f"(at {at}). Check these expressions (a log or sqrt of a negative value, a "
                "division by zero), the parameters and the initial values."
            ),
        )
    return None


@eqx.filter_jit
def _derivatives(model: HybridModel, data: BatchData, times, states):
    """Every named rate, (B, n_rates) in :func:`_rate_names` order, and dy/dt,
    (B, n_states), of each batch at its time and state (inputs as a solve sees them
    there)."""
    B = states.shape[0]
    free = (
        model.free[:B]
        if model.free.ndim == 2
        else jnp.broadcast_to(model.free, (B, *model.free.shape))
    )

    def one(free, t, y, input_times, input_values, constants):
        m = eqx.tree_at(lambda m: m.free, model, free)
        u = input_values_at(t, input_times, input_values, model.linear_inputs)
        rates = m.rates(t, y, u, constants)
        named = [jnp.asarray(rates[k], dtype=float) for k in _rate_names(model)]
        named = jnp.stack(named) if named else jnp.zeros(0)  # a model may name no rate
        return named, m.vector_field(t, y, u, constants)

    return jax.vmap(one)(
        free, times, states, data.input_times[:B], data.input_values[:B], data.constants[:B]
    )


def _rate_names(model: HybridModel) -> tuple[str, ...]:
    """The named rates and network factors, in declaration order."""
    return (*dict(model.structure.rates), *model.networks)


def locate(
    model: HybridModel,
    data: BatchData,
    batches: Sequence[str],
    solver: Solver,
    ys: np.ndarray | None = None,
    ok: np.ndarray | None = None,
    y0: Float[Array, "B n_states"] | None = None,
) -> SolveFailure | None:
    """Where and why the first failing batch failed (see the module), or None if no
    batch fails.

    Args:
        model: the model solved; ``free`` may carry a leading batch axis (B, n_free).
        data: the batches' arrays.
        batches: names of the rows of `data` (the first ``len(batches)`` are checked).
        solver: the solver used.
        ys, ok: the solve's output (:func:`~hybridxfer.solve`); None: only the start is
            checked.
        y0: initial states per batch; default: the model's.

    Returns:
        A failure at t=0 from :func:`field_failure`; else :func:`first_failure`'s,
        with its time refined to where the solve failed and, where the equations give a
        non-finite value there, named as non-finite with its rates and balances.
    """
    n = len(batches)
    y0 = (_initial_states(model, data) if y0 is None else jnp.asarray(y0))[:n]
    start = field_failure(model, data, batches, jnp.zeros(n), y0)
    if start is not None or ys is None:
        return start
    failure = first_failure(ys, ok, data, batches, model.variable_names, solver.max_steps)
    if failure is None:
        return None
    i = list(batches).index(failure.batch)
    times, n_states = np.asarray(data.times)[i], len(model.state_names)
    j = int(np.searchsorted(times, failure.time))
    t_a = float(times[j - 1]) if j > 0 else 0.0
    y_a = np.asarray(ys[i, j - 1, :n_states]) if j > 0 else np.asarray(y0[i])
    if not np.all(np.isfinite(y_a)):  # an event made it inf: no finite state to start
        return failure
    row = _row(model, data, i)
    t_b = failure.time
    for _ in range(ZOOMS):  # the failure lies in (t_a, t_b]
        grid = np.linspace(t_a, t_b, GRID + 1)[1:]
        probe = _with_times(row[1], grid)
        out = np.asarray(solve(row[0], probe, solver, jnp.asarray(y0[i : i + 1]))[0])[0]
        finite = np.all(np.isfinite(out[:, :n_states]), axis=1)
        k = int(np.argmin(finite)) if not finite.all() else GRID
        if k == GRID:  # finite on the whole grid (an event or the budget): stop here
            break
        t_a, t_b = (float(grid[k - 1]), float(grid[k])) if k > 0 else (t_a, float(grid[0]))
        y_a = out[k - 1, :n_states] if k > 0 else y_a
    # the equations at the last finite state, and one Euler step past it
    names = [failure.batch]
    at = field_failure(row[0], row[1], names, jnp.asarray([t_a]), jnp.asarray([y_a]))
    if at is None:
        _, dy = _derivatives(row[0], row[1], jnp.asarray([t_a]), jnp.asarray([y_a]))
        past = y_a + (t_b - t_a) * np.asarray(dy[0])
        at = field_failure(row[0], row[1], names, jnp.asarray([t_b]), jnp.asarray([past]))
    if at is None:
        return dataclasses.replace(
            failure,
            time=t_b,
            message=failure.message.replace(f"before t={failure.time:g}", f"at t={t_b:.6g}"),
        )
    message = at.message.replace(f"at t={at.time:g}", f"at t={t_b:.6g}", 1)
    return dataclasses.replace(at, time=t_b, message=message)


@eqx.filter_jit
def _initial_states(model: HybridModel, data: BatchData) -> Float[Array, "B n_states"]:
    """Each batch's initial state (its row of per-batch ``free``, if any)."""
    if model.free.ndim == 1:
        return jax.vmap(model.initial_state)(data.initial, data.constants)

    def one(free, measured, constants):
        return eqx.tree_at(lambda m: m.free, model, free).initial_state(measured, constants)

    return jax.vmap(one)(model.free, data.initial, data.constants)


def _row(model: HybridModel, data: BatchData, i: int) -> tuple[HybridModel, BatchData]:
    """Batch `i` alone: the model (its row of per-batch ``free``) and arrays."""
    if model.free.ndim == 2:
        model = eqx.tree_at(lambda m: m.free, model, model.free[i : i + 1])
    return model, jax.tree.map(lambda a: a[i : i + 1], data)


def _with_times(data: BatchData, times: np.ndarray) -> BatchData:
    """One batch's arrays with output times `times` (no measurements there)."""
    m, n_vars = len(times), data.values.shape[-1]
    return eqx.tree_at(
        lambda d: (d.times, d.mask, d.values, d.sd),
        data,
        (
            jnp.asarray(times, dtype=float)[None],
            jnp.ones((1, m), dtype=bool),
            jnp.full((1, m, n_vars), jnp.nan),
            jnp.full((1, m, n_vars), jnp.nan),
        ),
    )
