"""hx.simulate against references the library did not produce: scipy solve_ivp on
right-hand sides written here in plain numpy, and closed-form solutions.

The reference integrator restarts at every input change and event, applying bolus
mixing and withdrawals by hand, so that the library's zero-order hold, event ordering
("a sample at an event time sees the state before it") and reactor flows are all
checked independently.
"""

from dataclasses import dataclass, field
from functools import cache

import diffrax as dfx
import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp

import hybridxfer as hx

TIGHT = hx.Solver(dfx.Tsit5(), rtol=1e-10, atol=1e-12, max_steps=100_000)
PARAMS = {"mu_max": 0.3, "K": 0.8, "Ki": 15.0, "Kc": 0.5, "n": 2.0, "KP": 2.0, "Y": 0.5, "a": 0.3}


# ------------------------------------------------------------------ study helpers
@dataclass
class Batch:
    """One batch: t=0 values, input rows (time, variable, value), constants, sample times."""

    initial: dict[str, float]
    times: list[float]
    inputs: list[tuple[float, str, float]] = field(default_factory=list)
    constants: dict[str, float] = field(default_factory=dict)


def make_study(batches: dict[str, Batch]) -> hx.Study:
    cols = ["batch", "time", "variable", "value"]
    meas = [(b, 0.0, k, v) for b, spec in batches.items() for k, v in spec.initial.items()]
    inp = [(b, *row) for b, spec in batches.items() for row in spec.inputs]
    table = pd.DataFrame(
        [{"batch": b, "process": "p", "split": "train", **s.constants} for b, s in batches.items()]
    )
    return hx.study_from_frames(
        pd.DataFrame(meas, columns=cols), pd.DataFrame(inp, columns=cols) if inp else None, table
    )


def run_hx(model, batches: dict[str, Batch], solver=TIGHT) -> dict[str, np.ndarray]:
    """hx.simulate -> per batch an array (sample, state) in model.state_names order."""
    times = {b: s.times for b, s in batches.items()}
    df = hx.simulate(model, make_study(batches), times=times, solver=solver)
    out = {}
    for b, g in df.groupby("batch"):
        wide = g.pivot(index="time", columns="variable", values="value")
        np.testing.assert_array_equal(wide.index, times[b])
        out[b] = wide[list(model.state_names)].to_numpy()
    assert set(out) == set(batches)
    return out


