"""Rates along trajectories, checked against their formulas, and the plots: each
returns a matplotlib Figure and writes no file."""

import jax
import matplotlib
import numpy as np
import pandas as pd
import pytest

import hybridxfer as hx

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _toy():
    model = hx.HybridModel.build(
        name="toy",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        parameters=[hx.Parameter("mu_max", 0.3, "1/h"), hx.Parameter("K", 0.5, "g/L")],
        networks=[hx.Network("g", inputs=("S",), hidden=(4,))],
        rates={"mu": "mu_max * monod(S, K) * g"},
        balances={"X": "mu * X", "S": "-2 * mu * X"},
        key=jax.random.PRNGKey(0),
    )
    t0 = pd.DataFrame(
        [("b0", 0.0, "X", 0.2), ("b0", 0.0, "S", 9.0), ("b0", 12.0, "X", 1.0)],
        columns=["batch", "time", "variable", "value"],
    )
    return model, hx.study_from_frames(t0)


def test_rates_along_are_the_rate_formulas_at_the_simulated_states():
    model, study = _toy()
    states = hx.simulate(model, study, times=11).pivot(index="time", columns="variable")["value"]
    monod = 0.3 * states["S"] / (0.5 + states["S"])
    factor = np.asarray(jax.vmap(lambda s: model.networks["g"](s[None]))(states["S"].to_numpy()))
    assert np.ptp(factor) > 0.01 and np.abs(factor - 1).max() > 0.05  # the factor matters
    for mechanistic, expected in ((True, monod), (False, monod * factor.reshape(-1))):
        rates = hx.rates_along(model, study, points=11, mechanistic=mechanistic)
        mu = rates[rates["rate"] == "mu"].set_index("time")["value"]
        np.testing.assert_allclose(mu.loc[states.index], expected, rtol=1e-12)


@pytest.fixture
def empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert not list(tmp_path.iterdir())  # plot functions draw; saving is the caller's
    plt.close("all")


def test_plot_simulation_draws_one_variable_on_new_or_given_axes(empty_folder):
    model, study = _toy()
    sim = hx.simulate(model, study, times=11)
    fig = hx.plot_simulation(sim, "S", study.measurements, units=model.units)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 1
    (line,) = fig.axes[0].get_lines()[:1]
    np.testing.assert_array_equal(line.get_ydata(), sim[sim["variable"] == "S"]["value"])
    assert fig.axes[0].get_ylabel() == "S [g/L]"
    given, axes = plt.subplots(1, 2)
    assert hx.plot_simulation(sim, "X", study.measurements, ax=axes[1]) is given
    assert not axes[0].get_lines() and len(axes[1].get_lines()) == 2  # the line and the dots


def test_plot_history_and_plot_network_return_figures(empty_folder):
    model, study = _toy()
    history = pd.DataFrame(
        dict(step=[0, 1, 0, 1], member=[0, 0, 1, 1], train=[2.0, 1, 3, 2], valid=[2.5, 1, 3, 3])
    )
    fig = hx.plot_history(history)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes[0].get_lines()) == 4
    _, ax = plt.subplots()
    assert hx.plot_history(history, ax=ax) is ax.get_figure()
    assert len(hx.plot_network(model, "g").axes) == 1  # the factor only
    assert len(hx.plot_network(model, "g", study).axes) == 2  # and the rate mu reading it
    with pytest.raises(KeyError):
        hx.plot_network(model, "h")
