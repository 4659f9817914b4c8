"""Simulation: every batch of a study in one vmapped, jitted diffrax solve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Bool, Float

from .._core.model import HybridModel
from .._data.batch_data import BatchData, batch_data, input_values_at
from .._data.study import Study
from .failure import SimulationError, check_finite

__all__ = ["SimulationError", "Solver", "simulate", "solve", "solve_batches", "solve_rows"]

SOLVERS = {"tsit5": dfx.Tsit5, "dopri5": dfx.Dopri5, "kvaerno5": dfx.Kvaerno5}
# checkpoint slots of a differentiated solve segment: every step of a segment of up to
# this many steps is kept. A transfer fit's gradient step (36 members, ~5-60 steps per
# segment) took 114 ms with 1024 slots, 73 ms with 128 and 67 ms with 64, with the
# same result; heavy early steps (~60 steps per segment) 252, 204 and 202 ms.
CHECKPOINTS = 128


@dataclass(frozen=True)
class Solver:
    """How to integrate: solver name, tolerances and step budget.

    Attributes:
        name: ``"tsit5"`` (default, non-stiff), ``"dopri5"``, or ``"kvaerno5"``
            (implicit, for stiff models; uses a PID step-size controller).
        rtol, atol: relative and absolute tolerances of the adaptive step.
        max_steps: step budget per solve segment (a segment runs from one output
            time or event to the next).
        forward_mode: differentiate in forward mode (``jax.jacfwd``, for Jacobians
            with few parameters); default reverse mode with recursive checkpointing.
    """

    name: str = "tsit5"
    rtol: float = 1e-6
    atol: float = 1e-9
    max_steps: int = 4096
    forward_mode: bool = False

    def adjoint(self) -> dfx.AbstractAdjoint:
        """How gradients flow through the solve. Reverse mode keeps a checkpoint at
        every step of a segment up to :data:`CHECKPOINTS` steps
        (``checkpoints=min(max_steps, CHECKPOINTS)``; recursive checkpointing beyond):
        recomputing steps made a gradient cost 6-10 forward solves instead of about
        4-6, while the checkpoint buffer costs time on every step in proportion to its
        slots, whatever the steps taken."""
        if self.forward_mode:
            return dfx.ForwardMode()
        return dfx.RecursiveCheckpointAdjoint(checkpoints=min(self.max_steps, CHECKPOINTS))

    def __post_init__(self):
        if self.name not in SOLVERS:
            raise ValueError(f"solver {self.name!r} is not one of {', '.join(SOLVERS)}")

    def controller(self, jump_ts) -> dfx.PIDController:
        stiff = self.name == "kvaerno5"
        return dfx.PIDController(
            rtol=self.rtol,
            atol=self.atol,
            pcoeff=0.3 if stiff else 0.0,
            icoeff=0.4 if stiff else 1.0,
            jump_ts=jump_ts,
        )


DEFAULT = Solver()
"""Simulation, prediction and the reports' rates: rtol 1e-6, atol 1e-9, 4096 steps."""
TRAINING = Solver(rtol=1e-5, atol=1e-8, max_steps=1024)
"""A fit's training solves (:class:`~hybridxfer.FitConfig`): rtol 1e-5, atol 1e-8, 1024 steps."""
INTERVALS = Solver(rtol=1e-8, atol=1e-10, max_steps=4096, forward_mode=True)
"""Parameter intervals' Jacobians: rtol 1e-8, atol 1e-10, 4096 steps, forward mode."""
TWIN = DEFAULT
"""The digital twin's mean and covariance between updates: as :data:`DEFAULT`."""


