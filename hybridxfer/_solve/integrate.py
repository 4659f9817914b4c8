"""One integration: a diffrax solve through consecutive segments, with events between."""

from __future__ import annotations

from collections.abc import Callable

import diffrax as dfx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PyTree

from .solver import Solver

__all__ = ["integrate"]


def integrate(
    field: Callable[[Float[Array, ""], PyTree, Float[Array, ""]], PyTree],
    y0: PyTree,
    bounds: Float[Array, " K+1"],
    solver: Solver,
    *,
    event: Callable[[PyTree, Int[Array, ""]], PyTree] | None = None,
    jump_ts: Float[Array, " J"] | None = None,
    adjoint: dfx.AbstractAdjoint | None = None,
) -> tuple[PyTree, Bool[Array, " K"]]:
    """Solve ``dy/dt = field(t, y, t_end)`` from ``bounds[0]`` through the K segments
    ``[bounds[k], bounds[k+1]]``, applying ``event(y, k)`` at the end of segment k.

    A segment that stops early (step budget, collapsed step size, a non-finite
    state) did not reach its end: its end value is reported as inf (as diffrax marks
    unreached output times), and every later segment is skipped (solved over zero
    length, reported as inf and failed) rather than each spending the step budget
    from a state that cannot be trusted. Traceable.

    Args:
        field: the vector field at time t and state y; `t_end` is the end of the
            current segment (the value of an input that changes exactly there is
            the one before the change).
        y0: state at ``bounds[0]`` (any pytree of arrays).
        bounds: segment boundaries, non-decreasing, shape (K+1,).
        solver: diffrax solver, step-size controller, step budget per segment and
            adjoint.
        event: the state just after the events at the end of segment k (None: no
            events). The ends reported are those before the event.
        jump_ts: times where `field` jumps, stepped to exactly (None: none).
        adjoint: how gradients flow through the solve; default ``solver.adjoint()``.

    Returns:
        ends: the state at the end of each segment, before its event (inf where the
            segment stopped early), each leaf with a leading axis K.
        ok: whether each segment's solve succeeded, shape (K,).
    """
    term = dfx.ODETerm(field)
    adjoint = solver.adjoint() if adjoint is None else adjoint

    def segment(carry, k):
        y, failed = carry
        t0 = bounds[k]
        t1 = jnp.where(failed, t0, bounds[k + 1])  # after a failure: nothing to solve
        sol = dfx.diffeqsolve(
            term,
            solver.solver,
            t0,
            t1,
            None,
            y,
            args=t1,
            saveat=dfx.SaveAt(t1=True),
            stepsize_controller=solver.controller(jump_ts),
            max_steps=solver.max_steps,
            throw=False,
            adjoint=adjoint,
        )
        y_end = jax.tree.map(lambda a: a[-1], sol.ys)
        ok = (sol.result == dfx.RESULTS.successful) & ~failed
        reached = jax.tree.map(lambda a: jnp.where(ok, a, jnp.inf), y_end)
        y_next = y_end if event is None else event(y_end, k)
        return (y_next, ~ok), (reached, ok)

    start = (y0, jnp.asarray(False))
    _, (ends, ok) = jax.lax.scan(segment, start, jnp.arange(bounds.shape[0] - 1))
    return ends, ok
