"""Stiff equations: a fit with the default explicit solver goes on with an implicit one."""

import warnings

import diffrax as dfx
import numpy as np
import pandas as pd
import pytest

import hybridxfer as hx


def _exchange(k_d: float, k_f: float | None = None) -> hx.HybridModel:
    """A and B exchange fast (k_f = 1e4 1/h, fixed: an eigenvalue near -2e4) while B
    decays slowly (k_d): stiff for an explicit method, whose stable step is ~1e-4 h. A
    given k_f is free, from that value."""
    fast = hx.Parameter("k_f", 1e4, "1/h", fixed=True) if k_f is None else None
    return hx.HybridModel.build(
        name="exchange",
        states=[hx.State("A", "g/L"), hx.State("B", "g/L")],
        parameters=[
            fast or hx.Parameter("k_f", k_f, "1/h"),
            hx.Parameter("k_d", k_d, "1/h"),
        ],
        rates={"ex": "k_f * (A - B)", "d": "k_d * B"},
        balances={"A": "-ex", "B": "ex - d"},
    )


def test_stiff_fit_falls_back_to_an_implicit_solver_and_recovers_the_rate():
    """Data simulated with Kvaerno5 at k_d = 0.05 1/h. Fitted from k_d = 0.1 with the
    default (explicit Tsit5, 1024 steps) settings, the first step runs out of steps;
    the fit warns, starts again with Kvaerno5, records it, and recovers k_d within 5%
    (after the fast exchange, A = B = (A0 + B0)/2 exp(-k_d t / 2) exactly)."""
    t0 = [(f"b{i}", 0.0, v, x) for i in range(3) for v, x in (("A", 2.0 + i), ("B", 0.0))]
    seed = hx.study_from_frames(pd.DataFrame(t0, columns=["batch", "time", "variable", "value"]))
    times = {b: np.arange(0.0, 60.0, 5.0) for b in seed.batch_names}
    stiff = hx.Solver(solver=dfx.Kvaerno5(), rtol=1e-8, atol=1e-10)
    data = hx.simulate(_exchange(0.05), seed, times=times, solver=stiff)
    late = data[data["time"] == 55.0].set_index(["batch", "variable"])["value"]
    a0 = np.array([2.0, 3.0, 4.0])
    np.testing.assert_allclose(
        late.xs("A", level="variable"), a0 / 2 * np.exp(-0.05 * 55 / 2), rtol=1e-5
    )  # the reference the data must meet
    study = hx.study_from_frames(data)
    with pytest.warns(UserWarning, match="look stiff"):
        result = hx.fit(
            _exchange(0.1), study, config=hx.FitConfig(steps=60, learning_rate=0.05), progress=False
        )
    assert isinstance(result.config.solver.solver, dfx.Kvaerno5)
    k_d = float(result.model.parameter_values()["k_d"])
    assert k_d == pytest.approx(0.05, rel=0.05)


def test_a_fit_that_turns_stiff_midway_goes_on_with_an_implicit_solver():
    """Data with a fast exchange (k_f = 20 1/h, sampled from 0.02 h on), fitted from
    k_f = 1 with an explicit solver of 64 steps per segment: a step runs out of steps
    once k_f has grown enough (stable steps ~1/k_f) and every member's step is rejected.
    The fit warns and goes on with Kvaerno5 from there, to k_f and k_d within 5% (it
    stopped there before, with k_f a few 1/h)."""
    t0 = [(f"b{i}", 0.0, v, x) for i in range(2) for v, x in (("A", 2.0 + i), ("B", 0.0))]
    seed = hx.study_from_frames(pd.DataFrame(t0, columns=["batch", "time", "variable", "value"]))
    grid = np.array([0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0])
    stiff = hx.Solver(solver=dfx.Kvaerno5(), rtol=1e-8, atol=1e-10)
    truth, start = _exchange(0.05, k_f=20.0), _exchange(0.05, k_f=1.0)
    data = hx.simulate(truth, seed, times={b: grid for b in seed.batch_names}, solver=stiff)
    config = hx.FitConfig(
        steps=80, learning_rate=0.2, patience=1000, solver=hx.Solver(max_steps=64)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = hx.fit(
            start,
            hx.study_from_frames(data),
            config=config,
            validation=hx.Validation(all_points=True),
            progress=False,
        )
    switched = [str(w.message) for w in caught if "look stiff" in str(w.message)]
    assert len(switched) == 1 and "fitting on with Kvaerno5 from here" in switched[0]
    at = int(switched[0].split("fit step ")[1].split(":")[0])
    assert 1 < at < config.steps and result.history["step"].max() == config.steps
    assert isinstance(result.config.solver.solver, dfx.Kvaerno5)
    values = result.model.parameter_values()
    assert float(values["k_f"]) == pytest.approx(20.0, rel=0.05)
    assert float(values["k_d"]) == pytest.approx(0.05, rel=0.05)
