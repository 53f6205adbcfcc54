"""`--approx-percentiles` on Spark (issue 13): the dialect's rule, percentile_approx with
accuracy 10,000, within Spark's documented bound of the exact quantile. Marked `spark` (run with
`pytest -m spark -n 0`, as tests/test_spark_engine.py); tests/test_approx.py holds the rest."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from kpictl.engine.spark import spark_session
from kpictl.sql.dialect import APPROX_ACCURACY, translate
from test_approx import rank_error

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """The group's local[2] session (Spark hands the running one back)."""
    session = spark_session("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session


def test_approx_percentiles_within_sparks_documented_bound(spark: Any) -> None:
    """On 50,000 lognormal values: each answer is one of the values, within rank
    n / accuracy of the exact quantile (Spark documents 1 / accuracy as the relative error;
    test_approx.rank_error)."""
    spark.sql("SELECT exp(5 + 1.2 * randn(13)) AS x FROM range(50000)").createOrReplaceTempView(
        "drawn"
    )
    values = np.asarray([r["x"] for r in spark.sql("SELECT x FROM drawn").collect()])
    for q in (0.5, 0.95, 0.99):
        sql = translate(f"QUANTILE_CONT(x, {q})", {}, "spark", approx=True).sql("spark")
        assert sql.startswith(f"PERCENTILE_APPROX(CAST(x AS DOUBLE), {q}, {APPROX_ACCURACY})")
        (got,) = spark.sql(f"SELECT {sql} AS v FROM drawn").collect()[0]
        assert got in set(values.tolist())
        assert rank_error(values, got, q) <= 1 / APPROX_ACCURACY + 1 / len(values), q
