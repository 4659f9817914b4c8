"""Integrity of a saved model's folder (:mod:`hybridxfer._io.saved_model`): what is
written is whole, and what is read is what was written.

Guarantees:

- **Checksums** (format 2): ``meta.json`` lists the sha256 of every other model file
  (``files``) and of its own content (``sha256``, over canonical JSON: a reformatted
  ``meta.json`` keeps it, an edited value does not). Reading takes each file's bytes
  once, checks them against ``files`` and hands those very bytes on; a missing or
  wrong checksum, or a model file present but not listed, is refused. The checksums
  detect corruption and edits, not forgery (they carry no key). Format 1 folders
  (whose checksum covered the weights only) are refused with their version named.
- **Atomic, exclusive writes**: every file is written to a fresh temporary file
  created exclusively in the folder, then renamed into place
  (:func:`~hybridxfer._fit.checkpoint.write_atomic`).
- **No symbolic links**: one at a model file's path is refused, for reading and for
  writing; nothing is read or written through it.
- **Bounded meta.json**: its size (:data:`MAX_META_BYTES`) and JSON nesting depth
  (:data:`MAX_META_DEPTH`) are checked before it is parsed, and its member count
  (:data:`MAX_MEMBERS`) before anything is allocated from it.

Every refusal is a :class:`SavedModelError` in one line naming the file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np

from .._fit.checkpoint import write_atomic

__all__ = [
    "FORMAT_VERSION",
    "MAX_MEMBERS",
    "MAX_META_BYTES",
    "MAX_META_DEPTH",
    "META",
    "SavedModelError",
    "first_line",
    "hybridxfer_version",
    "meta_sha256",
    "read_file",
    "read_meta",
    "refuse_links",
    "verified",
    "write",
    "write_meta",
]

FORMAT_VERSION = 2
"""Major version of the folder layout; a reader refuses any other major version
(2: checksums of every file, mandatory; 1: of ``weights.eqx`` only, optional)."""

META = "meta.json"  # the folder's manifest: versions, settings and the checksums
MAX_META_BYTES = 1 << 20  # meta.json: its size and JSON nesting depth, checked
MAX_META_DEPTH = 16  # before it is parsed
MAX_MEMBERS = 10_000


class SavedModelError(ValueError):
    """A saved model that cannot be written or read; the message names the file."""


# ---------------------------------------------------------------------- writing
def write(path: Path, content: str | bytes) -> None:
    """Replace `path` by `content` (text as UTF-8, or bytes) atomically, through a fresh
    temporary file (:func:`~hybridxfer._fit.checkpoint.write_atomic`).

    Raises:
        SavedModelError: `path` is a symbolic link (never written through, nor replaced).
    """
    refuse_links(path.parent, [path.name])
    write_atomic(path, content)


def write_meta(path: Path, meta: dict) -> None:
    """Write `meta` with its own checksum (:func:`meta_sha256`) as ``sha256``."""
    meta = {k: v for k, v in meta.items() if k != "sha256"}
    write(path, json.dumps({**meta, "sha256": meta_sha256(meta)}, indent=2) + "\n")


def meta_sha256(meta: Mapping) -> str:
    """sha256 of `meta` without its ``sha256``, as canonical JSON (sorted keys, no
    spaces): a reformatted ``meta.json`` keeps it, an edited value does not."""
    rest = {k: v for k, v in meta.items() if k != "sha256"}
    return hashlib.sha256(
        json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def refuse_links(folder: Path, names) -> None:
    """Refuse symbolic links at the model's file names in `folder`: a saved model is
    read and written only inside its folder."""
    for name in names:
        if (folder / name).is_symlink():
            raise SavedModelError(
                f"{folder / name}: is a symbolic link; a saved model's files must be plain "
                "files inside its folder"
            )


# ---------------------------------------------------------------------- reading
def read_file(folder: Path, name: str, limit: int | None = None) -> bytes:
    """The bytes of `folder`/`name`, a plain file (not a symbolic link) of at most
    `limit` bytes."""
    path = folder / name
    refuse_links(folder, [name])
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if limit is not None and size > limit:
                raise SavedModelError(
                    f"{path}: {size} bytes, more than a saved model's {name} has "
                    f"(at most {limit}); not written by save_fit"
                )
            return f.read()
    except OSError as e:
        raise SavedModelError(f"{path}: cannot read ({e.strerror})") from None


def verified(folder: Path, meta: dict, names: Collection[str]) -> dict[str, bytes]:
    """The bytes of every model file that ``meta.json``'s ``files`` lists, each checked
    against its sha256; a model file (one of `names`, in their order) present but not
    listed, or listed but missing, is refused."""
    files = meta["files"]
    present = [n for n in names if _exists(folder / n)]
    if unlisted := [n for n in present if n not in files]:
        raise SavedModelError(
            f"{folder / unlisted[0]}: not listed in {META}'s checksums; not written by "
            "save_fit (remove it, or save the model again)"
        )
    data = {}
    for name, expected in files.items():
        if not _exists(folder / name):
            raise SavedModelError(f"{folder / name}: missing; {META} lists it")
        data[name] = read_file(folder, name)
        if hashlib.sha256(data[name]).hexdigest() != expected:
            raise SavedModelError(
                f"{folder / name}: checksum differs from {META}'s: the file was changed or "
                "corrupted after saving"
            )
    return data


def read_meta(path: Path, text: bytes, names: Collection[str]) -> dict:
    """``meta.json`` from its bytes: size, nesting depth, version, members, files (each
    one of the model files `names`, with a sha256) and its own checksum checked (before
    anything is allocated from it)."""
    if len(text) > MAX_META_BYTES:
        raise SavedModelError(
            f"{path}: {len(text)} bytes, more than a saved model's meta.json has "
            f"(at most {MAX_META_BYTES}); not written by save_fit"
        )
    if (depth := _json_depth(text)) > MAX_META_DEPTH:
        raise SavedModelError(
            f"{path}: nested {depth} deep (at most {MAX_META_DEPTH}); not written by save_fit"
        )
    try:
        meta = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise SavedModelError(f"{path}: not valid JSON ({first_line(e)})") from None
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
            else "fit again (its checksums do not cover every file)"
            if major == 1
            else "read it with the hybridxfer that saved it, or fit again"
        )
        raise SavedModelError(
            f"{path}: saved by hybridxfer {meta.get('hybridxfer', '(unknown)')!s:.40} with "
            f"format {version!s:.20}; this is hybridxfer {hybridxfer_version()} reading "
            f"format {FORMAT_VERSION}: {hint}"
        )
    if "sha256" not in meta:
        raise SavedModelError(f"{path}: no checksum (sha256); not written by save_fit")
    if meta["sha256"] != meta_sha256(meta):
        raise SavedModelError(
            f"{path}: checksum (sha256) differs from its content: edited or corrupted after saving"
        )
    n = meta.get("members")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_MEMBERS:
        raise SavedModelError(
            f"{path}: members must be an integer from 1 to {MAX_MEMBERS}, not {n!r:.40}"
        )
    files = meta.get("files")
    if not isinstance(files, dict) or not all(
        name in names and isinstance(h, str) and re.fullmatch("[0-9a-f]{64}", h)
        for name, h in files.items()
    ):
        raise SavedModelError(
            f"{path}: no valid checksums (files: model file name -> sha256); not written "
            "by save_fit"
        )
    return meta


def _json_depth(text: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` in JSON `text`, outside strings (found
    without parsing: JSON nested deeper than Python's recursion limit cannot be)."""
    bare = re.sub(rb'"(?:[^"\\]|\\.)*"', b'""', text)
    b = np.frombuffer(bare, dtype=np.uint8)
    steps = np.isin(b, list(b"[{")).astype(np.int64) - np.isin(b, list(b"]}"))
    return int(np.cumsum(steps).max(initial=0))


def _major(version) -> int | None:
    """Major version of ``1`` or ``"1.2"``; None if neither."""
    if isinstance(version, bool):
        return None
    if isinstance(version, int):
        return version
    if isinstance(version, str) and version.split(".")[0].isdigit():
        return int(version.split(".")[0])
    return None


def _exists(path: Path) -> bool:
    """Whether `path` exists, or is a symbolic link (even a dangling one)."""
    return path.exists() or path.is_symlink()


# ----------------------------------------------------------------------- helpers
def hybridxfer_version() -> str:
    """The installed hybridxfer's version (recorded in, and checked against, ``meta.json``)."""
    return importlib.metadata.version("hybridxfer")


def first_line(e: BaseException) -> str:
    """The first line of `e`'s message (its type's name if it has none), for one-line
    errors."""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
