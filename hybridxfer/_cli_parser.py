"""The command line's argument parser: its commands and options, their checks (a bad
argument is a :class:`UsageError`, one line), and the help that states every default
and ends each command with an example. The commands' bodies are
:mod:`hybridxfer.cli`'s.

Light on purpose: this module imports only :mod:`argparse` and :mod:`math`, and the
parser, when built, only the solver names and default settings (plain strings and
numbers: :mod:`hybridxfer._io.names`, :mod:`hybridxfer._core.solver_defaults`); no
diffrax, pandas or optax, so that ``hybridxfer --help`` is fast.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["EXAMPLES", "UsageError", "parser"]


class UsageError(ValueError):
    """An argument the parser could not check (its choices live in the library)."""


def _describe(settings: dict) -> str:
    """Solver settings (:mod:`hybridxfer._core.solver_defaults`) in words, e.g.
    ``tsit5, rtol 1e-06, atol 1e-09, 4096 steps``."""
    return (
        f"{settings['name']}, rtol {settings['rtol']:g}, atol {settings['atol']:g}, "
        f"{settings['max_steps']} steps"
    )


def _solver_arguments(p: argparse.ArgumentParser, default: str) -> None:
    """The solver options of a command whose default solver is `default`; the solver
    and its options are saved with a fitted model."""
    from ._io.names import SOLVERS

    p.add_argument(
        "--solver",
        choices=SOLVERS,
        help=f"ODE solver (default: {default}); kvaerno5 (implicit) for stiff models (a fit "
        "whose explicit solver runs out of steps on its first step switches to it, warning)",
    )
    p.add_argument("--rtol", type=float, help="relative tolerance of the adaptive step")
    p.add_argument("--atol", type=float, help="absolute tolerance of the adaptive step")
    p.add_argument(
        "--max-steps", type=int, help="step budget per solve interval (output time or event)"
    )


class _Help(argparse.RawDescriptionHelpFormatter):
    """Help that states each option's default (where it has one and the text does not
    already say it) and keeps the examples' line breaks."""

    def _get_help_string(self, action):
        text = action.help or ""
        given = not any(action.default is x for x in (None, False, argparse.SUPPRESS))
        if given and "default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


EXAMPLES = {
    "demo": "hybridxfer demo --out demo",
    "simulate": "hybridxfer simulate model.toml study/ --out sim\n"
    "  hybridxfer simulate ecoli.toml study/ --out sim --solver kvaerno5   # a stiff model",
    "fit": "hybridxfer fit model.toml study/ --process A --out fitted --members 4\n"
    "  hybridxfer fit ecoli.toml study/ --process src --out m --solver kvaerno5 --rtol 1e-6",
    "transfer": "hybridxfer transfer fitted/ study/ --process B --out target",
    "predict": "hybridxfer predict target/ study/ --process B --split test --out pred.csv",
    "report": "hybridxfer report fitted/ study/ --process A --out report",
    "twin": "hybridxfer twin target/ stream.csv --out estimates.csv --constant Sf=50",
    "sweep": "hybridxfer sweep sweep.toml --out runs --ray 10.0.0.1:6379",
}


def _command(sub, name: str, help: str) -> argparse.ArgumentParser:
    """A subcommand whose help states the defaults and ends with examples."""
    return sub.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog="example:\n  " + EXAMPLES[name],
        formatter_class=_Help,
    )


