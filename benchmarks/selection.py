"""Benchmark: rules that turn auto's candidates into one prediction, chosen by
leave-one-family-out on the transfer suite's records (``benchmarks/suite.py``).

Each suite cell keeps every candidate's validation score (the relative loss auto ranks
by), how many values it trains, its test NRMSE and its test predictions. So a rule can
be scored on every cell without training again:

- ``pick(t)``: the candidate that trains the fewest values among those within a
  factor (1 + t) of the best validation score (``auto``'s rule is t = 0.2);
- ``average(b)``: the candidates' predictions averaged with weights
  ``validation ** -b`` (b large: the best alone);
- ``top(k)``: the plain average of the k best by validation;
- ``pair(w)``: ``pick(0.2)``'s candidate (auto's choice) averaged with ``scratch``,
  weights w and 1 - w. Added on 2026-12-06 after seeing the cho_glutamine and
  penicillin cells (median / worst vs min(none, scratch): 0.78 / 1.00 and 0.95 / 1.29
  against pick's 0.98 / 1.09 and 0.99 / 1.90), with w = 0.5 fixed before the ecoli and
  pichia cells existed: those two families are its held-out test. It failed the
  first: on ecoli_overflow B1 (seed 0) scratch from 2 batches is far off (test NRMSE
  1.71, validation 7.3 against the pick's 1.3) and the pair scores 9.1x the better
  baseline (pick 1.18x). ``hx.transfer`` briefly averaged so; it was reverted;
- ``guard(g)``: ``auto`` as ``hx.transfer`` runs it (``average(2)``), unless the
  processes' MMD permutation p < 0.05 and ``scratch``'s validation is within a factor
  g of the best: then the better validated of ``none`` and ``scratch``, alone
  (``selection.guarded``). Added on 2026-12-07 after seeing the 35 cells at n = 2,
  where ``average`` left penicillin U seed 0 at 1.40x the better baseline. Its g is
  chosen on the other families by the guard's purpose, not by the mean: the smallest
  g at which its condition (the library's negative-transfer warning) holds on every
  unrelated cell of theirs whose processes differ (MMD p < 0.05), as issue 26 asks
  the warning to fire on unrelated targets. That gives g = 2 for cho_glutamine,
  ecoli_overflow and pichia_methanol held out, and 1.5 for penicillin held out, whose
  U seed 0 (scratch 1.64x the best score) it then misses: the library's g = 2 was set
  with all four families seen. Its held-out tests were the cells run after it: at
  n = 1 it changed nothing; on 9 new unrelated draws at n = 2 (seeds 2-4; the
  criterion written with 7 of them seen: keep it if its worst and geometric-mean
  ratios both beat ``average(2)``'s) it scored worst 1.32 and geometric mean 1.02
  against the average's 1.28 and 0.92: the baseline it falls back to is itself
  chosen by a noisy validation. ``hx.transfer`` dropped the fallback and kept the
  condition as its negative-transfer warning (it held on 6 of the 9 new draws).

With 7 ecoli cells (3 families, 27 cells) no rule was better than ``pick`` on every
held-out family; ``average`` (b chosen on the others) led summed over them, and was to
replace ``pick`` once it held on the fourth family, pichia_methanol, whose cells did not
exist yet. Its first draw (seed 0, 4 cells) held: median / worst 0.80 / 0.97 against
``pick``'s 1.03 / 1.23, and ``hx.transfer``'s ``auto`` averages since (2026-12-06; with
2+ batches; one batch still picks). With the second draw (8 cells) the median holds
(0.80 vs 0.89) and the worst case does not (1.31 vs 1.23, target B2 seed 1). Over the
four held-out families ``average`` has the better median on three (not penicillin:
1.02 vs 0.97) and the better worst case on two (ecoli_overflow, penicillin; not
cho_glutamine, 1.68 vs 1.38, nor pichia); summed log-ratios: medians -0.78 vs -0.21,
worst cases 1.40 vs 1.75. On the unrelated targets its worst is 1.40 (pick 1.90).
At n = 1 (14 cells, seed 0, run after that choice), ``auto`` as it then was (pick 0.2)
scored median / worst 1.03 / 1.54 and ``average(2)`` with the guard 0.92 / 1.36; with
the criterion written before the pichia cells existed (both lower: adopt), ``auto``
averages with one batch too since 2026-12-07 (``--n 1``: ``selection-n1.md``;
without the guard, removed since, 0.91 / 1.36).

Leave-one-family-out: for each family, each rule family's parameter is chosen on the
*other* families (the lowest mean over their cells of log(rule / min(none, scratch));
``guard``: as said above) and scored on the held-out one, so no rule is tuned to the
family it is scored on.

    PYTHONPATH=. python benchmarks/selection.py [--suite benchmarks/results/suite]
        [--n 2] [--out benchmarks/results]
"""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

