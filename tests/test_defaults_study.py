"""benchmarks/defaults.py: the rule that lets a setting replace a fit default, its
leave-one-task-out check, and the validation variants."""

import pandas as pd
import pytest

import hybridxfer as hx
from benchmarks.defaults import adopted, leave_one_task_out, table, validated
from hybridxfer.demo import demo_study

TASKS = ["t1", "t2", "t3", "t4", "t5"]


def _wide(rows: dict) -> pd.DataFrame:
    return pd.DataFrame(rows, index=TASKS).T


def test_a_setting_replaces_the_default_only_by_the_rule():
    # ratios to the default per task; "better": median 0.95, worst 1.04 -> (a)
    nrmse = _wide(
        {
            "default": [1.0] * 5,
            "better": [0.90, 0.95, 0.95, 1.04, 0.93],
            "one bad task": [0.80, 0.80, 0.80, 0.80, 1.06],
        }
    )
    time = _wide({"default": [1.0] * 5, "better": [1.5] * 5, "one bad task": [1.0] * 5})
    assert adopted(nrmse, time) == "better"
    # (b): as accurate (no task above 1.03, median <= 1) and at most 0.7 of the time
    nrmse.loc["cheaper"] = [1.0, 1.02, 0.99, 1.0, 1.0]
    time.loc["cheaper"] = [0.3, 0.5, 0.6, 0.7, 0.9]
    assert adopted(nrmse, time) == "better"  # the lower median ratio first
    nrmse = nrmse.drop("better")
    assert adopted(nrmse, time) == "cheaper"
    time.loc["cheaper"] = [0.8] * 5
    assert adopted(nrmse, time) == "default"


def test_leave_one_task_out_scores_the_others_choice_on_the_one_left_out():
    # cheap and as good on t1..t4, 1.65x worse on t5: chosen without t5 only
    nrmse = _wide({"default": [1.0] * 5, "cheap": [1.0, 0.96, 1.0, 1.0, 1.65]})
    time = _wide({"default": [1.0] * 5, "cheap": [0.3] * 5})
    out = {r["left_out"]: r for r in leave_one_task_out(nrmse, time)}
    assert out["t5"]["pick"] == "cheap" and out["t5"]["on_left"] == 1.65
    assert all(out[t]["pick"] == "default" for t in TASKS[:4])
    assert adopted(nrmse, time) == "default"


def test_ratios_are_to_the_default_on_the_same_task_and_seed():
    rows = [
        dict(task="a", setting="default", seed=0, mean=0.2, seconds=10.0, steps_run=5),
        dict(task="a", setting="default", seed=1, mean=0.4, seconds=20.0, steps_run=5),
        dict(task="a", setting="x", seed=0, mean=0.1, seconds=5.0, steps_run=5),
        dict(task="a", setting="x", seed=1, mean=0.6, seconds=10.0, steps_run=5),
    ]
    df = table(rows).set_index(["setting", "seed"])
    assert df.loc[("x", 0), "nrmse_ratio"] == pytest.approx(0.5)
    assert df.loc[("x", 1), "nrmse_ratio"] == pytest.approx(1.5)
    assert df.loc[("x", 1), "time_ratio"] == pytest.approx(0.5)


def test_validation_variants():
    study = demo_study().select(process="A")
    assert {"train", "valid"} <= set(study.batches["split"])
    same, v = validated(study, "valid")
    assert same is study and v == hx.Validation()
    for variant, all_points in (("late", False), ("all", True)):
        every, v = validated(study, variant)
        assert set(every.batches["split"]) == {"train"} and v.all_points == all_points
        assert every.batch_names == study.batch_names
        pd.testing.assert_frame_equal(
            every.measurements.reset_index(drop=True), study.measurements.reset_index(drop=True)
        )
