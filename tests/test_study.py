"""Tests for hybridxfer.study: reading, writing, selecting and validating study folders."""

import dataclasses
import io
import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from hybridxfer._data.study import (
    Study,
    StudyError,
    StudyNeeds,
    read_study,
    study_from_frames,
    write_study,
)

MEASUREMENTS = """\
batch,time,variable,value,sd
B1,0,Xv,0.3,0.03
B1,0,Glc,30,1
B1,24,Xv,1.2,0.1
B1,24,Glc,22.5,1
B2,0,Xv,0.4,0.03
B2,0,Glc,31,1
B2,48,Xv,2.5,0.2
B2,48,Glc,10,1
"""
INPUTS = """\
batch,time,variable,value
B1,0,F,0
B1,12,F,0.01
B2,0,F,0
B2,24,bolus,0.05
"""
BATCHES = """\
batch,process,split,Sf
B1,CHO-A,train,400
B2,CHO-B,valid,450
"""
NEEDS = StudyNeeds(
    variables=("Xv", "Glc"),
    initial_from_data=("Xv", "Glc"),
    inputs=("F",),
    events=("bolus",),
    constants=("Sf",),
)


def write_files(folder, measurements=MEASUREMENTS, inputs=INPUTS, batches=BATCHES):
    """Write the three CSVs (a `None` file is left out) and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("measurements", measurements), ("inputs", inputs), ("batches", batches)):
        if text is not None:
            (folder / f"{name}.csv").write_text(text)
    return folder


def replace_line(text, row, line):
    """`text` with spreadsheet row `row` (header = 1) replaced by `line`."""
    lines = text.splitlines()
    lines[row - 1] = line
    return "\n".join(lines) + "\n"


@pytest.fixture
def folder(tmp_path):
    return write_files(tmp_path / "study")


@pytest.fixture
def study(folder):
    return read_study(folder)


def assert_study_error(folder, match, **files):
    write_files(folder, **files)
    with pytest.raises(StudyError, match=match):
        read_study(folder)


# --- valid studies ---------------------------------------------------------------------------


def test_read_valid_study(study, folder):
    assert study.name == str(folder)
    assert study.batch_names == ("B1", "B2")
    assert study.processes == ("CHO-A", "CHO-B")
    assert study.constant_names == ("Sf",)
    assert list(study.measurements.columns) == ["batch", "time", "variable", "value", "sd"]
    assert list(study.inputs.columns) == ["batch", "time", "variable", "value"]
    for table in (study.measurements, study.inputs):
        assert table["time"].dtype == np.float64
        assert table["value"].dtype == np.float64
        assert isinstance(table["batch"].iloc[0], str)
    assert study.batches["Sf"].dtype == np.float64
    assert study.measurements["value"].iloc[3] == 22.5  # file order kept
    study.check(NEEDS)  # no error, no warning


def test_round_trip(study, tmp_path):
    again = read_study(write_study(study, tmp_path / "copy"))
    for table in ("measurements", "inputs", "batches"):
        pd.testing.assert_frame_equal(getattr(again, table), getattr(study, table))


def test_round_trip_of_frames_with_missing_constant_and_no_inputs(tmp_path):
    study = study_from_frames(
        pd.DataFrame({"batch": ["a"], "time": [0.1], "variable": ["X"], "value": [1 / 3]}),
        batches=pd.DataFrame({"batch": ["a"], "process": ["p"], "split": ["test"], "c": [np.nan]}),
    )
    again = read_study(write_study(study, tmp_path / "copy"))
    assert again.inputs.empty
    for table in ("measurements", "inputs", "batches"):
        pd.testing.assert_frame_equal(getattr(again, table), getattr(study, table))


def test_inputs_file_is_optional(tmp_path):
    study = read_study(write_files(tmp_path / "s", inputs=None))
    assert study.inputs.empty
    assert list(study.inputs.columns) == ["batch", "time", "variable", "value"]
    study.check(StudyNeeds(variables=("Xv", "Glc")))


def test_blank_lines_are_skipped_but_counted(tmp_path):
    text = MEASUREMENTS.replace("B1,24,Xv", "\nB1,24,Xv").replace("B2,48,Glc,10", "B2,48,Glc,x")
    assert_study_error(
        tmp_path / "s", r"measurements\.csv row 10 column 'value'", measurements=text
    )


def test_select(study):
    a = study.select(process="CHO-A")
    assert a.batch_names == ("B1",)
    assert set(a.measurements["batch"]) == {"B1"}
    assert set(a.inputs["batch"]) == {"B1"}
    assert study.select(split=["train", "valid"]).batch_names == ("B1", "B2")
    assert study.select(process=("CHO-A", "CHO-B"), split="valid").batch_names == ("B2",)
    assert study.select().batch_names == study.batch_names


def test_select_batches_by_name(study):
    picked = study.select(batches=["B2", "B1"])  # the study's order, not the request's
    assert picked.batch_names == ("B1", "B2")
    assert set(picked.measurements["batch"]) == {"B1", "B2"}
    assert study.select(batches="B2").batch_names == ("B2",)
    assert study.select(process="CHO-A", batches=["B1", "B2"]).batch_names == ("B1",)
    with pytest.raises(StudyError, match="unknown batch\\(es\\) 'B9', 'B7'"):
        study.select(batches=["B1", "B9", "B7"])
    with pytest.raises(StudyError, match="selection is empty"):
        study.select(process="CHO-A", batches="B2")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"process": "CHO-Z"}, "unknown process 'CHO-Z'"),
        ({"split": "training"}, "unknown split 'training'"),
        ({"process": "CHO-A", "split": "valid"}, "selection is empty"),
        ({"split": "test"}, "selection is empty"),
    ],
)
def test_select_errors(study, kwargs, match):
    with pytest.raises(StudyError, match=match):
        study.select(**kwargs)


def test_selected_study_keeps_file_rows_in_messages(tmp_path):
    inputs = INPUTS.replace("B2,0,F,0", "B2,6,F,0")  # row 4
    study = read_study(write_files(tmp_path / "s", inputs=inputs)).select(process="CHO-B")
    with pytest.raises(StudyError, match=r"first row is row 4 at time 6\)"):
        study.check(NEEDS)


def test_end_time(study):
    assert study.end_time("B1") == 24.0
    assert study.end_time("B2") == 48.0
    with pytest.raises(StudyError, match="unknown batch 'B9'"):
        study.end_time("B9")


def test_end_time_counts_inputs(tmp_path):
    study = read_study(write_files(tmp_path / "s", inputs=INPUTS + "B1,30,F,0\n"))
    assert study.end_time("B1") == 30.0


def test_frames_without_batches():
    study = study_from_frames(
        pd.DataFrame(
            {"batch": [2, 1, 2], "time": [0, 0, 5], "variable": "X", "value": [1.0, 2.0, 3.0]}
        )
    )
    assert study.name == "DataFrame"
    assert study.batch_names == ("2", "1")
    assert study.processes == ("default",)
    assert tuple(study.batches["split"]) == ("train", "train")
    assert study.measurements["time"].dtype == np.float64
    assert study.inputs.empty


# --- structural errors (read_study) ----------------------------------------------------------


@pytest.mark.parametrize("missing", ["measurements", "batches"])
def test_missing_file(tmp_path, missing):
    folder = write_files(tmp_path / "s", **{missing: None})
    with pytest.raises(StudyError, match=rf"s: missing file '{missing}\.csv'"):
        read_study(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(StudyError, match="does not exist"):
        read_study(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "table, column",
    [
        ("measurements", "batch"),
        ("measurements", "time"),
        ("measurements", "variable"),
        ("measurements", "value"),
        ("inputs", "value"),
        ("batches", "process"),
        ("batches", "split"),
    ],
)
def test_missing_column(tmp_path, table, column):
    text = {"measurements": MEASUREMENTS, "inputs": INPUTS, "batches": BATCHES}[table]
    header, rest = text.split("\n", 1)
    header = ",".join("other" if c == column else c for c in header.split(","))
    if table == "batches":
        header = header.replace("other", "Sg")  # extra columns of batches are constants
    assert_study_error(
        tmp_path / "s",
        rf"{table}\.csv: missing column '{column}'",
        **{table: header + "\n" + rest},
    )


def test_unexpected_column(tmp_path):
    text = MEASUREMENTS.replace("value,sd", "value,error")
    assert_study_error(
        tmp_path / "s", r"measurements\.csv: unexpected column 'error'", measurements=text
    )


@pytest.mark.parametrize("text", ["batch,time,variable,value,sd\n", ""])
def test_empty_measurements(tmp_path, text):
    assert_study_error(
        tmp_path / "s", r"measurements\.csv: (no data rows|empty file)", measurements=text
    )


@pytest.mark.parametrize(
    "table, row, line, column, message",
    [
        ("measurements", 7, "B2,0,Glc,abc,1", "value", "non-numeric value 'abc'"),
        ("measurements", 3, "B1,zero,Glc,30,1", "time", "non-numeric value 'zero'"),
        ("measurements", 3, "B1,0,Glc,30,one", "sd", "non-numeric value 'one'"),
        ("measurements", 7, "B2,0,Glc,,1", "value", "missing value"),
        ("measurements", 7, "B2,0,Glc,NaN,1", "value", "missing value"),
        ("measurements", 7, "B2,0,Glc,inf,1", "value", "non-finite value 'inf'"),
        ("measurements", 5, "B1,,Glc,30,1", "time", "missing value"),
        ("measurements", 5, "B1,-1,Glc,30,1", "time", "negative time -1"),
        ("measurements", 4, "B1,24,Xv,1.2,-0.1", "sd", "sd must be > 0, got -0.1"),
        ("measurements", 4, "B1,24,Xv,1.2,", "sd", "missing value"),
        ("measurements", 4, ",24,Xv,1.2,0.1", "batch", "missing value"),
        ("measurements", 4, "B1,24, ,1.2,0.1", "variable", "missing value"),
        (
            "measurements",
            9,
            "B3,48,Glc,10,1",
            "batch",
            r"unknown batch 'B3' \(not in batches.csv\)",
        ),
        ("inputs", 3, "B1,12,F,fast", "value", "non-numeric value 'fast'"),
        ("inputs", 3, "B1,-inf,F,0.01", "time", "non-finite value '-inf'"),
        ("inputs", 3, "B1,-12,F,0.01", "time", "negative time -12"),
        ("inputs", 5, "B7,24,bolus,0.05", "batch", "unknown batch 'B7'"),
        ("batches", 3, "B2,CHO-B,valid,lots", "Sf", "non-numeric value 'lots'"),
        ("batches", 3, "B2,CHO-B,valid,inf", "Sf", "non-finite value 'inf'"),
        ("batches", 3, "B2,CHO-B,training,450", "split", "unknown split 'training'"),
        ("batches", 3, "B2,,valid,450", "process", "missing value"),
    ],
)
def test_bad_cell(tmp_path, table, row, line, column, message):
    text = {"measurements": MEASUREMENTS, "inputs": INPUTS, "batches": BATCHES}[table]
    assert_study_error(
        tmp_path / "s",
        rf"{table}\.csv row {row} column '{column}': {message}",
        **{table: replace_line(text, row, line)},
    )


@pytest.mark.parametrize(
    "table, extra, match",
    [
        ("measurements", "B1,24.0,Glc,22,1", "measurements.csv rows 5 and 10"),
        ("inputs", "B1,12,F,0.02", "inputs.csv rows 3 and 6"),
        (
            "batches",
            "B1,CHO-B,test,1",
            "batches.csv rows 2 and 4 column 'batch': duplicate batch 'B1'",
        ),
    ],
)
def test_duplicate_rows(tmp_path, table, extra, match):
    text = {"measurements": MEASUREMENTS, "inputs": INPUTS, "batches": BATCHES}[table]
    assert_study_error(tmp_path / "s", re.escape(match), **{table: text + extra + "\n"})


def test_duplicate_measurement_message_names_key(tmp_path):
    text = MEASUREMENTS + "B1,24.0,Glc,22,1\n"
    assert_study_error(
        tmp_path / "s",
        r"columns 'batch', 'time', 'variable': duplicate rows for batch 'B1', variable 'Glc' "
        r"at time 24",
        measurements=text,
    )


def test_empty_constant_cell_is_allowed_until_needed(tmp_path):
    batches = replace_line(BATCHES, 3, "B2,CHO-B,valid,")
    study = read_study(write_files(tmp_path / "s", batches=batches))
    assert math.isnan(study.batches["Sf"].iloc[1])
    study.check(StudyNeeds(variables=("Xv", "Glc"), inputs=("F",), events=("bolus",)))
    with pytest.raises(
        StudyError,
        match=r"batches\.csv row 3 column 'Sf': missing value for batch 'B2' "
        r"\(a batch constant the model needs\)",
    ):
        study.check(NEEDS)
    study.select(process="CHO-A").check(NEEDS)  # fine once B2 is left out


# --- structural errors (DataFrames) ----------------------------------------------------------


def frames():
    return tuple(pd.read_csv(io.StringIO(text)) for text in (MEASUREMENTS, INPUTS, BATCHES))


def test_frames_valid():
    m, i, b = frames()
    study = study_from_frames(m, i, b)
    assert study.batch_names == ("B1", "B2")
    study.check(NEEDS)


def test_frame_non_numeric_value():
    m, i, b = frames()
    m["value"] = m["value"].astype(object)
    m.loc[5, "value"] = "abc"
    with pytest.raises(
        StudyError, match=r"^measurements row 7 column 'value': non-numeric value 'abc'"
    ):
        study_from_frames(m, i, b)


def test_frame_nan_and_inf():
    m, i, b = frames()
    m.loc[2, "time"] = np.nan
    with pytest.raises(StudyError, match=r"^measurements row 4 column 'time': missing value"):
        study_from_frames(m, i, b)
    m, i, b = frames()
    i.loc[1, "value"] = np.inf
    with pytest.raises(StudyError, match=r"^inputs row 3 column 'value': non-finite value 'inf'"):
        study_from_frames(m, i, b)


def test_frame_rows_are_positional():
    m, i, b = frames()
    m.index = m.index * 10 + 100
    b.loc[1, "batch"] = "B9"
    with pytest.raises(
        StudyError,
        match=r"^measurements row 6 column 'batch': unknown batch 'B2' \(not in batches\)",
    ):
        study_from_frames(m, i, b)


def test_frame_duplicate():
    m, i, b = frames()
    i = pd.concat([i, i.iloc[[0]]])
    with pytest.raises(
        StudyError, match=r"^inputs rows 2 and 6 columns 'batch', 'time', 'variable'"
    ):
        study_from_frames(m, i, b)


def test_frame_missing_column():
    m, i, b = frames()
    with pytest.raises(StudyError, match=r"^batches: missing column 'split'"):
        study_from_frames(m, i, b.drop(columns="split"))


# --- model-dependent errors (Study.check) ----------------------------------------------------


def test_check_input_without_rows(tmp_path):
    inputs = "batch,time,variable,value\nB1,0,F,0\n"
    study = read_study(write_files(tmp_path / "s", inputs=inputs))
    with pytest.raises(
        StudyError, match=r"inputs\.csv column 'variable': batch 'B2' has no rows for input 'F'"
    ):
        study.check(NEEDS)


def test_check_input_without_time_zero(tmp_path):
    inputs = INPUTS + "B3,12,F,1\nB3,5,F,0\n"
    batches = BATCHES + "B3,CHO-A,test,400\n"
    measurements = MEASUREMENTS + "B3,0,Xv,0.3,0.03\nB3,0,Glc,30,1\n"
    folder = write_files(tmp_path / "s", measurements, inputs, batches)
    with pytest.raises(
        StudyError,
        match=r"inputs\.csv: batch 'B3' input 'F' has no value at time 0 "
        r"\(first row is row 7 at time 5\)",
    ):
        read_study(folder).check(NEEDS)


def test_check_missing_constant_column(study):
    needs = StudyNeeds(variables=("Xv", "Glc"), inputs=("F",), events=("bolus",), constants=("Sg",))
    with pytest.raises(
        StudyError, match=r"batches\.csv: missing column 'Sg' \(a batch constant the model needs\)"
    ):
        study.check(needs)


def test_check_initial_from_data(tmp_path):
    measurements = replace_line(MEASUREMENTS, 7, "B2,1,Glc,31,1")
    study = read_study(write_files(tmp_path / "s", measurements=measurements))
    with pytest.raises(
        StudyError,
        match=r"measurements\.csv: batch 'B2' has no value of 'Glc' at time 0, and the model "
        r"declares no initial value for it",
    ):
        study.check(NEEDS)
    study.check(dataclasses.replace(NEEDS, initial_from_data=("Xv",)))


def test_check_on_frames_names_tables():
    m, i, b = frames()
    study = study_from_frames(m, i, b)
    needs = StudyNeeds(variables=("Xv", "Glc"), inputs=("F", "T"), events=("bolus",))
    with pytest.raises(
        StudyError, match=r"^inputs column 'variable': batch 'B1' has no rows for input 'T'"
    ):
        study.check(needs)


def test_check_warns_once_about_unknown_variables(tmp_path):
    measurements = MEASUREMENTS + "B1,24,pH,7.0,0.1\nB2,24,DO,40,1\n"
    inputs = INPUTS + "B1,0,stir,100\n"
    study = read_study(write_files(tmp_path / "s", measurements=measurements, inputs=inputs))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.check(NEEDS)
    assert len(caught) == 1
    assert issubclass(caught[0].category, UserWarning)
    with pytest.warns(
        UserWarning,
        match=r"they are ignored: 'DO' \(measurements\), 'pH' \(measurements\), 'stir' \(inputs\)",
    ):
        study.check(NEEDS)


def test_study_is_frozen(study):
    with pytest.raises(AttributeError):
        study.name = "other"
    assert isinstance(study.select(split="train"), Study)