def assert_rel(actual, expected, rtol=1e-6, floor=1e-6):
    """|a - b| <= rtol * max(|b|, floor), elementwise."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    err = np.abs(actual - expected) / np.maximum(np.abs(expected), floor)
    assert err.max() <= rtol, f"max relative error {err.max():.3g} > {rtol:g}"


# ------------------------------------------------------------- reference solver
def held(rows, var, t):
    """Zero-order hold value of input `var` at time t (right-continuous)."""
    pts = sorted((ti, v) for ti, name, v in rows if name == var)
    return [v for ti, v in pts if ti <= t][-1]


def integrate(rhs, y0, batch: Batch, events=None, inputs=()):
    """solve_ivp (LSODA), restarting at every input change and event time.

    rhs(t, y, u): u maps each name in `inputs` to its held value on the segment.
    events: {time: y -> y} applied after the samples at that time are taken.
    """
    events = events or {}
    assert 0.0 not in events, "events at t=0 are not supported by this reference"
    times = np.asarray(batch.times, float)
    knots = {0.0, times.max(), *events, *(t for t, name, _ in batch.inputs if name in inputs)}
    knots = sorted(k for k in knots if k <= times.max())
    out = np.full((len(times), len(y0)), np.nan)
    y = np.asarray(y0, float)
    for a, b in zip(knots[:-1], knots[1:]):
        u = {name: held(batch.inputs, name, 0.5 * (a + b)) for name in inputs}
        take = (times >= a) & (times <= b) & np.isnan(out[:, 0])
        t_eval = np.union1d(times[take], [b])
        sol = solve_ivp(
            lambda t, y, u=u: rhs(t, y, u),
            (a, b),
            y,
            method="LSODA",
            t_eval=t_eval,
            rtol=1e-10,
            atol=1e-12,
        )
        assert sol.success, sol.message
        out[take] = sol.y.T[np.searchsorted(t_eval, times[take])]
        y = events.get(b, lambda y: y)(sol.y[:, -1])
    return out


def tank(mode, reaction, c_in=None):
    """Textbook stirred-tank balance: C' = r(C) + F/V (C_in - C); V' = F (fed-batch) or 0."""

    def rhs(t, y, u):
        if mode == "batch":
            return reaction(t, y, u)
        c, V = y[:-1], y[-1]
        dV = u["F"] if mode == "fed-batch" else 0.0
        return np.append(reaction(t, c, u) + u["F"] / V * (c_in - c), dV)

    return rhs


def mix(Vb, c_b, Vs=0.0):
    """Withdraw Vs, then mix in a bolus Vb of concentrations c_b (state vector ends with V)."""

    def event(y):
        c, V = y[:-1], y[-1] - Vs
        return np.append((c * V + c_b * Vb) / (V + Vb), V + Vb)

    return event


def events_of(batch: Batch, c_b):
    """{time: mix(...)} for the bolus (Vb) and withdrawal (Vs) rows of a batch."""

    def amount(var, t):
        return sum(v for ti, name, v in batch.inputs if name == var and ti == t)

    times = {t for t, name, _ in batch.inputs if name in ("Vb", "Vs")}
    return {t: mix(amount("Vb", t), c_b, Vs=amount("Vs", t)) for t in times}


# --------------------------------------------------------------------- kinetics
def _monod(S, K):
    return S / (K + S)


KINETICS = {
    "monod": ("mu_max * monod(S, K)", lambda X, S, P, p: p["mu_max"] * _monod(S, p["K"])),
    "haldane": (
        "mu_max * haldane(S, K, Ki)",
        lambda X, S, P, p: p["mu_max"] * S / (p["K"] + S + S**2 / p["Ki"]),
    ),
    "contois": (
        "mu_max * contois(S, X, Kc)",
        lambda X, S, P, p: p["mu_max"] * S / (p["Kc"] * X + S),
    ),
    "moser_lactate": (
        "mu_max * moser(S, K, n) * noncompetitive_inhibition(P, KP)",
        lambda X, S, P, p: p["mu_max"] * _monod(S ** p["n"], p["K"]) * p["KP"] / (p["KP"] + P),
    ),
}


def xsp_reaction(mu):
    """r = (mu X, -mu/Y X, a mu X) for states (X, S, P)."""

    def reaction(t, c, u):
        X, S, P = c
        m = mu(X, S, P, PARAMS)
        return np.array([m * X, -m / PARAMS["Y"] * X, PARAMS["a"] * m * X])

    return reaction


UNITS = {"F": "L/h", "Vb": "L"}
REACTORS = {
    "batch": dict(reactor=hx.Batch(), inputs=(), constants=()),
    "fed-batch": dict(
        reactor=hx.FedBatch(feed_rate="F", feed={"S": "Sf"}, bolus_volume="Vb"),
        inputs=("F", "Vb"),
        constants=("Sf",),
    ),
    "chemostat": dict(
        reactor=hx.Chemostat(feed_rate="F", feed={"S": "Sf"}),
        inputs=("F",),
        constants=("Sf",),
    ),
}

# two batches per setup: different initial values, profiles, constants and sample
# times (different counts, so the shorter one is padded); fed-batch samples include
# the bolus times and input change times.
BATCHES = {
    "batch": {
        "B1": Batch({"X": 0.1, "S": 10.0}, [0, 1, 2, 4, 6, 8]),
        "B2": Batch({"X": 0.05, "S": 15.0}, [0, 3.5, 9, 10]),
    },
    "fed-batch": {
        "B1": Batch(
            {"X": 0.1, "S": 8.0, "V": 1.0},
            [0, 1, 2, 3, 4, 4.5, 6, 7.25, 9],
            [(0, "F", 0.0), (2, "F", 0.02), (5, "F", 0.05), (4, "Vb", 0.1)],
            {"Sf": 100.0},
        ),
        "B2": Batch(
            {"X": 0.2, "S": 6.0, "V": 1.5},
            [0, 2.5, 5, 8],
            [(0, "F", 0.01), (3, "F", 0.0), (6, "F", 0.03), (5, "Vb", 0.2)],
            {"Sf": 60.0},
        ),
    },
    "chemostat": {
        "B1": Batch(
            {"X": 0.5, "S": 5.0, "V": 1.0},
            [0, 1, 3, 5, 7, 10, 12],
            [(0, "F", 0.1), (5, "F", 0.2)],
            {"Sf": 20.0},
        ),
        "B2": Batch({"X": 1.0, "S": 2.0, "V": 2.0}, [0, 4, 11], [(0, "F", 0.15)], {"Sf": 10.0}),
    },
}


@cache
def xsp_model(kinetics: str, mode: str) -> hx.HybridModel:
    """X, S, P model (P initial 0) with one of the kinetics in one of the reactors."""
    setup = REACTORS[mode]
    return hx.HybridModel.build(
        name=f"{kinetics}-{mode}",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L"), hx.State("P", "g/L", initial=0.0)],
        inputs=[hx.Input(n, UNITS[n]) for n in setup["inputs"]],
        constants=[hx.Constant(c, "g/L") for c in setup["constants"]],
        parameters=[hx.Parameter(k, v, "1") for k, v in PARAMS.items()],
        rates={"mu": KINETICS[kinetics][0]},
        balances={"X": "mu * X", "S": "-mu / Y * X", "P": "a * mu * X"},
        reactor=setup["reactor"],
    )


def xsp_reference(kinetics: str, mode: str, batch: Batch) -> np.ndarray:
    x0 = [batch.initial["X"], batch.initial["S"], 0.0]
    if mode == "batch":
        return integrate(tank(mode, xsp_reaction(KINETICS[kinetics][1])), x0, batch)
    c_in = np.array([0.0, batch.constants["Sf"], 0.0])  # bolus: the feed's
    return integrate(
        tank(mode, xsp_reaction(KINETICS[kinetics][1]), c_in),
        [*x0, batch.initial["V"]],
        batch,
        events=events_of(batch, c_in),
        inputs=("F",),
    )


# ================================================================ 1. solve_ivp
# Monod, Haldane and Contois in every reactor, and Moser with product inhibition (P as lactate) in
# the fed-batch only (each case compiles a model: ~2 s)
CASES = [(k, m) for k in ("monod", "haldane", "contois") for m in REACTORS]
CASES += [("moser_lactate", "fed-batch")]


@pytest.mark.parametrize("kinetics, mode", CASES)
def test_matches_solve_ivp(kinetics, mode):
    got = run_hx(xsp_model(kinetics, mode), BATCHES[mode])
    for b, batch in BATCHES[mode].items():
        want = xsp_reference(kinetics, mode, batch)
        assert want[:, 1].min() > 0.05  # substrate never nearly exhausted: well-posed check
        assert_rel(got[b], want)


# ================================================================== 2. analytic
def cumulative(rows, var, t):
    """Integral from 0 to t of the zero-order-held input `var`."""
    pts = sorted((ti, v) for ti, name, v in rows if name == var)
    edges = [ti for ti, _ in pts] + [np.inf]
    return sum(v * max(0.0, min(t, edges[i + 1]) - ti) for i, (ti, v) in enumerate(pts))


@pytest.mark.parametrize("solver", [dfx.Tsit5(), dfx.Dopri5(), dfx.Kvaerno5()])
def test_exponential_growth(solver):
    """X' = mu X: X(t) = X0 exp(mu t), with every solver."""
    model = hx.HybridModel.build(
        name="exp",
        states=[hx.State("X", "g/L")],
        parameters=[hx.Parameter("mu", 0.7, "1/h")],
        rates={},
        balances={"X": "mu * X"},
    )
    batches = {"B1": Batch({"X": 0.1}, [0, 0.5, 3, 10]), "B2": Batch({"X": 2.0}, [0, 7])}
    got = run_hx(model, batches, hx.Solver(solver, rtol=1e-10, atol=1e-12, max_steps=100_000))
    for b, batch in batches.items():
        t = np.asarray(batch.times)
        assert_rel(got[b][:, 0], batch.initial["X"] * np.exp(0.7 * t), rtol=1e-8)