def _solve_batch(model: HybridModel, data: BatchData, solver: Solver, y0=None):
    """Solve one (unbatched) batch from `y0` (default: the model's initial state).

    Returns (ys (M, n_vars): states then observations, ok (M+E,): per segment).
    """
    linear = model.linear_inputs

    def field(t, y, t_end):
        # an input that changes exactly at the segment's end is not a jump inside it:
        # the segment sees the value before the change
        t_input = jnp.minimum(t, jnp.nextafter(t_end, -jnp.inf))
        u = input_values_at(t_input, data.input_times, data.input_values, linear)
        return model.vector_field(t, y, u, data.constants)

    term = dfx.ODETerm(field)
    jump_ts = data.input_times.reshape(-1) if data.input_times.size else None
    # segments end at every output time and event, outputs first at a tie: a sample at
    # an event time sees the state before the event
    n_out, n_events = data.times.shape[0], data.event_amounts.shape[-1]
    ends = jnp.concatenate([data.times, data.event_times])
    order = jnp.argsort(ends, stable=True)
    bounds = jnp.concatenate([jnp.zeros(1), ends[order]])
    amounts = jnp.concatenate([jnp.zeros((n_out, n_events)), data.event_amounts])[order]

    def segment(y, k):
        t0, t1 = bounds[k], bounds[k + 1]
        sol = dfx.diffeqsolve(
            term,
            SOLVERS[solver.name](),
            t0,
            t1,
            None,
            y,
            args=t1,
            saveat=dfx.SaveAt(t1=True),
            stepsize_controller=solver.controller(jump_ts),
            max_steps=solver.max_steps,
            throw=False,
            adjoint=solver.adjoint(),
        )
        y_end, ok = sol.ys[-1], sol.result == dfx.RESULTS.successful
        # a segment that stopped early did not reach its end (inf there, as diffrax marks
        # unreached output times); the next one goes on from where it stopped
        reached = jnp.where(ok, y_end, jnp.inf)
        return model.apply_events(y_end, amounts[k], data.constants), (reached, ok)

    if y0 is None:
        y0 = model.initial_state(data.initial, data.constants)
    _, (y_ends, ok) = jax.lax.scan(segment, y0, jnp.arange(bounds.shape[0] - 1))
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
        y0: initial states per batch; default: ``model.initial_state`` of each batch.

    Returns:
        ys: states, then observations, at ``data.times`` (order
            ``model.variable_names``), shape (B, M, n_vars).
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
    """Jitted :func:`solve_batches`: compiled once per model structure, solver and
    shape bucket."""
    return _solve_jit(model, data, solver, y0)


def simulate(
    model: HybridModel,
    study: Study,
    *,
    times: Mapping[str, Sequence[float]] | int | None = None,
    solver: Solver = DEFAULT,
) -> pd.DataFrame:
    """Simulate every batch of `study` from its t=0 values, inputs and constants.

    Args:
        model: the model.
        study: batches to simulate (measurements give initial values and default times).
        times: output times per batch name; an int n for n equally spaced times from 0
            to each batch's last measurement or input time (measurement times added);
            None: the measurement times.
        solver: integration settings.

    Returns:
        Long table with columns ``batch, time, variable, value`` (variables in
        ``model.variable_names`` order: states, then observations).

    Raises:
        StudyError: if the study lacks what the model needs.
        SimulationError: naming the batch and time where a solve failed or a state
            became non-finite.
    """
    if isinstance(times, int):
        n = times
        times = {
            b: np.union1d(
                np.linspace(0.0, study.end_time(b), n),
                study.measurements.loc[study.measurements["batch"] == b, "time"],
            )
            for b in study.batch_names
        }
    data = batch_data(model, study, times)
    ys, ok = solve(model, data, solver)
    ys, ok = np.asarray(ys), np.asarray(ok)
    check_finite(ys, ok, data, study.batch_names, model.variable_names, solver.max_steps)
    return to_frame(ys, data, study.batch_names, model.variable_names)


def to_frame(
    ys: np.ndarray, data: BatchData, batches: Sequence[str], states: Sequence[str]
) -> pd.DataFrame:
    """Long table ``batch, time, variable, value`` of the real (unpadded) points."""
    n = len(batches)
    times, mask = np.asarray(data.times)[:n], np.asarray(data.mask)[:n]
    b, m = np.nonzero(mask)
    k = len(states)
    return pd.DataFrame(
        {
            "batch": np.repeat(np.asarray(batches, dtype=object)[b], k),
            "time": np.repeat(times[b, m], k),
            "variable": np.tile(np.asarray(states, dtype=object), len(b)),
            "value": ys[b, m].reshape(-1),
        }
    )
