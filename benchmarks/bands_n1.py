"""Benchmark: prediction bands after a transfer from one batch (issue 25).

With one target batch nothing is held out whole: the transfer's band is calibrated on
the late points of that batch alone, which show the error of running on in time, not
how a new batch differs. Per cell (family, target, seed; n = 1, ``auto``), the 95%
state band's coverage of the noise-free truth on the target's test batches (t > 0) and
its mean width over the truth's range, per scored variable, for band half-widths q
(in units of ``|prediction| + floor``, :mod:`hybridxfer._uncertainty.bands`):

- ``current``: q_t, the transfer's own calibration (late points), as before;
- ``source``, ``max``, ``quad``: q_s, the source fit's own held-out batches' q; max(q_t,
  q_s); sqrt(q_t^2 + q_s^2);
- ``none``: q_n, the source as is on the target batch (which it did not train on);
- ``maxn``: max(q_t, q_n), what ``hx.predict`` does now (the transfer keeps ``none``'s
  calibration as ``FitResult.reference_calibration``).

The rule was chosen by a criterion written before three of the four families were run
(``maxn`` adopted if, on those three, the median coverage >= 0.90 and the share of
cell-variables covered >= 0.90 beats ``current``'s). Cells are appended to
``OUT/<family>.jsonl``; a rerun skips those done; ``--report-only`` writes the summary.

    PYTHONPATH=. python benchmarks/bands_n1.py [--families ...] [--seeds 3]
        [--out benchmarks/results/bands_n1] [--report-only]
"""

import argparse
import json
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

import hybridxfer as hx
from hybridxfer._uncertainty.bands import band_widths, held_out_whole

try:
    import families
    import suite
except ImportError:  # imported as benchmarks.bands_n1
    from benchmarks import families, suite

FAMILIES = ("cho_inhouse", "pichia_methanol", "penicillin", "cho_glutamine")
RULES = {  # name: q from the transfer's (t), the source's (s) and none's (n) q
    "current": lambda t, s, n: t,
    "source": lambda t, s, n: s,
    "max": lambda t, s, n: max(t, s),
    "quad": lambda t, s, n: float(np.hypot(t, s)),
    "none": lambda t, s, n: n,
    "maxn": lambda t, s, n: max(t, n),
}
LEVEL = 0.95


