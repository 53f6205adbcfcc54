"""comparison/cells/quantile.py: a percentile over a row table codes its units one to one,
however its rows come — grouped by unit (run numbers), shuffled (categorical codes) or with
a null unit — so its cells are the same numbers, and those of `stats.quantile_arm` given
the unit ids themselves (coded there by np.unique)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from conftest import SHIPPED_SPEC
from kpictl import stats
from kpictl.comparison import Arm, build_arms, condition_split
from kpictl.comparison.cells.quantile import quantile_cells
from kpictl.comparison.model import Cell, CompareOptions
from kpictl.engine.interface import ComputeOptions
from kpictl.engine.polarsengine import PolarsEngine
from kpictl.engine.shapes import kpi_shape
from kpictl.engine.sources import load_sources
from kpictl.engine.window import resolve_window
from kpictl.spec import load_spec
from kpictl.spec.model import Spec

KPI = "agent_latency_p95"  # QUANTILE_CONT(latency_ms, 0.95) over agent_turns, by conversation


@pytest.fixture(scope="module")
def arms() -> tuple[Spec, Arm, Arm]:
    spec = load_spec(SHIPPED_SPEC)
    current, baseline, _, _ = build_arms(spec, load_sources(spec), CompareOptions())
    assert baseline is not None
    return spec, current, baseline


def _reordered(arm: Arm, order: str) -> Arm:
    rows = arm.tables["agent_turns"].collect()
    if order == "grouped":
        rows = rows.sort("conversation_id", maintain_order=True)
    elif order == "shuffled":
        rows = rows.sample(fraction=1.0, shuffle=True, seed=3)
    else:  # a null unit among them: its own cluster, as np.unique's None
        rows = rows.with_columns(
            pl.when(pl.int_range(pl.len()) == 5)
            .then(None)
            .otherwise(pl.col("conversation_id"))
            .alias("conversation_id")
        )
    return replace(arm, tables={**arm.tables, "agent_turns": rows.lazy()})


def _cells(spec: Spec, current: Arm, baseline: Arm, by: tuple[str, ...]) -> list[Cell]:
    kpi = spec.kpis[KPI]
    options = CompareOptions(by=by)
    return quantile_cells(
        spec, kpi, kpi_shape(kpi), current, baseline, None, options, "conversation_id"
    )


@pytest.mark.parametrize("by", [(), ("channel",)])
def test_grouped_and_shuffled_rows_give_the_same_cells(
    arms: tuple[Spec, Arm, Arm], by: tuple[str, ...]
) -> None:
    spec, current, baseline = arms
    grouped = _cells(spec, _reordered(current, "grouped"), _reordered(baseline, "grouped"), by)
    shuffled = _cells(spec, _reordered(current, "shuffled"), _reordered(baseline, "shuffled"), by)
    assert len(grouped) == len(shuffled) > 0
    for a, b in zip(grouped, shuffled, strict=True):
        assert a.cohort == b.cohort
        assert (a.units_current, a.units_baseline) == (b.units_current, b.units_baseline)
        assert a.comparison == b.comparison  # every float equal, not close: sums of counts


@pytest.mark.parametrize("order", ["grouped", "shuffled", "null unit"])
def test_the_cell_is_quantile_arm_over_the_unit_ids(
    arms: tuple[Spec, Arm, Arm], order: str
) -> None:
    spec, current, baseline = arms
    current, baseline = _reordered(current, order), _reordered(baseline, order)
    (cell,) = _cells(spec, current, baseline, ())
    expected = []
    for arm in (baseline, current):
        rows = arm.tables["agent_turns"].collect().filter(pl.col("latency_ms").is_not_null())
        units = np.array(["<none>" if u is None else u for u in rows["conversation_id"].to_list()])
        expected.append(
            stats.quantile_arm(
                rows["latency_ms"].cast(pl.Float64).to_numpy(), units, 0.95, linear=True
            )
        )
    assert cell.comparison == stats.compare_quantiles(*expected)
    assert cell.units_current == expected[1].n_units


def test_a_partition_codes_the_units_of_its_whole(arms: tuple[Spec, Arm, Arm]) -> None:
    """The report's cohort against the rest: a partition codes the units over its whole. Each
    arm's rows come sorted by conversation, but the whole interleaves the two arms' rows (a
    conversation's rows are not one run there): its cells are those of the same rows read
    per arm (the arms of conditions)."""
    spec, _, _ = arms
    sources = load_sources(spec)
    window = resolve_window(spec, sources, ComputeOptions())
    facts = PolarsEngine().build_facts(spec, sources, window, in_memory=True)
    chat = pl.col("channel") == "chat"
    turns = (
        facts.tables["agent_turns"]
        .collect()
        .sort("conversation_id", maintain_order=True)
        .with_columns(pl.int_range(pl.len()).over(chat.fill_null(False)).alias("__rank"))
        .sort("__rank", chat.fill_null(False), maintain_order=True)
        .drop("__rank")
    )
    tables = {**facts.tables, "agent_turns": turns.lazy()}
    split = condition_split(spec, tables, window, facts.engine)
    partition = split.partition(("channel",), None)
    assert partition is not None
    inside = "CAST(\"channel\" AS VARCHAR) = 'chat'"
    outside = "COALESCE(CAST(\"channel\" AS VARCHAR) <> 'chat', TRUE)"
    by_parts = _cells(spec, *partition.arms(("channel",), ("chat",)), ())
    by_arms = _cells(spec, *split.arms(inside, outside), ())
    assert [c.comparison for c in by_parts] == [c.comparison for c in by_arms]
    assert by_parts[0].comparison is not None
    assert by_parts[0].comparison.design_effect is not None