def test_chemostat_monod_steady_state():
    """mu(S*) = D: S* = K D / (mu_max - D), X* = Y (Sf - S*), after 30 residence times."""
    p = PARAMS
    D, Sf = 0.1, 20.0  # F / V
    batches = {"B1": Batch({"X": 0.2, "S": 1.0, "V": 2.0}, [0, 300], [(0, "F", 0.2)], {"Sf": Sf})}
    got = run_hx(xsp_model("monod", "chemostat"), batches)["B1"][-1]
    S_star = p["K"] * D / (p["mu_max"] - D)
    X_star = p["Y"] * (Sf - S_star)
    assert_rel(got[:2], [X_star, S_star])
    assert_rel(got[2], p["a"] * X_star)  # P / X = a at steady state
    assert got[3] == 2.0


def test_fed_batch_mass_balance_and_volume():
    """(S + X/Y) V changes only by Sf * fed volume; V = V0 + integral of F + boluses."""
    Y = PARAMS["Y"]
    got = run_hx(xsp_model("monod", "fed-batch"), BATCHES["fed-batch"])
    for b, batch in BATCHES["fed-batch"].items():
        X, S, _, V = got[b].T
        X0, S0, V0 = (batch.initial[k] for k in "XSV")
        bolus = [(t, v) for t, name, v in batch.inputs if name == "Vb"]
        fed = np.array(
            [
                cumulative(batch.inputs, "F", t) + sum(v for te, v in bolus if te < t)
                for t in batch.times
            ]
        )
        assert_rel(V, V0 + fed, rtol=1e-12)
        assert_rel((S + X / Y) * V, (S0 + X0 / Y) * V0 + batch.constants["Sf"] * fed, rtol=1e-8)


