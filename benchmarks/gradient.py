"""Benchmark: gradient / forward of a fit's solve, hybridxfer beside plain diffrax
(issue 29's "gradient <= 4x forward").

The peer task of ``peers.py`` (the CHO model, process A's 8 training and 2 valid
batches, Tsit5 at the fit's tolerances, float64) at hybridxfer's start values for seed
0. hybridxfer: the warm forward solve of every batch (``solve_batches``) and the warm
gradient of the fit's objective, as ``fit.py`` times them. Reference: the same model
written directly in diffrax (``peers.CHOPort``, ``peers.simulate_port``: segments
between samples, as the peer's users write it), batch by batch, its forward solve and
the gradient of its summed squared error, with diffrax's default adjoint
(``RecursiveCheckpointAdjoint()``) and with hybridxfer's (128 checkpoints). Warm,
medians of `repeats` alternating calls, in one process; JSON and Markdown.

    PYTHONPATH=. python benchmarks/gradient.py [--repeats 9] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import hybridxfer as hx
from hybridxfer.demo import demo_model_path

try:
    import fit
    import peers
except ImportError:  # imported as benchmarks.gradient
    from benchmarks import fit, peers


class PortSolver(eqx.Module):
    """What ``peers.simulate_port`` reads of a solver, with a chosen adjoint."""

    solver: diffrax.AbstractSolver
    rtol: float
    atol: float
    max_steps: int
    adjoint: diffrax.AbstractAdjoint
    dt0: None = None


def port_data(study: hx.Study):
    """Per batch: its sampling times, covariates, y0 and observations (T, 4; NaN where
    a variable was not sampled)."""
    covs = peers.port_inputs(study)
    out = []
    for b, g in study.measurements.groupby("batch", sort=False):
        at0 = g[g["time"] == 0].set_index("variable")["value"]
        g = g[g["variable"].isin(peers.VARIABLES)]
        ts = np.unique(g["time"].to_numpy(float))
        obs = np.full((len(ts), len(peers.VARIABLES)), np.nan)
        for j, v in enumerate(peers.VARIABLES):
            gv = g[g["variable"] == v]
            obs[np.searchsorted(ts, gv["time"].to_numpy(float)), j] = gv["value"].to_numpy(float)
        y0 = jnp.array([at0["Xv"], at0["Glc"], at0["Lac"], 0.0, at0["V"]])
        cov = {k: jnp.asarray(v) for k, v in covs[b].items()}
        out.append((jnp.asarray(ts), cov, y0, jnp.asarray(obs)))
    return out


def port_ratio(port, data, solver: PortSolver, repeats: int) -> dict:
    def forward(port):
        return [peers.simulate_port(port, ts, cov, y0, solver) for ts, cov, y0, _ in data]

    def loss(port):
        total = 0.0
        for ts, cov, y0, obs in data:
            ys = peers.simulate_port(port, ts, cov, y0, solver)[:, : obs.shape[1]]
            total += jnp.sum(jnp.where(jnp.isnan(obs), 0.0, ys - jnp.nan_to_num(obs)) ** 2)
        return total

    f, g = eqx.filter_jit(forward), eqx.filter_jit(eqx.filter_grad(loss))
    jax.block_until_ready((f(port), g(port)))  # compile
    runs = [(fit.timed(f, port)[0], fit.timed(g, port)[0]) for _ in range(repeats)]
    t_fwd, t_grad = (statistics.median(t) for t in zip(*runs))
    return {"forward_s": t_fwd, "gradient_s": t_grad, "ratio": t_grad / t_fwd}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    a = p.parse_args()
    study, _, _ = peers.task_studies()
    config = hx.FitConfig()
    model = peers.start_model(hx.load_model(demo_model_path()), study, 0)
    inputs = fit.objective_inputs(model, study)
    out = {
        "hybridxfer": fit.forward_and_gradient(
            model, fit.trainable(model, inputs[0]), inputs, config.solver, config, a.repeats
        )
    }
    port, data, s = peers.port_from_model(model, peer=False), port_data(study), config.solver
    for name, adjoint in (
        ("diffrax default adjoint", diffrax.RecursiveCheckpointAdjoint()),
        ("128 checkpoints", s.adjoint()),
    ):
        solver = PortSolver(s.solver, s.rtol, s.atol, s.max_steps, adjoint)
        out[f"plain diffrax, {name}"] = port_ratio(port, data, solver, a.repeats)
    info = dict(platform=platform.platform(), cpu_count=os.cpu_count(), jax=jax.__version__)
    info |= dict(diffrax=diffrax.__version__, repeats=a.repeats)
    info["date"] = datetime.datetime.now().isoformat(timespec="seconds")
    (a.out / "gradient.json").write_text(json.dumps(dict(info=info, results=out), indent=1))
    lines = [
        "# Gradient / forward: hybridxfer beside plain diffrax\n",
        __doc__.split("\n\n")[1].replace("\n", " ") + "\n",
        f"Machine: {info['platform']}, {info['cpu_count']} CPUs (shared), jax {info['jax']}, "
        f"diffrax {info['diffrax']}, {info['date']}.\n",
        "| solve | forward [ms] | gradient [ms] | gradient / forward |",
        "|---|---:|---:|---:|",
        *(
            f"| {k} | {1e3 * v['forward_s']:.1f} | {1e3 * v['gradient_s']:.1f} | {v['ratio']:.2f} |"
            for k, v in out.items()
        ),
    ]
    text = "\n".join(lines) + "\n"
    (a.out / "gradient.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
