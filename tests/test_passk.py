"""pass^k and pass@k: checked against math.comb (exact binomials) and hand-computed values."""

from __future__ import annotations

import math

import polars as pl
import pytest

from kpictl.engine.kpis import pass_k_probability


@pytest.mark.parametrize(
    ("n", "c", "k"), [(5, 3, 2), (10, 7, 3), (4, 4, 4), (4, 0, 1), (8, 2, 3), (3, 1, 1), (6, 5, 6)]
)
def test_pass_k_matches_exact_binomials(n: int, c: int, k: int) -> None:
    frame = pl.DataFrame({"n": [n], "c": [c]})
    hat, at = frame.select(
        pass_k_probability(pl.col("n"), pl.col("c"), k, False).alias("hat"),
        pass_k_probability(pl.col("n"), pl.col("c"), k, True).alias("at"),
    ).row(0)
    assert hat == pytest.approx(math.comb(c, k) / math.comb(n, k), rel=1e-12)
    assert at == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), rel=1e-12)


def test_hand_values() -> None:
    # n=5, c=3, k=2: pass^2 = C(3,2)/C(5,2) = 3/10; pass@2 = 1 − C(2,2)/C(5,2) = 9/10
    frame = pl.DataFrame({"n": [5, 4], "c": [3, 2]})
    values = frame.select(
        pass_k_probability(pl.col("n"), pl.col("c"), 2, False).alias("hat"),
        pass_k_probability(pl.col("n"), pl.col("c"), 2, True).alias("at"),
    )
    # n=4, c=2: pass^2 = 1/6, pass@2 = 1 − 1/6 = 5/6
    assert values.get_column("hat").to_list() == pytest.approx([0.3, 1 / 6])
    assert values.get_column("at").to_list() == pytest.approx([0.9, 5 / 6])
