"""Checkpoints of a fit: its state and history, written atomically every few steps, so
that a killed fit restarted with the same call resumes to the same result; and the
writer lock of a folder (:func:`writer`), which a fit holds on its checkpoint folder and
:func:`~hybridxfer.save_fit` on its model folder."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import equinox as eqx
import filelock
import jax
import numpy as np

from .._core.model import HybridModel
from .._data.batch_data import BatchData
from .config import FitConfig, FitError

__all__ = ["FORMAT", "LOCK", "fingerprint", "load", "save", "write_atomic", "writer"]

FORMAT = 3  # 3: the step in state.json; the optimiser's hold and rate inside its chain
LOCK = ".hybridxfer.lock"  # the writer lock of a folder (fcntl lock: the kernel drops it
HOLDER = ".hybridxfer.holder"  # with its process); who holds it: pid, host, since when


@contextmanager
def writer(folder: Path, error: type[Exception] = FitError, wait: float = 0.0) -> Iterator[None]:
    """Hold `folder`'s writer lock (creating the folder): one writer per folder, across
    processes and threads; re-entrant in the thread that holds it (a fit's save inside
    a held lock). A lock whose process died is free again: the kernel releases it. The
    lock file stays (removing it would race with the next writer); the holder's note
    (:data:`HOLDER`) is removed on release.

    Args:
        folder: the folder written.
        error: the error to raise when another writer holds it.
        wait: seconds to wait for the other writer (0: refuse at once).

    Raises:
        error: naming the folder and the holder (pid, host, since), or a lock file that
            is a symbolic link.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    if path.is_symlink():
        raise error(f"{path}: is a symbolic link; a lock file is never followed: remove it")
    lock = filelock.FileLock(path, is_singleton=True)
    try:
        lock.acquire(timeout=wait)
    except filelock.Timeout:
        raise error(
            f"{folder}: another writer holds this folder ({_holder(folder)}); wait for it "
            "to finish, or write to another folder"
        ) from None
    try:
        if lock.lock_counter == 1:
            since = datetime.now(UTC).isoformat(timespec="seconds")
            holder = f"pid {os.getpid()} on {socket.gethostname()} since {since}"
            write_atomic(folder / HOLDER, holder)
        yield
    finally:
        if lock.lock_counter == 1:
            (folder / HOLDER).unlink(missing_ok=True)
        lock.release()


def _holder(folder: Path) -> str:
    """Who holds `folder`'s lock, as its holder wrote it (a link is not followed)."""
    path = folder / HOLDER
    try:
        if not path.is_symlink():
            return path.read_text(encoding="utf-8", errors="replace")[:200].strip()
    except OSError:
        pass
    return "holder unknown"


def write_atomic(path: Path, content: str | bytes) -> None:
    """Replace `path` by `content` atomically: a fresh temporary file in its folder
    (created exclusively: a planted file or link is never written through), then a
    rename; never through `path` itself (a symbolic link there is replaced)."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fingerprint(model: HybridModel, data: BatchData, config: FitConfig, members) -> str:
    """A hash of what a fit's result depends on: model, data, settings and members."""
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    settings["solver"] = eqx.tree_pformat(config.solver)
    h = hashlib.sha256()
    h.update(repr((settings, members)).encode())
    h.update(repr((model.name, model.state_names, model.free.tolist())).encode())
    for x in jax.tree.leaves(eqx.filter(data, eqx.is_array)):
        h.update(np.asarray(x).tobytes())
    return h.hexdigest()


def save(folder: Path, state, step: int, history, fingerprint: str) -> None:
    """Write history, then state, each atomically; a kill between leaves a state older
    than the history, which :func:`load` truncates to the state's step."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = dict(format=FORMAT, fingerprint=fingerprint, history=history)
    write_atomic(folder / "state.json", json.dumps(meta))
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, (state, np.asarray(step)))
    write_atomic(folder / "state.eqx", buffer.getvalue())


def load(folder: Path, template, fingerprint: str):
    """The state, its step and the history up to it, from a checkpoint of the same fit.

    Raises:
        FitError: the checkpoint belongs to another fit, or cannot be read.
    """
    try:
        meta = json.loads((folder / "state.json").read_text())
        if meta.get("format") != FORMAT or meta.get("fingerprint") != fingerprint:
            raise FitError(
                f"{folder}: this checkpoint belongs to a different fit (other model, data or "
                "settings); remove the folder or fit into another one"
            )
        state, step = eqx.tree_deserialise_leaves(folder / "state.eqx", (template, np.asarray(0)))
    except FitError:
        raise
    except (OSError, ValueError, RuntimeError) as e:
        raise FitError(
            f"{folder}: cannot read checkpoint ({e}); remove it to start afresh"
        ) from None
    step = int(step)
    return state, step, [tuple(h) for h in meta["history"] if h[0] <= step]
