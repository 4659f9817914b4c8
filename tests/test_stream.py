"""Streams: reading with clear errors, replay through a twin, and ``hybridxfer twin``."""

import numpy as np
import pandas as pd
import pytest
from test_twin import STREAM, _chain, _twin

import hybridxfer as hx
from hybridxfer.cli import main


def _stream_frame(extra=()):
    rows = [(0.0, "X1", 5.0), (0.0, "X2", 0.5)]
    rows += [(t, v, x) for t, values in STREAM for v, x in values.items()]
    rows += list(extra)
    return pd.DataFrame(rows, columns=["time", "variable", "value"])


def test_replay_equals_a_twin_fed_by_hand_and_skips_refused_rows():
    frame = _stream_frame(extra=[(6.0, "OUR", float("nan"))]).sort_values("time", kind="stable")
    with pytest.warns(UserWarning, match=r"row \d+: update: OUR = nan is not a finite number"):
        estimates, refused = hx.replay(
            _chain(),
            frame,
            initial_sd={"X1": 1.0, "X2": 0.3},
            measurement_sd={"X2": 0.1},
            process_noise=0.0,
        )
    assert len(refused) == 1
    by_hand = _twin()
    for time, values in STREAM:
        by_hand.update(time, values)
    last = estimates[estimates["time"] == estimates["time"].max()].reset_index(drop=True)
    pd.testing.assert_frame_equal(last, by_hand.estimate(), rtol=1e-12)
    assert sorted(estimates["time"].unique()) == [0.0, 1.0, 2.5, 4.0, 6.0]


def test_read_stream_names_file_row_and_column(tmp_path):
    path = tmp_path / "stream.csv"
    frame = _stream_frame().astype({"time": object})
    frame.loc[3, "time"] = "soon"
    frame.to_csv(path, index=False)
    with pytest.raises(hx.StudyError, match=r"stream.csv row 5 column 'time': 'soon'"):
        hx.read_stream(path)
    frame.drop(columns="value").to_csv(path, index=False)
    with pytest.raises(hx.StudyError, match=r"missing column\(s\) \['value'\]"):
        hx.read_stream(path)


@pytest.fixture(scope="module")
def saved_chain(tmp_path_factory):
    """The chain model fitted briefly to data simulated from it, saved."""
    seed = pd.DataFrame(
        [(f"b{i}", 0.0, v, x) for i in range(2) for v, x in (("X1", 5.0 + i), ("X2", 0.5))],
        columns=["batch", "time", "variable", "value"],
    )
    study = hx.study_from_frames(seed)
    sim = hx.simulate(_chain(), study, times={b: np.arange(0.0, 12.0, 2.0) for b in ("b0", "b1")})
    fitted = hx.fit(
        _chain(), hx.study_from_frames(sim), config=hx.FitConfig(steps=5), progress=False
    )
    return hx.save_fit(fitted, tmp_path_factory.mktemp("model") / "chain")


def test_cli_twin_writes_estimates_and_plots(saved_chain, tmp_path, capsys):
    path = tmp_path / "stream.csv"
    _stream_frame().to_csv(path, index=False)
    out = tmp_path / "estimates.csv"
    assert main(["twin", str(saved_chain), str(path), "--out", str(out), "--sd", "X2=0.1"]) == 0
    est = pd.read_csv(out)
    assert list(est.columns) == ["time", "variable", "mean", "sd", "lower95", "upper95"]
    assert set(est["variable"]) == {"X1", "X2", "OUR"}
    assert {p.name for p in (tmp_path / "estimates_plots").glob("*.png")} == {
        "X1.png",
        "X2.png",
        "OUR.png",
    }
    assert "replayed" in capsys.readouterr().out


def test_cli_twin_takes_its_noise_from_the_saved_fit(saved_chain, tmp_path, capsys):
    """Default flags: the twin of the saved fit (DigitalTwin.from_fit: model error and
    process noise from the fit's residuals); --model-error overrides the fit's."""
    path, out = tmp_path / "stream.csv", tmp_path / "estimates.csv"
    _stream_frame().to_csv(path, index=False)
    args = ["twin", str(saved_chain), str(path), "--out", str(out), "--sd", "X2=0.1"]
    fit, kw = hx.load_fit(saved_chain), dict(measurement_sd={"X2": 0.1})
    assert main(args) == 0
    assert "consistency: mean NIS per measured value" in capsys.readouterr().out
    calibrated, _ = hx.replay(fit, _stream_frame(), **kw)
    np.testing.assert_allclose(pd.read_csv(out)["sd"], calibrated["sd"], rtol=1e-9)
    assert main([*args, "--model-error", "OUR=0.5"]) == 0
    wanted, _ = hx.replay(fit, _stream_frame(), model_error={"OUR": 0.5}, **kw)
    got = pd.read_csv(out)
    np.testing.assert_allclose(got["sd"], wanted["sd"], rtol=1e-9)
    assert not np.allclose(got["sd"], calibrated["sd"], rtol=1e-3)


