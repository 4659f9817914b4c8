"""The choice among candidates: scores per validation view, and ``auto``'s rule."""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["AVERAGE_POWER", "choose"]

AVERAGE_POWER = 2.0


def choose(strategy: str, table: pd.DataFrame, n_folds: int) -> tuple[str, str, dict[str, float]]:
    """The candidate whose model is the result, why, and each candidate's weight in the
    result's predictions (those without one weigh 0).

    ``auto``: every candidate with a finite score s, weighted
    :math:`w \\propto (s_{best} / s)^b` with b = :data:`AVERAGE_POWER`; the best's model
    is the result's. With 1-3 batches the best score is a noisy guess: candidates
    within tens of percent of it predict new batches better about as often as it
    does, and their weighted mean errs less than any one of them
    (``benchmarks/results/selection.md``: b and the rule chosen by leave-one-family-out
    over four families at 2 batches; at 1 batch, on 14 cells run after, median / worst
    0.91 / 1.36 of the better baseline against 1.03 / 1.54 for picking the candidate
    that trains the fewest values within 20% of the best score, auto's rule before).
    Any other strategy: itself, alone."""
    score = dict(zip(table["candidate"], table["validation"]))
    how = f"the late points and {n_folds}-fold cross-validation" if n_folds else "validation"
    base = f"none {score['none']:.3g}, scratch {score['scratch']:.3g}"
    if strategy != "auto":
        verdict = (
            "better" if score[strategy] < min(score["none"], score["scratch"]) else "NOT better"
        )
        why = f"strategy {strategy!r} as asked; on {how} it is {verdict} than a baseline"
        return strategy, why, {strategy: 1.0}
    best = min(score, key=score.get)
    w = {n: (score[best] / s) ** AVERAGE_POWER for n, s in score.items() if math.isfinite(s)}
    w = {n: x / sum(w.values()) for n, x in sorted(w.items(), key=lambda kv: -kv[1])}
    top = ", ".join(f"{n} {x:.2f}" for n, x in list(w.items())[:4])
    why = (
        f"the {len(w)} candidates' predictions averaged with weights (best score / "
        f"score)^{AVERAGE_POWER:g} on {how} ({top}{', ...' if len(w) > 4 else ''}; "
        f"relative loss: {best!r} {score[best]:.3g}, {base}); {best!r}'s model"
    )
    return best, why, w
