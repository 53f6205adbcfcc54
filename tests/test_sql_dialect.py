"""kpictl's SQL rules per dialect (sql/dialect.py): each construct of the table in its docstring
printed for DuckDB and Spark, re-parsed in the target dialect, and the DuckDB form run on
DuckDB against a hand-computed value."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import polars as pl
import pytest
import sqlglot

from kpictl.sql.dialect import Dialect, SqlBuilder, Uncovered, translate

AS_OF = dt.datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=dt.UTC)
VALUES = {"as_of": AS_OF, "rate": 0.75, "label": "it's \\ here", "floor": -2}

CASES = [
    # (spec expression, DuckDB, Spark)
    (
        "TOTAL(x) FILTER (WHERE ok)",
        "CAST(COALESCE(SUM(x) FILTER(WHERE ok), 0) AS DOUBLE)",
        "CAST(COALESCE(SUM(x) FILTER(WHERE ok), 0) AS DOUBLE)",
    ),
    (
        "EXTRACT(EPOCH FROM b) - EXTRACT(EPOCH FROM a)",
        "(EPOCH_US(b) / 1e6) - (EPOCH_US(a) / 1e6)",
        "(UNIX_MICROS(b) / 1e6) - (UNIX_MICROS(a) / 1e6)",
    ),
    (
        "MEDIAN(x)",
        "QUANTILE_CONT(CAST(x AS DOUBLE), 0.5)",
        "PERCENTILE(CAST(x AS DOUBLE), 0.5)",
    ),
    (
        "QUANTILE_CONT(x, 0.95)",
        "QUANTILE_CONT(CAST(x AS DOUBLE), 0.95)",
        "PERCENTILE(CAST(x AS DOUBLE), 0.95)",
    ),
    (
        "FIRST(x) FILTER (WHERE ok)",
        "ARG_MIN_NULL(x, {'t': ts, 'r': row_pos}) FILTER(WHERE ok)",
        "MIN_BY(x, STRUCT(ts IS NULL AS n, ts AS t, row_pos AS r)) FILTER(WHERE ok)",
    ),
    (
        "a / b * rate",
        "a / b * 0.75",
        "CASE WHEN (b) = 0 THEN (a) * POWER(b, -1) ELSE TRY_DIVIDE(a, b) END * 0.75",
    ),
    ("x >= floor", "x >= -2", "x >= -2"),
    ("name = label", "name = 'it''s \\ here'", "name = 'it\\'s \\\\ here'"),
    (
        "ts <= as_of",
        "ts <= CAST('2026-01-02T03:04:05.250000+00:00' AS TIMESTAMPTZ)",
        "ts <= CAST('2026-01-02T03:04:05.250000+00:00' AS TIMESTAMP)",
    ),
]


@pytest.mark.parametrize(("sql", "duck", "spark"), CASES)
def test_rules_per_dialect(sql: str, duck: str, spark: str) -> None:
    cases: list[tuple[Dialect, str]] = [("duckdb", duck), ("spark", spark)]
    for dialect, expected in cases:
        text = translate(sql, VALUES, dialect, order=("ts", "row_pos")).sql(dialect=dialect)
        assert text == expected
        assert sqlglot.parse_one(text, read=dialect).sql(dialect=dialect) == text


def test_mature_and_window_order() -> None:
    got = translate("COUNT(*) FILTER (WHERE done) + TOTAL(x)", {}, "spark", mature="m")
    assert got.sql("spark") == (
        "COUNT(*) FILTER(WHERE (done) AND m) + CAST(COALESCE(SUM(x) FILTER(WHERE m), 0) AS DOUBLE)"
    )
    got = translate("LEAD(t) OVER (PARTITION BY u ORDER BY t)", {}, "spark", window_key="id")
    assert (
        got.sql("spark") == "LEAD(t) OVER (PARTITION BY u ORDER BY t NULLS LAST, `id` NULLS LAST)"
    )


def test_uncovered_constructs_are_named() -> None:
    with pytest.raises(Uncovered, match="FIRST/LAST outside a rollup"):
        translate("FIRST(x)", {}, "spark")
    with pytest.raises(Uncovered, match=r"the function LEVENSHTEIN\(\)"):
        translate("LEVENSHTEIN(a, b)", {}, "duckdb")


def test_statement_printed_in_the_target_dialect() -> None:
    builder = SqlBuilder("spark")
    hole = builder.expression("TOTAL(x) FILTER (WHERE ok)", {})
    text = builder.render(
        f'WITH a AS (SELECT CAST("my col" AS VARCHAR) AS c, {hole} AS s FROM t GROUP BY 1) '
        "SELECT * FROM a"
    )
    assert text == (
        "WITH a AS (SELECT CAST(`my col` AS STRING) AS c, "
        "CAST(COALESCE(SUM(x) FILTER(WHERE ok), 0) AS DOUBLE) AS s FROM t GROUP BY 1)\n"
        "SELECT * FROM a"
    )


def test_duckdb_forms_compute_the_numbers() -> None:
    """TOTAL with FILTER over no matching rows is 0.0; FIRST keeps a null value and breaks a
    tie of ts by row position; MEDIAN is exact; x / 0 is inf, as in polars."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES (1, NULL, TRUE, 1.0, 2), (1, 'b', TRUE, 2.0, 1),"
        " (2, 'c', FALSE, 4.0, 0)) v(ts, x, ok, y, row_pos)"
    )
    exprs = ["TOTAL(y) FILTER (WHERE NOT ok)", "FIRST(x)", "MEDIAN(y)", "MAX(y) / 0"]
    sql = ", ".join(
        translate(e, {}, "duckdb", order=("ts", "row_pos")).sql("duckdb") for e in exprs
    )
    got = con.execute(f"SELECT {sql} FROM t WHERE ts = 1").fetchone()
    # ts = 1 rows: ok both, so the FILTER sum is over none; first by row_pos: row 1 ('b')
    assert got == (0.0, "b", 1.5, float("inf"))


