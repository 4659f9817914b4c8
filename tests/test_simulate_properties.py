"""Property tests of hx.simulate: random valid studies stay finite with positive volume,
and a blow-up in one batch raises SimulationError naming that batch, without spoiling
the other batches of the vmapped solve.

Shapes are kept within a few buckets (sample count 5..8 -> 8, three feed rows -> 4,
two bolus rows -> 2; batch counts 1..5 -> 1, 2, 4, 8) so that examples reuse the
compiled solve.
"""

import dataclasses

import diffrax as dfx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hybridxfer as hx
import hybridxfer.arrays as hxa
from hybridxfer._data.batch_data import FAR, bucket
from hybridxfer.demo import demo_model_path, demo_study

COLS = ["batch", "time", "variable", "value"]
T_END = 20.0
GRID = [0.5 * k for k in range(1, int(2 * T_END) + 1)]  # candidate times in (0, T_END]

FED_BATCH = hx.HybridModel.build(
    name="fed-batch",
    states=[hx.State("X", "g/L"), hx.State("S", "g/L"), hx.State("P", "g/L", initial=0.0)],
    inputs=[hx.Input("F", "L/h"), hx.Input("Vb", "L")],
    constants=[hx.Constant("Sf", "g/L")],
    parameters=[
        hx.Parameter("mu_max", 0.3, "1/h"),
        hx.Parameter("K", 0.5, "g/L"),
        hx.Parameter("Ki", 20.0, "g/L"),
        hx.Parameter("KP", 2.0, "g/L"),
        hx.Parameter("Y", 0.5, "1"),
        hx.Parameter("a", 0.2, "1"),
    ],
    rates={"mu": "mu_max * haldane(S, K, Ki) * noncompetitive_inhibition(P, KP)"},
    balances={"X": "mu * X", "S": "-mu / Y * X", "P": "a * mu * X"},
    reactor=hx.FedBatch(feed_rate="F", feed={"S": "Sf"}, bolus_volume="Vb"),
)

# X explodes in finite time 1/(k X0) for large k; Z' = log(c - t) is NaN once t > c.
FRAGILE = hx.HybridModel.build(
    name="fragile",
    states=[hx.State("X", "1"), hx.State("Z", "1", initial=0.0)],
    constants=[hx.Constant("k", "1"), hx.Constant("c", "h")],
    parameters=[],
    rates={},
    balances={"X": "k * X * X", "Z": "log(c - t)"},
)


def frames(batches, measurements, inputs):
    return hx.study_from_frames(
        pd.DataFrame(measurements, columns=COLS),
        None if inputs is None else pd.DataFrame(inputs, columns=COLS),
        pd.DataFrame(batches),
    )


def wide(df, batch, names):
    return df[df["batch"] == batch].pivot(index="time", columns="variable", values="value")[
        list(names)
    ]


# ---------------------------------------------------------------- strategies
def positive(lo, hi):
    # no subnormals: XLA on CPU flushes them to zero
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


parameters = st.fixed_dictionaries(
    {
        "mu_max": positive(0.01, 1.0),
        "K": positive(0.01, 5.0),
        "Ki": positive(1.0, 100.0),
        "KP": positive(0.1, 10.0),
        "Y": positive(0.1, 2.0),
        "a": positive(0.01, 1.0),
    }
)

fed_batch = st.fixed_dictionaries(
    {
        "X": positive(0.01, 3.0),
        "S": positive(0.0, 50.0),
        "V": positive(0.2, 5.0),
        "Sf": positive(0.0, 500.0),
        "feed_times": st.lists(st.sampled_from(GRID), min_size=2, max_size=2, unique=True),
        "feed": st.lists(positive(0.0, 0.3), min_size=3, max_size=3),
        "bolus_times": st.lists(st.sampled_from(GRID), min_size=2, max_size=2, unique=True),
        "bolus": st.lists(positive(0.0, 0.5), min_size=2, max_size=2),
        "times": st.lists(st.sampled_from(GRID), min_size=4, max_size=7, unique=True),
    }
)


