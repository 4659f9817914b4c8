"""The E. coli overflow family of the transfer suite (benchmarks/families/ecoli_overflow.py)."""

import numpy as np
import pytest

import hybridxfer as hx
from benchmarks.families import ecoli_overflow as eo

PROCESSES = (eo.SOURCE, *eo.RELATED_TARGETS, *eo.UNRELATED_TARGETS)


@pytest.fixture(scope="module")
def family():
    return eo.make_family(0, counts={p: (3, 0, 1) for p in PROCESSES})


def test_family_builds_with_its_processes_and_constants(family):
    batches = family.batches
    assert set(batches["process"]) == set(PROCESSES)
    assert (batches.groupby("process").size() == 4).all()
    assert list(batches.columns) == ["batch", "process", "split", "Sf"]  # no truth constants
    assert batches["batch"].str.fullmatch(r"(A|B\d|U)-\d\d").all()
    assert set(eo.SCORED) <= set(family.measurements["variable"])
    p0 = family.measurements.query("variable == 'P' and time == 0")
    assert p0.empty  # titre not assayed at t = 0


def test_truth_matches_measurements_within_the_noise(family):
    """Median relative deviation of the measurements from the noise-free truth is
    that of 5% normal noise (0.6745 * 5% = 3.4%), on values above assay level."""
    for process in ("A", "B1", "U"):
        truth = eo.truth_simulation(family, process, split="train")
        merged = truth.merge(
            family.measurements, on=["batch", "time", "variable"], suffixes=("_t", "_m")
        )
        merged = merged[(merged["time"] > 0) & (merged["value_t"] > 1e-2)]
        rel = np.abs(merged["value_m"] / merged["value_t"] - 1)
        assert len(merged) > 40
        assert 0.015 < np.median(rel) < 0.06


def test_related_targets_differ_from_the_source_in_constants_only():
    source = eo.truth_model(eo.SOURCE)
    for process in eo.RELATED_TARGETS:
        target = eo.truth_model(process)
        assert hx.to_toml(target) == hx.to_toml(source)
        changed = {k for k, v in eo.PROCESSES[process].items() if v != eo.SOURCE_CONSTANTS[k]}
        assert changed and changed <= set(source.constant_names)
    assert hx.to_toml(eo.truth_model("U")) != hx.to_toml(source)


def test_hybrid_model_simulates_the_family(family):
    model = eo.hybrid_model()
    assert len(model.networks) >= 3
    sim = hx.simulate(model, family)
    assert np.isfinite(sim["value"]).all()
    assert set(sim["batch"]) == set(family.batch_names)
