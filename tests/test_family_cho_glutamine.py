"""The CHO glutamine/ammonia family of the transfer suite (benchmarks/families/cho_glutamine.py)."""

import numpy as np
import pytest

import hybridxfer as hx
from benchmarks.families import cho_glutamine as fam


@pytest.fixture(scope="module")
def family():
    processes = (fam.SOURCE, *fam.RELATED_TARGETS, *fam.UNRELATED_TARGETS)
    return fam.make_family(0, counts={p: (2, 0, 0) for p in processes})


def test_family_shape(family):
    batches = family.batches
    assert set(batches["process"]) == {"A", "B1", "B2", "B3", "B4", "U"}
    assert set(batches.columns) == {"batch", "process", "split", "Sglc", "Sgln"}
    assert batches["batch"].str.fullmatch(r"(A|B\d|U)-\d\d").all()
    meas = family.measurements
    assert set(meas["variable"]) == {*fam.MEASURED, "V"}
    assert not ((meas["variable"] == "P") & (meas["time"] == 0)).any()
    assert set(fam.SCORED) <= set(fam.MEASURED)


def test_truth_matches_measurements_within_noise(family):
    """Multiplicative 5% noise: the median |relative deviation| is 0.674 x 5% = 3.4%, a
    little more as the truth starts from the noisy t = 0 measurements."""
    for process in ("A", "B4", "U"):
        truth = fam.truth_simulation(family, process, split="train")
        keys = ["batch", "time", "variable"]
        merged = truth.merge(family.measurements, on=keys, suffixes=("_truth", "_meas"))
        merged = merged[(merged["variable"] != "V") & (merged["value_truth"].abs() > 1e-3)]
        assert len(merged) > 120
        rel = (merged["value_meas"] / merged["value_truth"] - 1).abs()
        assert 0.025 < rel.median() < 0.07, (process, rel.median())


def test_related_targets_differ_only_in_constants():
    """One truth (same equations) for A and every related target; only the batch
    constants differ. The unrelated target's truth has other equations."""
    source = fam.truth_model(fam.SOURCE)
    for target in fam.RELATED_TARGETS:
        assert fam.truth_model(target).structure == source.structure
        assert fam.PROCESSES[target].keys() == fam.PROCESSES[fam.SOURCE].keys()
        assert fam.PROCESSES[target] != fam.PROCESSES[fam.SOURCE]
    assert fam.truth_model("U").structure != source.structure


@pytest.mark.slow
def test_refit_model_at_its_start_is_the_source_truth(family):
    """The refit reference starts from A's constants: it simulates A as the truth does
    (slow: one more compile)."""
    part = family.select(process="A", split="train")
    truth = fam.truth_simulation(family, "A", split="train")
    refit = hx.simulate(fam.refit_model(), part)
    merged = truth.merge(refit, on=["batch", "time", "variable"], suffixes=("_t", "_r"))
    assert len(merged) == len(truth) > 0
    np.testing.assert_allclose(merged["value_r"], merged["value_t"], rtol=1e-7, atol=1e-9)


def test_hybrid_model_simulates_the_family(family):
    model = fam.hybrid_model()
    assert set(model.networks) == {"growth", "death", "lactate", "production"}
    sim = hx.simulate(model, family)
    assert set(sim["batch"]) == set(family.batches["batch"])
    assert np.isfinite(sim["value"]).all()
