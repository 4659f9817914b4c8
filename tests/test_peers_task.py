"""The peer benchmark's task (benchmarks/peers.py): the port is the same problem, and
the hybridxfer side runs.

The port's equations, integrated by scipy's ``solve_ivp`` (DOP853 at rtol 1e-11,
sample withdrawals between segments), reproduce hybridxfer's simulation of the
built-in CHO model at the same values, and so does the peer's own prediction of the
port (when jax-hybridmodels is installed)."""

import importlib.util

import jax
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import hybridxfer as hx
from benchmarks import peers
from hybridxfer.demo import demo_model_path

TIGHT = hx.Solver(rtol=1e-10, atol=1e-12, max_steps=100_000)


@pytest.fixture(scope="module")
def task():
    fit_study, test, _ = peers.task_studies()
    model = hx.load_model(demo_model_path())
    start = peers.start_model(model, fit_study, seed=0)
    two = test.select(batches=test.batch_names[:2])
    return start, two, hx.simulate(start, two, solver=TIGHT)


def scipy_port(port: peers.CHOPort, study: hx.Study) -> dict[str, np.ndarray]:
    """Each batch's [Xv, Glc, Lac, P, V] at its sampling times by solve_ivp."""
    covs = peers.port_inputs(study)
    out = {}
    for b in study.batch_names:
        cov = {k: np.asarray(v) for k, v in covs[b].items()}
        m = study.measurements[study.measurements["batch"] == b]
        at0 = m[m["time"] == 0].set_index("variable")["value"]
        y = np.array([at0["Xv"], at0["Glc"], at0["Lac"], 0.0, at0["V"]])
        ts = np.unique(m["time"])
        field = jax.jit(peers.port_field(port, cov))
        ys = [y]
        for t0, t1 in zip(ts[:-1], ts[1:]):
            sol = solve_ivp(
                lambda t, y, f=field, t1=t1: np.asarray(f(t, y, t1)),
                (t0, t1),
                y,
                method="DOP853",
                rtol=1e-11,
                atol=1e-12,
            )
            y = sol.y[:, -1].copy()
            ys.append(y.copy())
            y[4] -= cov["Vs_v"][cov["Vs_t"] == t1].sum()
        out[b] = (ts, np.array(ys))
    return out


def test_port_is_the_same_model(task):
    start, study, reference = task
    by_scipy = scipy_port(peers.port_from_model(start, peer=False), study)
    names = hx.load_model(demo_model_path()).variable_names
    for b, (ts, ys) in by_scipy.items():
        ref = reference[reference["batch"] == b].pivot(index="time", columns="variable")
        expected = ref["value"].loc[ts, list(names)].to_numpy()
        np.testing.assert_allclose(ys, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.skipif(
    importlib.util.find_spec("jaxhybridmodels") is None, reason="jax-hybridmodels not installed"
)
def test_peer_predicts_what_hybridxfer_simulates(task):
    start, study, reference = task
    frame = peers.peer_frame(
        peers.port_from_model(start), peers.peer_dataset(study), study, peers.peer_solver(TIGHT)
    )
    both = reference.merge(frame, on=["batch", "time", "variable"], suffixes=("", "_peer"))
    measured = (study.measurements["variable"] != "V").sum()  # every Xv, Glc, Lac, P
    assert len(both) == len(frame) == measured
    np.testing.assert_allclose(both["value_peer"], both["value"], rtol=1e-6)


def test_hybridxfer_side_runs(task):
    """The hybridxfer side of the task, 3 steps: every figure is measured, the step
    clock counts the steps, and the test NRMSE is finite."""
    from hybridxfer._fit import engine

    bar = engine.tqdm
    out = peers.child("hybridxfer", seed=0, steps=3, repeats=1)
    assert engine.tqdm is bar  # the step clock is taken out again
    assert out["steps"] == 3
    assert 0 < out["step_s"] < out["first_step_s"] < out["fit_s"]
    assert all(np.isfinite(v) and 0 < v < 1 for v in out["test_nrmse"].values())
    assert out["forward_frame_s"] > 0 and out["peak_rss_mb"] > 100
