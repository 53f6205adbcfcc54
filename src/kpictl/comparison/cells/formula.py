"""Formula KPIs: a seeded cluster bootstrap of the formula over its additive components'
per-unit sums."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from kpictl import stats
from kpictl.comparison.cells.common import BOOTSTRAP_RESAMPLES, arm_unit_sums, cohort_order
from kpictl.comparison.model import Arm, Cell, CompareOptions
from kpictl.engine.interface import cohort_sets
from kpictl.engine.shapes import KpiShape, kpi_shape
from kpictl.spec.model import KpiSpec, Spec
from kpictl.sql.expr import compile_sql


def formula_cells(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    current: Arm,
    baseline: Arm | None,
    target: float | None,
    options: CompareOptions,
    unit: str,
) -> list[Cell]:
    """Cluster bootstrap of a formula over additive component KPIs (overall and cohorts); a
    formula is tested against a baseline arm only (`untestable_reason` says so otherwise)."""
    assert baseline is not None
    components = [spec.kpis[name] for name in kpi.formula_kpis]
    shapes = [kpi_shape(c) for c in components]
    cells: list[Cell] = []
    for keys in cohort_sets(options.by, options.cross):
        frames = {}
        for label, arm in (("baseline", baseline), ("current", current)):
            joined: pl.LazyFrame | None = None
            for index, (component, shape) in enumerate(zip(components, shapes, strict=True)):
                if any(k not in arm.tables[component.over].collect_schema() for k in keys):
                    break
                per_unit, _ = arm_unit_sums(spec, component, shape, arm, unit, keys, options)
                part = per_unit.select(
                    [*keys, unit, pl.col("m").alias(f"m{index}"), pl.col("d").alias(f"d{index}")]
                )
                joined = (
                    part
                    if joined is None
                    else joined.join(
                        part, on=[*keys, unit], how="full", coalesce=True, nulls_equal=True
                    )
                )
            else:
                assert joined is not None
                # a stable unit order: the seeded resampling then gives the same numbers
                frames[label] = joined.fill_null(0.0).sort([*keys, unit]).collect()
        if len(frames) < 2:
            continue
        groups = {
            label: (
                frame.partition_by(list(keys), as_dict=True, include_key=False)
                if keys
                else {(): frame}
            )
            for label, frame in frames.items()
        }
        cohort_keys = sorted(
            {tuple(k) if keys else () for g in groups.values() for k in g}, key=cohort_order
        )
        for cohort_key in cohort_keys:
            b = groups["baseline"].get(cohort_key)
            c = groups["current"].get(cohort_key)
            cell = Cell(
                kpi,
                dict(zip(keys, cohort_key, strict=True)),
                tuple(keys),
                None,
                b.height if b is not None else 0,
                c.height if c is not None else 0,
                0,
                0,
            )
            if b is None or c is None or b.height == 0 or c.height == 0:
                cell.warnings.append("no units in one of the arms")
                cells.append(cell)
                continue
            cell.comparison = _bootstrap_formula(kpi, components, b, c, options)
            cells.append(cell)
    return cells


def _bootstrap_formula(
    kpi: KpiSpec,
    components: Sequence[KpiSpec],
    b: pl.DataFrame,
    c: pl.DataFrame,
    options: CompareOptions,
) -> stats.Comparison:
    formula = compile_sql(kpi.formula or "")
    names = [comp.name for comp in components]

    def statistic(frame: pl.DataFrame) -> Any:
        def stat(weights: np.ndarray) -> np.ndarray:
            columns = {}
            for index, name in enumerate(names):
                m = weights @ frame[f"m{index}"].to_numpy()
                d = weights @ frame[f"d{index}"].to_numpy()
                with np.errstate(divide="ignore", invalid="ignore"):
                    columns[name] = m / d
            return pl.DataFrame(columns).select(formula.cast(pl.Float64)).to_series().to_numpy()

        return stat

    point_b = statistic(b)(np.ones((1, b.height)))[0]
    point_c = statistic(c)(np.ones((1, c.height)))[0]
    return stats.bootstrap_comparison(
        statistic(b),
        statistic(c),
        b.height,
        c.height,
        point_b,
        point_c,
        alpha=options.significance,
        resamples=BOOTSTRAP_RESAMPLES,
        seed=options.seed,
    )
