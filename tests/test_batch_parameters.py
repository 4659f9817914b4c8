"""Batch-varying parameters (random effects): each batch's value is recovered from
data simulated with known per-batch values."""

import numpy as np
import pandas as pd
import pytest

import hybridxfer as hx
from tests.helpers import monod_model

TRUE_MU = np.array([0.20, 0.25, 0.31, 0.22, 0.28])  # 1/h, one per batch


def _model(mu_max=0.25, batch_sd=0.2):
    return monod_model(
        [
            hx.Parameter("mu_max", mu_max, "1/h", batch_sd=batch_sd),
            hx.Parameter("K", 1.0, "g/L", fixed=True),
            hx.Parameter("Y", 0.5, "g/g"),
        ],
        name="monod-batches",
    )


def _data():
    rng = np.random.default_rng(3)
    frames = []
    for i, mu in enumerate(TRUE_MU):
        seed = pd.DataFrame(
            [(f"b{i}", 0.0, "X", 0.2), (f"b{i}", 0.0, "S", 15.0)],
            columns=["batch", "time", "variable", "value"],
        )
        sim = hx.simulate(
            _model(mu, None), hx.study_from_frames(seed), times={f"b{i}": np.arange(0, 21.0, 2.0)}
        )
        noisy = sim["value"] * (1 + 0.02 * rng.standard_normal(len(sim)))
        frames.append(sim.assign(value=np.where(sim["time"] == 0, sim["value"], noisy)))
    return hx.study_from_frames(pd.concat(frames, ignore_index=True))


def test_each_batch_value_is_recovered(tmp_path):
    result = hx.fit(
        _model(0.15), _data(), config=hx.FitConfig(steps=800, learning_rate=0.05), progress=False
    )
    fitted = result.batch_parameters.set_index("batch")["value"]
    np.testing.assert_allclose(fitted[[f"b{i}" for i in range(5)]], TRUE_MU, rtol=0.03)
    # the population value sits among the batches' (geometric mean 0.25)
    population = float(result.model.parameter_values()["mu_max"])
    assert population == pytest.approx(np.exp(np.log(TRUE_MU).mean()), rel=0.1)
    assert "batch_sd = 0.2" in hx.to_toml(result.model)
    loaded = hx.load_fit(hx.save_fit(result, tmp_path / "fit"))
    pd.testing.assert_frame_equal(loaded.batch_parameters, result.batch_parameters)


def test_batch_sd_must_be_positive_on_a_free_parameter():
    with pytest.raises(hx.ParameterError, match="batch_sd must be > 0"):
        hx.Parameter("k", 1.0, "1/h", batch_sd=0.0)
    with pytest.raises(hx.ParameterError, match="batch_sd must be > 0"):
        hx.Parameter("k", 1.0, "1/h", fixed=True, batch_sd=0.1)
