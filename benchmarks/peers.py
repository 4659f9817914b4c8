"""Benchmark: hybridxfer beside jax-hybridmodels, the same-stack peer (issue 29).

The task: the built-in CHO model (``hybridxfer/data/cho_fed_batch.toml``: Xv, Glc,
Lac, P and V; 8 parameters; networks growth(Lac, T) and production(T, Lac), each
2-16-16-1 tanh with a softplus output) fitted to process A's 8 training batches of
the built-in study, 400 Adam steps (warm-up 50, cosine decay to 1%, clip 1, weight
decay 1e-5), 1 member, Tsit5 at rtol 1e-5 / atol 1e-8, float64. hybridxfer runs at
its defaults (its 2 valid batches steer early stopping and the returned step); the
peer at its own (trains to the end on every point, returns its best training step).
Both start from the same values: hybridxfer's start for the round's seed.

The port (:class:`CHOPort`, :func:`simulate_port`) is the model written the way the
peer asks for it: a pytree of trainable modules (two ``MLPPredictor`` and the 8
unconstrained parameters) and a user ``simulate_fn`` that integrates one experiment
through its sampling times with diffrax, the sample withdrawals between segments.

Held out: the 2 test batches of process A and 8 batches of process A of
``generate_demo_study(1)`` (10 batches); the forward simulation runs on 20 batches
(all 12 of A and those 8). Each round runs each library in a fresh process, in
alternating order; each fit is timed whole, to the end of its first step (trace and
compile included) and per step after that (each library's step-end callback: the
peer's training UI, hybridxfer's progress bar).

    PYTHONPATH=. python benchmarks/peers.py [--rounds 3] [--quick] [--out benchmarks/results]

``--where`` instead times where each library's time to first step goes (fresh
processes, interleaved): every program JAX traces, lowers and compiles before the
first step ends (``jax_log_compiles``), and for hybridxfer the wall time of each
phase of its fit's setup; ``peers_where.json`` and ``.md``. With ``--cache DIR`` it
does so with a warm persistent compilation cache (``jax_compilation_cache_dir``, JAX's
other settings at their defaults, as hybridxfer's CLI sets it): one unrecorded process
per library fills ``DIR/<library>`` first; ``peers_where_cache.json`` and ``.md``.

Needs the peer: ``pip install -e ".[bench]"``; without it the benchmark says so and
stops.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import logging
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import hybridxfer as hx
from hybridxfer.arrays import batch_data
from hybridxfer.demo import demo_model_path, demo_study, generate_demo_study

PEER = "jax-hybridmodels"
VARIABLES = ("Xv", "Glc", "Lac", "P")
STEPS = 400
FAR = 1e9  # padding time of the input tables: never reached
LIBRARIES = ("hybridxfer", "peer")


def peer_installed() -> bool:
    return importlib.util.find_spec("jaxhybridmodels") is not None


# ------------------------------------------------------------------ the task's data
def task_studies() -> tuple[hx.Study, hx.Study, hx.Study]:
    """The fitted batches (A's 8 train and 2 valid), the 10 held-out test batches and
    the 20 batches of the forward simulation, as studies (batch names unique)."""
    a0 = demo_study().select(process="A")
    a1 = generate_demo_study(1).select(process="A")
    a1 = a1.select(batches=a1.batch_names[:8])
    tagged = [
        [t.assign(batch=tag + t["batch"]) for t in (s.measurements, s.inputs, s.batches)]
        for tag, s in (("s0", a0), ("s1", a1))
    ]
    meas, inputs, batches = (pd.concat(t, ignore_index=True) for t in zip(*tagged))
    held = batches["batch"].str.startswith("s1")
    batches.loc[held, "split"] = "test"
    every = hx.study_from_frames(meas, inputs, batches, name="peer-task")
    return every.select(split=["train", "valid"]), every.select(split="test"), every


def start_model(model: hx.HybridModel, study: hx.Study, seed: int) -> hx.HybridModel:
    """hybridxfer's starting values of a 1-member fit of `study` with `seed`: the
    declared parameters, networks normalised on the training observations and
    initialised from the member's key (what :func:`hybridxfer.fit` starts from)."""
    from hybridxfer._fit.controls import member_keys, member_start

    member = (hx.Plan(), hx.Validation())
    key = member_keys(seed, [member])[0]
    data = batch_data(model, study)
    params, _ = member_start(model, study, data, None, member, hx.FitConfig().holdout, key)
    return params.model


# ----------------------------------------------------------------------- the port
_SOFTPLUS_INV_1 = float(np.log(np.expm1(1.0)))  # softplus of this is 1


class CHOPort(eqx.Module):
    """The CHO model as the peer's user writes it: the trainable parts.

    Attributes:
        growth, production: 2 -> 1 networks (``MLPPredictor`` for the peer; any
            module with that call signature), read through their input
            normalisation and a softplus centred on 1.
        z: the 8 parameters, unconstrained: ``exp(z)``, except mu_max, log-uniform in
            [0.001, 0.2] (``0.001 * 200**sigmoid(z)``), as hybridxfer declares them.
        growth_norm, production_norm: input (mean, std) of each network (static).
    """

    growth: eqx.Module
    production: eqx.Module
    z: jax.Array
    growth_norm: tuple[tuple[float, ...], tuple[float, ...]] = eqx.field(static=True)
    production_norm: tuple[tuple[float, ...], tuple[float, ...]] = eqx.field(static=True)

    def factor(self, net, norm, x):
        mean, std = (jnp.asarray(v) for v in norm)
        return jax.nn.softplus(jnp.reshape(net((x - mean) / std), ()) + _SOFTPLUS_INV_1)

    def rhs(self, y, F, T, Sf):
        """dy/dt of [Xv, Glc, Lac, P, V] [state units / h] at feed F [L/h],
        temperature T [degC] and feed glucose Sf [mM]."""
        Xv, Glc, Lac, P, V = y
        mu_max = 0.001 * 200.0 ** jax.nn.sigmoid(self.z[0])
        K_glc, k_d, Y_xglc, m_glc, Y_lac, alpha, beta = jnp.exp(self.z[1:])
        growth = self.factor(self.growth, self.growth_norm, jnp.stack([Lac, T]))
        production = self.factor(self.production, self.production_norm, jnp.stack([T, Lac]))
        glc = jnp.maximum(Glc, 0.0)
        mu = mu_max * glc / (K_glc + glc) * growth
        q_glc = (mu / Y_xglc + m_glc) * glc / (0.05 + glc)
        q_p = (alpha * mu + beta) * production
        D = F / V  # fed-batch dilution
        return jnp.stack(
            [
                (mu - k_d) * Xv - D * Xv,
                -q_glc * Xv + D * (Sf - Glc),
                Y_lac * q_glc * Xv - D * Lac,
                q_p * Xv - D * P,
                F,
            ]
        )


def port_from_model(model: hx.HybridModel, peer: bool = True) -> CHOPort:
    """`model`'s values in the port: its networks' weights in ``MLPPredictor`` s
    (`peer`) or as they are, its free parameters, its input normalisation."""

    def net(n):
        mlp = model.networks[n].mlp
        if not peer:
            return mlp
        from jaxhybridmodels import MLPPredictor

        shell = MLPPredictor(in_size=2, out_size=1, width_size=16, depth=2, key=jax.random.key(0))
        arrays = lambda m: tuple(x for lay in m.layers for x in (lay.weight, lay.bias))  # noqa: E731
        return eqx.tree_at(lambda p: arrays(p.mlp), shell, arrays(mlp))

    def norm(n):
        f = model.networks[n]
        return tuple(map(float, f.mean)), tuple(map(float, f.std))

    return CHOPort(
        growth=net("growth"),
        production=net("production"),
        z=jnp.asarray(model.free),
        growth_norm=norm("growth"),
        production_norm=norm("production"),
    )


def _held(t, times, values):
    """Zero-order hold, right-continuous (an input's value from its row's time on)."""
    i = jnp.clip(jnp.sum(times <= t) - 1, 0, times.shape[0] - 1)
    return jnp.asarray(values)[i]


def port_field(port: CHOPort, cov: dict):
    """The vector field ``f(t, y, t_end)`` of one experiment: inputs held, and an
    input that changes at the segment's end `t_end` seen before the change."""

    def field(t, y, t_end):
        tu = jnp.minimum(t, jnp.nextafter(t_end, -jnp.inf))
        F = _held(tu, cov["F_t"], cov["F_v"])
        T = _held(tu, cov["T_t"], cov["T_v"])
        return port.rhs(y, F, T, cov["Sf"])

    return field


def simulate_port(port: CHOPort, ts, cov: dict, y0, solver):
    """The peer's ``simulate_fn``: one experiment's state [T, 5] at its times `ts`,
    solved segment by segment (a withdrawal ``Vs`` at a sample time lowers V after
    the sample)."""
    term = diffrax.ODETerm(port_field(port, cov))
    controller = diffrax.PIDController(
        rtol=solver.rtol, atol=solver.atol, jump_ts=jnp.concatenate([cov["F_t"], cov["T_t"]])
    )

    def segment(y, k):
        t1 = ts[k + 1]
        sol = diffrax.diffeqsolve(
            term,
            solver.solver,
            ts[k],
            t1,
            solver.dt0,
            y,
            args=t1,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=controller,
            max_steps=solver.max_steps,
            adjoint=solver.adjoint,
        )
        y1 = sol.ys[-1]
        withdrawn = jnp.sum(jnp.where(cov["Vs_t"] == t1, cov["Vs_v"], 0.0))
        return y1.at[4].add(-withdrawn), y1

    _, ys = jax.lax.scan(segment, y0, jnp.arange(ts.shape[0] - 1))
    return jnp.concatenate([y0[None], ys])


def state_to_output(full):
    return full[:, : len(VARIABLES)]


def port_inputs(study: hx.Study) -> dict[str, dict[str, np.ndarray]]:
    """Each batch's covariates for the port: Sf, the F, T and Vs tables as (time,
    value) arrays padded to one length (times FAR), and its index in `study`."""
    tables = {}
    for u in ("F", "T", "Vs"):
        rows = study.inputs[study.inputs["variable"] == u]
        per = {b: g.sort_values("time") for b, g in rows.groupby("batch")}
        n = max(len(g) for g in per.values())
        tables[u] = {
            b: (
                np.pad(g["time"].to_numpy(float), (0, n - len(g)), constant_values=FAR),
                np.pad(g["value"].to_numpy(float), (0, n - len(g)), mode="edge"),
            )
            for b, g in per.items()
        }
    sf = study.batches.set_index("batch")["Sf"]
    out = {}
    for i, b in enumerate(study.batch_names):
        cov = {"Sf": float(sf[b]), "index": float(i)}
        for u, per in tables.items():
            cov[f"{u}_t"], cov[f"{u}_v"] = per[b]
        out[b] = cov
    return out


def peer_dataset(study: hx.Study):
    """`study` as the peer's Dataset: channels Xv, Glc, Lac, P at their sampling
    times; y0 from the t=0 values (P 0, V measured)."""
    import jaxhybridmodels as jhm

    covs = port_inputs(study)
    experiments = []
    for b, g in study.measurements.groupby("batch", sort=False):
        channels = {
            v: jhm.ChannelObs(gv["time"].to_numpy(float), gv["value"].to_numpy(float))
            for v, gv in g.groupby("variable")
            if v in VARIABLES
        }
        at0 = g[g["time"] == 0].set_index("variable")["value"]
        y0 = jnp.array([at0["Xv"], at0["Glc"], at0["Lac"], 0.0, at0["V"]])
        experiments.append(
            jhm.make_experiment(
                covariates=covs[b], channels=channels, y0_fn=lambda c, ch, y0=y0: y0, exp_id=b
            )
        )
    return jhm.make_dataset(experiments, output_channel_names=VARIABLES)


def peer_solver(solver: hx.Solver):
    """The peer's SolverConfig with `solver`'s method, tolerances and budget (the
    peer's default adjoint)."""
    from jaxhybridmodels import SolverConfig

    return SolverConfig(
        solver=solver.solver,
        rtol=solver.rtol,
        atol=solver.atol,
        max_steps=solver.max_steps,
        dt0=None,
    )


def peer_frame(port: CHOPort, dataset, study: hx.Study, solver) -> pd.DataFrame:
    """The peer's prediction of every experiment of `dataset` as a long table
    ``batch, time, variable, value`` at its sampling times (vectorised, as a user
    would write it)."""
    from jaxhybridmodels import predict_dataset

    preds = predict_dataset(
        port, dataset, simulate_fn=simulate_port, state_to_output=state_to_output, solver=solver
    )
    names = np.asarray(study.batch_names, dtype=object)
    frames = []
    for bp, ys in zip(dataset.bucket_payloads, preds):
        mask = np.asarray(bp.mask)
        n, t, d = np.nonzero(mask)
        batch = names[np.asarray(bp.covariates["index"]).astype(int)]
        frames.append(
            pd.DataFrame(
                {
                    "batch": batch[n],
                    "time": np.asarray(bp.ts)[n, t],
                    "variable": np.asarray(VARIABLES, dtype=object)[d],
                    "value": np.asarray(ys)[n, t, d],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def peer_fit(
    port: CHOPort, dataset, config: hx.FitConfig, scales: np.ndarray, seed: int, ui=None
) -> CHOPort:
    """Train the port with the peer at `config`'s Adam schedule, clip and weight
    decay, on the scaled squared error (channel weights 1/scale^2), to the end."""
    import optax
    from jaxhybridmodels import OptaxTrainingConfig, SilentUI, train_with_optax

    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=min(config.warmup, config.steps // 2),
        decay_steps=config.steps,
        end_value=config.learning_rate * 0.01,
    )
    optimizer = optax.chain(optax.clip_by_global_norm(config.clip), optax.adam(schedule))

    def decay(port, _points):
        nets = eqx.filter((port.growth, port.production), eqx.is_inexact_array)
        return sum(jnp.sum(w**2) for w in jax.tree.leaves(nets))

    settings = OptaxTrainingConfig(
        steps=(config.steps,),
        lr=(config.learning_rate,),
        optimizer=(optimizer,),
        reset_optimiser_state=(False,),
        penalty_weight=(config.weight_decay,),
        penalty_fn=decay,
        loss="mse",
        channel_weights=tuple(float(w) for w in 1.0 / scales**2),
        verbose=False,
    )
    _, fitted = train_with_optax(
        port,
        dataset,
        settings,
        simulate_fn=simulate_port,
        state_to_output=state_to_output,
        solver=peer_solver(config.solver),
        key=jax.random.key(seed),
        ui=SilentUI() if ui is None else ui,
    )
    return fitted


# ------------------------------------------------------------------- one process
def timed(f, *args, **kwargs):
    t0 = time.perf_counter()
    out = jax.block_until_ready(f(*args, **kwargs))
    return time.perf_counter() - t0, out


class StepClock:
    """The time each step of a fit ends: the peer's training UI (``on_step_end``), and
    the progress bar of hybridxfer's fit (``update``), with every other call a no-op."""

    def __init__(self, *args, **kwargs):
        self.ends: list[float] = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def on_step_end(self, **kwargs):
        self.ends.append(time.perf_counter())

    def update(self, n=1):
        self.ends.append(time.perf_counter())


def timed_fit(run, clock: StepClock) -> tuple[dict, object]:
    """Run a fit once, timing it whole, to the end of its first step, and per step
    after that (the mean over the steps after the first)."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(run())
    total = time.perf_counter() - t0
    ends = clock.ends
    figures = dict(fit_s=total, steps=len(ends), first_step_s=ends[0] - t0)
    figures["step_s"] = (ends[-1] - ends[0]) / max(len(ends) - 1, 1)
    return figures, out


def hybridxfer_fit(model, fit_study, config, clock: StepClock):
    """hybridxfer's fit of the task, its progress bar replaced by `clock`."""
    from hybridxfer._fit import engine

    bar, engine.tqdm = engine.tqdm, lambda *args, **kwargs: clock  # the fit's progress bar
    try:
        return hx.fit(model, fit_study, config=config, progress=False)
    finally:
        engine.tqdm = bar


def peer_task(model, fit_study, seed: int) -> tuple:
    """The peer's inputs to its fit: the training Dataset, the channel scales and the
    start (hybridxfer's, for `seed`)."""
    jax.config.update("jax_enable_x64", True)
    train = fit_study.select(split="train")
    dataset = peer_dataset(train)
    scales = np.array(
        [np.ptp(train.measurements.query("variable == @v")["value"]) for v in VARIABLES]
    )
    return dataset, scales, port_from_model(start_model(model, fit_study, seed))


def child(library: str, seed: int, steps: int, repeats: int) -> dict:
    """One library's run of the task in this (fresh) process: one fit, then the
    predictions, then the process's peak memory."""
    fit_study, test, forward = task_studies()
    model = hx.load_model(demo_model_path())
    config = hx.FitConfig(steps=steps, members=1, seed=seed)
    clock = StepClock()
    if library == "hybridxfer":
        fit = lambda: hybridxfer_fit(model, fit_study, config, clock)  # noqa: E731
        out, res = timed_fit(fit, clock)
        fitted = res.model
        data = batch_data(fitted, forward)
        arrays = lambda: hx.arrays.solve(fitted, data, hx.Solver())  # noqa: E731
        frame = lambda: hx.simulate(fitted, forward)  # noqa: E731
        predict_test = lambda: hx.simulate(fitted, test)  # noqa: E731
    else:
        from jaxhybridmodels import predict_dataset

        dataset, scales, start = peer_task(model, fit_study, seed)
        fit = lambda: peer_fit(start, dataset, config, scales, seed, clock)  # noqa: E731
        out, fitted = timed_fit(fit, clock)
        solver = peer_solver(hx.Solver())
        forward_set, test_set = peer_dataset(forward), peer_dataset(test)
        arrays = lambda: predict_dataset(  # noqa: E731
            fitted,
            forward_set,
            simulate_fn=simulate_port,
            state_to_output=state_to_output,
            solver=solver,
        )
        frame = lambda: peer_frame(fitted, forward_set, forward, solver)  # noqa: E731
        predict_test = lambda: peer_frame(fitted, test_set, test, solver)  # noqa: E731
    score = hx.nrmse(predict_test(), test.measurements)
    out["test_nrmse"] = {v: float(score[v]) for v in VARIABLES}
    for name, f in (("forward_arrays", arrays), ("forward_frame", frame)):
        out[f"{name}_first_s"] = timed(f)[0]
        out[f"{name}_s"] = statistics.median(timed(f)[0] for _ in range(repeats))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


# ---------------------------------------------------- where the first step goes
STEP_PROGRAM = {"hybridxfer": "step", "peer": "bucket_step"}  # each library's gradient step
SETUP_PHASES = ("_setup", "member_keys", "member_start", "at_start", "initial_opt_state")


class CompileLog(logging.Handler):
    """Every program JAX traces, lowers and compiles (``jax_log_compiles``), as
    ``(end, stage, program, seconds)`` with stage ``trace``, ``lower`` or ``compile``."""

    PATTERN = re.compile(
        r"Finished (tracing|jaxpr to MLIR module conversion|XLA compilation of) "
        r"(?:jit\()?([\w<>]+)\)?.* in ([0-9.e-]+) sec"
    )
    STAGES = {"tracing": "trace", "jaxpr": "lower", "XLA": "compile"}

    def __init__(self):
        super().__init__()
        self.records: list[tuple[float, str, str, float]] = []

    def emit(self, record):
        m = self.PATTERN.match(record.getMessage())
        if m:
            stage = self.STAGES[m.group(1).split()[0]]
            self.records.append((time.perf_counter(), stage, m.group(2), float(m.group(3))))


def timed_phases(module, names) -> dict[str, float]:
    """Replace the functions `names` of `module` by timed ones; the returned dict
    accumulates each one's wall time [s]."""
    spent = dict.fromkeys(names, 0.0)

    def timed(name, f):
        def call(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t0

        return call

    for name in names:
        setattr(module, name, timed(name, getattr(module, name)))
    return spent


def where_figures(records, t0: float, t1: float, program: str) -> dict:
    """Where the time from the fit's start `t0` to its first step's end `t1` went:
    setup before the trace of the step `program` (and the small programs compiled in
    it), that program's trace, lowering and XLA compile, other programs after its trace
    (the peer's update and penalty), and the rest (dispatch and the step's run)."""
    inside = [r for r in records if t0 <= r[0] <= t1]
    traced = [end - s for end, stage, name, s in inside if name == program and stage == "trace"]
    start = traced[0] if traced else t1
    out = dict(first_step_s=t1 - t0, setup_s=start - t0)
    out["setup_compile_s"] = sum(s for end, _, _, s in inside if end <= start)
    out["setup_programs"] = sum(end <= start and st == "compile" for end, st, _, _ in inside)
    out["programs"] = sum(st == "compile" for _, st, _, _ in inside)
    for stage in ("trace", "lower", "compile"):
        out[f"step_{stage}_s"] = sum(
            s for end, st, name, s in inside if end > start and name == program and st == stage
        )
    out["other_s"] = sum(s for end, _, name, s in inside if end > start and name != program)
    out["rest_s"] = t1 - start - sum(out[f"step_{k}_s"] for k in ("trace", "lower", "compile"))
    out["rest_s"] -= out["other_s"]
    return out


def where_child(library: str, seed: int, steps: int, cache: str | None = None) -> dict:
    """One library's fit of the task in this (fresh) process, with every program it
    compiles logged and, for hybridxfer, its setup phases timed (:func:`where_figures`);
    `cache`: JAX's persistent compilation cache folder (None: none)."""
    if cache is not None:
        jax.config.update("jax_compilation_cache_dir", cache)
    fit_study, _, _ = task_studies()
    model = hx.load_model(demo_model_path())
    config = hx.FitConfig(steps=steps, members=1, seed=seed)
    clock, log = StepClock(), CompileLog()
    logger = logging.getLogger("jax")
    logger.addHandler(log)
    logger.propagate = False
    jax.config.update("jax_log_compiles", True)
    out = {}
    if library == "hybridxfer":
        from hybridxfer._fit import engine

        spent = timed_phases(engine, SETUP_PHASES)
        run = lambda: hybridxfer_fit(model, fit_study, config, clock)  # noqa: E731
    else:
        t0 = time.perf_counter()
        dataset, scales, start = peer_task(model, fit_study, seed)
        out["data_s"] = time.perf_counter() - t0
        run = lambda: peer_fit(start, dataset, config, scales, seed, clock)  # noqa: E731
    t0 = time.perf_counter()
    jax.block_until_ready(run())
    out |= where_figures(log.records, t0, clock.ends[0], STEP_PROGRAM[library])
    if library == "hybridxfer":
        out |= {f"phase{k}" if k[0] == "_" else f"phase_{k}": v for k, v in spent.items()}
    return out


WHERE = {  # key: label
    "first_step_s": "time to first step [s]",
    "setup_s": "setup before the step's trace [s]",
    "setup_compile_s": "- of which tracing and compiling small programs [s]",
    "setup_programs": "- programs compiled in it",
    "phase_setup": "- hybridxfer: Study -> arrays, scales [s]",
    "phase_member_keys": "- hybridxfer: member keys [s]",
    "phase_member_start": "- hybridxfer: starting values (networks initialised) [s]",
    "phase_at_start": "- hybridxfer: t=0 check of rates and balances [s]",
    "phase_initial_opt_state": "- hybridxfer: optimiser state [s]",
    "step_trace_s": "step's gradient program: trace [s]",
    "step_lower_s": "step's gradient program: lower to MLIR [s]",
    "step_compile_s": "step's gradient program: XLA compile [s]",
    "other_s": "other programs after it (peer: update, penalty) [s]",
    "rest_s": "rest: dispatch and the first step's run [s]",
    "programs": "programs compiled before the first step ends",
    "data_s": "outside the fit: the peer's Dataset and start [s]",
}


def where_markdown(runs: list[dict], info: dict) -> str:
    """Median over rounds of each figure of :data:`WHERE`, per library."""
    lines = [
        f"{info['date']}, {info['platform']}, {info['cpu_count']} CPUs (shared), jax "
        f"{info['jax']}; {info['rounds']} rounds, each library in a fresh process, "
        f"interleaved; medians. Load average at the end: {info['load_average'][0]:.1f}.\n",
        "| phase | hybridxfer | peer |",
        "|---|---:|---:|",
    ]
    for key, label in WHERE.items():
        cells = []
        for lib in LIBRARIES:
            values = [r[key] for r in runs if r["library"] == lib and key in r]
            form = ".0f" if key == "programs" or key.endswith("_programs") else ".2f"
            cells.append(f"{statistics.median(values):{form}}" if values else "")
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ report
FIGURES = {  # key: (label, unit scale, unit)
    "process_s": ("whole process (import, fit, predictions)", 1.0, "s"),
    "fit_s": ("fit including compile", 1.0, "s"),
    "first_step_s": ("time to first step (trace + compile)", 1.0, "s"),
    "step_s": ("time per step, warm", 1e3, "ms"),
    "forward_arrays_s": ("forward simulation of 20 batches, arrays, warm", 1e3, "ms"),
    "forward_frame_s": ("forward simulation of 20 batches, DataFrame, warm", 1e3, "ms"),
    "peak_rss_mb": ("peak memory of the process (RSS)", 1.0, "MB"),
}


def summarise(runs: list[dict]) -> dict:
    """Per library the median over rounds of each figure and the mean NRMSE per
    variable; ratios hybridxfer / peer."""
    out = {}
    for lib in LIBRARIES:
        rs = [r for r in runs if r["library"] == lib]
        med = {k: statistics.median(r[k] for r in rs) for k in FIGURES}
        med["steps"] = statistics.median(r["steps"] for r in rs)
        nrmse = {v: statistics.mean(r["test_nrmse"][v] for r in rs) for v in VARIABLES}
        med["test_nrmse"] = nrmse | {"mean": statistics.mean(nrmse.values())}
        out[lib] = med
    hx_, peer = out["hybridxfer"], out["peer"]
    out["ratio"] = {k: hx_[k] / peer[k] for k in FIGURES}
    out["ratio"]["test_nrmse"] = {
        v: hx_["test_nrmse"][v] / peer["test_nrmse"][v] for v in (*VARIABLES, "mean")
    }
    return out


def markdown(summary: dict, info: dict) -> str:
    hx_, peer, ratio = summary["hybridxfer"], summary["peer"], summary["ratio"]
    lines = [
        f"Machine: {info['platform']}, {info['cpu_count']} CPUs (shared, noisy), jax "
        f"{info['jax']}, diffrax {info['diffrax']}, {PEER} {info['peer']}, {info['date']}. "
        f"{info['rounds']} rounds, each library in a fresh process per round, interleaved; "
        f"medians over rounds (NRMSE: mean over rounds, seeds 0-{info['rounds'] - 1}). "
        f"Task: the CHO model, process A's 8 training batches, {info['steps']} steps, 1 "
        "member, Tsit5 rtol 1e-5, float64, the same Adam schedule and start; test: 10 "
        "held-out batches.\n",
        "| figure | hybridxfer | peer | ratio |",
        "|---|---:|---:|---:|",
    ]
    for k, (label, scale, unit) in FIGURES.items():
        lines.append(
            f"| {label} [{unit}] | {hx_[k] * scale:.1f} | {peer[k] * scale:.1f} | {ratio[k]:.2f} |"
        )
    lines.append(f"| steps run | {hx_['steps']:.0f} | {peer['steps']:.0f} | |")
    for v in (*VARIABLES, "mean"):
        lines.append(
            f"| test NRMSE {v} | {hx_['test_nrmse'][v]:.4f} | {peer['test_nrmse'][v]:.4f} "
            f"| {ratio['test_nrmse'][v]:.2f} |"
        )
    checks = [
        ("fit including compile <= 0.5x", ratio["fit_s"] <= 0.5),
        ("test NRMSE (mean) <= the peer's", ratio["test_nrmse"]["mean"] <= 1.0),
        ("time to first step <= 0.7x", ratio["first_step_s"] <= 0.7),
        ("warm simulate to DataFrame <= 1.0x", ratio["forward_frame_s"] <= 1.0),
    ]
    lines.append(
        "\nHow measured: a fit runs from the library's own data object (hybridxfer's Study, "
        "the peer's Dataset) to the fitted model; its first step ends when the step-end "
        "callback first fires (every program it needs traced and compiled). Forward, "
        "arrays: `hybridxfer.arrays.solve` on prebuilt BatchData beside `predict_dataset`; "
        "DataFrame: `hybridxfer.simulate(model, study)`, which builds the arrays from the "
        "Study on every call, beside `predict_dataset` on the prebuilt Dataset and a "
        "vectorised long table. Peak memory: the whole process (`ru_maxrss`)."
    )
    lines += ["\n| acceptance (issue 29) | pass |", "|---|:---:|"]
    lines += [f"| {label} | {'PASS' if ok else 'FAIL'} |" for label, ok in checks]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round of 5 steps")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--where", action="store_true", help="where the first step goes")
    parser.add_argument("--child", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help="--where with a warm compilation cache here")
    parser.add_argument("--child-where", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seed, args.steps, args.repeats)))
        return
    if args.child_where:
        cache = None if args.cache is None else str(args.cache)
        print(json.dumps(where_child(args.child_where, args.seed, args.steps, cache)))
        return
    if not peer_installed():
        sys.exit(f'{PEER} is not installed (pip install -e ".[bench]"): benchmark skipped')
    rounds, steps, repeats = (1, 5, 2) if args.quick else (args.rounds, STEPS, args.repeats)
    steps = 2 if args.where else steps  # the first step is what counts
    runs = []
    for r in range(-1 if args.where and args.cache else 0, rounds):  # -1: fill the caches
        for lib in LIBRARIES if r % 2 == 0 else LIBRARIES[::-1]:
            cmd = [sys.executable, __file__, "--child-where" if args.where else "--child", lib]
            cmd += ["--seed", str(max(r, 0)), "--steps", str(steps), "--repeats", str(repeats)]
            cmd += ["--cache", str(args.cache / lib)] if args.where and args.cache else []
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode:
                sys.exit(f"the {lib} process failed:\n{proc.stderr[-3000:]}")
            run = json.loads(proc.stdout.splitlines()[-1])
            if r >= 0:
                runs.append(run | {"library": lib, "round": r, "process_s": wall})
            fit = run.get("fit_s", run.get("first_step_s"))
            print(f"round {r} {lib}: fit {fit:.1f} s, wall {wall:.1f} s", flush=True)
    from importlib.metadata import version

    info = dict(platform=platform.platform(), cpu_count=os.cpu_count(), rounds=rounds)
    info.update(jax=jax.__version__, diffrax=diffrax.__version__, peer=version(PEER))
    info.update(steps=steps, repeats=repeats, load_average=os.getloadavg())
    info["date"] = datetime.datetime.now().isoformat(timespec="seconds")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.where:
        table = where_markdown(runs, info)
        print(table)
        stem = "peers_where_cache" if args.cache else "peers_where"
        title = "with a warm persistent compilation cache" if args.cache else ""
        (args.out / f"{stem}.json").write_text(json.dumps(dict(info=info, runs=runs), indent=2))
        (args.out / f"{stem}.md").write_text(f"# Where the first step goes {title}\n\n{table}")
        return
    summary = summarise(runs)
    table = markdown(summary, info)
    print(table)
    stem = "peers-quick" if args.quick else "peers"
    result = {"info": info, "summary": summary, "runs": runs}
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    (args.out / f"{stem}.md").write_text("# hybridxfer beside jax-hybridmodels\n\n" + table)


if __name__ == "__main__":
    main()