def transferred(fam, family, src, target, n, seed, steps):
    """``auto``'s transfer from n of the target's batches (drawn as ``suite.py`` does)
    and its prediction of the target's test batches, with the seconds it took; None
    (said on stdout) where the prediction fails."""
    batches = suite.draw(family, target, seed, n)
    study = family.select(batches=[*family.select(process=fam.SOURCE).batch_names, *batches])
    test = family.select(process=target, split="test")
    config = replace(hx.FitConfig(steps=steps), seed=seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = hx.transfer(src, study, process=target, config=config, progress=False)
        try:
            pred = hx.predict(result.fit, test)
        except hx.SimulationError as e:
            print(fam.NAME, target, n, seed, "failed:", e, flush=True)
            return None
    return result, pred, time.perf_counter() - t0


def cell(fam, family, src, q_source, target, seed, steps) -> dict | None:
    keys = ["batch", "time", "variable"]
    truth = fam.truth_simulation(family, target).rename(columns={"value": "truth"})
    done = transferred(fam, family, src, target, 1, seed, steps)
    if done is None:
        return None
    result, pred, seconds = done
    both = pred.merge(truth[[*keys, "truth"]], on=keys).query("time > 0")
    own = band_widths(result.fit.calibration, LEVEL, "state")
    none = band_widths(result.candidate_fits["none"].calibration, LEVEL, "state")
    row = dict(target=target, seed=seed, seconds=seconds)
    row |= dict(strategy=result.strategy, variables={})
    for v in fam.SCORED:
        part = both[both["variable"] == v]
        value, true = part["value"].to_numpy(float), part["truth"].to_numpy(float)
        scale = np.abs(value) + own.loc[v, "floor"]
        span = max(np.ptp(true), 1e-300)
        q = dict(t=own.loc[v, "q"], s=q_source.get(v, np.nan), n=none["q"].get(v, np.nan))
        out = {k: float(x) for k, x in q.items()}
        for name, rule in RULES.items():
            half = rule(q["t"], q["s"], q["n"]) * scale
            lower, upper = np.maximum(value - half, 0.0), value + half
            inside = (true >= lower) & (true <= upper)
            width = float((upper - lower).mean() / span)
            out[name] = dict(coverage=float(inside.mean()), width=width)
        row["variables"][v] = out
    return row


def run_family(module: str, args) -> None:
    fam = families.load(module)
    family = fam.make_family(0)
    out = args.out / f"{module}.jsonl"
    done = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    keys = {(r["target"], r["seed"]) for r in done}
    src = suite.source_fit(fam, family, args.source_steps)
    whole = src.calibration[src.calibration["batch"].isin(held_out_whole(src.calibration))]
    q_source = band_widths(whole, LEVEL, "state")["q"].to_dict()
    with out.open("a") as f:
        for target in [*fam.RELATED_TARGETS, *fam.UNRELATED_TARGETS]:
            for seed in range(args.seeds):
                if (target, seed) in keys:
                    continue
                row = cell(fam, family, src, q_source, target, seed, args.steps)
                if row is not None:
                    f.write(json.dumps(row) + "\n")
                    f.flush()
                    print(module, target, seed, flush=True)


def summary(rows_by_family: dict[str, list[dict]], unrelated: dict[str, tuple]) -> pd.DataFrame:
    """Per family group, target kind and rule: coverage median, range, share >= 0.90, and
    median width, over cells x scored variables."""
    records = []
    groups = {f: [f] for f in rows_by_family} | {"unseen three": list(FAMILIES[1:])}
    for group, members in groups.items():
        for kind in ("all", "related", "unrelated"):
            cells = [
                r
                for f in members
                for r in rows_by_family.get(f, [])
                if kind == "all" or (r["target"] in unrelated[f]) == (kind == "unrelated")
            ]
            if not cells:
                continue
            each = [v for r in cells for v in r["variables"].values()]  # cell x variable
            for rule in RULES:
                cov = np.array([v[rule]["coverage"] for v in each])
                width = [v[rule]["width"] for v in each]
                records.append(
                    dict(group=group, targets=kind, cells=len(cells), rule=rule)
                    | dict(median=np.median(cov), lowest=cov.min(), highest=cov.max())
                    | dict(share_90=np.mean(cov >= 0.9), width=np.median(width))
                )
    return pd.DataFrame(records)


def markdown_table(table: pd.DataFrame) -> str:
    def cell(x) -> str:
        return f"{x:.2f}" if isinstance(x, float) else str(x)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in table.to_numpy()]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--source-steps", type=int, default=400)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/bands_n1"))
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for module in a.families:
        if not a.report_only:
            run_family(module, a)
    rows = {
        m: [json.loads(line) for line in (a.out / f"{m}.jsonl").read_text().splitlines()]
        for m in FAMILIES
        if (a.out / f"{m}.jsonl").exists()
    }
    unrelated = {m: tuple(families.load(m).UNRELATED_TARGETS) for m in rows}
    table = summary(rows, unrelated)
    (a.out / "summary.json").write_text(table.to_json(orient="records", indent=1))
    text = "\n".join(
        [
            "# Bands after a transfer from one batch\n",
            "\n\n".join(__doc__.split("\n\n")[1:4]) + "\n",
            f"Families {', '.join(rows)}; seeds {a.seeds}; {a.steps} steps; the 95% state "
            "band's coverage of the truth over cells x scored variables.\n",
            markdown_table(table),
        ]
    )
    (a.out / "bands_n1.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
