"""benchmarks/selection.py: leave-one-family-out choice of a rule's parameter."""

import numpy as np
import pandas as pd

from benchmarks.selection import leave_one_family_out


def test_parameter_is_chosen_on_the_other_families_only():
    """Family F1 favours pick(0.0), F2 and F3 favour pick(0.5): held-out F1 gets 0.5
    (chosen on F2, F3) and is scored with it; held-out F2 gets the parameter with the
    lower mean log ratio over F1 and F3, computed here by hand."""
    rows = []
    scores = {"F1": (1.0, 2.0), "F2": (3.0, 1.0), "F3": (2.0, 1.5)}  # (t=0.0, t=0.5)
    for family, (s0, s5) in scores.items():
        for value, score in ((0.0, s0), (0.5, s5)):
            rows.append(
                dict(family=family, target="B", seed=0, related=True, auto=1.0, none=4.0)
                | {"scratch": 2.0, "truth-refit": 1.0, "rule": "pick", "value": value}
                | {"score": score}
            )
    lofo = leave_one_family_out(pd.DataFrame(rows)).set_index("family")
    assert lofo.loc["F1", "chosen"] == 0.5 and lofo.loc["F1", "vs_best"] == 2.0 / 2.0
    log = {
        v: np.mean([np.log(scores[f][i] / 2.0) for f in ("F1", "F3")])
        for i, v in enumerate((0.0, 0.5))
    }
    assert lofo.loc["F2", "chosen"] == min(log, key=log.get)
    assert lofo.loc["F3", "vs_refit"] == scores["F3"][int(lofo.loc["F3", "chosen"] == 0.5)] / 1.0