def test_input_change_at_segment_end_is_a_jump():
    """V' = F is integrated exactly when F changes inside a segment (test above); it
    should be too when F changes at an event time (B1) or at the last sample (B2)."""
    init, rows = {"X": 0.1, "S": 8.0, "V": 1.0}, [(0, "F", 0.0), (2, "F", 0.25)]
    batches = {
        "B1": Batch(init, [0, 1, 2, 3], [*rows, (2, "Vb", 0.1)], {"Sf": 100.0}),
        "B2": Batch(init, [0, 1, 2], rows, {"Sf": 100.0}),
    }
    got = run_hx(xsp_model("monod", "fed-batch"), batches, hx.Solver())
    # with the default tolerances both are off by 1.4e-7 from t = 2 on
    assert_rel(got["B1"][:, 3], [1.0, 1.0, 1.0, 1.35], rtol=1e-12)
    assert_rel(got["B2"][:, 3], [1.0, 1.0, 1.0], rtol=1e-12)


def test_perfusion_retained_state_only_diluted_by_bleed():
    """X (retained) leaves only with the bleed B, S with the whole outflow F:
    X = X0 exp(-kd t - int B/V), S = Sf + (S0 - Sf) exp(-int F/V); V constant, from
    Perfusion(volume_initial=...)."""
    model = hx.HybridModel.build(
        name="perfusion",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        inputs=[hx.Input("F", "L/h"), hx.Input("B", "L/h")],
        constants=[hx.Constant("Sf", "g/L"), hx.Constant("V0", "L")],
        parameters=[hx.Parameter("kd", 0.05, "1/h")],
        rates={},
        balances={"X": "-kd * X", "S": "0"},
        reactor=hx.Perfusion(
            feed_rate="F",
            feed={"S": "Sf"},
            bleed_rate="B",
            retained=("X",),
            volume_initial="2 * V0",  # no V measurement needed
        ),
    )
    rows = [(0, "F", 1.0), (0, "B", 0.1), (4, "B", 0.3), (6, "F", 2.0)]
    batches = {
        "B1": Batch({"X": 5.0, "S": 2.0}, [0, 1, 4, 5, 6, 8, 10], rows, {"Sf": 12.0, "V0": 1.0}),
        "B2": Batch({"X": 1.0, "S": 9.0}, [0, 3, 9], rows[:2], {"Sf": 3.0, "V0": 2.0}),
    }
    got = run_hx(model, batches)
    for b, batch in batches.items():
        t = np.asarray(batch.times)
        V, Sf = 2 * batch.constants["V0"], batch.constants["Sf"]
        int_b = np.array([cumulative(batch.inputs, "B", ti) for ti in t]) / V
        int_f = np.array([cumulative(batch.inputs, "F", ti) for ti in t]) / V
        X = batch.initial["X"] * np.exp(-0.05 * t - int_b)
        S = Sf + (batch.initial["S"] - Sf) * np.exp(-int_f)
        assert_rel(got[b], np.column_stack([X, S, np.full_like(t, V)]), rtol=1e-8)


