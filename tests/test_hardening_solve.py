"""Issue 28, failing solves: a NaN made by the model's equations is reported as such,
quickly, naming the batch, the time where the solve failed (not the next output time)
and the rate; a fit whose every member's step is rejected stops at once (after its first
step, keeping each member's best values).

The reference: zero-order consumption S' = -k, S(0) = 10, k = 1/h, so S(t) = 10 - t,
and a rate ``q = k * (1 + 0 * log(S - 2))`` that is NaN exactly when S < 2: from
t* = 8 h on."""

import time
import warnings

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import hybridxfer as hx
from hybridxfer._data.batch_data import batch_data
from hybridxfer._fit import FitConfig, FitError, fit, train
from hybridxfer._solve import Solver, solve
from hybridxfer._solve.failure import GRID, ZOOMS, field_failure, first_failure, locate
from hybridxfer._solve.integrate import integrate

SOLVER = Solver(rtol=1e-6, atol=1e-9, max_steps=256)
T_STAR = 8.0
FIT = FitConfig(steps=10, members=2, solver=SOLVER)


def _model(floor: float, k: float = 1.0) -> hx.HybridModel:
    return hx.HybridModel.build(
        name="nan",
        states=[hx.State("S", "g/L"), hx.State("X", "g/L")],
        parameters=[hx.Parameter("k", k, "g/(L h)"), hx.Parameter("Y", 0.5, "1")],
        rates={"q": f"k * (1 + 0 * log(S - {floor}))", "growth": "Y * q"},
        balances={"S": "-q", "X": "growth"},
    )


def _study(times=(0.0, 5.0, 10.0, 15.0), starts=(("ok", 20.0), ("bad", 10.0))) -> hx.Study:
    rows = []
    for b, s0 in starts:  # "ok" reaches S = 2 only after 18 h
        rows += [(b, t, "S", max(s0 - t, 0.5)) for t in times]
        rows += [(b, t, "X", 0.1 + 0.5 * t) for t in times]
    return hx.study_from_frames(
        pd.DataFrame(rows, columns=["batch", "time", "variable", "value"]),
        batches=pd.DataFrame({"batch": [b for b, _ in starts], "process": "p", "split": "train"}),
    )


def test_a_nan_at_the_start_is_named_without_solving():
    model, study = _model(100.0), _study()
    data = batch_data(model, study)
    start = time.perf_counter()
    failure = locate(model, data, study.batch_names, SOLVER)
    assert time.perf_counter() - start < 10.0
    assert (failure.batch, failure.time, failure.kind) == ("ok", 0.0, "non-finite")
    assert failure.rates == ("q", "growth") and failure.variables == ("S", "X")
    assert failure.message.startswith("batch 'ok': the model's equations give a non-finite value")
    assert "at t=0: rate(s) q, growth, the balance of S, X (at S=20, X=0.1)" in failure.message


def test_a_nan_inside_the_solve_is_located_where_it_happens():
    model, study = _model(2.0), _study()
    data = batch_data(model, study)
    ys, ok = (np.asarray(a) for a in solve(model, data, SOLVER))
    names = study.batch_names
    # what the solve's output alone tells: the next output time, as the solver stopping
    plain = first_failure(ys, ok, data, names, model.variable_names, SOLVER.max_steps)
    assert (plain.batch, plain.time, plain.kind) == ("bad", 10.0, "stopped")
    failure = locate(model, data, names, SOLVER, ys, ok)
    assert (failure.batch, failure.kind, failure.rates) == ("bad", "non-finite", ("q", "growth"))
    resolution = (10.0 - 5.0) / GRID**ZOOMS
    assert T_STAR < failure.time <= T_STAR + resolution, failure.time
    assert f"non-finite value at t={failure.time:.6g}: rate(s) q, growth" in failure.message
    # the state named: just past S(t*) = 2, where log(S - 2) is NaN
    s = float(failure.message.split("(at S=")[1].split(",")[0])
    assert 2.0 - 2 * resolution < s < 2.0, failure.message


