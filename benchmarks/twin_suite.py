"""Benchmark: the digital twin's bands on the transfer suite's families (issue 25's
case c, on families the twin was not developed on).

The twin of ``benchmarks/twin.py`` was built and measured on the in-house family
only. Here each family of ``benchmarks/families`` (none of them in-house) gives its
source fit (``suite.source_fit``: 2 members, early stopping), run *as it is* on each
related target and the unrelated one: the twin of a related process, made from the
fit (``hx.DigitalTwin.from_fit``, the defaults of ``hybridxfer twin``). The families
have no online signals, so the twin is fed what every process has: the inputs (feed,
temperature...) as they change, and the offline samples of every measured variable
(the family's own noisy test measurements, sd ``NOISE`` x value, at least ``NOISE`` x
1% of the variable's largest source value), each arriving a quarter of the sampling
interval late. Between samples the twin predicts; it is read every 1/24 of the
sampling interval (hourly for daily samples).

Twins: *from_fit* (the library's default, which estimates each reaction term's
relative error along, ``rate_sd`` 0.1) and *no rate gains* (``rate_sd=0``, the twin
before 2026-12-07). Score, per test batch (6 per target) and scored variable (cells
and product): the 95% band's coverage of the noise-free truth on that grid (t > 0),
its mean width over the truth's range, and the NRMSE of the real-time estimate (its
mean, as known then) beside open loop (``hx.simulate`` from t = 0). Medians over the
test batches per target; the family's line pools its related targets (median over
targets).

    PYTHONPATH=.:benchmarks python benchmarks/twin_suite.py [--families ...]
        [--source-steps 200] [--transfer N] [--cache DIR]
        [--out benchmarks/results/twin_suite]

``--transfer N`` also runs the twins of the source transferred to each target with N
batches (``auto``; issue 25's case d); ``--cache DIR`` keeps the source fits.

A family's rows go to ``OUT/<family>.json`` after each target (a rerun skips the
target and model pairs already there, so ``--transfer N`` adds its rows to a finished
run); the Markdown table (``OUT/twin_suite.md``) is built from every file there.
"""

import argparse
import datetime
import itertools
import json
import os
import platform
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pandas as pd

import hybridxfer as hx

try:
    import families
    import suite
except ImportError:  # imported as benchmarks.twin_suite
    from benchmarks import families, suite

LATE = 0.25  # a sample arrives this fraction of the sampling interval after it is taken
READS = 24  # estimates read per sampling interval
SD_FLOOR = 0.01  # of the variable's largest source value: a sample's least sd, x NOISE
VARIANTS = {"from_fit": {}, "no rate gains": dict(rate_sd=0.0)}  # twin options


def grid_of(family: hx.Study) -> tuple[float, np.ndarray]:
    """The sampling interval and the reading grid (0 to the last sample)."""
    times = np.unique(family.measurements["time"])
    interval = float(np.median(np.diff(times)))
    return interval, np.arange(0.0, times.max() + interval / (2 * READS), interval / READS)


def truth_on(fam, family: hx.Study, target: str, grid: np.ndarray) -> pd.DataFrame:
    """The truth's noise-free values of the target's test batches on the grid."""
    part = family.select(process=target, split="test")
    batches = part.batches.assign(**(fam.PROCESSES[target] or {}))
    study = hx.Study(part.measurements, part.inputs, batches)
    solver = getattr(fam, "TRUTH_SOLVER", hx.Solver())
    times = {b: grid for b in part.batch_names}
    return hx.simulate(fam.truth_model(target), study, times=times, solver=solver)


