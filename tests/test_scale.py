"""Scale-out (hybridxfer._scale): jobs run one after another, on a process pool and as
Ray tasks give the same table; results are kept as they finish, so a stopped run (a
sweep through the command line on Ray included) resumes without redoing them; Ray runs
a job again whose worker was killed. The Ray tests run on a local instance of 2 CPUs
started and stopped here, skipped if Ray is not installed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hybridxfer as hx
from hybridxfer._scale import job_key
from hybridxfer.cli import main
from tests.helpers import monod_model

ROOT = Path(__file__).parent.parent
STEPS = 10


def _truth(mu_max):
    return hx.HybridModel.build(
        name="truth",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        parameters=[hx.Parameter("mu_max", mu_max, "1/h"), hx.Parameter("K", 0.5, "g/L")],
        rates={"mu": "mu_max * monod(S, K) / (1 + X / 4)"},
        balances={"X": "mu * X", "S": "-2 * mu * X"},
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A model file (Monod with a 4-unit network, mu_max process-specific) and a study
    folder: A (3 train, 1 valid, 2 test) and B (2 train, 2 test), 2% noise."""
    folder = tmp_path_factory.mktemp("scale")
    rng = np.random.default_rng(0)
    splits = {"A": ["train"] * 3 + ["valid"] + ["test"] * 2, "B": ["train"] * 2 + ["test"] * 2}
    frames, rows = [], []
    for process, names in splits.items():
        t0 = [
            (f"{process}{i}", 0.0, v, x)
            for i in range(len(names))
            for v, x in (("X", rng.uniform(0.1, 0.3)), ("S", rng.uniform(8, 12)))
        ]
        seed = hx.study_from_frames(
            pd.DataFrame(t0, columns=["batch", "time", "variable", "value"])
        )
        times = {b: np.arange(0, 25, 3.0) for b in seed.batch_names}
        sim = hx.simulate(_truth({"A": 0.3, "B": 0.2}[process]), seed, times=times)
        noisy = np.maximum(sim["value"] * (1 + 0.02 * rng.standard_normal(len(sim))), 0.0)
        frames.append(sim.assign(value=np.where(sim["time"] > 0, noisy, sim["value"])))
        rows += [dict(batch=f"{process}{i}", process=process, split=s) for i, s in enumerate(names)]
    study = hx.study_from_frames(pd.concat(frames), None, pd.DataFrame(rows))
    hx.write_study(study, folder / "study")
    model = monod_model(
        [
            hx.Parameter("mu_max", 0.25, "1/h", process_specific=True),
            hx.Parameter("K", 0.5, "g/L"),
            hx.Parameter("Y", 0.5, "g/g"),
        ],
        name="toy",
        network_input="X",
    )
    (folder / "model.toml").write_text(hx.to_toml(model))
    return folder


def _fit_jobs(files):
    """Two fits of A (the first as the sweep's source fit: one compile); the second
    saved in FILES/fit-a1."""
    model, study = str(files / "model.toml"), str(files / "study")
    return [
        hx.FitJob(model, study, "A", steps=STEPS, seed=0),
        hx.FitJob(model, study, "A", steps=STEPS, seed=1, save=str(files / "fit-a1")),
    ]


