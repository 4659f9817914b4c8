"""The forms study data come in, and their conversion to long tables in the wanted
units; :mod:`hybridxfer._data.tables` validates what they give.

- Sources: a folder of CSV files (UTF-8, a byte-order mark allowed, comma-delimited;
  a ``;`` or tab delimiter, or decimal commas, refused with a hint) or an Excel
  workbook (``.xlsx``, one sheet per table). All cells are read as text; blank rows
  are dropped but still counted in row numbers.
- Headers: names matched case-insensitively; a unit in brackets (``F [mL/h]``).
- Wide tables (``batch, time`` and one column per variable, an empty cell where
  nothing was measured; units in the headers or in a second header row whose
  ``batch`` cell is empty or ``unit``) become long ones, each row keeping the number
  of its source row.
- Units: values declared in one unit are converted to the wanted one with pint
  (:mod:`hybridxfer._data.units`); without a wanted unit the declared one is recorded,
  and two different units of one name are refused.
- Written back (:func:`write_frames`): long tables, their units in a ``unit`` column
  and in the headers, read back to the same tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .cells import StudyError, at, number_column, table_label
from .units import UnitError, convert, split_header

if TYPE_CHECKING:
    from .tables import Records

__all__ = [
    "TABLES",
    "bare_headers",
    "converted",
    "in_units",
    "melted",
    "read_csv",
    "read_frames",
    "read_workbook",
    "write_frames",
]

TABLES = ("measurements", "inputs", "batches")


# ---------------------------------------------------------------------- sources
def read_frames(path: Path) -> dict[str, pd.DataFrame | None]:
    """The tables of the study folder or ``.xlsx`` workbook at `path`, as read (see
    :func:`read_csv`, :func:`read_workbook`): ``measurements``, ``inputs`` (None if
    absent) and ``batches``.

    Raises:
        StudyError: a missing folder, workbook, file or sheet, a spreadsheet that is
            not ``.xlsx``, or an unreadable file.
    """
    name = str(path)
    if path.suffix.lower() == ".xlsx":
        if not path.is_file():
            raise StudyError(f"study workbook '{path}' does not exist or is not a file")
        return read_workbook(path, name)
    if path.suffix.lower() in (".xls", ".xlsm", ".ods", ".csv") and path.is_file():
        raise StudyError(
            f"'{path}': a study is a folder of CSV files or an .xlsx workbook (save it as .xlsx)"
        )
    if not path.is_dir():
        raise StudyError(f"study folder '{path}' does not exist or is not a folder")
    frames = {}
    for table in TABLES:
        file = path / f"{table}.csv"
        if file.is_file():
            frames[table] = read_csv(file, table_label(name, table))
        elif table == "inputs":
            frames[table] = None
        else:
            raise StudyError(
                f"{path}: missing file '{table}.csv' (a study needs measurements.csv and "
                "batches.csv; inputs.csv is optional)"
            )
    return frames


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
    for table in TABLES:
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


def write_frames(
    frames: Mapping[str, pd.DataFrame], units: Mapping[str, str], folder: Path
) -> None:
    """Write each table of `frames` as ``{table}.csv`` in `folder` (created, with its
    parents, if needed), long, declaring `units`: in a ``unit`` column of a table with
    a variable that has one, and in headers such as ``time [min]``; floats with full
    precision, no index. :func:`read_frames` reads them back."""
    folder.mkdir(parents=True, exist_ok=True)
    for table, frame in frames.items():
        if table != "batches" and any(v in units for v in frame["variable"]):
            frame = frame.assign(unit=frame["variable"].map(units).fillna(""))
        named = {c: f"{c} [{units[c]}]" for c in frame.columns if c in units}
        frame.rename(columns=named).to_csv(folder / f"{table}.csv", index=False)


# ---------------------------------------------------------------------- headers
def bare_headers(
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


def melted(
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
    cells = {
        v: number_column(frame, label, v, allow_missing=True, shown=headers[v]) for v in variables
    }
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


# ------------------------------------------------------------------------ units
def in_units(
    records: Records, label: str, wanted: dict[str, str], declared: dict[str, tuple[str, str]]
) -> pd.DataFrame:
    """The table of `records` with values (and sd, time) in the wanted units where their
    declared ones differ, without the ``unit`` column; records each declared unit."""
    out = records.frame.drop(columns="unit")
    if records.time_unit is not None:
        where = f"{label} column 'time'"
        out["time"] = converted(
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
        out.iloc[rows, out.columns.get_loc("value")] = converted(
            values, unit, target, where, variable, declared
        )
        if "sd" in out.columns and target is not None:
            sd = out["sd"].to_numpy()[rows]  # an affine map: sd scales by its slope
            out.iloc[rows, out.columns.get_loc("sd")] = convert(
                values + sd, unit, target
            ) - convert(values, unit, target)
    return out


def converted(
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
