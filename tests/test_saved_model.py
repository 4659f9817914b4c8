"""Model files written back (to_toml) and saved models (save_fit / load_fit)."""

import dataclasses
import json
import re
import shutil

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import hybridxfer as hx
from hybridxfer._fit import FitConfig, fit
from hybridxfer._io import integrity, saved_model
from hybridxfer._io.model_file import to_toml
from hybridxfer._io.saved_model import FORMAT_VERSION, SavedModelError, load_fit, save_fit
from hybridxfer._solve import Solver
from hybridxfer.demo import demo_model_path


# ------------------------------------------------------------------ to_toml
def _fed_batch_model() -> hx.HybridModel:
    """Every declaration feature, with a fed-batch reactor with bolus and withdrawal."""
    return hx.HybridModel.build(
        name='toy "fed" µ-batch',
        time_unit="d",
        states=[
            hx.State("X", "g/L", initial="X0 * frac"),
            hx.State("S", "g/L", initial="estimate", guess=5.0),
            hx.State("P", "µg/L", initial=0.0),
            hx.State("L", "mM"),
        ],
        inputs=[
            hx.Input("F", "L/d", interpolation="linear"),
            hx.Input("T", "degC"),
            hx.Input("Vb", "L"),
            hx.Input("Vs", "L"),
        ],
        constants=[hx.Constant("Sf", "g/L"), hx.Constant("X0", "g/L")],
        parameters=[
            hx.Parameter("mu_max", 0.3, "1/d", bounds=(0.01, 1.0), process_specific=True),
            hx.Parameter("K", 0.5, "g/L", fixed=True),
            hx.Parameter("Y", 0.5, "g/g"),
            hx.Parameter("theta", -0.2, "1", positive=False),
            hx.Parameter("c", 0.1, "1", positive=False, bounds=(-1.0, 1.0)),
            hx.Parameter("frac", 1.0, "1", fixed=True),
        ],
        networks=[
            hx.Network("corr", ("S", "T", "t"), hidden=(4, 4), output="bounded", scale=2.5),
            hx.Network("lin", ("Sf",), hidden=(), output="free", activation="relu"),
        ],
        # q is declared before mu, which it reads: the file keeps evaluation order
        rates={"q": "mu / Y", "mu": "mu_max * monod(S, K) * corr * exp(theta * c * lin)"},
        balances={"X": "mu * X", "S": "-q * X", "P": "2.5 * mu * X", "L": "0.1 * q * X"},
        reactor=hx.FedBatch(
            volume="Vol",
            volume_initial="1.5",
            feed_rate="F",
            feed={"S": "Sf", "L": 0.25},
            bolus_volume="Vb",
            bolus={"S": 500.0, "L": "2 * Sf"},
            withdrawal="Vs",
        ),
        key=jax.random.PRNGKey(0),
    )


def _perfusion_model() -> hx.HybridModel:
    return hx.HybridModel.build(
        name="perf",
        states=[hx.State("X", "1e9 cells/L"), hx.State("S", "mM")],
        inputs=[hx.Input("F", "L/h"), hx.Input("Vb", "L")],
        parameters=[hx.Parameter("mu", 0.02, "1/h"), hx.Parameter("q", 0.1, "mmol/(1e9 cells h)")],
        rates={},
        balances={"X": "mu * X", "S": "-q * X"},
        reactor=hx.Perfusion(
            volume_initial=2.0,
            feed_rate="F",
            feed={"S": 20},
            bleed_rate="0.1 * F",
            retained=("X",),
            bolus_volume="Vb",  # bolus of feed medium: no concentrations of its own
        ),
    )


def _chemostat_model() -> hx.HybridModel:
    return hx.HybridModel.build(
        name="chemo",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        constants=[hx.Constant("Sf", "g/L")],
        parameters=[hx.Parameter("mu_max", 0.4, "1/h"), hx.Parameter("K", 0.2, "g/L")],
        rates={"mu": "mu_max * S / (K + S)"},
        balances={"X": "mu * X", "S": "-2 * mu * X"},
        reactor=hx.Chemostat(feed_rate=0.05, feed={"S": "Sf"}),
    )


def _with_values(structure, values):
    params = tuple(
        dataclasses.replace(p, value=float(values[p.name])) for p in structure.parameters
    )
    return dataclasses.replace(structure, parameters=params)