def test_withdrawal_and_bolus():
    """Sample withdrawal Vs: V drops by Vs, concentrations are continuous. A withdrawal
    and a bolus at the same instant: withdraw first, then mix (reactor.py docstring).
    The bolus has its own concentrations (S = 2 Sf, and P, which the feed lacks)."""
    model = hx.HybridModel.build(
        name="withdrawal",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L"), hx.State("P", "g/L", initial=0.0)],
        inputs=[hx.Input("F", "L/h"), hx.Input("Vb", "L"), hx.Input("Vs", "L")],
        constants=[hx.Constant("Sf", "g/L")],
        parameters=[hx.Parameter(k, v, "1") for k, v in PARAMS.items()],
        rates={"mu": KINETICS["monod"][0]},
        balances={"X": "mu * X", "S": "-mu / Y * X", "P": "a * mu * X"},
        reactor=hx.FedBatch(
            feed_rate="F",
            feed={"S": "Sf"},
            bolus_volume="Vb",
            bolus={"S": "2 * Sf", "P": 1.0},
            withdrawal="Vs",
        ),
    )
    eps = 1e-9
    batches = {
        "B1": Batch(
            {"X": 0.3, "S": 10.0, "V": 1.0},
            [0, 2, 3, 3 + eps, 5, 6, 6 + eps, 8],
            [(0, "F", 0.03), (3, "Vs", 0.2), (6, "Vs", 0.1), (6, "Vb", 0.15)],
            {"Sf": 50.0},
        ),
        "B2": Batch({"X": 0.3, "S": 10.0, "V": 1.0}, [0, 3, 8], [(0, "F", 0.03)], {"Sf": 50.0}),
    }
    got = run_hx(model, batches)
    for b, batch in batches.items():
        c_in = np.array([0.0, batch.constants["Sf"], 0.0])
        c_b = np.array([0.0, 2 * batch.constants["Sf"], 1.0])
        want = integrate(
            tank("fed-batch", xsp_reaction(KINETICS["monod"][1]), c_in),
            [batch.initial["X"], batch.initial["S"], 0.0, batch.initial["V"]],
            batch,
            events=events_of(batch, c_b),
            inputs=("F",),
        )
        assert_rel(got[b], want)
    before, after = got["B1"][2], got["B1"][3]  # t = 3 (sees pre-event state), 3 + eps
    assert_rel(after[:3], before[:3], rtol=1e-7)
    assert after[3] == pytest.approx(before[3] - 0.2, abs=1e-9)