def fed_batch_study(specs):
    """The study of fed-batch specs (as `fed_batch` draws them) and its output times."""
    names = [f"B{i + 1}" for i in range(len(specs))]
    meas, inp, table = [], [], []
    for b, s in zip(names, specs):
        meas += [(b, 0.0, k, s[k]) for k in "XSV"]
        inp += [(b, t, "F", f) for t, f in zip([0.0, *sorted(s["feed_times"])], s["feed"])]
        inp += [(b, t, "Vb", v) for t, v in zip(s["bolus_times"], s["bolus"])]
        table.append({"batch": b, "process": "p", "split": "train", "Sf": s["Sf"]})
    times = {b: [0.0, *sorted(s["times"])] for b, s in zip(names, specs)}
    return frames(table, meas, inp), times


@settings(max_examples=25, deadline=None)
@given(params=parameters, specs=st.lists(fed_batch, min_size=1, max_size=5))
def test_random_fed_batches_are_finite_with_positive_volume(params, specs):
    study, times = fed_batch_study(specs)
    model = FED_BATCH.with_parameters(**params)
    try:
        df = hx.simulate(model, study, times=times)
    except hx.SimulationError as e:
        # a draw stiff enough to spend the explicit default solver's step budget (see
        # test_stiff_fed_batch_names_the_stiff_solver) is told to use the stiff solver
        assert "the solver stopped" in str(e) and "'kvaerno5'" in str(e)
        df = hx.simulate(model, study, times=times, solver=hx.Solver(dfx.Kvaerno5()))

    assert np.isfinite(df["value"]).all()
    for b, s in zip(times, specs):
        y = wide(df, b, FED_BATCH.state_names)
        np.testing.assert_array_equal(y.index, times[b])
        np.testing.assert_allclose(y.iloc[0], [s["X"], s["S"], 0.0, s["V"]], rtol=1e-12, atol=1e-12)
        # feed and boluses only add volume (V' = F is integrated exactly; 1e-9 is rounding)
        V = y["V"].to_numpy()
        assert (V > 0).all() and (V >= s["V"] * (1 - 1e-9)).all()
        assert (np.diff(V) >= -1e-9 * V[1:]).all()
        assert (y["X"] > 0).all() and (y["P"] >= -1e-9).all()
        assert (y["S"] > -1e-6 * max(1.0, s["S"], s["Sf"])).all()  # at most solver undershoot


