"""The transfer suite's process families (issue 26), one module each, with one
interface: ``NAME``, ``CITATION``, ``SOURCE``, ``RELATED_TARGETS``,
``UNRELATED_TARGETS``, ``SCORED`` (the measured variables scored: cells and product),
``make_family(seed, counts) -> Study``, ``truth_simulation(family, process, split)``
(the truth's noise-free values at the measurement times), ``hybrid_model()`` (the
model a user would write: a mechanistic backbone with networks) and ``refit_model()``
(the truth's own equations with its process constants free: a reference)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

MODULES = ("cho_inhouse", "cho_glutamine", "ecoli_overflow", "pichia_methanol", "penicillin")


def available() -> tuple[str, ...]:
    """The families whose module is present."""
    here = Path(__file__).parent
    return tuple(m for m in MODULES if (here / f"{m}.py").exists())


def load(module: str) -> ModuleType:
    """A family's module by its name in :data:`MODULES`."""
    if module not in MODULES:
        raise ValueError(f"unknown family {module!r} (known: {', '.join(MODULES)})")
    return importlib.import_module(f"{__name__}.{module}")
