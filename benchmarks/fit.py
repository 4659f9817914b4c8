"""Benchmark: wall time to fit the built-in CHO model to 16 batches x 14 days.

Model ``hybridxfer/data/cho_fed_batch.toml``: Xv, Glc, Lac, P and V, networks growth
and production (2x16 each). Data: process A of the built-in study and of
``generate_demo_study(1)``; 12 train + 4 valid batches are fitted (16 solved per
step, one shape bucket) and 8 test batches predicted. The fit runs in a fresh Python
process, so tracing and compilation are counted, then again, warm (the first step's
compile is the difference); that process then times the warm forward solve and the
warm gradient of the objective side by side, at the declared and the fitted values,
with the library's adjoint and with diffrax's default ``RecursiveCheckpointAdjoint()``
(a Solver subclass: the public way to choose an adjoint).

    PYTHONPATH=. python benchmarks/fit.py [--steps N] [--out benchmarks/results]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import hybridxfer as hx
from hybridxfer._fit.objective import Trainable, objective, variable_scales
from hybridxfer._solve import solve_batches
from hybridxfer.arrays import batch_data
from hybridxfer.demo import demo_model_path, demo_study, generate_demo_study

TARGET_TOTAL, TARGET_RATIO = 60.0, 4.0
VARIABLES = ["Xv", "Glc", "Lac", "P"]
ADJOINTS = {
    "library": "library: `RecursiveCheckpointAdjoint(checkpoints=min(max_steps, 128))`",
    "default": "diffrax default: `RecursiveCheckpointAdjoint()`",
}
SOLVER_FIELDS = ("solver", "rtol", "atol", "max_steps", "forward_mode")


def make_study() -> hx.Study:
    """Process A of two generated studies: 12 train, 4 valid, 8 test batches."""
    parts = []
    for tag, study in (("s0", demo_study()), ("s1", generate_demo_study(1))):
        a = study.select(process="A")
        parts.append([t.assign(batch=tag + t["batch"]) for t in (a.measurements, a.inputs)])
        parts[-1].append(a.batches.assign(batch=tag + a.batches["batch"]))
    meas, inputs, batches = (pd.concat(t, ignore_index=True) for t in zip(*parts))
    to_test = batches["batch"].str.endswith(("A07", "A08"))  # train batches
    batches.loc[to_test, "split"] = "test"  # 2 x (6 train, 2 valid, 4 test)
    return hx.study_from_frames(meas, inputs, batches, name="fit-benchmark")


def timed(f, *args):
    t0 = time.perf_counter()
    out = jax.block_until_ready(f(*args))
    return time.perf_counter() - t0, out


def objective_inputs(model, study: hx.Study):
    """What the fit's objective sees: batch arrays, scales, train/valid weights (2, B, M)."""
    study = study.select(split=["train", "valid"])
    data = batch_data(model, study)
    split = np.full(data.mask.shape[0], "", dtype=object)  # padding rows: no split
    split[: len(study.batch_names)] = study.batches["split"]
    mask = np.asarray(data.mask)
    weights = np.stack([mask & (split == s)[:, None] for s in ("train", "valid")])
    return data, variable_scales(data, jnp.asarray(weights[0])), jnp.asarray(weights, float)


def forward_and_gradient(model, params, inputs, solver, config, repeats: int) -> dict:
    """Warm forward solve of `model` and warm gradient of the objective at `params`
    (the same point) with `solver`, each freshly jitted, timed alternately; medians."""
    data, scales, weights = inputs
    likelihood, decay = config.likelihood, config.weight_decay

    def loss(p):
        return objective(p, data, scales, weights, solver, likelihood, decay)[0][0]

    forward = eqx.filter_jit(solve_batches)  # = hx.arrays.solve, with a fresh cache
    grad = eqx.filter_jit(eqx.filter_grad(loss))
    timed(forward, model, data, solver), timed(grad, params)  # compile
    runs = [
        (timed(forward, model, data, solver)[0], timed(grad, params)[0]) for _ in range(repeats)
    ]
    t_fwd, t_grad = (statistics.median(t) for t in zip(*runs))
    return {"forward_s": t_fwd, "gradient_s": t_grad, "ratio": t_grad / t_fwd}


class DiffraxDefaultAdjoint(hx.Solver):
    """The library's solver settings with diffrax's default adjoint,
    ``RecursiveCheckpointAdjoint()`` (checkpoints chosen from max_steps)."""

    def adjoint(self) -> diffrax.AbstractAdjoint:
        return diffrax.RecursiveCheckpointAdjoint()


def trainable(model: hx.HybridModel, data) -> Trainable:
    """`model`'s values as the objective's argument (one process, no batch deviations)."""
    return Trainable(
        model,
        np.asarray(model.free)[None],
        np.zeros(data.initial.shape),
        np.zeros(len(model.variable_names)),
        np.zeros((data.mask.shape[0], model.free.shape[0])),
    )