# a / b where b is zero (+0, -0.0, an integer 0), null, NaN or not zero; a of each sign, zero,
# null, NaN and inf: (a, b, integer a, integer b). tests/test_spark_engine.py runs the Spark
# rule over the same rows.
DIVISIONS = [
    (1.5, 0.0, 3, 0),
    (-1.5, 0.0, -3, 0),
    (0.0, 0.0, 0, 0),
    (None, 0.0, None, 0),
    (2.0, -0.0, 2, 0),
    (-2.0, -0.0, -2, 0),
    (0.0, -0.0, 0, 0),
    (1.0, None, 1, None),
    (float("nan"), 0.0, 1, 0),
    (float("inf"), 0.0, 1, 0),
    (1.0, float("nan"), 1, 2),
    (3.0, 4.0, 3, 4),
    (-3.0, float("inf"), -3, -4),
]
DIVISION_EXPRS = ["a / b", "ai / bi", "ai / b", "a / bi", "(a - 1) / (b * 2)"]


def division_rows() -> pl.DataFrame:
    return pl.DataFrame(
        DIVISIONS,
        schema={"a": pl.Float64, "b": pl.Float64, "ai": pl.Int64, "bi": pl.Int64},
        orient="row",
    )


def same_floats(got: list[float | None], want: list[float | None]) -> bool:
    """Equal as IEEE values: nulls at the same places, NaN where NaN, infinities signed."""

    def key(v: float | None) -> tuple[str, float]:
        if v is None:
            return ("null", 0.0)
        return ("nan", 0.0) if math.isnan(v) else ("num", v)

    return [key(g) for g in got] == [key(w) for w in want]


def test_division_by_zero_is_the_polars_value_on_duckdb() -> None:
    """x / 0 is ±inf by the signs of x and of the zero, 0 / 0 and NaN / 0 NaN, null over
    null: polars (the reference) and DuckDB's rule agree row by row."""
    frame = division_rows()
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, a DOUBLE, b DOUBLE, ai BIGINT, bi BIGINT)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?)", [(i, *row) for i, row in enumerate(DIVISIONS)]
    )
    for text in DIVISION_EXPRS:
        want = frame.select(pl.sql_expr(text).cast(pl.Float64)).to_series().to_list()
        sql = translate(text, {}, "duckdb").sql("duckdb")
        rows = con.execute(f"SELECT CAST({sql} AS DOUBLE) FROM t ORDER BY i").fetchall()
        assert same_floats([r[0] for r in rows], want), text
    # the reference itself, by hand: 1.5 / 0, -1.5 / 0, 0 / 0, null / 0, 2 / -0.0, -2 / -0.0
    by_hand = [float("inf"), float("-inf"), float("nan"), None, float("-inf"), float("inf")]
    assert same_floats(frame.select(pl.sql_expr("a / b")).to_series().to_list()[:6], by_hand)
