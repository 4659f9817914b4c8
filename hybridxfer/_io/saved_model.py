"""Saved models: a fit written to, and read back from, a folder (DESIGN.md §5).

A saved model is a folder:

========================  ==============================================================
``model.toml``            the model file (:func:`hybridxfer.model_file.to_toml`) as
                          declared (the fitted values: ``parameters.csv``), so that a
                          loaded fit's ``model.declared()`` is the declared model and a
                          transfer's ``scratch`` starts where the source's fit did
``weights.eqx``           every member's arrays, best member first (equinox serialisation,
                          never pickle): network weights, network input normalisation and
                          the unconstrained free parameters; authoritative
``normalisation.json``    each network's inputs with their mean and std (for reading)
``parameters.csv``        the fitted parameters with their sd and 95% intervals
``history.csv``           training losses: ``step, member, train, valid``
``initial.csv``           initial state of each fitted batch: ``batch, variable, value``
``batch_parameters.csv``  each fitted batch's value of the batch-varying parameters:
                          ``batch, name, value`` (absent without any)
``calibration.csv``       the model's predictions of the observations it was trained or
                          scored on: ``batch, time, variable, measured, sd,
                          predicted, heldout``, on which prediction bands are calibrated
``meta.json``             format version, library versions, creation time, scores, fit
                          settings, a checksum of ``weights.eqx``, and ``records``
========================  ==============================================================

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

import dataclasses
import hashlib
import importlib.metadata
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
from .._solve import Solver
from .model_file import ModelFileError, parse_model, to_toml
from .names import solver_from_dict, solver_to_dict

__all__ = [
    "FORMAT_VERSION",
    "SavedModelError",
    "load_fit",
    "normalisation",
    "save_fit",
    "write_record",
]

FORMAT_VERSION = 1
"""Major version of the folder layout; a reader refuses any other major version."""

MODEL, WEIGHTS, META = "model.toml", "weights.eqx", "meta.json"
HISTORY, INITIAL = "history.csv", "initial.csv"
NORMALISATION, PARAMETERS = "normalisation.json", "parameters.csv"
REQUIRED = (MODEL, WEIGHTS, HISTORY, INITIAL, PARAMETERS)  # besides meta.json
BATCH_PARAMETERS, CALIBRATION = "batch_parameters.csv", "calibration.csv"  # optional
OWN = (META, *REQUIRED, NORMALISATION, BATCH_PARAMETERS, CALIBRATION)  # written by save_fit
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


class SavedModelError(ValueError):
    """A saved model that cannot be written or read; the message names the file."""


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
        SavedModelError: `folder` is not a folder, the members do not share the model's
            structure, or a file cannot be written.
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
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for record in _records(folder / META):  # they describe the earlier model
            (folder / record).unlink(missing_ok=True)
        (folder / META).unlink(missing_ok=True)  # the folder does not load until the end
        _write(folder / MODEL, to_toml(result.model.declared()))
        tmp = folder / (WEIGHTS + ".tmp")
        eqx.tree_serialise_leaves(tmp, arrays)
        os.replace(tmp, folder / WEIGHTS)
        _write(folder / NORMALISATION, json.dumps(normalisation(result.model), indent=2) + "\n")
        _write(folder / PARAMETERS, result.parameters.to_csv(index=False))
        _write(folder / HISTORY, result.history.to_csv(index=False))
        _write(folder / INITIAL, result.initial.to_csv(index=False))
        _write_optional(folder / BATCH_PARAMETERS, result.batch_parameters)
        _write_optional(folder / CALIBRATION, result.calibration)
        meta = dict(
            format_version=FORMAT_VERSION,
            hybridxfer=_hybridxfer_version(),
            versions={lib: _version(lib) for lib in LIBRARIES}
            | {"python": platform.python_version()},
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            model=result.model.name,
            members=len(members),
            scores=[float(s) for s in result.scores],
            process=result.process,
            config=_to_dict(result.config),
            weights_sha256=_sha256(folder / WEIGHTS),
            records=[],
        )
        _write(folder / META, json.dumps(meta, indent=2) + "\n")
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
            or is one of the model's files, or a file cannot be written.
    """
    folder = Path(folder)
    if not (folder / META).is_file():
        raise SavedModelError(f"{folder}: no {META}; save the model (save_fit) first")
    if Path(name).name != name or name in OWN or name in (".", "..") or name.endswith(".tmp"):
        raise SavedModelError(f"{folder}: {name!r} cannot be a record (a model file or a path)")
    meta = _read_meta(folder / META)
    try:
        _write(folder / name, content)
        meta["records"] = list(dict.fromkeys([*meta.get("records", []), name]))
        _write(folder / META, json.dumps(meta, indent=2) + "\n")
    except OSError as e:
        raise SavedModelError(
            f"{e.filename or folder}: cannot write the record {name!r} ({e.strerror})"
        ) from None
    return folder / name


def _records(meta: Path) -> list[str]:
    """The records that the ``meta.json`` at `meta` lists: those of :func:`write_record`,
    or :data:`UNLISTED_RECORDS` if it lists none (saved before records were listed) or
    cannot be read; plain file names only."""
    try:
        listed = json.loads(meta.read_text(encoding="utf-8")).get("records", UNLISTED_RECORDS)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        listed = UNLISTED_RECORDS
    names = listed if isinstance(listed, list | tuple) else []
    return [n for n in names if isinstance(n, str) and Path(n).name == n and n not in OWN]


