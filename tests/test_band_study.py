"""benchmarks/bands.py: its rules' arithmetic against the library's bands, and the
leave-one-family-out choice, on hand-made tables."""

import numpy as np
import pandas as pd
import pytest

from benchmarks import bands
from hybridxfer._uncertainty.bands import band_widths

TIMES = np.arange(24.0, 24.0 * 11, 24.0)


def _cell(rng, error_cal: float, error_test: float, target="B1", seed=0) -> dict:
    """Two training batches (each held out by a fold), six test batches; relative
    errors of the given sd."""
    cal, test = [], []
    for b in range(2):
        for v, size in (("Xv", 10.0), ("P", 500.0)):
            truth = size * TIMES / TIMES[-1]
            predicted = truth * (1 + error_cal * rng.standard_normal(len(TIMES)))
            for held in (False, True):
                cal.append(
                    pd.DataFrame(
                        dict(batch=f"B-{b}", time=TIMES, variable=v, measured=truth, sd=np.nan)
                        | dict(noise=0.0, predicted=truth if not held else predicted, heldout=held)
                    )
                )
    for b in range(6):
        for v, size in (("Xv", 10.0), ("P", 500.0)):
            truth = size * TIMES / TIMES[-1]
            value = truth * (1 + error_test * rng.standard_normal(len(TIMES)))
            columns = dict(batch=f"T-{b}", time=TIMES, variable=v, value=value)
            test.append(pd.DataFrame(columns | dict(truth=truth, measured=truth)))
    test = pd.concat(test, ignore_index=True)
    cal = pd.concat(cal, ignore_index=True)
    return dict(target=target, n=2, seed=seed, calibration=cal, test=test)


def test_the_current_rule_is_the_librarys_band():
    rng = np.random.default_rng(0)
    cell = _cell(rng, 0.1, 0.05)
    cal, test = cell["calibration"], cell["test"]
    half = bands.half_widths(bands.Rule(), cal, test, {})
    widths = band_widths(cal, 0.95, "state")
    expected = test["variable"].map(widths["q"]) * (
        test["value"].abs() + test["variable"].map(widths["floor"])
    )
    np.testing.assert_allclose(half, expected.to_numpy(), rtol=1e-12)
    # the largest held-out error: fewer than 20 per variable
    held = cal[cal["heldout"] & (cal["variable"] == "P")]
    r = (held["measured"] - held["predicted"]) / (
        held["predicted"].abs() + widths.loc["P", "floor"]
    )
    assert widths.loc["P", "q"] == pytest.approx(np.abs(r).max())


def test_the_needed_factor_makes_the_band_hold_95_percent():
    rng = np.random.default_rng(1)
    records = {"f": dict(q_s={}, cells=[_cell(rng, 0.1, 0.08)])}
    need = bands.needed(records)
    cell = records["f"]["cells"][0]
    for v, factor in zip(need["variable"], need["needed"]):
        rows = cell["test"]["variable"] == v
        for c, inside in ((factor * 1.001, True), (factor * 0.95, False)):
            half = bands.half_widths(bands.Rule(deflate=c), cell["calibration"], cell["test"], {})
            coverage = bands.score(cell["test"][rows], half[rows.to_numpy()])[v]["coverage"]
            assert (coverage >= 0.95) == inside


def test_a_free_deflate_is_chosen_on_the_other_families():
    """Family 'wide' calibrates on errors twice the test's; the others on the test's
    own. Left out, 'wide' gets the others' deflate (about 1); in-sample, about 0.5."""
    rng = np.random.default_rng(2)
    records = {
        name: dict(
            q_s={},
            cells=[_cell(rng, sd, 0.05, target=t, seed=s) for t in ("B1", "B2") for s in range(2)],
        )
        for name, sd in (("wide", 0.1), ("a", 0.05), ("b", 0.05))
    }
    free = bands.Rule(deflate=None)
    table = bands.evaluate(records, {"deflate": free}, {"deflate, in-sample": free})
    table = table.set_index(["rule", "family"])
    assert 0.8 <= table.loc[("deflate", "wide"), "deflate"] <= 1.2
    assert 0.4 <= table.loc[("deflate, in-sample", "wide"), "deflate"] <= 0.7
    assert table.loc[("deflate", "wide"), "median"] == 1.0  # twice too wide: all inside
