"""Scale-out: many independent fits, transfers, predictions and benchmark cells, run
one after another, on a local process pool or as Ray tasks, each result kept as it
finishes; sweep files. Large simulations over many devices are in
:mod:`hybridxfer._solve.sharding` (a lower layer)."""

from .jobs import CallJob, FitJob, Job, PredictJob, TransferJob, describe, job_key
from .run import BACKENDS, JobError, default_cache_dir, keep_compiled_programs, run_many, run_rows
from .sweep import Sweep, SweepError, read_sweep, run_sweep

__all__ = [
    "BACKENDS",
    "CallJob",
    "FitJob",
    "Job",
    "JobError",
    "PredictJob",
    "Sweep",
    "SweepError",
    "TransferJob",
    "default_cache_dir",
    "describe",
    "job_key",
    "keep_compiled_programs",
    "read_sweep",
    "run_many",
    "run_rows",
    "run_sweep",
]
