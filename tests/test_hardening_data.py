"""Plausibility of study data (issue 28): physical ranges, far-out values, loss scales
that one absurd value cannot switch off, hints for ';'-delimited files and decimal
commas, and model sizes bounded before allocation."""

import warnings

import numpy as np
import pandas as pd
import pytest

import hybridxfer as hx
from hybridxfer._data.batch_data import batch_data, study_needs
from hybridxfer._fit.objective import variable_scales
from hybridxfer.demo import DATA

MODEL = """\
[model]
name = "toy"

[states]
X = {{ unit = "g/L" }}
S = {{ unit = "g/L"{s_range} }}

[parameters]
mu = {{ value = 0.2, unit = "1/h" }}

[rates]
r = "mu * monod(S, 1.0)"

[balances]
X = "r * X"
S = "-2 * r * X"
"""


def toy(s_range: str = "") -> hx.HybridModel:
    return hx.parse_model(MODEL.format(s_range=s_range), source="toy.toml")


def long_rows(n_batches: int = 4, times=(0.0, 2.0, 4.0, 6.0, 8.0)) -> pd.DataFrame:
    """Exact trajectories of X' = r X, S' = -2 r X stand-ins: smooth, positive data."""
    rows = []
    for b in range(n_batches):
        for t in times:
            x = (0.1 + 0.02 * b) * np.exp(0.15 * t)
            rows += [(f"B{b}", t, "X", x), (f"B{b}", t, "S", 10.0 - 2 * x)]
    return pd.DataFrame(rows, columns=["batch", "time", "variable", "value"])


def write(folder, measurements: pd.DataFrame):
    folder.mkdir(parents=True, exist_ok=True)
    measurements.to_csv(folder / "measurements.csv", index=False)
    names = list(dict.fromkeys(measurements["batch"]))
    pd.DataFrame({"batch": names, "process": "P", "split": "train"}).to_csv(
        folder / "batches.csv", index=False
    )
    return folder


# --- physical ranges ----------------------------------------------------------------------


def test_negative_concentration_refused_naming_file_row_and_column(tmp_path):
    m = long_rows()
    m.loc[6, "value"] = -0.01  # X of B0 at time 6: row 8 of the file (header = row 1)
    study = hx.read_study(write(tmp_path / "s", m))
    with pytest.raises(hx.StudyError) as info:
        hx.simulate(toy(), study)
    assert str(info.value) == (
        f"{tmp_path / 's'}/measurements.csv row 8 column 'value': X = -0.01 is outside its "
        "physical range [0, inf] (a wrong sign, unit or typo? declare another range in the "
        "model file: range = [lo, hi] on the state)"
    )


def test_round_off_below_zero_is_not_refused(tmp_path):
    """A simulated study's -4e-10 (a millionth of the variable's scale or less) passes."""
    m = long_rows()
    m.loc[7, "value"] = -4e-10  # S of B0 at time 6, S ~ 10 g/L
    hx.simulate(toy(), hx.read_study(write(tmp_path / "s", m)))


def test_range_declared_in_the_model_file(tmp_path):
    m = long_rows()
    m.loc[7, "value"] = -0.01  # S of B0 at time 6, far below the other S values
    with pytest.warns(UserWarning, match=r"suspected outlier.*row 9 column 'value'"):
        study = hx.read_study(write(tmp_path / "s", m))
    study.check(study_needs(toy(", range = [-inf, inf]")))  # any value of S allowed
    capped = toy(", range = [0, 9.9]")
    assert capped.ranges == {"X": (0.0, np.inf), "S": (0.0, 9.9)}
    m = long_rows()
    m.loc[1, "value"] = 9.95  # S of B0 at time 0: row 3
    with pytest.raises(
        hx.StudyError,
        match=r"^t/measurements\.csv row 3 column 'value': S = 9\.95 is outside its physical "
        r"range \[0, 9\.9\]",
    ):
        hx.study_from_frames(m, name="t").check(study_needs(capped))
    # the range survives to_toml -> parse_model (a saved model keeps it)
    again = hx.parse_model(hx.to_toml(capped))
    assert again.ranges == capped.ranges


def test_range_error_of_a_wide_table_names_its_column(tmp_path):
    wide = long_rows().pivot(index=["batch", "time"], columns="variable", values="value")
    wide = wide.reset_index()[["batch", "time", "X", "S"]]
    wide.loc[3, "X"] = -0.01  # the 4th data row: file row 5
    folder = tmp_path / "w"
    folder.mkdir()
    wide.rename(columns={"X": "X [g/L]"}).to_csv(folder / "measurements.csv", index=False)
    pd.DataFrame({"batch": ["B0", "B1", "B2", "B3"], "process": "P", "split": "train"}).to_csv(
        folder / "batches.csv", index=False
    )
    study = hx.read_study(folder, units=toy())
    with pytest.raises(
        hx.StudyError, match=r"measurements\.csv row 5 column 'X \[g/L\]': X = -0\.01 "
    ):
        study.check(study_needs(toy()))


# --- far-out values and loss scales --------------------------------------------------------


def _absurd(value: float) -> pd.DataFrame:
    m = long_rows()
    m.loc[(m["batch"] == "B1") & (m["time"] == 4.0) & (m["variable"] == "S"), "value"] = value
    return m


def test_absurd_value_is_warned_about_by_row(tmp_path):
    with pytest.warns(UserWarning) as caught:
        hx.read_study(write(tmp_path / "s", _absurd(1e308)))
    (message,) = [str(w.message) for w in caught]
    assert message.startswith(f"{tmp_path / 's'}/measurements.csv: suspected outlier(s)")
    assert "row 17 column 'value' (batch 'B1', S = 1e+308 at time 4)" in message


