"""benchmarks/suite.py: the band-coverage table, from hand-made cells."""

import pytest

from benchmarks.suite import coverage, coverage_markdown


def _band(xv, p):
    return {"Xv": dict(coverage=xv, width=0.2), "P": dict(coverage=p, width=0.4)}


def test_coverage_is_the_median_over_seeds_of_cells_run_with_todays_bands():
    rows = [
        dict(kind="source", target="A", band=_band(0.95, 1.0)),
        dict(kind="target", target="B1"),
        *(
            dict(kind="cell", target="B1", n=2, seed=s, reason="...", band=_band(xv, 0.9))
            for s, xv in enumerate((0.8, 1.0, 0.92))
        ),
        dict(kind="cell", target="B1", n=1, seed=0, reason="...", band=_band(0.5, 0.6)),
        dict(kind="cell", target="B1", n=2, seed=3, band=_band(0.0, 0.0)),  # earlier rules
        dict(kind="cell", target="U", n=2, seed=0, reason="...", band={"error": "failed"}),
    ]
    table = coverage("cho_glutamine", rows)
    assert list(zip(table["case"], table["n"])) == [("source fit", 0), ("B1", 1), ("B1", 2)]
    b1 = table[(table["case"] == "B1") & (table["n"] == 2)].iloc[0]
    assert b1["coverage", "Xv"] == 0.92 and b1["coverage", "P"] == 0.9
    assert b1["seeds", "Xv"] == 3 and b1["width", "P"] == pytest.approx(0.4)
    text = coverage_markdown("cho_glutamine", rows)
    assert "| source fit |  | 1 | 0.95 | 1.00 | 0.20 | 0.40 |" in text
    # 6 case-variables: 0.95, 1.0, 0.5, 0.6, 0.92, 0.9 -> median 0.91; inside 3 (50%)
    assert "median coverage 0.91; inside 0.90-0.98 50%; at or above 0.90 67%" in text
