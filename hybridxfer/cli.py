"""Command line: ``hybridxfer demo | simulate | fit | transfer | predict | report | twin |
sweep`` (DESIGN.md §5).

Exit code 0 on success; on bad input one line ``hybridxfer: error: ...`` and exit 2.
"""

from __future__ import annotations

import io
import math
import re
import sys
import warnings
from dataclasses import replace
from pathlib import Path

from ._cli_parser import UsageError, parser


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors reported in one line with exit code 2 (imported only when one is raised)."""
    import hybridxfer as hx

    return (
        hx.FitError,
        hx.JobError,
        hx.SavedModelError,
        hx.ExpressionError,
        hx.ModelError,
        hx.ModelFileError,
        hx.ParameterError,
        hx.ReactorError,
        hx.SimulationError,
        hx.StudyError,
        hx.SweepError,
        hx.TwinError,
        UsageError,
        FileNotFoundError,
    )


def _demo(args) -> None:
    from .demo import run_demo

    _pyplot()
    run_demo(args.out, steps=args.steps)


def _solver(args, base):
    """`base` (a :class:`~hybridxfer.Solver`) with the solver options given on the
    command line (``--solver``, ``--rtol``, ``--atol``, ``--max-steps``)."""
    from ._io.names import solver_class, solver_from_dict

    for key in ("rtol", "atol", "max_steps"):
        value = getattr(args, key)
        try:
            solver_from_dict({key: value}) if value is not None else None
        except ValueError as e:
            raise UsageError(f"--{key.replace('_', '-')} {value}: {e}") from None
    given = lambda value, default: default if value is None else value  # noqa: E731
    return type(base)(
        solver_class(args.solver)() if args.solver else base.solver,
        rtol=given(args.rtol, base.rtol),
        atol=given(args.atol, base.atol),
        max_steps=given(args.max_steps, base.max_steps),
        forward_mode=base.forward_mode,
    )


def _simulate(args) -> None:
    import hybridxfer as hx

    from ._solve import DEFAULT

    model = hx.load_model(args.model)
    study = hx.read_study(args.study, units=model)
    sim = hx.simulate(model, study, times=args.points, solver=_solver(args, DEFAULT))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sim.to_csv(out / "simulation.csv", index=False)
    plots = _plot_variables(sim, study.measurements, out, model, "simulated")
    print(
        f"wrote {out / 'simulation.csv'} ({len(study.batch_names)} batches) and {len(plots)} plots"
    )


def _fit(args) -> None:
    import hybridxfer as hx

    from ._fit.checkpoint import writer
    from ._solve import TRAINING

    model = hx.load_model(args.model)
    study = hx.read_study(args.study, units=model)
    train = study.select(process=args.process, split="train")  # checked before the lock
    config = hx.FitConfig(
        steps=args.steps,
        learning_rate=args.lr,
        members=args.members,
        seed=args.seed,
        likelihood=args.likelihood,
        solver=_solver(args, TRAINING),
    )
    out = Path(args.out)
    with writer(out, wait=args.wait):  # the model and its checkpoint from this run alone
        result = hx.fit(
            model, study, process=args.process, config=config, checkpoint=out / "checkpoint"
        )
        hx.save_fit(result, out)
    print(f"fitted {len(train.batch_names)} batches of process {args.process!r}; saved to {out}/")
    print(_table(result.parameters))


def _transfer(args) -> None:
    import hybridxfer as hx

    from ._fit.checkpoint import writer

    if args.strategy not in hx.STRATEGIES:
        raise UsageError(
            f"--strategy {args.strategy!r}: expected one of {', '.join(hx.STRATEGIES)}"
        )
    source = hx.load_fit(args.model_dir)
    solver = _solver(args, source.config.solver)
    source = replace(source, config=replace(source.config, solver=solver))
    study = hx.read_study(args.study, units=source.model)
    config = replace(source.config, steps=args.steps) if args.steps else None
    out = Path(args.out)
    with writer(out, wait=args.wait):  # the model and its record from this run alone
        result = hx.transfer(
            source,
            study,
            process=args.process,
            strategy=args.strategy,
            config=config,
            progress=True,
        )
        hx.save_transfer(result, out)
        _pyplot()
        hx.write_record(out, "transfer.png", _png(hx.plot_transfer(result)))
    print(result.summary())
    print(
        f"saved the transferred model to {out}/ (transfer.txt: the report above; "
        "transfer.png: the candidates' scores and the parameters' distances)"
    )


def _predict(args) -> None:
    import hybridxfer as hx

    result = hx.load_fit(args.model_dir)
    study = _selected(hx.read_study(args.study, units=result.model), args)
    pred = hx.predict(result, study, times=args.points, level=args.level, cover=args.cover)
    band = pred.attrs.get("band", "no band")  # before the merge below, which drops attrs
    splits = study.batches.set_index("batch")
    pred.insert(1, "process", pred["batch"].map(splits["process"]))
    pred.insert(2, "split", pred["batch"].map(splits["split"]))
    keys = ["batch", "time", "variable"]
    measured = study.measurements[[*keys, "value"]].rename(columns={"value": "measured"})
    pred = pred.merge(measured, on=keys, how="left")  # NaN where nothing was measured
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pred.to_csv(args.out, index=False)
    print(f"wrote {args.out} ({len(study.batch_names)} batches; lower/upper: {band})")


def _selected(study, args):
    """The study's batches of ``--process`` and ``--split`` (each: all if not given)."""
    return study.select(process=args.process, split=args.split)


