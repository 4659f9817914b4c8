"""The in-house CHO family (``benchmarks/process_family.py``) in the suite's interface:
the demo truth (Monod growth with lactate inhibition, Luedeking-Piret titre, a
temperature response) and the built-in hybrid model ``cho_fed_batch.toml`` (networks
``growth`` and ``production``)."""

from __future__ import annotations

import hybridxfer as hx
from hybridxfer.demo import demo_model_path

try:
    import process_family as family
except ImportError:  # imported as benchmarks.families.cho_inhouse
    from benchmarks import process_family as family

NAME = "cho-inhouse"
CITATION = "this project's demo truth (hybridxfer/data/demo_truth.toml)"
SOURCE = "A"
RELATED_TARGETS = family.RELATED_TARGETS
UNRELATED_TARGETS = family.UNRELATED_TARGETS
SCORED = ("Xv", "P")
make_family = family.make_family
truth_simulation = family.truth_simulation
refit_model = family.refit_model


def hybrid_model() -> hx.HybridModel:
    """The built-in CHO fed-batch hybrid model."""
    return hx.load_model(demo_model_path())


__all__ = [
    "CITATION",
    "NAME",
    "RELATED_TARGETS",
    "SCORED",
    "SOURCE",
    "UNRELATED_TARGETS",
    "hybrid_model",
    "make_family",
    "refit_model",
    "truth_simulation",
]
