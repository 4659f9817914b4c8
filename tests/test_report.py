"""Report helpers: rates along trajectories, checked against their formulas."""

import jax
import numpy as np
import pandas as pd

import hybridxfer as hx


def test_rates_along_are_the_rate_formulas_at_the_simulated_states():
    model = hx.HybridModel.build(
        name="toy",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        parameters=[hx.Parameter("mu_max", 0.3, "1/h"), hx.Parameter("K", 0.5, "g/L")],
        networks=[hx.Network("g", inputs=("S",), hidden=(4,))],
        rates={"mu": "mu_max * monod(S, K) * g"},
        balances={"X": "mu * X", "S": "-2 * mu * X"},
        key=jax.random.PRNGKey(0),
    )
    t0 = pd.DataFrame(
        [("b0", 0.0, "X", 0.2), ("b0", 0.0, "S", 9.0), ("b0", 12.0, "X", 1.0)],
        columns=["batch", "time", "variable", "value"],
    )
    study = hx.study_from_frames(t0)
    states = hx.simulate(model, study, times=11).pivot(index="time", columns="variable")["value"]
    monod = 0.3 * states["S"] / (0.5 + states["S"])
    factor = np.asarray(jax.vmap(lambda s: model.networks["g"](s[None]))(states["S"].to_numpy()))
    assert np.ptp(factor) > 0.01 and np.abs(factor - 1).max() > 0.05  # the factor matters
    for mechanistic, expected in ((True, monod), (False, monod * factor.reshape(-1))):
        rates = hx.rates_along(model, study, points=11, mechanistic=mechanistic)
        mu = rates[rates["rate"] == "mu"].set_index("time")["value"]
        np.testing.assert_allclose(mu.loc[states.index], expected, rtol=1e-12)
