"""kpictl.sql.tree answers every question about an expression from its parsed tree.

Each answer is checked against what the expression means: polars' own compilation of the text
as written (the same expression, the same columns, the same rows kept) or values by hand."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from kpictl.spec import load_spec
from kpictl.sql.tree import (
    Aggregate,
    AggregateKind,
    ExpressionProblem,
    Window,
    WindowOrder,
    additive_reason,
    aggregate,
    aggregate_kind,
    compared_aggregate,
    compared_literals,
    conjuncts,
    counts_rows,
    filter_condition,
    is_aggregate,
    is_row_level,
    names,
    parse,
    picked_column,
    ratio_parts,
    summed_columns,
    uses_row_order,
    window,
)

ROOT = Path(__file__).resolve().parents[1]


def _shipped_expressions() -> list[str]:
    """Every expression of the shipped spec (tables, KPIs, success, sample specs)."""
    found: list[str] = []
    for path in [ROOT / "kpi_definitions.yaml", *sorted((ROOT / "sample_logs").glob("*.yaml"))]:
        spec = load_spec(path)
        for table in spec.tables.values():
            found += [e.sql for e in (*table.rollup, *table.derive)]
            found += [table.where] if table.where else []
        for kpi in spec.kpis.values():
            found += [
                s for s in (kpi.where, kpi.mature, kpi.value, kpi.numerator, kpi.denominator) if s
            ]
            found += [kpi.formula] if kpi.formula else []
    return sorted(set(found))


SHIPPED = _shipped_expressions()
# Syntax the spec format accepts (README), beyond what the shipped spec uses.
ACCEPTED = [
    "COUNT(*) FILTER (WHERE event = 'reopen'\n  AND ts > resolved_at)",
    "FIRST(escalation_reason) FILTER (WHERE event = 'escalation')",
    "LAST(channel)",
    "MEDIAN(resolved_at - started_at)",
    "LEAD(started_at) OVER (PARTITION BY user_id, intent ORDER BY started_at)",
    "LAG(v * 10, 2) OVER (PARTITION BY a, b ORDER BY t ASC NULLS LAST)",
    "MAX(next_start) OVER (PARTITION BY user_id, intent, started_at)",
    "EXTRACT(EPOCH FROM resolved_at) - EXTRACT(EPOCH FROM started_at)",
    "COALESCE(resolved_at, started_at) <= as_of - INTERVAL '24 hours'",
    "CASE WHEN escalated THEN CASE WHEN channel = 'voice' THEN 2 ELSE 1 END ELSE 0 END",
    "role NOT IN ('agent', 'bot') AND result NOT LIKE 'Error%'",
    "csat IS NOT NULL AND x NOT BETWEEN 1 AND 2",
    "x = 'it''s = ''no''' AND y = 'a AND b = ''c'''",
    '"current_date" > x AND `order` = 1',
    "TOTAL(input_tokens) + TOTAL(output_tokens)",
    "COUNT(DISTINCT ticket)",
    "SUM(cost_usd)::DOUBLE / COUNT(*)",
    "x -- a comment\n",
    "payload.status = 'ok' AND x > 0",  # a struct field: polars reads the column payload
]


def test_the_shipped_spec_has_expressions_to_check() -> None:
    assert len(SHIPPED) > 30
    assert "QUANTILE_CONT(ttr_s, 0.95)" in SHIPPED


@pytest.mark.parametrize("sql", SHIPPED + ACCEPTED)
def test_polars_compiles_the_generated_text_to_the_expression_as_written(sql: str) -> None:
    """What polars runs is generated from the tree; it is the expression the user wrote."""
    written = pl.sql_expr(sql).meta.serialize(format="json")
    generated = pl.sql_expr(parse(sql).polars_sql).meta.serialize(format="json")
    assert generated == written


@pytest.mark.parametrize("sql", SHIPPED + ACCEPTED)
def test_the_names_read_are_the_columns_polars_reads(sql: str) -> None:
    assert set(names(sql)) == set(pl.sql_expr(sql).meta.root_names())


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("b + a + b", ("b", "a")),  # in the order written, once each
        ("AVG(CASE WHEN (event = 'feedback') THEN (csat) END)", ("event", "csat")),
        ("x = 'y AND z'", ("x",)),  # a string is not a name
        ('"a b" > `c`', ("a b", "c")),  # quoted names are names
        ("EXTRACT(EPOCH FROM ts)", ("ts",)),
        ("s.field = 'x' OR t > 0", ("s", "t")),  # a struct's field reads the struct
        ("COUNT(*)", ()),
        ("started_at <= as_of - INTERVAL '7 days'", ("started_at", "as_of")),
    ],
)
def test_names(sql: str, expected: tuple[str, ...]) -> None:
    assert names(sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("COUNT(*)", True),
        ("COUNT(*) FILTER (WHERE a) > 0", True),
        ("TOTAL(a) + TOTAL(b)", True),
        ("QUANTILE_CONT(x, 0.95)", True),
        ("x + 1", False),
        ("LEAD(x) OVER (PARTITION BY u ORDER BY t)", False),
        ("MAX(x) OVER (PARTITION BY u)", False),  # a window: one value per row
        ("1", False),
    ],
)
def test_is_aggregate_agrees_with_polars(sql: str, expected: bool) -> None:
    assert is_aggregate(sql) is expected
    if names(sql):  # one value for two rows is an aggregate, two values are not
        frame = pl.DataFrame({n: [True, False] if n == "a" else [1, 2] for n in names(sql)})
        height = frame.select(pl.sql_expr(sql)).height
        assert (height == 1) is expected


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("COUNT(*)", AggregateKind.COUNT),
        ("COUNT(x)", AggregateKind.COUNT),
        ("COUNT(*) FILTER (WHERE completed)", AggregateKind.COUNT_FILTER),
        ("COUNT(DISTINCT ticket)", AggregateKind.COUNT_DISTINCT),
        ("count(distinct ticket) filter (where ok)", AggregateKind.COUNT_DISTINCT),
        ("SUM(cost_usd)", AggregateKind.SUM),
        ("TOTAL(cost_usd)", AggregateKind.TOTAL),
        ("AVG(csat) FILTER (WHERE event = 'feedback')", AggregateKind.AVG),
        ("MIN(ts)", AggregateKind.MIN),
        ("MAX(x)", AggregateKind.MAX),
        ("MEDIAN(ttr_s)", AggregateKind.QUANTILE),
        ("QUANTILE_CONT(latency_ms, 0.95)", AggregateKind.QUANTILE),
        ("FIRST(reason) FILTER (WHERE event = 'escalation')", AggregateKind.FIRST_LAST),
        ("LAST(channel)", AggregateKind.FIRST_LAST),
        ("STDDEV(x)", AggregateKind.OTHER),
        ("TOTAL(a) + TOTAL(b)", AggregateKind.FORMULA),
        ("COUNT(*) FILTER (WHERE a) > 0", AggregateKind.FORMULA),
        ("SUM(x) / COUNT(*)", AggregateKind.FORMULA),
        ("x + 1", None),
        ("LEAD(x) OVER (PARTITION BY u ORDER BY t)", None),
    ],
)
def test_aggregate_kind(sql: str, kind: AggregateKind | None) -> None:
    assert aggregate_kind(sql) is kind


def test_count_distinct_is_its_own_kind_not_a_count() -> None:
    """COUNT(DISTINCT x) is not COUNT(x): the distinct values of two units do not add up."""
    frame = pl.DataFrame({"unit": [1, 1, 2, 2], "ticket": ["a", "b", "a", "b"]})
    per_unit = frame.group_by("unit").agg(pl.sql_expr("COUNT(DISTINCT ticket)").alias("n"))
    whole = frame.select(pl.sql_expr("COUNT(DISTINCT ticket)")).item()
    assert (per_unit.get_column("n").sum(), whole) == (4, 2)
    assert aggregate_kind("COUNT(DISTINCT ticket)") is AggregateKind.COUNT_DISTINCT


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("COUNT(*)", Aggregate(AggregateKind.COUNT, "COUNT", None, None)),
        (
            "COUNT(*) FILTER (WHERE status = 'ok')",
            Aggregate(AggregateKind.COUNT_FILTER, "COUNT", None, "status = 'ok'"),
        ),
        (
            "AVG(csat) FILTER (WHERE event = 'feedback')",
            Aggregate(AggregateKind.AVG, "AVG", "csat", "event = 'feedback'"),
        ),
        (
            "QUANTILE_CONT(ttr_s, 0.95)",
            Aggregate(AggregateKind.QUANTILE, "QUANTILE_CONT", "ttr_s", None, 0.95),
        ),
        ("MEDIAN(ttr_s)", Aggregate(AggregateKind.QUANTILE, "MEDIAN", "ttr_s", None, 0.5)),
        ("TOTAL(llm_cost)", Aggregate(AggregateKind.TOTAL, "TOTAL", "llm_cost", None)),
        ("sum(x)", Aggregate(AggregateKind.SUM, "SUM", "x", None)),
        ("SUM(x) + 1", None),
        ("x", None),
    ],
)
def test_aggregate_parts(sql: str, expected: Aggregate | None) -> None:
    assert aggregate(sql) == expected


def test_filter_condition_is_the_where_of_filter() -> None:
    condition = filter_condition("COUNT(*) FILTER (WHERE event = 'reopen'\n  AND ts > x)")
    assert condition == "event = 'reopen' AND ts > x"
    assert filter_condition("COUNT(*)") is None
    assert filter_condition("x > 1") is None


def test_an_aggregate_without_filter_counts_the_same_rows() -> None:
    frame = pl.DataFrame(
        {"g": [1, 1, 1, 2, 2], "ok": [True, False, None, False, False], "x": [1, 2, 3, 4, 5]}
    )
    for sql in (
        "COUNT(*) FILTER (WHERE ok)",
        "SUM(x) FILTER (WHERE ok)",
        "MAX(x) FILTER (WHERE ok)",
    ):
        found = aggregate(sql)
        assert found is not None
        rewritten = found.unfiltered()
        assert "FILTER" not in rewritten
        a = frame.group_by("g").agg(pl.sql_expr(sql).alias("v")).sort("g")
        b = frame.group_by("g").agg(pl.sql_expr(rewritten).alias("v")).sort("g")
        assert a.get_column("v").to_list() == b.get_column("v").to_list()
    # by hand: group 1 counts one ok row, group 2 none
    found = aggregate("COUNT(*) FILTER (WHERE ok)")
    assert found is not None
    counts = frame.group_by("g").agg(pl.sql_expr(found.unfiltered()).alias("v")).sort("g")
    assert counts.get_column("v").to_list() == [1, 0]


@pytest.mark.parametrize(
    ("sql", "aggregate_sql", "comparison"),
    [
        ("COUNT(*) FILTER (WHERE event = 'escalation') > 0", "COUNT", " > 0"),
        ("MIN(ts) FILTER (WHERE event = 'resolution')", "MIN", ""),
        ("SUM(x) >= -1.5", "SUM", " >= -1.5"),
    ],
)
def test_compared_aggregate(sql: str, aggregate_sql: str, comparison: str) -> None:
    found = compared_aggregate(sql)
    assert found is not None
    assert (found.aggregate.function, found.comparison) == (aggregate_sql, comparison)


@pytest.mark.parametrize("sql", ["SUM(x) > y", "SUM(x) + 1", "x > 0", "SUM(x) > SUM(y)"])
def test_no_compared_aggregate(sql: str) -> None:
    assert compared_aggregate(sql) is None


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # the bug of the text scanner: a newline before or after AND hid the conjunction
        ("a = 1 AND\n b = 2", ("a = 1", "b = 2")),
        ("event = 'reopen'\nAND ts > resolved_at", ("event = 'reopen'", "ts > resolved_at")),
        ("a = 1\tAND\tb = 2 and c", ("a = 1", "b = 2", "c")),
        ("event = 'a AND b'", ("event = 'a AND b'",)),  # in a string
        ("(a OR b) AND c", ("(a OR b)", "c")),
        ("a OR b AND c", ("a OR b AND c",)),  # AND binds tighter: one OR at the top
        ("x BETWEEN 1 AND 2 AND y", ("x BETWEEN 1 AND 2", "y")),
        ("COALESCE(a AND b, FALSE)", ("COALESCE(a AND b, FALSE)",)),
    ],
)
def test_conjuncts(sql: str, expected: tuple[str, ...]) -> None:
    assert conjuncts(sql) == expected
    # the terms keep the same rows as the whole
    frame = pl.DataFrame(
        {c: [True, False, True, None] for c in "abcy"}
        | {"x": [1, 2, 3, 4], "event": ["reopen"] * 4, "ts": [1, 2, 3, 4]}
        | {"resolved_at": [0, 5, 0, 0]}
    )
    if all(n in frame.columns for n in names(sql)):
        whole = frame.select(pl.sql_expr(sql).fill_null(False)).to_series()
        parts = frame.select(
            pl.all_horizontal([pl.sql_expr(t).fill_null(False) for t in expected])
        ).to_series()
        assert whole.to_list() == parts.to_list()


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "LEAD(started_at) OVER (PARTITION BY user_id, intent ORDER BY started_at)",
            Window(
                "LEAD",
                "started_at",
                1,
                False,
                ("user_id", "intent"),
                ("user_id", "intent"),
                (WindowOrder("started_at", "started_at", False, False),),
            ),
        ),
        (
            "lag(COALESCE(a, b), 2) over (partition by u order by t asc nulls last)",
            Window(
                "LAG",
                "COALESCE(a, b)",
                2,
                False,
                ("u",),
                ("u",),
                (WindowOrder("t", "t", False, False),),
            ),
        ),
        (
            "LEAD(x, 1, 0) OVER (PARTITION BY u ORDER BY t DESC NULLS FIRST)",
            Window("LEAD", "x", 1, True, ("u",), ("u",), (WindowOrder("t", "t", True, True),)),
        ),
        (
            "LEAD(x) OVER (PARTITION BY LOWER(u) ORDER BY t + 1)",
            Window(
                "LEAD",
                "x",
                1,
                False,
                ("LOWER(u)",),
                None,
                (WindowOrder("t + 1", None, False, False),),
            ),
        ),
        ("MAX(x) OVER (PARTITION BY u)", Window("MAX", "x", None, False, ("u",), ("u",), ())),
        ("LEAD(x) OVER (PARTITION BY u ORDER BY t) + 1", None),
        ("x", None),
    ],
)
def test_window(sql: str, expected: Window | None) -> None:
    assert window(sql) == expected


def test_uses_row_order() -> None:
    assert uses_row_order("FIRST(x) FILTER (WHERE a)")
    assert uses_row_order("LAST(x) + 1")
    assert not uses_row_order("MIN(x)")
    assert not uses_row_order("x = 'FIRST(y)'")


def test_an_expression_is_parsed_once() -> None:
    sql = "COUNT(*) FILTER (WHERE a_column_only_this_test_uses)"
    assert parse(sql) is parse(sql)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("csat IN (SELECT 1)", "^subqueries are not allowed"),
        ("csat >= {{ good_csat }}", "^templating is not supported"),
        ("x; y", r"^one expression only: remove the ';'"),
        ("x = 1;", r"^one expression only: remove the ';'"),
        ("now() > x", "^the wall clock is not allowed"),
        ("RANDOM() < 0.5", "^random functions are not allowed"),
        ("uuid()", "^random functions are not allowed"),
        ("scan_parquet('a')", r"^reading files is not allowed in an expression \(scan_parquet\)"),
        ("a ((", "^not a valid SQL expression"),
        ("   ", "^must be a non-empty SQL expression"),
    ],
)
def test_forbidden_constructs(sql: str, message: str) -> None:
    with pytest.raises(ExpressionProblem, match=message):
        parse(sql)


@pytest.mark.parametrize("sql", ["x = 'a;b'", "x = 'now()'", "x = '{{ y }}'", "now_ok = 1"])
def test_the_same_text_in_a_string_or_a_longer_name_is_allowed(sql: str) -> None:
    assert parse(sql).polars_sql


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("COUNT(*)", None),
        ("COUNT(*) FILTER (WHERE escalated)", None),
        ("TOTAL(cost_usd) FILTER (WHERE completed)", None),
        ("2 * SUM(tokens) - COUNT(tokens)", None),
        ("-TOTAL(cost_usd) / 2", None),
        ("CAST(COUNT(*) AS INTEGER)", None),  # a count stays a whole number
        ("SUM(x)::DOUBLE", None),
        # the bug class the text scanners had: DISTINCT is not a per-unit sum however written
        ("COUNT(DISTINCT ticket)", "COUNT(DISTINCT …) is not a per-unit sum"),
        ("count(distinct ticket) filter (where ok)", "COUNT(DISTINCT …) is not a per-unit sum"),
        ("CAST(COUNT(DISTINCT ticket) AS DOUBLE)", "COUNT(DISTINCT …) is not a per-unit sum"),
        ("COUNT(*) + COUNT(DISTINCT t)", "COUNT(DISTINCT …) is not a per-unit sum"),
        ("SUM(DISTINCT x)", "… DISTINCT … inside SUM/COUNT is not a per-unit sum"),
        ("SUM(x - AVG(x))", "AVG(…) inside SUM/COUNT is not a per-unit sum"),
        ("SUM(x) + 1", "a constant is not a per-unit sum"),
        ("CAST(SUM(x) AS INTEGER)", "a cast of a sum to an integer is not a per-unit sum"),
        ("MAX(x)", "MAX(…) is not a per-unit sum"),
        ("SUM(x) - MAX(y)", "MAX(…) is not a per-unit sum"),
        ("SUM(x) / COUNT(*)", "the aggregate SUM(…) is not a per-unit sum"),
        ("x + 1", "this expression is not a per-unit sum"),
    ],
)
def test_additive_reason(sql: str, reason: str | None) -> None:
    assert additive_reason(sql) == reason


def test_a_per_unit_sum_adds_up_and_count_distinct_does_not() -> None:
    """What additive means, by hand: summing the per-unit values over units gives the whole."""
    frame = pl.DataFrame(
        {"u": [1, 1, 2, 2, 2], "t": ["a", "b", "a", "a", "c"], "x": [1, 2, 3, 4, 5]}
    )
    for sql in ("COUNT(*)", "2 * SUM(x) - COUNT(x)", "COUNT(DISTINCT t)"):
        units = frame.group_by("u").agg(pl.sql_expr(sql).alias("v")).get_column("v").sum()
        whole = frame.select(pl.sql_expr(sql)).item()
        assert (units == whole) is (additive_reason(sql) is None), sql
    # COUNT(DISTINCT t): units 2 + 2 = 4 distinct values, the whole has 3


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("COUNT(*)", True),
        ("COUNT(*) FILTER (WHERE ok)", True),
        ("CAST(COUNT(*) AS DOUBLE)", True),
        ("COUNT(x)", False),
        ("SUM(x)", False),
        ("COUNT(DISTINCT x)", False),
    ],
)
def test_counts_rows(sql: str, expected: bool) -> None:
    assert counts_rows(sql) is expected


def test_ratio_parts_and_row_level() -> None:
    assert ratio_parts("SUM(cost_usd) / COUNT(*) FILTER (WHERE completed)") == (
        "SUM(cost_usd)",
        "COUNT(*) FILTER(WHERE completed)",
    )
    assert ratio_parts("(a + b) / 2") == ("(a + b)", "2")
    assert ratio_parts("a / b + 1") is None
    assert is_row_level("CASE WHEN ok THEN x END")
    assert not is_row_level("x - AVG(x)")
    assert not is_row_level("LEAD(x) OVER (PARTITION BY u ORDER BY t)")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("event = 'message' AND role = 'agent'", (("event", "message"), ("role", "agent"))),
        ("'resolution' = event", (("event", "resolution"),)),
        ("status <> 'ok' OR status = 'ok'", (("status", "ok"),)),
        ("role IN ('agent', 'bot')", (("role", "agent"), ("role", "bot"))),
        ("role NOT IN ('agent')", (("role", "agent"),)),
        ("x = 'it''s'", (("x", "it's"),)),
        ("COUNT(*) FILTER (WHERE event = 'reopen'\n AND x > 1)", (("event", "reopen"),)),
        ("LOWER(event) = 'x'", ()),  # not a bare column
        ("event = other_column", ()),
        ("a ((", ()),  # does not parse: nothing compared
    ],
)
def test_compared_literals(sql: str, expected: tuple[tuple[str, str], ...]) -> None:
    assert compared_literals(sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("TOTAL(input_tokens) + TOTAL(output_tokens)", ("input_tokens", "output_tokens")),
        ("SUM(units) FILTER (WHERE big > 0)", ("units",)),  # the FILTER is a condition
        ("AVG(CASE WHEN flag THEN cost ELSE 0 END)", ("cost",)),  # so is a CASE's WHEN
        ("COUNT(DISTINCT ticket)", ()),
        ("MAX(x) + MIN(y)", ()),
        ("a ((", ()),
    ],
)
def test_summed_columns(sql: str, expected: tuple[str, ...]) -> None:
    assert summed_columns(sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("FIRST(escalation_reason) FILTER (WHERE event = 'escalation')", "escalation_reason"),
        ("LAST(channel)", "channel"),
        ("MIN(ts)", "ts"),
        ("MAX(x) FILTER (WHERE a)", "x"),
        ("MIN(a + b)", None),
        ("COUNT(*)", None),
        ("SUM(x)", None),
    ],
)
def test_picked_column(sql: str, expected: str | None) -> None:
    assert picked_column(sql) == expected