def _checked(convert, ok, expected: str):
    """An argument type: `convert` of the text, refused unless `ok` (argparse then
    names the argument: ``argument --steps: expected a whole number >= 1, not '0'``)."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, not {text!r}")
        return value

    return parse


COUNT = _checked(int, lambda n: n >= 1, "a whole number >= 1")
POINTS = _checked(int, lambda n: n >= 2, "a whole number >= 2")
POSITIVE = _checked(float, lambda x: 0 < x < math.inf, "a positive number")
NONNEGATIVE = _checked(float, lambda x: 0 <= x < math.inf, "a number >= 0")
SECONDS = _checked(float, lambda x: 0 <= x < math.inf, "0 or more seconds")
PROBABILITY = _checked(float, lambda x: 0 < x < 1, "a number between 0 and 1")


def _wait_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait",
        type=SECONDS,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another writer of --out to finish (default 0: refuse at "
        "once, naming it)",
    )


def _selection_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--process", help="only this process's batches (default: every process)")
    p.add_argument(
        "--split", help="only this split's batches: train, valid or test (default: every split)"
    )


class _Parser(argparse.ArgumentParser):
    """A parser whose errors are :class:`UsageError` (one line, exit code 2, as every
    other bad input), not argparse's usage text and exit."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def parser() -> argparse.ArgumentParser:
    """The parser of ``hybridxfer``'s arguments; ``command`` names the command given
    (its body: :data:`hybridxfer.cli.COMMANDS`)."""
    p = _Parser(
        prog="hybridxfer", description="Hybrid mechanistic-ML bioreactor models with transfer."
    )
    from ._core.solver_defaults import DEFAULT, TRAINING

    sub = p.add_subparsers(dest="command", required=True)

    demo = _command(sub, "demo", "run the main job on the built-in data")
    demo.add_argument("--out", default="hybridxfer-demo", help="output folder")
    demo.add_argument("--steps", type=COUNT, default=400, help="maximum gradient steps of the fit")

    sim = _command(sub, "simulate", "simulate every batch of a study")
    sim.add_argument("model", help="model file (TOML)")
    sim.add_argument("study", help="study folder (measurements.csv, inputs.csv, batches.csv)")
    sim.add_argument("--out", required=True, help="output folder")
    sim.add_argument("--points", type=POINTS, default=101, help="output points per batch")
    _solver_arguments(sim, _describe(DEFAULT))

    fit = _command(sub, "fit", "fit a hybrid model to the train batches of a process")
    fit.add_argument("model", help="model file (TOML)")
    fit.add_argument("study", help="study folder")
    fit.add_argument("--process", required=True, help="process whose batches to fit")
    fit.add_argument("--out", required=True, help="model folder (also holds the checkpoint)")
    fit.add_argument("--steps", type=COUNT, default=1500, help="maximum gradient steps")
    fit.add_argument("--lr", type=POSITIVE, default=1e-2, help="peak learning rate")
    fit.add_argument("--members", type=COUNT, default=1, help="random restarts / ensemble size")
    fit.add_argument(
        "--seed", type=int, default=0, help="seed of the networks' initial weights (PRNG key)"
    )
    fit.add_argument(
        "--likelihood",
        default="scaled",
        choices=["scaled", "gaussian"],
        help="loss: range-scaled squared error, or Gaussian with a fitted noise per variable",
    )
    _solver_arguments(fit, _describe(TRAINING))
    _wait_argument(fit)

    tr = _command(sub, "transfer", "transfer a fitted model to another process")
    tr.add_argument("model_dir", help="saved source model folder")
    tr.add_argument("study", help="study folder with the target's (and the source's) batches")
    tr.add_argument("--process", required=True, help="the target process")
    tr.add_argument(
        "--strategy", default="auto", help="auto (default) or one of hybridxfer.STRATEGIES"
    )
    tr.add_argument("--out", required=True, help="folder for the transferred model")
    tr.add_argument(
        "--steps", type=COUNT, default=None, help="maximum gradient steps (default: transfer's)"
    )
    _solver_arguments(tr, "the source fit's")
    _wait_argument(tr)

    pred = _command(sub, "predict", "predict every batch of a study, with calibrated bands")
    pred.add_argument("model_dir", help="saved model folder")
    pred.add_argument("study", help="study folder (t=0 values, inputs, constants)")
    pred.add_argument("--out", required=True, help="CSV file to write")
    pred.add_argument("--points", type=POINTS, default=None, help="output points per batch")
    pred.add_argument(
        "--level", type=PROBABILITY, default=0.95, help="probability of the band (default 0.95)"
    )
    pred.add_argument(
        "--cover",
        choices=["state", "measurement"],
        default="state",
        help="what the band holds: the true state (default) or a new measurement",
    )
    _selection_arguments(pred)

    rep = _command(sub, "report", "plots and parameter table of a saved model")
    rep.add_argument("model_dir", help="saved model folder")
    rep.add_argument("study", nargs="?", help="study to compare predictions with")
    rep.add_argument("--out", required=True, help="output folder")
    rep.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="PARAMETER",
        help="also its profile likelihood (repeat for more; needs the study the model "
        "was fitted on)",
    )
    _selection_arguments(rep)

    tw = _command(sub, "twin", "replay a recorded batch stream through a digital twin")
    tw.add_argument("model_dir", help="saved model folder")
    tw.add_argument("stream", help="stream CSV: time, variable, value [, sd, sample_time]")
    tw.add_argument("--out", required=True, help="CSV file for the estimates (plots beside it)")
    tw.add_argument("--constant", action="append", default=[], help="batch constant NAME=VALUE")
    tw.add_argument("--sd", action="append", default=[], help="measurement sd NAME=VALUE")
    tw.add_argument(
        "--model-error",
        action="append",
        default=[],
        help="relative model error NAME=FRACTION, added to the measurement sd (default: "
        "the relative RMSE of the saved fit's held-out residuals)",
    )
    tw.add_argument(
        "--process-noise",
        type=NONNEGATIVE,
        default=None,
        help="relative state drift per sqrt(time) (default: from the saved fit's residuals)",
    )

    sw = _command(
        sub,
        "sweep",
        "fit a source once and transfer it to each process x strategy x seed of a "
        "sweep file, resumably",
    )
    sw.add_argument("sweep", help="sweep file (TOML: model, study, source, processes, ...)")
    sw.add_argument(
        "--out", required=True, help="folder for results.csv, jobs/ (each job's result), models/"
    )
    sw.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run the jobs as Ray tasks: on the cluster at ADDRESS (ray start --head prints "
        "it), or without ADDRESS on a Ray instance started for this run",
    )
    sw.add_argument(
        "--workers",
        type=COUNT,
        default=1,
        help="without --ray: local worker processes (default 1: one job after another)",
    )
    return p
