"""Cells of a study's tables: where one is, as every message names it (the table, the
row as a spreadsheet numbers it: header = row 1, and the column), and what it holds:
a column's text or numbers, the first bad cell refused in a :class:`StudyError` naming
it.
"""

import re

import numpy as np
import pandas as pd

__all__ = ["StudyError", "at", "first_true", "number_column", "row", "table_label", "text_column"]


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
    """Where the cell at `position` in `column` is: ``{label} row {row} column '{column}'``."""
    return f"{label} row {row(frame, position)} column '{column}'"


def first_true(mask) -> int | None:
    """Position of the first true entry of a boolean array, or `None`."""
    hits = np.flatnonzero(np.asarray(mask, dtype=bool))
    return int(hits[0]) if hits.size else None


def text_column(frame: pd.DataFrame, label: str, column: str) -> pd.Series:
    """A text column as stripped `str`; refuses empty cells."""
    raw = frame[column]
    text = raw.astype(str).str.strip()
    bad = first_true(raw.isna() | (text == ""))
    if bad is not None:
        raise StudyError(f"{at(label, frame, bad, column)}: missing value")
    return text


def number_column(
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
