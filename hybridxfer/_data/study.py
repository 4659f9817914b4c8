"""The study: tidy, long-format bioreactor data, and its validation.

A study is a folder with three CSV files, or an Excel workbook with three sheets of the
same names (times in the model's time unit, e.g. h, unless a header says otherwise):

- ``measurements.csv``: ``batch,time,variable,value`` and optionally ``sd``. One row per
  sample; a missing sample is an absent row.
- ``inputs.csv`` (optional): ``batch,time,variable,value``. Controls and online signals,
  held constant from each time on (zero-order hold), and *event* variables (an amount
  added at that instant, e.g. a bolus volume in L).
- ``batches.csv``: ``batch,process,split`` and then any per-batch numeric constants. One
  row per batch; ``split`` is ``train``, ``valid`` or ``test``.

``measurements`` and ``inputs`` may also be wide (``batch,time`` and one column per
variable, as lab exports are); headers may carry units (``F [mL/h]``), and long tables
a ``unit`` column; read with ``units=model``, values are converted to the model's
declared units (see :mod:`hybridxfer._data.formats`).

Everything is checked when the study is read, so that bad data fails here with a message
naming the file, the row (as a spreadsheet numbers it: header = row 1, first data row =
row 2) and the column, never as a NaN deep inside an ODE solve.
"""

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._core.model import HybridModel
from .cells import StudyError, at, first_true, row, table_label
from .formats import TABLES, read_frames, write_frames
from .tables import BATCH_COLUMNS, SPLITS, validated

__all__ = [
    "SPLITS",
    "Study",
    "StudyError",
    "StudyNeeds",
    "read_study",
    "study_from_frames",
    "write_study",
]

RANGE_SLACK = 1e-6
"""A value outside its physical range by at most this fraction of its variable's largest
magnitude is let through: round-off (a simulated -4e-10 g/L), not a wrong sign."""


