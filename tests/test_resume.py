"""Issue 3: a fit killed with SIGKILL and restarted with the same command resumes
from its last checkpoint and ends at the same result as an uninterrupted run.

The fit runs in child processes (a script written here): folder A uninterrupted,
folder B killed as soon as its first checkpoint exists, then rerun to completion.
The script prints the step it resumed from (by wrapping the library's checkpoint
loader), so the test sees that the rerun started from the checkpoint, not afresh.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
STEPS = 200  # ~190 steps after the first checkpoint: time enough to kill in between

SCRIPT = '''
"""Tiny fit with checkpoints: python fit_script.py FOLDER STEPS."""
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd

import hybridxfer as hx
from hybridxfer._fit import FitConfig, fit
from hybridxfer._fit import checkpoint

folder, steps = Path(sys.argv[1]), int(sys.argv[2])
load_checkpoint = checkpoint.load


def reporting_load(*args, **kwargs):
    state, step, history = load_checkpoint(*args, **kwargs)
    print(f"resumed from step {step}", flush=True)
    return state, step, history


checkpoint.load = reporting_load

model = hx.HybridModel.build(
    name="resume",
    states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
    inputs=[hx.Input("F", "L/h")],
    constants=[hx.Constant("Sf", "g/L")],
    parameters=[
        hx.Parameter("mu_max", 0.1, "1/h", bounds=(0.01, 1.0)),
        hx.Parameter("K", 1.0, "g/L"),
        hx.Parameter("Y", 0.5, "1"),
    ],
    networks=[hx.Network("g", inputs=("S",), hidden=(4,))],
    rates={"mu": "mu_max * monod(S, K) * g"},
    balances={"X": "mu * X", "S": "-mu / Y * X"},
    reactor=hx.FedBatch(feed_rate="F", feed={"S": "Sf"}),
    key=jax.random.PRNGKey(0),
)
t = np.arange(0.0, 21.0, 2.0)
rows = []
for b, x0, s0, v0 in (("b1", 0.1, 10.0, 1.0), ("b2", 0.2, 8.0, 1.2)):
    X = x0 * np.exp(0.25 * t) / (1 + x0 / 6 * np.expm1(0.25 * t))  # logistic, any shape will do
    S = np.maximum(s0 - 1.6 * (X - x0), 0.2)
    rows += [(b, ti, "X", xi) for ti, xi in zip(t, X)] + [(b, ti, "S", si) for ti, si in zip(t, S)]
    rows.append((b, 0.0, "V", v0))
cols = ["batch", "time", "variable", "value"]
inputs = [("b1", 0.0, "F", 0.0), ("b1", 10.0, "F", 0.02), ("b2", 0.0, "F", 0.01)]
study = hx.study_from_frames(
    pd.DataFrame(rows, columns=cols),
    pd.DataFrame(inputs, columns=cols),
    pd.DataFrame({"batch": ["b1", "b2"], "process": "p", "split": "train", "Sf": [50.0, 40.0]}),
)
config = FitConfig(
    steps=steps, checkpoint_every=10, patience=10_000, warmup=5, learning_rate=0.05
)
res = fit(model, study, config=config, checkpoint=folder, progress=False)
leaves = [np.ravel(x) for x in jax.tree.leaves(res.model) if isinstance(x, jax.Array)]
np.save(folder / "final.npy", np.concatenate(leaves))
res.history.to_csv(folder / "history.csv", index=False)
print("done", flush=True)
'''


def command(script: Path, folder: Path) -> list[str]:
    return [sys.executable, str(script), str(folder), str(STEPS)]


def env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def checkpoint_step(folder: Path) -> int:
    """Last step in the checkpoint's history (state.json is written before state.eqx)."""
    return max(h[0] for h in json.loads((folder / "state.json").read_text())["history"])


def test_killed_fit_resumes_to_the_same_result(tmp_path):
    script = tmp_path / "fit_script.py"
    script.write_text(SCRIPT)
    a, b = tmp_path / "A", tmp_path / "B"
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    whole = subprocess.Popen(command(script, a), **pipes)  # runs alongside B
    killed = subprocess.Popen(command(script, b), **pipes)
    try:
        deadline = time.monotonic() + 120
        while killed.poll() is None and time.monotonic() < deadline:
            if (b / "state.eqx").exists():
                killed.kill()  # SIGKILL
                break
            time.sleep(0.002)
        _, err = killed.communicate(timeout=30)
        assert killed.returncode == -signal.SIGKILL, f"not killed mid-fit:\n{err[-2000:]}"
        assert not (b / "final.npy").exists()
        at_kill = checkpoint_step(b)
        assert 0 < at_kill < STEPS

        rerun = subprocess.run(command(script, b), timeout=180, **pipes)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        out, err = whole.communicate(timeout=180)
        assert whole.returncode == 0, err[-2000:]
    finally:
        for proc in (whole, killed):
            if proc.poll() is None:
                proc.kill()

    assert out.split() == ["done"]  # A never resumed
    first, last = rerun.stdout.splitlines()
    start = int(first.removeprefix("resumed from step "))
    assert 0 < start <= at_kill and start % 10 == 0 and last == "done"

    final_a, final_b = np.load(a / "final.npy"), np.load(b / "final.npy")
    assert final_a.size > 3  # mechanistic parameters and network weights
    np.testing.assert_array_equal(final_b, final_a)
    hist_a, hist_b = pd.read_csv(a / "history.csv"), pd.read_csv(b / "history.csv")
    assert len(hist_a) == STEPS
    pd.testing.assert_frame_equal(hist_b, hist_a, check_exact=True)
