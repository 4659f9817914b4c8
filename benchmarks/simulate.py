"""Benchmark: hybridxfer's vmapped diffrax solve vs a scipy ``solve_ivp`` loop.

N fed-batch Monod batches (14 days, daily samples, feed from day 3, raised on day 7),
random but seeded. Reports compile time, warm run time per batch and the speed ratio.

    PYTHONPATH=. python benchmarks/simulate.py [--sizes 1 64 1024] [--out benchmarks/results]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections import defaultdict
from pathlib import Path

import diffrax
import jax
import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

import hybridxfer as hx
import hybridxfer.arrays as hxa

TIMES = np.arange(15) * 24.0  # daily samples over 14 days [h]
BOUNDS = (0.0, 72.0, 168.0, TIMES[-1])  # feed off, F1 from day 3, F2 from day 7
PARAMS = {"mu_max": 0.04, "K": 1.0, "kd": 0.005, "Y": 1.0, "qp": 0.8}
SUBSET = 64  # scipy solves at most this many batches per size (a random subset)
TARGET_SPEEDUP, TARGET_COMPILE = 20.0, 5.0
COMPILE_EVENTS = defaultdict(float)  # jax compile-stage durations, summed
jax.monitoring.register_event_duration_secs_listener(
    lambda event, secs, **_: COMPILE_EVENTS.__setitem__(event, COMPILE_EVENTS[event] + secs)
)


def make_model() -> hx.HybridModel:
    units = {"mu_max": "1/h", "K": "mM", "kd": "1/h", "Y": "1e9 cells/mmol", "qp": "mg/1e9 cells/h"}
    return hx.HybridModel.build(
        name="fed-batch monod",
        states=[hx.State("X", "1e9 cells/L"), hx.State("S", "mM"), hx.State("P", "mg/L", 0.0)],
        inputs=[hx.Input("F", "L/h")],
        constants=[hx.Constant("Sf", "mM")],
        parameters=[hx.Parameter(k, v, units[k]) for k, v in PARAMS.items()],
        rates={"mu": "mu_max * monod(S, K)"},
        balances={"X": "mu*X - kd*X", "S": "-mu/Y*X", "P": "qp*X"},
        reactor=hx.FedBatch(feed_rate="F", feed={"S": "Sf"}),
    )


def make_batches(n: int) -> pd.DataFrame:
    """Initial X, S, V, feed rates F1 (day 3) and F2 (day 7) and feed glucose Sf."""
    rng = np.random.default_rng(0)
    u = {"X0": (0.2, 0.5), "S0": (20, 40), "V0": (0.8, 1.2), "F1": (1e-3, 3e-3), "Sf": (300, 500)}
    b = pd.DataFrame({k: rng.uniform(lo, hi, n) for k, (lo, hi) in u.items()})
    b["F2"] = b["F1"] * rng.uniform(1.2, 2.0, n)
    b.insert(0, "batch", [f"b{i:04d}" for i in range(n)])
    return b


def make_study(b: pd.DataFrame) -> hx.Study:
    b = b.assign(F0=0.0)

    def long(cols, times):
        parts = [
            b[["batch"]].assign(time=t, variable=v, value=b[c]) for c, v, t in zip(cols, *times)
        ]
        return pd.concat(parts, ignore_index=True)

    meas = long(["X0", "S0", "V0"], (["X", "S", "V"], [0.0] * 3))
    inputs = long(["F0", "F1", "F2"], (["F"] * 3, BOUNDS[:3]))
    return hx.study_from_frames(meas, inputs, b[["batch", "Sf"]].assign(process="p", split="train"))


def rhs(t, y, F, Sf, mu_max, K, kd, Y, qp):
    X, S, P, V = y
    mu = mu_max * max(S, 0.0) / (K + max(S, 0.0))
    D = F / V
    return [mu * X - kd * X - D * X, -mu / Y * X + D * (Sf - S), qp * X - D * P, F]


def scipy_solve(row, method="RK45", rtol=1e-6, atol=1e-9) -> np.ndarray:
    """One batch, integrated piecewise between feed changes; states (15, 4) at TIMES."""
    y, out = np.array([row.X0, row.S0, 0.0, row.V0]), []
    for k, F in enumerate((0.0, row.F1, row.F2)):
        a, b = BOUNDS[k], BOUNDS[k + 1]
        t_eval = TIMES[(TIMES > a if k else TIMES >= a) & (TIMES <= b)]
        args = (F, row.Sf, *PARAMS.values())
        sol = solve_ivp(rhs, (a, b), y, method, t_eval=t_eval, args=args, rtol=rtol, atol=atol)
        assert sol.success, sol.message
        out.append(sol.y.T)
        y = sol.y[:, -1]
    return np.concatenate(out)


def scipy_loop(rows, method: str) -> np.ndarray:
    return np.stack([scipy_solve(r, method) for r in rows])


def timed(f, *args, **kwargs):
    t0 = time.perf_counter()
    out = jax.block_until_ready(f(*args, **kwargs))
    return time.perf_counter() - t0, out


def rel_diff(got, ref) -> float:
    """Max |got - ref| / |ref| over samples and states (1e-6 floor for P(0) = 0)."""
    return float(np.max(np.abs(np.asarray(got)[:, : TIMES.size] - ref) / (np.abs(ref) + 1e-6)))


def hx_data(model, batches: pd.DataFrame) -> hxa.BatchData:
    return hxa.batch_data(model, make_study(batches), {b: TIMES for b in batches["batch"]})


def bench_size(model, batches: pd.DataFrame, repeats: int, last: bool) -> dict:
    n, solver = len(batches), hx.Solver()
    t_data, data = timed(hx_data, model, batches)
    COMPILE_EVENTS.clear()
    first, (ys, ok) = timed(hxa.solve, model, data, solver)
    stages = {k.rsplit("/", 1)[-1]: round(v, 3) for k, v in COMPILE_EVENTS.items()}
    warm = statistics.median(timed(hxa.solve, model, data, solver)[0] for _ in range(repeats))
    assert bool(np.all(ok[:n])), "hybridxfer solve failed"
    renamed = hx_data(model, batches.assign(batch="r" + batches["batch"]))  # same shapes
    res = {"N": n, "batch_data_s": t_data, "first_call_s": first, "warm_s": warm}
    res.update(compile_s=first - warm, compile_stages_s=stages, hx_per_batch_ms=1e3 * warm / n)
    res["new_names_call_s"] = timed(hxa.solve, model, renamed, solver)[0]
    subset = np.sort(np.random.default_rng(0).choice(n, min(n, SUBSET), replace=False))
    rows = list(batches.iloc[subset].itertuples())
    res["scipy_batches"], scipy_ys = len(rows), {}
    for method in ("RK45", "LSODA"):
        loops = [timed(scipy_loop, rows, method) for _ in range(repeats)]
        res[f"{method}_per_batch_ms"] = 1e3 * statistics.median(t for t, _ in loops) / len(rows)
        scipy_ys[method] = loops[0][1]
    res["max_rel_diff_hx_vs_rk45"] = rel_diff(ys[subset], scipy_ys["RK45"])
    res["speedup"] = res["RK45_per_batch_ms"] / res["hx_per_batch_ms"]
    if last:  # accuracy against a tight reference, and hx.simulate: batch_data + solve + frame
        res.update(accuracy(model, batches.iloc[subset], ys[subset], scipy_ys["RK45"]))
        study, times = make_study(batches), {b: TIMES for b in batches["batch"]}
        runs = [timed(hx.simulate, model, study, times=times)[0] for _ in range(repeats)]
        res["simulate_per_batch_ms"] = 1e3 * statistics.median(runs) / n
    return res


def accuracy(model, batches: pd.DataFrame, hx_ys, rk45_ys, tol=(1e-10, 1e-12)) -> dict:
    """Max relative differences against scipy DOP853 at tight tolerances (the reference)."""
    ref = np.stack([scipy_solve(r, "DOP853", *tol) for r in batches.itertuples()])
    tight = hxa.solve(model, hx_data(model, batches), hx.Solver(rtol=tol[0], atol=tol[1]))[0]
    return {
        "max_rel_diff_tight_hx_vs_dop853": rel_diff(tight[: len(batches)], ref),
        "max_rel_diff_default_hx_vs_ref": rel_diff(hx_ys, ref),
        "max_rel_diff_default_rk45_vs_ref": rel_diff(rk45_ys, ref),
    }


def markdown(results: list[dict], info: dict) -> str:
    big, worst = results[-1], max(r["compile_s"] for r in results)
    ok = {True: "PASS", False: "FAIL"}
    lines = [
        f"Machine: {info['platform']}, {info['cpu_count']} CPUs (shared, noisy), jax "
        f"{info['jax']}, diffrax {info['diffrax']}, {info['date']}. Warm times: median of "
        f"{info['repeats']}. scipy at N > {SUBSET}: a random subset of {SUBSET} batches.\n",
        "| N | hx compile [s] | hx warm [ms] | hx per batch [ms] | scipy RK45 per batch [ms] "
        "| scipy LSODA per batch [ms] | speed-up RK45 / hx | batch_data [s] "
        "| hx.simulate per batch [ms] | hx call, new batch names [s] |",
        "|---:" * 10 + "|",
    ]
    for r in results:
        sub = "" if r["scipy_batches"] == r["N"] else f" ({r['scipy_batches']} of {r['N']})"
        sim = f"{r['simulate_per_batch_ms']:.3f}" if "simulate_per_batch_ms" in r else "-"
        lines.append(
            f"| {r['N']} | {r['compile_s']:.2f} | {1e3 * r['warm_s']:.1f} | "
            f"{r['hx_per_batch_ms']:.4f} | {r['RK45_per_batch_ms']:.2f}{sub} | "
            f"{r['LSODA_per_batch_ms']:.2f}{sub} | {r['speedup']:.0f}x | "
            f"{r['batch_data_s']:.2f} | {sim} | {r['new_names_call_s']:.2f} |"
        )
    lines += [
        "\n| target | measured | pass |\n|---|---:|:---:|",
        f"| hx >= {TARGET_SPEEDUP:.0f}x faster per batch than scipy RK45 at N = {big['N']} "
        f"| {big['speedup']:.0f}x | {ok[big['speedup'] >= TARGET_SPEEDUP]} |",
        f"| compile of the forward solve < {TARGET_COMPILE:.0f} s (worst N) "
        f"| {worst:.2f} s | {ok[worst < TARGET_COMPILE]} |",
        f"\nMax relative difference at the samples, {big['scipy_batches']} batches of N = "
        f"{big['N']}: hx vs scipy RK45 at the default rtol 1e-6, atol 1e-9: "
        f"{big['max_rel_diff_hx_vs_rk45']:.1e}; at rtol 1e-10, atol 1e-12, hx vs scipy DOP853: "
        f"{big['max_rel_diff_tight_hx_vs_dop853']:.1e}. Default-tolerance error against that "
        f"reference: hx {big['max_rel_diff_default_hx_vs_ref']:.1e}, "
        f"RK45 {big['max_rel_diff_default_rk45_vs_ref']:.1e}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model, sizes = make_model(), sorted(args.sizes)
    everything = make_batches(sizes[-1])
    results = []
    for n in sizes:
        results.append(bench_size(model, everything.iloc[:n], args.repeats, n == sizes[-1]))
        print(json.dumps(results[-1]), flush=True)
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "repeats": args.repeats}
    info.update(python=platform.python_version(), jax=jax.__version__, diffrax=diffrax.__version__)
    info.update(backend=jax.default_backend(), load_average=os.getloadavg())
    info["date"] = datetime.datetime.now().isoformat(timespec="seconds")
    table = markdown(results, info)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    out = json.dumps({"info": info, "results": results}, indent=2)
    (args.out / "simulate.json").write_text(out)
    (args.out / "simulate.md").write_text("# hybridxfer simulate benchmark\n\n" + table)


if __name__ == "__main__":
    main()
