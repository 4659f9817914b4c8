"""The choice among candidates: scores per validation view, and ``auto``'s rule."""

from __future__ import annotations

import pandas as pd

__all__ = ["TOLERANCE", "choose"]

TOLERANCE = 0.2


def choose(strategy: str, table: pd.DataFrame, n_folds: int) -> tuple[str, str]:
    """The candidate used and why (``auto``: see :func:`transfer`)."""
    score = dict(zip(table["candidate"], table["validation"]))
    trained = dict(zip(table["candidate"], table["trained"]))
    how = f"the late points and {n_folds}-fold cross-validation" if n_folds else "validation"
    base = f"none {score['none']:.3g}, scratch {score['scratch']:.3g}"
    if strategy != "auto":
        verdict = (
            "better" if score[strategy] < min(score["none"], score["scratch"]) else "NOT better"
        )
        return strategy, f"strategy {strategy!r} as asked; on {how} it is {verdict} than a baseline"
    best = min(score, key=score.get)
    near = [n for n in score if score[n] <= (1 + TOLERANCE) * score[best]]
    chosen = min(near, key=lambda n: (trained[n], score[n]))
    why = (
        f"{chosen!r} has the best score on {how} ({score[chosen]:.3g}, relative loss; {base})"
        if chosen == best
        else f"{chosen!r} ({score[chosen]:.3g}) is within {TOLERANCE:.0%} of the best score "
        f"({best!r} {score[best]:.3g}; relative loss on {how}; {base}) and trains the fewest "
        f"values of those ({trained[chosen]} vs {trained[best]})"
    )
    return chosen, why
