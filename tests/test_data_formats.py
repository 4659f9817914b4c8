"""A scientist's own data formats (issue 27): wide lab exports, Excel workbooks and
units converted to the model's, read to the same study as the long CSVs; unknown or
incompatible units named by file and column; a short summary repr."""

import pandas as pd
import pytest

import hybridxfer as hx
from hybridxfer._data.batch_data import study_needs
from hybridxfer._data.units import split_header

MODEL = """\
[model]
name = "units"
time_unit = "h"

[states]
X = { unit = "g/L" }
S = { unit = "g/L" }

[inputs]
F = { unit = "L/h" }

[constants]
Sf = { unit = "g/L" }

[parameters]
mu = { value = 0.2, unit = "1/h" }

[reactor]
mode = "fed-batch"
volume = { name = "V", initial = 1.0 }
feed_rate = "F"
feed = { S = "Sf" }

[rates]
r = "mu * monod(S, 1.0)"

[balances]
X = "r * X"
S = "-2 * r * X"
"""
KEY = ["batch", "time", "variable"]


@pytest.fixture(scope="module")
def model():
    return hx.parse_model(MODEL, source="units.toml")


def reference() -> hx.Study:
    """The long study, in the model's units (g/L, L/h, h)."""
    m = [
        (b, t, v, (0.1 + 0.05 * i) * (1 + t) if v == "X" else 9.0 - t - i)
        for i, b in enumerate(("B1", "B2"))
        for t in (0.0, 1.5, 3.0)
        for v in ("X", "S")
    ]
    u = [(b, t, "F", 0.002 * (1 + t)) for b in ("B1", "B2") for t in (0.0, 2.0)]
    batches = pd.DataFrame(
        {"batch": ["B1", "B2"], "process": "P", "split": ["train", "test"], "Sf": [400.0, 450.0]}
    )
    return hx.study_from_frames(
        pd.DataFrame(m, columns=["batch", "time", "variable", "value"]),
        pd.DataFrame(u, columns=["batch", "time", "variable", "value"]),
        batches,
    )


def lab_export(study: hx.Study) -> dict[str, pd.DataFrame]:
    """The same data as a lab exports them: wide, time in min, S in mg/L, F in mL/h."""
    wide = {}
    for table, factors in (("measurements", {"X": 1.0, "S": 1000.0}), ("inputs", {"F": 1000.0})):
        long = getattr(study, table)
        w = long.pivot(index=["batch", "time"], columns="variable", values="value").reset_index()
        w.columns.name = None
        w["time"] *= 60
        for v, f in factors.items():
            w[v] *= f
        units = {"time": "min", "X": "mg/mL", "S": "mg/L", "F": "mL/h"}
        wide[table] = w.rename(columns={c: f"{c} [{units[c]}]" for c in w.columns if c in units})
    wide["batches"] = study.batches.rename(columns={"Sf": "Sf [g/L]"})
    return wide


def assert_same(a: hx.Study, b: hx.Study):
    for table in ("measurements", "inputs"):
        x, y = (getattr(s, table).sort_values(KEY).reset_index(drop=True) for s in (a, b))
        pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(
        a.batches.reset_index(drop=True), b.batches.reset_index(drop=True)
    )


def test_wide_csv_with_units_reads_to_the_long_study(tmp_path, model):
    folder = tmp_path / "export"
    folder.mkdir()
    for table, frame in lab_export(reference()).items():
        frame.to_csv(folder / f"{table}.csv", index=False)
    study = hx.read_study(folder, units=model)
    assert_same(study, reference())
    assert study.units == {"time": "h", "X": "g/L", "S": "g/L", "F": "L/h", "Sf": "g/L"}
    study.check(study_needs(model))


def test_xlsx_workbook_reads_to_the_long_study(tmp_path, model):
    path = tmp_path / "export.xlsx"
    with pd.ExcelWriter(path) as book:
        for table, frame in lab_export(reference()).items():
            frame.to_excel(book, sheet_name=table, index=False)
    assert_same(hx.read_study(path, units=model), reference())


def test_units_in_a_second_header_row_and_in_a_unit_column(tmp_path, model):
    export = lab_export(reference())
    folder = tmp_path / "rows"
    folder.mkdir()
    m = export["measurements"]
    names, units = zip(*(split_header(c) for c in m.columns))
    bare = m.set_axis(names, axis=1).astype(object)
    units_row = pd.DataFrame([[f"[{u}]" if u else "" for u in units]], columns=names)
    pd.concat([units_row, bare]).to_csv(folder / "measurements.csv", index=False)
    long_inputs = reference().inputs.assign(value=lambda f: f["value"] * 1000, unit="mL/h")
    long_inputs.to_csv(folder / "inputs.csv", index=False)
    export["batches"].to_csv(folder / "batches.csv", index=False)
    assert_same(hx.read_study(folder, units=model), reference())


