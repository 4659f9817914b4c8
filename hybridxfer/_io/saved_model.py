"""Saved models: a fit written to, and read back from, a folder (DESIGN.md §5).

A saved model is a folder:

==============================  ========================================================
``model.toml``                  the model file (:func:`hybridxfer.model_file.to_toml`) as
                                declared (the fitted values: ``parameters.csv``), so that a
                                loaded fit's ``model.declared()`` is the declared model and a
                                transfer's ``scratch`` starts where the source's fit did
``weights.eqx``                 every member's arrays, best member first (equinox serialisation,
                                never pickle): network weights, network input normalisation and
                                the unconstrained free parameters; authoritative
``normalisation.json``          each network's inputs with their mean and std (for reading)
``parameters.csv``              the fitted parameters with their sd and 95% intervals
``history.csv``                 training losses: ``step, member, train, valid``
``initial.csv``                 initial state of each fitted batch: ``batch, variable, value``
``batch_parameters.csv``        each fitted batch's value of the batch-varying parameters:
                                ``batch, name, value`` (absent without any)
``calibration.csv``             the model's predictions of the observations it was trained or
                                scored on: ``batch, time, variable, measured, sd,
                                predicted, heldout``, on which prediction bands are calibrated
``reference_calibration.csv``   as ``calibration.csv``, another model's predictions of
                                batches it did not train on (a transfer from one batch: its
                                source's), a band's lower bound (absent without one)
``meta.json``                   format version, library versions, creation time, scores,
                                the members' ``weights`` in a prediction (null: the best
                                member's alone), fit settings, ``records``, ``files`` (the
                                sha256 of every other file above) and ``sha256`` (of
                                ``meta.json``'s own content)
==============================  ========================================================

Integrity (format 2) is :mod:`hybridxfer._io.integrity`'s: the sha256 of every file
in ``meta.json``, checked on loading against the very bytes parsed; atomic, exclusive
writes; no symbolic links; a bounded ``meta.json``. A folder that fails it is refused
in one line naming the file; format 1 folders with their version named: fit again.

One writer per folder: :func:`save_fit` and :func:`write_record` hold the folder's
writer lock (:func:`hybridxfer._fit.checkpoint.writer`); a second writer is refused at
once, naming the holder.

Higher layers keep *records* beside the model (a transfer's ``transfer.txt``, say)
with :func:`write_record`, which lists each in ``meta.json``'s ``records``.
:func:`save_fit` removes the records an earlier save listed: they describe another
model. Folders saved before records were listed have no ``records``; for them it
removes the files transfers wrote then (:data:`UNLISTED_RECORDS`).

Saving removes ``meta.json`` first, replaces each file atomically and writes
``meta.json`` last, so an interrupted save leaves a folder that refuses to load
rather than one that loads wrongly. Free parameters are read from ``weights.eqx``:
editing their values in ``model.toml`` has no effect (fixed ones are read from it).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import platform
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pandas as pd

from .._core.model import HybridModel
from .._fit import FitConfig, FitResult
from .._fit.checkpoint import writer
from .integrity import (
    FORMAT_VERSION,
    MAX_META_BYTES,
    META,
    SavedModelError,
    first_line,
    hybridxfer_version,
    read_file,
    read_meta,
    refuse_links,
    verified,
    write,
    write_meta,
)
from .model_file import ModelFileError, parse_model, to_toml
from .settings import settings_from_dict, settings_to_dict

__all__ = [
    "FORMAT_VERSION",
    "SavedModelError",
    "load_fit",
    "normalisation",
    "save_fit",
    "write_record",
]

MODEL, WEIGHTS = "model.toml", "weights.eqx"
HISTORY, INITIAL = "history.csv", "initial.csv"
NORMALISATION, PARAMETERS = "normalisation.json", "parameters.csv"
REQUIRED = (MODEL, WEIGHTS, HISTORY, INITIAL, PARAMETERS)  # besides meta.json
BATCH_PARAMETERS, CALIBRATION = "batch_parameters.csv", "calibration.csv"  # optional
REFERENCE = "reference_calibration.csv"  # optional
LISTED = (*REQUIRED, NORMALISATION, BATCH_PARAMETERS, CALIBRATION, REFERENCE)  # meta's files
OWN = (META, *LISTED)  # written by save_fit
UNLISTED_RECORDS = ("transfer.txt", "candidates.csv", "transfer.png")
"""Records written beside models saved before ``meta.json`` listed its records."""
HISTORY_COLUMNS = ("step", "member", "train", "valid")
INITIAL_COLUMNS = ("batch", "variable", "value")
BATCH_PARAMETER_COLUMNS = ("batch", "name", "value")
CALIBRATION_COLUMNS = ("batch", "time", "variable", "measured", "sd", "predicted", "heldout")
PARAMETER_COLUMNS = ("name", "value", "unit", "fixed", "process_specific")
LIBRARIES = ("jax", "equinox", "diffrax", "optax", "numpy")
# pandas < 3 parses floats to within an ulp unless asked; pandas 3 is exact by default
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


# ---------------------------------------------------------------------- tables
def normalisation(model: HybridModel) -> dict[str, dict[str, dict[str, float]]]:
    """Each network's input normalisation: ``{network: {input: {"mean": m, "std": s}}}``."""
    return {
        name: {
            x: {"mean": float(m), "std": float(s)}
            for x, m, s in zip(net.spec.inputs, np.asarray(net.mean), np.asarray(net.std))
        }
        for name, net in model.networks.items()
    }


