"""How to integrate: a diffrax solver, its step-size controller, tolerances and budget.

The library's default settings live here, once: :data:`DEFAULT` (simulation,
prediction, reports), :data:`TRAINING` (a fit's solves), :data:`INTERVALS` (the
parameter table's Jacobians) and :data:`TWIN` (the digital twin).
"""

from __future__ import annotations

import diffrax as dfx
import equinox as eqx
from jaxtyping import Array, Float

from .._core import solver_defaults as defaults

__all__ = ["CHECKPOINTS", "DEFAULT", "INTERVALS", "TRAINING", "TWIN", "Solver"]

# checkpoint slots of a differentiated solve segment: every step of a segment of up to
# this many steps is kept. A transfer fit's gradient step (36 members, ~5-60 steps per
# segment) took 114 ms with 1024 slots, 73 ms with 128 and 67 ms with 64, with the
# same result; heavy early steps (~60 steps per segment) 252, 204 and 202 ms.
CHECKPOINTS = 128


class Solver(eqx.Module):
    """How to integrate: a diffrax solver, tolerances and step budget.

    Equal settings compare and hash equal, so a Solver is a static argument of
    :func:`equinox.filter_jit`: solves with equal Solvers share one compilation.

    Attributes:
        solver: an adaptive diffrax solver: :class:`diffrax.Tsit5` (default,
            non-stiff), :class:`diffrax.Dopri5`, or an implicit one such as
            :class:`diffrax.Kvaerno5` for stiff models.
        rtol: relative tolerance of the adaptive step.
        atol: absolute tolerance of the adaptive step [state units].
        max_steps: step budget per solve segment (a segment runs from one output
            time or event to the next).
        forward_mode: differentiate in forward mode (``jax.jacfwd``, for Jacobians
            with few parameters); default reverse mode with recursive checkpointing.

    Raises:
        TypeError: if `solver` is not a diffrax solver (e.g. a name: names are
            read by the CLI and saved models, not here).
    """

    solver: dfx.AbstractSolver = dfx.Tsit5()
    rtol: float = defaults.DEFAULT["rtol"]
    atol: float = defaults.DEFAULT["atol"]
    max_steps: int = defaults.DEFAULT["max_steps"]
    forward_mode: bool = False

    def __check_init__(self):
        if not isinstance(self.solver, dfx.AbstractSolver):
            raise TypeError(
                f"solver must be a diffrax solver such as diffrax.Tsit5(), not {self.solver!r}"
            )

    def adjoint(self) -> dfx.AbstractAdjoint:
        """How gradients flow through the solve.

        Reverse mode keeps a checkpoint at every step of a segment up to
        :data:`CHECKPOINTS` steps (``checkpoints=min(max_steps, CHECKPOINTS)``;
        recursive checkpointing beyond): recomputing steps made a gradient cost 6-10
        forward solves instead of about 4-6, while the checkpoint buffer costs time on
        every step in proportion to its slots, whatever the steps taken.

        Returns:
            :class:`diffrax.ForwardMode` with `forward_mode`, else
            :class:`diffrax.RecursiveCheckpointAdjoint`.
        """
        if self.forward_mode:
            return dfx.ForwardMode()
        return dfx.RecursiveCheckpointAdjoint(checkpoints=min(self.max_steps, CHECKPOINTS))

    def controller(self, jump_ts: Float[Array, " J"] | None = None) -> dfx.PIDController:
        """The step-size controller: a PID controller (pcoeff 0.3, icoeff 0.4) for an
        implicit solver, else an integral one (pcoeff 0, icoeff 1).

        Args:
            jump_ts: times where the vector field jumps (input changes), stepped to
                exactly; None: no jumps.

        Returns:
            A :class:`diffrax.PIDController` with this Solver's tolerances.
        """
        stiff = isinstance(self.solver, dfx.AbstractImplicitSolver)
        return dfx.PIDController(
            rtol=self.rtol,
            atol=self.atol,
            pcoeff=0.3 if stiff else 0.0,
            icoeff=0.4 if stiff else 1.0,
            jump_ts=jump_ts,
        )


DEFAULT = Solver()
"""Simulation, prediction and the reports' rates: Tsit5, rtol 1e-6, atol 1e-9, 4096 steps."""
TRAINING = Solver(**{k: v for k, v in defaults.TRAINING.items() if k != "name"})
"""A fit's training solves (``FitConfig.solver``): Tsit5, rtol 1e-5, atol 1e-8, 1024 steps."""
INTERVALS = Solver(rtol=1e-8, atol=1e-10, max_steps=4096, forward_mode=True)
"""The parameter table's Jacobians: Tsit5, rtol 1e-8, atol 1e-10, 4096 steps, forward mode."""
TWIN = DEFAULT
"""The digital twin's mean and covariance between updates: as :data:`DEFAULT`."""
