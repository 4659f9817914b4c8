"""The profile likelihood against references it does not compute: the analytic
likelihood of exponential decay, and a product of two parameters that the data cannot
split."""

import numpy as np
import pandas as pd
import pytest
import scipy.optimize

import hybridxfer as hx

TIMES = np.arange(0.0, 10.5, 1.0)
STARTS = {"b1": 5.0, "b2": 8.0}


def _decay(parameters, rate):
    return hx.HybridModel.build(
        name="decay",
        states=[hx.State("X", "g/L")],
        parameters=parameters,
        rates={"r": rate},
        balances={"X": "-r * X"},
    )


@pytest.fixture(scope="module")
def data():
    """X(t) = X0 exp(-0.3 t) of two batches, absolute noise sd 0.05 after t = 0."""
    rng = np.random.default_rng(0)
    rows = [
        (b, t, "X", x0 * np.exp(-0.3 * t) + (0.05 * rng.standard_normal() if t > 0 else 0.0))
        for b, x0 in STARTS.items()
        for t in TIMES
    ]
    return hx.study_from_frames(pd.DataFrame(rows, columns=["batch", "time", "variable", "value"]))


def test_profile_of_exponential_decay_is_its_analytic_likelihood(data):
    """X = X0 exp(-k t) has a closed form: S(k) = sum (X0 exp(-k t) - y)^2 / sigma^2 with
    sigma^2 = S_min / (n - 1) over the n measurements after t = 0 (the t = 0 values
    start the states: no degree of freedom). Delta(k) = S(k) - S(k_hat) point by point,
    and the 95% interval's ends where Delta = chi2_1(0.95)."""
    m = data.measurements.query("time > 0")
    x0, t, y = m["batch"].map(STARTS).to_numpy(), m["time"].to_numpy(), m["value"].to_numpy()

    def rss(k):
        return float(np.sum((x0 * np.exp(-k * t) - y) ** 2))

    k_hat = scipy.optimize.minimize_scalar(rss, bounds=(0.1, 0.5), method="bounded").x
    sigma2 = rss(k_hat) / (len(y) - 1)
    profile = hx.profile_likelihood(_decay([hx.Parameter("k", k_hat, "1/h")], "k"), "k", data)
    expected = [(rss(k) - rss(k_hat)) / sigma2 for k in profile["value"]]
    np.testing.assert_allclose(profile["delta"], expected, rtol=1e-4, atol=1e-6)
    assert profile["delta"].max() > 3.84  # walked past the threshold on both sides
    a = profile.attrs
    assert a["estimate"] == pytest.approx(k_hat, rel=1e-6)
    for end, side in ((a["lower"], -1), (a["upper"], 1)):
        root = scipy.optimize.brentq(
            lambda k: (rss(k) - rss(k_hat)) / sigma2 - a["threshold"],
            k_hat,
            k_hat + side * 0.05,
        )
        assert end == pytest.approx(root, abs=0.02 * abs(root - k_hat))  # linear between points
    assert a["open"] == [] and a["unit"] == "1/h" and a["threshold"] == pytest.approx(3.8415, 1e-4)
    # the Laplace interval agrees where the likelihood is nearly quadratic
    table = hx.parameter_table(_decay([hx.Parameter("k", k_hat, "1/h")], "k"), data)
    assert table.loc[0, "lower95"] == pytest.approx(a["lower"], rel=2e-3)
    assert table.loc[0, "upper95"] == pytest.approx(a["upper"], rel=2e-3)


def test_a_product_the_data_cannot_split_has_an_open_profile(data):
    """r = a * b: the data fix a * b only, so every a fits as well as any other."""
    model = _decay([hx.Parameter("a", 0.5, "1/h"), hx.Parameter("b", 0.6, "1")], "a * b")
    profile = hx.profile_likelihood(model, "a", data)
    assert profile["delta"].max() < 1e-6
    assert profile.attrs["open"] == ["lower", "upper"]
    assert (profile.attrs["lower"], profile.attrs["upper"]) == (0.0, np.inf)
    fig = hx.plot_profile(profile)
    assert "not bounded by the data: lower and upper side" in fig.axes[0].get_title()


def test_profile_refuses_what_it_cannot_do(data):
    model = _decay([hx.Parameter("k", 0.3, "1/h")], "k")
    free = r"'q' is not a free parameter of model 'decay' \(free: k\)"
    with pytest.raises(ValueError, match=free):
        hx.profile_likelihood(model, "q", data)
    with pytest.raises(ValueError, match="give the batches the model was fitted to"):
        hx.profile_likelihood(model, "k")
    with pytest.raises(ValueError, match="level must lie in"):
        hx.profile_likelihood(model, "k", data, level=1.0)
