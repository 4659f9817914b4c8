"""What a model needs from a study, and the check that a study has it
(:meth:`Study.check <hybridxfer._data.study.Study.check>`)."""

import warnings
from dataclasses import dataclass

import numpy as np

from .cells import StudyError, at, first_true, row, table_label
from .tables import BATCH_COLUMNS

__all__ = ["RANGE_SLACK", "StudyNeeds", "check"]

RANGE_SLACK = 1e-6
"""A value outside its physical range by at most this fraction of its variable's largest
magnitude is let through: round-off (a simulated -4e-10 g/L), not a wrong sign."""


@dataclass(frozen=True)
class StudyNeeds:
    """What a model needs from a study (built from the model, checked by
    :func:`check`).

    Attributes:
        variables: every variable name the model knows in ``measurements`` (states,
            volume, observables). Other measured variables are ignored, with a warning.
        initial_from_data: states whose value at time 0 must be measured in every batch.
        inputs: continuous inputs; every batch needs a row at time 0 for each.
        events: event inputs (optional per batch; a value is an amount added at that
            instant).
        constants: batch constants; columns of ``batches``, finite numbers for every batch.
        ranges: ``(variable, lo, hi)``: the physically possible measured values.
        units: ``(name, unit)``: the unit of each variable, input, constant and ``time``.
    """

    variables: tuple[str, ...] = ()
    initial_from_data: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    constants: tuple[str, ...] = ()
    ranges: tuple[tuple[str, float, float], ...] = ()
    units: tuple[tuple[str, str], ...] = ()


def check(study, needs: StudyNeeds) -> None:
    """Check that `study` has what a model needs (see :meth:`Study.check
    <hybridxfer._data.study.Study.check>`)."""
    _warn_unknown(study, needs)
    _check_units(study, dict(needs.units))
    _check_ranges(study, needs.ranges)
    _check_constants(study, needs.constants)
    _check_inputs(study, needs.inputs)
    _check_initial(study, needs.initial_from_data)


def _warn_unknown(study, needs: StudyNeeds) -> None:
    known = {
        "measurements": set(needs.variables),
        "inputs": set(needs.inputs) | set(needs.events),
    }
    unknown = sorted(
        {
            (variable, table)
            for table, names in known.items()
            for variable in getattr(study, table)["variable"].unique()
            if variable not in names
        }
    )
    if unknown:
        listed = ", ".join(f"{v!r} ({t})" for v, t in unknown)
        warnings.warn(
            f"{study.name}: the model does not know these variables; they are ignored: {listed}",
            UserWarning,
            stacklevel=4,  # the caller of Study.check
        )


def _check_units(study, wanted: dict[str, str]) -> None:
    for name, unit in study.units.items():
        if wanted.get(name, unit) != unit:
            raise StudyError(
                f"{study.name}: {name} is given in {unit!r}, the model's unit is "
                f"{wanted[name]!r}; read the study with units=model "
                "(hybridxfer.read_study(path, units=model)) to convert it"
            )


def _check_ranges(study, ranges: tuple[tuple[str, float, float], ...]) -> None:
    m = study.measurements
    variable, value = m["variable"].to_numpy(), m["value"].to_numpy(dtype=float)
    outside = np.zeros(len(m), dtype=bool)
    for name, lo, hi in ranges:
        this = variable == name
        # a solver's round-off (e.g. -4e-10 g/L from a simulated study) is not a typo
        slack = RANGE_SLACK * np.max(np.abs(value[this]), initial=0.0)
        outside |= this & ((value < lo - slack) | (value > hi + slack))
    bad = first_true(outside)
    if bad is None:
        return
    name, lo, hi = next(r for r in ranges if r[0] == variable[bad])
    column = study.columns.get("measurements", {}).get(name, "value")
    label = table_label(study.name, "measurements")
    raise StudyError(
        f"{at(label, m, bad, column)}: {name} = {value[bad]:g} is "
        f"outside its physical range [{lo:g}, {hi:g}] (a wrong sign, unit or typo? "
        "declare another range in the model file: range = [lo, hi] on the state)"
    )


def _check_constants(study, constants: tuple[str, ...]) -> None:
    label = table_label(study.name, "batches")
    for name in constants:
        if name not in study.batches.columns or name in BATCH_COLUMNS:
            raise StudyError(f"{label}: missing column {name!r} (a batch constant the model needs)")
        values = study.batches[name].to_numpy(dtype=float, na_value=np.nan)
        bad = first_true(~np.isfinite(values))
        if bad is not None:
            raise StudyError(
                f"{at(label, study.batches, bad, name)}: missing value for batch "
                f"{study.batches['batch'].iloc[bad]!r} (a batch constant the model needs)"
            )


def _check_inputs(study, inputs: tuple[str, ...]) -> None:
    table = study.inputs
    mine = table[table["variable"].isin(inputs)]
    present = set(zip(mine["batch"].tolist(), mine["variable"].tolist(), strict=True))
    at_zero = mine[mine["time"] == 0.0]
    started = set(zip(at_zero["batch"].tolist(), at_zero["variable"].tolist(), strict=True))
    for batch in study.batch_names:
        for name in inputs:
            if (batch, name) not in started:
                _no_input_at_zero(study, batch, name, (batch, name) in present)


def _no_input_at_zero(study, batch: str, name: str, present: bool) -> None:
    """Raise the error for input `name` of `batch`: no rows, or none at time 0."""
    label = table_label(study.name, "inputs")
    if not present:
        raise StudyError(
            f"{label} column 'variable': batch {batch!r} has no rows for input {name!r}"
        )
    table = study.inputs
    times = table["time"].where((table["batch"] == batch) & (table["variable"] == name))
    first = int(np.nanargmin(times.to_numpy(dtype=float)))
    raise StudyError(
        f"{label}: batch {batch!r} input {name!r} has no value at time 0 "
        f"(first row is row {row(table, first)} at time {times.iloc[first]:g})"
    )


def _check_initial(study, states: tuple[str, ...]) -> None:
    at_zero = study.measurements[study.measurements["time"] == 0.0]
    present = set(zip(at_zero["batch"], at_zero["variable"], strict=True))
    for batch in study.batch_names:
        for name in states:
            if (batch, name) not in present:
                raise StudyError(
                    f"{table_label(study.name, 'measurements')}: batch {batch!r} has no value of "
                    f"{name!r} at time 0, and the model declares no initial value for it "
                    '(give one in the model with initial = ... or "estimate")'
                )