def child(folder: Path, steps: int, repeats: int) -> dict:
    """Runs in a fresh process: the fit twice (cold: compiles; warm: the same fit with
    every program compiled), then the side-by-side timings. The first step's trace and
    compile is the cold fit's time less the warm one's, plus one warm step."""
    study, model = hx.read_study(folder), hx.load_model(demo_model_path())
    config = hx.FitConfig(steps=steps)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        res = hx.fit(model, study, config=config, progress=False)
        times.append(time.perf_counter() - t0)
    t_fit, t_warm = times
    n = int(res.history["step"].max())
    out = {"fit_s": t_fit, "steps": n, "step_s": t_warm / n}
    out["first_step_s"] = t_fit - t_warm + out["step_s"]
    valid = res.history.groupby("step")["valid"].min()
    out["best_step"] = int(valid.idxmin())
    for split in ("valid", "test"):
        part = study.select(split=split)
        score = hx.nrmse(hx.simulate(res.model, part), part.measurements)[VARIABLES]
        out[f"{split}_nrmse"] = {k: float(v) for k, v in score.items()}
    inputs = objective_inputs(model, study)
    points = {"declared": model, "fitted": res.model}
    for adjoint in ADJOINTS:
        solver = config.solver
        if adjoint == "default":
            solver = DiffraxDefaultAdjoint(**{k: getattr(solver, k) for k in SOLVER_FIELDS})
        for point, m in points.items():
            params = trainable(m, inputs[0])
            out[f"{adjoint}_{point}"] = forward_and_gradient(
                m, params, inputs, solver, config, repeats
            )
    return out


def markdown(r: dict, info: dict) -> str:
    ok = {True: "PASS", False: "FAIL"}
    ms = lambda s: f"{1e3 * s:.1f}"  # noqa: E731
    ratio = max(r["library_declared"]["ratio"], r["library_fitted"]["ratio"])
    total = r["fit_s"]
    lines = [
        f"Machine: {info['platform']}, {info['cpu_count']} CPUs (shared, noisy), "
        f"jax {info['jax']}, diffrax {info['diffrax']}, {info['date']}. Model "
        "`cho_fed_batch.toml` (5 states, two 2x16 networks); 16 batches x 14 days fitted "
        f"(12 train + 4 valid), 8 test; FitConfig defaults but steps={info['steps']}. "
        f"Warm times: median of {info['repeats']}.\n",
        "| fit wall time, compile included [s] | steps run (best on valid) "
        "| first step: trace + compile [s] | per gradient step, warm fit's mean [ms] |",
        "|---:|---:|---:|---:|",
        f"| {total:.1f} | {r['steps']} ({r['best_step']}) | {r['first_step_s']:.1f} "
        f"| {ms(r['step_s'])} |",
        "\n| adjoint | parameters | forward solve [ms] | gradient of objective [ms] "
        "| gradient / forward |",
        "|---|---|---:|---:|---:|",
    ]
    for adjoint, label in ADJOINTS.items():
        for point in ("declared", "fitted"):
            m = r[f"{adjoint}_{point}"]
            lines.append(
                f"| {label} | {point} | {ms(m['forward_s'])} | {ms(m['gradient_s'])} "
                f"| {m['ratio']:.1f}x |"
            )
    lines += [
        "\nNRMSE: `hybridxfer.nrmse` (RMSE / range of the measured values) of the "
        "fitted model predicting each batch from its t=0 values, inputs and constants.\n",
        "| NRMSE | " + " | ".join(VARIABLES) + " |",
        "|---" + "|---:" * len(VARIABLES) + "|",
    ]
    for split in ("valid", "test"):
        s = r[f"{split}_nrmse"]
        lines.append(f"| {split} | " + " | ".join(f"{s[v]:.3f}" for v in VARIABLES) + " |")
    lines += [
        "\n| target | measured | pass |\n|---|---:|:---:|",
        f"| fit wall time < {TARGET_TOTAL:.0f} s | {total:.1f} s | {ok[total < TARGET_TOTAL]} |",
        f"| gradient < {TARGET_RATIO:.0f}x forward (library adjoint, worse point) | {ratio:.1f}x "
        f"| {ok[ratio < TARGET_RATIO]} |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)  # as the demo; FitConfig: 1500
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # study folder
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.repeats)))
        return
    with tempfile.TemporaryDirectory() as folder:
        hx.write_study(make_study(), Path(folder))
        cmd = [sys.executable, __file__, "--child", folder, "--steps", str(args.steps)]
        cmd += ["--repeats", str(args.repeats)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"the fit process failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.splitlines()[-1])
    info = dict(platform=platform.platform(), cpu_count=os.cpu_count(), repeats=args.repeats)
    info.update(python=platform.python_version(), jax=jax.__version__, diffrax=diffrax.__version__)
    info.update(steps=args.steps, load_average=os.getloadavg())
    info["date"] = datetime.datetime.now().isoformat(timespec="seconds")
    table = markdown(result, info)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fit.json").write_text(json.dumps({"info": info, "result": result}, indent=2))
    (args.out / "fit.md").write_text("# hybridxfer fit benchmark\n\n" + table)


if __name__ == "__main__":
    main()