def test_declared_units_unconverted_are_refused_by_the_model_with_a_hint(tmp_path, model):
    folder = tmp_path / "export"
    folder.mkdir()
    for table, frame in lab_export(reference()).items():
        frame.to_csv(folder / f"{table}.csv", index=False)
    study = hx.read_study(folder)  # kept as declared
    assert study.units["F"] == "mL/h"
    with pytest.raises(hx.StudyError) as info:
        hx.simulate(model, study)
    assert str(info.value) == (
        f"{folder}: time is given in 'min', the model's unit is 'h'; read the study with "
        "units=model (hybridxfer.read_study(path, units=model)) to convert it"
    )


@pytest.mark.parametrize(
    "header,message",
    [
        ("S [blorbs/L]", "S: unit 'blorbs/L' is not a known unit"),
        ("S [mL/h]", "S: unit 'mL/h' cannot be converted to 'g/L' (a quantity of [length] ** 3 /"),
        ("S [kg**9**9**9]", "S: unit 'kg**9**9**9' is not a unit pint can read safely"),
    ],
)
def test_unknown_or_incompatible_unit_names_file_and_column(tmp_path, model, header, message):
    folder = tmp_path / "export"
    folder.mkdir()
    for table, frame in lab_export(reference()).items():
        frame.rename(columns={"S [mg/L]": header}).to_csv(folder / f"{table}.csv", index=False)
    with pytest.raises(hx.StudyError) as info:
        hx.read_study(folder, units=model)
    assert str(info.value).startswith(f"{folder}/measurements.csv column {header!r}: {message}")


def test_unit_column_error_names_the_row(tmp_path, model):
    m = reference().measurements.assign(unit="g/L")
    m.loc[m.index[3], "unit"] = "parsec"  # S of B1 at 1.5: row 5
    with pytest.raises(
        hx.StudyError,
        match=r"^measurements row 5 column 'unit': S: unit 'parsec' cannot be converted",
    ):
        hx.study_from_frames(m, reference().inputs, reference().batches, units=model)


def test_wide_cell_error_names_its_column(tmp_path):
    w = lab_export(reference())
    w["measurements"] = w["measurements"].astype(object)
    w["measurements"].loc[2, "S [mg/L]"] = "n.d."
    with pytest.raises(
        hx.StudyError, match=r"^measurements row 4 column 'S \[mg/L\]': non-numeric value 'n.d.'$"
    ):
        hx.study_from_frames(w["measurements"], w["inputs"], w["batches"])


def test_written_study_keeps_its_units(tmp_path):
    export = lab_export(reference())
    study = hx.study_from_frames(export["measurements"], export["inputs"], export["batches"])
    again = hx.read_study(hx.write_study(study, tmp_path / "w"))
    assert again.units == study.units
    assert_same(again, study)


def test_repr_is_a_short_summary(model):
    text = repr(reference())
    assert text == (
        "Study 'DataFrame': 2 batches in 1 process(es) (P: 1 train, 1 test)\n"
        "  measurements: 12 values of X, S\n"
        "  inputs: F\n"
        "  constants: Sf\n"
        "  time: 0 to 3"
    )
    assert str(reference()) == text
    export = lab_export(reference())
    declared = hx.study_from_frames(export["measurements"], export["inputs"], export["batches"])
    assert repr(declared).splitlines()[1:] == [
        "  measurements: 12 values of S [mg/L], X [mg/mL]",
        "  inputs: F [mL/h]",
        "  constants: Sf [g/L]",
        "  time: 0 to 180 min",
    ]


def test_workbook_errors_are_one_line(tmp_path):
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as book:
        reference().measurements.to_excel(book, sheet_name="measurements", index=False)
        reference().batches.to_excel(book, sheet_name="Batch list", index=False)
    with pytest.raises(hx.StudyError) as info:
        hx.read_study(path)
    assert str(info.value) == (
        f"{path}: missing sheet 'batches' (a study workbook needs sheets 'measurements' and "
        "'batches', 'inputs' is optional; found: 'measurements', 'Batch list')"
    )
    (tmp_path / "damaged.xlsx").write_text("not a workbook")
    with pytest.raises(hx.StudyError, match=r"damaged\.xlsx: cannot be read as an Excel workbook"):
        hx.read_study(tmp_path / "damaged.xlsx")
    with pytest.raises(hx.StudyError, match=r"^study workbook '.*none\.xlsx' does not exist"):
        hx.read_study(tmp_path / "none.xlsx")


def test_workbook_cell_errors_name_the_sheet_row_and_column(tmp_path):
    export = lab_export(reference())
    export["measurements"] = export["measurements"].astype(object)
    export["measurements"].loc[4, "X [mg/mL]"] = "-"
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as book:
        for table, frame in export.items():
            frame.to_excel(book, sheet_name=table, index=False)
    with pytest.raises(hx.StudyError) as info:
        hx.read_study(path)
    assert str(info.value) == (
        f"{path} sheet 'measurements' row 6 column 'X [mg/mL]': non-numeric value '-'"
    )
