"""The batched solve: every batch of a study's arrays in one vmapped diffrax solve."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._core.model import HybridModel
from .._data.batch_data import BatchData, input_values_at
from .integrate import integrate
from .solver import DEFAULT, Solver

__all__ = ["solve", "solve_batches", "solve_rows"]


@eqx.filter_jit
def _field(
    model: HybridModel,
    input_times: Float[Array, "n_inputs K"],
    input_values: Float[Array, "n_inputs K"],
    constants: Float[Array, " n_constants"],
    t: Float[Array, ""],
    y: Float[Array, " n_states"],
    t_end: Float[Array, ""],
) -> Float[Array, " n_states"]:
    """dy/dt of one batch at time t in a segment ending at `t_end`: an input that
    changes exactly at the segment's end is not a jump inside it (the segment sees
    the value before the change).

    Jitted with every value an argument: the solve's transformations trace the field
    many times (each solver stage, and again for the gradient of each checkpointed
    step); as a jitted function it is traced once per structure and its program
    reused (a fit step's trace: 3.2 s -> 2.3 s of CPU on the built-in CHO task).
    """
    t_input = jnp.minimum(t, jnp.nextafter(t_end, -jnp.inf))
    u = input_values_at(t_input, input_times, input_values, model.linear_inputs)
    return model.vector_field(t, y, u, constants)


def _solve_batch(
    model: HybridModel,
    data: BatchData,
    solver: Solver,
    y0: Float[Array, " n_states"] | None = None,
) -> tuple[Float[Array, "M n_vars"], Bool[Array, " S"]]:
    """Solve one (unbatched) batch from `y0` (default: the model's initial state).

    Returns:
        ys: states, then observations, at ``data.times``, shape (M, n_vars).
        ok: whether each segment (M output times and E events) succeeded, shape (M+E,).
    """
    linear = model.linear_inputs

    def field(t, y, t_end):
        return _field(model, data.input_times, data.input_values, data.constants, t, y, t_end)

    jump_ts = data.input_times.reshape(-1) if data.input_times.size else None
    # segments end at every output time and event, outputs first at a tie: a sample at
    # an event time sees the state before the event
    n_out, n_events = data.times.shape[0], data.event_amounts.shape[-1]
    ends = jnp.concatenate([data.times, data.event_times])
    order = jnp.argsort(ends, stable=True)
    bounds = jnp.concatenate([jnp.zeros(1), ends[order]])
    amounts = jnp.concatenate([jnp.zeros((n_out, n_events)), data.event_amounts])[order]

    def event(y, k):
        return model.apply_events(y, amounts[k], data.constants)

    if y0 is None:
        y0 = model.initial_state(data.initial, data.constants)
    y_ends, ok = integrate(field, y0, bounds, solver, event=event, jump_ts=jump_ts)
    ys = y_ends[jnp.argsort(order)[:n_out]]
    if not model.observation_names:
        return ys, ok

    def observe(t, y):  # inputs as held from t on (an observation at a change sees the new)
        u = input_values_at(t, data.input_times, data.input_values, linear)
        return model.observe(t, y, u, data.constants)

    return jnp.concatenate([ys, jax.vmap(observe)(data.times, ys)], axis=-1), ok


def solve_batches(
    model: HybridModel,
    data: BatchData,
    solver: Solver = DEFAULT,
    y0: Float[Array, "B n_states"] | None = None,
) -> tuple[Float[Array, "B M n_vars"], Bool[Array, " B"]]:
    """Solve every batch of `data` at its output times (traceable; see :func:`solve`).

    Args:
        model: the model; its ``free`` parameters may carry a leading batch axis
            (B, n_free) to give each batch its own values (process-specific ones).
        data: the batches' arrays (:func:`~hybridxfer._data.batch_data.batch_data`).
        solver: integration settings.
        y0: initial states per batch; default: ``model.initial_state`` of each batch.

    Returns:
        ys: states, then observations, at ``data.times`` (order
            ``model.variable_names``), shape (B, M, n_vars); inf from where a solve
            stopped early.
        ok: whether the solver succeeded on every segment of each batch, shape (B,).
    """
    B = data.times.shape[0]
    free = (
        model.free if model.free.ndim == 2 else jnp.broadcast_to(model.free, (B, *model.free.shape))
    )

    def one(free, data, y0):
        return _solve_batch(eqx.tree_at(lambda m: m.free, model, free), data, solver, y0)

    ys, ok = jax.vmap(one, in_axes=(0, 0, None if y0 is None else 0))(free, data, y0)
    return ys, jnp.all(ok, axis=-1)


def solve_rows(
    models: HybridModel,
    data: BatchData,
    solver: Solver,
    y0: Float[Array, "R n_states"],
) -> tuple[Float[Array, "R M n_vars"], Bool[Array, " R"]]:
    """Solve R (model, batch) rows in one vmap (traceable): row r is `data`'s row r
    solved with the model whose every array leaf is that of `models` at index r
    (each array leaf has a leading axis R).

    Many models at once (a fit's members) solve as one flat vmap over their batches:
    one vmap level traces and compiles faster, and runs faster, than a vmap over
    models of a vmap over batches (a transfer fit's gradient: 38 vs 54 ms).

    Returns:
        As :func:`solve_batches`, with R rows.
    """
    ys, ok = eqx.filter_vmap(lambda m, d, y: _solve_batch(m, d, solver, y))(models, data, y0)
    return ys, jnp.all(ok, axis=-1)


_solve_jit = eqx.filter_jit(solve_batches)


def solve(
    model: HybridModel,
    data: BatchData,
    solver: Solver = DEFAULT,
    y0: Float[Array, "B n_states"] | None = None,
) -> tuple[Float[Array, "B M n_vars"], Bool[Array, " B"]]:
    """Jitted :func:`solve_batches`: compiled once per model structure, solver
    settings and shape bucket."""
    return _solve_jit(model, data, solver, y0)
