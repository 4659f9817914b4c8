"""Issue 28, hostile and careless files: saved-model integrity (checksums over every
file, symbolic links, format versions), one writer per folder, meta.json limits, and
expression limits in model files. Each bad input must give one line naming the file
(and line or field), never a traceback, and write nothing."""

import hashlib
import json
import os
import shutil
import threading

import numpy as np
import pandas as pd
import pytest

import hybridxfer as hx
from hybridxfer._fit import FitConfig, FitError, fit
from hybridxfer._fit import checkpoint as checkpoints
from hybridxfer._io import integrity, saved_model
from hybridxfer._io.saved_model import SavedModelError, load_fit, save_fit
from hybridxfer._solve import Solver
from hybridxfer.demo import demo_model_path
from tests.helpers import monod_model

CONFIG = FitConfig(steps=3, members=2, warmup=1, solver=Solver(rtol=1e-5, atol=1e-8))


def _problem():
    model = monod_model(
        [
            hx.Parameter("mu_max", 0.3, "1/h", bounds=(0.01, 1.0)),
            hx.Parameter("K", 0.5, "g/L", fixed=True),
            hx.Parameter("Y", 0.5, "g/g"),
        ],
        network_input="S",
    )
    t = np.arange(0.0, 13.0, 3.0)
    rows = []
    for b, x0 in (("b1", 0.1), ("b2", 0.2)):
        X = x0 * np.exp(0.25 * t)
        rows += [(b, ti, "X", xi) for ti, xi in zip(t, X)]
        rows += [(b, ti, "S", max(10.0 - 2 * (xi - x0), 0.1)) for ti, xi in zip(t, X)]
    study = hx.study_from_frames(
        pd.DataFrame(rows, columns=["batch", "time", "variable", "value"]),
        batches=pd.DataFrame({"batch": ["b1", "b2"], "process": "p", "split": "train"}),
    )
    return model, study


@pytest.fixture(scope="module")
def problem():
    return _problem()


@pytest.fixture(scope="module")
def fitted(problem):
    model, study = problem
    return fit(model, study, config=CONFIG, progress=False)


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    return save_fit(fitted, tmp_path_factory.mktemp("saved") / "model")


@pytest.fixture
def copy(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "model", symlinks=True)


def _fails(folder, *words):
    with pytest.raises(SavedModelError) as e:
        load_fit(folder)
    message = str(e.value)
    assert "\n" not in message and "Traceback" not in message
    for w in words:
        assert w in message, message
    return message


def _meta(folder):
    return json.loads((folder / "meta.json").read_text())


def _reseal(folder, meta=None):
    """Rewrite meta.json with checksums recomputed: what a forger would do, so that the
    checks behind the checksums are reached."""
    meta = _meta(folder) if meta is None else meta
    meta["files"] = {
        n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in meta.get("files", {})
    }
    integrity.write_meta(folder / "meta.json", meta)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# --------------------------------------------------------------- 1. integrity
EDITS = {  # file -> an edit that changes predictions or what a loaded fit reports
    "model.toml": lambda t: t.replace('S = "-', 'S = "'),  # a balance's sign flipped
    "weights.eqx": lambda t: t[:-8] + bytes(8),
    "parameters.csv": lambda t: t.replace(b"mu_max,", b"mu_max,9"),
    "history.csv": lambda t: t + b"4,0,1.0,1.0\n",
    "initial.csv": lambda t: t.replace(b"b1,X,", b"b1,X,1"),
    "calibration.csv": lambda t: t.replace(b"b1,", b"b2,", 1),
    "normalisation.json": lambda t: t.replace(b'"mean": ', b'"mean": 1'),
}


@pytest.mark.parametrize("name", EDITS)
def test_an_edit_of_any_model_file_is_refused_naming_it(copy, name):
    path = copy / name
    if name == "model.toml":
        edited = EDITS[name](path.read_text())
        assert edited != path.read_text()
        path.write_text(edited)
    else:
        edited = EDITS[name](path.read_bytes())
        assert edited != path.read_bytes()
        path.write_bytes(edited)
    _fails(copy, str(path), "checksum differs from meta.json's")


def test_the_checksums_are_mandatory(copy):
    meta = _meta(copy)
    meta.pop("files")
    integrity.write_meta(copy / "meta.json", meta)
    _fails(copy, "meta.json", "no valid checksums")
    (copy / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "sha256"}))
    _fails(copy, "meta.json", "no checksum (sha256)")


def test_an_edit_of_meta_json_is_refused(copy):
    meta = _meta(copy)
    (copy / "meta.json").write_text(json.dumps({**meta, "scores": [0.0, 0.0]}, indent=1))
    _fails(copy, "meta.json", "differs from its content")
    (copy / "meta.json").write_text(json.dumps(meta, indent=4))  # reformatted: same content
    assert load_fit(copy).scores == tuple(meta["scores"])


def test_a_model_file_not_listed_is_refused(copy):
    meta = _meta(copy)
    del meta["files"]["calibration.csv"]  # a planted calibration would change bands
    integrity.write_meta(copy / "meta.json", meta)
    _fails(copy, "calibration.csv", "not listed in meta.json's checksums")