def test_stiff_fed_batch_names_the_stiff_solver():
    """Substrate fed into a dense culture with a small K is eaten as it comes: S stays
    ~3e-5 g/L, and the explicit default solver's steps, bound by stability at
    ~mu_max X / (Y K), spend its budget. The error names the batch, where the solver
    stopped and the stiff solver; that one conserves biomass plus substrate: with no
    boluses, X V + Y S V - Y Sf (V - V0) = X0 V0 + Y S0 V0 (g)."""
    params = dict(mu_max=1.0, K=0.01, Ki=1.0, KP=1.0, Y=0.125, a=1.0)  # a hypothesis find
    spec = dict(X=3.0, S=0.0, V=2.0, Sf=1.0, feed_times=[0.5, 1.0], feed=[0.0, 0.0, 0.125])
    spec |= dict(bolus_times=[0.5, 1.0], bolus=[0.0, 0.0], times=[0.5, 1.0, 7.0])
    study, times = fed_batch_study([spec])
    model = FED_BATCH.with_parameters(**params)
    stopped = r"'B1': the solver stopped before t=7: .*'kvaerno5'"
    with pytest.raises(hx.SimulationError, match=stopped):
        hx.simulate(model, study, times=times)

    y = wide(hx.simulate(model, study, times=times, solver=hx.Solver(dfx.Kvaerno5())), "B1", "XSV")
    Y, V0 = params["Y"], spec["V"]
    conserved = y["X"] * y["V"] + Y * y["S"] * y["V"] - Y * spec["Sf"] * (y["V"] - V0)
    np.testing.assert_allclose(conserved, spec["X"] * V0 + Y * spec["S"] * V0, rtol=1e-6)
    assert y["V"].iloc[-1] == pytest.approx(V0 + 0.125 * 6.0, rel=1e-9)  # fed 0.125 L/h from t = 1


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 5),
    data=st.data(),
    how=st.sampled_from(["explode", "log of negative"]),
)
def test_blow_up_in_one_batch_names_it(n, data, how):
    bad = data.draw(st.integers(0, n - 1), label="bad batch")
    names = [f"B{i + 1}" for i in range(n)]
    table = [
        {
            "batch": b,
            "process": "p",
            "split": "train",
            "k": data.draw(positive(0.0, 0.05)),
            "c": data.draw(positive(10.0, 100.0)),
        }
        for b in names
    ]
    table[bad].update({"k": 10.0} if how == "explode" else {"c": 2.0})
    meas = [(b, 0.0, "X", 1.0) for b in names]
    study = frames(table, meas, None)
    times = {b: [0.0, 1.0, 2.5, 4.0, 5.0] for b in names}

    # the other batches of the same vmapped solve are unaffected
    ys, ok = (np.asarray(a) for a in hxa.solve(FRAGILE, hxa.batch_data(FRAGILE, study, times)))
    finite = np.isfinite(ys).all(axis=(1, 2))
    good = [i for i in range(n) if i != bad]
    assert not (ok[bad] and finite[bad])
    assert ok[good].all() and finite[good].all()

    with pytest.raises(hx.SimulationError, match=f"batch '{names[bad]}'"):
        hx.simulate(FRAGILE, study, times=times)


# ------------------------------------------- batch arrays: vectorised = row by row
def loop_arrays(model, study, times=None):
    """The arrays of ``batch_data(model, study, times)``, built batch by batch and row by
    row in plain Python: the reference for the vectorised build."""
    names, col = study.batch_names, {v: j for j, v in enumerate(model.variable_names)}
    n, n_states, inputs, events = (
        len(names),
        len(model.state_names),
        model.input_names,
        model.event_names,
    )
    meas = [r for r in study.measurements.itertuples() if r.variable in col and r.batch in names]
    rows = sorted(study.inputs.itertuples(), key=lambda r: r.time)  # stable: file order on ties
    out = {b: sorted({r.time for r in meas if r.batch == b}) for b in names}
    if times is not None:
        out = {b: sorted(set(map(float, times[b]))) for b in names}
    sig = {
        (b, u): [r for r in rows if (r.batch, r.variable) == (b, u)] for b in names for u in inputs
    }
    ev = {b: sorted({r.time for r in rows if r.batch == b and r.variable in events}) for b in names}
    B, M = bucket(n), bucket(max(map(len, out.values())))
    K = bucket(max(map(len, sig.values()), default=1))
    E = bucket(max(map(len, ev.values()))) if any(ev.values()) else 0
    a = dict(
        initial=np.full((B, n_states), np.nan),
        constants=np.zeros((B, len(model.constant_names))),
        input_times=np.full((B, len(inputs), K), FAR),
        input_values=np.zeros((B, len(inputs), K)),
        event_times=np.zeros((B, E)),
        event_amounts=np.zeros((B, E, len(events))),
        times=np.zeros((B, M)),
        mask=np.zeros((B, M), dtype=bool),
        values=np.full((B, M, len(col)), np.nan),
        sd=np.full((B, M, len(col)), np.nan),
    )
    for i, b in enumerate(names):
        t = out[b]
        a["times"][i] = [*t, *[t[-1]] * (M - len(t))]
        a["mask"][i, : len(t)] = True
        for r in (r for r in meas if r.batch == b):
            if r.time == 0.0 and col[r.variable] < n_states:
                a["initial"][i, col[r.variable]] = r.value
            if r.time in t:
                a["values"][i, t.index(r.time), col[r.variable]] = r.value
                a["sd"][i, t.index(r.time), col[r.variable]] = getattr(r, "sd", np.nan)
        for u, name in enumerate(inputs):
            s = sig[b, name]
            a["input_times"][i, u, : len(s)] = [r.time for r in s]
            a["input_values"][i, u] = [r.value for r in s] + [s[-1].value] * (K - len(s))
        a["event_times"][i] = [min(x, t[-1]) for x in ev[b]] + [t[-1]] * (E - len(ev[b]))
        for r in (r for r in rows if r.batch == b and r.variable in events):
            a["event_amounts"][i, ev[b].index(r.time), events.index(r.variable)] += r.value
        for c, name in enumerate(model.constant_names):
            a["constants"][i, c] = study.batches.set_index("batch").loc[b, name]
    for k in a:
        if k not in ("mask", "values", "sd"):
            a[k][n:] = a[k][0]
    a["process"] = np.zeros(B, dtype=int)
    a["process"][:n] = [study.processes.index(p) for p in study.batches["process"]]
    return a


