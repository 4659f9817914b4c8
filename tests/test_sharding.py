"""Many batches over many devices (hybridxfer._solve.sharding): a solve of batch arrays
split over 2 host devices equals the solve on one device, and so does hx.simulate,
which shards its batches itself; with one device nothing changes.

"Equal" is to 1e-12 of each variable's largest value in the solve: XLA vectorises a
device's rows together, and a different number of rows per device rounds differently
(on one device, the same batches solved in a bucket of 2 and of 4 differ by ~1e-12
relative too); the adaptive steps carry that rounding along."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from hybridxfer._solve.sharding import shard_batches

ROOT = Path(__file__).parent.parent

SCRIPT = """
import json
import jax
import numpy as np
import hybridxfer as hx
import hybridxfer.arrays as hxa
from hybridxfer._solve.sharding import shard_batches
from hybridxfer.demo import demo_model_path, demo_study

model, study = hx.load_model(demo_model_path()), demo_study()
out = {"devices": len(jax.local_devices())}
for n in (1, 3):  # buckets 1 (padded to 2) and 4
    data = hxa.batch_data(model, study.select(batches=list(study.batch_names[:n])))
    ys, ok = hxa.solve(model, data)
    sharded = shard_batches(data)
    ys2, ok2 = hxa.solve(model, sharded)
    rows = data.times.shape[0]
    a, b = np.asarray(ys)[:n], np.asarray(ys2)[:n]
    out[n] = dict(
        rows=rows,
        sharded_rows=sharded.times.shape[0],
        padding_masked=bool(not np.asarray(sharded.mask)[rows:].any()),
        data_devices=len(sharded.times.sharding.device_set),
        out_devices=len(ys2.sharding.device_set),
        ok=bool(np.asarray(ok)[:n].all() and np.asarray(ok2)[:n].all()),
        rel=float(np.max(np.abs(b - a) / np.abs(a).max(axis=(0, 1)))),
        finite=bool(np.isfinite(a).all()),
    )
# hx.simulate shards its batches itself (3 batches: a bucket of 4, 2 per device); the
# reference: the same arrays solved on the first device alone
import importlib
sim = importlib.import_module("hybridxfer._solve.simulate")  # the module, not the function
seen = []  # the devices simulate's solve ran on (the real solve, watched)
solve = sim.solve
sim.solve = lambda m, data, s: seen.append(len(data.times.sharding.device_set)) or solve(m, data, s)
three = study.select(batches=list(study.batch_names[:3]))
df = hx.simulate(model, three)
one = jax.device_put(hxa.batch_data(model, three), jax.local_devices()[0])
ys = np.asarray(hxa.solve(model, one)[0])[:3]
ref = sim.to_frame(ys, one, three.batch_names, model.variable_names)
scale = df.assign(a=df["value"].abs()).groupby("variable")["a"].transform("max")
out["simulate"] = dict(
    devices=seen,
    same_rows=bool(df[["batch", "time", "variable"]].equals(ref[["batch", "time", "variable"]])),
    rel=float(np.max(np.abs(df["value"] - ref["value"]) / scale)),
)
print(json.dumps(out))
"""


def test_a_solve_over_two_host_devices_equals_one_device():
    env = os.environ | {
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2
    for n, rows in (("1", 1), ("3", 4)):
        r = out[n]
        assert r["ok"] and r["finite"]
        assert r["rows"] == rows and r["sharded_rows"] == max(rows, 2)
        assert r["padding_masked"]
        assert r["data_devices"] == 2 and r["out_devices"] == 2
        assert r["rel"] <= 1e-12, (n, r["rel"])
    assert out["simulate"]["devices"] == [2] and out["simulate"]["same_rows"]
    assert out["simulate"]["rel"] <= 1e-12, out["simulate"]


def test_one_device_leaves_the_arrays_as_they_are():
    import hybridxfer as hx
    import hybridxfer.arrays as hxa
    from hybridxfer.demo import demo_model_path, demo_study

    assert len(jax.local_devices()) == 1
    study = demo_study()
    data = hxa.batch_data(hx.load_model(demo_model_path()), study.select(process="B"))
    assert shard_batches(data) is data
    assert np.asarray(data.mask).any()
