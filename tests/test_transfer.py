"""Transfer mechanics: what each strategy may change, the baselines, the choice,
and the similarity measures. (Accuracy of transfer is measured by benchmarks/transfer.py.)"""

from dataclasses import replace

import equinox as eqx
import jax
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hybridxfer as hx
from hybridxfer._fit import scheduler, train
from hybridxfer._transfer import BASELINES, anchor_sd, candidate_plans
from hybridxfer._transfer.similarity import _mmd
from hybridxfer._uncertainty.bands import FLOOR
from hybridxfer.demo import demo_model_path
from tests.helpers import monod_model

CONFIG = hx.FitConfig(steps=60, learning_rate=0.02)
TRUTH = {"A": 0.30, "B": 0.20}  # mu_max per process; the inhibition is shared


def _model():
    return monod_model(
        [
            hx.Parameter("mu_max", 0.25, "1/h", process_specific=True),
            hx.Parameter("K", 0.5, "g/L"),
            hx.Parameter("Y", 0.5, "g/g"),
        ],
        name="toy",
        network_input="X",
    )


def _truth(mu_max):
    return hx.HybridModel.build(
        name="truth",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        parameters=[hx.Parameter("mu_max", mu_max, "1/h"), hx.Parameter("K", 0.5, "g/L")],
        rates={"mu": "mu_max * monod(S, K) / (1 + X / 4)"},
        balances={"X": "mu * X", "S": "-2 * mu * X"},
    )


@pytest.fixture(scope="module")
def study():
    rng = np.random.default_rng(0)
    splits = {"A": ["train"] * 4 + ["valid"], "B": ["train"] * 2 + ["test"] * 2}
    frames, rows = [], []
    for process, names in splits.items():
        t0 = [
            (f"{process}{i}", 0.0, v, x)
            for i in range(len(names))
            for v, x in (("X", rng.uniform(0.1, 0.3)), ("S", rng.uniform(8, 12)))
        ]
        seed = hx.study_from_frames(
            pd.DataFrame(t0, columns=["batch", "time", "variable", "value"])
        )
        sim = hx.simulate(
            _truth(TRUTH[process]), seed, times={b: np.arange(0, 25, 3.0) for b in seed.batch_names}
        )
        noisy = sim["value"] * (1 + 0.02 * rng.standard_normal(len(sim)))
        frames.append(sim.assign(value=np.where(sim["time"] > 0, noisy, sim["value"])))
        rows += [dict(batch=f"{process}{i}", process=process, split=s) for i, s in enumerate(names)]
    return hx.study_from_frames(pd.concat(frames), None, pd.DataFrame(rows))


@pytest.fixture(scope="module")
def source(study):
    return hx.fit(_model(), study, process="A", config=CONFIG, progress=False)


def test_a_fit_carries_its_parameter_table_for_transfer(source, study):
    """hx.fit followed directly by hx.transfer: the source's intervals come from its
    own training batches (as an explicit parameter_table call gives them), so l2sp's
    scales and the parameter distances are finite."""
    table = hx.parameter_table(source.model, study.select(process="A", split="train"))
    pd.testing.assert_frame_equal(source.parameters, table)
    scales = anchor_sd(source)
    assert set(scales) == {"mu_max", "K", "Y"} and all(np.isfinite(list(scales.values())))
    moved = _run(source, study, "refit-mechanistic")
    assert np.isfinite(moved.similarity.distance)
    assert np.isfinite(moved.similarity.parameters["distance"]).all()


def _weights(model):
    return jax.tree.leaves(eqx.filter(model.networks, eqx.is_inexact_array))


def _run(source, study, strategy):
    return hx.transfer(source, study, process="B", strategy=strategy, config=CONFIG)


def test_none_is_the_source_and_baselines_are_scored(source, study):
    result = _run(source, study, "none")
    assert result.strategy == "none"
    np.testing.assert_array_equal(result.model.free, source.model.free)
    assert set(result.candidates["candidate"]) == {"none", "scratch"}
    assert np.isfinite(result.candidates["validation"]).all()


