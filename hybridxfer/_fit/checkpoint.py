"""Checkpoints of a fit: its state and history, written atomically every few steps, so
that a killed fit restarted with the same call resumes to the same result."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from .._core.model import HybridModel
from .._data.batch_data import BatchData
from .config import FitConfig, FitError

__all__ = ["FORMAT", "fingerprint", "load", "save"]

FORMAT = 3  # 3: the step in state.json; the optimiser's hold and rate inside its chain


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
    (folder / "state.json.tmp").write_text(json.dumps(meta))
    os.replace(folder / "state.json.tmp", folder / "state.json")
    eqx.tree_serialise_leaves(folder / "state.eqx.tmp", (state, np.asarray(step)))
    os.replace(folder / "state.eqx.tmp", folder / "state.eqx")


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