def test_equations_finite_everywhere_are_not_blamed():
    model, ok_only = _model(2.0), _study().select(batches="ok")
    data = batch_data(model, ok_only)
    t = np.array([0.0])
    assert field_failure(model, data, ok_only.batch_names, t, np.array([[3.0, 1.0]])) is None
    bad = field_failure(model, data, ok_only.batch_names, t, np.array([[1.0, 1.0]]))
    assert bad.rates == ("q", "growth") and bad.time == 0.0
    ys, ok = (np.asarray(a) for a in solve(model, data, SOLVER))
    assert locate(model, data, ok_only.batch_names, SOLVER, ys, ok) is None


def test_a_fit_whose_equations_fail_at_the_start_stops_before_any_step():
    # three batches: their arrays are padded to a bucket of rows
    model, study = _model(100.0), _study(starts=(("ok", 20.0), ("bad", 10.0), ("c", 5.0)))
    assert batch_data(model, study).times.shape[0] > 3
    start = time.perf_counter()
    with pytest.raises(FitError) as e:
        fit(model, study, config=FitConfig(steps=50, members=2, solver=SOLVER), progress=False)
    assert time.perf_counter() - start < 10.0
    message = str(e.value)
    assert message.startswith("fit: cannot start: batch 'ok': the model's equations give")
    assert "rate(s) q, growth" in message and "\n" not in message


def _declared_half():
    """The model declared with k = 0.5 (S >= 2.5 up to t = 15: finite), at k = 1."""
    return _model(2.0, k=0.5).with_parameters(k=1.0)


def test_a_fit_whose_every_step_is_rejected_stops_at_the_first():
    model, study = _declared_half(), _study()
    with pytest.raises(FitError) as e:
        fit(model, study, config=FIT, progress=False)
    message = str(e.value)
    assert message.startswith("fit step 1: every member's step was rejected: batch 'bad'")
    assert "rate(s) q, growth" in message and "a rejected step changes nothing" in message
    t = float(message.split("non-finite value at t=")[1].split(":")[0])
    assert T_STAR < t <= T_STAR + 5.0 / GRID**ZOOMS


