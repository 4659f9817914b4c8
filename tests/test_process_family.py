"""The transfer benchmark's ground truth (benchmarks/process_family.py)."""

import numpy as np

import hybridxfer as hx
from benchmarks.process_family import make_family, refit_model, truth_simulation


def test_refit_model_at_its_start_is_the_source_truth():
    """The refit reference starts from A's constants: its simulation of A's batches is
    the truth's (which reads them as batch constants), to solver tolerance."""
    family = make_family(0, counts={"A": (2, 0, 0)})
    truth = truth_simulation(family, "A", split="train")
    refit = hx.simulate(refit_model(), family)
    merged = truth.merge(refit, on=["batch", "time", "variable"], suffixes=("_truth", "_refit"))
    assert len(merged) == len(truth) > 0
    np.testing.assert_allclose(merged["value_refit"], merged["value_truth"], rtol=1e-9)
