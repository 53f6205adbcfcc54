"""comparison/arms.py: a `ConditionSplit` (the report's cohorts against the rest) gives the arms
`condition_arms` gives — the same rows of every table, in the same order — by masks over facts
collected once instead of two semi-joins per arm; its `partition` (every value of a column at
once, comparison/partition.py) gives those rows too, and compare's every number on them."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import polars as pl
import pytest

from conftest import SHIPPED_SPEC
from kpictl.comparison import (
    OBSERVATIONAL_ARMS_CAVEAT,
    Arm,
    CompareOptions,
    Design,
    compare_arms,
    condition_arms,
    condition_split,
)
from kpictl.engine.datacheck import check_data
from kpictl.engine.duck import DuckDBEngine
from kpictl.engine.facts import with_cost_counts
from kpictl.engine.interface import ComputeOptions, Window
from kpictl.engine.polarsengine import PolarsEngine
from kpictl.engine.sources import load_sources
from kpictl.engine.window import resolve_window
from kpictl.spec import load_spec
from kpictl.spec.model import BaselineSpec, Spec

# the report's conditions (scorecard/gather.py): a value, null, the rest, a cross-tab combination
CONDITIONS = [
    (
        "CAST(\"channel\" AS VARCHAR) = 'chat'",
        "COALESCE(CAST(\"channel\" AS VARCHAR) <> 'chat', TRUE)",
    ),
    ('"intent" IS NULL', '"intent" IS NOT NULL'),
    (
        'COALESCE(CAST("channel" AS VARCHAR) = \'web\', FALSE) AND "intent" IS NULL',
        'NOT (COALESCE(CAST("channel" AS VARCHAR) = \'web\', FALSE) AND "intent" IS NULL)',
    ),
    ("arm = 'treatment'", "arm = 'control'"),
]


@pytest.fixture(scope="module")
def facts() -> tuple[Spec, dict[str, pl.LazyFrame], Window]:
    spec = load_spec(SHIPPED_SPEC)
    sources = load_sources(spec)
    window = resolve_window(spec, sources, ComputeOptions())
    built = PolarsEngine().build_facts(spec, sources, window, in_memory=True)
    kpis = list(spec.kpis.values())
    return spec, _null_intents(with_cost_counts(spec, sources, window, built.tables, kpis)), window


def _null_intents(tables: dict[str, pl.LazyFrame]) -> dict[str, pl.LazyFrame]:
    """Every 7th conversation without an intent (the shipped sample has none): null is a
    cohort value of its own."""
    gone = pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("intent"))
    units = tables["conversations"].with_columns(gone.alias("intent")).collect()
    return {**tables, "conversations": units.lazy()}


def _same(a: Arm, b: Arm) -> None:
    assert (a.label, a.window) == (b.label, b.window)
    assert a.tables.keys() == b.tables.keys()
    for name in a.tables:
        left, right = a.tables[name].collect(), b.tables[name].collect()
        assert left.height > 0 or right.height == 0, name
        assert left.equals(right, null_equal=True), name


@pytest.mark.parametrize(("inside", "outside"), CONDITIONS)
def test_a_split_gives_the_rows_of_condition_arms(
    facts: tuple[Spec, dict[str, pl.LazyFrame], Window], inside: str, outside: str
) -> None:
    spec, tables, window = facts
    # a window that cuts the data: the time bounds apply with the masks
    since = dt.datetime(2026, 10, 10, tzinfo=dt.UTC)
    for bounds in (window, replace(window, since=since)):
        split = condition_split(spec, tables, bounds, PolarsEngine())
        assert split.positions is not None  # one row per conversation: masks, no joins
        expected = condition_arms(spec, tables, bounds, PolarsEngine(), inside, outside)
        got = split.arms(inside, outside)
        for a, b in zip(got, expected, strict=True):
            _same(a, b)
        units = [arm.tables["conversations"].select(pl.len()).collect().item() for arm in got]
        total = tables["conversations"].collect()
        if bounds.since is not None:
            total = total.filter(pl.col("started_at") >= bounds.since)
        assert sum(units) <= total.height  # the arms never share a conversation


def test_a_unit_table_with_repeated_keys_falls_back_to_semi_joins(
    facts: tuple[Spec, dict[str, pl.LazyFrame], Window],
) -> None:
    spec, tables, window = facts
    doubled = {**tables, "conversations": pl.concat([tables["conversations"]] * 2)}
    split = condition_split(spec, doubled, window, PolarsEngine())
    assert split.positions is None
    inside, outside = CONDITIONS[0]
    for a, b in zip(
        split.arms(inside, outside),
        condition_arms(spec, doubled, window, PolarsEngine(), inside, outside),
        strict=True,
    ):
        _same(a, b)


# groups of the report's --by columns: (columns, a group's values, --where or None)
GROUPS = [
    (("channel",), ("chat",), None),
    (("channel",), ("web",), "customer_tier = 'enterprise'"),
    (("intent",), (None,), None),
    (("channel", "intent"), ("web", None), None),
    (("channel", "intent"), ("email", "billing"), "channel <> 'voice'"),
]


def _conditions(columns: tuple[str, ...], values: tuple[str | None, ...]) -> tuple[str, str]:
    parts = [
        f"{c} IS NULL" if v is None else f"COALESCE(CAST({c} AS VARCHAR) = '{v}', FALSE)"
        for c, v in zip(columns, values, strict=True)
    ]
    return " AND ".join(parts), f"NOT ({' AND '.join(parts)})"


@pytest.mark.parametrize(("columns", "values", "where"), GROUPS)
def test_a_partition_gives_each_group_and_the_rest_as_conditions_do(
    facts: tuple[Spec, dict[str, pl.LazyFrame], Window],
    columns: tuple[str, ...],
    values: tuple[str | None, ...],
    where: str | None,
) -> None:
    spec, tables, window = facts
    since = dt.datetime(2026, 10, 10, tzinfo=dt.UTC)
    for bounds in (window, replace(window, since=since)):
        split = condition_split(spec, tables, bounds, PolarsEngine())
        # by the cohort's own columns, and by more (one partition serving every --by column)
        for by in (columns, ("region", *columns, "customer_tier")):
            partition = split.partition(by, where)
            assert partition is not None
            inside, outside = _conditions(columns, values)
            if where is not None:
                inside, outside = f"({where}) AND {inside}", f"({where}) AND {outside}"
            for a, b in zip(
                partition.arms(columns, values),
                condition_arms(spec, tables, bounds, PolarsEngine(), inside, outside),
                strict=True,
            ):
                _same(a, b)


def _numbers(table: pl.DataFrame) -> list[dict]:
    return table.sort("kpi").to_dicts()


def _close(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b)) or (a != a and b != b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize(
    ("engine", "columns", "values", "where", "unit"),
    [
        *(("polars", *group, None) for group in GROUPS[::2]),
        *(("duckdb", *group, None) for group in GROUPS[::2]),
        # a percentile KPI without a settled row in the whole (every conversation unresolved)
        ("polars", ("channel",), ("chat",), "resolved_at IS NULL", None),
        # another unit than the unit table's: a user may be in several groups
        ("polars", ("channel",), ("web",), None, "user_id"),
    ],
)
def test_compare_on_a_partition_s_arms_gives_the_numbers_of_condition_arms(
    columns: tuple[str, ...],
    values: tuple[str | None, ...],
    where: str | None,
    engine: str,
    unit: str | None,
) -> None:
    """Every KPI (ratios, means, percentiles, pass^k, formulas): the whole table of
    `compare_arms` — values, n, Δ, CI, p, pending — is that of the arms by conditions, whose
    statistics are read per arm (1e-12: sums add up over groups in another order)."""
    spec = load_spec(SHIPPED_SPEC)
    sources = load_sources(spec)
    window = resolve_window(spec, sources, ComputeOptions())
    built = (PolarsEngine() if engine == "polars" else DuckDBEngine()).build_facts(
        spec, sources, window, in_memory=True
    )
    kpis = list(spec.kpis.values())
    tables = _null_intents(with_cost_counts(spec, sources, window, built.tables, kpis))
    check = check_data(spec, sources, kpis)
    options = CompareOptions(alpha=0.05, correction="none", unit=unit)
    design = Design(
        "conditions", "observational", "rest", randomized=False, caveat=OBSERVATIONAL_ARMS_CAVEAT
    )
    inside, outside = _conditions(columns, values)
    if where is not None:
        inside, outside = f"({where}) AND {inside}", f"({where}) AND {outside}"
    base = BaselineSpec("rest", "holdout", control=outside, treatment=inside)
    split = condition_split(spec, tables, window, built.engine)
    partition = split.partition(("channel", "intent"), where)  # every --by column at once
    assert partition is not None
    expected = compare_arms(
        spec, *split.arms(inside, outside), design, base, options, check, with_fairness=False
    )
    got = compare_arms(
        spec, *partition.arms(columns, values), design, base, options, check, with_fairness=False
    )
    assert got.table.columns == expected.table.columns
    left, right = _numbers(got.table), _numbers(expected.table)
    assert len(left) == len(right) > 0
    assert any(r["p_value"] is not None for r in right)
    for a, b in zip(left, right, strict=True):
        assert _close(a, b), (a, b)
    assert got.notes == expected.notes and got.srm == expected.srm


@pytest.mark.parametrize("seed", range(3))
def test_signed_zeros_in_a_percentile_keep_the_sign_of_condition_arms(seed: int) -> None:
    """Latencies of −0.0 and 0.0 (a clock that rounds): which zero a percentile lands on
    depends on the rows' order, so a partition reads its parts' rows in their own order — the
    sign of every value and Δ is the condition arms'."""
    spec = load_spec(SHIPPED_SPEC)
    sources = load_sources(spec)
    window = resolve_window(spec, sources, ComputeOptions())
    built = PolarsEngine().build_facts(spec, sources, window, in_memory=True)
    kpis = list(spec.kpis.values())
    tables = with_cost_counts(spec, sources, window, built.tables, kpis)
    # the shipped spec's percentiles: MEDIAN / QUANTILE_CONT of ttr_s and latency_ms
    for table, column in (("conversations", "ttr_s"), ("agent_turns", "latency_ms")):
        frame = tables[table]  # most values a zero of either sign, interleaved
        row = pl.int_range(pl.len())
        zero = (
            pl.when(row.hash(seed) % 3 == 0)
            .then(-0.0)
            .when(row.hash(seed + 1) % 5 < 3)
            .then(0.0)
            .otherwise(pl.col(column))
        )
        tables[table] = (
            frame.with_columns(zero.cast(frame.collect_schema()[column]).alias(column))
            .collect()
            .lazy()
        )
    check = check_data(spec, sources, kpis)
    options = CompareOptions(alpha=0.05, correction="none")
    design = Design(
        "conditions", "observational", "rest", randomized=False, caveat=OBSERVATIONAL_ARMS_CAVEAT
    )
    inside, outside = _conditions(("channel",), ("chat",))
    base = BaselineSpec("rest", "holdout", control=outside, treatment=inside)
    split = condition_split(spec, tables, window, built.engine)
    partition = split.partition(("channel",), None)
    assert partition is not None
    expected = compare_arms(
        spec, *split.arms(inside, outside), design, base, options, check, with_fairness=False
    )
    got = compare_arms(
        spec,
        *partition.arms(("channel",), ("chat",)),
        design,
        base,
        options,
        check,
        with_fairness=False,
    )
    signs = 0
    for a, b in zip(_numbers(got.table), _numbers(expected.table), strict=True):
        assert _close(a, b), (a, b)
        for field in ("baseline_value", "current_value", "delta"):
            if isinstance(b[field], float) and b[field] == 0:
                signs += 1
                assert math.copysign(1, a[field]) == math.copysign(1, b[field]), (a["kpi"], field)
    assert signs > 0


def test_a_partition_over_more_groups_than_allowed_is_not_built(
    facts: tuple[Spec, dict[str, pl.LazyFrame], Window],
) -> None:
    """The report partitions by every --by column at once unless their combinations exceed
    its limit (then one partition per column)."""
    spec, tables, window = facts
    split = condition_split(spec, tables, window, PolarsEngine())
    combinations = tables["conversations"].select("channel", "intent").unique().collect().height
    assert split.partition(("channel", "intent"), None, combinations - 1) is None
    built = split.partition(("channel", "intent"), None, combinations)
    assert built is not None and len(built.codes) == combinations
    assert built.grouped == {"conversations", *split.positions}  # type: ignore[misc]