@pytest.fixture(scope="module")
def serial(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return out, hx.run_many(_fit_jobs(files), out=out)


def test_a_fit_job_row_is_the_fit_it_describes(files, serial):
    """A row against hx.fit run here: the best validation loss and the NRMSE of the
    prediction of A's test batches."""
    _, table = serial
    study = hx.read_study(files / "study")
    result = hx.fit(
        hx.load_model(files / "model.toml"),
        study,
        process="A",
        config=hx.FitConfig(steps=STEPS, seed=1),
        progress=False,
    )
    test = study.select(process="A", split="test")
    errors = hx.nrmse(hx.predict(result, test), test.measurements)
    row = table.set_index("seed").loc[1]
    assert row["valid"] == result.scores[0]
    assert row["nrmse_X"] == errors["X"] and row["nrmse_S"] == errors["S"]
    assert table["valid"].nunique() == 2  # the seeds' fits differ
    assert list(table.columns) == [
        "job",
        "process",
        "seed",
        "steps",
        "members",
        "valid",
        "nrmse_X",
        "nrmse_S",
    ]


def test_a_predict_job_writes_the_prediction_of_the_saved_fit(files, serial, tmp_path):
    study = hx.read_study(files / "study")
    job = hx.PredictJob(str(files / "fit-a1"), str(files / "study"), str(tmp_path / "p.csv"))
    table = hx.run_many([job])
    expected = hx.predict(hx.load_fit(files / "fit-a1"), study)
    written = pd.read_csv(tmp_path / "p.csv")
    pd.testing.assert_frame_equal(written, expected, check_dtype=False, rtol=1e-12)
    assert table[["batches", "rows"]].values.tolist() == [[10, len(expected)]]


def test_a_second_run_reads_every_result_back_and_redoes_nothing(files, serial):
    out, table = serial
    records = sorted((out / "jobs").glob("*.json"))
    assert [p.stem for p in records] == sorted(table["job"])
    stamps = [p.stat().st_mtime_ns for p in records]
    again = hx.run_many(_fit_jobs(files), out=out)
    assert again.attrs == dict(computed=0, reused=2)
    pd.testing.assert_frame_equal(again, table)
    assert [p.stat().st_mtime_ns for p in records] == stamps


@pytest.mark.slow
def test_process_pool_gives_the_serial_table_of_fits(files, serial, tmp_path):
    table = hx.run_many(_fit_jobs(files), backend="processes", workers=2, out=tmp_path)
    pd.testing.assert_frame_equal(table, serial[1])
    assert table.attrs == dict(computed=2, reused=0)


def fail_if_odd(x: int) -> dict:
    """A job that fails (a benchmark cell that raises) for odd `x`."""
    if x % 2:
        raise ValueError(f"{x} is odd")
    return dict(x=x, half=x / 2, pid=os.getpid())


def test_process_pool_gives_the_serial_table(tmp_path):
    """Jobs in 2 fresh processes (the fast version of the slow test with fits)."""
    jobs = [hx.CallJob("tests.test_scale:fail_if_odd", dict(x=x)) for x in (0, 2, 4, 6)]
    serial = hx.run_many(jobs)
    pool = hx.run_many(jobs, backend="processes", workers=2, out=tmp_path)
    pd.testing.assert_frame_equal(pool.drop(columns="pid"), serial.drop(columns="pid"))
    assert os.getpid() not in set(pool["pid"]) and pool["pid"].nunique() <= 2
    assert pool.attrs == dict(computed=4, reused=0)


def test_a_failed_job_is_named_and_the_finished_ones_are_kept(tmp_path):
    jobs = [hx.CallJob("tests.test_scale:fail_if_odd", dict(x=x)) for x in (2, 3, 4)]
    with pytest.raises(hx.JobError) as e:
        hx.run_many(jobs, out=tmp_path)
    assert str(e.value) == (
        f'job {job_key(jobs[1])} {{"kind": "CallJob", "function": "tests.test_scale:fail_if_odd", '
        '"kwargs": [["x", 3]]} failed: ValueError: 3 is odd'
    )
    assert [p.stem for p in (tmp_path / "jobs").glob("*.json")] == [job_key(jobs[0])]
    with pytest.raises(hx.JobError, match="backend 'threads': expected one of serial, "):
        hx.run_many(jobs, backend="threads")


# --- Ray -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "hybridxfer[ray]")')
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def die_once(marker: str) -> dict:
    """A job whose first worker dies (SIGKILL, as a lost node or an OOM kill) before it
    returns; the marker file records that worker's process id."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return dict(killed=int(path.read_text()), pid=os.getpid())


def test_ray_gives_the_serial_table(ray_cluster, files, serial, tmp_path):
    table = hx.run_many(_fit_jobs(files), backend="ray", out=tmp_path)
    pd.testing.assert_frame_equal(table, serial[1])


def test_ray_runs_a_job_again_whose_worker_was_killed(ray_cluster, tmp_path):
    jobs = [hx.CallJob("tests.test_scale:die_once", dict(marker=str(tmp_path / "marker")))]
    table = hx.run_many(jobs, backend="ray", out=tmp_path / "out", max_retries=1)
    (row,) = table.to_dict("records")
    assert row["killed"] != row["pid"]  # the second worker's answer
    jobs = [hx.CallJob("tests.test_scale:die_once", dict(marker=str(tmp_path / "other")))]
    with pytest.raises(hx.JobError, match=r"failed: WorkerCrashedError: "):
        hx.run_many(jobs, backend="ray", max_retries=0)


SWEEP = """
model = "{files}/model.toml"
study = "{files}/study"
source = "A"
source_steps = {steps}
processes = ["B"]
strategies = ["none", "scratch"]
seeds = [0, 1]
steps = {steps}
"""


def test_a_sweep_on_ray_stopped_and_restarted_redoes_no_finished_job(ray_cluster, files, tmp_path):
    """``hybridxfer sweep --ray ADDRESS`` (the test's cluster) is interrupted (SIGINT,
    as Ctrl-C) once the source fit and a transfer have finished; run again, it runs
    only the jobs without a result and leaves the finished ones' files as they were."""
    sweep, out = tmp_path / "sweep.toml", tmp_path / "out"
    sweep.write_text(SWEEP.format(files=files, steps=STEPS))
    cmd = [sys.executable, "-m", "hybridxfer.cli", "sweep", str(sweep), "--out", str(out)]
    cmd += ["--ray", ray_cluster]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600  # (a shared, loaded machine)
    while len(list((out / "jobs").glob("transferjob-*.json"))) < 1:
        assert first.poll() is None, first.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "no transfer finished in 600 s"
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)
    err = first.communicate(timeout=60)[1].decode()
    assert first.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"hybridxfer: interrupted; the finished jobs are kept in {out / 'jobs'}: "
        "the same command runs the rest"
    )
    kept = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "jobs").glob("*.json")}
    assert 2 <= len(kept) < 5 and not (out / "results.csv").exists()

    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"{5 - len(kept)} jobs run, {len(kept)} done before" in second.stdout
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in kept} == kept
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 5 and table["job"].is_unique
    transfers = table.dropna(subset=["strategy"])
    assert sorted(zip(transfers["strategy"], transfers["seed"])) == [
        ("none", 0),
        ("none", 1),
        ("scratch", 0),
        ("scratch", 1),
    ]
    assert (transfers["chosen"] == transfers["strategy"]).all()
    assert transfers["nrmse_X"].between(0, 1).all()  # scored on B's test batches
    none = transfers[transfers["strategy"] == "none"]
    assert none["nrmse_X"].nunique() == 1  # the source itself, whatever the seed