def test_clean_data_raise_no_outlier_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hx.study_from_frames(long_rows())
        hx.read_study(DATA / "demo_study")  # 1200 noisy values, none far out


def test_clean_data_keep_the_plain_range_as_loss_scale():
    """The robust scale changes nothing for clean data: the demo study's scales are the
    plain ranges (max - min), so every existing fit keeps its loss weighting."""
    model = hx.load_model(DATA / "cho_fed_batch.toml")
    data = batch_data(model, hx.read_study(DATA / "demo_study"))
    values = np.asarray(data.values)[np.asarray(data.mask)]
    np.testing.assert_array_equal(
        variable_scales(data, data.mask), np.nanmax(values, 0) - np.nanmin(values, 0)
    )


def test_one_absurd_value_cannot_switch_a_variable_off():
    """S lies in [8.9, 9.8]; one S = 1e4 (a unit slip) made its max-min scale 1e4, and
    its residuals 1e-4 of what they should be: the fit ignored S."""
    model = toy()
    clean = batch_data(model, hx.study_from_frames(long_rows()))
    with pytest.warns(UserWarning, match="suspected outlier"):
        data = batch_data(model, hx.study_from_frames(_absurd(1e4)))
    values = np.asarray(clean.values)[np.asarray(clean.mask)]
    plain = np.nanmax(values, 0) - np.nanmin(values, 0)
    scales = np.asarray(variable_scales(data, data.mask, model.variable_names))
    # the absurd value replaced a clean one: the scale is that of the other 39 values
    np.testing.assert_allclose(scales, plain, rtol=0.05)


def test_value_absurdly_far_after_scaling_is_refused():
    model = toy()
    with pytest.warns(UserWarning, match="suspected outlier"):
        data = batch_data(model, hx.study_from_frames(_absurd(1e308)))
    with pytest.raises(hx.StudyError) as info:
        variable_scales(data, data.mask, model.variable_names)
    scale = np.ptp(
        long_rows().query("variable == 'S' and not (batch == 'B1' and time == 4)")["value"]
    )
    assert str(info.value) == (
        f"variable 'S': measured value 1e+308 lies more than 1e+06 times the variable's loss "
        f"scale ({scale:g}, the range of its other values) from its median; its residual "
        "would swamp the loss: correct or remove it"
    )
    with pytest.warns(UserWarning), pytest.raises(hx.StudyError, match="value 1e\\+308 lies"):
        hx.fit(model, hx.study_from_frames(_absurd(1e308)), progress=False)  # before a step


# --- hints for other CSV dialects ----------------------------------------------------------


def test_semicolon_delimited_file_gets_a_hint(tmp_path):
    folder = write(tmp_path / "s", long_rows())
    text = (folder / "measurements.csv").read_text().replace(",", ";")
    (folder / "measurements.csv").write_text(text)
    with pytest.raises(hx.StudyError) as info:
        hx.read_study(folder)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        f"{folder}/measurements.csv: the header 'batch;time;variable;value' is one column "
        "with ';' in it: the file seems ';'-delimited; save it comma-delimited"
    )


def test_decimal_comma_gets_a_hint(tmp_path):
    folder = write(tmp_path / "s", long_rows())
    lines = (folder / "measurements.csv").read_text().splitlines()
    lines[4] = 'B0,2.0,X,"0,13"'  # row 5, quoted: one cell with a decimal comma
    (folder / "measurements.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(hx.StudyError) as info:
        hx.read_study(folder)
    assert str(info.value) == (
        f"{folder}/measurements.csv row 5 column 'value': non-numeric value '0,13' "
        "(a decimal comma? write '0.13')"
    )
    lines[4] = "B0,2.0,X,0,13"  # unquoted: one cell too many
    (folder / "measurements.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(hx.StudyError, match=r"Expected 4 fields in line 5, saw 5.*decimal commas"):
        hx.read_study(folder)


# --- model sizes --------------------------------------------------------------------------


def test_networks_over_the_weight_budget_together_are_refused_before_allocation():
    text = MODEL.format(s_range="") + "".join(
        f'\n[networks.g{k}]\ninputs = ["S"]\nhidden = [800, 800]\n' for k in (1, 2)
    )
    text = text.replace('"mu * monod(S, 1.0)"', '"mu * monod(S, 1.0) * g1 * g2"')
    with pytest.raises(hx.ModelFileError) as info:
        hx.parse_model(text, source="big.toml")
    line = text.splitlines().index("[networks.g1]") + 1
    assert str(info.value) == (
        f"big.toml, line {line}: [networks.g1] the networks need 1,286,402 weights together, "
        "over the limit of 1,000,000 (8 MB of float64)"
    )


def test_observation_range_is_any_value_unless_declared():
    m = pd.concat(
        [long_rows(), pd.DataFrame([("B0", 2.0, "OUR", -0.3)], columns=long_rows().columns)],
        ignore_index=True,
    )
    study = hx.study_from_frames(m, name="s")
    for declared, refused in (("", False), (", range = [0, inf]", True)):
        text = MODEL.format(s_range="") + (
            f'\n[observations]\nOUR = {{ unit = "mmol/(L h)", expression = "r * X"{declared} }}\n'
        )
        needs = study_needs(hx.parse_model(text))
        if not refused:
            study.check(needs)
            continue
        with pytest.raises(
            hx.StudyError,
            match=r"^s/measurements\.csv row 42 column 'value': OUR = -0\.3 is outside",
        ):
            study.check(needs)
