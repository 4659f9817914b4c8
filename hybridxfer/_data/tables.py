"""The three tables of a study, read and validated cell by cell: every problem is a
:class:`StudyError` naming the file (or frame), the row as a spreadsheet numbers it
(header = row 1) and the column.

Tables come from CSV files, sheets of an Excel workbook or DataFrames. Header names
are matched case-insensitively and may carry a unit in brackets (``F [mL/h]``).
``measurements`` and ``inputs`` are long (``batch, time, variable, value`` and
optionally ``unit``) or wide (``batch, time`` and one column per variable, an empty
cell where nothing was measured; units in the headers or in a second header row whose
``batch`` cell is empty or ``unit``); wide tables are converted to long ones, each
row keeping the number of its source row. Declared units are converted to the wanted
ones (:mod:`hybridxfer._data.units`).
"""

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .outliers import FAR, far_out
from .units import UnitError, convert, split_header

__all__ = [
    "BATCH_COLUMNS",
    "RECORD_COLUMNS",
    "SPLITS",
    "StudyError",
    "Tables",
    "at",
    "first_true",
    "table_label",
    "read_csv",
    "read_workbook",
    "row",
    "validated",
]

SPLITS = ("train", "valid", "test")
RECORD_COLUMNS = ("batch", "time", "variable", "value")
BATCH_COLUMNS = ("batch", "process", "split")


class StudyError(ValueError):
    """Bad study data; the message names the file, row and column."""


def table_label(name: str, table: str) -> str:
    """How messages name a table: `measurements` for frames, `book.xlsx sheet
    'measurements'` for workbooks, `folder/measurements.csv` else."""
    if name == "DataFrame":
        return table
    return f"{name} sheet {table!r}" if name.lower().endswith(".xlsx") else f"{name}/{table}.csv"


def row(frame: pd.DataFrame, position: int) -> int:
    """The spreadsheet row number of the row at `position` (header = 1)."""
    index = frame.index[position]
    return int(index) + 2 if isinstance(index, int | np.integer) else position + 2


def at(label: str, frame: pd.DataFrame, position: int, column: str) -> str:
    return f"{label} row {row(frame, position)} column '{column}'"


def first_true(mask) -> int | None:
    """Position of the first true entry of a boolean array, or `None`."""
    hits = np.flatnonzero(np.asarray(mask, dtype=bool))
    return int(hits[0]) if hits.size else None


def read_csv(path: Path, label: str) -> pd.DataFrame:
    """All cells as text, blank lines dropped; the index keeps the line positions.

    Raises:
        StudyError: an empty or unreadable file; one with a ``;`` or tab delimiter, or
            rows with more cells than the header (decimal commas), with a hint.
    """
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding="utf-8-sig"
        )
    except pd.errors.EmptyDataError as e:
        raise StudyError(f"{label}: empty file (it needs at least a header row)") from e
    except pd.errors.ParserError as e:
        hint = (
            "; if it uses decimal commas (1,5), write decimal points (1.5), or quote the cells"
            if "Expected" in str(e)
            else ""
        )
        raise StudyError(f"{label}: cannot be read as CSV ({str(e).strip()}{hint})") from e
    except UnicodeDecodeError as e:
        raise StudyError(f"{label}: cannot be read as CSV ({e}); save it as UTF-8") from e
    for delimiter, what in ((";", "';'"), ("\t", "tab")):
        if len(frame.columns) == 1 and delimiter in str(frame.columns[0]):
            raise StudyError(
                f"{label}: the header {str(frame.columns[0])[:60]!r} is one column with {what} "
                f"in it: the file seems {what}-delimited; save it comma-delimited (e.g. Excel's "
                "'CSV UTF-8 (comma delimited)') with decimal points, or read it with "
                "pandas.read_csv(..., sep=';', decimal=',') and use study_from_frames"
            )
    return _without_blank_rows(frame)


def read_workbook(path: Path, name: str) -> dict[str, pd.DataFrame | None]:
    """The sheets ``measurements``, ``inputs`` (None if absent) and ``batches`` of an
    Excel workbook, all cells as text, blank rows dropped; the index keeps the rows'
    positions (spreadsheet row = position + 2).

    Raises:
        StudyError: an unreadable workbook, or a missing sheet (naming the sheets found).
    """
    try:
        sheets = pd.read_excel(path, sheet_name=None, dtype=str, keep_default_na=False)
    except Exception as e:  # openpyxl raises many types for a damaged or foreign file
        raise StudyError(f"{name}: cannot be read as an Excel workbook ({e})") from None
    sheets = {str(k).strip(): v for k, v in sheets.items()}
    out: dict[str, pd.DataFrame | None] = {}
    for table in ("measurements", "inputs", "batches"):
        if table in sheets:
            out[table] = _without_blank_rows(sheets[table].astype(str))
        elif table == "inputs":
            out[table] = None
        else:
            raise StudyError(
                f"{name}: missing sheet {table!r} (a study workbook needs sheets "
                f"'measurements' and 'batches', 'inputs' is optional; found: "
                f"{', '.join(map(repr, sheets))})"
            )
    return out


