"""The transfer benchmark's acceptance arithmetic (benchmarks/transfer.py), on rows
whose answer is known."""

import numpy as np

from benchmarks import transfer as transfer_benchmark


def rows(ratio: float, seeds: int = 7) -> list[dict]:
    """Per seed, scratch's NRMSE drawn at random and auto's exactly `ratio` times it."""
    scratch = np.random.default_rng(1).uniform(0.04, 0.12, seeds)
    return [
        dict(target="B", seed=s, n=2, strategy=name, nrmse_Xv=v, nrmse_P=v)
        for s, x in enumerate(scratch)
        for name, v in (("scratch", x), ("auto", ratio * x))
    ]


def test_a_paired_ratio_has_no_spread_over_seeds():
    """auto is 0.55 x scratch on every seed: every resample's ratio of medians is 0.55
    (an unpaired resample would spread it)."""
    ci = transfer_benchmark.ratio_ci(rows(0.55), "B", ("auto", 2), [("scratch", 2)])
    assert ci == "90% CI x0.55-0.55"


def test_the_forty_percent_check_passes_and_fails_at_its_threshold():
    for ratio, passed in ((0.59, True), (0.61, False)):
        r = rows(ratio)
        check = transfer_benchmark.checks(transfer_benchmark.summary(r), r, [])[0]
        assert check["check"].startswith("B, n=2") and check["passed"] is passed


def test_the_time_check_needs_both_cold_calls_under_fifteen_seconds():
    """The cold call in the benchmark's process and the one in a fresh process both count."""
    times = [dict(strategy="auto", seconds=14.5), dict(strategy="auto", seconds=4.3)]
    r = rows(0.5)
    for fresh, passed in ((14.9, True), (16.1, False)):
        alone = [dict(strategy="none", seconds=20.0), dict(strategy="auto", seconds=fresh)]
        check = transfer_benchmark.checks(transfer_benchmark.summary(r), r, times, alone)[-1]
        assert check["check"].startswith("B: transfer (auto)") and check["passed"] is passed
        assert f"in a fresh process {fresh:.1f} s" in check["value"]