def run_twin(
    fit, family: hx.Study, batch: str, interval: float, grid, sd_of, **twin
) -> pd.DataFrame:
    """The twin's real-time estimate of one batch, read on the grid (long: time,
    variable, mean, sd, lower95, upper95). `sd_of(variable, value)`: a sample's sd."""
    model = fit.model
    meas = family.measurements[family.measurements["batch"] == batch]
    inputs = family.inputs[family.inputs["batch"] == batch]
    row = family.batches.set_index("batch").loc[batch]
    pairs = lambda rows: dict(zip(rows["variable"], rows["value"]))  # noqa: E731
    at0, in0 = pairs(meas[meas["time"] == 0]), pairs(inputs[inputs["time"] == 0])
    twin = hx.DigitalTwin.from_fit(
        fit,
        initial={v: x for v, x in at0.items() if v in model.state_names},
        inputs={v: x for v, x in in0.items() if v in model.input_names},
        constants={c: float(row[c]) for c in model.constant_names},
        **twin,
    )
    if events := {v: x for v, x in in0.items() if v in model.event_names}:
        twin.update(0.0, events)
    arrivals: dict[float, list] = {}
    samples = meas[(meas["time"] > 0) & meas["variable"].isin(model.variable_names)]
    for t, rows in samples.groupby("time"):
        values = pairs(rows)
        sd = {v: sd_of(v, x) for v, x in values.items()}
        arrivals.setdefault(min(t + LATE * interval, grid[-1]), []).append((t, values, sd))
    later = inputs[inputs["time"] > 0]
    out = []
    for t in np.union1d(grid[1:], np.union1d(later["time"], list(arrivals))):
        twin.update(float(t), pairs(later[later["time"] == t]))
        for taken, values, sd in arrivals.get(t, []):
            twin.update(float(t), values, sd=sd, sample_time=float(taken))
        if np.isclose(grid, t).any():
            out.append(twin.estimate())
    return pd.concat(out, ignore_index=True)


def scores(estimate: pd.DataFrame, open_loop: pd.DataFrame, truth: pd.DataFrame, scored):
    """Per scored variable: the band's coverage of the truth and its width over the
    truth's range, the estimate's NRMSE and open loop's (all on the grid, t > 0)."""
    out = {}
    for v in scored:
        t = truth[(truth["variable"] == v) & (truth["time"] > 0)].set_index("time")["value"]
        span = max(np.ptp(t.to_numpy()), 1e-300)
        e = estimate[estimate["variable"] == v].set_index("time").reindex(t.index)
        o = open_loop[open_loop["variable"] == v].set_index("time")["value"].reindex(t.index)
        if e["mean"].isna().any() or o.isna().any():
            raise RuntimeError(f"{v}: the estimate or open loop misses grid times")
        inside = (e["lower95"] <= t) & (t <= e["upper95"])
        out[v] = dict(
            coverage=float(inside.mean()),
            width=float((e["upper95"] - e["lower95"]).mean() / span),
            nrmse=float(np.sqrt(np.mean((e["mean"] - t) ** 2)) / span),
            open_loop=float(np.sqrt(np.mean((o - t) ** 2)) / span),
        )
    return out


def source_fit(fam, family: hx.Study, steps: int, cache: Path | None) -> hx.FitResult:
    """``suite.source_fit``, kept in (and read back from) `cache` if given."""
    path = cache / f"{fam.NAME}-{steps}" if cache else None
    if path and path.exists():
        return hx.load_fit(path)
    start = time.perf_counter()
    src = suite.source_fit(fam, family, steps)
    print(f"{fam.NAME}: source fit {time.perf_counter() - start:.0f} s", flush=True)
    if path:
        hx.save_fit(src, path)
    return src


def run_family(
    module: str, steps: int, transfer_n: int, cache: Path | None, path: Path, info: dict
) -> None:
    """Every target's test batches, with the source fit as it is and (if `transfer_n`)
    transferred to the target with that many batches (``auto``, seed 0's draw); each
    with the twin of :data:`VARIANTS`. The rows go to `path` after each target; the
    (target, model) pairs already there are skipped."""
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    done = {(r["target"], r["model"]) for r in rows}
    fam = families.load(module)
    family = fam.make_family(0)
    src = source_fit(fam, family, steps, cache)
    interval, grid = grid_of(family)
    source = family.select(process=fam.SOURCE)
    largest = source.measurements.groupby("variable")["value"].max()
    sd_of = lambda v, x: max(fam.NOISE * abs(x), fam.NOISE * SD_FLOOR * largest[v])  # noqa: E731
    moved_name = f"transferred (n = {transfer_n})"
    for target in (*fam.RELATED_TARGETS, *fam.UNRELATED_TARGETS):
        fits = {"source": src} if (target, "source") not in done else {}
        if transfer_n and (target, moved_name) not in done:
            start = time.perf_counter()
            batches = suite.draw(family, target, 0, transfer_n)
            study = family.select(batches=[*source.batch_names, *batches])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                moved = hx.transfer(src, study, process=target, progress=False)
            fits[moved_name] = moved.fit
            print(f"  {target}: transfer {time.perf_counter() - start:.0f} s", flush=True)
        if not fits:
            continue
        truth = truth_on(fam, family, target, grid)
        test = family.select(process=target, split="test")
        for name, fit in fits.items():
            start = time.perf_counter()
            times = {b: grid for b in test.batch_names}
            open_loop = hx.simulate(fit.model, test, times=times)
            for (twin, options), b in itertools.product(VARIANTS.items(), test.batch_names):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", hx.TwinWarning)  # its NIS: scored here
                    estimate = run_twin(fit, family, b, interval, grid, sd_of, **options)
                ol, tr = (f[f["batch"] == b] for f in (open_loop, truth))
                rows.append(
                    dict(family=module, target=target, model=name, twin=twin, batch=b)
                    | scores(estimate, ol, tr, fam.SCORED)
                )
            print(f"  {target} {name}: {time.perf_counter() - start:.0f} s", flush=True)
        path.write_text(json.dumps(dict(info=info, rows=rows), indent=1))


