"""comparison/arms.py: a holdout's arms filter the tables whose rows hold the condition's
columns (`condition_carriers`: the unit table, and the row tables that look those columns up)
instead of semi-joining them on the unit key — the same rows of every table, in the same
order, as the semi-joins (`condition_arms` without carriers)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import polars as pl
import pytest

from conftest import SHIPPED_SPEC
from kpictl.comparison import Arm, build_arms, condition_arms, read_columns
from kpictl.comparison.arms import condition_carriers
from kpictl.comparison.model import CompareOptions
from kpictl.engine.facts import with_cost_counts
from kpictl.engine.interface import ComputeOptions, FactSet
from kpictl.engine.polarsengine import PolarsEngine
from kpictl.engine.sources import load_sources
from kpictl.engine.window import resolve_window
from kpictl.io.read import Sources
from kpictl.spec import load_spec
from kpictl.spec.model import Spec

HOLDOUT = ("arm = 'treatment'", "arm = 'holdout'")
SINCE = dt.datetime(2026, 10, 10, tzinfo=dt.UTC)
ROW_TABLES = {"tool_calls", "agent_turns"}


@pytest.fixture(scope="module")
def shipped() -> tuple[Spec, Sources]:
    spec = load_spec(SHIPPED_SPEC)
    return spec, load_sources(spec)


def _facts(spec: Spec, sources: Sources, options: CompareOptions) -> FactSet:
    window = resolve_window(spec, sources, ComputeOptions(since=options.since, until=options.until))
    reads = read_columns(spec, options, window, spec.baselines["holdout"])
    return PolarsEngine().build_facts(spec, sources, window, None, reads, in_memory=True)


def _same(a: Arm, b: Arm) -> None:
    assert (a.label, a.window) == (b.label, b.window)
    assert a.tables.keys() == b.tables.keys()
    for name in a.tables:
        left, right = a.tables[name].collect(), b.tables[name].collect()
        assert left.height > 0, name
        assert left.equals(right, null_equal=True), name


@pytest.mark.parametrize(
    "options",
    [
        CompareOptions(baseline="holdout"),
        CompareOptions(baseline="holdout", by=("channel",)),  # row tables look channel up
        CompareOptions(baseline="holdout", since=SINCE),
    ],
)
def test_holdout_arms_are_the_rows_the_semi_joins_keep(
    shipped: tuple[Spec, Sources], options: CompareOptions
) -> None:
    spec, sources = shipped
    facts = _facts(spec, sources, options)
    carriers = condition_carriers(spec, facts, HOLDOUT)
    # the unit table always; a row table only when it looks the unit table up anyway
    looks_up = bool(options.by or options.since)
    assert carriers == {"conversations", *(ROW_TABLES if looks_up else ())}
    current, baseline, _, _ = build_arms(spec, sources, options, facts=facts)
    tables = with_cost_counts(spec, sources, facts.window, facts.tables, list(spec.kpis.values()))
    expected = condition_arms(spec, tables, facts.window, PolarsEngine(), *HOLDOUT)
    assert baseline is not None
    for got, want in zip((current, baseline), expected, strict=True):
        _same(got, want)
    # independently: the treatment arm's tool calls are those of its conversations
    units = facts.tables["conversations"].filter(pl.col("arm") == "treatment")
    calls = facts.tables["tool_calls"].join(units.select("conversation_id"), on="conversation_id")
    if options.since is not None:
        calls = calls.filter(pl.col("started_at") >= SINCE)
    assert current.tables["tool_calls"].select(pl.len()).collect().item() == (
        calls.select(pl.len()).collect().item()
    )


def test_rows_without_a_unit_are_in_neither_arm(shipped: tuple[Spec, Sources]) -> None:
    """A tool call whose conversation is not in the unit table (or has no id) looks up a
    null `arm`: the filter drops it, as the semi-join does; a param in the condition is a
    literal column that does not stay in the arm's table."""
    spec, sources = shipped
    spec = replace(spec, params={**spec.params, "kept_arm": "treatment"})
    facts = _facts(spec, sources, CompareOptions(baseline="holdout", by=("channel",)))
    calls = facts.tables["tool_calls"].collect()
    orphans = pl.concat([calls.head(1), calls.head(1)]).with_columns(
        pl.Series("conversation_id", ["no-such-conversation", None], dtype=pl.String),
        pl.lit(None, dtype=pl.String).alias("arm"),
        pl.lit(None, dtype=pl.String).alias("channel"),
    )
    tables = {**facts.tables, "tool_calls": pl.concat([calls, orphans]).lazy()}
    conditions = ("arm = kept_arm", "arm <> kept_arm")
    carriers = condition_carriers(spec, replace(facts, tables=tables), conditions)
    assert carriers == {"conversations", *ROW_TABLES}
    got = condition_arms(spec, tables, facts.window, PolarsEngine(), *conditions, carriers)
    want = condition_arms(spec, tables, facts.window, PolarsEngine(), *conditions)
    for a, b in zip(got, want, strict=True):
        _same(a, b)
        assert "kept_arm" not in a.tables["tool_calls"].collect_schema()
    kept = sum(arm.tables["tool_calls"].select(pl.len()).collect().item() for arm in got)
    assert kept == calls.filter(pl.col("arm").is_not_null()).height


def test_a_row_table_without_the_columns_is_semi_joined(shipped: tuple[Spec, Sources]) -> None:
    """Not carriers: a row table that did not look the column up (its `arm` is the empty
    placeholder), and any row table when the condition reads a derived column of the unit
    table (row tables look up attributes and the time only)."""
    spec, sources = shipped
    plain = _facts(spec, sources, CompareOptions(baseline="holdout"))
    assert plain.reads["tool_calls"] is not None and "arm" not in plain.reads["tool_calls"]
    assert condition_carriers(spec, plain, HOLDOUT) == {"conversations"}
    wide = _facts(spec, sources, CompareOptions(baseline="holdout", by=("channel",)))
    derived = ("completed AND arm = 'treatment'", "NOT completed")
    assert condition_carriers(spec, wide, derived) == {"conversations"}
    got = condition_arms(
        spec, wide.tables, wide.window, PolarsEngine(), *derived, {"conversations"}
    )
    want = condition_arms(spec, wide.tables, wide.window, PolarsEngine(), *derived)
    for a, b in zip(got, want, strict=True):
        _same(a, b)
