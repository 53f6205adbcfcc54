"""What the cells of every KPI shape share: an arm's rows of a KPI, per-cohort collection, the
order of cohorts, the grouping sets a KPI's table can give."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from kpictl.comparison.model import Arm, CompareOptions
from kpictl.engine.interface import cohort_sets
from kpictl.engine.kpis import filter_kpi_rows
from kpictl.engine.shapes import KpiShape
from kpictl.engine.unitstats import unit_sums
from kpictl.spec.model import KpiSpec, Spec

BOOTSTRAP_RESAMPLES = 1000


def kpi_rows(spec: Spec, kpi: KpiSpec, arm: Arm, where: str | None) -> pl.LazyFrame:
    """The KPI's table in this arm, filtered and flagged as `compute` does."""
    return filter_kpi_rows(spec, kpi, arm.tables[kpi.over], arm.window, where)


def as_float(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Float64).fill_null(0.0)


def group_by_keys(
    frame: pl.LazyFrame, keys: Sequence[str], aggs: Sequence[pl.Expr]
) -> pl.LazyFrame:
    if keys:
        return frame.group_by(list(keys)).agg(aggs)
    return frame.select(aggs)


def by_cohort(
    frame: pl.LazyFrame | pl.DataFrame, keys: Sequence[str]
) -> dict[tuple, dict[str, Any]]:
    collected = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    return {tuple(row[k] for k in keys): row for row in collected.iter_rows(named=True)}


def arm_unit_sums(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    arm: Arm,
    unit: str,
    keys: Sequence[str],
    options: CompareOptions,
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Each unit's m and d (a paired design and a formula's bootstrap join them by unit):
    polars over the arm's facts."""
    return unit_sums(spec, kpi, shape, arm.tables, arm.window, unit, keys, options.where)


def cohort_order(key: tuple) -> tuple:
    return tuple((v is not None, str(v)) for v in key)


def pending_of(rows: Mapping[tuple, Mapping[str, Any]], key: tuple) -> int:
    row = rows.get(key)
    return int(row["pending"]) if row else 0


def groupings(kpi: KpiSpec, arm: Arm, options: CompareOptions) -> list[tuple[str, ...]]:
    """The grouping sets of --by (`cohort_sets`) whose columns the KPI's table has in `arm`."""
    schema = arm.tables[kpi.over].collect_schema()
    return [
        keys for keys in cohort_sets(options.by, options.cross) if all(k in schema for k in keys)
    ]