# ---------------------------------------------------------------------- saving
def save_fit(result: FitResult, folder: str | os.PathLike) -> Path:
    """Write `result` to `folder` (created if needed; files of an earlier save replaced,
    the records it listed removed).

    Returns:
        The folder's path.

    Raises:
        SavedModelError: `folder` is not a folder, another writer holds it, a file's
            path is a symbolic link, the members do not share the model's structure, or
            a file cannot be written.
    """
    folder = Path(folder)
    members = tuple(result.members) or (result.model,)
    arrays = [eqx.filter(m, eqx.is_array) for m in members]
    if not _same_arrays(eqx.filter(result.model, eqx.is_array), arrays[0]):
        raise SavedModelError(f"{folder}: cannot save: result.model is not result.members[0]")
    shapes = _shapes(arrays[0])
    if any(_shapes(a) != shapes for a in arrays[1:]):
        raise SavedModelError(f"{folder}: cannot save: the members differ in their networks")
    if folder.exists() and not folder.is_dir():
        raise SavedModelError(f"{folder}: cannot save: exists and is not a folder")
    weights = io.BytesIO()
    eqx.tree_serialise_leaves(weights, arrays)
    contents = {
        MODEL: to_toml(result.model.declared()),
        WEIGHTS: weights.getvalue(),
        NORMALISATION: json.dumps(normalisation(result.model), indent=2) + "\n",
        PARAMETERS: result.parameters.to_csv(index=False),
        HISTORY: result.history.to_csv(index=False),
        INITIAL: result.initial.to_csv(index=False),
        BATCH_PARAMETERS: _csv(result.batch_parameters),
        CALIBRATION: _csv(result.calibration),
        REFERENCE: _csv(result.reference_calibration),
    }
    try:
        with writer(folder, SavedModelError):
            refuse_links(folder, OWN)
            for record in _records(folder / META):  # they describe the earlier model
                (folder / record).unlink(missing_ok=True)
            (folder / META).unlink(missing_ok=True)  # the folder does not load until the end
            files = {}
            for name, content in contents.items():
                if content is None:  # an optional table: remove an earlier save's
                    (folder / name).unlink(missing_ok=True)
                    continue
                data = content.encode("utf-8") if isinstance(content, str) else content
                write(folder / name, data)
                files[name] = hashlib.sha256(data).hexdigest()
            meta = dict(
                format_version=FORMAT_VERSION,
                hybridxfer=hybridxfer_version(),
                versions={lib: _version(lib) for lib in LIBRARIES}
                | {"python": platform.python_version()},
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                model=result.model.name,
                members=len(members),
                scores=[float(s) for s in result.scores],
                weights=None if result.weights is None else [float(w) for w in result.weights],
                process=result.process,
                config=settings_to_dict(result.config),
                records=[],
                files=files,
            )
            write_meta(folder / META, meta)
    except OSError as e:
        raise SavedModelError(
            f"{e.filename or folder}: cannot write saved model ({e.strerror})"
        ) from None
    return folder