@dataclass(frozen=True)
class StudyNeeds:
    """What a model needs from a study (built from the model, checked by
    :meth:`Study.check`).

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


@dataclass(frozen=True)
class Study:
    """A validated study: three long-format tables.

    Build one with :func:`read_study` or :func:`study_from_frames`, which validate; the
    constructor itself checks nothing.

    The index of each table is the row's 0-based position in its source file or frame
    (the spreadsheet row number minus 2). :meth:`select` keeps it, so that messages
    about a subset still name the rows of the original file.

    Attributes:
        measurements: columns ``batch`` (str), ``time`` (float64, >= 0), ``variable``
            (str), ``value`` (float64, finite) and optionally ``sd`` (float64, > 0). At
            most one row per (batch, time, variable). Rows in file order.
        inputs: columns ``batch``, ``time``, ``variable``, ``value``, same dtypes and
            rules; may have no rows.
        batches: columns ``batch``, ``process``, ``split`` (str), then the batch
            constants (float64; NaN where a cell was empty). One row per batch, in file
            order.
        name: the folder or workbook path, or ``"DataFrame"``; used in messages.
        units: the unit of each variable, constant and ``time`` whose data declared
            one (after conversion: the wanted unit); others are in the model's units.
        columns: for each table read wide, each variable's column header, for messages.
    """

    measurements: pd.DataFrame
    inputs: pd.DataFrame
    batches: pd.DataFrame
    name: str = "study"
    units: Mapping[str, str] = field(default_factory=dict)
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __repr__(self) -> str:
        """A short summary: processes with their batches per split, variables, inputs,
        constants and time span (not the tables)."""
        b = self.batches
        per_process = "; ".join(
            f"{p}: "
            + ", ".join(f"{(g['split'] == x).sum()} {x}" for x in SPLITS if x in set(g["split"]))
            for p, g in b.groupby("process", sort=False)
        )
        times = pd.concat([self.measurements["time"], self.inputs["time"]])
        unit = f" {self.units['time']}" if "time" in self.units else ""
        lines = [
            f"Study {self.name!r}: {len(b)} batches in {len(self.processes)} process(es) "
            f"({per_process})",
            f"  measurements: {len(self.measurements)} values of "
            + _listed(self.measurements["variable"], self.units),
            f"  inputs: {_listed(self.inputs['variable'], self.units) or 'none'}",
            f"  constants: {_listed(self.constant_names, self.units) or 'none'}",
            f"  time: {times.min():g} to {times.max():g}{unit}",
        ]
        return "\n".join(lines)

    __str__ = __repr__

    @property
    def batch_names(self) -> tuple[str, ...]:
        """The batch names, in the order of ``batches``."""
        return tuple(self.batches["batch"])

    @property
    def processes(self) -> tuple[str, ...]:
        """The process names, unique, in order of first appearance in ``batches``."""
        return tuple(dict.fromkeys(self.batches["process"]))

    @property
    def constant_names(self) -> tuple[str, ...]:
        """The batch constants: the columns of ``batches`` after ``batch, process, split``."""
        return tuple(c for c in self.batches.columns if c not in BATCH_COLUMNS)

    def select(
        self,
        process: str | Sequence[str] | None = None,
        split: str | Sequence[str] | None = None,
        batches: str | Sequence[str] | None = None,
    ) -> "Study":
        """The sub-study of the batches with the given process(es), split(s) and names.

        Args:
            process: a process name, a sequence of names, or None for all processes.
            split: ``"train"``, ``"valid"``, ``"test"``, a sequence of these, or None
                for all.
            batches: a batch name, a sequence of names, or None for all batches.

        Returns:
            A :class:`Study` with the batches that match all three, in this study's
            order, and their rows of all three tables (same order, same index).

        Raises:
            StudyError: a process or batch not in the study (naming every unknown
                batch), a split that does not exist, or no batch selected.
        """
        processes = self.processes if process is None else _names(process)
        splits = SPLITS if split is None else _names(split)
        names = self.batch_names if batches is None else _names(batches)
        for wanted, known, what in (
            (processes, self.processes, "process"),
            (splits, SPLITS, "split"),
        ):
            unknown = [n for n in wanted if n not in known]
            if unknown:
                raise StudyError(
                    f"{self.name}: unknown {what} {unknown[0]!r} (known: {', '.join(known)})"
                )
        unknown = [n for n in names if n not in self.batch_names]
        if unknown:
            raise StudyError(f"{self.name}: unknown batch(es) {', '.join(map(repr, unknown))}")
        b = self.batches
        keep = b["process"].isin(processes) & b["split"].isin(splits) & b["batch"].isin(names)
        if not keep.any():
            raise StudyError(
                f"{self.name}: the selection is empty (no batch has process in "
                f"{list(processes)} and split in {list(splits)}"
                + ("" if batches is None else f" among {list(names)}")
                + ")"
            )
        kept = b["batch"][keep]
        return dataclasses.replace(
            self,
            measurements=self.measurements[self.measurements["batch"].isin(kept)],
            inputs=self.inputs[self.inputs["batch"].isin(kept)],
            batches=b[keep],
        )

    def check(self, needs: StudyNeeds) -> None:
        """Check that this study has what a model needs.

        Warns (one :class:`UserWarning` listing them all) about measured variables and
        inputs that the model does not know; they are ignored.

        Args:
            needs: what the model needs.

        Raises:
            StudyError: a measured value outside its variable's range (naming the row
                and column), data in units other than the model's (read the study with
                ``units=model`` to convert them), a needed batch constant is missing
                (column or cell), a batch has no value at time 0 of a needed input, or a
                batch has no measurement at time 0 of a state in
                ``needs.initial_from_data``.
        """
        self._warn_unknown(needs)
        self._check_units(dict(needs.units))
        self._check_ranges(needs.ranges)
        self._check_constants(needs.constants)
        self._check_inputs(needs.inputs)
        self._check_initial(needs.initial_from_data)

    def end_time(self, batch: str) -> float:
        """The last time of any measurement or input row of `batch` [model time unit].

        Raises:
            StudyError: `batch` is not in the study or has no rows.
        """
        if batch not in self.batch_names:
            raise StudyError(f"{self.name}: unknown batch {batch!r}")
        times = pd.concat(
            [t.loc[t["batch"] == batch, "time"] for t in (self.measurements, self.inputs)]
        )
        if times.empty:
            raise StudyError(f"{self.name}: batch {batch!r} has no measurement or input rows")
        return float(times.max())

    def _label(self, table: str) -> str:
        return table_label(self.name, table)

    def _warn_unknown(self, needs: StudyNeeds) -> None:
        known = {
            "measurements": set(needs.variables),
            "inputs": set(needs.inputs) | set(needs.events),
        }
        unknown = sorted(
            {
                (variable, table)
                for table, names in known.items()
                for variable in getattr(self, table)["variable"].unique()
                if variable not in names
            }
        )
        if unknown:
            listed = ", ".join(f"{v!r} ({t})" for v, t in unknown)
            warnings.warn(
                f"{self.name}: the model does not know these variables; they are ignored: {listed}",
                UserWarning,
                stacklevel=3,
            )

    def _check_units(self, wanted: dict[str, str]) -> None:
        for name, unit in self.units.items():
            if wanted.get(name, unit) != unit:
                raise StudyError(
                    f"{self.name}: {name} is given in {unit!r}, the model's unit is "
                    f"{wanted[name]!r}; read the study with units=model "
                    "(hybridxfer.read_study(path, units=model)) to convert it"
                )

    def _check_ranges(self, ranges: tuple[tuple[str, float, float], ...]) -> None:
        m = self.measurements
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
        column = self.columns.get("measurements", {}).get(name, "value")
        raise StudyError(
            f"{at(self._label('measurements'), m, bad, column)}: {name} = {value[bad]:g} is "
            f"outside its physical range [{lo:g}, {hi:g}] (a wrong sign, unit or typo? "
            "declare another range in the model file: range = [lo, hi] on the state)"
        )

    def _check_constants(self, constants: tuple[str, ...]) -> None:
        label = self._label("batches")
        for name in constants:
            if name not in self.batches.columns or name in BATCH_COLUMNS:
                raise StudyError(
                    f"{label}: missing column {name!r} (a batch constant the model needs)"
                )
            values = self.batches[name].to_numpy(dtype=float, na_value=np.nan)
            bad = first_true(~np.isfinite(values))
            if bad is not None:
                raise StudyError(
                    f"{at(label, self.batches, bad, name)}: missing value for batch "
                    f"{self.batches['batch'].iloc[bad]!r} (a batch constant the model needs)"
                )

    def _check_inputs(self, inputs: tuple[str, ...]) -> None:
        table = self.inputs
        mine = table[table["variable"].isin(inputs)]
        present = set(zip(mine["batch"].tolist(), mine["variable"].tolist(), strict=True))
        at_zero = mine[mine["time"] == 0.0]
        started = set(zip(at_zero["batch"].tolist(), at_zero["variable"].tolist(), strict=True))
        for batch in self.batch_names:
            for name in inputs:
                if (batch, name) not in started:
                    self._no_input_at_zero(batch, name, (batch, name) in present)

    def _no_input_at_zero(self, batch: str, name: str, present: bool) -> None:
        """Raise the error for input `name` of `batch`: no rows, or none at time 0."""
        label = self._label("inputs")
        if not present:
            raise StudyError(
                f"{label} column 'variable': batch {batch!r} has no rows for input {name!r}"
            )
        table = self.inputs
        times = table["time"].where((table["batch"] == batch) & (table["variable"] == name))
        first = int(np.nanargmin(times.to_numpy(dtype=float)))
        raise StudyError(
            f"{label}: batch {batch!r} input {name!r} has no value at time 0 "
            f"(first row is row {row(table, first)} at time {times.iloc[first]:g})"
        )

    def _check_initial(self, states: tuple[str, ...]) -> None:
        at_zero = self.measurements[self.measurements["time"] == 0.0]
        present = set(zip(at_zero["batch"], at_zero["variable"], strict=True))
        for batch in self.batch_names:
            for name in states:
                if (batch, name) not in present:
                    raise StudyError(
                        f"{self._label('measurements')}: batch {batch!r} has no value of "
                        f"{name!r} at time 0, and the model declares no initial value for it "
                        '(give one in the model with initial = ... or "estimate")'
                    )


def read_study(
    path: str | os.PathLike, units: Mapping[str, str] | HybridModel | None = None
) -> Study:
    """Read and validate a study folder or Excel workbook.

    Files are read as UTF-8 (a byte-order mark is allowed); header names and text cells
    are stripped of surrounding spaces; blank lines are skipped but still counted in
    row numbers.

    Args:
        path: a folder with ``measurements.csv``, ``batches.csv`` and optionally
            ``inputs.csv`` (absent: no inputs), or an ``.xlsx`` workbook with sheets of
            these names. ``measurements`` and ``inputs`` may be long or wide.
        units: the model (its declared units, and its time unit for ``time``) or a
            mapping of names to units: values whose data declare another unit (a
            ``unit`` column, ``F [mL/h]`` headers) are converted to these. None: values
            are kept as given, and :meth:`Study.check` refuses units other than the
            model's.

    Returns:
        The validated :class:`Study`, with ``name`` the folder or workbook path.

    Raises:
        StudyError: a missing folder, file or sheet, or any bad cell (see
            :func:`study_from_frames`).
    """
    path = Path(path)
    return _build(**read_frames(path), name=str(path), units=units)


def study_from_frames(
    measurements: pd.DataFrame,
    inputs: pd.DataFrame | None = None,
    batches: pd.DataFrame | None = None,
    name: str = "DataFrame",
    units: Mapping[str, str] | HybridModel | None = None,
) -> Study:
    """Build and validate a study from DataFrames, with the same columns as the files
    (``measurements`` and ``inputs`` long or wide).

    The index of the frames is ignored (rows are numbered by position).

    Args:
        measurements: columns ``batch, time, variable, value`` and optionally ``sd``.
        inputs: columns ``batch, time, variable, value``; None for no inputs.
        batches: columns ``batch, process, split`` and any numeric constants; None for
            one row per batch seen in `measurements` (in order of first appearance),
            process ``"default"``, split ``"train"``.
        name: used in messages. With the default ``"DataFrame"``, messages name the
            frames (``measurements row 7 column 'value': ...``, rows numbered from 2 for
            the first positional row, as in a file); otherwise they name
            ``{name}/measurements.csv``.
        units: as for :func:`read_study`.

    Returns:
        The validated :class:`Study`. Text columns become ``str``; ``time``, ``value``,
        ``sd`` and the constants ``float64``.

    Raises:
        StudyError: naming the table, row and column, for a missing column, or an
            unexpected one in `measurements`/`inputs`; no measurement rows; an empty
            text cell; a non-numeric, missing or non-finite ``time``, ``value`` or
            ``sd``, or a non-numeric or infinite constant (an empty constant cell is
            allowed here and refused by :meth:`Study.check` only if the model needs
            it); a negative time; an ``sd`` that is not > 0; two rows with the same
            (batch, time, variable); a batch in `measurements`/`inputs` that is not in
            `batches`; a duplicate batch; a split other than train/valid/test.
    """
    frames = [
        None if frame is None else pd.DataFrame(frame).reset_index(drop=True)
        for frame in (measurements, inputs, batches)
    ]
    return _build(*frames, name=name, units=units)


def write_study(study: Study, folder: str | os.PathLike) -> Path:
    """Write a study as ``measurements.csv``, ``inputs.csv`` and ``batches.csv``.

    Args:
        study: the study to write.
        folder: the folder to write into; created (with parents) if needed. Existing
            files of the same names are overwritten.

    Returns:
        The folder, as a :class:`~pathlib.Path`; :func:`read_study` of it gives back
        the same tables and units (declared units are written in a ``unit`` column
        and in headers such as ``time [min]``; floats are written with full precision;
        the index is not written, so a selected study comes back with the rows
        numbered anew).
    """
    folder = Path(folder)
    write_frames({table: getattr(study, table) for table in TABLES}, study.units, folder)
    return folder


def _names(names: str | Sequence[str]) -> tuple[str, ...]:
    return (names,) if isinstance(names, str) else tuple(names)


def _listed(names, units: Mapping[str, str]) -> str:
    """Unique names in order, each with its unit where known: ``Xv, F [mL/h]``."""
    return ", ".join(f"{n} [{units[n]}]" if n in units else n for n in dict.fromkeys(names))


def _build(
    measurements: pd.DataFrame,
    inputs: pd.DataFrame | None,
    batches: pd.DataFrame | None,
    name: str,
    units: Mapping[str, str] | HybridModel | None = None,
) -> Study:
    if isinstance(units, HybridModel):
        units = {**units.units, "time": units.structure.time_unit}
    t = validated(measurements, inputs, batches, name, units)
    return Study(t.measurements, t.inputs, t.batches, name, t.units, t.columns)
