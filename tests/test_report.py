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
    fig = hx.plot_network(model, "g", study)
    assert len(fig.axes) == 2  # and the rate mu reading it
    assert fig.axes[0].get_xlabel() == "S [g/L]"  # one input: in its own units
    rug = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("measured")]
    np.testing.assert_array_equal(rug[0].get_xdata(), [9.0])  # where S was measured
    with pytest.raises(KeyError):
        hx.plot_network(model, "h")


def test_reliability_counts_measurements_inside_the_bands():
    """reliability(): at each level, the fraction of measurements inside the fit's
    measurement band, counted here by hand from hx.predict's band."""
    from tests.helpers import monod_model

    rng = np.random.default_rng(3)
    parameters = [hx.Parameter("mu_max", 0.3, "1/h"), hx.Parameter("K", 1.0, "g/L")]
    truth = monod_model([*parameters, hx.Parameter("Y", 0.5, "g/g")])
    t0 = [(f"B{i}", 0.0, v, x) for i in range(6) for v, x in (("X", 0.1 + 0.02 * i), ("S", 10.0))]
    seed = hx.study_from_frames(pd.DataFrame(t0, columns=["batch", "time", "variable", "value"]))
    sim = hx.simulate(truth, seed, times={b: np.arange(0.0, 20.0, 2.0) for b in seed.batch_names})
    noisy = sim["value"] * (1 + 0.05 * rng.standard_normal(len(sim)))
    sim = sim.assign(value=np.where(sim["time"] == 0, sim["value"], noisy))
    split = ["train"] * 3 + ["valid", "test", "test"]
    batches = pd.DataFrame(dict(batch=seed.batch_names, process="A", split=split))
    study = hx.study_from_frames(sim, None, batches)
    fit = hx.fit(truth, study, config=hx.FitConfig(steps=20), progress=False)
    test = study.select(split="test")
    table = hx.reliability(fit, test, levels=(0.5, 0.9)).set_index(["variable", "level"])
    pred = hx.predict(fit, test, level=0.9, cover="measurement").merge(
        test.measurements.rename(columns={"value": "y"})
    )
    pred = pred[(pred["variable"] == "X") & (pred["time"] > 0)]
    inside = ((pred["y"] >= pred["lower"]) & (pred["y"] <= pred["upper"])).mean()
    assert table.loc[("X", 0.9), "coverage"] == inside
    assert table.loc[("X", 0.9), "width"] > table.loc[("X", 0.5), "width"]
    fig = hx.plot_reliability(table.reset_index())
    assert len(fig.axes[0].lines) == 1 + 2  # the diagonal, X and S


def test_residual_table_and_parity_plot_show_each_split(empty_folder):
    """residual_table(): each measurement beside the simulation at its time (computed
    here by simulate), its split and residual; plot_parity() draws one marker series
    per split in both panels, the residuals being measured - predicted."""
    model, _ = _toy()
    rows = []
    for b, x0 in (("b0", 0.2), ("b1", 0.3)):
        rows += [(b, 0.0, "X", x0), (b, 0.0, "S", 9.0), (b, 6.0, "X", 0.6), (b, 12.0, "X", 1.5)]
    frame = pd.DataFrame(rows, columns=["batch", "time", "variable", "value"])
    batches = pd.DataFrame(dict(batch=["b0", "b1"], process="A", split=["train", "test"]))
    study = hx.study_from_frames(frame, None, batches)
    table = hx.residual_table(hx.predict(model, study), study)
    sim = hx.simulate(model, study, times={b: [0.0, 6.0, 12.0] for b in ("b0", "b1")})
    keys = ["batch", "time", "variable"]
    expected = frame.merge(sim.rename(columns={"value": "sim"}), on=keys)
    assert len(table) == len(frame)
    np.testing.assert_allclose(table["predicted"], expected["sim"], rtol=1e-12)
    np.testing.assert_allclose(table["residual"], expected["value"] - expected["sim"])
    assert list(table.groupby("batch")["split"].first()) == ["train", "test"]
    fig = hx.plot_parity(table, "X", units=model.units)
    parity, resid = fig.axes
    assert [line.get_label() for line in parity.get_lines()][:2] == ["train", "test"]
    test = table[(table["variable"] == "X") & (table["split"] == "test")]
    np.testing.assert_array_equal(resid.get_lines()[1].get_ydata(), test["residual"])
    assert parity.get_xlabel() == "predicted X [g/L]"
