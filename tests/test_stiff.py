"""Stiff equations: a fit with the default explicit solver falls back to an implicit one."""

import diffrax as dfx
import numpy as np
import pandas as pd
import pytest

import hybridxfer as hx


def _exchange(k_d: float) -> hx.HybridModel:
    """A and B exchange fast (k_f = 1e4 1/h, an eigenvalue near -2e4) while B decays
    slowly (k_d): stiff for an explicit method, whose stable step is ~1e-4 h."""
    return hx.HybridModel.build(
        name="exchange",
        states=[hx.State("A", "g/L"), hx.State("B", "g/L")],
        parameters=[
            hx.Parameter("k_f", 1e4, "1/h", fixed=True),
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