def test_cli_twin_bad_stream_is_one_line_and_exit_2(saved_chain, tmp_path, capsys):
    path = tmp_path / "stream.csv"
    _stream_frame().assign(pH=7.0).to_csv(path, index=False)
    assert main(["twin", str(saved_chain), str(path), "--out", str(tmp_path / "e.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown column(s) ['pH']" in err


def test_a_row_out_of_order_in_the_file_is_refused_not_reordered():
    frame = _stream_frame(extra=[(3.0, "OUR", 11.0)])  # the last row, after those at 4.0
    with pytest.warns(UserWarning, match="out of order"):
        _, refused = hx.replay(_chain(), frame, measurement_sd={"X2": 0.1})
    assert len(refused) == 1 and "row(s) 8" in refused[0]


def _fed_batch():
    """Monod growth in a fed-batch reactor sampled by withdrawal (event input Vs)."""
    return hx.HybridModel.build(
        name="fed",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        inputs=[hx.Input("F", "L/h"), hx.Input("Vs", "L")],
        parameters=[hx.Parameter("mu", 0.2, "1/h"), hx.Parameter("K", 1.0, "g/L")],
        rates={"r": "mu * S / (K + S) * X"},
        balances={"X": "r", "S": "-2 * r"},
        reactor=hx.FedBatch(feed_rate="F", feed={"S": 50.0}, withdrawal="Vs"),
    )


def test_a_bad_value_in_an_arrival_refuses_that_value_only():
    """One arrival (t = 2) with a NaN, an unknown name, a negative sd and a negative
    concentration beside a valid sample and a withdrawal: the four are refused by row,
    the valid value and the withdrawal applied as if they had come alone."""
    start = [(0.0, "X", 0.5, np.nan), (0.0, "S", 10.0, np.nan), (0.0, "V", 1.0, np.nan)]
    start.append((0.0, "F", 0.01, np.nan))
    arrival = [
        (2.0, "X", np.nan, 0.05),  # row 6
        (2.0, "DO", 40.0, np.nan),  # row 7
        (2.0, "S", 7.0, -0.1),  # row 8
        (2.0, "X", -0.2, 0.05),  # row 9
        (2.0, "S", 8.0, 0.2),  # row 10: valid
        (2.0, "Vs", 0.05, np.nan),  # row 11: the withdrawal
    ]
    later = [(3.0, "S", 7.5, 0.2)]
    stream = pd.DataFrame(start + arrival + later, columns=["time", "variable", "value", "sd"])
    with pytest.warns(UserWarning, match=r"stream row 6: update: X = nan is not a finite"):
        estimates, refused, twin = hx.replay(_fed_batch(), stream, return_twin=True)
    assert refused == [
        "row 6: update: X = nan is not a finite number",
        "row 7: update: unknown name(s) ['DO']; known: X, S, V, F, Vs",
        "row 8: update: sd: S = -0.1 is not a positive finite number",
        "row 9: update: X = -0.2 is outside its physical range [0, inf]",
    ]
    by_hand = hx.DigitalTwin(
        _fed_batch(), initial={"X": 0.5, "S": 10.0, "V": 1.0}, inputs={"F": 0.01}
    )
    by_hand.update(2.0, {"S": 8.0, "Vs": 0.05}, sd={"S": 0.2})
    at_2 = estimates[estimates["time"] == 2.0].reset_index(drop=True)
    pd.testing.assert_frame_equal(at_2, by_hand.estimate(), rtol=1e-12)
    volume = at_2.set_index("variable").loc["V", "mean"]
    assert abs(volume - (1.0 + 2 * 0.01 - 0.05)) < 0.005  # withdrawn: 1.02 without
    by_hand.update(3.0, {"S": 7.5}, sd={"S": 0.2})
    pd.testing.assert_frame_equal(twin.estimate(), by_hand.estimate(), rtol=1e-12)
