"""Transfer by embedding: a network that reads a per-process parameter, fitted on
several source processes, moves to a new process by refitting that parameter alone.

Truth: Monod growth whose maximum rate differs between processes (0.2, 0.3, 0.45 1/h
for the sources, 0.36 for the target). The hybrid model knows the balances but not
the rate: ``mu = 0.3 * growth(S, z)``, with z a process-specific embedding."""

import jax
import numpy as np
import pandas as pd
import pytest

import hybridxfer as hx

SOURCES = {"P1": 0.2, "P2": 0.3, "P3": 0.45}
TARGET = ("T", 0.36)
TIMES = np.arange(0.0, 17.0, 2.0)


def _truth(mu_max: float) -> hx.HybridModel:
    return hx.HybridModel.build(
        name="monod",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        parameters=[
            hx.Parameter("mu_max", mu_max, "1/h"),
            hx.Parameter("K", 2.0, "g/L"),
            hx.Parameter("Y", 0.5, "1"),
        ],
        rates={"mu": "mu_max * S / (K + S)"},
        balances={"X": "mu * X", "S": "-mu * X / Y"},
    )


def _hybrid() -> hx.HybridModel:
    return hx.HybridModel.build(
        name="embedded",
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        parameters=[
            hx.Parameter("Y", 0.5, "1", fixed=True),
            hx.Parameter("z", 0.0, "1", positive=False, process_specific=True),
        ],
        networks=[hx.Network("growth", ("S", "z"), hidden=(8, 8))],
        rates={"mu": "0.3 * growth"},
        balances={"X": "mu * X", "S": "-mu * X / Y"},
        key=jax.random.PRNGKey(0),
    )


def _study(processes: dict[str, float], per_process: int, split: str, seed: int) -> hx.Study:
    rng = np.random.default_rng(seed)
    frames, batches = [], []
    for process, mu_max in processes.items():
        for i in range(per_process):
            b = f"{process}-{split}-{i}"
            x0 = pd.DataFrame(
                [(b, 0.0, "X", rng.uniform(0.05, 0.2)), (b, 0.0, "S", rng.uniform(8, 15))],
                columns=["batch", "time", "variable", "value"],
            )
            sim = hx.simulate(_truth(mu_max), hx.study_from_frames(x0), times={b: TIMES})
            noisy = sim["value"] * (1 + 0.02 * rng.standard_normal(len(sim)))
            frames.append(sim.assign(value=np.where(sim["time"] == 0, sim["value"], noisy)))
            batches.append(dict(batch=b, process=process, split=split))
    return hx.study_from_frames(pd.concat(frames), batches=batches)


def _merge(*studies: hx.Study) -> hx.Study:
    return hx.study_from_frames(
        pd.concat([s.measurements for s in studies]),
        batches=pd.concat([s.batches for s in studies]),
    )


@pytest.fixture(scope="module")
def transferred():
    source = hx.fit(
        _hybrid(),
        _study(SOURCES, 3, "train", seed=0),
        process="P1",
        plan=hx.Plan(joint=("P2", "P3"), joint_weight=1.0),
        config=hx.FitConfig(steps=600, learning_rate=0.02),
        progress=False,
    )
    target = _study(dict([TARGET]), 1, "train", seed=1)
    test = _study(dict([TARGET]), 3, "test", seed=2)
    result = hx.transfer(source, _merge(target, test), process="T", strategy="embedding")
    return source, result, test


def test_the_embedding_alone_moves_the_model_to_a_new_process(transferred):
    source, result, test = transferred
    error = {
        name: hx.nrmse(hx.simulate(fit.model, test), test.measurements)["X"]
        for name, fit in result.candidate_fits.items()
    }
    # the source unchanged misses by 0.38 and scratch (one batch) by 0.34; embedding 0.065
    assert error["embedding"] < 0.1, error
    assert error["embedding"] < 0.25 * min(error["none"], error["scratch"]), error
    # only z moved; the networks are the source's
    assert result.strategy == "embedding"
    moved = result.model.networks["growth"].mlp
    np.testing.assert_array_equal(
        moved.layers[0].weight, source.model.networks["growth"].mlp.layers[0].weight
    )


def test_embedding_needs_a_network_that_reads_a_parameter():
    plain = hx.fit(
        _truth(0.3),
        _study({"P1": 0.3}, 1, "train", seed=0),
        config=hx.FitConfig(steps=2),
        progress=False,
    )
    with pytest.raises(ValueError, match="strategy 'embedding' needs networks that read"):
        hx.transfer(
            plain, _study({"T": 0.3}, 1, "train", seed=1), process="T", strategy="embedding"
        )
