"""Run many independent jobs: one after another, on a local process pool, or as Ray
tasks on a cluster; each result kept as it finishes, so a stopped run resumes.

Results are kept in ``OUT/jobs/<key>.json`` (one file per job, written to a temporary
name and renamed: a file is there whole or not at all), with the job's description,
its rows and its seconds. A run finds the files of an earlier run in the same folder
and does not redo those jobs. The table gathered at the end is the same whichever
backend ran the jobs and whether they were computed now or read back: rows in the
order of the jobs, each row a JSON round trip of what the job returned.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .jobs import Job, describe, job_key

__all__ = [
    "BACKENDS",
    "JobError",
    "default_cache_dir",
    "keep_compiled_programs",
    "run_many",
    "run_rows",
]

BACKENDS = ("serial", "processes", "ray")


class JobError(RuntimeError):
    """A run that cannot go on: a job that failed (named by key and description, with
    its error), a record that does not read, or a backend that is not available."""


def default_cache_dir() -> Path:
    """Where workers keep compiled programs unless told otherwise (as the command line):
    ``$XDG_CACHE_HOME/hybridxfer/jax``, default ``~/.cache/hybridxfer/jax``. One
    folder per node, shared by that node's workers."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hybridxfer" / "jax"


def keep_compiled_programs(folder: str | os.PathLike | None = None) -> Path:
    """Keep compiled programs between processes, in JAX's persistent compilation cache
    (this sets JAX's global ``jax_compilation_cache_dir``): in `folder`, else the
    folder already set (e.g. ``JAX_COMPILATION_CACHE_DIR``), else
    :func:`default_cache_dir`. A later fit, transfer or prediction that compiles what an
    earlier one compiled (same model, strategy and shape buckets) loads it instead of
    running XLA: on the peer task the first step came after 3.7 s instead of 11.7 s
    (``benchmarks/results/peers.md``). The command line and :func:`run_many`'s
    workers do this on every call; in Python, call it once per session.

    Returns:
        The cache's folder.
    """
    import jax

    folder = str(folder or jax.config.jax_compilation_cache_dir or default_cache_dir())
    if jax.config.jax_compilation_cache_dir != folder:
        jax.config.update("jax_compilation_cache_dir", folder)
    return Path(folder)


def _execute(job: Job, cache: str | None) -> dict[str, Any]:
    """Run `job` in a worker: ``{"rows": [...], "seconds": s}``."""
    keep_compiled_programs(cache)
    t0 = time.perf_counter()
    rows = job.run()
    return dict(rows=rows, seconds=time.perf_counter() - t0)


def _plain(value):
    """JSON for what json cannot write itself: NumPy scalars and arrays, paths."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"a job's row holds {type(value).__name__} {value!r}: not JSON")


class _Records:
    """The ``OUT/jobs`` folder of finished jobs (or nothing kept, for ``out=None``)."""

    def __init__(self, out: str | os.PathLike | None):
        self.folder = None if out is None else Path(out) / "jobs"
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def read(self, key: str) -> dict | None:
        path = None if self.folder is None else self.folder / f"{key}.json"
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            message = f"{path}: not a job record ({e}); remove it to run the job again"
            raise JobError(message) from None

    def write(self, key: str, job: Job, result: dict) -> dict:
        """The record of a finished job, as read back (a JSON round trip), kept on disk
        atomically."""
        record = dict(key=key, job=describe(job), **result)
        text = json.dumps(record, default=_plain, indent=1)
        if self.folder is not None:
            temp = self.folder / f".{key}.{os.getpid()}.tmp"
            temp.write_text(text, encoding="utf-8")
            os.replace(temp, self.folder / f"{key}.json")
        return json.loads(text)


def _failed(key: str, job: Job, error: BaseException | str) -> JobError:
    what = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return JobError(f"job {key} {json.dumps(describe(job), default=str)} failed: {what}")


def run_many(
    jobs: Iterable[Job],
    *,
    backend: str = "serial",
    out: str | os.PathLike | None = None,
    workers: int | None = None,
    address: str | None = None,
    max_retries: int = 3,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run independent jobs (:class:`FitJob`, :class:`TransferJob`, :class:`PredictJob`,
    :class:`CallJob`) and gather their rows into one table.

    Args:
        jobs: the jobs; two with the same description are one job.
        backend: ``"serial"`` (in this process, one after another), ``"processes"``
            (a local pool of `workers` fresh Python processes: a script calling it
            needs the ``if __name__ == "__main__":`` guard) or ``"ray"`` (one Ray
            task per job, 1 CPU each, on the cluster at `address`).
        out: folder keeping each job's result as it finishes (``OUT/jobs/<key>.json``);
            jobs with a result there are not run again. None: nothing kept.
        workers: processes of the ``"processes"`` backend (default: CPU count).
        address: Ray cluster address (``ray start --head`` prints it; ``"auto"``: the
            cluster started on this machine); None: the Ray instance this process has
            initialised, else a new local one for this call. Ignored by other backends.
        max_retries: times Ray runs a job again whose worker died (a lost node, a
            killed process); a job that raises is not retried.
        cache: folder of JAX's persistent compilation cache for the workers (one per
            node, shared by its workers); default: this process's
            (``jax_compilation_cache_dir``), else :func:`default_cache_dir` on each node.
            The serial backend keeps this process's setting.
        progress: show a progress bar (tqdm) of finished jobs.

    Returns:
        The rows of every job in the order of `jobs`, with the job's key first
        (column ``job``); ``attrs["computed"]`` and ``attrs["reused"]`` count the jobs
        run now and those read from `out`.

    Raises:
        JobError: naming the first job that failed (its key, description and error;
            the results finished before it are kept in `out`), or a backend that is
            unknown or not installed.
    """
    options = dict(workers=workers, address=address, max_retries=max_retries, cache=cache)
    results, computed = run_rows(jobs, backend=backend, out=out, progress=progress, **options)
    table = pd.DataFrame([dict(job=key, **row) for key, rows in results.items() for row in rows])
    table.attrs.update(computed=computed, reused=len(results) - computed)
    return table