def _report(args) -> None:
    import hybridxfer as hx

    result = hx.load_fit(args.model_dir)
    study = hx.read_study(args.study, units=result.model) if args.study else None
    if study is not None:
        study = _selected(study, args)
    elif args.process or args.split or args.profile:
        raise UsageError("--process/--split/--profile need a study: give the study")
    free = [p.name for p in result.model.structure.parameters if not p.fixed]
    unknown = [name for name in args.profile if name not in free]
    if unknown:
        raise UsageError(
            f"--profile {unknown[0]}: not a free parameter of the model (free: {', '.join(free)})"
        )
    if args.profile and result.process not in study.processes:
        raise UsageError(
            f"--profile: the study has no batches of process {result.process!r}, which "
            "the model was fitted on"
        )
    _pyplot()
    out = hx.write_report(result, study, args.out, profiles=args.profile)
    print(f"wrote the report to {out}/ (open {out / 'report.md'})")


def _twin(args) -> None:
    import hybridxfer as hx

    fit = hx.load_fit(args.model_dir)
    model = fit.model
    stream = hx.read_stream(args.stream)
    estimates, refused, twin = hx.replay(
        fit,
        stream,
        return_twin=True,
        constants=_assignments(args.constant, "--constant"),
        progress=True,
        measurement_sd=_assignments(args.sd, "--sd", lambda x: 0 < x < math.inf, "SD > 0"),
        model_error=_assignments(
            args.model_error, "--model-error", lambda x: 0 <= x < math.inf, "FRACTION >= 0"
        ),
        process_noise=args.process_noise,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    estimates.to_csv(out, index=False)
    lines = estimates.rename(columns=dict(mean="value", lower95="lower", upper95="upper"))
    measured = stream[stream["variable"].isin(model.variable_names)].assign(batch="estimate")
    folder = out.parent / f"{out.stem}_plots"
    what = "real-time estimate with 95% band"
    plots = _plot_variables(lines.assign(batch="estimate"), measured, folder, model, what)
    print(
        f"replayed {len(stream)} rows up to t={estimates['time'].max():g}; wrote {out} and "
        f"{len(plots)} plots in {folder}/"
        + (f"; {len(refused)} row group(s) refused (see warnings)" if refused else "")
    )
    nis = twin.consistency()
    if nis["values"]:
        print(
            f"consistency: mean NIS per measured value {nis['nis']:.2f} (1 expected, 99% "
            f"range {nis['lower']:.2f}-{nis['upper']:.2f} over {nis['values']} values): "
            f"{nis['verdict']}"
        )


def _sweep(args) -> None:
    import hybridxfer as hx

    backend = "ray" if args.ray is not None else "processes" if args.workers > 1 else "serial"
    try:
        table = hx.run_sweep(
            args.sweep,
            args.out,
            backend=backend,
            address=args.ray or None,
            workers=args.workers,
            progress=True,
        )
    except KeyboardInterrupt:
        print(
            f"hybridxfer: interrupted; the finished jobs are kept in {Path(args.out) / 'jobs'}: "
            "the same command runs the rest",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    print(
        f"wrote {Path(args.out) / 'results.csv'} ({len(table)} rows): "
        f"{table.attrs['computed']} jobs run, {table.attrs['reused']} done before"
    )


DPI = 110  # of the PNGs the command line writes


def _pyplot():
    """matplotlib's pyplot, on the non-interactive backend: figures go to files only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_variables(lines, measurements, folder: Path, model, what: str) -> list[Path]:
    """``<variable>.png`` in `folder` for each variable of `lines`
    (:func:`hybridxfer.plot_simulation`)."""
    import hybridxfer as hx

    _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for variable in dict.fromkeys(lines["variable"]):
        fig = hx.plot_simulation(
            lines,
            variable,
            measurements,
            units=model.units,
            time_unit=model.structure.time_unit,
            what=what,
        )
        paths.append(folder / f"{variable}.png")
        paths[-1].write_bytes(_png(fig))
    return paths


def _png(fig) -> bytes:
    """`fig` as a PNG of :data:`DPI` dots per inch; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    _pyplot().close(fig)
    return buffer.getvalue()


def _assignments(
    items: list[str], option: str, ok=math.isfinite, number: str = "NUMBER"
) -> dict[str, float]:
    """``NAME=VALUE`` items of a repeated option as a dict; a VALUE must pass `ok`."""
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            out[name] = math.nan
        if not name or not ok(out[name]):
            raise UsageError(f"{option} {item!r}: expected NAME={number}")
    return out


def _table(frame) -> str:
    return frame.to_string(index=False, float_format=lambda x: f"{x:.4g}")


COMMANDS = {
    "demo": _demo,
    "simulate": _simulate,
    "fit": _fit,
    "transfer": _transfer,
    "predict": _predict,
    "report": _report,
    "twin": _twin,
    "sweep": _sweep,
}
"""Each command's body, by the name :func:`~hybridxfer._cli_parser.parser` gives it."""


class _Warnings:
    """Warnings as one line each, ``hybridxfer: warning: ...`` (no source line or path
    of the library's code), and one line per kind: a warning whose text differs from an
    earlier one's only in its numbers (the same rejected step at another step, say) is
    counted, not printed; :meth:`summary` says how many more of each kind came."""

    def __init__(self):
        self.count: dict[str, int] = {}

    def show(self, message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        kind = _NUMBER.sub("#", text)
        self.count[kind] = self.count.get(kind, 0) + 1
        if self.count[kind] == 1:
            print(f"hybridxfer: warning: {text}", file=file or sys.stderr)

    def summary(self) -> None:
        for kind, n in self.count.items():
            if n > 1:
                shown = kind if len(kind) <= 120 else kind[:117] + "..."
                print(f"hybridxfer: warning: {n - 1} more like: {shown}", file=sys.stderr)


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def main(argv: list[str] | None = None) -> int:
    shown = _Warnings()
    with warnings.catch_warnings():
        warnings.showwarning = shown.show
        try:  # apart: --help exits here, before the library's errors are imported
            args = parser().parse_args(argv)
        except UsageError as e:
            return _failed(e)
        from ._scale.run import keep_compiled_programs

        keep_compiled_programs()
        try:
            COMMANDS[args.command](args)
        except _user_errors() as e:
            return _failed(e)
        finally:
            shown.summary()
    return 0


def _failed(e: Exception) -> int:
    """Report a bad input in one line; the exit code 2."""
    print(f"hybridxfer: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
