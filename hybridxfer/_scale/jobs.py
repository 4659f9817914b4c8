"""Jobs: small frozen descriptions of independent units of work (a fit, a transfer, a
prediction, any importable function such as a benchmark cell) that
:func:`~hybridxfer._scale.run.run_many` sends to a worker.

A job names files (model files, study folders, saved models) by path, never holds
arrays or models: it pickles in a few hundred bytes, and on a cluster every worker
reads the same paths (a shared filesystem). ``job.run()`` returns the job's rows: a
list of JSON-serialisable dicts, the lines of the results table. ``job_key(job)``
names a job by its content, so the same description always has the same key (how a
resumed run recognises a finished job).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["CallJob", "FitJob", "Job", "PredictJob", "TransferJob", "describe", "job_key"]


class Job(Protocol):
    """What :func:`~hybridxfer._scale.run.run_many` runs: a frozen dataclass whose
    ``run()`` gives its rows."""

    def run(self) -> list[dict[str, Any]]: ...


def describe(job: Job) -> dict[str, Any]:
    """The job as a JSON-ready dict: ``kind`` (its class name) and its fields."""
    return {"kind": type(job).__name__, **dataclasses.asdict(job)}


def job_key(job: Job) -> str:
    """``<kind>-<12 hex digits>``: the SHA-1 of :func:`describe`'s JSON (keys sorted),
    the same in every process and on every machine."""
    text = json.dumps(describe(job), sort_keys=True, default=str)
    return f"{type(job).__name__.lower()}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def _test_scores(model, study_path: str, process: str) -> dict[str, float]:
    """``nrmse_<variable>`` of `model`'s prediction of `process`'s test batches (from
    their t=0 values, inputs and constants); empty if the process has none."""
    from .._data.metrics import nrmse
    from .._data.study import read_study
    from .._uncertainty import predict

    study = read_study(study_path)
    own = study.batches[study.batches["process"] == process]
    if not (own["split"] == "test").any():
        return {}
    test = study.select(process=process, split="test")
    errors = nrmse(predict(model, test), test.measurements)
    return {f"nrmse_{v}": float(e) for v, e in errors.items()}


@dataclass(frozen=True)
class FitJob:
    """Fit a model file to the train batches of `process` (:func:`hybridxfer.fit`),
    valid batches for early stopping.

    Attributes:
        model: model file (TOML).
        study: study folder.
        process: the process fitted.
        steps, members, seed: :class:`~hybridxfer.FitConfig` settings.
        save: folder to save the fit in (:func:`hybridxfer.save_fit`), or None.

    Row: ``process, seed, steps, members, valid`` (the best member's validation loss)
    and ``nrmse_<variable>`` on the process's test batches.
    """

    model: str
    study: str
    process: str
    steps: int = 1500
    members: int = 1
    seed: int = 0
    save: str | None = None

    def run(self) -> list[dict[str, Any]]:
        from .._data.study import read_study
        from .._fit import FitConfig, fit
        from .._io.model_file import load_model
        from .._io.saved_model import save_fit

        config = FitConfig(steps=self.steps, members=self.members, seed=self.seed)
        result = fit(
            load_model(self.model),
            read_study(self.study),
            process=self.process,
            config=config,
            progress=False,
        )
        if self.save is not None:
            save_fit(result, self.save)
        row = dict(process=self.process, seed=self.seed, steps=self.steps, members=self.members)
        row["valid"] = float(result.scores[0])
        return [row | _test_scores(result.model, self.study, self.process)]


@dataclass(frozen=True)
class TransferJob:
    """Transfer a saved fit to `process` (:func:`hybridxfer.transfer`) from its train
    batches.

    Attributes:
        source: saved model folder (:func:`hybridxfer.save_fit`).
        study: study folder with the target's batches.
        process: the target process.
        strategy: ``auto`` or one of :data:`hybridxfer.STRATEGIES`.
        steps: steps of the transfer's fits; None: the transfer's default.
        seed: :attr:`~hybridxfer.FitConfig.seed` (draws the networks' initialisation).
        save: folder to save the transfer in (:func:`hybridxfer.save_transfer`), or None.

    Row: ``process, strategy, seed, steps, chosen`` (the strategy used), ``warning``
    (the negative-transfer warning or None) and ``nrmse_<variable>`` on the process's
    test batches.
    """

    source: str
    study: str
    process: str
    strategy: str = "auto"
    steps: int | None = None
    seed: int = 0
    save: str | None = None

    def run(self) -> list[dict[str, Any]]:
        from .._data.study import read_study
        from .._io.saved_model import load_fit
        from .._transfer import STEPS, save_transfer, transfer

        source = load_fit(self.source)
        steps = min(source.config.steps, STEPS) if self.steps is None else self.steps
        config = dataclasses.replace(source.config, steps=steps, seed=self.seed)
        result = transfer(
            source,
            read_study(self.study),
            process=self.process,
            strategy=self.strategy,
            config=config,
        )
        if self.save is not None:
            save_transfer(result, self.save)
        row = dict(process=self.process, strategy=self.strategy, seed=self.seed, steps=steps)
        row |= dict(chosen=result.strategy, warning=result.similarity.warning)
        return [row | _test_scores(result.fit.model, self.study, self.process)]


@dataclass(frozen=True)
class PredictJob:
    """Predict every batch of a study with a saved fit (:func:`hybridxfer.predict`) and
    write the table (CSV) to `out`.

    Row: ``model, out, batches`` (how many), ``rows`` (of the table written).
    """

    model: str
    study: str
    out: str
    level: float = 0.95
    cover: str = "state"

    def run(self) -> list[dict[str, Any]]:
        from .._data.study import read_study
        from .._io.saved_model import load_fit
        from .._uncertainty import predict

        study = read_study(self.study)
        table = predict(load_fit(self.model), study, level=self.level, cover=self.cover)
        Path(self.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(self.out, index=False)
        row = dict(model=self.model, out=self.out, batches=len(study.batch_names))
        return [row | dict(rows=len(table))]


@dataclass(frozen=True)
class CallJob:
    """Call an importable function with keyword arguments, e.g. a benchmark cell.

    Attributes:
        function: ``"package.module:name"``; the module must be importable on every
            worker (installed, or on the path of the folder the run starts in).
        kwargs: the keyword arguments, JSON values (pass a dict; kept as sorted
            ``(name, value)`` pairs, so that the job is immutable and its key does not
            depend on the order they were given in).

    Row(s): what the function returns, a dict or a list of dicts.
    """

    function: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __init__(self, function: str, kwargs: Mapping[str, Any] | None = None):
        if ":" not in function:
            raise ValueError(f"CallJob function {function!r}: expected 'package.module:name'")
        object.__setattr__(self, "function", function)
        object.__setattr__(self, "kwargs", tuple(sorted(dict(kwargs or {}).items())))

    def run(self) -> list[dict[str, Any]]:
        module, _, name = self.function.partition(":")
        out = getattr(importlib.import_module(module), name)(**dict(self.kwargs))
        return [out] if isinstance(out, dict) else list(out)
