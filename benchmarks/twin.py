"""Benchmark: the digital twin's real-time Xv and titre estimates on a target process.

Truth: the related truth of ``benchmarks/process_family.py`` (process B), with
batch-to-batch variability, and online signals from observation equations:

    OUR  = (a_O2 mu + b_O2) Xv,   CER = (a_CO2 mu + b_CO2) Xv,
    base = k_base * (lactate production rate)          [mmol/(L h)]

with 3% noise, hourly. Offline samples (Xv, Glc, Lac, P; 5% noise) come daily and
arrive 6 h late. Two scenarios: *growth* (each batch's mu_max drawn +-10% around the
process's) and *growth + productivity* (beta, the non-growth production rate, too: a
spread no online signal sees; target fit only).
The twin's model is ``cho_fed_batch.toml`` plus the same
observation equations with their coefficients fitted (OUR, CER and base every 4 h in
the historical batches; kinetics first, then the coefficients: ``fit_staged``), and
mu_max and beta declared batch-varying (``batch_sd = 0.1``), so the twin estimates
them for the running batch. The twin is made from the fit,
``hx.DigitalTwin.from_fit`` (as ``hybridxfer twin`` does by default): each signal's
model error (relative RMSE of the fit's held-out residuals) and its correlation time,
each state's process noise and the batch sd come from the fit's residuals; the
estimator *online + samples, uncalibrated* is the twin as it was before (q = 0.02,
the same model error taken as uncorrelated).

Models: *target fit* (8 historical batches of B), *source A* (fitted on source A, 8
batches, and run as it is on B: the twin of a related process) and *transferred*
(that fit, then ``hx.transfer`` to B with 2 batches). For each, on 6 test
batches of B: (a) open-loop prediction from t=0 values and inputs (``hx.simulate``),
(b) the twin fed online signals only, (c) online signals and the late daily
samples. Score: NRMSE over the batch (hourly, t > 0) of the real-time estimate
against the truth, per variable, normalised by the truth's range; coverage of the 95%
band (fraction of the hourly truth inside it) and its mean width over the truth's
range; median over the test batches and 3 data seeds. Time per update: median wall
time of ``twin.update`` after compile.

    PYTHONPATH=. python benchmarks/twin.py [--steps 400] [--seeds 3] [--out benchmarks/results]
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
import matplotlib
import numpy as np
import pandas as pd

import hybridxfer as hx
from hybridxfer.demo import demo_model_path

try:
    from process_family import PROCESSES, RELATED, make_family
except ImportError:  # imported as benchmarks.twin
    from benchmarks.process_family import PROCESSES, RELATED, make_family

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OBSERVATIONS = """
[observations]
OUR  = { unit = "mmol/(L h)", expression = "(a_O2 * mu + b_O2) * Xv" }
CER  = { unit = "mmol/(L h)", expression = "(a_CO2 * mu + b_CO2) * Xv" }
base = { unit = "mmol/(L h)", expression = "k_base * Y_lac * q_glc * Xv" }
"""
TRUE_COEFFICIENTS = dict(a_O2=5.0, b_O2=0.15, a_CO2=4.2, b_CO2=0.13, k_base=0.8)
START_COEFFICIENTS = dict(a_O2=2.0, b_O2=0.3, a_CO2=2.0, b_CO2=0.3, k_base=1.0)
UNITS = dict(
    a_O2="mmol/1e9 cells",
    b_O2="mmol/(1e9 cells h)",
    a_CO2="mmol/1e9 cells",
    b_CO2="mmol/(1e9 cells h)",
    k_base="mol/mol",
)
SIGNALS, SAMPLED = ("OUR", "CER", "base"), ("Xv", "Glc", "Lac", "P")
SIGNAL_NOISE, SAMPLE_NOISE, DELAY, VARIABILITY = 0.03, 0.05, 6.0, 0.10
SCENARIOS = {"growth": ("mu_max",), "growth + productivity": ("mu_max", "beta")}  # vary
MAIN = "growth"  # the scenario with the transferred model and timing
SCORED = ("Xv", "P")
OK = {True: "PASS", False: "FAIL"}
NOTES = """Notes:

- Titre is not measured online: between samples the twin integrates the production
  rate along its corrected Xv. In the *growth + productivity* scenario the
  batch-to-batch spread of beta (10%, invisible to OUR, CER and base) therefore
  stays in the titre estimate until a sample arrives; that is why P gains less there
  (online only, P 0.052 against 0.046 before: the calibrated twin trusts the signals,
  and so its Xv-driven titre correction, less).
- The fitted observation equations miss OUR, CER and base by about 20% (model error
  e), and by the same fraction for the whole batch: the residuals' lag-one
  autocorrelation is 0.98 at 4 h, a correlation time of about 400 h (target fit) and
  120-160 h (transferred). The twin made by ``from_fit`` counts each hourly reading's
  model error as e^2 tau/dt, so it no longer averages a steady bias away as noise;
  with samples this halves the Xv error (0.044 -> 0.026 target fit, 0.048 -> 0.022
  transferred) and the transferred twin's Xv band holds the truth 0.94 of the time
  (0.30 before).
- Online only, the signals' steady error cannot be told from the state: the band is
  wide (target fit: coverage 1.00 at 0.48 of the range) or misses (transferred: 0.82
  at 0.10). Measured on seed 0 with a fixed correlation time: 4 h gave target-fit Xv
  coverage 1.00 but transferred 0.02; 16 h 1.00/0.37; 64 h 1.00/1.00 (width 0.22):
  no setting from the fit calibrates both models without samples.
