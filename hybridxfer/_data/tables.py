"""The three tables of a study, validated cell by cell: every problem is a
:class:`~hybridxfer._data.cells.StudyError` naming the file (or frame), the row as a
spreadsheet numbers it (header = row 1) and the column.

Tables come from CSV files, sheets of an Excel workbook or DataFrames, long or wide,
their units declared or not (:mod:`hybridxfer._data.formats` reads them and converts
wide tables to long ones and declared units to the wanted ones); each row keeps the
number of its source row.
"""

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .cells import StudyError, at, first_true, number_column, row, table_label, text_column
from .formats import bare_headers, converted, in_units, melted
from .outliers import FAR, far_out

__all__ = [
    "BATCH_COLUMNS",
    "RECORD_COLUMNS",
    "SPLITS",
    "Records",
    "Tables",
    "validated",
]

SPLITS = ("train", "valid", "test")
RECORD_COLUMNS = ("batch", "time", "variable", "value")
BATCH_COLUMNS = ("batch", "process", "split")


def _check_columns(
    frame: pd.DataFrame, label: str, required: tuple[str, ...], optional: tuple[str, ...] | None
) -> pd.DataFrame:
    """Refuse missing columns and (if `optional` is given) extra ones."""
    for column in required:
        if column not in frame.columns:
            raise StudyError(
                f"{label}: missing column {column!r} (required columns: {', '.join(required)})"
            )
    if optional is not None:
        extra = [c for c in frame.columns if c not in required + optional]
        if extra:
            allowed = ", ".join(required + optional)
            raise StudyError(f"{label}: unexpected column {extra[0]!r} (allowed: {allowed})")
    return frame


@dataclass(frozen=True)
class Records:
    """A validated ``measurements`` or ``inputs`` table.

    Attributes:
        frame: long, with a text column ``unit`` ("" where none declared).
        columns: for a wide table, each variable's column header as written.
        time_unit: the unit the ``time`` header declared, or None.
    """

    frame: pd.DataFrame
    columns: dict[str, str]
    time_unit: str | None


def _records(frame: pd.DataFrame, label: str, optional: tuple[str, ...] = ()) -> Records:
    """Validate a `measurements` or `inputs` table, long or wide (everything but unknown
    batches)."""
    frame, units, headers = bare_headers(frame, label, RECORD_COLUMNS + optional + ("unit",))
    columns: dict[str, str] = {}
    if "variable" not in frame.columns and "value" not in frame.columns:
        if "batch" not in frame.columns or "time" not in frame.columns:
            raise StudyError(
                f"{label}: missing column {'batch' if 'batch' not in frame else 'time'!r} "
                "(a long table has columns batch, time, variable, value; a wide one batch, "
                "time and one column per variable)"
            )
        frame, units, columns = melted(frame, label, units, headers)
    frame = _check_columns(frame, label, RECORD_COLUMNS, optional + ("unit",))
    out = pd.DataFrame(
        {
            "batch": text_column(frame, label, "batch"),
            "time": number_column(frame, label, "time", shown=headers["time"]),
            "variable": text_column(frame, label, "variable"),
            "value": number_column(frame, label, "value"),
        },
        index=frame.index,
    )
    negative = first_true(out["time"] < 0)
    if negative is not None:
        time = out["time"].iloc[negative]
        raise StudyError(f"{at(label, out, negative, 'time')}: negative time {time:g}")
    if "sd" in frame.columns:
        out["sd"] = number_column(frame, label, "sd")
        bad = first_true(out["sd"] <= 0)
        if bad is not None:
            sd = out["sd"].iloc[bad]
            raise StudyError(f"{at(label, out, bad, 'sd')}: sd must be > 0, got {sd:g}")
    key = ["batch", "time", "variable"]
    second = first_true(out.duplicated(key))
    if second is not None:
        batch, time, variable = out[key].iloc[second]
        first = first_true(
            (out["batch"] == batch) & (out["time"] == time) & (out["variable"] == variable)
        )
        raise StudyError(
            f"{label} rows {row(out, first)} and {row(out, second)} columns 'batch', 'time', "
            f"'variable': duplicate rows for batch {batch!r}, variable {variable!r} at time "
            f"{time:g}"
        )
    if "unit" in frame.columns:
        out["unit"] = frame["unit"].astype(str).str.strip().str.strip("[]").str.strip()
    else:
        default = units.get("value", "")
        out["unit"] = [units.get(v, default) for v in out["variable"]]
    return Records(out, columns, units.get("time"))