def test_linear_input_matches_np_interp():
    """F interpolated linearly (np.interp), growth factor G held (zero-order), mixed."""
    model = hx.HybridModel.build(
        name="linear",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L"), hx.State("P", "g/L", initial=0.0)],
        inputs=[hx.Input("F", "L/h", interpolation="linear"), hx.Input("G", "1")],
        constants=[hx.Constant("Sf", "g/L")],
        parameters=[hx.Parameter(k, v, "1") for k, v in PARAMS.items()],
        rates={"mu": f"G * {KINETICS['monod'][0]}"},
        balances={"X": "mu * X", "S": "-mu / Y * X", "P": "a * mu * X"},
        reactor=hx.FedBatch(feed_rate="F", feed={"S": "Sf"}),
    )
    batches = {
        "B1": Batch(
            {"X": 0.2, "S": 10.0, "V": 1.0},
            [0, 1, 2.5, 4, 5, 7, 9, 12],
            [(0, "F", 0.0), (2, "F", 0.1), (5, "F", 0.02), (8, "F", 0.05)]
            + [(0, "G", 1.0), (3, "G", 0.5)],
            {"Sf": 40.0},
        ),
        "B2": Batch(
            {"X": 0.1, "S": 5.0, "V": 2.0},
            [0, 3, 6],
            [(0, "F", 0.2), (4, "F", 0.0), (0, "G", 0.8)],
            {"Sf": 20.0},
        ),
    }
    got = run_hx(model, batches)
    monod = KINETICS["monod"][1]
    for b, batch in batches.items():
        knots = sorted((t, v) for t, name, v in batch.inputs if name == "F")
        c_in = np.array([0.0, batch.constants["Sf"], 0.0])

        def rhs(t, y, u, knots=knots, c_in=c_in):
            reaction = xsp_reaction(lambda *a: u["G"] * monod(*a))
            return tank("fed-batch", reaction, c_in)(t, y, {"F": np.interp(t, *zip(*knots))})

        y0 = [batch.initial["X"], batch.initial["S"], 0.0, batch.initial["V"]]
        # knots at every F and G time: F's kinks and G's jumps
        want = integrate(rhs, y0, batch, inputs=("F", "G"))
        assert_rel(got[b], want)


TOML = """
[model]
name = "monod-fed-batch"

[states]
X = { unit = "g/L" }
S = { unit = "g/L" }
P = { unit = "g/L", initial = 0.0 }

[inputs]
F = { unit = "L/h" }
Vb = { unit = "L" }

[constants]
Sf = { unit = "g/L" }

[parameters]
{params}

[reactor]
mode = "fed-batch"
feed_rate = "F"
feed = { S = "Sf" }
bolus = { volume = "Vb" }

[rates]
mu = "mu_max * monod(S, K)"

[balances]
X = "mu * X"
S = "-mu / Y * X"
P = "a * mu * X"
"""


def test_toml_model_equals_python_model():
    params = "\n".join(f'{k} = {{ value = {v!r}, unit = "1" }}' for k, v in PARAMS.items())
    toml_model = hx.parse_model(TOML.replace("{params}", params))
    py_model = xsp_model("monod", "fed-batch")
    assert toml_model.structure == py_model.structure
    got = run_hx(toml_model, BATCHES["fed-batch"])
    want = run_hx(py_model, BATCHES["fed-batch"])
    for b in want:
        np.testing.assert_allclose(got[b], want[b], rtol=1e-13, atol=0)