@pytest.mark.parametrize("strategy", ["refit-mechanistic", "scratch"])
def test_none_is_scored_as_a_member_training_nothing_and_predicts_as_simulate(
    source, study, strategy
):
    """none is scored at the first step by a candidate starting from the source as is
    (refit-mechanistic), or by members of its own (with scratch, no candidate does): the
    scores a fit of one step gives a member whose plan trains nothing, and the source's
    predictions (the zero-shot error's) are those of an independent simulation."""
    result = _run(source, study, strategy)
    frozen = hx.Plan(parameters=(), networks={"g": "frozen"})
    one = replace(CONFIG, steps=1)
    alone = hx.fit(source.model, study, process="B", config=one, plan=frozen, progress=False)
    none = result.candidates.set_index("candidate").loc["none"]
    assert none["late"] == pytest.approx(alone.scores[0], rel=1e-9)
    train = study.select(process="B", split="train")
    predicted = hx.simulate(source.model, train, solver=CONFIG.solver)
    expected = hx.nrmse(predicted, train.measurements).dropna()
    pd.testing.assert_series_equal(
        result.similarity.zero_shot, expected[result.similarity.zero_shot.index], rtol=1e-9
    )


def test_members_come_back_in_order_with_their_step_0_evaluation(source, study):
    """train() returns every member in the order given; its step-0 losses are the
    history's first step's (losses at the values the step started from), and its step-0
    predictions those of an independent simulation."""
    config = replace(CONFIG, steps=3)
    frozen = hx.Plan(parameters=(), networks={"g": "frozen"})
    members = [(frozen, hx.Validation()), (hx.Plan(networks={"g": "tune"}), hx.Validation())]
    trained = train(source.model, study, members, process="B", config=config, progress=False)
    first = trained.history[trained.history["step"] == 1].sort_values("member")
    np.testing.assert_array_equal(trained.start, first[["train", "valid"]].to_numpy())
    assert len(trained.history) == 3 * len(members)
    np.testing.assert_array_equal(trained.model(0).free, source.model.free)  # frozen
    fitted_batches = study.select(process="B", split="train")
    predicted = hx.simulate(source.model, fitted_batches, solver=CONFIG.solver)
    pd.testing.assert_frame_equal(trained.start_frame(0), predicted, rtol=1e-9)


def test_refit_mechanistic_changes_only_process_specific_parameters(source, study):
    result = _run(source, study, "refit-mechanistic")
    before, after = source.model.parameter_values(), result.model.parameter_values()
    for a, b in zip(_weights(source.model), _weights(result.model)):
        np.testing.assert_array_equal(a, b)
    for name in ("K", "Y"):
        assert float(after[name]) == float(before[name])
    # mu_max moves from the source's value toward the target's lower one
    assert float(after["mu_max"]) < float(before["mu_max"])
    assert {"none", "scratch", "refit-mechanistic"} == set(result.candidates["candidate"])


def test_fine_tune_last_layer_keeps_the_hidden_layers(source, study):
    result = _run(source, study, "fine-tune-last")
    src, dst = source.model.networks["g"].mlp.layers, result.model.networks["g"].mlp.layers
    np.testing.assert_array_equal(src[0].weight, dst[0].weight)
    assert not np.array_equal(src[-1].weight, dst[-1].weight)


@pytest.fixture(scope="module")
def auto(source, study):
    with pytest.warns(UserWarning, match=r"negative transfer likely: the target's data diff"):
        return _run(source, study, "auto")


def test_auto_chooses_among_all_candidates_in_one_fit(auto, study):
    table = auto.candidates
    assert table["chosen"].sum() == 1
    assert table.loc[table["chosen"], "candidate"].item() == auto.strategy
    # one network: per-part choices coincide with whole-model ones; multitask only on request
    assert set(table["candidate"]) == {
        "none",
        "scratch",
        "refit-mechanistic",
        "fine-tune",
        "fine-tune-last",
        "l2sp",
    }
    # 2 batches: the late points and the leave-one-out folds are the views
    views = table[["late", "fold1", "fold2"]]
    np.testing.assert_allclose(table["validation"], stats.gmean(views / views.min(), axis=1))
    assert set(auto.candidate_fits) == set(table["candidate"])
    # with folds the result predicts the candidates' mean weighted (best / score)^2, the
    # best's model first: checked against each candidate fit's own prediction
    assert auto.strategy == table["candidate"].iloc[0]  # sorted by validation
    weight = (table["validation"].min() / table["validation"]) ** 2
    np.testing.assert_allclose(table["weight"], weight / weight.sum(), rtol=1e-12)
    assert auto.model is auto.candidate_fits[auto.strategy].model
    assert auto.fit.weights == tuple(table["weight"])
    target = study.select(process="B")
    each = [hx.predict(auto.candidate_fits[n], target)["value"] for n in table["candidate"]]
    np.testing.assert_allclose(
        hx.predict(auto.fit, target)["value"], table["weight"] @ np.array(each), rtol=1e-9
    )
    assert (
        "the late points and 2-fold cross-validation" in auto.reason
        and "strategy:" in auto.summary()
    )
    # the chosen and the baselines' fits are of one member trained on every batch
    assert len(auto.candidate_fits["scratch"].history) == CONFIG.steps


