"""Benchmark: cold ``hx.transfer(strategy="auto")`` from 2 target batches, compile
included, each in a fresh process (no persistent compilation cache): the demo model
(2 networks) and the 4-network model of the cho_glutamine family (issue 26's time
check: <= 15 s and <= 30 s on 2 cores). The source is a short fit (30 steps) in the
same process, timed apart; the transfer uses its default settings (200 steps).

    PYTHONPATH=. python benchmarks/cold_transfer.py [--rounds 2] [--out benchmarks/results]
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

LIMITS = {"demo": 15.0, "cho_glutamine": 30.0}


def one(case: str) -> dict:
    """One cold transfer in this process: its time, a warm repeat's, the candidates."""
    import hybridxfer as hx

    if case == "demo":
        from hybridxfer.demo import demo_model_path, demo_study

        family, model, source, target = demo_study(), hx.load_model(demo_model_path()), "A", "B"
    else:
        try:
            import families
        except ImportError:
            from benchmarks import families
        fam = families.load(case)
        family, model, source = fam.make_family(0), fam.hybrid_model(), fam.SOURCE
        target = fam.RELATED_TARGETS[0]
    src = hx.fit(model, family, process=source, config=hx.FitConfig(steps=30), progress=False)
    batches = family.select(process=target, split="train").batch_names[:2]
    study = family.select(batches=[*family.select(process=source).batch_names, *batches])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        result = hx.transfer(src, study, process=target, progress=False)
        t1 = time.perf_counter()
        hx.transfer(src, study, process=target, progress=False)
        t2 = time.perf_counter()
    return dict(case=case, cold=t1 - t0, warm=t2 - t1, candidates=len(result.candidates))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--one", help=argparse.SUPPRESS)  # run one case in this process
    a = p.parse_args()
    if a.one:
        print(json.dumps(one(a.one)))
        return
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(["benchmarks", "."]))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    rows = []
    for _ in range(a.rounds):
        for case in LIMITS:
            out = subprocess.run(
                [sys.executable, __file__, "--one", case], capture_output=True, text=True, env=env
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    info = dict(platform=platform.platform(), cpu_count=os.cpu_count())
    info["date"] = datetime.datetime.now().isoformat(timespec="seconds")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "cold_transfer.json").write_text(json.dumps(dict(info=info, rows=rows), indent=1))
    lines = [
        "# Cold auto transfer from 2 batches\n",
        __doc__.split("\n\n")[0].replace("\n", " ") + "\n",
        f"Machine: {info['platform']}, {info['cpu_count']} CPUs, {info['date']}.\n",
        "| model | cold [s] (each round) | warm [s] | candidates | limit [s] | pass |",
        "|---|---|---:|---:|---:|:---:|",
    ]
    for case, limit in LIMITS.items():
        mine = [r for r in rows if r["case"] == case]
        cold = [r["cold"] for r in mine]
        lines.append(
            f"| {case} | {', '.join(f'{c:.1f}' for c in cold)} | {mine[-1]['warm']:.1f} "
            f"| {mine[-1]['candidates']} | {limit:g} | {'PASS' if max(cold) <= limit else 'FAIL'} |"
        )
    (a.out / "cold_transfer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