def test_a_listed_file_that_is_missing_is_refused(copy):
    (copy / "calibration.csv").unlink()
    _fails(copy, "calibration.csv", "missing; meta.json lists it")


@pytest.mark.parametrize("name", ["parameters.csv", "model.toml", "meta.json"])
def test_a_symbolic_link_in_a_model_folder_is_refused(copy, tmp_path, name):
    outside = tmp_path / f"outside-{name}"
    shutil.copyfile(copy / name, outside)  # the same bytes: its checksum would match
    (copy / name).unlink()
    (copy / name).symlink_to(outside)
    _fails(copy, str(copy / name), "is a symbolic link")


@pytest.mark.parametrize("planted", ["model.toml", "meta.json", "weights.eqx"])
def test_save_refuses_a_symbolic_link_at_a_file_and_never_writes_through_it(
    fitted, copy, tmp_path, planted
):
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    (copy / planted).unlink()
    (copy / planted).symlink_to(target)
    with pytest.raises(SavedModelError, match=f"{planted}: is a symbolic link"):
        save_fit(fitted, copy)
    assert target.read_text() == "precious\n"


def test_save_never_writes_through_a_planted_temporary_file(fitted, copy, tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    for name in saved_model.OWN:  # the temporary names an earlier version wrote to
        (copy / f"{name}.tmp").symlink_to(target)
    save_fit(fitted, copy)
    assert target.read_text() == "precious\n"
    assert load_fit(copy).scores == fitted.scores
    assert not [p for p in copy.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]


def test_a_planted_lock_file_link_is_refused_and_not_followed(fitted, copy, tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    (copy / checkpoints.LOCK).unlink()
    (copy / checkpoints.LOCK).symlink_to(target)
    with pytest.raises(SavedModelError, match=r"\.hybridxfer\.lock: is a symbolic link"):
        save_fit(fitted, copy)
    assert target.read_text() == "precious\n"


def test_a_folder_of_format_1_is_refused_naming_its_version(copy):
    meta = _meta(copy)
    meta = {**meta, "format_version": 1, "weights_sha256": meta["files"]["weights.eqx"]}
    (copy / "meta.json").write_text(json.dumps(meta))
    _fails(copy, "meta.json", "with format 1", "reading format 2", "fit again")


# ----------------------------------------------------------- 2. one writer
def _held_by_another_thread(folder):
    """Hold `folder`'s writer lock in another thread until the returned event is set."""
    held, release = threading.Event(), threading.Event()

    def hold():
        with checkpoints.writer(folder):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(30)
    return release, thread


def test_a_second_writer_is_refused_at_once_naming_the_holder(fitted, problem, copy):
    before = _snapshot(copy)
    release, thread = _held_by_another_thread(copy)
    try:
        with pytest.raises(SavedModelError) as e:
            save_fit(fitted, copy)
        assert "another writer holds this folder (pid " in str(e.value)
        assert str(copy) in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(SavedModelError, match="another writer"):
            hx.write_record(copy, "note.txt", "x")
        model, study = problem
        with pytest.raises(FitError, match="another writer holds this folder"):
            fit(model, study, config=CONFIG, checkpoint=copy, progress=False)
    finally:
        release.set()
        thread.join()
    after = _snapshot(copy)
    assert {n: after[n] for n in before} == before  # nothing written
    assert set(after) - set(before) == set()
    save_fit(fitted, copy)  # free again
    assert load_fit(copy).scores == fitted.scores


def test_a_lock_of_a_killed_process_is_free(fitted, tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "model"
    code = (
        "import sys, os, pathlib; from hybridxfer._fit.checkpoint import writer\n"
        "with writer(pathlib.Path(sys.argv[1])):\n"
        "    print('held', flush=True); os.kill(os.getpid(), 9)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True)
    assert out.stdout == "held\n" and out.returncode == -9
    assert (folder / checkpoints.HOLDER).exists()  # its note stays; its lock does not
    save_fit(fitted, folder)
    assert load_fit(folder).scores == fitted.scores


def test_two_fits_into_one_folder_at_once_leave_one_run(problem, tmp_path):
    """Two threads each fit (different seeds, checkpoint in the folder) and save to the
    same folder, as ``hybridxfer fit --out SAME`` twice: the model and the checkpoint
    there come from one run, and the other is refused."""
    model, study = problem
    out = tmp_path / "out"
    start = threading.Barrier(2)
    outcomes = {}

    def run(seed):
        start.wait()
        try:
            result = fit(
                model,
                study,
                config=FitConfig(**{**CONFIG.__dict__, "seed": seed}),
                checkpoint=out / "checkpoint",
                progress=False,
            )
            save_fit(result, out)
            outcomes[seed] = result
        except (FitError, SavedModelError) as e:
            outcomes[seed] = e

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in outcomes.values() if isinstance(r, hx.FitResult)]
    lost = [r for r in outcomes.values() if not isinstance(r, hx.FitResult)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert "another writer holds this folder" in str(lost[0]) or "different fit" in str(lost[0])
    saved = pd.read_csv(out / "history.csv")
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    np.testing.assert_array_equal(saved.to_numpy(), np.asarray(state["history"], dtype=float))
    np.testing.assert_array_equal(saved.to_numpy(), won[0].history.to_numpy())


# ------------------------------------------------------- 3. meta.json limits
def test_a_deeply_nested_meta_json_is_refused_before_parsing(copy):
    (copy / "meta.json").write_text(
        '{"format_version": 2, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    _fails(copy, "meta.json", "nested 100001 deep (at most 16)")


def test_an_oversized_meta_json_is_refused_before_parsing(copy):
    meta = _meta(copy)
    (copy / "meta.json").write_text(json.dumps({**meta, "pad": "x" * (2 << 20)}))
    _fails(copy, "meta.json", "bytes, more than a saved model's meta.json has")


@pytest.mark.parametrize("members", [10**12, 0, -1, 2.0, "2", True])
def test_absurd_members_are_refused(copy, members):
    integrity.write_meta(copy / "meta.json", {**_meta(copy), "members": members})
    _fails(copy, "meta.json", "members must be an integer from 1 to 10000")


def test_more_members_than_the_weights_hold_are_refused_before_allocating(copy):
    integrity.write_meta(
        copy / "meta.json", {**_meta(copy), "members": 9999, "scores": [0.0] * 9999}
    )
    _fails(copy, "weights.eqx", "9999 members need")


def test_scores_must_match_members(copy):
    integrity.write_meta(copy / "meta.json", {**_meta(copy), "scores": [1.0]})
    _fails(copy, "meta.json", "1 scores for 2 members")


def test_hostile_record_names_in_meta_json_are_not_removed(fitted, copy, tmp_path):
    (copy / "keep.txt").write_text("x")
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    for name in ("../keep.txt", str(outside), ".hybridxfer.lock", "model.toml"):
        integrity.write_meta(copy / "meta.json", {**_meta(copy), "records": [name]})
        save_fit(fitted, copy)
    assert (copy / "keep.txt").exists() and (copy / ".hybridxfer.lock").exists()
    assert outside.exists()


# ------------------------------------------------------- 4. expressions
HOSTILE = {
    "1000-term sum": " + ".join(["mu"] * 1000),
    "100k unary minuses": "-" * 100_000 + "mu",
    "exponent tower": "9**9**9**9",
    "tower on a name": "mu ** 9**9**9",
    "400-digit literal": "1" + "0" * 399 + " * mu",
    "1e309": "1e309 * mu",
    "deep parentheses": "(" * 1000 + "mu" + ")" * 1000,
    "deep calls": "exp(" * 120 + "mu" + ")" * 120,
    "long product of names": " * ".join(["mu"] * 600),
    "wide call": "max(" + ",".join(["mu"] * 600) + ")",
    "division by zero": "mu * (1 / 0)",
    "complex power": "mu * (-8) ** 0.5",
    "log of zero": "mu * log(0)",
    "dunder attribute": "mu.__class__",
    "call of an import": "__import__('os').system('touch /tmp/h1-pwned')",
    "lambda": "(lambda: 0)()",
}


@pytest.mark.parametrize("what", HOSTILE)
def test_a_hostile_expression_is_refused_in_one_line_naming_file_and_line(tmp_path, what):
    text = demo_model_path().read_text()
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("q_glc"))
    path = tmp_path / "model.toml"
    path.write_text(
        text.replace('"pirt(mu, Y_xglc, m_glc) * monod(Glc, 0.05)"', repr(HOSTILE[what]))
    )
    with pytest.raises(hx.ModelFileError) as e:
        hx.load_model(path)
    message = str(e.value)
    assert message.startswith(f"{path}, line {line}: [rates.q_glc]"), message
    assert "\n" not in message and len(message) < 400, message
    assert not os.path.exists("/tmp/h1-pwned")


def test_expressions_at_the_limits_still_parse_and_fold_numbers_exactly():
    from hybridxfer._core.expressions import MAX_DEPTH, parse_expression

    terms = MAX_DEPTH + 1  # a sum of n terms nests n - 1 deep
    total = parse_expression(" + ".join(["x"] * terms), {"x"})
    assert float(total({"x": 0.5})) == terms * 0.5
    folded = parse_expression("2**10 * x - -(3 / 4) + exp(0) + 1e100 * 0", {"x"})
    assert float(folded({"x": 1.0})) == 1024.0 + 0.75 + 1.0
    assert folded.names == frozenset({"x"})


@pytest.mark.parametrize(
    "solver, why",
    [
        ({"name": "tsit5", "max_steps": 10**12}, "solver max_steps = 1000000000000 is out of"),
        ({"name": "tsit5", "rtol": "abc"}, "solver rtol = 'abc' is out of its type or range"),
        ({"name": "__class__"}, "solver '__class__' is not one of tsit5, dopri5, kvaerno5"),
        ("tsit5", "solver settings must be an object, not str"),
    ],
)
def test_hostile_solver_settings_in_meta_json_are_refused(copy, solver, why):
    meta = _meta(copy)
    meta["config"]["solver"] = solver
    integrity.write_meta(copy / "meta.json", meta)
    _fails(copy, "meta.json: bad scores or config", why)