import hybridxfer as hx

try:
    import families
except ImportError:  # imported as benchmarks.selection
    from benchmarks import families

RULES = {
    "pick": (0.0, 0.1, 0.2, 0.3, 0.5),
    "average": (1.0, 2.0, 4.0, 8.0, 32.0),
    "top": (1, 2, 3),
    "pair": (0.5,),
    "guard": (1.25, 1.5, 2.0, 3.0, 4.0),
}
GUARD_P = 0.05


def cells(suite: Path, n: int) -> list[dict]:
    """The suite's cells at n target batches that keep their candidates."""
    out = []
    for path in sorted(suite.glob("suite-*.jsonl")):
        module = path.stem.removeprefix("suite-")
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row.get("kind") == "cell" and row["n"] == n and row.get("candidates"):
                out.append(row | {"family": module})
    return out


def _pick(cands: list[dict], score: np.ndarray, t: float) -> dict:
    """The candidate training the fewest values within (1 + t) of the best score."""
    near = [c for c, s in zip(cands, score) if s <= (1 + t) * score.min()]
    return min(near, key=lambda c: (c["trained"], c["validation"]))


def rule_score(row: dict, rule: str, value, test: hx.Study, scored) -> float:
    """The mean scored test NRMSE of the rule's prediction in one cell."""
    cands = [c for c in row["candidates"] if "values" in c and np.isfinite(c["validation"])]
    score = np.array([c["validation"] for c in cands])
    if rule == "pick":
        return _pick(cands, score, value)["test"]["mean"]
    if rule == "guard":
        named = {c["candidate"]: c for c in cands}
        if row["similarity"]["mmd_p"] < GUARD_P and named["scratch"]["validation"] < (
            value * score.min()
        ):
            return min((named["none"], named["scratch"]), key=lambda c: c["validation"])["test"][
                "mean"
            ]
        rule, value = "average", 2.0
    if rule == "pair":
        auto = _pick(cands, score, 0.2)  # as hx.transfer: a baseline picked stays alone
        scratch = (
            auto
            if auto["candidate"] == "none"
            else next(c for c in cands if c["candidate"] == "scratch")
        )
        weights = np.array([c is auto for c in cands]) * value
        weights = weights + np.array([c is scratch for c in cands]) * (1 - value)
    elif rule == "average":
        weights = score.min() / score  # in (0, 1], the best 1
        weights = weights**value
    else:
        weights = (np.argsort(np.argsort(score)) < value).astype(float)
    values = np.average(np.array([c["values"] for c in cands]), axis=0, weights=weights)
    keys = pd.DataFrame(row["keys"], columns=["batch", "time", "variable"])
    nrmse = hx.nrmse(keys.assign(value=values), test.measurements)
    return float(np.mean([nrmse[v] for v in scored]))


