"""compare's per-unit sufficient statistics by polars (`Engine.unit_stats`): per unit the
sums m and d of an additive KPI (`unit_sums`), then per cohort n and the sums of m, m², d, d²,
m·d (`sufficient_stats`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from kpictl.engine.interface import UnitStats, Window
from kpictl.engine.kpis import aggregate_by, filter_kpi_rows
from kpictl.engine.shapes import KpiShape
from kpictl.spec.model import KpiSpec, Spec

_ROW = "__kpictl_unit_row"


def _float_or_zero(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Float64).fill_null(0.0)


def unit_sums(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    tables: Mapping[str, pl.LazyFrame],
    window: Window,
    unit: str,
    keys: Sequence[str],
    where: str | None,
    *,
    with_unit: bool = True,
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(per-unit M and D by cohort keys; pending rows by cohort keys) for additive shapes.

    Without `with_unit` (the unit's value is not needed), a table with one row per unit
    (its key is the unit) is grouped by row number instead: the same groups, 12x faster
    than hashing 1.37M text keys."""
    rows = filter_kpi_rows(spec, kpi, tables[kpi.over], window, where)
    keyed = rows.with_columns([pl.col(k).cast(pl.String) for k in keys])
    pending = aggregate_by(
        keyed.filter(~pl.col("__mature")), keys, [pl.len().cast(pl.Int64).alias("pending")]
    )
    settled = keyed.filter(pl.col("__mature"))
    if shape.kind == "ratio":
        assert shape.numerator is not None and shape.denominator is not None
        aggs = [
            _float_or_zero(shape.numerator).alias("m"),
            _float_or_zero(shape.denominator).alias("d"),
        ]
    else:  # avg: sum and count of non-null values
        assert shape.values is not None
        values = shape.values
        aggs = [
            values.cast(pl.Float64).sum().alias("m"),
            values.count().cast(pl.Float64).alias("d"),
            (values.cast(pl.Float64) ** 2).sum().alias("m2_rows"),
        ]
    table = spec.tables[kpi.over]
    if not with_unit and table.is_rollup and table.key == unit:
        per_unit = settled.with_row_index(_ROW).group_by([*keys, _ROW]).agg(aggs).drop(_ROW)
    else:
        per_unit = settled.group_by([*keys, unit]).agg(aggs)
    if shape.kind == "avg":
        per_unit = per_unit.filter(pl.col("d") > 0)
    return per_unit, pending


def sufficient_stats(per_unit: pl.LazyFrame, keys: Sequence[str], avg: bool) -> pl.LazyFrame:
    """Per cohort of `keys`, the sums over units of `unit_sums`' m and d (see `UnitStats`)."""
    m, d = pl.col("m"), pl.col("d")
    aggs = [
        pl.len().cast(pl.Int64).alias("n"),
        m.sum().alias("m_sum"),
        (m * m).sum().alias("m_sq"),
        d.sum().alias("d_sum"),
        (d * d).sum().alias("d_sq"),
        (m * d).sum().alias("md_sum"),
        (d == 1).all().alias("unit_rows"),
        ((m == 0) | (m == 1)).all().alias("binary"),
        (m <= d).all().alias("bounded"),
    ]
    if avg:
        aggs.append(pl.col("m2_rows").sum().alias("row_sq"))
    return aggregate_by(per_unit, keys, aggs)


def polars_unit_stats(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    tables: Mapping[str, pl.LazyFrame],
    window: Window,
    unit: str,
    keys: Sequence[str],
    where: str | None,
) -> UnitStats:
    """`Engine.unit_stats` by polars over facts frames (whichever engine built them)."""
    per_unit, pending = unit_sums(
        spec, kpi, shape, tables, window, unit, keys, where, with_unit=False
    )
    sums, pending_rows = pl.collect_all(
        [sufficient_stats(per_unit, keys, shape.kind == "avg"), pending]
    )
    return UnitStats(sums, pending_rows)
