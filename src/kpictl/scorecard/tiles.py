"""The report's KPI tiles: each KPI's value, its bounds' status and its comparison, and what
the agent settles alone."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from kpictl.comparison import (
    UNAVAILABLE,
    CompareResult,
)
from kpictl.engine.compute import ComputeResult
from kpictl.scorecard.model import (
    INSUFFICIENT,
    NOT_JUDGED,
    Tile,
    overall_rows,
)
from kpictl.spec.model import KpiSpec, Spec, most_severe

AGENT_ALONE = ("completed", "contained", "settled")


def agent_alone(facts: pl.DataFrame) -> tuple[int, str] | None:
    needed = AGENT_ALONE[:2]
    if not all(c in facts.columns for c in needed):
        return None
    condition = pl.col("completed").fill_null(False) & pl.col("contained").fill_null(False)
    how = "`completed AND contained`"
    if "settled" in facts.columns:
        condition = condition & pl.col("settled").fill_null(False)
        how += " AND `settled`"
    return int(facts.filter(condition).height), how


def _bound_status(kpi: KpiSpec, value: float | None, n: int) -> tuple[str, str | None]:
    """Without a baseline only absolute bounds ("> 1%") can be judged."""
    if value is None:
        return INSUFFICIENT, None
    if n < kpi.min_sample:
        return INSUFFICIENT, None
    fired = most_severe(t for t in kpi.thresholds if t.kind == "bound" and t.beyond(value))
    if fired is not None:
        return fired.level, fired.text
    if kpi.thresholds and all(t.kind == "bound" for t in kpi.thresholds):
        return "ok", None
    return NOT_JUDGED, None


def build_tiles(
    spec: Spec,
    trend: ComputeResult,
    comparison: CompareResult | None,
    caveats: Mapping[str, tuple[str, ...]],
) -> tuple[Tile, ...]:
    """One tile row per KPI: the compare row (overall) when there is a baseline, else the
    compute value with only absolute bounds judged. An approximate percentile
    (`--approx-percentiles`) is marked, its method a caveat."""
    tiles: list[Tile] = []
    approximation = trend.approximation
    approximate = set(approximation.kpis) if approximation else set()
    if approximation is not None and approximate:
        caveat = f"approximate percentile (--approx-percentiles: {approximation.method})"
        caveats = {**caveats, **{k: (*caveats.get(k, ()), caveat) for k in approximate}}
    if comparison is not None:
        rows = comparison.table.filter(pl.col("grouping").list.len() == 0)
        for row in rows.iter_rows(named=True):
            tiles.append(
                Tile(
                    row["kpi"],
                    row["layer"],
                    row["owner"],
                    row["format"],
                    row["current_value"],
                    row["current_n"],
                    row["delta"],
                    row["relative_delta"],
                    bool(row["significant"]),
                    row["status"],
                    row["threshold"],
                    caveats.get(row["kpi"], ()),
                    trend.check.reason(row["kpi"]),
                    row["label"],
                    row["kpi"] in approximate,
                )
            )
        return tuple(tiles)
    for row in overall_rows(trend.table).iter_rows(named=True):
        kpi = spec.kpis[row["kpi"]]
        status, fired = _bound_status(kpi, row["value"], row["n"])
        reason = trend.check.reason(kpi.name)
        if reason is not None:
            status, fired = UNAVAILABLE, None
        tiles.append(
            Tile(
                row["kpi"],
                row["layer"],
                row["owner"],
                row["format"],
                row["value"],
                row["n"],
                status=status,
                threshold=fired,
                caveats=caveats.get(row["kpi"], ()),
                reason=reason,
                label=kpi.label,
                approximate=row["kpi"] in approximate,
            )
        )
    return tuple(tiles)