def table(rows: list[dict]) -> pd.DataFrame:
    """Medians over test batches per family, target, model and scored variable."""
    long = [
        dict(family=r["family"], target=r["target"], model=r["model"], twin=r["twin"])
        | dict(variable=v)
        | s
        for r in rows
        for v, s in r.items()
        if isinstance(s, dict)
    ]
    keys = ["family", "target", "model", "twin", "variable"]
    return pd.DataFrame(long).groupby(keys, sort=False).median().reset_index()


def markdown(per: pd.DataFrame, info: dict) -> str:
    fams = {m: families.load(m) for m in per["family"].unique()}
    related = per[[t in fams[f].RELATED_TARGETS for f, t in zip(per["family"], per["target"])]]
    keys = ["family", "model", "twin", "variable"]
    pooled = related.groupby(keys, sort=False).median(numeric_only=True)
    line = "| {} | {} | {} | {} | {:.2f} | {:.2f} | {:.3f} | {:.3f} |"
    md = [
        "# The twin's bands on the suite's families (issue 25, case c)",
        "",
        *(p.replace("\n", " ") + "\n" for p in (__doc__ or "").split("\n\n")[1:3]),
        f"Machine: {info['machine']}, {info['cpus']} CPUs, jax {info['jax']}, "
        f"{info['date']}; source fits {info['steps']} steps.",
        "",
        "## Summary: related targets, every family (target x variable, medians over test batches)",
        "",
        "| model | twin | cases | median coverage | inside 0.90-0.98 | at or above 0.90 "
        "| median width | median NRMSE twin / open loop |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {m} | {w} | {len(g)} | {g['coverage'].median():.2f} "
            f"| {g['coverage'].between(0.90, 0.98).mean():.0%} "
            f"| {(g['coverage'] >= 0.90).mean():.0%} | {g['width'].median():.2f} "
            f"| {(g['nrmse'] / g['open_loop']).median():.2f} |"
            for (m, w), g in related.groupby(["model", "twin"], sort=False)
        ),
        "",
        "## Related targets pooled (median over targets of the median over test batches)",
        "",
        "| family | model | twin | variable | coverage | width | NRMSE twin | NRMSE open loop |",
        "|---|---|---|---|---:|---:|---:|---:|",
        *(
            line.format(f, m, w, v, r["coverage"], r["width"], r["nrmse"], r["open_loop"])
            for (f, m, w, v), r in pooled.iterrows()
        ),
        "",
        "## Per target",
        "",
        "| family | target | model | twin | variable | coverage | width | NRMSE twin "
        "| NRMSE open loop |",
        "|---|---|---|---|---|---:|---:|---:|---:|",
        *(
            f"| {r.family} | {r.target} | {r.model} | {r.twin} | {r.variable} "
            f"| {r.coverage:.2f} "
            f"| {r.width:.2f} | {r.nrmse:.3f} | {r.open_loop:.3f} |"
            for r in per.itertuples()
        ),
        "",
    ]
    return "\n".join(md)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", default=None, help="default: every suite family")
    p.add_argument("--source-steps", type=int, default=200)
    p.add_argument("--transfer", type=int, default=0, help="also transferred with n batches")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/twin_suite"))
    p.add_argument("--cache", type=Path, default=None, help="keep the source fits here")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    info = dict(
        machine=platform.platform(),
        cpus=os.cpu_count(),
        jax=jax.__version__,
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        steps=args.source_steps,
    )
    for module in args.families or [m for m in families.available() if m != "cho_inhouse"]:
        run_family(
            module, args.source_steps, args.transfer, args.cache, args.out / f"{module}.json", info
        )
    rows = [r for f in sorted(args.out.glob("*.json")) for r in json.loads(f.read_text())["rows"]]
    (args.out / "twin_suite.md").write_text(markdown(table(rows), info))
    print((args.out / "twin_suite.md").read_text())


if __name__ == "__main__":
    main()
