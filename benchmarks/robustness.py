"""Issue 28's table of bad inputs and their outcomes: each case of
``tests/test_robustness.py`` (one table, imported) run through ``hybridxfer.cli.main``
in this process; writes ``benchmarks/results/robustness.md`` and ``.json``: category,
case, exit code, the message, time, and what is wrong with the outcome (empty: the
case holds). The NaN-producing rate's fit is timed (issue 28: under 10 s).

    python benchmarks/robustness.py [--only WORDS] [--json FILE] [--before FILE]

``--before FILE``: the JSON of an earlier run (e.g. of the command line before the
hardening, ``PYTHONPATH=OLD python benchmarks/robustness.py --json FILE``) shown beside
each outcome.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for tests/; hybridxfer as installed (or from PYTHONPATH)

from tests.test_robustness import (  # noqa: E402
    CASES,
    WARNING,
    make_base,
    message_lines,
    problems,
    run_case,
)

RESULTS = ROOT / "benchmarks" / "results"
BEFORE = "00802d0"  # the command line before this table's fixes (cli.py, _io/names.py)


def run(only: str | None = None) -> list[dict]:
    """Every case (or those whose name contains `only`) in a fresh temporary folder."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        base = make_base(Path(tmp) / "base")
        print(f"base (a 2-step fit, saved): {time.perf_counter() - start:.1f} s", flush=True)
        for i, case in enumerate(CASES):
            if only and only not in case.name:
                continue
            work = Path(tmp) / f"case{i}"
            outcome = run_case(case, base, work)
            lines = message_lines(outcome.err)
            errors = [t for t in lines if not t.startswith(WARNING)]
            rows.append(
                dict(
                    category=case.category,
                    case=case.name,
                    exit=outcome.code,
                    message=(errors[-1] if errors else "").replace(str(Path(tmp)), "TMP"),
                    warnings=sum(t.startswith(WARNING) for t in lines),
                    seconds=round(outcome.seconds, 3),
                    problems=problems(case, outcome, base, work),
                    known=case.failing,
                )
            )
            row = rows[-1]
            print(f"{row['exit']} {row['seconds']:7.3f} s  {_id(row)}  {row['problems'] or ''}")
            if row["problems"]:
                print("   ", row["message"][:300], flush=True)
    return rows


def _id(row: dict) -> str:
    return f"{row['category']}: {row['case']}"


def markdown(rows: list[dict], before: list[dict] | None = None) -> str:
    failing = [r for r in rows if r["problems"]]
    then = {_id(r): r for r in before or ()}
    nan = [r for r in rows if r["case"].startswith("a rate log(S - 100)")]
    lines = [
        "# Bad inputs and their outcomes (issue 28)",
        "",
        f"`python benchmarks/robustness.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} CPUs (shared; load {os.getloadavg()[0]:.1f}). "
        "Each case runs `hybridxfer.cli.main([...])` in one process; it holds when the exit "
        "code is 2, standard error is one line `hybridxfer: error: ...` naming the file and "
        "row, line, key or argument, without a traceback, and no file of the inputs or the "
        "output changed (a writer's empty lock file excepted: kept by design). Warnings are "
        "one line each, `hybridxfer: warning: ...`. The case table is "
        "`tests.test_robustness.CASES` (the test runs it too).",
        "",
        f"**{len(rows)} cases, {len(rows) - len(failing)} hold, {len(failing)} fail.** "
        + (
            f"The NaN-producing rate `log(S - 100)` is reported by `hybridxfer fit` in "
            f"{nan[0]['seconds']:.2f} s (acceptance: under 10 s, naming the rate)."
            if nan
            else ""
        ),
        "",
        "| category | case | exit | time [s] | message | problems |",
        "|---|---|---|---|---|---|",
    ]
    if before:
        held = sum(not then[_id(r)]["problems"] for r in rows if _id(r) in then)
        lines[-2:-2] = [
            f"Before (the command line of commit {BEFORE}, today's library): {held} of "
            f"{len(then)} held; column `before` gives the exit code or escaped error "
            "and whether the case held.",
            "",
        ]
        lines[-2] = lines[-2].replace("| exit |", "| before | exit |")
        lines[-1] = lines[-1] + "---|"
    for r in rows:
        old = then.get(_id(r))
        was = (
            ""
            if not before
            else "n/a | "
            if old is None
            else (f"{old['exit']}, {'holds' if not old['problems'] else 'fails'} | ")
        )
        message = r["message"].removeprefix("hybridxfer: error: ")
        message = (message[:220] + " …" if len(message) > 220 else message).replace("|", "\\|")
        lines.append(
            f"| {r['category']} | {r['case']} | {was}{r['exit']} | {r['seconds']:.2f} | "
            f"{message} | {'; '.join(r['problems']) or 'none'} |"
        )
    lines += ["", "## The cases that fail, and where the fix belongs", ""]
    lines += [f"- {_id(r)}: {r.get('known') or 'not known to fail'}" for r in failing]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", help="run only the cases whose name contains this")
    p.add_argument("--json", type=Path, help="write the rows here only (no report)")
    p.add_argument("--before", type=Path, help="JSON rows of an earlier run, shown beside")
    args = p.parse_args()
    rows = run(args.only)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if args.only or args.json:
        return
    before = json.loads(args.before.read_text()) if args.before else None
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "robustness.json").write_text(
        json.dumps(dict(rows=rows, before=before), indent=1) + "\n"
    )
    (RESULTS / "robustness.md").write_text(markdown(rows, before))
    print(f"wrote {RESULTS / 'robustness.md'}")


if __name__ == "__main__":
    main()