@pytest.mark.parametrize(
    "make",
    [
        lambda: hx.load_model(demo_model_path()),
        _fed_batch_model,
        _perfusion_model,
        _chemostat_model,
    ],
    ids=["demo", "fed-batch", "perfusion", "chemostat"],
)
def test_to_toml_round_trip(make):
    model = make()
    again = hx.parse_model(to_toml(model))
    assert again.structure == model.structure  # at its declared values: written exactly

    free = [p.name for p in model.structure.parameters if not p.fixed]
    fitted = model.with_parameters(**{n: float(model.parameter_values()[n]) * 0.9 for n in free})
    values = fitted.parameter_values()
    again = hx.parse_model(to_toml(fitted))
    assert again.structure == _with_values(model.structure, values)
    for p in again.structure.parameters:
        assert p.value == float(values[p.name])  # exactly: repr(float) round-trips
    for name, v in again.parameter_values().items():
        np.testing.assert_allclose(v, values[name], rtol=1e-14)


def test_to_toml_writes_only_what_differs_from_defaults():
    text = to_toml(_fed_batch_model())
    assert 'K = { value = 0.5, unit = "g/L", fixed = true }' in text
    assert 'bolus = { volume = "Vb", S = 500.0, L = "2 * Sf" }' in text
    assert 'volume = { name = "Vol", initial = "1.5" }' in text
    assert "interpolation" in text and "guess = 5.0" in text
    perfusion = to_toml(_perfusion_model())
    assert 'bolus = { volume = "Vb" }' in perfusion  # concentrations as the feed's
    assert 'retained = ["X"]' in perfusion and "positive" not in perfusion


def test_to_toml_keeps_a_saturated_bounded_parameter_inside_its_bounds():
    model = _fed_batch_model()
    saturated = eqx.tree_at(lambda m: m.free, model, model.free.at[0].set(1e3))  # mu_max
    assert float(saturated.parameter_values()["mu_max"]) >= 1.0
    again = hx.parse_model(to_toml(saturated))
    value = dict((p.name, p.value) for p in again.structure.parameters)["mu_max"]
    assert value < 1.0 and value == pytest.approx(1.0, rel=1e-15)


# --------------------------------------------------------------- saved fits
def _tiny_problem():
    model = hx.HybridModel.build(
        name="tiny",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        inputs=[hx.Input("F", "L/h"), hx.Input("Vs", "L")],
        constants=[hx.Constant("Sf", "g/L")],
        parameters=[
            hx.Parameter("mu_max", 0.2, "1/h", bounds=(0.01, 1.0)),
            hx.Parameter("K", 1.0, "g/L", fixed=True),
            hx.Parameter("Y", 0.5, "1", process_specific=True),
        ],
        networks=[hx.Network("g", inputs=("S",), hidden=(4,))],
        rates={"mu": "mu_max * monod(S, K) * g"},
        balances={"X": "mu * X", "S": "-mu / Y * X"},
        reactor=hx.FedBatch(feed_rate="F", feed={"S": "Sf"}, withdrawal="Vs"),
        key=jax.random.PRNGKey(0),
    )
    t = np.arange(0.0, 21.0, 4.0)
    rows = []
    for b, x0, s0, v0 in (("001", 0.1, 10.0, 1.0), ("b2", 0.2, 8.0, 1.2)):
        X = x0 * np.exp(0.2 * t) / (1 + x0 / 6 * np.expm1(0.2 * t))
        S = np.maximum(s0 - 1.6 * (X - x0), 0.2)
        rows += [(b, ti, "X", xi) for ti, xi in zip(t, X)]
        rows += [(b, ti, "S", si) for ti, si in zip(t, S)]
        rows.append((b, 0.0, "V", v0))
    cols = ["batch", "time", "variable", "value"]
    inputs = [("001", 0.0, "F", 0.0), ("001", 10.0, "F", 0.02), ("b2", 0.0, "F", 0.01)]
    inputs += [("001", 8.0, "Vs", 0.01), ("b2", 12.0, "Vs", 0.02)]
    study = hx.study_from_frames(
        pd.DataFrame(rows, columns=cols),
        pd.DataFrame(inputs, columns=cols),
        pd.DataFrame({"batch": ["001", "b2"], "process": "p", "split": "train", "Sf": [50.0, 40]}),
    )
    return model, study


@pytest.fixture(scope="module")
def fitted():
    model, study = _tiny_problem()
    config = FitConfig(
        steps=3, members=2, warmup=1, solver=Solver(rtol=1e-5, atol=1e-8, max_steps=128)
    )
    return fit(model, study, config=config, progress=False), study


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    result, _ = fitted
    return save_fit(result, tmp_path_factory.mktemp("saved") / "model")


@pytest.fixture
def copy(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "model")


def _arrays(model):
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(model, eqx.is_array))]