- *Source A* run as it is on B (issue 25's case c): its noise levels come from A's
  residuals, which do not show how far the model is off on B. Before the twin was
  adaptive, with samples its Xv band held the truth 0.13 of the time (NRMSE 0.108);
  adaptive (the covariance inflated when a sample's NIS passes its 95% bound), 0.51
  (NRMSE 0.056); the textbook twin with q = 0.02 tracks better (0.028) as its
  process noise is larger. The inflation acts at a sample only: between samples the
  small process noise from A let the band shrink again. Since the twin also learns a
  sampled state's process noise on the batch (covariance matching, once the samples
  reject the predicted variance; 2026-12-06, measured on the same fits): Xv 0.86 at
  0.16 of the range (NRMSE 0.045), P 0.93 (0.019 from 0.017); the target-fit and
  transferred twins did not move (their samples seldom reject the variance).
- The noise levels from a fit are net of the measurement noise (2026-12-06). For the
  target fit and transferred twins, NRMSE moved by at most 0.003, except the titre
  online in *growth + productivity* (0.052 -> 0.059). The transferred twin's Xv band
  holds the truth 0.82 online (0.65 before) and 0.98 with samples (0.94 before).
- The titre band over-covers (1.00) although narrow (0.05-0.07 of the range with
  samples): the titre error is largest late in the batch and the band, relative to
  the titre, is wider than the error early on; the target fit's Xv band with samples
  (1.00 at 0.11) likewise. Neither is met; both are reported, not tuned per cell.
- NIS (signals and samples): far below 1 for the calibrated twin, as expected when
  the model error is counted as correlated; the uncalibrated twin's NIS was 0.12-0.31
  while its Xv band held only 0.30-0.60 of the truth: the signals' innovations do not
  reveal a steady bias, so NIS alone cannot tune this twin.
- The fitted observation coefficients differ from the truth's (a_O2 1.3 against 5):
  they describe OUR in terms of the *hybrid model's* mu, whose profile differs from
  the truth's. Fitted jointly with the kinetics from the same start they were worse
  still, and the twin's Xv was then no better than open loop; hence ``fit_staged``.
"""
HOURS = np.arange(0.0, 14 * 24 + 1)


def _parameters(values: dict) -> str:
    return "\n".join(f'{k} = {{ value = {v}, unit = "{UNITS[k]}" }}' for k, v in values.items())


def truth_model() -> hx.HybridModel:
    text = RELATED.replace(
        "[parameters]\n", "[parameters]\n" + _parameters(TRUE_COEFFICIENTS) + "\n"
    )
    return hx.parse_model(text + OBSERVATIONS, source="twin truth")


def twin_model() -> hx.HybridModel:
    """cho_fed_batch.toml with the observation equations, and growth and production
    rates declared to vary from batch to batch by about 10% (``batch_sd``)."""
    text = demo_model_path().read_text()
    text = text.replace("[parameters]\n", "[parameters]\n" + _parameters(START_COEFFICIENTS) + "\n")
    text = text.replace(
        "bounds = [0.001, 0.2], process_specific = true }",
        "bounds = [0.001, 0.2], process_specific = true, batch_sd = 0.1 }",
    ).replace(
        'unit = "mg/(1e9 cells h)", process_specific = true }',
        'unit = "mg/(1e9 cells h)", process_specific = true, batch_sd = 0.1 }',
    )
    return hx.parse_model(text + OBSERVATIONS, source="cho_fed_batch.toml + observations")


def make_data(seed: int, scenario: str):
    """Truth trajectories (hourly), the historical study (offline every 2 days, online
    every 4 h) and the random generator for the test batches' streams; the constants
    the scenario names vary from batch to batch."""
    family = make_family(seed, counts={"A": (8, 2, 0), "B": (8, 0, 6)})
    rng = np.random.default_rng(seed + 100)
    batches = family.batches.copy()
    consts = pd.DataFrame([PROCESSES[p] for p in batches["process"]])
    spread = VARIABILITY * rng.standard_normal((len(batches), 2))
    consts[["mu_max", "beta"]] *= np.exp(spread * np.isin(["mu_max", "beta"], SCENARIOS[scenario]))
    truth_batches = pd.concat([batches.reset_index(drop=True), consts], axis=1)
    t0 = family.measurements.query("time == 0 and variable != 'P'")
    truth_study = hx.study_from_frames(t0, family.inputs, truth_batches)
    truth = hx.simulate(truth_model(), truth_study, times={b: HOURS for b in batches["batch"]})

    def noisy(frame, level):
        return frame.assign(value=frame["value"] * (1 + level * rng.standard_normal(len(frame))))

    offline = truth[truth["variable"].isin(SAMPLED) & (truth["time"] % 48 == 0)]
    offline = offline[~((offline["variable"] == "P") & (offline["time"] == 0))]
    offline = pd.concat([noisy(offline[offline["time"] > 0], SAMPLE_NOISE), t0])
    online = truth[truth["variable"].isin(SIGNALS) & (truth["time"] % 4 == 0) & (truth["time"] > 0)]
    history = hx.study_from_frames(
        pd.concat([offline, noisy(online, SIGNAL_NOISE)]).sort_values(["batch", "time"]),
        family.inputs,
        batches,
        name="twin-history",
    )
    return truth, history, rng


def stream_of(batch: str, truth: pd.DataFrame, history: hx.Study, rng, samples: bool):
    """The test batch as it streams in: inputs, hourly signals (sd 3% of the reading),
    and optionally daily samples (sd 5%) arriving `DELAY` hours late."""
    mine = truth[truth["batch"] == batch]
    rows = [
        history.measurements.query("batch == @batch and time == 0")[["time", "variable", "value"]]
    ]
    rows.append(history.inputs.query("batch == @batch")[["time", "variable", "value"]])
    sig = mine[mine["variable"].isin(SIGNALS) & (mine["time"] > 0)]
    sig = sig.assign(value=sig["value"] * (1 + SIGNAL_NOISE * rng.standard_normal(len(sig))))
    rows.append(
        sig.assign(sd=SIGNAL_NOISE * sig["value"].abs() + 1e-6)[["time", "variable", "value", "sd"]]
    )
    if samples:
        smp = mine[mine["variable"].isin(SAMPLED) & (mine["time"] > 0) & (mine["time"] % 24 == 0)]
        smp = smp.assign(value=smp["value"] * (1 + SAMPLE_NOISE * rng.standard_normal(len(smp))))
        smp = smp.assign(sd=SAMPLE_NOISE * smp["value"].abs() + 1e-6, sample_time=smp["time"])
        smp = smp.assign(time=np.minimum(smp["time"] + DELAY, HOURS[-1]))
        rows.append(smp[["time", "variable", "value", "sd", "sample_time"]])
    stream = pd.concat(rows, ignore_index=True)
    return stream.sort_values("time", kind="stable").reset_index(drop=True)


def nrmse(estimate: pd.DataFrame, truth: pd.DataFrame, batch: str) -> dict:
    """Per scored variable, the NRMSE of the estimate over the batch, and for a twin
    (with bands) ``cover <v>``, the fraction of hourly truth values in its 95% band,
    and ``width <v>``, its mean width over the truth's range."""
    out = {}
    for v in SCORED:
        t = truth.query("batch == @batch and variable == @v and time > 0").set_index("time")[
            "value"
        ]
        e = estimate.query("variable == @v").drop_duplicates("time", keep="last").set_index("time")
        e = e.reindex(t.index)
        mean = e["mean"] if "mean" in e else e["value"]
        out[v] = float(np.sqrt(np.mean((mean - t) ** 2)) / (t.max() - t.min()))
        if "lower95" in e:
            out[f"cover {v}"] = float(np.mean((e["lower95"] <= t) & (t <= e["upper95"])))
            out[f"width {v}"] = float(np.mean(e["upper95"] - e["lower95"]) / (t.max() - t.min()))
    return out


def fit_staged(model, study: hx.Study, process: str, cfg: hx.FitConfig) -> hx.FitResult:
    """Fit the kinetics to the offline samples, then the observation equations to the
    online signals with the kinetics held (a Plan). Fitting both at once from the same
    start left the coefficients in a poorer optimum (train loss 0.0036 against 0.0005
    from the true values) whose observation model fitted the kinetics less well."""
    meas = study.measurements
    offline = hx.study_from_frames(
        meas[~meas["variable"].isin(SIGNALS)], study.inputs, study.batches, name="offline"
    )
    kinetics = hx.fit(model, offline, process=process, config=cfg, progress=False)
    plan = hx.Plan(
        parameters=tuple(TRUE_COEFFICIENTS), networks=dict.fromkeys(model.networks, "frozen")
    )
    return hx.fit(kinetics.model, study, process=process, config=cfg, plan=plan, progress=False)


def update_seconds(model, truth, history: hx.Study, rng) -> list[float]:
    """Wall time of each ``twin.update`` over the first test batch's online stream (one
    update per hour: OUR, CER, base and inputs); the first (compiling) call left out."""
    test = history.select(process="B", split="test")
    stream = stream_of(test.batch_names[0], truth, history, rng, False)
    t0 = stream[stream["time"] == 0]
    pick = lambda names: {v: x for v, x in zip(t0["variable"], t0["value"]) if v in names}  # noqa: E731
    twin = hx.DigitalTwin(
        model,
        initial=pick(model.state_names),
        inputs=pick(model.input_names),
        constants={"Sf": float(test.batches["Sf"].iloc[0])},
    )
    seconds = []
    for t, rows in stream[stream["time"] > 0].groupby("time"):
        values = dict(zip(rows["variable"], rows["value"]))
        sd = {v: s for v, s in zip(rows["variable"], rows["sd"]) if np.isfinite(s)}
        start = time.perf_counter()
        twin.update(float(t), values, sd=sd)
        seconds.append(time.perf_counter() - start)
    return seconds[1:]


def evaluate(name, fit, truth, history, rng) -> tuple[list[dict], dict, dict]:
    """Scores of (a) open loop and, on every test batch, the twin made from the fit
    (:meth:`hx.DigitalTwin.from_fit`: noise from its residuals) fed (b) online signals
    only and (c) online signals and samples, and (c) with the twin as it was before
    (``hx.DigitalTwin`` of the model: q = 0.02, the signals' relative RMSE as white
    model error e as the fit's); the estimates of the first batch, for the plot; the noise the twin
    took from the fit."""
    model = fit.model
    test = history.select(process="B", split="test")
    sf = dict(zip(test.batches["batch"], test.batches["Sf"]))
    open_loop = hx.simulate(model, test, times={b: HOURS for b in test.batch_names})
    rows, shown, noise = [], {}, {}
    for b in test.batch_names:
        runs, nis = {"open loop": open_loop[open_loop["batch"] == b]}, {}
        for label, samples, calibrated in (
            ("online", False, True),
            ("online + samples", True, True),
            ("online + samples, uncalibrated", True, False),
        ):
            stream = stream_of(b, truth, history, rng, samples)
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a refused row would be a benchmark bug
                warnings.filterwarnings("ignore", message="the twin's bands")  # NIS, scored
                if calibrated:
                    runs[label], _, twin = hx.replay(
                        fit, stream, constants={"Sf": sf[b]}, return_twin=True, progress=False
                    )
                    noise = noise or twin.noise
                else:
                    runs[label], _, twin = hx.replay(
                        model,
                        stream,
                        constants={"Sf": sf[b]},
                        return_twin=True,
                        process_noise=0.02,
                        model_error=noise["model_error"],
                        adaptive=False,
                        progress=False,
                    )
            nis[label] = twin.consistency()["nis"]
        for label, est in runs.items():
            rows.append(
                dict(model=name, batch=b, estimator=label, nis=nis.get(label, np.nan))
                | nrmse(est, truth, b)
            )
        shown = shown or runs
    return rows, shown, noise


def plot(shown: dict, truth: pd.DataFrame, path: Path) -> None:
    batch = None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = {
        "open loop": "tab:grey",
        "online": "tab:blue",
        "online + samples": "tab:green",
        "online + samples, uncalibrated": "tab:orange",
    }
    for ax, v in zip(axes, SCORED):
        for label, est in shown.items():
            e = est[est["variable"] == v].drop_duplicates("time", keep="last")
            y = e["mean"] if "mean" in e else e["value"]
            batch = batch or (e["batch"].iloc[0] if "batch" in e else None)
            ax.plot(e["time"], y, color=colours[label], lw=1.2, label=label)
            if "lower95" in e:
                ax.fill_between(
                    e["time"], e["lower95"], e["upper95"], color=colours[label], alpha=0.15
                )
        t = truth[(truth["variable"] == v) & (truth["batch"] == batch)] if batch else None
        if t is not None:
            ax.plot(t["time"], t["value"], "k--", lw=1, label="truth")
        ax.set_xlabel("time [h]")
        ax.set_ylabel(v)
        ax.legend(fontsize=8)
    fig.suptitle(f"real-time estimates, test batch {batch} (target-fit model)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def lap(seconds: dict, name: str, start: float) -> None:
    """Record a stage's wall time (the first seed's; later ones run warm)."""
    seconds.setdefault(name, time.perf_counter() - start)
    print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)


def fit_models(history: hx.Study, steps: int, seconds: dict, transferred: bool):
    """The target fit (8 batches of B) and, if `transferred`, the source fit on A as
    it is (the twin of a related process) and transferred to B with 2 batches
    (``auto``);
    returns per model name its fit (the transfer's ``fit``), and the transfer result
    (or None)."""
    model, cfg = twin_model(), hx.FitConfig(steps=steps, members=2)
    train = history.select(process="B", split="train")
    start = time.perf_counter()
    target = fit_staged(model, train, "B", cfg)
    lap(seconds, "fit target (8 batches)", start)
    models = {"target fit": target}
    if not transferred:
        return models, None
    start = time.perf_counter()
    source = fit_staged(model, history.select(process="A"), "A", cfg)
    lap(seconds, "fit source A (8 batches)", start)
    two = train.batch_names[:2]
    test = history.select(process="B", split="test").batch_names
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = history.select(batches=[*history.select(process="A").batch_names, *two, *test])
        moved = hx.transfer(source, study, process="B", progress=False)
    lap(seconds, "transfer A -> B (2 batches, auto)", start)
    return models | {"source A": source, "transferred": moved.fit}, moved


# NRMSE (Xv, P) of the twin before issue 25 (benchmarks/results/twin.md of 2026-12-06, q 0.02)
BEFORE = {
    ("growth", "target fit", "online"): (0.047, 0.030),
    ("growth", "target fit", "online + samples"): (0.044, 0.021),
    ("growth", "transferred", "online"): (0.052, 0.026),
    ("growth", "transferred", "online + samples"): (0.048, 0.015),
    ("growth + productivity", "target fit", "online"): (0.047, 0.046),
    ("growth + productivity", "target fit", "online + samples"): (0.043, 0.022),
}


def acceptance(table: pd.DataFrame, per_update: list[float]) -> list[dict]:
    """The checks: online-only against open loop per scenario and model; the twin's
    95% band coverage (0.90-0.98) and NRMSE against before; update time."""
    checks = []
    for (scenario, name), t in table.groupby(["scenario", "model"], sort=False):
        t = t.set_index("estimator")
        ratio = {v: t.loc["open loop", v] / t.loc["online", v] for v in SCORED}
        checks.append(
            dict(
                check=f"{scenario}, {name}: online-only filter >= 2x lower NRMSE than open loop",
                measured=", ".join(f"{v} x{ratio[v]:.2f}" for v in SCORED),
                passed=bool(all(x >= 2 for x in ratio.values())),
            )
        )
        for label in ("online", "online + samples"):
            r = t.loc[label]
            cover = {v: r[f"cover {v}"] for v in SCORED}
            checks.append(
                dict(
                    check=f"{scenario}, {name}, {label}: 95% band holds the truth 0.90-0.98",
                    measured=", ".join(
                        f"{v} {cover[v]:.2f} (width {r[f'width {v}']:.2f})" for v in SCORED
                    ),
                    passed=bool(all(0.90 <= c <= 0.98 for c in cover.values())),
                )
            )
            before = BEFORE.get((scenario, name, label))
            if before:
                checks.append(
                    dict(
                        check=f"{scenario}, {name}, {label}: NRMSE no worse than before",
                        measured=", ".join(
                            f"{v} {r[v]:.3f} (was {b:.3f})" for v, b in zip(SCORED, before)
                        ),
                        passed=bool(all(r[v] <= b * 1.05 for v, b in zip(SCORED, before))),
                    )
                )
    med, p90 = np.median(per_update), np.percentile(per_update, 90)
    checks.append(
        dict(
            check="one update < 1 ms after compile (5 states + 2 batch parameters, 2 networks)",
            measured=f"median {1e3 * med:.3f} ms, p90 {1e3 * p90:.3f} ms ({len(per_update)})",
            passed=bool(med < 1e-3),
        )
    )
    return checks


def _fmt(x: float) -> str:
    return "-" if pd.isna(x) else f"{x:.2f}"


def markdown(info: dict, checks: list[dict], table: pd.DataFrame) -> str:
    load = info["load_start"][0]
    md = [
        "# hybridxfer digital-twin benchmark",
        "",
        *(p.replace("\n", " ") + "\n" for p in (__doc__ or "").split("\n\n")[1:5]),
        NOTES,
        f"Machine: {info['machine']}, {info['cpus']} CPUs (shared; load {load:.1f} at start), "
        f"jax {info['jax']}, {info['date']}, wall {info['wall_s']:.0f} s.",
        "",
        "## Acceptance",
        "",
        "| check | measured | pass |",
        "|---|---|:---:|",
        *(f"| {c['check']} | {c['measured']} | {OK[c['passed']]} |" for c in checks),
        "",
        "## Median NRMSE over test batches of B (real-time estimate vs truth, hourly)",
        "",
        "6 test batches per seed (n: batches). Coverage: fraction of the hourly truth "
        "inside the twin's 95% band (median over batches; 0.95 is calibrated); width: its "
        "mean width over the truth's range; NIS: mean normalised innovation squared per "
        "measured value (1 for a consistent filter).",
        "",
        "| scenario | model | estimator | Xv | P | avg | coverage Xv | coverage P "
        "| width Xv | width P | NIS | n |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['scenario']} | {r['model']} | {r['estimator']} | {r['Xv']:.3f} "
            f"| {r['P']:.3f} | {r['avg']:.3f} | {_fmt(r['cover Xv'])} | {_fmt(r['cover P'])} "
            f"| {_fmt(r['width Xv'])} | {_fmt(r['width P'])} | {_fmt(r['nis'])} | {r['n']} |"
            for r in table.to_dict("records")
        ),
        "",
        "## Timings",
        "",
        *(f"- {k}: {v:.1f} s" for k, v in info["seconds"].items()),
        f"- twin.update: median {info['update_ms']:.3f} ms (after compile)",
        "",
        "## Observation coefficients of the target fit (first seed)",
        "",
        "| name | truth | fitted |",
        "|---|---:|---:|",
        *(
            f"| {k} | {v:g} | {info['fitted_coefficients'][k]:.3g} |"
            for k, v in TRUE_COEFFICIENTS.items()
        ),
        "",
        "Noise the twin took from each fit's residuals (first seed; model error e, its "
        "correlation time tau [h], process noise q [1/sqrt(h)], batch sd of the varying "
        "parameters), and the prior sd of its rate gains:",
        "",
        *(
            f"- {m}: "
            + "; ".join(
                f"{part}: "
                + (
                    ", ".join(f"{k} {v:.3g}" for k, v in values.items())
                    if isinstance(values, dict)
                    else f"{values:.3g}"
                )
                for part, values in e.items()
            )
            for m, e in info["noise"].items()
        ),
        "",
        "Transfer (auto) chose:",
        "",
        *(f"- {c}" for c in info["transfer"]),
        "",
        "![estimates](twin.png)",
        "",
    ]
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seeds", type=int, default=3, help="data seeds")
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    wall, load = time.perf_counter(), os.getloadavg()
    seconds, rows, chosen, errors = {}, [], [], {}
    for seed, scenario in itertools.product(range(a.seeds), SCENARIOS):
        truth, history, rng = make_data(seed, scenario)
        models, moved = fit_models(history, a.steps, seconds, transferred=scenario == MAIN)
        if moved:
            chosen.append(f"seed {seed}: {moved.strategy!r} ({moved.reason})")
        for name, fit in models.items():
            r, runs, noise = evaluate(name, fit, truth, history, rng)
            errors.setdefault(name, noise)
            rows += [x | dict(seed=seed, scenario=scenario) for x in r]
            if (seed, scenario, name) == (0, MAIN, "target fit"):
                shown, first_truth = runs, truth
        if (seed, scenario) == (0, MAIN):
            per_update = update_seconds(models["target fit"].model, truth, history, rng)
            values = models["target fit"].model.parameter_values()
    frame = pd.DataFrame(rows).assign(avg=lambda f: f[list(SCORED)].mean(axis=1))
    groups = frame.groupby(["scenario", "model", "estimator"], sort=False)
    bands = [f"{c} {v}" for c in ("cover", "width") for v in SCORED]
    table = groups[[*SCORED, "avg", *bands, "nis"]].median()
    table = table.join(groups.size().rename("n")).reset_index()
    checks = acceptance(table, per_update)
    info = dict(
        machine=platform.platform(),
        cpus=os.cpu_count(),
        jax=jax.__version__,
        load_start=load,
        load_end=os.getloadavg(),
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        wall_s=time.perf_counter() - wall,
        seconds=seconds,
        update_ms=1e3 * float(np.median(per_update)),
        steps=a.steps,
        seeds=a.seeds,
        fitted_coefficients={k: float(values[k]) for k in TRUE_COEFFICIENTS},
        noise=errors,
        transfer=chosen,
    )
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    result = dict(info=info, checks=checks, table=table.to_dict("records"), rows=rows)
    (out / "twin.json").write_text(json.dumps(result, indent=1, default=float))
    plot(shown, first_truth, out / "twin.png")
    (out / "twin.md").write_text(markdown(info, checks, table))
    print(markdown(info, checks, table))


if __name__ == "__main__":
    main()
