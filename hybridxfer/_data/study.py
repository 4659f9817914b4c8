"""The study folder: tidy, long-format bioreactor data, and its validation.

A study is a folder with three CSV files (times in the model's time unit, e.g. h):

- `measurements.csv`: `batch,time,variable,value` and optionally `sd`. One row per sample;
    a missing sample is an absent row.
- `inputs.csv` (optional): `batch,time,variable,value`. Controls and online signals, held
    constant from each time on (zero-order hold), and *event* variables (an amount added at
    that instant, e.g. a bolus volume in L).
- `batches.csv`: `batch,process,split` and then any per-batch numeric constants. One row per
    batch; `split` is `train`, `valid` or `test`.

Everything is checked when the study is read, so that bad data fails here with a message
naming the file, the row (as a spreadsheet numbers it: header = row 1, first data row =
row 2) and the column, never as a NaN deep inside an ODE solve.
"""

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SPLITS = ("train", "valid", "test")
_RECORD_COLUMNS = ("batch", "time", "variable", "value")
_BATCH_COLUMNS = ("batch", "process", "split")


class StudyError(ValueError):
    """Bad study data; the message names the file, row and column."""


@dataclass(frozen=True)
class StudyNeeds:
    """What a model needs from a study (built by the model, consumed by
    [`Study.check`][hybridxfer.study.Study.check]).

    **Fields:**

    - `variables`: every variable name the model knows in `measurements` (states, volume,
        observables). Other measured variables are ignored, with a warning.
    - `initial_from_data`: states whose value at time 0 must be measured in every batch.
    - `inputs`: continuous inputs; every batch needs a row at time 0 for each.
    - `events`: event inputs (optional per batch; a value is an amount added at that instant).
    - `constants`: batch constants; columns of `batches`, finite numbers for every batch.
    """

    variables: tuple[str, ...] = ()
    initial_from_data: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    constants: tuple[str, ...] = ()