def write_record(folder: str | os.PathLike, name: str, content: str | bytes) -> Path:
    """Write a record beside the model saved in `folder` and list it in ``meta.json``,
    so that a later :func:`save_fit` to the folder removes it (it describes this model).

    Args:
        folder: a folder written by :func:`save_fit`.
        name: the record's file name (no folder part; not one of the model's files).
        content: text (written as UTF-8) or bytes.

    Returns:
        The record's path.

    Raises:
        SavedModelError: `folder` is not a saved model, `name` is not a plain file name
            or is one of the model's files, another writer holds the folder, or a file
            cannot be written.
    """
    folder = Path(folder)
    if not (folder / META).is_file():
        raise SavedModelError(f"{folder}: no {META}; save the model (save_fit) first")
    if not _plain_record(name):
        raise SavedModelError(f"{folder}: {name!r} cannot be a record (a model file or a path)")
    try:
        with writer(folder, SavedModelError):
            meta = read_meta(folder / META, read_file(folder, META, MAX_META_BYTES), LISTED)
            write(folder / name, content)
            meta["records"] = list(dict.fromkeys([*meta.get("records", []), name]))
            write_meta(folder / META, meta)
    except OSError as e:
        raise SavedModelError(
            f"{e.filename or folder}: cannot write the record {name!r} ({e.strerror})"
        ) from None
    return folder / name


def _plain_record(name) -> bool:
    """Whether `name` may be a record: a plain, visible file name, not a model file."""
    return (
        isinstance(name, str)
        and Path(name).name == name
        and name not in OWN
        and not name.startswith(".")
        and not name.endswith(".tmp")
    )


def _records(meta: Path) -> list[str]:
    """The records that the ``meta.json`` at `meta` lists: those of :func:`write_record`,
    or :data:`UNLISTED_RECORDS` if it lists none (saved before records were listed) or
    cannot be read; plain file names only (:func:`_plain_record`)."""
    try:
        listed = json.loads(read_file(meta.parent, meta.name, MAX_META_BYTES)).get(
            "records", UNLISTED_RECORDS
        )
    except (OSError, SavedModelError, UnicodeDecodeError, ValueError, AttributeError):
        listed = UNLISTED_RECORDS
    names = listed if isinstance(listed, list | tuple) else []
    return [n for n in names if _plain_record(n)]