def _without_blank_rows(frame: pd.DataFrame) -> pd.DataFrame:
    blank = frame.fillna("").apply(lambda column: column.str.strip() == "").all(axis=1)
    return frame[~blank]


def _headers(
    frame: pd.DataFrame, label: str, known: tuple[str, ...]
) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """`frame` with its columns named by bare name (``"F [mL/h]"`` -> ``"F"``; the names
    in `known` matched case-insensitively), the unit each header declared, and each
    column's header as written."""
    canonical = {k.lower(): k for k in known}
    names, units, headers = [], {}, {}
    for header in frame.columns:
        name, unit = split_header(str(header))
        name = canonical.get(name.lower(), name)
        if name in headers:
            raise StudyError(f"{label}: two columns named {name!r}: {headers[name]!r}, {header!r}")
        names.append(name)
        headers[name] = str(header).strip()
        if unit:
            units[name] = unit
    return frame.set_axis(names, axis=1), units, headers


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


def _text(frame: pd.DataFrame, label: str, column: str) -> pd.Series:
    """A text column as stripped `str`; refuses empty cells."""
    raw = frame[column]
    text = raw.astype(str).str.strip()
    bad = first_true(raw.isna() | (text == ""))
    if bad is not None:
        raise StudyError(f"{at(label, frame, bad, column)}: missing value")
    return text


def _numbers(
    frame: pd.DataFrame,
    label: str,
    column: str,
    allow_missing: bool = False,
    shown: str | None = None,
) -> np.ndarray:
    """A numeric column as float64; refuses the first non-numeric, non-finite or (unless
    `allow_missing`, which gives NaN) empty cell, naming the column `shown` (default:
    `column`)."""
    raw = frame[column]
    text = raw.astype(str).str.strip()
    missing = (raw.isna() | text.str.lower().isin(["", "nan"])).to_numpy(dtype=bool)
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = first_true(~np.isfinite(values) & ~(missing & allow_missing))
    if bad is None:
        return np.where(missing, np.nan, values)
    where = at(label, frame, bad, shown or column)
    if missing[bad]:
        raise StudyError(f"{where}: missing value")
    problem = "non-finite" if np.isinf(values[bad]) else "non-numeric"
    hint = (
        f" (a decimal comma? write {text.iloc[bad].replace(',', '.')!r})"
        if _DECIMAL_COMMA.fullmatch(text.iloc[bad])
        else ""
    )
    raise StudyError(f"{where}: {problem} value {text.iloc[bad]!r}{hint}")


_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+([eE][+-]?\d+)?")


@dataclass(frozen=True)
class _Records:
    """A validated ``measurements`` or ``inputs`` table.

    Attributes:
        frame: long, with a text column ``unit`` ("" where none declared).
        columns: for a wide table, each variable's column header as written.
        time_unit: the unit the ``time`` header declared, or None.
    """

    frame: pd.DataFrame
    columns: dict[str, str]
    time_unit: str | None


def _records(frame: pd.DataFrame, label: str, optional: tuple[str, ...] = ()) -> _Records:
    """Validate a `measurements` or `inputs` table, long or wide (everything but unknown
    batches)."""
    frame, units, headers = _headers(frame, label, RECORD_COLUMNS + optional + ("unit",))
    columns: dict[str, str] = {}
    if "variable" not in frame.columns and "value" not in frame.columns:
        if "batch" not in frame.columns or "time" not in frame.columns:
            raise StudyError(
                f"{label}: missing column {'batch' if 'batch' not in frame else 'time'!r} "
                "(a long table has columns batch, time, variable, value; a wide one batch, "
                "time and one column per variable)"
            )
        frame, units, columns = _melted(frame, label, units, headers)
    frame = _check_columns(frame, label, RECORD_COLUMNS, optional + ("unit",))
    out = pd.DataFrame(
        {
            "batch": _text(frame, label, "batch"),
            "time": _numbers(frame, label, "time", shown=headers["time"]),
            "variable": _text(frame, label, "variable"),
            "value": _numbers(frame, label, "value"),
        },
        index=frame.index,
    )
    negative = first_true(out["time"] < 0)
    if negative is not None:
        time = out["time"].iloc[negative]
        raise StudyError(f"{at(label, out, negative, 'time')}: negative time {time:g}")
    if "sd" in frame.columns:
        out["sd"] = _numbers(frame, label, "sd")
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
    return _Records(out, columns, units.get("time"))