def table(rows: list[dict]) -> pd.DataFrame:
    """Every rule on every cell, beside the cell's baselines and references."""
    tests: dict = {}
    out = []
    for row in rows:
        fam = families.load(row["family"])
        key = (row["family"], row["target"])
        if key not in tests:
            tests[key] = fam.make_family(0).select(process=row["target"], split="test")
        base = dict(family=row["family"], target=row["target"], seed=row["seed"])
        base |= dict(related=row["target"] in fam.RELATED_TARGETS, n=row["n"])
        score = [c["validation"] for c in row["candidates"] if np.isfinite(c["validation"])]
        scratch = next(c for c in row["candidates"] if c["candidate"] == "scratch")
        base |= dict(mmd_p=row["similarity"]["mmd_p"], gain=scratch["validation"] / min(score))
        base |= {s: row[s]["mean"] for s in ("auto", "none", "scratch", "truth-refit")}
        for rule, values in RULES.items():
            for value in values:
                score = rule_score(row, rule, value, tests[key], fam.SCORED)
                out.append(base | dict(rule=rule, value=value, score=score))
    return pd.DataFrame(out)


def leave_one_family_out(frame: pd.DataFrame) -> pd.DataFrame:
    """Per held-out family and rule: the parameter chosen on the other families and its
    scores on the held-out one (medians over its cells of the ratios)."""
    frame = frame.assign(
        vs_best=np.log(frame["score"] / np.minimum(frame["none"], frame["scratch"]))
    )
    out = []
    for held in frame["family"].unique():
        others = frame[frame["family"] != held]
        for rule in RULES:
            part = others[others["rule"] == rule]
            if part.empty:  # only one family so far: no parameter can be chosen
                continue
            chosen = (
                _guard_gain(part)
                if rule == "guard"
                else part.groupby("value")["vs_best"].mean().idxmin()
            )
            scored = frame[(frame["family"] == held) & (frame["rule"] == rule)]
            scored = scored[scored["value"] == chosen]
            best = np.minimum(scored["none"], scored["scratch"])
            out.append(
                dict(
                    family=held,
                    rule=rule,
                    chosen=chosen,
                    cells=len(scored),
                    vs_best=float(np.median(scored["score"] / best)),
                    worst_vs_best=float(np.max(scored["score"] / best)),
                    vs_scratch=float(np.median(scored["score"] / scored["scratch"])),
                    vs_refit=float(np.median(scored["score"] / scored["truth-refit"])),
                )
            )
    return pd.DataFrame(out)


def _guard_gain(part: pd.DataFrame) -> float:
    """The smallest g at which the guard's condition holds on every unrelated cell of
    `part` whose processes differ (MMD p < GUARD_P; the largest g if none does)."""
    shifted = part[~part["related"] & (part["mmd_p"] < GUARD_P)]
    fires = [g for g in RULES["guard"] if (shifted["gain"] < g).all()]
    return float(min(fires) if fires else max(RULES["guard"]))


def markdown(lofo: pd.DataFrame, n: int, count: int) -> str:
    lines = [
        "# Selection rules, leave-one-family-out\n",
        "\n\n".join(__doc__.split("\n\n")[1:4]) + "\n",
        f"{count} suite cells at n = {n}. Ratios are medians over the held-out family's "
        "cells; `worst` is the largest.\n",
        "| held-out family | rule | parameter (chosen on the others) | cells "
        "| / min(none, scratch) | worst | / scratch | / truth-refit |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in lofo.itertuples():
        lines.append(
            f"| {r.family} | {r.rule} | {r.chosen:g} | {r.cells} | {r.vs_best:.2f} "
            f"| {r.worst_vs_best:.2f} | {r.vs_scratch:.2f} | {r.vs_refit:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", type=Path, default=Path("benchmarks/results/suite"))
    p.add_argument("--n", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    a = p.parse_args()
    rows = cells(a.suite, a.n)
    frame = table(rows)
    lofo = leave_one_family_out(frame)
    a.out.mkdir(parents=True, exist_ok=True)
    name = "selection" if a.n == 2 else f"selection-n{a.n}"
    (a.out / f"{name}.json").write_text(
        json.dumps(dict(cells=frame.to_dict("records"), lofo=lofo.to_dict("records")), indent=1)
    )
    text = markdown(lofo, a.n, len(rows))
    (a.out / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
