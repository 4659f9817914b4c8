"""The fit's objective for many members at once (one flat vmap over member x batch
rows) against the single-model objective (a vmap over batches with shared weights)."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import hybridxfer as hx
from hybridxfer._data.batch_data import batch_data
from hybridxfer._fit.controls import _trainable, stack
from hybridxfer._fit.objective import members_objective, objective, variable_scales
from hybridxfer._solve import Solver


def _model():
    return hx.HybridModel.build(
        name="toy",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        parameters=[
            hx.Parameter("mu_max", 0.25, "1/h", process_specific=True),
            hx.Parameter("K", 0.5, "g/L"),
        ],
        networks=[hx.Network("g", inputs=("S",), hidden=(4,))],
        rates={"mu": "mu_max * monod(S, K) * g"},
        balances={"X": "mu * X", "S": "-2 * mu * X"},
        key=jax.random.PRNGKey(0),
    )


def test_members_objective_equals_objective_of_each_member():
    model = _model()
    rows = [
        (f"b{i}", t, v, x * (1 + 0.1 * t))
        for i, (x0, s0) in enumerate([(0.1, 10.0), (0.2, 8.0), (0.15, 12.0)])
        for t in (0.0, 4.0, 8.0, 12.0)
        for v, x in (("X", x0), ("S", s0))
    ]
    study = hx.study_from_frames(pd.DataFrame(rows, columns=["batch", "time", "variable", "value"]))
    data = batch_data(model, study)
    scales = variable_scales(data, np.asarray(data.mask))
    members = []
    for k in range(3):  # other weights and parameter values per member
        m = model.init_networks(jax.random.PRNGKey(k + 1))
        members.append(_trainable(m.with_parameters(mu_max=0.2 + 0.1 * k, K=0.5 + k), study, data))
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 2, size=(3, 2, *data.mask.shape)).astype(float)
    solver = Solver(rtol=1e-8, atol=1e-10)

    losses, ys = members_objective(stack(members), data, scales, jnp.asarray(weights), solver)
    for k, p in enumerate(members):
        p = jax.tree.map(lambda x: jnp.asarray(x) if isinstance(x, np.ndarray) else x, p)
        alone, ys_alone = objective(p, data, scales, jnp.asarray(weights[k]), solver)
        np.testing.assert_allclose(losses[k], alone, rtol=1e-10)
        np.testing.assert_allclose(ys[k], ys_alone, rtol=1e-10)
    assert len({float(x) for x in losses[:, 0]}) == 3  # the members differ
