"""The three tables of a study, read and validated cell by cell: every problem is a
:class:`StudyError` naming the file (or frame), the row as a spreadsheet numbers it
(header = row 1) and the column."""

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "BATCH_COLUMNS",
    "RECORD_COLUMNS",
    "SPLITS",
    "StudyError",
    "at",
    "first_true",
    "table_label",
    "read_csv",
    "row",
    "validated",
]

SPLITS = ("train", "valid", "test")
RECORD_COLUMNS = ("batch", "time", "variable", "value")
BATCH_COLUMNS = ("batch", "process", "split")


class StudyError(ValueError):
    """Bad study data; the message names the file, row and column."""


def table_label(name: str, table: str) -> str:
    """How messages name a table: `measurements` for frames, `folder/measurements.csv` else."""
    return table if name == "DataFrame" else f"{name}/{table}.csv"


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
    """All cells as text, blank lines dropped; the index keeps the line positions."""
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding="utf-8-sig"
        )
    except pd.errors.EmptyDataError as e:
        raise StudyError(f"{label}: empty file (it needs at least a header row)") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise StudyError(f"{label}: cannot be read as CSV ({e})") from e
    blank = frame.fillna("").apply(lambda column: column.str.strip() == "").all(axis=1)
    return frame[~blank]


def _check_columns(
    frame: pd.DataFrame, label: str, required: tuple[str, ...], optional: tuple[str, ...] | None
) -> pd.DataFrame:
    """Strip the header names; refuse missing columns and (if `optional` is given) extra ones."""
    frame = frame.rename(columns=lambda c: str(c).strip())
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
    frame: pd.DataFrame, label: str, column: str, allow_missing: bool = False
) -> np.ndarray:
    """A numeric column as float64; refuses the first non-numeric, non-finite or (unless
    `allow_missing`, which gives NaN) empty cell."""
    raw = frame[column]
    text = raw.astype(str).str.strip()
    missing = (raw.isna() | text.str.lower().isin(["", "nan"])).to_numpy(dtype=bool)
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = first_true(~np.isfinite(values) & ~(missing & allow_missing))
    if bad is None:
        return np.where(missing, np.nan, values)
    where = at(label, frame, bad, column)
    if missing[bad]:
        raise StudyError(f"{where}: missing value")
    problem = "non-finite" if np.isinf(values[bad]) else "non-numeric"
    raise StudyError(f"{where}: {problem} value {text.iloc[bad]!r}")


def _records(frame: pd.DataFrame, label: str, optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """Validate a `measurements` or `inputs` table (everything but unknown batches)."""
    frame = _check_columns(frame, label, RECORD_COLUMNS, optional)
    out = pd.DataFrame(
        {
            "batch": _text(frame, label, "batch"),
            "time": _numbers(frame, label, "time"),
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
    return out


def _batches(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """Validate a `batches` table."""
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
            out[column] = _numbers(frame, label, column, allow_missing=True)
    return out


def validated(
    measurements: pd.DataFrame,
    inputs: pd.DataFrame | None,
    batches: pd.DataFrame | None,
    name: str,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three tables of a study, validated (see :func:`hybridxfer.study_from_frames`).

    Args:
        measurements: the ``measurements`` table as read (text or numbers).
        inputs: the ``inputs`` table, or None for no inputs.
        batches: the ``batches`` table, or None for one train batch of process
            ``"default"`` per batch in `measurements`.
        name: the study's name, for messages (:func:`table_label`).

    Returns:
        ``(measurements, inputs, batches)``, typed as :class:`hybridxfer.Study` holds
        them, each indexed by the rows' positions in the source.

    Raises:
        StudyError: naming the table, row and column of the first bad cell.
    """
    labels = {table: table_label(name, table) for table in ("measurements", "inputs", "batches")}
    m = _records(measurements, labels["measurements"], optional=("sd",))
    if m.empty:
        raise StudyError(f"{labels['measurements']}: no data rows (a study needs measurements)")
    if inputs is None:
        inputs = pd.DataFrame({c: pd.Series(dtype=str) for c in RECORD_COLUMNS})
    i = _records(inputs, labels["inputs"])
    if batches is None:
        names = list(dict.fromkeys(m["batch"]))
        b = pd.DataFrame({"batch": names, "process": "default", "split": "train"}).astype(str)
    else:
        b = _batches(batches, labels["batches"])
    batches_file = labels["batches"].rsplit("/", 1)[-1]
    for label, table in ((labels["measurements"], m), (labels["inputs"], i)):
        bad = first_true(~table["batch"].isin(b["batch"]))
        if bad is not None:
            raise StudyError(
                f"{at(label, table, bad, 'batch')}: unknown batch "
                f"{table['batch'].iloc[bad]!r} (not in {batches_file})"
            )
    return m, i, b