@dataclass(frozen=True)
class Study:
    """A validated study: three long-format tables.

    Build one with [`read_study`][hybridxfer.study.read_study] or
    [`study_from_frames`][hybridxfer.study.study_from_frames], which validate; the
    constructor itself checks nothing.

    **Fields:**

    - `measurements`: columns `batch` (str), `time` (float64, ≥ 0), `variable` (str),
        `value` (float64, finite) and optionally `sd` (float64, > 0). At most one row per
        (batch, time, variable). Rows in file order.
    - `inputs`: columns `batch`, `time`, `variable`, `value`, same dtypes and rules; may have
        no rows.
    - `batches`: columns `batch`, `process`, `split` (str), then the batch constants
        (float64; NaN where a cell was empty). One row per batch, in file order.
    - `name`: the folder path, or `"DataFrame"`; used in messages.

    The index of each table is the row's 0-based position in its source file or frame (the
    spreadsheet row number minus 2). It is kept by [`select`][hybridxfer.study.Study.select],
    so that messages about a subset still name the rows of the original file.
    """

    measurements: pd.DataFrame
    inputs: pd.DataFrame
    batches: pd.DataFrame
    name: str = "study"

    @property
    def batch_names(self) -> tuple[str, ...]:
        """The batch names, in the order of `batches`."""
        return tuple(self.batches["batch"])

    @property
    def processes(self) -> tuple[str, ...]:
        """The process names, unique, in order of first appearance in `batches`."""
        return tuple(dict.fromkeys(self.batches["process"]))

    @property
    def constant_names(self) -> tuple[str, ...]:
        """The batch constants: the columns of `batches` after `batch`, `process`, `split`."""
        return tuple(c for c in self.batches.columns if c not in _BATCH_COLUMNS)

    def select(
        self,
        process: str | Sequence[str] | None = None,
        split: str | Sequence[str] | None = None,
    ) -> "Study":
        """The sub-study of the batches with the given process(es) and split(s).

        **Arguments:**

        - `process`: a process name, a sequence of names, or `None` for all processes.
        - `split`: `"train"`, `"valid"`, `"test"`, a sequence of these, or `None` for all.

        **Returns:**

        A `Study` with the selected batches and their rows of all three tables (same order,
        same index).

        **Raises:**

        `StudyError` for a process not in the study or a split that does not exist, or when
        no batch is selected.
        """
        processes = self.processes if process is None else _names(process)
        splits = SPLITS if split is None else _names(split)
        for wanted, known, what in (
            (processes, self.processes, "process"),
            (splits, SPLITS, "split"),
        ):
            unknown = [n for n in wanted if n not in known]
            if unknown:
                raise StudyError(
                    f"{self.name}: unknown {what} {unknown[0]!r} (known: {', '.join(known)})"
                )
        keep = self.batches["process"].isin(processes) & self.batches["split"].isin(splits)
        if not keep.any():
            raise StudyError(
                f"{self.name}: the selection is empty (no batch has process in "
                f"{list(processes)} and split in {list(splits)})"
            )
        batches = self.batches[keep]
        return Study(
            measurements=self.measurements[self.measurements["batch"].isin(batches["batch"])],
            inputs=self.inputs[self.inputs["batch"].isin(batches["batch"])],
            batches=batches,
            name=self.name,
        )

    def check(self, needs: StudyNeeds) -> None:
        """Check that this study has what a model needs.

        **Arguments:**

        - `needs`: what the model needs (see [`StudyNeeds`][hybridxfer.study.StudyNeeds]).

        **Returns:**

        Nothing. Warns (one `UserWarning` listing them all) about measured variables and
        inputs that the model does not know; they are ignored.

        **Raises:**

        `StudyError` when a needed batch constant is missing (column or cell), a batch has no
        value at time 0 of a needed input, or a batch has no measurement at time 0 of a state
        in `needs.initial_from_data`.
        """
        self._warn_unknown(needs)
        self._check_constants(needs.constants)
        self._check_inputs(needs.inputs)
        self._check_initial(needs.initial_from_data)

    def end_time(self, batch: str) -> float:
        """The last time of any measurement or input row of `batch` [model time unit].

        **Raises:**

        `StudyError` if `batch` is not in the study or has no rows.
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
        return _label(self.name, table)

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

    def _check_constants(self, constants: tuple[str, ...]) -> None:
        label = self._label("batches")
        for name in constants:
            if name not in self.batches.columns or name in _BATCH_COLUMNS:
                raise StudyError(
                    f"{label}: missing column {name!r} (a batch constant the model needs)"
                )
            values = self.batches[name].to_numpy(dtype=float, na_value=np.nan)
            bad = _first(~np.isfinite(values))
            if bad is not None:
                raise StudyError(
                    f"{_at(label, self.batches, bad, name)}: missing value for batch "
                    f"{self.batches['batch'].iloc[bad]!r} (a batch constant the model needs)"
                )

    def _check_inputs(self, inputs: tuple[str, ...]) -> None:
        label = self._label("inputs")
        table = self.inputs
        for batch in self.batch_names:
            for name in inputs:
                mine = (table["batch"] == batch) & (table["variable"] == name)
                if not mine.any():
                    raise StudyError(
                        f"{label} column 'variable': batch {batch!r} has no rows for input {name!r}"
                    )
                times = table["time"].where(mine)
                if not (times == 0.0).any():
                    first = int(np.nanargmin(times.to_numpy(dtype=float)))
                    raise StudyError(
                        f"{label}: batch {batch!r} input {name!r} has no value at time 0 "
                        f"(first row is row {_row(table, first)} at time {times.iloc[first]:g})"
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


def read_study(folder: str | os.PathLike) -> Study:
    """Read and validate a study folder.

    **Arguments:**

    - `folder`: a folder with `measurements.csv`, `batches.csv` and optionally `inputs.csv`
        (absent: no inputs). Files are read as UTF-8 (a byte-order mark is allowed); header
        names and text cells are stripped of surrounding spaces; blank lines are skipped but
        still counted in row numbers.

    **Returns:**

    The validated [`Study`][hybridxfer.study.Study], with `name` the folder path.

    **Raises:**

    `StudyError` for a missing folder or file, and for any bad cell: see
    [`study_from_frames`][hybridxfer.study.study_from_frames].
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise StudyError(f"study folder '{folder}' does not exist or is not a folder")
    name = str(folder)
    frames = {}
    for table in ("measurements", "inputs", "batches"):
        path = folder / f"{table}.csv"
        if path.is_file():
            frames[table] = _read_csv(path, _label(name, table))
        elif table == "inputs":
            frames[table] = None
        else:
            raise StudyError(
                f"{folder}: missing file '{table}.csv' (a study needs measurements.csv and "
                "batches.csv; inputs.csv is optional)"
            )
    return _build(frames["measurements"], frames["inputs"], frames["batches"], name)


