"""comparison/arms.py: a `ConditionSplit` (the report's cohorts against the rest) gives the arms
`condition_arms` gives — the same rows of every table, in the same order — by masks over facts
collected once instead of two semi-joins per arm."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import polars as pl
import pytest

from conftest import SHIPPED_SPEC
from kpictl.comparison import Arm, condition_arms, condition_split
from kpictl.engine.facts import with_cost_counts
from kpictl.engine.interface import ComputeOptions, Window
from kpictl.engine.polarsengine import PolarsEngine
from kpictl.engine.sources import load_sources
from kpictl.engine.window import resolve_window
from kpictl.spec import load_spec
from kpictl.spec.model import Spec

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
    return spec, with_cost_counts(spec, sources, window, built.tables, kpis), window


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