def test_save_load_round_trip(fitted, saved):
    result, study = fitted
    loaded = load_fit(saved)
    assert sorted(p.name for p in saved.iterdir()) == sorted(
        [
            "model.toml",
            "weights.eqx",
            "normalisation.json",
            "parameters.csv",
            "history.csv",
            "initial.csv",
            "calibration.csv",
            "meta.json",
            ".hybridxfer.lock",  # the writer lock (free)
        ]
    )
    pd.testing.assert_frame_equal(loaded.calibration, result.calibration, check_exact=True)
    # the best model: parameters, networks, simulation, exactly
    for name, value in result.model.parameter_values().items():
        assert float(loaded.model.parameter_values()[name]) == float(value)
    x = jnp.linspace(0.0, 12.0, 7)[:, None]
    for name, net in result.model.networks.items():
        np.testing.assert_array_equal(jax.vmap(loaded.model.networks[name])(x), jax.vmap(net)(x))
    pd.testing.assert_frame_equal(
        hx.simulate(loaded.model, study, times=9), hx.simulate(result.model, study, times=9)
    )
    # every member, and the rest of the result
    assert len(loaded.members) == len(result.members) == 2
    for a, b in zip(loaded.members, result.members):
        for x, y in zip(_arrays(a), _arrays(b), strict=True):
            np.testing.assert_array_equal(x, y)
    pd.testing.assert_frame_equal(loaded.history, result.history, check_exact=True)
    pd.testing.assert_frame_equal(loaded.initial, result.initial, check_exact=True)
    assert loaded.scores == result.scores
    assert loaded.config == result.config


