"""What every family's generator shares: batch counts, the batches' splits and
temperature shifts, and noisy measurements from the truth's simulation."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

import hybridxfer as hx

__all__ = ["default_counts", "noisy_measurements", "splits_and_shifts"]


def default_counts(processes: Iterable[str], source: str) -> dict[str, tuple[int, int, int]]:
    """(train, valid, test) batches per process: the source (8, 2, 0), every target
    (12, 0, 6): a pool of 12 to draw training batches from and 6 fixed test batches."""
    return {p: (8, 2, 0) if p == source else (12, 0, 6) for p in processes}


def splits_and_shifts(
    rng: np.random.Generator, count: tuple[int, int, int]
) -> tuple[list[str], np.ndarray]:
    """Each batch's split, and whether its recipe shifts the temperature: exactly 3 of
    every 4 batches of each split, which ones drawn at random."""
    splits = [s for s, k in zip(("train", "valid", "test"), count) for _ in range(k)]
    shifts = np.concatenate([rng.permutation(np.arange(k) % 4 != 3) for k in count])
    return splits, shifts


def noisy_measurements(
    sim: pd.DataFrame, study: hx.Study, rng: np.random.Generator, noise: float, digits: int
) -> pd.DataFrame:
    """The measurements of a truth's simulation `sim` of `study`'s batches:
    multiplicative noise ``value * (1 + noise * N(0, 1))`` clipped at 0 and rounded to
    `digits` decimals; the volume only at t = 0 (from `study`), the product P not at
    t = 0."""
    sim = sim[(sim["variable"] != "V") & ~((sim["variable"] == "P") & (sim["time"] == 0))]
    noisy = sim["value"] * (1 + noise * rng.standard_normal(len(sim)))
    v0 = study.measurements[study.measurements["variable"] == "V"]
    return pd.concat([sim.assign(value=noisy.clip(lower=0.0).round(digits)), v0])