# --------------------------------------------------------------------- loading
def load_fit(folder: str | os.PathLike) -> FitResult:
    """Read a fit written by :func:`save_fit`, each file checked against its checksum
    in ``meta.json``.

    Raises:
        SavedModelError: in one line naming the file, for a missing folder or file, a
            symbolic link, an unreadable, oversized or edited ``meta.json``, a format
            version this hybridxfer cannot read, a missing or wrong checksum, a model
            file not listed in ``meta.json``, a ``model.toml`` that does not parse, a
            ``weights.eqx`` that does not match ``model.toml``, or an unreadable table.
    """
    folder = Path(folder)
    if not folder.exists():
        raise SavedModelError(f"{folder}: no such saved model folder")
    if not folder.is_dir():
        raise SavedModelError(
            f"{folder}: not a folder; a saved model is a folder ({MODEL}, {WEIGHTS}, {META}, ...)"
        )
    missing = [f for f in (META, *REQUIRED) if not (folder / f).is_file()]
    if missing:
        raise SavedModelError(
            f"{folder}: missing file(s) {', '.join(missing)}; not a saved model, or its "
            "saving was interrupted"
        )
    meta = read_meta(folder / META, read_file(folder, META, MAX_META_BYTES), LISTED)
    data = verified(folder, meta, LISTED)

    path = folder / MODEL
    try:
        template = parse_model(
            data[MODEL].decode("utf-8"), source=str(path), key=jax.random.PRNGKey(0)
        )
    except ModelFileError as e:
        raise SavedModelError(str(e)) from None
    except UnicodeDecodeError as e:
        raise SavedModelError(f"{path}: cannot read ({e})") from None
    members = _read_weights(folder / WEIGHTS, data[WEIGHTS], template, meta["members"])

    history = _read_table(folder / HISTORY, data[HISTORY], HISTORY_COLUMNS)
    initial = _read_table(
        folder / INITIAL, data[INITIAL], INITIAL_COLUMNS, dtype={"batch": str, "variable": str}
    )
    parameters = _read_table(
        folder / PARAMETERS, data[PARAMETERS], PARAMETER_COLUMNS, dtype={"name": str, "unit": str}
    )
    batch_parameters = _read_optional(
        folder / BATCH_PARAMETERS, data, BATCH_PARAMETER_COLUMNS, dtype={"batch": str, "name": str}
    )
    calibration, reference = (
        _read_optional(folder / f, data, CALIBRATION_COLUMNS, dtype={"batch": str, "variable": str})
        for f in (CALIBRATION, REFERENCE)
    )
    try:
        scores = tuple(float(s) for s in meta["scores"])
        config = settings_from_dict(FitConfig, meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise SavedModelError(f"{folder / META}: bad scores or config ({first_line(e)})") from None
    if len(scores) != meta["members"]:
        raise SavedModelError(
            f"{folder / META}: {len(scores)} scores for {meta['members']} members"
        )
    weights = meta.get("weights")  # absent in folders saved before 2026-12-06
    try:
        return FitResult(
            model=members[0],
            members=tuple(members),
            initial=initial,
            history=history,
            scores=scores,
            config=config,
            table=parameters,
            process=meta.get("process"),
            batch_parameters=batch_parameters,
            weights=None if weights is None else tuple(float(w) for w in weights),
            calibration=calibration,
            reference_calibration=reference,
        )
    except (TypeError, ValueError) as e:
        raise SavedModelError(f"{folder / META}: bad weights ({first_line(e)})") from None


def _read_weights(
    path: Path, data: bytes, template: HybridModel, members: int
) -> list[HybridModel]:
    """The `members` models in ``weights.eqx``'s bytes `data`, each the arrays of
    `template`; their count checked against the file's size before any is allocated."""
    arrays, static = eqx.partition(template, eqx.is_array)

    def fail(why: str):
        raise SavedModelError(
            f"{path}: weights.eqx is corrupted or does not match model.toml ({why})"
        ) from None

    each = sum(x.nbytes for x in jax.tree.leaves(arrays))
    if members * each > len(data):
        fail(f"meta.json's {members} members need {members * each} bytes; it has {len(data)}")
    try:
        f = io.BytesIO(data)
        loaded = eqx.tree_deserialise_leaves(f, [arrays] * members)
        trailing = f.read(1)
    except (OSError, EOFError, ValueError, RuntimeError, TypeError) as e:
        fail(first_line(e))
    if trailing:
        fail("more data than the model has arrays")
    return [eqx.combine(a, static) for a in loaded]


def _csv(table: pd.DataFrame | None) -> str | None:
    """An optional table as CSV text; None if it is None or empty (no file)."""
    return table.to_csv(index=False) if table is not None and len(table) else None


def _read_optional(
    path: Path, data: Mapping[str, bytes], columns: tuple[str, ...], dtype=None
) -> pd.DataFrame | None:
    """The table of `path` (see :func:`_read_table`) from its verified bytes in `data`,
    or None if there is none."""
    return _read_table(path, data[path.name], columns, dtype) if path.name in data else None


def _read_table(path: Path, data: bytes, columns: tuple[str, ...], dtype=None) -> pd.DataFrame:
    """The CSV table of `path` from its bytes `data`, with at least `columns`."""
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=dtype, **_EXACT_FLOATS)
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError) as e:
        raise SavedModelError(f"{path}: cannot read ({first_line(e)})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SavedModelError(f"{path}: missing column(s) {missing}, expected {list(columns)}")
    return frame


# ----------------------------------------------------------------------- helpers
def _shapes(tree) -> list:
    return [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]


def _same_arrays(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        x.shape == y.shape and np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(la, lb)
    )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
