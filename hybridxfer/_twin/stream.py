"""Recorded sensor streams: read one, and replay it through a digital twin.

A stream is a long table, one row per value, in the order it arrived:

==============  ==============================================================
column          meaning
==============  ==============================================================
``time``        arrival time [model time unit], non-decreasing
``variable``    a state or observation (measured), a continuous input (held
                from then on), an event input (amount at that instant), or a
                batch constant (read before the replay)
``value``       the value
``sd``          optional: the measurement's standard deviation
``sample_time`` optional: when a late (offline) sample was taken; empty = ``time``
==============  ==============================================================

Rows at time 0 give the initial states and inputs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .._core.model import HybridModel
from .._data.study import StudyError
from .._fit.config import FitResult
from .checks import TwinWarning, inconsistency
from .filter import DigitalTwin, TwinError

__all__ = ["read_stream", "replay"]

COLUMNS = ("time", "variable", "value")
OPTIONAL = ("sd", "sample_time", "batch")


def read_stream(path: str | os.PathLike) -> pd.DataFrame:
    """Read and check a stream CSV (see the module).

    Raises:
        StudyError: naming the file, row (as a spreadsheet shows it) and column, for a
            missing or unknown column, a non-numeric or negative time, or several batches.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"variable": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise StudyError(f"{path}: cannot read stream ({e})") from None
    if missing := [c for c in COLUMNS if c not in frame.columns]:
        raise StudyError(f"{path}: missing column(s) {missing}; a stream has {', '.join(COLUMNS)}")
    if extra := [c for c in frame.columns if c not in (*COLUMNS, *OPTIONAL)]:
        raise StudyError(f"{path}: unknown column(s) {extra}; optional: {', '.join(OPTIONAL)}")
    if "batch" in frame and frame["batch"].nunique() > 1:
        raise StudyError(f"{path}: a stream holds one batch; found {frame['batch'].nunique()}")
    for col in ("time", "value", "sd", "sample_time"):
        if col not in frame:
            continue
        numbers = pd.to_numeric(frame[col], errors="coerce")
        bad = numbers.isna() & frame[col].notna() if col != "time" else numbers.isna()
        bad |= numbers < 0 if col in ("time", "sample_time") else False
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise StudyError(
                f"{path} row {row + 2} column {col!r}: {frame[col].iloc[row]!r} is not "
                + ("a time >= 0" if col != "value" else "a number")
            )
        frame[col] = numbers
    if frame["variable"].isna().any():
        row = int(np.flatnonzero(frame["variable"].isna())[0])
        raise StudyError(f"{path} row {row + 2} column 'variable': empty")
    return frame.drop(columns=["batch"], errors="ignore")


def replay(
    model: HybridModel | FitResult,
    stream: pd.DataFrame,
    *,
    constants: Mapping[str, float] = {},
    progress: bool = True,
    return_twin: bool = False,
    **twin,
):
    """Run a twin through a recorded stream as if live.

    Args:
        model: the hybrid model, or a fit (or transfer) whose model it is and whose
            residuals set the twin's noise (:meth:`DigitalTwin.from_fit`).
        stream: the stream table (see the module), e.g. from :func:`read_stream`.
        constants: batch constants not in the stream.
        progress: show a progress bar (tqdm.auto: in Jupyter too).
        return_twin: also return the twin (its :meth:`~DigitalTwin.history`,
            :meth:`~DigitalTwin.innovations` and :meth:`~DigitalTwin.consistency`).
        twin: further arguments of :class:`DigitalTwin` (``measurement_sd``,
            ``process_noise``...).

    Returns:
        The estimate after each arrival time, as known then (columns ``time, variable,
        mean, sd, lower95, upper95``), and a message for each row the twin refused
        (:meth:`DigitalTwin.refusals`: not finite, unknown name, outside its physical
        range, a bad sd...), which it skipped, applying the rest of that arrival's
        values and events; or for an arrival whose update failed as a whole (out of
        order, a failed solve). The first five are warned; and, with `return_twin`, the
        twin.

    Warns:
        TwinWarning: when the twin's normalised innovations persistently outgrow its
            bands (:meth:`DigitalTwin.consistency` says "bands too narrow" over all
            updates and over the last 24 with measurements).
    """
    fit, model = (None, model) if isinstance(model, HybridModel) else (model, model.model)
    stream = stream.reset_index(drop=True)
    if "sample_time" not in stream:
        stream = stream.assign(sample_time=np.nan)
    if "sd" not in stream:
        stream = stream.assign(sd=np.nan)
    is_constant = stream["variable"].isin(model.constant_names)
    given = dict(constants) | dict(
        zip(stream["variable"][is_constant], stream["value"][is_constant])
    )
    start = stream[~is_constant & (stream["time"] == 0)]
    rest = stream[~is_constant & (stream["time"] > 0)]
    pick = lambda names: {  # noqa: E731
        v: x for v, x in zip(start["variable"], start["value"]) if v in names
    }
    initial, inputs = pick(model.state_names), pick(model.input_names)
    extra = start[~start["variable"].isin([*initial, *inputs])]
    twin = dict(initial=initial, inputs=inputs, constants=given, **twin)
    twin_ = DigitalTwin(model, **twin) if fit is None else DigitalTwin.from_fit(fit, **twin)
    refused: list[str] = []

    def update(time, rows):
        """Apply the rows of one arrival, each value the twin refuses left out (and
        listed, by row), the rest applied."""
        values, sd = {}, {}
        for i, name, value, s in zip(rows.index, rows["variable"], rows["value"], rows["sd"]):
            given = {} if pd.isna(s) else {name: s}
            if why := twin_.refusals({name: value}, given):
                refused.append(f"row {i + 2}: update: {why[name]}")
            else:
                values[name] = value
                sd |= given
        if not values:
            return
        try:
            late = rows["sample_time"].iloc[0]
            twin_.update(time, values, sd=sd, sample_time=None if np.isnan(late) else late)
        except TwinError as e:
            refused.append(f"row(s) {', '.join(str(i + 2) for i in rows.index)}: {e}")

    if len(extra):
        update(0.0, extra)
    estimates = [twin_.estimate()]
    arrivals = (rest["time"] != rest["time"].shift()).cumsum()  # runs of equal times, in order
    groups = rest.groupby(arrivals)
    bar = tqdm(groups, total=groups.ngroups, desc="twin", disable=not progress)
    for _, rows in bar:
        time = float(rows["time"].iloc[0])
        for _, group in rows.groupby(rows["sample_time"].fillna(-1.0), sort=False):
            update(time, group)
        if twin_.time < time:  # only late samples or refused rows came: catch up
            twin_.update(time, {})
        estimates.append(twin_.estimate())
    for message in refused[:5]:
        warnings.warn(f"stream {message}", stacklevel=2)
    if message := inconsistency(twin_.innovations()):
        warnings.warn(message, TwinWarning, stacklevel=2)
    estimates = pd.concat(estimates, ignore_index=True)
    return (estimates, refused, twin_) if return_twin else (estimates, refused)