def _melted(
    frame: pd.DataFrame, label: str, units: dict[str, str], headers: dict[str, str]
) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """A wide table (``batch, time`` and one column per variable) as a long one of text
    cells, one row per non-empty variable cell, indexed by its source row; the units
    (from the headers and an optional units row) and each variable's header."""
    units = dict(units)
    first = frame.iloc[0] if len(frame) else None
    if (
        first is not None
        and str(first["batch"]).strip().lower() in ("", "unit", "units")
        and np.isnan(pd.to_numeric(str(first["time"]).strip() or "nan", errors="coerce"))
    ):  # a units row: no batch, and a unit (not a number) under time
        for column, cell in first.items():
            cell = str(cell).strip().strip("[]").strip()
            if column == "batch" or not cell:
                continue
            if units.get(column, cell) != cell:
                raise StudyError(
                    f"{at(label, frame, 0, headers[column])}: unit {cell!r} differs from "
                    f"the header's {units[column]!r}"
                )
            units[column] = cell
        frame = frame.iloc[1:]
    variables = [c for c in frame.columns if c not in ("batch", "time")]
    if not variables:
        raise StudyError(f"{label}: no variable columns (a wide table: batch, time, variables)")
    cells = {v: _numbers(frame, label, v, allow_missing=True, shown=headers[v]) for v in variables}
    present = np.column_stack([np.isfinite(cells[v]) for v in variables])
    rows, cols = np.nonzero(present)  # row-major: each source row's variables in order
    long = pd.DataFrame(
        {
            "batch": frame["batch"].to_numpy()[rows],
            "time": frame["time"].to_numpy()[rows],
            "variable": np.asarray(variables, dtype=object)[cols],
            "value": np.column_stack([cells[v] for v in variables])[rows, cols],
        },
        index=frame.index[rows],
    )
    return long, units, {v: headers[v] for v in variables}


def _batches(frame: pd.DataFrame, label: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Validate a `batches` table; also the units its headers declare."""
    frame, units, headers = _headers(frame, label, BATCH_COLUMNS)
    frame = _check_columns(frame, label, BATCH_COLUMNS, None)
    out = pd.DataFrame({c: _text(frame, label, c) for c in BATCH_COLUMNS}, index=frame.index)
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
            out[column] = _numbers(frame, label, column, allow_missing=True, shown=headers[column])
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
        name: the study's name, for messages (:func:`table_label`).
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
        tables.append(_in_units(records, label, wanted, declared))
    b = b.copy()
    for column, unit in constant_units.items():
        b[column] = _converted(
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


def _in_units(
    records: _Records, label: str, wanted: dict[str, str], declared: dict[str, tuple[str, str]]
) -> pd.DataFrame:
    """The table of `records` with values (and sd, time) in the wanted units where their
    declared ones differ, without the ``unit`` column; records each declared unit."""
    out = records.frame.drop(columns="unit")
    if records.time_unit is not None:
        where = f"{label} column 'time'"
        out["time"] = _converted(
            out["time"].to_numpy(), records.time_unit, wanted.get("time"), where, "time", declared
        )
    frame = records.frame
    for variable, unit in (
        frame.loc[frame["unit"] != "", ["variable", "unit"]]
        .drop_duplicates()
        .itertuples(index=False)
    ):
        rows = np.flatnonzero((frame["variable"] == variable) & (frame["unit"] == unit))
        if variable in records.columns:
            where = f"{label} column {records.columns[variable]!r}"
        else:
            where = at(label, frame, int(rows[0]), "unit")
        target = wanted.get(variable)
        values = out["value"].to_numpy()[rows]
        out.iloc[rows, out.columns.get_loc("value")] = _converted(
            values, unit, target, where, variable, declared
        )
        if "sd" in out.columns and target is not None:
            sd = out["sd"].to_numpy()[rows]  # an affine map: sd scales by its slope
            out.iloc[rows, out.columns.get_loc("sd")] = convert(
                values + sd, unit, target
            ) - convert(values, unit, target)
    return out


def _converted(
    values: np.ndarray,
    unit: str,
    target: str | None,
    where: str,
    name: str,
    declared: dict[str, tuple[str, str]],
) -> np.ndarray:
    """`values` of `name` declared in `unit` (at `where`), converted to `target` if
    given; records the unit they are then in, refusing two different units of
    `name` when nothing converts them."""
    try:
        out = values if target is None else convert(values, unit, target)
    except UnitError as e:
        raise StudyError(f"{where}: {name}: {e}") from None
    now = unit if target is None else target
    previous = declared.setdefault(name, (now, where))
    if previous[0] != now:
        raise StudyError(
            f"{where}: {name} is given in {unit!r} here and in {previous[0]!r} at "
            f"{previous[1]}; read the study with the model's units (units=model) to "
            "convert both"
        )
    return out


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
