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

from .batch_data import BatchData, batch_data, input_values_at
from .model import HybridModel
from .study import Study

__all__ = ["SimulationError", "Solver", "simulate", "solve"]

SOLVERS = {"tsit5": dfx.Tsit5, "dopri5": dfx.Dopri5, "kvaerno5": dfx.Kvaerno5}


class SimulationError(RuntimeError):
    """A solve failed or produced a non-finite state; the message names batch and time."""


@dataclass(frozen=True)
class Solver:
    """How to integrate: solver name, tolerances and step budget.

    Attributes:
        name: ``"tsit5"`` (default, non-stiff), ``"dopri5"``, or ``"kvaerno5"``
            (implicit, for stiff models; uses a PID step-size controller).
        rtol, atol: relative and absolute tolerances of the adaptive step.
        max_steps: step budget per solve segment (a segment runs between events).
    """

    name: str = "tsit5"
    rtol: float = 1e-6
    atol: float = 1e-9
    max_steps: int = 4096

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


def _solve_batch(model: HybridModel, data: BatchData, solver: Solver):
    """Solve one (unbatched) batch; returns (ys (M, n_states), ok (E+1,))."""
    linear = model.linear_inputs

    def field(t, y, args):
        u = input_values_at(t, data.input_times, data.input_values, linear)
        return model.vector_field(t, y, u, data.constants)

    term = dfx.ODETerm(field)
    jump_ts = data.input_times.reshape(-1)
    bounds = jnp.concatenate([jnp.zeros(1), data.event_times, data.times[-1:]])
    n_events = data.event_amounts.shape[-1]
    amounts = jnp.concatenate([data.event_amounts, jnp.zeros((1, n_events))])

    def segment(y, k):
        t0, t1 = bounds[k], bounds[k + 1]
        sol = dfx.diffeqsolve(
            term,
            SOLVERS[solver.name](),
            t0,
            t1,
            None,
            y,
            saveat=dfx.SaveAt(ts=jnp.clip(data.times, t0, t1), t1=True),
            stepsize_controller=solver.controller(jump_ts),
            max_steps=solver.max_steps,
            throw=False,
        )
        y_end = sol.ys[-1]
        return model.apply_events(y_end, amounts[k], data.constants), (
            sol.ys[:-1],
            sol.result == dfx.RESULTS.successful,
        )

    y0 = model.initial_state(data.initial, data.constants)
    _, (ys, ok) = jax.lax.scan(segment, y0, jnp.arange(bounds.shape[0] - 1))
    # a sample at an event time sees the state before the event
    seg = jnp.sum(data.event_times[None, :] < data.times[:, None], axis=1)
    return ys[seg, jnp.arange(data.times.shape[0])], ok


@eqx.filter_jit
def solve(
    model: HybridModel, data: BatchData, solver: Solver = Solver()
) -> tuple[Float[Array, "B M n_states"], Bool[Array, " B"]]:
    """Solve every batch of `data` at its output times.

    Returns:
        ys: states at ``data.times`` (state order ``model.state_names``), shape (B, M, n).
        ok: whether the solver succeeded on every segment of each batch, shape (B,).
    """
    ys, ok = jax.vmap(_solve_batch, in_axes=(None, 0, None))(model, data, solver)
    return ys, jnp.all(ok, axis=-1)


def simulate(
    model: HybridModel,
    study: Study,
    *,
    times: Mapping[str, Sequence[float]] | int | None = None,
    solver: Solver = Solver(),
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
        Long table with columns ``batch, time, variable, value`` (states in
        ``model.state_names`` order).

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
    check_finite(ys, ok, data, model.state_names)
    return to_frame(ys, data, model.state_names)


def check_finite(ys: np.ndarray, ok: np.ndarray, data: BatchData, names: Sequence[str]) -> None:
    """Raise SimulationError for the first batch whose solve failed or went non-finite."""
    times, mask = np.asarray(data.times), np.asarray(data.mask)
    for i, batch in enumerate(data.names):
        bad = ~np.isfinite(ys[i]) & mask[i][:, None]
        if ok[i] and not bad.any():
            continue
        if bad.any():
            j = int(np.argmax(bad.any(axis=1)))
            vars_ = ", ".join(n for n, b in zip(names, bad[j]) if b)
            last = f"; last finite at t={times[i, j - 1]:g}" if j > 0 else ""
            raise SimulationError(
                f"batch {batch!r}: non-finite state ({vars_}) at t={times[i, j]:g}{last}. "
                "Check parameters and initial values; for a stiff model use solver 'kvaerno5'."
            )
        raise SimulationError(
            f"batch {batch!r}: the solver failed before t={times[i][mask[i]][-1]:g} "
            "(step size collapsed or max_steps reached); try solver 'kvaerno5' or a larger "
            "max_steps."
        )


def to_frame(ys: np.ndarray, data: BatchData, names: Sequence[str]) -> pd.DataFrame:
    """Long table ``batch, time, variable, value`` from solved arrays (real points only)."""
    times, mask = np.asarray(data.times), np.asarray(data.mask)
    frames = []
    for i, batch in enumerate(data.names):
        t = times[i][mask[i]]
        block = pd.DataFrame(ys[i][mask[i]], columns=list(names))
        block.insert(0, "time", t)
        frames.append(
            block.melt(id_vars="time", var_name="variable", value_name="value").assign(batch=batch)
        )
    out = pd.concat(frames, ignore_index=True)
    return out[["batch", "time", "variable", "value"]]
