"""Transfer strategies as plans: what each may change, part by part.

=====================  =====================================================
strategy               plan
=====================  =====================================================
``none``               nothing changes: the source model as is
``scratch``            everything learned afresh from the declared values
``refit-mechanistic``  process-specific parameters refit; networks frozen
``fine-tune``          everything tuned from the source, learning rate x0.2
``fine-tune-last``     parameters and the networks' last layers tuned
``l2sp``               fine-tune, pulled toward the source (uncertainty-aware)
``embedding``          only the parameters the networks read (the process's
                       embedding vector) refit; networks frozen. Needs a source
                       fitted on several processes with such parameters
                       declared process-specific (see :class:`~hybridxfer.Network`)
``multitask``          source and target fitted together; shared networks,
                       process-specific parameters per process
``auto``               the above but multitask (whose every member would
                       solve the source's batches too: ~9x the cost per
                       member) and per-part plans (one network tuned and
                       the others frozen, or one frozen and the others
                       tuned: 2N plans for N networks, all mixed ones up to
                       3), chosen by validation on the target's own batches
=====================  =====================================================
"""

from __future__ import annotations

import itertools

import equinox as eqx
import jax

from .._core.model import HybridModel
from .._fit import Plan

__all__ = ["BASELINES", "STRATEGIES", "candidate_plans", "starts_as_source", "trained_values"]

BASELINES = ("none", "scratch")  # always candidates; fitted as their strategies are

STRATEGIES = (
    "none",
    "scratch",
    "refit-mechanistic",
    "fine-tune",
    "fine-tune-last",
    "l2sp",
    "embedding",
    "multitask",
    "auto",
)


def candidate_plans(
    model: HybridModel, strategy: str, source_process: str | None, anchor_sd: dict
) -> dict[str, Plan]:
    """The plans a strategy tries, by name: itself (several for ``auto``) plus the
    baselines ``none`` and ``scratch``. ``multitask`` needs `source_process`."""
    nets = list(model.networks)
    specific = tuple(p.name for p in model.structure.parameters if p.process_specific)
    frozen = dict.fromkeys(nets, "frozen")
    plans = {
        "none": Plan(parameters=(), networks=frozen),
        "scratch": Plan(from_declared=True),
        "refit-mechanistic": Plan(parameters=specific or None, networks=frozen),
        "fine-tune": Plan(networks=dict.fromkeys(nets, "tune"), learning_rate=0.2),
        "fine-tune-last": Plan(networks=dict.fromkeys(nets, "last-layer"), learning_rate=0.5),
        "l2sp": Plan(
            networks=dict.fromkeys(nets, "tune"),
            anchor=0.01,
            anchor_sd=anchor_sd,
            learning_rate=0.5,
        ),
    }
    embedding = tuple(  # parameters that networks read: a per-process vector
        p.name
        for p in model.structure.parameters
        if any(p.name in net.spec.inputs for net in model.networks.values())
    )
    if embedding:
        plans["embedding"] = Plan(parameters=embedding, networks=frozen)
    if source_process is not None and strategy == "multitask":
        plans["multitask"] = Plan(
            networks=dict.fromkeys(nets, "tune"), joint=(source_process,), learning_rate=0.5
        )
    if strategy == "auto":
        # no network re-learned alone: from a random start on a few batches it was
        # seldom the best, noisy validation often picked it, and it is the slowest
        # member (stiff solves); scratch re-learns them all (benchmarks/transfer.py).
        # Per-part plans one step from the uniform ones: one network tuned, or one
        # frozen (all mixed plans up to 3 networks; 2N of the 2^N - 2 beyond)
        for modes in itertools.product(("frozen", "tune"), repeat=len(nets)):
            if modes.count("tune") in (1, len(nets) - 1) and len(set(modes)) > 1:
                name = "parts[" + ",".join(f"{n}={m}" for n, m in zip(nets, modes)) + "]"
                plans[name] = Plan(parameters=specific or None, networks=dict(zip(nets, modes)))
        return plans
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    if strategy not in plans:
        needs = {
            "embedding": "networks that read process-specific parameters (an embedding, e.g. "
            'z1 = { value = 0, unit = "1", positive = false, process_specific = true } among '
            "a network's inputs), fitted on several processes",
            "multitask": "the source process's batches in the study",
        }
        raise ValueError(f"strategy {strategy!r} needs {needs[strategy]}")
    return {k: plans[k] for k in dict.fromkeys([*BASELINES, strategy])}


def starts_as_source(plan: Plan, model: HybridModel) -> bool:
    """Whether a member following `plan` starts with `model`'s values unchanged."""
    return not plan.from_declared and all(plan.network_mode(n) != "relearn" for n in model.networks)


def trained_values(model: HybridModel, plan: Plan) -> int:
    """How many values `plan` trains (free parameters, per process for process-specific
    ones if joint, and network weights): a measure of how much it changes."""
    free = [p for p in model.structure.parameters if not p.fixed]
    count = sum(
        (1 + len(plan.joint) if p.process_specific else 1)
        for p in free
        if plan.fits_parameter(p.name)
    )
    for name, net in model.networks.items():
        layers = {"frozen": [], "last-layer": net.mlp.layers[-1:]}.get(
            plan.network_mode(name), net.mlp.layers
        )
        count += sum(x.size for x in jax.tree.leaves(eqx.filter(layers, eqx.is_inexact_array)))
    return int(count)