def test_auto_from_one_batch_averages_too_and_its_band_is_bounded_by_the_source(
    source, study, tmp_path
):
    """One target batch (no folds): the late points are the only view; the result is the
    weighted mean of every candidate. Its band, calibrated on late points alone, is at
    least as wide as the source's errors on the target batch (which it did not train
    on): on each variable, the source's relative errors there lie within the band's
    relative half-width at least 95% of the time."""
    one = study.select(batches=[b for b in study.batch_names if b != "B1"])
    result = hx.transfer(source, one, process="B", config=CONFIG)
    table = result.candidates
    assert list(table.columns[:2]) == ["candidate", "late"] and "fold1" not in table
    weight = (table["validation"].min() / table["validation"]) ** 2
    np.testing.assert_allclose(table["weight"], weight / weight.sum(), rtol=1e-12)
    target = study.select(process="B", split="test")
    with pytest.warns(UserWarning, match="at least as wide as the source model's errors"):
        pred = hx.predict(result.fit, target, cover="measurement")
    assert "at least as wide as the source's errors on the 1 target batch" in pred.attrs["band"]
    each = [hx.predict(result.candidate_fits[n], target)["value"] for n in table["candidate"]]
    np.testing.assert_allclose(pred["value"], table["weight"] @ np.array(each), rtol=1e-9)
    # the source's errors on the target batch, by hand, against the band's half-width
    trained = one.select(process="B", split="train")
    seen = trained.measurements.query("time > 0")
    sim = hx.simulate(source.model, trained, solver=CONFIG.solver)  # as it was scored
    both = seen.merge(sim, on=["batch", "time", "variable"], suffixes=("", "_source"))
    floor = FLOOR * seen.groupby("variable")["value"].agg(np.ptp)  # the band's scale floor
    half = (pred["upper"] - pred["value"]) / (pred["value"].abs() + pred["variable"].map(floor))
    for v, part in both.groupby("variable"):
        error = (part["value"] - part["value_source"]).abs() / (
            part["value_source"].abs() + floor[v]
        )
        q = half[pred["variable"] == v].median()
        assert np.mean(error <= q * (1 + 1e-6)) >= 0.95, v
    saved = hx.load_fit(hx.save_fit(result.fit, tmp_path / "one"))
    pd.testing.assert_frame_equal(saved.reference_calibration, result.fit.reference_calibration)


