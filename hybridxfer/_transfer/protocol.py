"""The validation protocol of a transfer: which members each candidate trains and
which observations score them.

Each candidate's *full* member trains on all the target's training batches and is
scored on the ``valid`` batches, else on the latest time points of each batch. For
``auto`` with several batches and no ``valid`` ones, cross-validation scores the
candidates too (leave-one-batch-out with 2 or 3 batches), its folds being further
members of the same fit; the full members of all but the baselines then train on
every time point, and a *late* member per candidate (trained on the early points)
gives the late-point score.
"""

from __future__ import annotations

from .._data.study import Study
from .._fit import Plan, Validation
from .strategies import BASELINES

__all__ = ["MAX_FOLDS", "folds", "members"]

MAX_FOLDS = 3


def folds(target: Study, strategy: str) -> list[tuple[str, ...]]:
    """The held-out batches of each cross-validation fold: for ``auto`` with several
    training batches and no valid ones, ``k = min(n, MAX_FOLDS)`` folds (batch i in
    fold i mod k); else none."""
    splits = dict(zip(target.batches["batch"], target.batches["split"]))
    train = [b for b, s in splits.items() if s == "train"]
    if strategy != "auto" or len(train) < 2 or "valid" in splits.values():
        return []
    k = min(len(train), MAX_FOLDS)
    return [tuple(train[i::k]) for i in range(k)]


def members(
    plans: dict[str, Plan], folds: list[tuple[str, ...]]
) -> dict[tuple[str, str], tuple[Plan, Validation]]:
    """Each candidate's members, by (candidate, role), in member order: ``full``, its
    result, trained on every training batch (with folds on every time point too, but for
    the :data:`BASELINES`, fitted as their strategies are); with folds also ``late``,
    trained on the early time points and scored on the late ones (for the baselines,
    their full member is), and ``fold1``... holding out each fold's batches."""
    out = {}
    for name, plan in plans.items():
        own_late = bool(folds) and name not in BASELINES
        out[name, "full"] = (plan, Validation(all_points=own_late))
        if own_late:
            out[name, "late"] = (plan, Validation())
        for j, held_out in enumerate(folds):
            out[name, f"fold{j + 1}"] = (plan, Validation(held_out=held_out))
    return out
