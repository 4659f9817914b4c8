"""Parameter recovery with intervals, ensemble bands and NRMSE, on data simulated
from known parameters."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats

import hybridxfer as hx
from hybridxfer._uncertainty import bands as hx_bands
from hybridxfer._uncertainty import noise as hx_noise
from tests.helpers import monod_model

TRUE = {"mu_max": 0.25, "K": 2.0, "Y": 0.5}


def _model(**values):
    return monod_model(
        [
            hx.Parameter(
                "mu_max",
                values.get("mu_max", 0.25),
                "1/h",
                bounds=(0.01, 2.0),
                process_specific=True,
            ),
            hx.Parameter("K", values.get("K", 2.0), "g/L"),
            hx.Parameter("Y", values.get("Y", 0.5), "g/g"),
        ],
        name="monod-batch",
    )


def simulated(rng, prefix: str, n: int) -> pd.DataFrame:
    """Measurements of n batch runs of the true model (random start), with 2%
    multiplicative noise after t = 0."""
    times = np.arange(0.0, 25.0, 2.0)
    t0 = [
        (f"{prefix}{i}", 0.0, v, x)
        for i in range(n)
        for v, x in (("X", rng.uniform(0.05, 0.2)), ("S", rng.uniform(10, 20)))
    ]
    seed = hx.study_from_frames(pd.DataFrame(t0, columns=["batch", "time", "variable", "value"]))
    sim = hx.simulate(_model(**TRUE), seed, times={b: times for b in seed.batch_names})
    noisy = sim["value"] * (1 + 0.02 * rng.standard_normal(len(sim)))
    return sim.assign(value=np.where(sim["time"] == 0, sim["value"], noisy))


def make_data():
    """8 batch runs from the true parameters, 2% multiplicative noise."""
    sim = simulated(np.random.default_rng(1), "B", 8)
    split = ["train"] * 6 + ["valid"] * 2
    batches = pd.DataFrame(dict(batch=sim["batch"].unique(), process="A", split=split))
    return hx.study_from_frames(sim, None, batches)


def test_parameters_recovered_inside_their_intervals(data):
    start = _model(mu_max=0.15, K=1.0, Y=0.8)
    config = hx.FitConfig(steps=1500, learning_rate=0.1)
    result = hx.fit(start, data, config=config, progress=False)
    table = hx.parameter_table(result.model, data.select(split="train")).set_index("name")
    for name, truth in TRUE.items():
        row = table.loc[name]
        # the truth lies within 3 standard deviations (a 95% interval misses 1 in 20)
        assert abs(row["value"] - truth) < 3 * row["sd"], (name, row.to_dict())
        assert row["lower95"] < row["value"] < row["upper95"]
    # well-identified parameters come back within a few per cent, with tight intervals
    for name in ("mu_max", "Y"):
        assert abs(table.loc[name, "value"] / TRUE[name] - 1) < 0.05
        assert table.loc[name, "sd"] / table.loc[name, "value"] < 0.05
    assert table.loc["mu_max", "unit"] == "1/h"


def test_ensemble_band_contains_members_and_best():
    models = [_model(mu_max=m) for m in (0.25, 0.2, 0.3)]
    t0 = pd.DataFrame(
        [("B1", 0.0, "X", 0.1), ("B1", 0.0, "S", 10.0)],
        columns=["batch", "time", "variable", "value"],
    )
    study = hx.study_from_frames(t0)
    times = {"B1": np.linspace(0.0, 20.0, 9)}
    pred = hx.predict(models, study, times=times)
    each = [hx.simulate(m, study, times=times)["value"].to_numpy() for m in models]
    np.testing.assert_array_equal(pred["value"], each[0])
    # the 95% band of three members lies between their extremes and holds their median
    assert (pred["lower"] >= np.min(each, axis=0) - 1e-9).all()
    assert (pred["upper"] <= np.max(each, axis=0) + 1e-9).all()
    assert (pred["lower"] <= np.median(each, axis=0)).all()
    assert (np.median(each, axis=0) <= pred["upper"]).all()
    assert (pred["upper"] - pred["lower"]).max() > 0


def test_nrmse_hand_computed():
    meas = pd.DataFrame(dict(batch="B", time=[0.0, 1.0, 2.0], variable="X", value=[0.0, 1.0, 4.0]))
    pred = meas.assign(value=[0.0, 2.0, 4.0])
    # t > 0: RMSE = sqrt((1 + 0) / 2), range of those values = 4 - 1
    np.testing.assert_allclose(hx.nrmse(pred, meas)["X"], np.sqrt(1 / 2) / 3)
    # all points: RMSE = sqrt((0 + 1 + 0) / 3), range = 4
    np.testing.assert_allclose(hx.nrmse(pred, meas, include_initial=True)["X"], np.sqrt(1 / 3) / 4)


def test_relative_rmse_hand_computed():
    meas = pd.DataFrame(dict(batch="B", time=[0.0, 1.0, 2.0], variable="X", value=[0.0, 1.0, 4.0]))
    pred = meas.assign(value=[0.0, 2.0, 5.0])
    # t > 0: relative errors (1 - 2) / 2 and (4 - 5) / 5
    np.testing.assert_allclose(hx.relative_rmse(pred, meas)["X"], np.sqrt((0.25 + 0.04) / 2))
    # t = 0 has a zero prediction: left out even when asked for
    np.testing.assert_allclose(
        hx.relative_rmse(pred, meas, include_initial=True)["X"], np.sqrt((0.25 + 0.04) / 2)
    )


@pytest.fixture(scope="module")
def data():
    return make_data()


def test_band_quantile_is_the_conformal_quantile_of_relative_errors():
    """Relative errors of N(0, 0.1): the measurement band's half-width is the
    ceil((n + 1) 0.95)-th smallest |error| / (|prediction| + floor), which for many
    points nears the normal quantile 1.96 x 0.1 (floor small against the values); the
    state band shrinks by the declared noise, against the held-out errors' 95% upper
    bound of their mean square (scipy's chi-square quantile)."""
    rng = np.random.default_rng(0)
    n = 4000
    predicted = rng.uniform(50.0, 100.0, n)
    measured = predicted * (1 + 0.1 * rng.standard_normal(n))
    table = pd.DataFrame(
        dict(batch="B", time=np.arange(1.0, n + 1), variable="X", measured=measured)
    ).assign(sd=np.nan, predicted=predicted, heldout=True)
    widths = hx_bands.band_widths(table, 0.95, "measurement")
    floor = hx_bands.FLOOR * np.ptp(measured)
    scores = np.sort(np.abs(measured - predicted) / (predicted + floor))
    assert widths.loc["X", "q"] == scores[int(np.ceil((n + 1) * 0.95)) - 1]
    relative = widths.loc["X", "q"] * (predicted + floor) / predicted
    assert np.median(relative) == pytest.approx(1.96 * 0.1, rel=0.1)
    declared = table.assign(sd=0.06 * predicted)  # noise 0.06 of a total 0.1
    shrunk = hx_bands.band_widths(declared, 0.95, "state").loc["X", "q"]
    scaled = np.abs(measured - predicted) / (predicted + floor)
    upper = np.mean(scaled**2) * n / scipy.stats.chi2.ppf(0.05, n)  # 95% upper bound
    ratio = np.mean((0.06 * predicted / (predicted + floor)) ** 2) / upper
    assert shrunk == pytest.approx(widths.loc["X", "q"] * np.sqrt(1 - ratio), rel=1e-6)


def _residual_table(batches, sd_model, tau, sd_noise, seed, heldout=True):
    """Batches of 10 daily observations: the truth is the prediction times (1 + e), e a
    smooth model error (exponential correlation time `tau` days, sd `sd_model`); the
    measurement is the truth times (1 + noise of sd `sd_noise`)."""
    rng = np.random.default_rng(seed)
    t = np.arange(1.0, 11.0)
    cov = sd_model**2 * np.exp(-abs(t[:, None] - t[None, :]) / tau)
    frames = []
    for b in range(batches):
        predicted = rng.uniform(50.0, 100.0, len(t))
        truth = predicted * (1 + rng.multivariate_normal(np.zeros(len(t)), cov))
        measured = truth * (1 + sd_noise * rng.standard_normal(len(t)))
        frames.append(
            pd.DataFrame(dict(batch=f"b{b}", time=t, variable="X", measured=measured)).assign(
                sd=np.nan, predicted=predicted, heldout=heldout, truth=truth
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_noise_is_told_apart_from_smooth_model_error():
    """Residuals = smooth model error (sd 0.08, 4-day correlation) + white noise (sd
    0.05): the estimated noise is 0.05 (scaled as the bands scale it: x |y|/(|y| + f)),
    within 25%; with no model error, 0.05 again; with no noise, well below the model
    error's 0.08."""
    for sd_model, sd_noise in ((0.08, 0.05), (1e-9, 0.05)):
        table = _residual_table(30, sd_model, 4.0, sd_noise, seed=1)
        floor = hx_bands.FLOOR * np.ptp(table["measured"])
        expected = sd_noise * np.mean(table["predicted"] / (table["predicted"] + floor))
        sigma = hx_noise.noise_scale([table])["X"]
        assert sigma == pytest.approx(expected, abs=0.25 * 0.05), (sd_model, sd_noise, sigma)
    assert hx_noise.noise_scale([_residual_table(30, 0.08, 4.0, 0.0, seed=1)])["X"] < 0.03


def test_state_band_without_declared_noise_covers_the_truth():
    """Calibrated on 20 held-out batches with no declared sd, the 95% state band holds
    the true state of 200 new batches 0.90-0.98 of the time (the measurement band, which
    also holds the noise, would hold it more often), and the measurement band holds
    their measurements about 95% of the time."""
    calibration = _residual_table(20, 0.06, 4.0, 0.05, seed=2)
    new = _residual_table(200, 0.06, 4.0, 0.05, seed=3)
    coverage = {}
    for cover, against in (("state", "truth"), ("measurement", "measured")):
        widths = hx_bands.band_widths(calibration, 0.95, cover)
        half = widths.loc["X", "q"] * (new["predicted"] + widths.loc["X", "floor"])
        coverage[cover] = float((abs(new[against] - new["predicted"]) <= half).mean())
    assert 0.90 <= coverage["state"] <= 0.98, coverage
    assert abs(coverage["measurement"] - 0.95) < 0.03, coverage


def test_fit_bands_cover_new_batches_and_stay_physical(data, tmp_path):
    """A fit's measurement band, calibrated on its valid batches, holds new batches'
    measurements about 95% of the time (binomial tolerance); bands are never below 0;
    the calibration survives saving."""
    result = hx.fit(_model(), data, config=hx.FitConfig(steps=300), progress=False)
    assert result.calibration["heldout"].sum() > 0
    new = hx.study_from_frames(simulated(np.random.default_rng(7), "N", 12))
    pred = hx.predict(result, new, cover="measurement")
    assert pred.attrs["band"].endswith("(2 batches held out whole)")
    assert "new measurement" in pred.attrs["band"]
    both = pred.merge(new.measurements.rename(columns={"value": "y"})).query("time > 0")
    inside = ((both["y"] >= both["lower"]) & (both["y"] <= both["upper"])).mean()
    k = len(both)
    assert abs(inside - 0.95) < 3 * np.sqrt(0.95 * 0.05 / k) + 0.03, (inside, k)
    assert (hx.predict(result, new)["lower"] >= 0).all()
    loaded = hx.load_fit(hx.save_fit(result, tmp_path / "m"))
    pd.testing.assert_frame_equal(loaded.calibration, result.calibration, check_exact=True)


def test_a_band_without_a_batch_held_out_whole_is_said_to_be(data):
    """Without valid batches a fit holds out late points only: its band is
    calibrated within batches, and predict says so (a warning and attrs["band"])."""
    train = hx.study_from_frames(data.measurements, None, data.batches.assign(split="train"))
    result = hx.fit(_model(), train, config=hx.FitConfig(steps=20), progress=False)
    assert result.calibration["heldout"].any()
    with pytest.warns(UserWarning, match=r"late time points of the training batches only"):
        pred = hx.predict(result, data)
    assert pred.attrs["band"].endswith("(0 batches held out whole)")


def test_parameters_that_trade_off_are_flagged(data):
    """mu = a * b * monod(S, K): only the product a * b is identifiable, so their
    estimates are correlated (r = -1) and the table flags both; K and Y are not."""
    model = hx.HybridModel.build(
        name="product",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        parameters=[
            hx.Parameter("a", 0.5, "1/h"),
            hx.Parameter("b", 0.5, "1"),
            hx.Parameter("K", 2.0, "g/L"),
            hx.Parameter("Y", 0.5, "g/g"),
        ],
        rates={"mu": "a * b * monod(S, K)"},
        balances={"X": "mu * X", "S": "-mu / Y * X"},
    )
    table = hx.parameter_table(model, data.select(split="train")).set_index("name")
    assert "correlated with b" in table.loc["a", "flag"]
    assert "correlated with a" in table.loc["b", "flag"]
    assert table.loc["Y", "flag"] == ""
    corr = table.attrs["correlation"]
    assert corr.loc["a", "b"] == pytest.approx(-1.0, abs=1e-3)
    assert "trades off with network" not in "".join(table["flag"])  # it has none


def test_parameter_that_a_network_can_absorb_is_flagged(data):
    """mu = mu_max * monod(S, K) * g(X): the network factor g can take up mu_max's
    scale (its output level shifts it), so mu_max is flagged; the yield Y, which no
    network touches, is not."""
    parameters = [
        hx.Parameter("mu_max", 0.5, "1/h"),
        hx.Parameter("K", 2.0, "g/L"),
        hx.Parameter("Y", 0.5, "g/g"),
    ]
    model = monod_model(parameters, network_input="X")
    table = hx.parameter_table(model, data.select(split="train")).set_index("name")
    assert "trades off with network g's output level" in table.loc["mu_max", "flag"]
    assert "network" not in table.loc["Y", "flag"]