def test_a_fit_rejected_later_keeps_what_it_learnt():
    # from k = 0.5 towards the data's k = 1: once k > 8/15, batch 'bad' (S(0) = 10)
    # crosses S = 2 before t = 15 and every step is rejected; the fit keeps its best k
    model, study = _model(2.0, k=0.5), _study()
    config = FitConfig(steps=60, members=1, solver=SOLVER, learning_rate=0.05, warmup=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(model, study, config=config, plan=hx.Plan(from_declared=True), progress=False)
    stops = [str(w.message) for w in caught if "every member's step was rejected" in str(w.message)]
    assert len(stops) == 1 and "keeps each member's best values so far" in stops[0]
    assert "batch 'bad'" in stops[0] and "rate(s) q, growth" in stops[0]
    last = int(result.history["step"].max())
    assert 1 < last < config.steps and stops[0].startswith(f"fit step {last}:")
    k = float(result.model.parameter_values()["k"])  # towards 1, still finite on "bad"
    assert 0.5 < k < 8 / 15
    assert np.isfinite(np.asarray(hx.simulate(result.model, study)["value"])).all()


def test_a_member_left_behind_is_warned_about_once_and_the_others_go_on():
    # member 0 starts at the declared k = 0.5; member 1 at k = 1, failing at t* = 8
    model, study = _declared_half(), _study()
    plans = [hx.Plan(from_declared=True), hx.Plan()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(model, study, config=FIT, plan=plans, progress=False)
    rejected = [str(w.message) for w in caught if "step rejected" in str(w.message)]
    assert len(rejected) == 1 and rejected[0].startswith("fit step 1, member 1: step rejected")
    assert "rate(s) q, growth" in rejected[0]
    history = result.history
    assert history["step"].max() == FIT.steps
    assert np.isfinite(history[history["member"] == 0]["train"]).all()


def test_simulate_names_a_rate_that_turns_nan_mid_batch_quickly():
    """S' = -1 from S(0) = 10 crosses 5 at t = 5 h, where the rate r = log(S - 5) turns
    NaN; hx.simulate (default solver) names r and a time just past 5, not the step
    budget at the next output time, and the later segments do not each spend it."""
    model = hx.HybridModel.build(
        name="log-crossing",
        states=[hx.State("S", "g/L"), hx.State("P", "g/L", initial=0.0)],
        parameters=[hx.Parameter("k", 1.0, "g/(L h)")],
        rates={"r": "log(S - 5)"},
        balances={"S": "-k", "P": "r"},
    )
    rows = [
        (b, t, "S", max(s0 - t, 0.5))
        for b, s0 in (("ok", 30.0), ("b", 10.0))
        for t in range(0, 25, 3)
    ]
    study = hx.study_from_frames(
        pd.DataFrame(rows, columns=["batch", "time", "variable", "value"]),
        batches=pd.DataFrame({"batch": ["ok", "b"], "process": "p", "split": "train"}),
    )
    cpu = time.process_time()
    with pytest.raises(hx.SimulationError) as e:
        hx.simulate(model, study)
    cpu = time.process_time() - cpu
    message = str(e.value)
    assert message.startswith("batch 'b': the model's equations give a non-finite value at t=")
    assert "rate(s) r, the balance of P" in message and "\n" not in message
    t = float(message.split("non-finite value at t=")[1].split(":")[0])
    assert 5.0 < t <= 5.0 + 3.0 / GRID**ZOOMS, t  # the crossing, to the located resolution
    assert cpu < 10.0, cpu  # compile included; 76 s when each segment spent the budget


def test_segments_after_a_failed_one_are_skipped():
    """y' = -1000 y on [0, 1] spends a budget of 8 steps; y' = 0 after it would be
    solved in one step. The later segments are skipped (inf, failed), not solved on
    from where the first stopped."""
    field = lambda t, y, t_end: jnp.where(t < 1.0, -1000.0 * y, 0.0)  # noqa: E731
    bounds = jnp.asarray([0.0, 1.0, 2.0, 3.0])
    ends, ok = integrate(field, jnp.ones(1), bounds, Solver(max_steps=8))
    assert np.asarray(ok).tolist() == [False, False, False]
    assert np.isinf(np.asarray(ends)).all()
    ends, ok = integrate(field, jnp.ones(1), bounds, Solver(max_steps=4096))
    assert np.asarray(ok).all()  # the reference: with the budget, every segment solves
    np.testing.assert_allclose(np.asarray(ends)[:, 0], np.exp(-1000.0), atol=1e-8)  # 10 x atol


def test_a_member_left_behind_later_is_held_at_its_best_values():
    # member 0 moves k from 0.5 towards 1 and is rejected once k > 8/15 (batch 'bad'
    # crosses S = 2); member 1 fits Y only and goes on. Member 0 is then held at its best
    # values: its later steps solve there (finite losses, its best validation loss),
    # instead of failing again, each at the whole step budget
    model, study = _model(2.0, k=0.5), _study()
    config = FitConfig(steps=40, solver=SOLVER, learning_rate=0.05, warmup=1, patience=1000)
    plans = [hx.Plan(from_declared=True), hx.Plan(parameters=("Y",), from_declared=True)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        members = train(
            model, study, list(zip(plans, [hx.Validation()] * 2)), config=config, progress=False
        )
    held = [str(w.message) for w in caught if "step rejected" in str(w.message)]
    assert len(held) == 1 and "member 0: step rejected, the member is held at its best" in held[0]
    at = int(held[0].split("fit step ")[1].split(",")[0])
    assert 1 < at < config.steps
    later = members.history.query("member == 0 and step > @at")
    assert len(later) == config.steps - at and np.isfinite(later[["train", "valid"]]).all().all()
    assert later["valid"].min() == pytest.approx(members.scores[0], rel=1e-9)
    k = float(np.asarray(members.best.model.free)[0, 0])
    assert 0.5 < np.exp(k) < 8 / 15  # its best, where 'bad' still solves
    assert members.history.query("member == 1")["step"].max() == config.steps
