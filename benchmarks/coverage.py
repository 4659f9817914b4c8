"""Benchmark: do prediction bands mean what they say? Coverage of the true state by
``hx.predict``'s 95% bands on held-out test batches, beside accuracy and band width.

Truth: ``benchmarks/process_family.py``; the fitted model: ``cho_fed_batch.toml``.
(a) a source fit on A (8 train, 2 valid batches), scored on 6 test batches of A;
(b) ``hx.transfer`` (``auto``) from n target batches (drawn per seed, as in
``benchmarks/transfer.py``), scored on each target's 6 test batches. Coverage: the
fraction of test observations (t > 0) whose noise-free truth lies inside the band,
per variable; width: the band's mean width over the truth's range. The band of a new
*measurement* (``cover="measurement"``) is scored against the noisy measurements.

    PYTHONPATH=. python benchmarks/coverage.py [--seeds 5] [--targets B B1 B2 B3 U]
        [--n 2] [--steps 200] [--source-steps 400] [--quick] [--out benchmarks/results]
"""

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pandas as pd

import hybridxfer as hx
from hybridxfer.demo import demo_model_path

try:
    from process_family import PROCESSES, make_family, truth_simulation
    from transfer import draw, subset
except ImportError:  # imported as benchmarks.coverage
    from benchmarks.process_family import PROCESSES, make_family, truth_simulation
    from benchmarks.transfer import draw, subset

VARIABLES = ("Xv", "Glc", "Lac", "P")
SCORED = ("Xv", "P")
LEVEL = 0.95


def coverage(fit: hx.FitResult, family: hx.Study, process: str) -> dict:
    """Per variable: coverage of the truth by the state band, of the measurements by
    the measurement band, the state band's mean width over the truth's range, and
    NRMSE; on the process's test batches at their measurement times."""
    test = family.select(process=process, split="test")
    truth = truth_simulation(family, process).rename(columns={"value": "truth"})
    keys = ["batch", "time", "variable"]
    out = {}
    for cover, against in (("state", truth), ("measurement", test.measurements)):
        pred = hx.predict(fit, test, level=LEVEL, cover=cover)
        ref = against.rename(columns={"value": "truth"})[[*keys, "truth"]]
        both = pred.merge(ref, on=keys).query("time > 0")
        for v in VARIABLES:
            part = both[both["variable"] == v]
            inside = (part["truth"] >= part["lower"]) & (part["truth"] <= part["upper"])
            row = out.setdefault(v, {})
            row[f"coverage_{cover}"] = float(inside.mean())
            if cover == "state":
                span = np.ptp(part["truth"].to_numpy())
                row["width"] = float((part["upper"] - part["lower"]).mean() / span)
                row["nrmse"] = float(np.sqrt(np.mean((part["value"] - part["truth"]) ** 2)) / span)
    return out


def run(args) -> dict:
    counts = {p: (8, 2, 6) if p == "A" else (12, 0, 6) for p in PROCESSES}
    family = make_family(0, counts)
    model = hx.load_model(demo_model_path())
    t0 = time.perf_counter()
    src = hx.fit(
        model,
        family,
        process="A",
        config=hx.FitConfig(steps=args.source_steps, members=2),
        progress=False,
    )
    rows = [dict(case="source fit", target="A", seed=0, n=8, seconds=time.perf_counter() - t0)]
    rows[-1]["variables"] = coverage(src, family, "A")
    print(json.dumps(rows[-1]), flush=True)
    cfg = hx.FitConfig(steps=args.steps)
    for target in args.targets:
        for seed in range(args.seeds):
            study = subset(family, target, draw(family, target, seed, args.n))
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                config = replace(cfg, seed=seed)
                moved = hx.transfer(src, study, process=target, config=config, progress=False)
            seconds = time.perf_counter() - t0
            row = dict(case=f"transfer n={args.n}", target=target, seed=seed, n=args.n)
            row |= dict(seconds=seconds, chosen=moved.strategy)
            row["variables"] = coverage(moved.fit, family, target)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return dict(rows=rows)


def summary(rows: list[dict]) -> pd.DataFrame:
    """Median over seeds per case and target, per variable."""
    flat = [
        dict(case=r["case"], target=r["target"], seed=r["seed"], variable=v) | m
        for r in rows
        for v, m in r["variables"].items()
    ]
    frame = pd.DataFrame(flat)
    return frame.groupby(["case", "target", "variable"], sort=False).median(numeric_only=True)


def markdown(rows: list[dict], info: dict) -> str:
    table = summary(rows).drop(columns="seed").reset_index()
    lines = [
        "# Coverage of prediction bands\n",
        __doc__.split("\n\n")[1].replace("\n", " ") + "\n",
        f"Machine: {info['platform']}, {info['cpu_count']} CPUs, jax {info['jax']}, "
        f"{info['date']}; seeds {info['seeds']}, steps {info['steps']}, source steps "
        f"{info['source_steps']}, level {LEVEL}. Median over seeds.\n",
        "| case | target | variable | coverage of the truth (state band) "
        "| coverage of measurements (measurement band) | width / truth range | NRMSE |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.case} | {r.target} | {r.variable} | {r.coverage_state:.2f} "
            f"| {r.coverage_measurement:.2f} | {r.width:.3f} | {r.nrmse:.3f} |"
        )
    scored = table[table["variable"].isin(SCORED)]
    ok = scored["coverage_state"].between(0.90, 0.98)
    lines += [
        "",
        f"Acceptance (issue 25: 0.90-0.98 for {', '.join(SCORED)} in every case): "
        f"{int(ok.sum())} of {len(ok)} cells inside.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--targets", nargs="+", default=["B", "B1", "B2", "B3", "U"])
    p.add_argument("--n", type=int, default=2, help="target training batches")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--source-steps", type=int, default=400)
    p.add_argument("--quick", action="store_true", help="1 seed, targets B and U, 100 steps")
    p.add_argument("--out", type=Path, help="default benchmarks/results (--quick: a temp folder)")
    a = p.parse_args()
    if a.quick:
        a.seeds, a.targets, a.steps, a.source_steps = 1, ["B", "U"], 60, 100
    a.out = a.out or Path(tempfile.mkdtemp() if a.quick else "benchmarks/results")
    info = dict(platform=platform.platform(), cpu_count=os.cpu_count(), jax=jax.__version__)
    info |= dict(seeds=a.seeds, steps=a.steps, source_steps=a.source_steps, quick=a.quick)
    info["date"] = datetime.datetime.now().isoformat(timespec="seconds")
    result = run(a)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "coverage.json").write_text(json.dumps({"info": info} | result, indent=1))
    text = markdown(result["rows"], info)
    (a.out / "coverage.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