def _write(path: Path, content: str | bytes) -> None:
    """Replace `path` by `content` (text as UTF-8, or bytes) atomically: write a
    temporary file, then rename."""
    tmp = path.with_name(path.name + ".tmp")
    data = content.encode("utf-8") if isinstance(content, str) else content
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------- loading
def load_fit(folder: str | os.PathLike) -> FitResult:
    """Read a fit written by :func:`save_fit`.

    Raises:
        SavedModelError: in one line naming the file, for a missing folder or file, an
            unreadable ``meta.json``, a format version this hybridxfer cannot read, a
            ``model.toml`` that does not parse, a ``weights.eqx`` that is corrupted or
            does not match ``model.toml``, or an unreadable table.
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
    meta = _read_meta(folder / META)

    path = folder / MODEL
    try:
        template = parse_model(
            path.read_text(encoding="utf-8"), source=str(path), key=jax.random.PRNGKey(0)
        )
    except ModelFileError as e:
        raise SavedModelError(str(e)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SavedModelError(f"{path}: cannot read ({e})") from None
    members = _read_weights(folder / WEIGHTS, template, meta)

    history = _read_table(folder / HISTORY, HISTORY_COLUMNS)
    initial = _read_table(folder / INITIAL, INITIAL_COLUMNS, dtype={"batch": str, "variable": str})
    parameters = _read_table(
        folder / PARAMETERS, PARAMETER_COLUMNS, dtype={"name": str, "unit": str}
    )
    batch_parameters = _read_optional(
        folder / BATCH_PARAMETERS, BATCH_PARAMETER_COLUMNS, dtype={"batch": str, "name": str}
    )
    calibration = _read_optional(
        folder / CALIBRATION, CALIBRATION_COLUMNS, dtype={"batch": str, "variable": str}
    )
    try:
        scores = tuple(float(s) for s in meta["scores"])
        config = _from_dict(FitConfig, meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise SavedModelError(f"{folder / META}: bad scores or config ({_first_line(e)})") from None
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
        calibration=calibration,
    )


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SavedModelError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or "format_version" not in meta:
        raise SavedModelError(f"{path}: no format_version; not written by hybridxfer save_fit")
    version = meta["format_version"]
    major = _major(version)
    if major is None:
        raise SavedModelError(f"{path}: format_version {version!r} is not a version number")
    if major != FORMAT_VERSION:
        hint = (
            "upgrade hybridxfer to read it"
            if major > FORMAT_VERSION
            else "read it with the hybridxfer that saved it, or fit again"
        )
        raise SavedModelError(
            f"{path}: saved by hybridxfer {meta.get('hybridxfer', '(unknown)')} with format "
            f"{version}; this is hybridxfer {_hybridxfer_version()} reading format "
            f"{FORMAT_VERSION}: {hint}"
        )
    n = meta.get("members")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SavedModelError(f"{path}: members must be a positive integer, not {n!r}")
    return meta


def _major(version) -> int | None:
    """Major version of ``1`` or ``"1.2"``; None if neither."""
    if isinstance(version, bool):
        return None
    if isinstance(version, int):
        return version
    if isinstance(version, str) and version.split(".")[0].isdigit():
        return int(version.split(".")[0])
    return None


def _read_weights(path: Path, template: HybridModel, meta: dict) -> list[HybridModel]:
    arrays, static = eqx.partition(template, eqx.is_array)

    def fail(why: str):
        raise SavedModelError(
            f"{path}: weights.eqx is corrupted or does not match model.toml ({why})"
        ) from None

    try:
        with open(path, "rb") as f:
            loaded = eqx.tree_deserialise_leaves(f, [arrays] * meta["members"])
            trailing = f.read(1)
    except (OSError, EOFError, ValueError, RuntimeError, TypeError) as e:
        fail(_first_line(e))
    if trailing:
        fail("more data than the model has arrays")
    expected = meta.get("weights_sha256")
    if expected is not None and _sha256(path) != expected:
        fail("checksum differs from meta.json's")
    return [eqx.combine(a, static) for a in loaded]


def _write_optional(path: Path, table: pd.DataFrame | None) -> None:
    """Write `table` to `path`, or remove an earlier save's file if it is None or empty."""
    if table is not None and len(table):
        _write(path, table.to_csv(index=False))
    else:
        path.unlink(missing_ok=True)


def _read_optional(path: Path, columns: tuple[str, ...], dtype=None) -> pd.DataFrame | None:
    """The table at `path` (see :func:`_read_table`), or None if there is none."""
    return _read_table(path, columns, dtype) if path.is_file() else None


def _read_table(path: Path, columns: tuple[str, ...], dtype=None) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=dtype, **_EXACT_FLOATS)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as e:
        raise SavedModelError(f"{path}: cannot read ({_first_line(e)})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SavedModelError(f"{path}: missing column(s) {missing}, expected {list(columns)}")
    return frame


def _to_dict(config) -> dict:
    """A dataclass as JSON-ready settings, the inverse of :func:`_from_dict`: a
    :class:`~hybridxfer.Solver` as its named settings (:func:`solver_to_dict`), nested
    dataclasses as objects."""
    out = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if isinstance(v, Solver):
            v = solver_to_dict(v)
        elif dataclasses.is_dataclass(v):
            v = _to_dict(v)
        out[f.name] = v
    return out


def _from_dict(cls, d: Mapping):
    """A dataclass from :func:`_to_dict` output read back from JSON: a Solver from its
    named settings, nested dataclasses rebuilt, lists made tuples, unknown keys ignored."""
    if not isinstance(d, Mapping):
        raise TypeError(f"{cls.__name__} must be a JSON object, not {type(d).__name__}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        v = d[f.name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(default, Solver):
            v = solver_from_dict(v)
        elif dataclasses.is_dataclass(default):
            v = _from_dict(type(default), v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)


# ----------------------------------------------------------------------- helpers
def _shapes(tree) -> list:
    return [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]


def _same_arrays(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        x.shape == y.shape and np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(la, lb)
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _hybridxfer_version() -> str:
    return importlib.metadata.version("hybridxfer")


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
