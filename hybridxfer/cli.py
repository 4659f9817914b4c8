"""Command line: ``hybridxfer demo | simulate`` (see DESIGN.md §5).

Exit code 0 on success; on bad input one line ``hybridxfer: error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .expressions import ExpressionError
from .model import ModelError
from .model_file import ModelFileError
from .parameters import ParameterError
from .reactor import ReactorError
from .simulation import SimulationError
from .study import StudyError

USER_ERRORS = (
    ExpressionError,
    ModelError,
    ModelFileError,
    ParameterError,
    ReactorError,
    SimulationError,
    StudyError,
    FileNotFoundError,
)


def _demo(args) -> None:
    from .demo import run_demo

    run_demo(args.out)


def _simulate(args) -> None:
    from .model_file import load_model
    from .plots import plot_simulation
    from .simulation import Solver, simulate
    from .study import read_study

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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hybridxfer", description="Hybrid mechanistic-ML bioreactor models with transfer."
    )
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the main job on the built-in data")
    demo.add_argument("--out", default="hybridxfer-demo", help="output folder")
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except USER_ERRORS as e:
        print(f"hybridxfer: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
