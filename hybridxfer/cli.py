"""Command line: ``hybridxfer demo | simulate | fit | transfer | predict | report | twin``
(DESIGN.md §5).

Exit code 0 on success; on bad input one line ``hybridxfer: error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from ._core.expressions import ExpressionError
from ._core.model import ModelError
from ._core.parameters import ParameterError
from ._core.reactor import ReactorError
from ._data.study import StudyError
from ._fit.engine import FitError
from ._io.model_file import ModelFileError
from ._io.saved_model import SavedModelError
from ._solve.simulation import SimulationError
from ._transfer.transfer import STEPS, STRATEGIES
from ._twin.filter import TwinError

USER_ERRORS = (
    FitError,
    SavedModelError,
    ExpressionError,
    ModelError,
    ModelFileError,
    ParameterError,
    ReactorError,
    SimulationError,
    StudyError,
    TwinError,
    FileNotFoundError,
)


def _demo(args) -> None:
    from .demo import run_demo

    run_demo(args.out, steps=args.steps)


def _simulate(args) -> None:
    from ._data.study import read_study
    from ._io.model_file import load_model
    from ._report.trajectories import plot_simulation
    from ._solve.simulation import Solver, simulate

    model = load_model(args.model)
    study = read_study(args.study)
    solver = Solver(args.solver, rtol=args.rtol, atol=args.atol)
    sim = simulate(model, study, times=args.points, solver=solver)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sim.to_csv(out / "simulation.csv", index=False)
    plots = plot_simulation(sim, study.measurements, out, model.units, model.structure.time_unit)
    print(
        f"wrote {out / 'simulation.csv'} ({len(study.batch_names)} batches) and {len(plots)} plots"
    )


def _fit(args) -> None:
    from ._data.study import read_study
    from ._fit.engine import FitConfig, fit
    from ._fit.intervals import parameter_table
    from ._io.model_file import load_model
    from ._io.saved_model import save_fit

    model = load_model(args.model)
    study = read_study(args.study)
    config = FitConfig(
        steps=args.steps,
        learning_rate=args.lr,
        members=args.members,
        seed=args.seed,
        likelihood=args.likelihood,
    )
    out = Path(args.out)
    result = fit(model, study, process=args.process, config=config, checkpoint=out / "checkpoint")
    train = study.select(process=args.process, split="train")
    result = replace(
        result, parameters=parameter_table(result.model, train, initial=result.initial)
    )
    save_fit(result, out)
    print(f"fitted {len(train.batch_names)} batches of process {args.process!r}; saved to {out}/")
    print(_table(result.parameters))


def _transfer(args) -> None:
    from ._data.study import read_study
    from ._fit.intervals import parameter_table
    from ._io.saved_model import load_fit, save_transfer
    from ._report.report import plot_transfer
    from ._transfer.transfer import transfer

    source = load_fit(args.model_dir)
    study = read_study(args.study)
    config = replace(source.config, steps=args.steps) if args.steps else None
    result = transfer(
        source, study, process=args.process, strategy=args.strategy, config=config, progress=True
    )
    train = study.select(process=args.process, split="train")
    table = parameter_table(result.model, train, initial=result.fit.initial)
    out = save_transfer(replace(result, fit=replace(result.fit, parameters=table)), args.out)
    plot_transfer(result, out)
    print(result.summary())
    print(
        f"saved the transferred model to {out}/ (transfer.txt: the report above; "
        "transfer.png: the candidates' scores and the parameters' distances)"
    )


def _predict(args) -> None:
    from ._data.study import read_study
    from ._io.saved_model import load_fit
    from ._uncertainty.prediction import predict

    result = load_fit(args.model_dir)
    study = read_study(args.study)
    pred = predict(result.members, study, times=args.points)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pred.to_csv(args.out, index=False)
    print(f"wrote {args.out} ({len(study.batch_names)} batches, {len(result.members)} members)")


def _report(args) -> None:
    from ._data.study import read_study
    from ._io.saved_model import load_fit
    from ._report.report import write_report

    result = load_fit(args.model_dir)
    study = read_study(args.study) if args.study else None
    out = write_report(result, study, args.out)
    print(f"wrote the report to {out}/ (open {out / 'report.md'})")


def _twin(args) -> None:
    from ._io.saved_model import load_fit
    from ._report.trajectories import plot_simulation
    from ._twin.stream import read_stream, replay

    model = load_fit(args.model_dir).model
    stream = read_stream(args.stream)
    estimates, refused = replay(
        model,
        stream,
        constants=_assignments(args.constant, "--constant"),
        progress=True,
        measurement_sd=_assignments(args.sd, "--sd"),
        model_error=_assignments(args.model_error, "--model-error"),
        process_noise=args.process_noise,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    estimates.to_csv(out, index=False)
    lines = estimates.rename(columns=dict(mean="value", lower95="lower", upper95="upper"))
    measured = stream[stream["variable"].isin(model.variable_names)].assign(batch="estimate")
    plots = plot_simulation(
        lines.assign(batch="estimate"),
        measured,
        out.parent / f"{out.stem}_plots",
        model.units,
        model.structure.time_unit,
        what="real-time estimate with 95% band",
    )
    print(
        f"replayed {len(stream)} rows up to t={estimates['time'].max():g}; wrote {out} and "
        f"{len(plots)} plots in {out.parent / (out.stem + '_plots')}/"
        + (f"; {len(refused)} row group(s) refused (see warnings)" if refused else "")
    )


def _assignments(items: list[str], option: str) -> dict[str, float]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            raise TwinError(f"{option} {item!r}: expected NAME=NUMBER") from None
    return out


def _table(frame) -> str:
    return frame.to_string(index=False, float_format=lambda x: f"{x:.4g}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hybridxfer", description="Hybrid mechanistic-ML bioreactor models with transfer."
    )
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the main job on the built-in data")
    demo.add_argument("--out", default="hybridxfer-demo", help="output folder")
    demo.add_argument("--steps", type=int, default=400, help="maximum gradient steps of the fit")
    demo.set_defaults(run=_demo)

    sim = sub.add_parser("simulate", help="simulate every batch of a study")
    sim.add_argument("model", help="model file (TOML)")
    sim.add_argument("study", help="study folder (measurements.csv, inputs.csv, batches.csv)")
    sim.add_argument("--out", required=True, help="output folder")
    sim.add_argument("--points", type=int, default=101, help="output points per batch")
    sim.add_argument("--solver", default="tsit5", choices=["tsit5", "dopri5", "kvaerno5"])
    sim.add_argument("--rtol", type=float, default=1e-6)
    sim.add_argument("--atol", type=float, default=1e-9)
    sim.set_defaults(run=_simulate)

    fit = sub.add_parser("fit", help="fit a hybrid model to the train batches of a process")
    fit.add_argument("model", help="model file (TOML)")
    fit.add_argument("study", help="study folder")
    fit.add_argument("--process", required=True, help="process whose batches to fit")
    fit.add_argument("--out", required=True, help="model folder (also holds the checkpoint)")
    fit.add_argument("--steps", type=int, default=1500, help="maximum gradient steps")
    fit.add_argument("--lr", type=float, default=1e-2, help="peak learning rate")
    fit.add_argument("--members", type=int, default=1, help="random restarts / ensemble size")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--likelihood", default="scaled", choices=["scaled", "gaussian"])
    fit.set_defaults(run=_fit)

    tr = sub.add_parser("transfer", help="transfer a fitted model to another process")
    tr.add_argument("model_dir", help="saved source model folder")
    tr.add_argument("study", help="study folder with the target's (and the source's) batches")
    tr.add_argument("--process", required=True, help="the target process")
    tr.add_argument("--strategy", default="auto", choices=list(STRATEGIES))
    tr.add_argument("--out", required=True, help="folder for the transferred model")
    tr.add_argument(
        "--steps", type=int, default=None, help=f"maximum gradient steps (default {STEPS})"
    )
    tr.set_defaults(run=_transfer)

    pred = sub.add_parser("predict", help="predict every batch of a study")
    pred.add_argument("model_dir", help="saved model folder")
    pred.add_argument("study", help="study folder (t=0 values, inputs, constants)")
    pred.add_argument("--out", required=True, help="CSV file to write")
    pred.add_argument("--points", type=int, default=None, help="output points per batch")
    pred.set_defaults(run=_predict)

    rep = sub.add_parser("report", help="plots and parameter table of a saved model")
    rep.add_argument("model_dir", help="saved model folder")
    rep.add_argument("study", nargs="?", help="study to compare predictions with")
    rep.add_argument("--out", required=True, help="output folder")
    rep.set_defaults(run=_report)

    tw = sub.add_parser("twin", help="replay a recorded batch stream through a digital twin")
    tw.add_argument("model_dir", help="saved model folder")
    tw.add_argument("stream", help="stream CSV: time, variable, value [, sd, sample_time]")
    tw.add_argument("--out", required=True, help="CSV file for the estimates (plots beside it)")
    tw.add_argument("--constant", action="append", default=[], help="batch constant NAME=VALUE")
    tw.add_argument("--sd", action="append", default=[], help="measurement sd NAME=VALUE")
    tw.add_argument(
        "--model-error",
        action="append",
        default=[],
        help="relative model error NAME=FRACTION, added to the measurement sd",
    )
    tw.add_argument(
        "--process-noise", type=float, default=0.02, help="relative state drift per sqrt(time)"
    )
    tw.set_defaults(run=_twin)
    return p


def keep_compiled_programs() -> None:
    """Keep compiled programs between calls, in JAX's persistent compilation cache:
    ``JAX_COMPILATION_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/hybridxfer/jax``
    (default ``~/.cache/hybridxfer/jax``). A call that compiles what an earlier call
    compiled (same model, strategy and shape buckets) loads it instead of running XLA,
    most of a short call's time."""
    import jax

    if jax.config.jax_compilation_cache_dir is None:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        jax.config.update("jax_compilation_cache_dir", str(cache / "hybridxfer" / "jax"))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    keep_compiled_programs()
    try:
        args.run(args)
    except USER_ERRORS as e:
        print(f"hybridxfer: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
