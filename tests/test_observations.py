"""Observation equations: simulated against an analytic solution, fitted from
simulated signals, written to and read from model files."""

import numpy as np
import pandas as pd
import pytest

import hybridxfer as hx

MU, X0, A, B = 0.05, 0.4, 6.0, 0.2  # 1/h, g/L, mmol/g, mmol/(g h)


def _model(a=A, b=B, mu=MU):
    """Exponential growth X' = mu X, with OUR = (a mu + b) X observed."""
    return hx.HybridModel.build(
        name="observed-growth",
        states=[hx.State("X", "g/L")],
        parameters=[
            hx.Parameter("mu", mu, "1/h"),
            hx.Parameter("a", a, "mmol/g"),
            hx.Parameter("b", b, "mmol/(g h)"),
        ],
        rates={"r": "mu * X"},
        balances={"X": "r"},
        observations=[hx.Observation("OUR", "mmol/(L h)", "(a * mu + b) * X", sd=0.01)],
    )


def _seed(n=3):
    rows = [(f"B{i}", 0.0, "X", X0 * (1 + 0.5 * i)) for i in range(n)]
    return hx.study_from_frames(pd.DataFrame(rows, columns=["batch", "time", "variable", "value"]))


def test_observation_follows_the_analytic_solution():
    study = _seed(1)
    times = np.linspace(0, 48, 13)
    sim = hx.simulate(_model(), study, times={"B0": times})
    our = sim.query("variable == 'OUR'")["value"].to_numpy()
    exact = (A * MU + B) * X0 * np.exp(MU * times)
    np.testing.assert_allclose(our, exact, rtol=1e-6)
    assert _model().variable_names == ("X", "OUR")
    assert _model().units["OUR"] == "mmol/(L h)"


def _monod(a=A, b=B):
    """Batch Monod growth; OUR = (a mu + b) X with mu falling as S runs out."""
    return hx.HybridModel.build(
        name="observed-monod",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        parameters=[
            hx.Parameter("mu_max", 0.2, "1/h", fixed=True),
            hx.Parameter("K", 1.0, "g/L", fixed=True),
            hx.Parameter("Y", 0.5, "g/g", fixed=True),
            hx.Parameter("a", a, "mmol/g"),
            hx.Parameter("b", b, "mmol/(g h)"),
        ],
        rates={"mu": "mu_max * monod(S, K)"},
        balances={"X": "mu * X", "S": "-mu / Y * X"},
        observations=[hx.Observation("OUR", "mmol/(L h)", "(a * mu + b) * X")],
    )


def test_observation_parameters_are_recovered_from_the_signal():
    """a and b, fitted from a noisy OUR signal (X and S known only at t=0), come back
    within 3%: mu falls from 0.2 to 0 as S runs out, which separates them."""
    rng = np.random.default_rng(0)
    rows = [(f"B{i}", 0.0, v, x) for i in range(3) for v, x in (("X", 0.2 + 0.1 * i), ("S", 10.0))]
    seed = hx.study_from_frames(pd.DataFrame(rows, columns=["batch", "time", "variable", "value"]))
    times = np.arange(0.0, 40.0, 1.0)
    sim = hx.simulate(_monod(), seed, times={b: times for b in seed.batch_names})
    our = sim.query("variable == 'OUR' and time > 0")
    our = our.assign(value=our["value"] * (1 + 0.01 * rng.standard_normal(len(our))))
    data = hx.study_from_frames(pd.concat([sim.query("time == 0 and variable != 'OUR'"), our]))
    config = hx.FitConfig(steps=600, learning_rate=0.05, holdout=0.2)
    result = hx.fit(_monod(a=2.0, b=1.0), data, config=config, progress=False)
    values = result.model.parameter_values()
    assert float(values["a"]) == pytest.approx(A, rel=0.03)
    assert float(values["b"]) == pytest.approx(B, rel=0.03)


def test_model_file_round_trip_and_errors():
    text = hx.to_toml(_model())
    assert "[observations]" in text
    back = hx.parse_model(text)
    assert back.structure.observations == _model().structure.observations
    bad = text.replace('expression = "(a * mu + b) * X"', 'expression = "(a * mu + b) * Z"')
    with pytest.raises(hx.ModelFileError, match=r"line \d+: \[observations.OUR\].*Z"):
        hx.parse_model(bad)
    missing = text.replace('expression = "(a * mu + b) * X", ', "")
    with pytest.raises(hx.ModelFileError, match="needs expression"):
        hx.parse_model(missing)


def test_an_observation_cannot_read_another():
    with pytest.raises(hx.ModelError, match="observations.CER"):
        hx.HybridModel.build(
            name="m",
            states=[hx.State("X", "g/L")],
            parameters=[hx.Parameter("mu", MU, "1/h")],
            rates={},
            balances={"X": "mu * X"},
            observations=[
                hx.Observation("OUR", "mmol/(L h)", "X"),
                hx.Observation("CER", "mmol/(L h)", "0.9 * OUR"),
            ],
        )
