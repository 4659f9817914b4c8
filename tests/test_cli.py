"""The command line: outputs written, one clear line and exit code 2 on bad input."""

import pandas as pd
import pytest

from hybridxfer.cli import main
from hybridxfer.demo import demo_model_path, demo_study
from hybridxfer.study import write_study


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    return write_study(demo_study().select(process="B", split="test"), folder)


def test_simulate_writes_table_and_plots(small_study, tmp_path, capsys):
    assert (
        main(
            [
                "simulate",
                str(demo_model_path()),
                str(small_study),
                "--out",
                str(tmp_path),
                "--points",
                "11",
            ]
        )
        == 0
    )
    sim = pd.read_csv(tmp_path / "simulation.csv")
    assert list(sim.columns) == ["batch", "time", "variable", "value"]
    assert set(sim["variable"]) == {"Xv", "Glc", "Lac", "P", "V"}
    assert sim["batch"].nunique() == 4
    assert {p.name for p in tmp_path.glob("*.png")} == {
        "Xv.png",
        "Glc.png",
        "Lac.png",
        "P.png",
        "V.png",
    }
    assert "wrote" in capsys.readouterr().out


def test_simulate_bad_study_is_one_line_and_exit_2(small_study, tmp_path, capsys):
    meas = pd.read_csv(small_study / "measurements.csv", dtype=str)
    meas.loc[3, "value"] = "n/a"
    meas.to_csv(small_study / "measurements.csv", index=False)
    code = main(["simulate", str(demo_model_path()), str(small_study), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "measurements.csv row 5 column 'value'" in err and "n/a" in err


def test_simulate_bad_model_file(tmp_path, capsys):
    bad = tmp_path / "m.toml"
    bad.write_text(demo_model_path().read_text().replace("monod(Glc, K_glc)", "monod(Glc, K_gl)"))
    assert main(["simulate", str(bad), str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "m.toml, line" in capsys.readouterr().err


def test_demo_runs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--steps", "3"]) == 0
    for folder in ("source", "target"):
        assert (tmp_path / folder / "model.toml").exists()
        assert (tmp_path / f"{folder}-report" / "report.md").exists()
    out = capsys.readouterr().out
    assert "test NRMSE" in out and "strategy:" in out and str(tmp_path) in out