@pytest.mark.parametrize(
    "text, message",
    [
        ('model = "m.toml"\n', "missing key 'study' (a path (string))"),
        (
            SWEEP.replace('["B"]', '"B"'),
            "processes = 'B': expected a list of process names",
        ),
        (SWEEP + "colour = 1\n", "unknown key 'colour'; expected model, study, source"),
        (SWEEP.replace('["B"]', '["B", "Q"]'), "processes: process 'Q' is not in "),
        (SWEEP.replace('"scratch"', '"sratch"'), "strategies: 'sratch' unknown; expected one"),
        (SWEEP.replace("seeds = [0, 1]", "seeds = [0, 1"), "Unclosed array (at line 9, column 1)"),
    ],
)
def test_a_bad_sweep_file_is_one_line_naming_the_file_and_key(
    files, tmp_path, capsys, text, message
):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(text.format(files=files, steps=STEPS))
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hybridxfer: error: {sweep}: ") and message in err
    assert err.count("\n") == 1


def test_keep_compiled_programs_writes_a_second_process_reads(tmp_path):
    """In a fresh process, keep_compiled_programs(folder) makes JAX write compiled
    programs there (a jitted solve; the cache's size and time thresholds off); a
    second fresh process given no folder keeps the one set by JAX_COMPILATION_CACHE_DIR
    and compiles nothing new (the folder's files unchanged)."""
    code = (
        "import sys, jax, numpy as np, hybridxfer as hx;"
        "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0);"
        "jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1);"
        "print(hx.keep_compiled_programs(sys.argv[1] if len(sys.argv) > 1 else None));"
        "import diffrax, jax.numpy as jnp;"
        "f = jax.jit(lambda y: diffrax.diffeqsolve(diffrax.ODETerm(lambda t, y, a: -y),"
        " diffrax.Tsit5(), 0.0, 1.0, 0.1, y).ys);"
        "print(float(f(jnp.ones(3))[0, 0]))"
    )
    folder = tmp_path / "cache"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    first = subprocess.run(
        [sys.executable, "-c", code, str(folder)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == str(folder)
    written = sorted(p.name for p in folder.iterdir())
    assert written, "nothing was cached"
    env["JAX_COMPILATION_CACHE_DIR"] = str(folder)
    second = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == first.stdout.splitlines()
    assert sorted(p.name for p in folder.iterdir()) == written
