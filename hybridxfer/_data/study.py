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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .._core.model import HybridModel
from .cells import StudyError
from .formats import TABLES, read_frames, write_frames
from .needs import StudyNeeds, check
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
        check(self, needs)

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
