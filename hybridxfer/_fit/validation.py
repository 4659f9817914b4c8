"""Validation: which observations train a member and which score it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._data.batch_data import BatchData
from .._data.study import Study, StudyError
from .plan import Plan

__all__ = ["Validation", "check_held_out", "observation_weights"]


@dataclass(frozen=True)
class Validation:
    """Which of the primary process's observations train a member and which score it
    (its early stopping and its score). The default: the ``valid`` batches score; with
    none, the latest time points of each training batch (``FitConfig.holdout``) do.

    Attributes:
        held_out: training batches scored instead of trained on, as if their split were
            ``valid`` (one fold of a cross-validation whose folds train together as
            members of one fit).
        all_points: with no ``valid`` batches, train on every time point of the training
            batches instead of holding the latest out; the member is then scored by its
            training loss (no early stopping): for a member validated otherwise (e.g. by
            cross-validation folds).
    """

    held_out: tuple[str, ...] = ()
    all_points: bool = False

    def __post_init__(self):
        object.__setattr__(self, "held_out", tuple(self.held_out))


def observation_weights(
    study: Study,
    data: BatchData,
    holdout: float,
    process: str | None,
    plan: Plan,
    validation: Validation,
) -> np.ndarray:
    """Observation weights, shape (2, B, M): training (primary train batches 1, the
    plan's joint processes' batches ``plan.joint_weight``) and validation (primary valid
    batches, with the held-out batches among them; if none, the latest `holdout` of the
    primary train batches' time points, or with ``validation.all_points`` the training
    ones)."""
    B = data.mask.shape[0]
    split, proc = np.full(B, "", dtype=object), np.full(B, "", dtype=object)
    held = study.batches["batch"].isin(validation.held_out).to_numpy()
    split[: len(study.batch_names)] = np.where(held, "valid", study.batches["split"].to_numpy())
    proc[: len(study.batch_names)] = study.batches["process"].to_numpy()
    primary = proc == process if process is not None else proc != ""
    mask = np.asarray(data.mask)
    train = mask & (primary & (split == "train"))[:, None]
    if (primary & (split == "valid")).any():
        valid = mask & (primary & (split == "valid"))[:, None]
    elif validation.all_points:
        valid = train
    else:
        times = np.asarray(data.times)
        end = np.where(train, times, -np.inf).max(axis=1, keepdims=True)
        late = times > (1 - holdout) * end
        train, valid = train & ~late, train & late
    joint = mask & np.isin(proc, list(plan.joint))[:, None]
    return np.stack([train + plan.joint_weight * joint, valid]).astype(float)


def check_held_out(validations, study: Study, process: str | None) -> None:
    """Raise StudyError if a validation holds out batches that are not the primary
    process's ``train`` batches, or all of them."""
    b = study.batches
    train = set(b["batch"][(b["split"] == "train") & (b["process"] == (process or b["process"]))])
    of = f" of process {process!r}" if process is not None else ""
    for v in validations:
        if set(v.held_out) - train:
            raise StudyError(
                f"{study.name}: held-out batch(es) {sorted(set(v.held_out) - train)} are "
                f"not 'train' batches{of}"
            )
        if train <= set(v.held_out):
            raise StudyError(f"{study.name}: a plan holds out every 'train' batch{of}")