def test_a_saved_transfer_keeps_its_record_and_its_report_shows_it(auto, tmp_path):
    folder = hx.save_transfer(auto, tmp_path / "target")
    np.testing.assert_array_equal(hx.load_fit(folder).model.free, auto.model.free)
    assert (folder / "transfer.txt").read_text() == auto.summary() + "\n"
    pd.testing.assert_frame_equal(pd.read_csv(folder / "candidates.csv"), auto.candidates)
    hx.save_fit(auto.candidate_fits["scratch"], folder)  # another model: not its record
    assert not (folder / "transfer.txt").exists() and not (folder / "candidates.csv").exists()
    report = hx.write_report(auto.fit, None, tmp_path / "report", transfer=auto)
    text = (report / "report.md").read_text()
    assert text.index("## Transfer") < text.index("## Training")
    assert auto.summary() in text and "![transfer](transfer.png)" in text
    assert (report / "transfer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _with_valid(study, batch):
    b = study.batches
    return hx.Study(
        study.measurements,
        study.inputs,
        b.assign(split=np.where(b["batch"] == batch, "valid", b["split"])),
    )


def test_a_held_out_member_is_the_fit_with_that_batch_valid(source, study):
    """A fold member (Validation.held_out) trains and scores as a separate fit in which
    the held-out batch's split is 'valid', whatever members are fitted with it."""
    plan = hx.Plan(networks={"g": "relearn"}, from_declared=True)
    members = [
        (hx.Plan(), hx.Validation()),
        (plan, hx.Validation()),
        (plan, hx.Validation(held_out=("B0",))),
    ]
    together = train(source.model, study, members, process="B", config=CONFIG, progress=False)
    alone = hx.fit(
        source.model,
        _with_valid(study, "B0"),
        process="B",
        config=CONFIG,
        plan=plan,
        progress=False,
    )
    np.testing.assert_allclose(together.scores[2], alone.scores[0], rtol=1e-6)
    for a, b in zip(_weights(together.model(2)), _weights(alone.model)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    # the full member (B0 trained on) is another fit
    assert not np.isclose(together.scores[1], alone.scores[0])


def test_a_member_on_all_points_trains_as_if_its_validation_were_elsewhere(source, study):
    """Validation.all_points: with no valid batches, a member trains on every time point, as a
    fit does whose valid batches are others (here copies of the training batches), and
    is scored by its loss on the training data."""
    train = study.select(process="B", split="train")
    copy = lambda t: t.assign(batch=t["batch"] + "-copy")  # noqa: E731
    with_copies = hx.Study(
        pd.concat([train.measurements, copy(train.measurements)]),
        pd.concat([train.inputs, copy(train.inputs)]),
        pd.concat([train.batches, copy(train.batches).assign(split="valid")]),
    )
    plan = hx.Plan(networks={"g": "tune"})
    alone = hx.fit(
        source.model,
        train,
        process="B",
        config=CONFIG,
        plan=plan,
        validation=hx.Validation(all_points=True),
        progress=False,
    )
    ref = hx.fit(source.model, with_copies, process="B", config=CONFIG, plan=plan, progress=False)
    for loss in ("train", "valid"):  # valid: the copies' loss, the training data's
        np.testing.assert_allclose(alone.history[loss], ref.history[loss], rtol=1e-9)
    held = hx.fit(source.model, train, process="B", config=CONFIG, plan=plan, progress=False)
    assert held.history["train"].iloc[0] != pytest.approx(alone.history["train"].iloc[0])


def test_candidate_fits_equal_single_plan_fits_on_all_batches(source, study, auto):
    """Each candidate's result is its member trained on both batches (no refit, no
    fold; on every time point, but for the baselines, fitted as their strategies are):
    equal to a fit of that plan alone; its late view is the plan's fit on the early
    time points; the similarity uses the refit one."""
    plans = candidate_plans(source.model, "auto", "A", anchor_sd(source))
    for name in ("scratch", "refit-mechanistic"):
        alone = hx.fit(
            source.model,
            study,
            process="B",
            config=CONFIG,
            plan=plans[name],
            validation=hx.Validation(all_points=name not in BASELINES),
            progress=False,
        )
        got = auto.candidate_fits[name]
        np.testing.assert_allclose(got.model.free, alone.model.free, rtol=1e-6)
        for a, b in zip(_weights(got.model), _weights(alone.model)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
        # its late view: the plan fitted on the early points, scored on the late ones
        late = (
            alone
            if name in BASELINES
            else hx.fit(
                source.model, study, process="B", config=CONFIG, plan=plans[name], progress=False
            )
        )
        score = auto.candidates.set_index("candidate").loc[name, "late"]
        assert score == pytest.approx(late.scores[0], rel=1e-6)
    row = auto.similarity.parameters.set_index("name").loc["mu_max"]
    assert row["target"] == pytest.approx(float(alone.model.parameter_values()["mu_max"]), rel=1e-6)


def test_restarts_differ_and_a_plans_member_does_not_depend_on_its_position(source, study):
    config = replace(CONFIG, steps=5, members=2)
    restarts = hx.fit(_model(), study, process="B", config=config, progress=False)
    assert not np.allclose(_weights(restarts.members[0])[0], _weights(restarts.members[1])[0])
    plan = hx.Plan()
    first = hx.fit(_model(), study, process="B", config=config, plan=[plan], progress=False)
    members = [(hx.Plan(learning_rate=0.5), hx.Validation()), (plan, hx.Validation())]
    last = train(_model(), study, members, process="B", config=config, progress=False)
    member = last.model(1)
    for a, b in zip(_weights(first.model), _weights(member)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_members_stepped_in_concurrent_groups_equal_one_group(study, monkeypatch):
    """On a multi-core CPU the members step in groups, one per core (a short group
    repeats a member); every member's path is the same as in one vmapped group."""
    config = replace(CONFIG, steps=8)
    plans = [hx.Plan(), hx.Plan(learning_rate=0.5), hx.Plan(from_declared=True)]
    fits = {}
    for workers in (1, 2):
        monkeypatch.setattr(scheduler, "workers", lambda w=workers: w)
        fits[workers] = hx.fit(
            _model(), study, process="B", config=config, plan=plans, progress=False
        )
    one, two = fits[1], fits[2]
    np.testing.assert_allclose(one.scores, two.scores, rtol=1e-9)
    pd.testing.assert_frame_equal(one.history, two.history, rtol=1e-9)
    for a, b in zip(one.members, two.members):
        for x, y in zip([a.free, *_weights(a)], [b.free, *_weights(b)]):
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("folds", [0, 2])
def test_auto_averages_every_candidate_weighted_by_its_score(folds):
    """With one batch (no folds) or more: all candidates with a finite score, weighted
    (best / score)^2, the best's model the result's."""
    from hybridxfer._transfer.selection import choose

    table = pd.DataFrame(
        dict(
            candidate=["none", "scratch", "fine-tune", "fine-tune-last"],
            validation=[9.0, np.inf, 1.05, 1.202],  # a failed candidate weighs nothing
            trained=[0, 700, 700, 40],
        )
    )
    chosen, why, weights = choose("auto", table, folds)
    w = {"none": (1.05 / 9) ** 2, "fine-tune": 1.0, "fine-tune-last": (1.05 / 1.202) ** 2}
    assert chosen == "fine-tune" and list(weights) == ["fine-tune", "fine-tune-last", "none"]
    assert weights == pytest.approx({n: x / sum(w.values()) for n, x in w.items()}, rel=1e-12)
    assert why.startswith("the 3 candidates' predictions averaged")


def test_transfer_is_said_likely_to_hurt_when_processes_differ_and_the_gain_is_small(auto):
    """The warning's condition: MMD p below SHIFT_P and scratch within MIN_GAIN of the
    best score; either alone is not enough. On the fixture (B differs from A, scratch
    scores best) it holds, and auto still averages."""
    from hybridxfer._transfer.similarity import MIN_GAIN, SHIFT_P, likely_to_hurt

    score = {"none": 9.0, "scratch": MIN_GAIN * 0.99, "fine-tune": 1.0}
    assert likely_to_hurt(score, SHIFT_P / 2)
    assert not likely_to_hurt(score, SHIFT_P * 2)
    assert not likely_to_hurt(score | {"scratch": MIN_GAIN * 1.01}, SHIFT_P / 2)
    assert auto.similarity.mmd_p < SHIFT_P and auto.similarity.warning.startswith(
        "negative transfer likely: the target's data differ"
    )
    assert auto.fit.weights is not None and len(auto.fit.weights) == len(auto.candidates)


def test_auto_tries_each_mix_of_frozen_and_tuned_networks():
    """Per-part plans: every mix of frozen and tuned networks that is not a whole-model
    strategy, with the process-specific parameters refit; no network re-learned alone."""
    model = hx.load_model(demo_model_path())  # networks growth and production
    plans = candidate_plans(model, "auto", None, {})
    parts = {k: v for k, v in plans.items() if k.startswith("parts[")}
    assert set(parts) == {
        "parts[growth=tune,production=frozen]",
        "parts[growth=frozen,production=tune]",
    }
    for plan in parts.values():
        assert plan.parameters == ("mu_max", "Y_xglc", "beta")
    assert {"none", "scratch", "fine-tune", "refit-mechanistic"} <= set(plans)
    assert "multitask" not in plans


def test_mmd_tells_different_processes_apart(study):
    mmd, p = _mmd(study, "A", "B")
    assert mmd > 0 and p < 0.05
    same = study.select(process="A")
    halves = same.batches.assign(process=["A", "A", "C", "C", "C"])
    mmd_same, p_same = _mmd(hx.Study(same.measurements, same.inputs, halves), "A", "C")
    assert p_same > 0.05


def test_unknown_strategy_is_an_error(source, study):
    with pytest.raises(ValueError, match="unknown strategy 'magic'"):
        _run(source, study, "magic")


def test_settings_outside_the_step_do_not_recompile(study, monkeypatch):
    """Seed, patience, holdout and checkpointing are not static arguments of the step."""
    from hybridxfer._fit import step

    traces = []
    update = step._member_update
    monkeypatch.setattr(step, "_member_update", lambda *a: traces.append(1) or update(*a))
    config = hx.FitConfig(steps=3, members=2)
    hx.fit(_model(), study, process="B", config=config, progress=False)
    first = len(traces)
    other = replace(config, seed=7, patience=2, holdout=0.4, checkpoint_every=1)
    hx.fit(_model(), study, process="B", config=other, progress=False)
    assert first == 1 and len(traces) == first  # compiled once, then reused


def test_fit_and_transfer_print_short_summaries(source, auto):
    """A notebook shows a fit and a transfer as a few lines (not their tables)."""
    text = repr(source)
    assert text.startswith("FitResult of model") and "process 'A'" in text
    assert f"{source.history['step'].max()} steps run of {CONFIG.steps}" in text
    held = int(source.calibration["heldout"].sum())
    assert f"bands calibrated on {held} held-out observations" in text and len(text) < 600
    text = repr(auto)
    assert text.startswith(f"TransferResult to process 'B': {auto.strategy!r}")
    assert auto.reason in text and len(text.splitlines()) == 4
