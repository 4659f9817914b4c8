"""The penicillin process family of the transfer suite (benchmarks/families/penicillin.py)."""

import numpy as np
import pytest

import hybridxfer as hx
from benchmarks.families import penicillin as pen

PROCESSES = (pen.SOURCE, *pen.RELATED_TARGETS, *pen.UNRELATED_TARGETS)


@pytest.fixture(scope="module")
def family():
    # two test batches per process: the truth's re-simulation has the build's shapes
    return pen.make_family(0, counts={p: (0, 0, 2) for p in PROCESSES})


def test_family_builds_with_the_interface(family):
    batches = family.batches
    assert set(batches["process"]) == set(PROCESSES)
    assert set(batches.columns) == {"batch", "process", "split", "s_f"}  # no truth constants
    assert batches["batch"].str.fullmatch(r"(A|B\d|U)-\d\d").all()
    meas = family.measurements
    assert set(meas["variable"]) == {"X", "S", "P", "V"}
    assert set(pen.SCORED) <= set(meas["variable"])
    assert not ((meas["variable"] == "P") & (meas["time"] == 0)).any()
    assert sorted(meas.query("variable == 'X'")["time"].unique()) == [24.0 * d for d in range(15)]
    assert (meas["value"] >= 0).all()


def test_related_targets_differ_in_constants_only():
    source = pen.truth_model(pen.SOURCE)
    for p in pen.RELATED_TARGETS:
        assert pen.truth_model(p) == source
        assert set(pen.PROCESSES[p]) == set(pen.PROCESSES[pen.SOURCE])
        assert pen.PROCESSES[p] != pen.PROCESSES[pen.SOURCE]
    for p in pen.UNRELATED_TARGETS:
        assert pen.truth_model(p) != source


def test_truth_matches_the_measurements_within_the_noise(family):
    """Median relative deviation of the measurements from the truth's values ~ the 5%
    noise's (0.674 sd = 3.4%); the truth starts from the noisy t=0 values, so a bit more."""
    for p in PROCESSES:
        truth = pen.truth_simulation(family, p)
        both = truth.merge(family.measurements, on=["batch", "time", "variable"])
        both = both[(both["time"] > 0) & both["variable"].isin(pen.SCORED)]
        dev = np.abs(both["value_y"] / both["value_x"] - 1)
        assert 0.02 < dev.median() < 0.06, (p, dev.median())


def test_hybrid_model_simulates_the_family(family):
    sim = hx.simulate(pen.hybrid_model(), family)
    assert np.isfinite(sim["value"]).all()
    assert set(sim["batch"]) == set(family.batch_names)


def test_refit_model_starts_at_the_source_constants():
    """The truth-refit reference: the truth's equations (its rates and balances verbatim)
    with A's constants as free parameters (simulating it would cost a compilation)."""
    start = {k: float(v) for k, v in pen.refit_model().parameter_values().items()}
    for name, value in pen.CONSTANTS.items():
        assert start[name] == pytest.approx(value, rel=1e-12)
    assert pen.refit_model().constant_names == ("s_f",)
