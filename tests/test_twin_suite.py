"""benchmarks/twin_suite.py: how it feeds a twin (inputs as they change, samples as
they arrive late), against the simulation and the twin fed by hand, and its scores on
a hand-made band."""

import numpy as np
import pandas as pd
import pytest

import hybridxfer as hx
from benchmarks import twin_suite
from tests.helpers import fit_holding, grows_model

K, X0 = 0.1, 1.0


def _fit_and_study(sample: float):
    """A fed-batch (X grows at rate K, fed from t = 3 with X-free medium, so it dilutes)
    and one batch sampled at 0, 6 and 12 (X at 6: `sample`); a fit holding the model
    (no residuals: the twin's default noise)."""
    fit = fit_holding(grows_model(K))
    columns = ["batch", "time", "variable", "value"]
    samples = [("b", 0.0, "X", X0), ("b", 0.0, "V", 1.0), ("b", 6.0, "X", sample)]
    study = hx.study_from_frames(
        pd.DataFrame([*samples, ("b", 12.0, "X", 2.0)], columns=columns),
        pd.DataFrame([("b", 0.0, "F", 0.0), ("b", 3.0, "F", 0.05)], columns=columns),
        pd.DataFrame(dict(batch=["b"], process=["A"], split=["test"], Xf=[0.0])),
    )
    return fit, study


def test_the_twin_is_fed_the_inputs_as_they_change_and_samples_as_they_arrive():
    """Until the sample taken at 6 arrives (at 6 + 6/4 = 7.5) the twin's mean is the
    simulation (hx.simulate, the feed starting at 3); from then on it is the twin fed by
    hand (the feed, then the late sample), and closer to the sample than the model."""
    fit, study = _fit_and_study(sample=2.5)
    interval, grid = twin_suite.grid_of(study)
    assert interval == 6.0 and grid[1] == pytest.approx(0.25) and grid[-1] == 12.0
    est = twin_suite.run_twin(fit, study, "b", interval, grid, lambda v, x: 0.1)
    x = est[est["variable"] == "X"].set_index("time")["mean"]
    sim = hx.simulate(fit.model, study, times={"b": grid})
    sim = sim[sim["variable"] == "X"].set_index("time")["value"]
    before = x.index < 7.5
    np.testing.assert_allclose(x[before], sim.reindex(x.index)[before], rtol=1e-6)
    assert sim[6.0] < sim[3.0] * np.exp(3 * K)  # the feed dilutes from t = 3
    by_hand = hx.DigitalTwin.from_fit(
        fit, initial={"X": X0, "V": 1.0}, inputs={"F": 0.0}, constants={"Xf": 0.0}
    )
    by_hand.update(3.0, {"F": 0.05})
    by_hand.update(7.5, {})
    by_hand.update(7.5, {"X": 2.5}, sd={"X": 0.1}, sample_time=6.0)
    at = by_hand.estimate().set_index("variable").loc["X", "mean"]
    assert x[7.5] == pytest.approx(at, rel=1e-9)
    assert abs(x[7.5] - 2.5) < abs(sim[7.5] - 2.5)


def test_scores_on_a_hand_made_band():
    """Truth 0 (t = 0, not scored), 1, 2, 3, 4 (range 3); a band of width 1 around a
    mean off by 0.25, 0.25, 1, 1 holds the truth 2 times of 4; NRMSE by hand."""
    t = np.arange(1.0, 5.0)
    truth = pd.DataFrame(dict(time=np.r_[0.0, t], variable="X", value=np.r_[0.0, t]))
    off = np.array([0.25, 0.25, 1.0, 1.0])
    est = pd.DataFrame(dict(time=t, variable="X", mean=t + off, lower95=t + off - 0.5))
    est = est.assign(upper95=est["mean"] + 0.5)
    open_loop = pd.DataFrame(dict(time=t, variable="X", value=t + 0.3))
    got = twin_suite.scores(est, open_loop, truth, ["X"])["X"]
    assert got["coverage"] == 0.5
    assert got["width"] == pytest.approx(1 / 3)
    assert got["nrmse"] == pytest.approx(np.sqrt(np.mean(off**2)) / 3)
    assert got["open_loop"] == pytest.approx(0.1)
