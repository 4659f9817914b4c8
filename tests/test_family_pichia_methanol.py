"""The Pichia methanol-induction family of the transfer suite
(benchmarks/families/pichia_methanol.py)."""

import numpy as np
import pytest

import hybridxfer as hx
from benchmarks.families import pichia_methanol as pm

PROCESSES = (pm.SOURCE, *pm.RELATED_TARGETS, *pm.UNRELATED_TARGETS)


@pytest.fixture(scope="module")
def family():
    # test batches only: the truth's re-simulation has the build's shapes (one compile)
    return pm.make_family(0, counts={p: (0, 0, 2) for p in PROCESSES})


def test_family_builds_with_the_interface(family):
    batches = family.batches
    assert set(batches["process"]) == set(PROCESSES)
    assert set(batches.columns) == {"batch", "process", "split", "Sg", "Sm"}  # no truth constants
    assert batches["batch"].str.fullmatch(r"(A|B\d|U)-\d\d").all()
    meas = family.measurements
    assert set(meas["variable"]) == {"X", "G", "M", "P", "V"}
    assert set(pm.SCORED) <= set(meas["variable"])
    assert not ((meas["variable"] == "P") & (meas["time"] == 0)).any()
    assert sorted(meas.query("variable == 'X'")["time"].unique()) == [24.0 * d for d in range(7)]
    assert (meas["value"] >= 0).all()
    assert {"Fg", "Fm", "T", "Vs", "Vb"} == set(family.inputs["variable"])


def test_related_targets_differ_in_constants_only():
    source = pm.truth_model(pm.SOURCE)
    for p in pm.RELATED_TARGETS:
        assert pm.truth_model(p) == source
        assert set(pm.PROCESSES[p]) == set(pm.PROCESSES[pm.SOURCE])
        assert pm.PROCESSES[p] != pm.PROCESSES[pm.SOURCE]
    for p in pm.UNRELATED_TARGETS:
        assert pm.truth_model(p) != source


def test_truth_matches_the_measurements_within_the_noise(family):
    """Median relative deviation of the measurements from the truth's values ~ the 5%
    noise's (0.674 sd = 3.4%); the truth starts from the noisy t=0 values."""
    for p in PROCESSES:
        truth = pm.truth_simulation(family, p)
        both = truth.merge(family.measurements, on=["batch", "time", "variable"])
        both = both[(both["time"] > 0) & (both["value_x"] > 0) & both["variable"].isin(pm.SCORED)]
        dev = np.abs(both["value_y"] / both["value_x"] - 1)
        assert 0.02 < dev.median() < 0.06, (p, dev.median())


def test_hybrid_model_simulates_the_family(family):
    model = pm.hybrid_model()
    assert len(model.networks) == 3
    sim = hx.simulate(model, family)
    assert np.isfinite(sim["value"]).all()
    assert set(sim["batch"]) == set(family.batch_names)