def run_rows(
    jobs: Iterable[Job],
    *,
    backend: str = "serial",
    out: str | os.PathLike | None = None,
    workers: int | None = None,
    address: str | None = None,
    max_retries: int = 3,
    cache: str | os.PathLike | None = None,
    progress: bool = False,
) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """:func:`run_many` without the table: each job's rows as it returned them (a
    JSON round trip), by key in the order of `jobs`, and how many jobs ran now."""
    import jax
    from tqdm.auto import tqdm

    if backend not in BACKENDS:
        raise JobError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    unique = {job_key(job): job for job in jobs}
    records = _Records(out)
    done = {key: rec for key in unique if (rec := records.read(key)) is not None}
    todo = [(key, job) for key, job in unique.items() if key not in done]
    cache = str(cache or jax.config.jax_compilation_cache_dir or "") or None
    bar = tqdm(total=len(unique), initial=len(done), desc="jobs", disable=not progress)

    def finish(key: str, job: Job, result: dict) -> None:
        done[key] = records.write(key, job, result)
        bar.update()

    run = {"serial": _serial, "processes": _processes, "ray": _ray}[backend]
    try:
        if todo:
            run(todo, finish, cache=cache, workers=workers, address=address, retries=max_retries)
    finally:
        bar.close()
    return {key: done[key]["rows"] for key in unique}, len(todo)


Finish = Callable[[str, Job, dict], None]


def _serial(todo: Sequence[tuple[str, Job]], finish: Finish, **_) -> None:
    for key, job in todo:
        t0 = time.perf_counter()
        try:
            rows = job.run()
        except Exception as e:
            raise _failed(key, job, e) from e
        finish(key, job, dict(rows=rows, seconds=time.perf_counter() - t0))


def _processes(todo, finish: Finish, *, cache, workers, **_) -> None:
    """A pool of fresh ("spawn") processes: JAX does not survive a fork."""
    workers = min(workers or os.cpu_count() or 1, len(todo))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(_execute, job, cache): (key, job) for key, job in todo}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    key, job = pending.pop(future)
                    if future.exception() is not None:
                        raise _failed(key, job, future.exception())
                    finish(key, job, future.result())
        finally:
            for future in pending:
                future.cancel()


def _ray(todo, finish: Finish, *, cache, address, retries, **_) -> None:
    """One Ray task per job (1 CPU), retried `retries` times if its worker dies;
    results taken as they finish (``ray.wait``)."""
    try:
        import ray
    except ImportError:
        raise JobError('backend "ray" needs Ray: pip install "hybridxfer[ray]"') from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level="warning")
    task = ray.remote(num_cpus=1, max_retries=retries)(_execute)
    pending = {task.remote(job, cache): (key, job) for key, job in todo}
    try:
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                key, job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # the job raised
                    raise _failed(key, job, e.cause or e) from None
                except ray.exceptions.RayError as e:  # its worker died, retries spent
                    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    raise _failed(key, job, f"{type(e).__name__}: {first}") from None
                finish(key, job, result)
    finally:
        if started:  # the cluster ends our unfinished tasks as their owner leaves
            ray.shutdown()
        else:  # (a cancel that races its task's completion can abort the driver: Ray's
            for ref in pending:  # "Tried to complete task that was not pending")
                ray.cancel(ref)
