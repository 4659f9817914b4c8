"""Sweep files: a model fitted on a source process once, then transferred to each
target process with each strategy and seed, every fit and transfer a job of
:func:`~hybridxfer._scale.run.run_many`.

A sweep file (TOML; paths relative to the file)::

    model = "model.toml"                 # model file
    study = "study"                      # study folder
    source = "A"                         # fitted once (its train batches)
    source_steps = 1500                  # optional; default 1500
    source_members = 1                   # optional; default 1
    processes = ["B", "C"]               # targets
    strategies = ["none", "scratch", "auto"]
    seeds = [0, 1, 2]
    steps = 200                          # optional: each transfer's steps (default 200)
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .jobs import FitJob, TransferJob
from .run import run_many

__all__ = ["Sweep", "SweepError", "read_sweep", "run_sweep"]


class SweepError(ValueError):
    """A sweep file that cannot be run; the message names the file and the key."""


@dataclass(frozen=True)
class Sweep:
    """A sweep as read from its file (paths absolute). See the module's docstring."""

    model: Path
    study: Path
    source: str
    processes: tuple[str, ...]
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int = 200
    source_steps: int = 1500
    source_members: int = 1

    def jobs(self, out: str | os.PathLike) -> tuple[FitJob, list[TransferJob]]:
        """The source's fit (saved in ``OUT/models/source``) and one transfer per
        process, strategy and seed (in that nesting), reading the saved source."""
        saved = str(Path(out).resolve() / "models" / "source")
        model, study = str(self.model), str(self.study)
        source = FitJob(model, study, self.source, self.source_steps, self.source_members, 0, saved)
        transfers = [
            TransferJob(saved, study, process, strategy, self.steps, seed)
            for process in self.processes
            for strategy in self.strategies
            for seed in self.seeds
        ]
        return source, transfers


_TYPES = {  # key: (what it must be, check, required)
    "model": ("a path (string)", lambda v: isinstance(v, str), True),
    "study": ("a path (string)", lambda v: isinstance(v, str), True),
    "source": ("a process name (string)", lambda v: isinstance(v, str), True),
    "processes": ("a list of process names", lambda v: _list_of(v, str), True),
    "strategies": ("a list of strategy names", lambda v: _list_of(v, str), True),
    "seeds": ("a list of integers", lambda v: _list_of(v, int), True),
    "steps": ("a positive integer", lambda v: _positive(v), False),
    "source_steps": ("a positive integer", lambda v: _positive(v), False),
    "source_members": ("a positive integer", lambda v: _positive(v), False),
}


def _list_of(value, kind) -> bool:
    ok = lambda v: isinstance(v, kind) and not isinstance(v, bool)  # noqa: E731
    return isinstance(value, list) and len(value) > 0 and all(ok(v) for v in value)


def _positive(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def read_sweep(path: str | os.PathLike) -> Sweep:
    """Read and check a sweep file: its keys and their types, that the model file
    loads, that the study has the processes named and that the strategies exist.

    Raises:
        SweepError: one line naming the file and the key (or the TOML error's line).
        ModelFileError, StudyError: from the model file or the study folder.
    """
    from .._data.study import read_study
    from .._io.model_file import load_model
    from .._transfer import STRATEGIES

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{path}: no such sweep file") from None
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{path}: {e}") from None
    for key in raw:
        if key not in _TYPES:
            raise SweepError(f"{path}: unknown key {key!r}; expected {', '.join(_TYPES)}")
    for key, (what, check, required) in _TYPES.items():
        if key not in raw and required:
            raise SweepError(f"{path}: missing key {key!r} ({what})")
        if key in raw and not check(raw[key]):
            raise SweepError(f"{path}: {key} = {raw[key]!r}: expected {what}")
    folder = path.resolve().parent
    sweep = Sweep(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        | dict(model=folder / raw["model"], study=folder / raw["study"])
    )
    load_model(sweep.model)
    processes = read_study(sweep.study).processes
    for name in (sweep.source, *sweep.processes):
        if name not in processes:
            key = "source" if name == sweep.source else "processes"
            raise SweepError(
                f"{path}: {key}: process {name!r} is not in {sweep.study} "
                f"(it has {', '.join(processes)})"
            )
    unknown = [s for s in sweep.strategies if s not in STRATEGIES]
    if unknown:
        raise SweepError(
            f"{path}: strategies: {', '.join(map(repr, unknown))} unknown; expected one "
            f"of {', '.join(STRATEGIES)}"
        )
    return sweep


def run_sweep(path: str | os.PathLike, out: str | os.PathLike, **run) -> pd.DataFrame:
    """Run a sweep file: the source's fit, then every transfer (each a job of
    :func:`~hybridxfer._scale.run.run_many` with the keyword arguments `run`, results
    kept in `out`, so that a stopped sweep resumes), and write the table to
    ``OUT/results.csv``.

    Returns:
        The table: the source fit's row, then one row per transfer (``run_many``'s
        columns); ``attrs["computed"]``/``attrs["reused"]`` count the jobs over both
        stages.
    """
    source, transfers = read_sweep(path).jobs(out)
    first = run_many([source], out=out, **run)
    table = run_many([source, *transfers], out=out, **run)
    table.attrs.update(
        computed=first.attrs["computed"] + table.attrs["computed"],
        reused=table.attrs["reused"] - first.attrs["computed"],
    )
    table.to_csv(Path(out) / "results.csv", index=False)
    return table
