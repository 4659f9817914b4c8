"""Benchmark: the fit's defaults, chosen by measurement (issue 29, item 3).

Each setting of :class:`hybridxfer.FitConfig` that a user leaves at its default (steps,
learning rate, weight decay, early-stopping patience, members) and the choice of what
validates the fit are varied one at a time from today's defaults, on several tasks
that are not one data set:

- ``peer``: the peer task of ``benchmarks/peers.py`` (the built-in CHO model, process
  A's 8 train and 2 valid batches, 10 held-out test batches; Xv, Glc, Lac, P scored);
- each process family of the transfer suite (``benchmarks/families``): its source
  process with 8 train, 2 valid and 6 test batches (drawn with seed 0), the family's
  hybrid model (the one a user would write), its scored variables.

Validation variants: ``valid`` (the default: the 2 valid batches steer early stopping
and the returned step), ``late`` (the valid batches trained on too; the latest 25% of
each batch's points steer, the default when a study has no valid batches) and ``all``
(every batch and point trained on, to the last step: the peer's way). Score: test NRMSE
(RMSE / range of the measured values) of the scored variables, their mean, the fit's
wall time (warm: each task's fit is compiled once first) and steps run.

Rows are appended to ``OUT/defaults.jsonl`` as they end; a rerun skips those done.
``--report-only`` writes ``defaults.json`` and ``.md``: per setting, the ratio of its
test NRMSE (and time) to the default's on the same task and seed, the median over seeds
per task and over tasks; the rule that decides whether a setting replaces a default
(:func:`adopted`), and a leave-one-task-out check of it: its choice on the other tasks,
and how that does on the one left out.

    PYTHONPATH=. python benchmarks/defaults.py [--tasks peer cho_glutamine ...]
        [--seeds 2] [--settings ...] [--out benchmarks/results/defaults] [--report-only]
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import platform
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
    import families
    from peers import VARIABLES, task_studies
except ImportError:  # imported as benchmarks.defaults
    from benchmarks import families
    from benchmarks.peers import VARIABLES, task_studies

DEFAULT = hx.FitConfig()
STOPPED = "every member's step was rejected"
# one change at a time from the defaults, most telling first: (name, config changes,
# validation variant)
SETTINGS = {
    "default": ({}, "valid"),
    "all points, to the end": ({}, "all"),
    "late points steer": ({}, "late"),
    "steps 500": (dict(steps=500), "valid"),
    "steps 3000": (dict(steps=3000), "valid"),
    "no early stop": (dict(patience=10**9), "valid"),
    "patience 100": (dict(patience=100), "valid"),
    "learning rate 3e-3": (dict(learning_rate=3e-3), "valid"),
    "learning rate 3e-2": (dict(learning_rate=3e-2), "valid"),
    "weight decay 0": (dict(weight_decay=0.0), "valid"),
    "weight decay 1e-4": (dict(weight_decay=1e-4), "valid"),
    "members 4": (dict(members=4), "valid"),
}


@functools.cache
def task(name: str) -> tuple[hx.HybridModel, hx.Study, hx.Study, tuple[str, ...]]:
    """(model, fitted study, test study, scored variables) of a task."""
    if name == "peer":
        fitted, test, _ = task_studies()
        return hx.load_model(demo_model_path()), fitted, test, VARIABLES
    fam = families.load(name)
    study = fam.make_family(0, {fam.SOURCE: (8, 2, 6)})
    fitted = study.select(split=["train", "valid"])
    return fam.hybrid_model(), fitted, study.select(split="test"), tuple(fam.SCORED)


def validated(study: hx.Study, variant: str) -> tuple[hx.Study, hx.Validation]:
    """The study as fitted and the validation of a variant (see the module's text)."""
    if variant == "valid":
        return study, hx.Validation()
    batches = study.batches.assign(split="train")
    every = hx.study_from_frames(study.measurements, study.inputs, batches, name=study.name)
    return every, hx.Validation(all_points=variant == "all")


@functools.cache
def warmed(name: str) -> None:
    """Compile a task's fit once per process (a 2-step fit), so that every timed fit
    runs warm (``members 4`` compiles its own step: its time includes that)."""
    model, fitted, _, _ = task(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hx.fit(model, fitted, config=replace(DEFAULT, steps=2), progress=False)


def run_one(name: str, setting: str, seed: int) -> dict:
    warmed(name)
    model, fitted, test, scored = task(name)
    changes, variant = SETTINGS[setting]
    config = replace(DEFAULT, seed=seed, **changes)
    study, validation = validated(fitted, variant)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        fit = hx.fit(model, study, config=config, validation=validation, progress=False)
        seconds = time.perf_counter() - t0
        e = hx.nrmse(hx.predict(fit, test), test.measurements)
    row = dict(task=name, setting=setting, seed=seed, seconds=seconds)
    # a fit that every member's rejected step stopped (it kept its best values so far)
    row["stopped"] = next((str(w.message) for w in caught if STOPPED in str(w.message)), None)
    row["steps_run"] = int(fit.history["step"].max())
    row["nrmse"] = {v: float(e[v]) for v in scored}
    row["mean"] = float(np.mean(list(row["nrmse"].values())))
    return row


def table(rows: list[dict]) -> pd.DataFrame:
    """Per task, setting and seed: the mean test NRMSE and time as ratios to the
    default's on the same task and seed."""
    df = pd.DataFrame(rows)
    base = df[df["setting"] == "default"][["task", "seed", "mean", "seconds"]]
    df = df.merge(base, on=["task", "seed"], suffixes=("", "_default"))
    df["nrmse_ratio"] = df["mean"] / df["mean_default"]
    df["time_ratio"] = df["seconds"] / df["seconds_default"]
    return df


def adopted(nrmse: pd.DataFrame, seconds: pd.DataFrame) -> str:
    """The rule, fixed before the families' rows were seen: a setting replaces the
    default if, over the tasks (columns; per-task medians over seeds of the ratios to
    the default), it is (a) better: median <= 0.97 and no task above 1.05, or (b)
    cheaper: no task above 1.03, median <= 1.00 and median time <= 0.7; the best such
    by median ratio, then time. Only settings measured on every task compete."""
    done = nrmse.dropna().index
    r, t = nrmse.loc[done], seconds.loc[done]
    better = (r.median(axis=1) <= 0.97) & (r.max(axis=1) <= 1.05)
    cheaper = (r.max(axis=1) <= 1.03) & (r.median(axis=1) <= 1.0) & (t.median(axis=1) <= 0.7)
    ok = (better | cheaper) & (r.index != "default")
    if not ok.any():
        return "default"
    keys = pd.DataFrame({"r": r.median(axis=1), "t": t.median(axis=1)})[ok]
    return keys.sort_values(["r", "t"]).index[0]


def leave_one_task_out(nrmse: pd.DataFrame, seconds: pd.DataFrame) -> list[dict]:
    """For each task: the rule's choice (:func:`adopted`) on the *other* tasks, and its
    ratio on the task left out (NaN: not measured there)."""
    out = []
    for left in nrmse.columns:
        pick = adopted(nrmse.drop(columns=left), seconds.drop(columns=left))
        out.append(dict(left_out=left, pick=pick, on_left=nrmse.at[pick, left]))
    return out


def markdown(df: pd.DataFrame, info: dict) -> str:
    def per_task(column):
        wide = df.pivot_table(index="setting", columns="task", values=column, aggfunc="median")
        return wide.reindex([s for s in SETTINGS if s in wide.index])

    nrmse, seconds = per_task("nrmse_ratio"), per_task("time_ratio")
    steps = df.groupby("setting")["steps_run"].median()
    seeds = df.groupby("task")["seed"].nunique()
    tasks = list(nrmse.columns)
    lines = [
        "# The fit's defaults, by measurement",
        "",
        "\n\n".join(__doc__.split("\n\n")[1:4]),
        "",
        f"Machine: {info['machine']}, jax {info['jax']}, {info['date']}. Defaults: steps "
        f"{DEFAULT.steps}, learning rate {DEFAULT.learning_rate:g}, weight decay "
        f"{DEFAULT.weight_decay:g}, patience {DEFAULT.patience}, members {DEFAULT.members}. "
        "Seeds (network initialisation) per task: "
        + ", ".join(f"{t} {seeds[t]}" for t in tasks)
        + ".",
        "",
        "Test NRMSE (mean of the scored variables) / the default's on the same task and "
        "seed, median over seeds; below 1 is better; empty: not run. Time: fit wall time / "
        "the default's, median over the tasks (2 shared cores: +-20%). Steps run: median.",
        "",
        "| setting | " + " | ".join(tasks) + " | median | time | steps run |",
        "|---|" + "---:|" * (len(tasks) + 3),
    ]
    stopped = df.get("stopped", pd.Series(None, index=df.index)).notna()
    marked = set(zip(df.loc[stopped, "setting"], df.loc[stopped, "task"]))

    def cell(s, t, x):
        return "" if np.isnan(x) else f"{x:.2f}" + ("*" if (s, t) in marked else "")

    for s, r in nrmse.iterrows():
        cells = " | ".join(cell(s, t, r[t]) for t in tasks)
        time_ratio = seconds.loc[s].median()
        lines.append(f"| {s} | {cells} | {r.median():.2f} | {time_ratio:.2f} | {steps[s]:.0f} |")
    base = df[df["setting"] == "default"].groupby("task")["mean"].median()
    lines += [
        "",
        "*: a fit stopped by a step that every member rejected (the solve ran out of steps: "
        "the equations turned stiff for the training solver), with its best values so far: "
        + "; ".join(
            f"{r.task} ({r.setting}, seed {r.seed}) at step {r.steps_run}"
            for r in df[stopped].itertuples()
        )
        + "."
        if marked
        else "",
        "",
        "The default's test NRMSE: " + ", ".join(f"{t} {base[t]:.4f}" for t in tasks) + ".",
        "",
        adopted.__doc__.split("\n\n")[0].replace("\n    ", " ")
        + f" On every task: **{adopted(nrmse, seconds)}**.",
        "",
        "Leave one task out: the rule applied to the other tasks, and its choice's ratio on "
        "the task left out.",
        "",
        "| left out | the rule's choice on the others | its ratio on the one left out |",
        "|---|---|---:|",
    ]
    for r in leave_one_task_out(nrmse, seconds):
        on_left = "not run" if np.isnan(r["on_left"]) else f"{r['on_left']:.2f}"
        lines.append(f"| {r['left_out']} | {r['pick']} | {on_left} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["peer", *families.available()[1:]])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/defaults"))
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "defaults.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    done = {(r["task"], r["setting"], r["seed"]) for r in rows}
    if not args.report_only:
        for seed in range(args.seeds):
            for name in args.tasks:
                for setting in args.settings:
                    if (name, setting, seed) in done:
                        continue
                    row = run_one(name, setting, seed)
                    print(f"{name} {setting!r} {seed}: {row['mean']:.4f}, {row['seconds']:.0f} s")
                    with path.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    rows.append(row)
    info = dict(
        machine=f"{platform.platform()}, {jax.device_count()} device(s)",
        jax=jax.__version__,
        date=datetime.datetime.now().isoformat(timespec="seconds"),
    )
    df = table(rows)
    (args.out / "defaults.json").write_text(json.dumps(dict(info=info, rows=rows), indent=1))
    (args.out / "defaults.md").write_text(markdown(df, info))


if __name__ == "__main__":
    main()