def _batches(frame: pd.DataFrame, label: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Validate a `batches` table; also the units its headers declare."""
    frame, units, headers = bare_headers(frame, label, BATCH_COLUMNS)
    frame = _check_columns(frame, label, BATCH_COLUMNS, None)
    out = pd.DataFrame({c: text_column(frame, label, c) for c in BATCH_COLUMNS}, index=frame.index)
    second = first_true(out["batch"].duplicated())
    if second is not None:
        batch = out["batch"].iloc[second]
        first = first_true(out["batch"] == batch)
        raise StudyError(
            f"{label} rows {row(out, first)} and {row(out, second)} column 'batch': "
            f"duplicate batch {batch!r}"
        )
    bad = first_true(~out["split"].isin(SPLITS))
    if bad is not None:
        raise StudyError(
            f"{at(label, out, bad, 'split')}: unknown split {out['split'].iloc[bad]!r} "
            f"(expected one of {', '.join(SPLITS)})"
        )
    for column in frame.columns:
        if column not in BATCH_COLUMNS:
            out[column] = number_column(
                frame, label, column, allow_missing=True, shown=headers[column]
            )
    return out, {c: u for c, u in units.items() if c not in BATCH_COLUMNS}


@dataclass(frozen=True)
class Tables:
    """The validated tables of a study (see :func:`validated`).

    Attributes:
        measurements, inputs, batches: as :class:`hybridxfer.Study` holds them.
        units: the unit of each variable, constant and ``time`` whose data declared one,
            after conversion (the wanted unit where one was given).
        columns: for each wide table, each variable's column header as written.
    """

    measurements: pd.DataFrame
    inputs: pd.DataFrame
    batches: pd.DataFrame
    units: dict[str, str] = field(default_factory=dict)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)


def validated(
    measurements: pd.DataFrame,
    inputs: pd.DataFrame | None,
    batches: pd.DataFrame | None,
    name: str,
    units: Mapping[str, str] | None = None,
) -> Tables:
    """The three tables of a study, validated (see :func:`hybridxfer.study_from_frames`).

    Args:
        measurements: the ``measurements`` table as read (text or numbers), long or wide.
        inputs: the ``inputs`` table, long or wide, or None for no inputs.
        batches: the ``batches`` table, or None for one train batch of process
            ``"default"`` per batch in `measurements`.
        name: the study's name, for messages (:func:`~hybridxfer._data.cells.table_label`).
        units: the wanted unit of each variable, constant and ``time``; values whose
            data declare another unit are converted to it. None: values are kept in
            the declared units (recorded in ``Tables.units``).

    Returns:
        The :class:`Tables`; measurements, inputs and batches typed as
        :class:`hybridxfer.Study` holds them, each indexed by the rows' positions in
        the source.

    Warns:
        UserWarning: measured values far out of their variable's distribution
            (:func:`hybridxfer._data.outliers.far_out`), naming the rows.

    Raises:
        StudyError: naming the table, row and column of the first bad cell, or the
            column of a unit that is unknown or cannot be converted.
    """
    wanted = dict(units or {})
    labels = {table: table_label(name, table) for table in ("measurements", "inputs", "batches")}
    m = _records(measurements, labels["measurements"], optional=("sd",))
    if m.frame.empty:
        raise StudyError(f"{labels['measurements']}: no data rows (a study needs measurements)")
    if inputs is None:
        inputs = pd.DataFrame({c: pd.Series(dtype=str) for c in RECORD_COLUMNS})
    i = _records(inputs, labels["inputs"])
    if batches is None:
        names = list(dict.fromkeys(m.frame["batch"]))
        b = pd.DataFrame({"batch": names, "process": "default", "split": "train"}).astype(str)
        constant_units = {}
    else:
        b, constant_units = _batches(batches, labels["batches"])
    batches_file = labels["batches"].rsplit("/", 1)[-1]
    for label, table in ((labels["measurements"], m.frame), (labels["inputs"], i.frame)):
        bad = first_true(~table["batch"].isin(b["batch"]))
        if bad is not None:
            raise StudyError(
                f"{at(label, table, bad, 'batch')}: unknown batch "
                f"{table['batch'].iloc[bad]!r} (not in {batches_file})"
            )
    declared: dict[str, tuple[str, str]] = {}  # name -> (unit, where it was declared)
    tables = []
    for label, records in ((labels["measurements"], m), (labels["inputs"], i)):
        tables.append(in_units(records, label, wanted, declared))
    b = b.copy()
    for column, unit in constant_units.items():
        b[column] = converted(
            b[column].to_numpy(),
            unit,
            wanted.get(column),
            f"{labels['batches']} column {column!r}",
            column,
            declared,
        )
    _warn_far_out(tables[0], labels["measurements"], m.columns)
    columns = {t: r.columns for t, r in (("measurements", m), ("inputs", i)) if r.columns}
    return Tables(tables[0], tables[1], b, {k: u for k, (u, _) in declared.items()}, columns)


def _warn_far_out(m: pd.DataFrame, label: str, columns: dict[str, str]) -> None:
    """Warn (one UserWarning) about measured values far out of their variable's values."""
    hits = []
    for variable, group in m.groupby("variable", sort=False):
        for position in np.flatnonzero(far_out(group["value"].to_numpy())):
            hits.append((group.index[position], variable, group.iloc[position]))
    if not hits:
        return
    listed = "; ".join(
        f"row {int(index) + 2} column {columns.get(v, 'value')!r} (batch {r['batch']!r}, "
        f"{v} = {r['value']:g} at time {r['time']:g})"
        for index, v, r in sorted(hits, key=lambda h: h[0])[:5]
    )
    more = f" and {len(hits) - 5} more" if len(hits) > 5 else ""
    warnings.warn(
        f"{label}: suspected outlier(s), set apart from their variable's other values by a "
        f"gap over {FAR:g} times the others' range: {listed}{more}; check them (they do not "
        "set the fit's loss scales)",
        UserWarning,
        stacklevel=4,
    )
