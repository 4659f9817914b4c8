"""A fit's settings and its result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from .._core.model import HybridModel
from .._data.study import Study
from .._solve import TRAINING, Solver
from .._solve.failure import SolveFailure
from .intervals import parameter_table
from .objective import LIKELIHOODS

__all__ = ["FitConfig", "FitError", "FitResult"]


class FitError(RuntimeError):
    """A fit that cannot go on (e.g. every step rejected as non-finite).

    Attributes:
        failure: the solve's failure that stopped it, if one did
            (:class:`~hybridxfer._solve.failure.SolveFailure`), else None.
        step: the step that stopped it (0: before the first).
    """

    def __init__(self, message: str, failure: SolveFailure | None = None, step: int = 0):
        super().__init__(message)
        self.failure, self.step = failure, step


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`hybridxfer.fit`.

    Attributes:
        steps: maximum number of gradient steps.
        learning_rate: peak Adam learning rate (after `warmup` steps; cosine decay to 1%).
        warmup: linear warm-up steps.
        clip: global gradient-norm clip.
        weight_decay: L2 penalty on network weights.
        likelihood: ``"scaled"`` least squares or ``"gaussian"`` (learned noise per state).
        members: random restarts trained together; the best on validation is kept.
        patience: steps without validation improvement before a member stops.
        holdout: with no ``valid`` batches, the fraction of each training batch's
            latest time points held out for validation.
        seed: PRNG seed of the network initialisation.
        checkpoint_every: steps between checkpoints (with a checkpoint folder).
        solver: integration settings used in training.
    """

    steps: int = 1500
    learning_rate: float = 1e-2
    warmup: int = 50
    clip: float = 1.0
    weight_decay: float = 1e-5
    likelihood: str = "scaled"
    members: int = 1
    patience: int = 300
    holdout: float = 0.25
    seed: int = 0
    checkpoint_every: int = 100
    solver: Solver = field(default_factory=lambda: TRAINING)

    def __post_init__(self):
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood {self.likelihood!r} is not one of {LIKELIHOODS}")
        if self.steps < 1 or self.members < 1:
            raise ValueError("steps and members must be >= 1")
        if not 0 < self.holdout < 1:
            raise ValueError("holdout must lie in (0, 1)")


@dataclass(frozen=True)
class FitResult:
    """What :func:`hybridxfer.fit` returns.

    Attributes:
        model: the fitted model (best member, at its best validation step).
        members: every member's fitted model (the ensemble), best first.
        weights: with weights, a prediction (:func:`hybridxfer.predict`) is the mean of
            the members' predictions so weighted (they sum to 1), as for ``auto``'s
            validation-weighted average of a transfer's candidates; None: the best
            member's (:attr:`model`) alone. :attr:`model` is the best member either
            way: its parameters are reported and the twin runs it.
        initial: estimated or used initial state of each fitted batch (long table
            ``batch, variable, value``).
        history: ``step, member, train, valid`` losses.
        scores: best validation loss of each member, best first.
        config: the settings used.
        process: the process fitted (the primary one), if one was named.
        batch_parameters: each fitted batch's value of the batch-varying parameters
            (those with a ``batch_sd``), long table ``batch, name, value``.
        calibration: the model's predictions of the observations it was trained or
            scored on: long table ``batch, time, variable, measured, sd, predicted,
            heldout`` (`sd`: the declared measurement sd, NaN if none; `heldout`: not
            trained on, e.g. valid batches, late points or cross-validation folds); what
            prediction bands are calibrated on (:func:`hybridxfer.predict`). None for a
            model saved without it.
        reference_calibration: as :attr:`calibration`, another model's predictions of
            batches this fit trained on and that model did not: a transfer from one
            batch keeps its source's (as is) of the target batch. Where
            :attr:`calibration` holds no batch out whole, a band is at least as wide as
            this model's errors on a batch it did not see. None: none kept.
        fitted: the training batches the model was fitted to (the parameter table's
            data); None for a fit read from a saved model.
        table: the parameter table as saved (:func:`hybridxfer.load_fit`); None for a
            new fit, whose table :attr:`parameters` computes on first use.
    """

    model: HybridModel
    members: tuple[HybridModel, ...]
    initial: pd.DataFrame
    history: pd.DataFrame
    scores: tuple[float, ...]
    config: FitConfig
    process: str | None = None
    batch_parameters: pd.DataFrame | None = None
    weights: tuple[float, ...] | None = None
    calibration: pd.DataFrame | None = field(default=None, repr=False)
    reference_calibration: pd.DataFrame | None = field(default=None, repr=False)
    fitted: Study | None = field(default=None, repr=False)
    table: pd.DataFrame | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.table is None and self.fitted is None:
            raise ValueError("a FitResult needs its parameter table or the batches it fitted")
        w = self.weights
        if w is not None and not (
            len(w) == len(self.members)
            and all(math.isfinite(x) and x > 0 for x in w)
            and math.isclose(sum(w), 1.0, rel_tol=1e-9)
        ):
            raise ValueError(
                f"weights must be one positive number per member ({len(self.members)}) "
                f"summing to 1, not {w!r:.80}"
            )

    def __repr__(self) -> str:
        """A short summary: model, process, members, steps, solver, calibration (not
        the tables)."""
        steps = int(self.history["step"].max()) if len(self.history) else 0
        held = 0 if self.calibration is None else int(self.calibration["heldout"].sum())
        solver = self.config.solver
        lines = [
            f"FitResult of model {self.model.name!r}"
            + (f" on process {self.process!r}" if self.process else ""),
            f"  members: {len(self.members)} (best validation loss {self.scores[0]:.4g}), "
            f"{steps} steps run of {self.config.steps}",
            *(
                [f"  predictions: the members' mean, weighted {_weights(self.weights)}"]
                if self.weights
                else []
            ),
            f"  solver: {type(solver.solver).__name__}, rtol {solver.rtol:g}, "
            f"atol {solver.atol:g}, max_steps {solver.max_steps}",
            f"  bands calibrated on {held} held-out observations"
            if held
            else "  no held-out observations: no calibrated bands",
            *(
                ["  bands at least as wide as the source's errors on the target's batch"]
                if self.reference_calibration is not None
                else []
            ),
        ]
        return "\n".join(lines)

    __str__ = __repr__

    @cached_property
    def parameters(self) -> pd.DataFrame:
        """Every parameter with its value, unit, sd and 95% interval
        (:func:`hybridxfer.parameter_table` of :attr:`model` on the :attr:`fitted`
        batches, computed on first use), or the table a saved model holds.

        Columns ``name, value, unit, sd, lower95, upper95, fixed, process_specific``.
        """
        if self.table is not None:
            return self.table
        return parameter_table(self.model, self.fitted, initial=self.initial)


def _weights(w: tuple[float, ...]) -> str:
    return ", ".join(f"{x:.2f}" for x in w[:5]) + (", ..." if len(w) > 5 else "")