def study_from_frames(
    measurements: pd.DataFrame,
    inputs: pd.DataFrame | None = None,
    batches: pd.DataFrame | None = None,
    name: str = "DataFrame",
) -> Study:
    """Build and validate a study from DataFrames, with the same columns as the files.

    **Arguments:**

    - `measurements`: columns `batch`, `time`, `variable`, `value` and optionally `sd`.
    - `inputs`: columns `batch`, `time`, `variable`, `value`; `None` for no inputs.
    - `batches`: columns `batch`, `process`, `split` and any numeric constants; `None` for
        one row per batch seen in `measurements` (in order of first appearance), process
        `"default"`, split `"train"`.
    - `name`: used in messages. With the default `"DataFrame"`, messages name the frames
        (`measurements row 7 column 'value': ...`, rows numbered from 2 for the first
        positional row, as in a file); otherwise they name `{name}/measurements.csv`.

    The index of the frames is ignored (rows are numbered by position).

    **Returns:**

    The validated [`Study`][hybridxfer.study.Study]. Text columns become `str`, `time`,
    `value`, `sd` and the constants `float64`.

    **Raises:**

    `StudyError`, naming the table, row and column, for: a missing column, or an unexpected
    one in `measurements`/`inputs`; no measurement rows; an empty text cell; a non-numeric,
    missing or non-finite `time`, `value` or `sd`, or a non-numeric or infinite constant (an
    empty constant cell is allowed here and refused by `Study.check` only if the model
    needs it); a negative time; an `sd` that is not > 0; two rows with the same (batch,
    time, variable); a batch in `measurements`/`inputs` that is not in `batches`; a
    duplicate batch; a split other than train/valid/test.
    """
    frames = [
        None if frame is None else pd.DataFrame(frame).reset_index(drop=True)
        for frame in (measurements, inputs, batches)
    ]
    return _build(*frames, name=name)