def test_saved_folder_documents_the_fit(fitted, saved):
    result, _ = fitted
    values = result.model.parameter_values()
    declared = {p.name: p.value for p in result.model.structure.parameters}
    text = (saved / "model.toml").read_text()
    written = float(re.search(r"^mu_max = \{ value = ([^,]+),", text, re.M).group(1))
    assert written == pytest.approx(declared["mu_max"], rel=1e-14)  # as declared
    loaded = load_fit(saved)  # a loaded fit's declared model is the declared one
    np.testing.assert_array_equal(loaded.model.declared().free, result.model.declared().free)
    assert float(loaded.model.parameter_values()["mu_max"]) == float(values["mu_max"])
    table = pd.read_csv(saved / "parameters.csv")
    assert list(table.columns) == [
        "name",
        "value",
        "unit",
        "sd",
        "lower95",
        "upper95",
        "flag",
        "fixed",
        "process_specific",
    ]
    assert np.isfinite(table.set_index("name").loc["mu_max", ["sd", "lower95", "upper95"]]).all()
    assert table.set_index("name").loc["Y", "process_specific"]
    np.testing.assert_allclose(table["value"], [float(values[n]) for n in table["name"]])
    norm = json.loads((saved / "normalisation.json").read_text())
    net = result.model.networks["g"]
    assert norm == {"g": {"S": {"mean": float(net.mean[0]), "std": float(net.std[0])}}}
    meta = json.loads((saved / "meta.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION and meta["hybridxfer"] == hx.__version__
    assert set(meta["versions"]) == {"jax", "equinox", "diffrax", "optax", "numpy", "python"}
    assert meta["created"].endswith("+00:00") and meta["config"]["solver"]["max_steps"] == 128


def _fails(folder, *words):
    with pytest.raises(SavedModelError) as e:
        load_fit(folder)
    message = str(e.value)
    assert "\n" not in message
    for w in words:
        assert w in message, message
    return message


def test_missing_folder_or_file(tmp_path, copy):
    _fails(tmp_path / "nowhere", "nowhere", "no such saved model folder")
    (tmp_path / "file").write_text("x")
    _fails(tmp_path / "file", "not a folder")
    (copy / "model.toml").unlink()
    _fails(copy, "model.toml", "missing")


def _reseal(folder):
    """Recompute meta.json's checksums after a file was changed: a forger's folder,
    which the checks behind the checksums must still refuse."""
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"] = {
        n: saved_model.hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in meta["files"]
    }
    integrity.write_meta(folder / "meta.json", meta)


def test_truncated_weights(copy):
    data = (copy / "weights.eqx").read_bytes()
    (copy / "weights.eqx").write_bytes(data[: len(data) // 2])
    _fails(copy, "weights.eqx", "checksum differs from meta.json's")
    _reseal(copy)
    _fails(copy, "weights.eqx is corrupted or does not match model.toml")


def test_weights_of_another_model(copy):
    other = hx.load_model(demo_model_path())
    eqx.tree_serialise_leaves(copy / "weights.eqx", [eqx.filter(other, eqx.is_array)] * 2)
    _fails(copy, str(copy / "weights.eqx"), "checksum differs")
    _reseal(copy)
    _fails(copy, str(copy / "weights.eqx"), "corrupted or does not match model.toml")


def test_weights_of_another_fit_of_the_same_model(fitted, copy):
    result, _ = fitted
    others = [m.init_networks(jax.random.PRNGKey(7)) for m in result.members]
    eqx.tree_serialise_leaves(copy / "weights.eqx", [eqx.filter(m, eqx.is_array) for m in others])
    _fails(copy, str(copy / "weights.eqx"), "checksum differs from meta.json's")


def test_newer_format(copy):
    meta = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    message = _fails(copy, "meta.json", "with format 99", f"reading format {FORMAT_VERSION}")
    assert f"this is hybridxfer {hx.__version__}" in message and "upgrade" in message


def test_garbled_or_foreign_meta(copy):
    (copy / "meta.json").write_text('{"format_version": 1, "scores": [')
    _fails(copy, "meta.json", "not valid JSON")
    (copy / "meta.json").write_text('{"model": "x"}')
    _fails(copy, "meta.json", "no format_version")


def test_weighted_members_round_trip_and_bad_weights_are_refused(fitted, tmp_path):
    """A fit whose predictions are its members' weighted mean (as a transfer's average)
    loads with its weights and predicts the same weighted mean of its members'
    simulations; weights that are not one positive number per member summing to 1 are
    refused in one line."""
    result, study = fitted
    weighted = dataclasses.replace(result, weights=(0.75, 0.25))
    folder = save_fit(weighted, tmp_path / "weighted")
    loaded = load_fit(folder)
    assert loaded.weights == (0.75, 0.25)
    runs = [hx.simulate(m, study)["value"].to_numpy() for m in result.members]
    np.testing.assert_allclose(
        hx.predict(loaded, study)["value"], 0.75 * runs[0] + 0.25 * runs[1], rtol=1e-10
    )
    meta = json.loads((folder / "meta.json").read_text())
    for bad in ([0.7], [0.5, "x"], [1.5, -0.5], "all"):
        integrity.write_meta(folder / "meta.json", {**meta, "weights": bad})
        _fails(folder, "meta.json", "bad weights")
    with pytest.raises(ValueError, match="one positive number per member"):
        dataclasses.replace(result, weights=(0.5, 0.4))


def test_model_file_that_does_not_parse(copy):
    text = (copy / "model.toml").read_text()
    (copy / "model.toml").write_text(text.replace('"mu_max * monod', '"mu_max ** * monod'))
    _fails(copy, "model.toml", "checksum differs")
    _reseal(copy)
    _fails(copy, "model.toml", "line")


def test_interrupted_save_does_not_load(fitted, copy, monkeypatch):
    result, _ = fitted
    write = saved_model.write

    def crash_at_history(path, text):
        if path.name == "history.csv":
            raise KeyboardInterrupt
        write(path, text)

    monkeypatch.setattr(saved_model, "write", crash_at_history)
    with pytest.raises(KeyboardInterrupt):
        save_fit(result, copy)  # over an earlier save of the same folder
    _fails(copy, "meta.json", "missing")
    monkeypatch.undo()
    save_fit(result, copy)
    assert load_fit(copy).scores == result.scores


def test_records_are_listed_and_removed_by_the_next_save(fitted, copy):
    result, _ = fitted
    hx.write_record(copy, "note.txt", "about this model\n")
    png = hx.write_record(copy, "plot.png", b"\x89PNG\r\n")
    assert png.read_bytes() == b"\x89PNG\r\n"
    assert json.loads((copy / "meta.json").read_text())["records"] == ["note.txt", "plot.png"]
    assert load_fit(copy).scores == result.scores  # records do not change the model
    (copy / "mine.txt").write_text("not a record")
    save_fit(result, copy)
    assert not (copy / "note.txt").exists() and not (copy / "plot.png").exists()
    assert (copy / "mine.txt").exists()  # files the folder did not list stay
    assert json.loads((copy / "meta.json").read_text())["records"] == []


def test_a_save_over_a_folder_from_before_records_removes_its_transfer_files(fitted, copy):
    result, _ = fitted
    meta = json.loads((copy / "meta.json").read_text())
    del meta["records"]  # as saved before meta.json listed records
    (copy / "meta.json").write_text(json.dumps(meta))
    for name in ("transfer.txt", "candidates.csv", "transfer.png", "mine.txt"):
        (copy / name).write_text("x")
    save_fit(result, copy)
    assert sorted(p.name for p in copy.glob("*.*") if p.suffix != ".eqx") == [
        ".hybridxfer.lock",
        "calibration.csv",
        "history.csv",
        "initial.csv",
        "meta.json",
        "mine.txt",
        "model.toml",
        "normalisation.json",
        "parameters.csv",
    ]


@pytest.mark.parametrize("name", ["model.toml", "meta.json", "../x.txt", "sub/x.txt"])
def test_a_record_cannot_replace_a_model_file_or_leave_the_folder(copy, name):
    with pytest.raises(SavedModelError, match="cannot be a record"):
        hx.write_record(copy, name, "x")


def test_a_record_needs_a_saved_model(tmp_path):
    with pytest.raises(SavedModelError, match="save the model"):
        hx.write_record(tmp_path, "note.txt", "x")
