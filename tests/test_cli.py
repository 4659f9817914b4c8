"""The command line: outputs written, one clear line and exit code 2 on bad input."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hybridxfer import write_study
from hybridxfer.cli import main
from hybridxfer.demo import demo_model_path, demo_study


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


def test_a_second_call_loads_the_programs_the_first_compiled(tmp_path):
    """The command line keeps compiled programs (JAX's persistent compilation cache, in
    $XDG_CACHE_HOME/hybridxfer/jax by default); a call served from them gives the same
    simulation as the call that compiled them."""
    study = write_study(demo_study().select(process="B", split="test"), tmp_path / "study")
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env |= {
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }

    def simulate(out):
        cmd = [sys.executable, "-m", "hybridxfer.cli", "simulate", str(demo_model_path())]
        subprocess.run([*cmd, str(study), "--out", str(out)], env=env, check=True)
        return pd.read_csv(out / "simulation.csv")

    first = simulate(tmp_path / "first")
    kept = {p.name for p in (tmp_path / "cache" / "hybridxfer" / "jax").iterdir()}
    assert any(name.startswith("jit_solve_batches") for name in kept)
    pd.testing.assert_frame_equal(simulate(tmp_path / "second"), first, check_exact=True)


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


@pytest.mark.slow  # about 2 minutes; the workflow test below is its fast version
def test_demo_runs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--steps", "3"]) == 0
    for folder in ("source", "target"):
        assert (tmp_path / folder / "model.toml").exists()
        assert (tmp_path / f"{folder}-report" / "report.md").exists()
    out = capsys.readouterr().out
    assert "test NRMSE" in out and "strategy:" in out and str(tmp_path) in out
    record = (tmp_path / "target" / "transfer.txt").read_text()
    assert record in out and "## Transfer" in (tmp_path / "target-report" / "report.md").read_text()


TOY = """
[model]
name = "toy"
[states]
X = { unit = "g/L" }
S = { unit = "g/L" }
[parameters]
mu_max = { value = 0.25, unit = "1/h", process_specific = true }
K = { value = 0.5, unit = "g/L" }
Y = { value = 0.5, unit = "g/g" }
[networks.g]
inputs = ["X"]
hidden = [4]
[rates]
mu = "mu_max * monod(S, K) * g"
[balances]
X = "mu * X"
S = "-mu / Y * X"
"""


def test_fit_predict_report_transfer(tmp_path, capsys):
    """The scripted workflow of DESIGN.md §5 on a two-process study."""
    model = tmp_path / "toy.toml"
    model.write_text(TOY)
    rows, batches = [], []
    for i, (process, split) in enumerate(
        [("A", "train")] * 3 + [("A", "valid"), ("B", "train"), ("B", "test")]
    ):
        mu = 0.3 if process == "A" else 0.2
        x0, s0 = 0.1 + 0.02 * i, 10.0 - 0.5 * i
        for t in range(0, 25, 4):  # an exact logistic-like curve is enough data here
            x = min(x0 * np.exp(mu * t), x0 + 0.5 * s0)
            rows += [
                (f"b{i}", float(t), "X", x),
                (f"b{i}", float(t), "S", max(s0 - 2 * (x - x0), 0.0)),
            ]
        batches.append((f"b{i}", process, split))
    study = tmp_path / "study"
    study.mkdir()
    pd.DataFrame(rows, columns=["batch", "time", "variable", "value"]).to_csv(
        study / "measurements.csv", index=False
    )
    pd.DataFrame(batches, columns=["batch", "process", "split"]).to_csv(
        study / "batches.csv", index=False
    )
    source, target = tmp_path / "source", tmp_path / "target"
    steps = ["--steps", "15"]
    assert (
        main(["fit", str(model), str(study), "--process", "A", "--out", str(source), *steps]) == 0
    )
    assert "mu_max" in capsys.readouterr().out
    pred = tmp_path / "pred.csv"
    assert main(["predict", str(source), str(study), "--out", str(pred)]) == 0
    assert "lower/upper: 95% band of the true state, calibrated on" in capsys.readouterr().out
    table = pd.read_csv(pred)
    assert set(table["batch"]) == {f"b{i}" for i in range(6)}
    measured = pd.DataFrame(rows, columns=["batch", "time", "variable", "measured"])
    both = table.merge(measured, on=["batch", "time", "variable"], suffixes=("", "_data"))
    assert len(both) == len(rows) and (both["measured"] == both["measured_data"]).all()
    assert table.groupby("batch")["split"].first().to_dict()["b5"] == "test"
    only = ["--process", "B", "--split", "test"]
    assert main(["predict", str(source), str(study), "--out", str(pred), *only]) == 0
    assert set(pd.read_csv(pred)["batch"]) == {"b5"}
    assert main(["predict", str(source), str(study), "--out", str(pred), "--process", "C"]) == 2
    assert "'C'" in capsys.readouterr().err
    report = tmp_path / "report"
    assert main(["report", str(source), str(study), "--out", str(report), "--process", "A"]) == 0
    text = (report / "report.md").read_text()
    assert text.count("NRMSE") >= 1 and "b4" not in (report / "residuals.csv").read_text()
    profiled = tmp_path / "profiled"
    assert main(["report", str(source), str(study), "--out", str(profiled), "--profile", "Y"]) == 0
    assert "## Profile likelihood" in (profiled / "report.md").read_text()
    assert (profiled / "profile_Y.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pd.read_csv(profiled / "profile_Y.csv")["delta"].min() == 0.0
    capsys.readouterr()
    assert main(["report", str(source), str(study), "--out", str(profiled), "--profile", "Q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "hybridxfer: error: --profile Q: not a free parameter of the model (free: mu_max, K, Y)"
    ]
    args = [
        "transfer",
        str(source),
        str(study),
        "--process",
        "B",
        "--strategy",
        "refit-mechanistic",
    ]
    assert main([*args, "--out", str(target), *steps]) == 0
    assert "strategy: refit-mechanistic" in capsys.readouterr().out
    assert "strategy: refit-mechanistic" in (target / "transfer.txt").read_text()
    assert (target / "candidates.csv").exists() and (target / "weights.eqx").exists()
    assert (target / "transfer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a fit saved over the transfer: its record and plot go (they describe another model)
    assert (
        main(["fit", str(model), str(study), "--process", "B", "--out", str(target), *steps]) == 0
    )
    record = ("transfer.txt", "candidates.csv", "transfer.png")
    assert not any((target / f).exists() for f in record)


def test_solver_options_on_fit_and_transfer_change_only_what_is_given():
    """--solver/--rtol/--atol/--max-steps reach the fit's solver (saved with the model);
    options not given keep the base's (the fit's training solver, or the source's)."""
    import diffrax

    from hybridxfer._solve import TRAINING
    from hybridxfer.cli import _solver, parser

    args = parser().parse_args(
        ["fit", "m.toml", "study", "--process", "A", "--out", "o", "--solver", "kvaerno5"]
        + ["--rtol", "1e-7"]
    )
    solver = _solver(args, TRAINING)
    assert isinstance(solver.solver, diffrax.Kvaerno5)
    assert (solver.rtol, solver.atol, solver.max_steps) == (1e-7, TRAINING.atol, 1024)
    plain = parser().parse_args(["transfer", "src", "study", "--process", "B", "--out", "o"])
    assert _solver(plain, TRAINING) == TRAINING


def test_warnings_are_one_line_per_kind_with_a_count(capsys):
    """Warnings whose texts differ only in their numbers are one kind: the first is
    printed, the rest counted in one line at the end; another kind is printed too."""
    from hybridxfer.cli import _Warnings

    shown = _Warnings()
    for step in (3, 17, 250):
        shown.show(f"fit: step {step} rejected (loss {step * 1.5e-3:g})", UserWarning, "x", 1)
    shown.show("transfer to 'B': negative transfer likely", UserWarning, "x", 1)
    shown.summary()
    assert capsys.readouterr().err.splitlines() == [
        "hybridxfer: warning: fit: step 3 rejected (loss 0.0045)",
        "hybridxfer: warning: transfer to 'B': negative transfer likely",
        "hybridxfer: warning: 2 more like: fit: step # rejected (loss #)",
    ]