def write_study(study: Study, folder: str | os.PathLike) -> Path:
    """Write a study as `measurements.csv`, `inputs.csv` and `batches.csv`.

    **Arguments:**

    - `study`: the study to write.
    - `folder`: the folder to write into; created (with parents) if needed. Existing files of
        the same names are overwritten.

    **Returns:**

    The folder, as a `Path`; `read_study` of it gives back the same tables (floats are written
    with full precision; the index is not written, so a selected study comes back with the
    rows numbered anew).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for table in ("measurements", "inputs", "batches"):
        getattr(study, table).to_csv(folder / f"{table}.csv", index=False)
    return folder


# ---------------------------------------------------------------------------------------------
# Private helpers


def _label(name: str, table: str) -> str:
    """How messages name a table: `measurements` for frames, `folder/measurements.csv` else."""
    return table if name == "DataFrame" else f"{name}/{table}.csv"


def _names(names: str | Sequence[str]) -> tuple[str, ...]:
    return (names,) if isinstance(names, str) else tuple(names)


def _row(frame: pd.DataFrame, position: int) -> int:
    """The spreadsheet row number of the row at `position` (header = 1)."""
    index = frame.index[position]
    return int(index) + 2 if isinstance(index, int | np.integer) else position + 2


def _at(label: str, frame: pd.DataFrame, position: int, column: str) -> str:
    return f"{label} row {_row(frame, position)} column '{column}'"


def _first(mask) -> int | None:
    """Position of the first true entry of a boolean array, or `None`."""
    hits = np.flatnonzero(np.asarray(mask, dtype=bool))
    return int(hits[0]) if hits.size else None


def _read_csv(path: Path, label: str) -> pd.DataFrame:
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
    bad = _first(raw.isna() | (text == ""))
    if bad is not None:
        raise StudyError(f"{_at(label, frame, bad, column)}: missing value")
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
    bad = _first(~np.isfinite(values) & ~(missing & allow_missing))
    if bad is None:
        return np.where(missing, np.nan, values)
    where = _at(label, frame, bad, column)
    if missing[bad]:
        raise StudyError(f"{where}: missing value")
    problem = "non-finite" if np.isinf(values[bad]) else "non-numeric"
    raise StudyError(f"{where}: {problem} value {text.iloc[bad]!r}")


def _records(frame: pd.DataFrame, label: str, optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """Validate a `measurements` or `inputs` table (everything but unknown batches)."""
    frame = _check_columns(frame, label, _RECORD_COLUMNS, optional)
    out = pd.DataFrame(
        {
            "batch": _text(frame, label, "batch"),
            "time": _numbers(frame, label, "time"),
            "variable": _text(frame, label, "variable"),
            "value": _numbers(frame, label, "value"),
        },
        index=frame.index,
    )
    negative = _first(out["time"] < 0)
    if negative is not None:
        time = out["time"].iloc[negative]
        raise StudyError(f"{_at(label, out, negative, 'time')}: negative time {time:g}")
    if "sd" in frame.columns:
        out["sd"] = _numbers(frame, label, "sd")
        bad = _first(out["sd"] <= 0)
        if bad is not None:
            sd = out["sd"].iloc[bad]
            raise StudyError(f"{_at(label, out, bad, 'sd')}: sd must be > 0, got {sd:g}")
    key = ["batch", "time", "variable"]
    second = _first(out.duplicated(key))
    if second is not None:
        batch, time, variable = out[key].iloc[second]
        first = _first(
            (out["batch"] == batch) & (out["time"] == time) & (out["variable"] == variable)
        )
        raise StudyError(
            f"{label} rows {_row(out, first)} and {_row(out, second)} columns 'batch', 'time', "
            f"'variable': duplicate rows for batch {batch!r}, variable {variable!r} at time "
            f"{time:g}"
        )
    return out


def _batches(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """Validate a `batches` table."""
    frame = _check_columns(frame, label, _BATCH_COLUMNS, None)
    out = pd.DataFrame({c: _text(frame, label, c) for c in _BATCH_COLUMNS}, index=frame.index)
    second = _first(out["batch"].duplicated())
    if second is not None:
        batch = out["batch"].iloc[second]
        first = _first(out["batch"] == batch)
        raise StudyError(
            f"{label} rows {_row(out, first)} and {_row(out, second)} column 'batch': "
            f"duplicate batch {batch!r}"
        )
    bad = _first(~out["split"].isin(SPLITS))
    if bad is not None:
        raise StudyError(
            f"{_at(label, out, bad, 'split')}: unknown split {out['split'].iloc[bad]!r} "
            f"(expected one of {', '.join(SPLITS)})"
        )
    for column in frame.columns:
        if column not in _BATCH_COLUMNS:
            out[column] = _numbers(frame, label, column, allow_missing=True)
    return out


def _build(
    measurements: pd.DataFrame,
    inputs: pd.DataFrame | None,
    batches: pd.DataFrame | None,
    name: str,
) -> Study:
    labels = {table: _label(name, table) for table in ("measurements", "inputs", "batches")}
    m = _records(measurements, labels["measurements"], optional=("sd",))
    if m.empty:
        raise StudyError(f"{labels['measurements']}: no data rows (a study needs measurements)")
    if inputs is None:
        inputs = pd.DataFrame({c: pd.Series(dtype=str) for c in _RECORD_COLUMNS})
    i = _records(inputs, labels["inputs"])
    if batches is None:
        names = list(dict.fromkeys(m["batch"]))
        b = pd.DataFrame({"batch": names, "process": "default", "split": "train"}).astype(str)
    else:
        b = _batches(batches, labels["batches"])
    batches_file = labels["batches"].rsplit("/", 1)[-1]
    for label, table in ((labels["measurements"], m), (labels["inputs"], i)):
        bad = _first(~table["batch"].isin(b["batch"]))
        if bad is not None:
            raise StudyError(
                f"{_at(label, table, bad, 'batch')}: unknown batch "
                f"{table['batch'].iloc[bad]!r} (not in {batches_file})"
            )
    return Study(measurements=m, inputs=i, batches=b, name=name)