def assert_same_arrays(data, reference):
    for name, want in reference.items():
        got = np.asarray(getattr(data, name))
        assert got.shape == want.shape and got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)  # NaN == NaN here


def test_demo_batch_arrays_equal_the_row_by_row_build():
    model, study = hx.load_model(demo_model_path()), demo_study()
    m = study.measurements
    with_sd = dataclasses.replace(study, measurements=m.assign(sd=0.05 * m["value"].abs() + 0.01))
    for s in (study, with_sd, study.select(process="B"), study.select(batches="A03")):
        assert_same_arrays(hxa.batch_data(model, s), loop_arrays(model, s))
    times = {b: [0.0, 3.3, 100.0, 100.0, 7.5] for b in study.batch_names}  # unsorted, repeated
    assert_same_arrays(hxa.batch_data(model, study, times), loop_arrays(model, study, times))
    table = [{"batch": b, "process": "p", "split": "train", "k": 1.0, "c": 2.0} for b in "xyz"]
    no_inputs = frames(table, [(b, t, "X", 1.0 + t) for b in "zyx" for t in (2.0, 0.0)], None)
    assert_same_arrays(hxa.batch_data(FRAGILE, no_inputs), loop_arrays(FRAGILE, no_inputs))


@settings(max_examples=25, deadline=None)
@given(specs=st.lists(fed_batch, min_size=1, max_size=5))
def test_random_batch_arrays_equal_the_row_by_row_build(specs):
    study, times = fed_batch_study(specs)
    assert_same_arrays(hxa.batch_data(FED_BATCH, study), loop_arrays(FED_BATCH, study))
    assert_same_arrays(
        hxa.batch_data(FED_BATCH, study, times), loop_arrays(FED_BATCH, study, times)
    )


def test_simulate_on_n_even_times_adds_the_measurement_times():
    model, study = hx.load_model(demo_model_path()), demo_study().select(process="B")
    m = study.measurements
    times = {
        b: np.union1d(np.linspace(0.0, study.end_time(b), 9), m.loc[m["batch"] == b, "time"])
        for b in study.batch_names
    }
    pd.testing.assert_frame_equal(
        hx.simulate(model, study, times=9), hx.simulate(model, study, times=times)
    )
    assert set(times["B01"]) >= {0.0, 24.0, study.end_time("B01") / 8}


def test_a_batch_without_output_times_is_named():
    spec = dict(X=1.0, S=1.0, V=1.0, Sf=1.0, feed_times=[0.5, 1.0], feed=[0.0, 0.1, 0.2])
    spec |= dict(bolus_times=[0.5, 1.0], bolus=[0.1, 0.1], times=[1.0])
    study, times = fed_batch_study([spec, spec])
    with pytest.raises(hx.StudyError, match=r"^DataFrame: batch 'B2' has no output times$"):
        hxa.batch_data(FED_BATCH, study, times | {"B2": []})
