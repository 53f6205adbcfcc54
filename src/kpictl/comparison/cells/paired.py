"""Paired designs (docs/methods.md A13): both arms ran the same units; McNemar for one binary
outcome per unit, else the paired t-test (and Wilcoxon signed-rank as a note)."""

from __future__ import annotations

import numpy as np

from kpictl import stats
from kpictl.comparison.cells.common import (
    arm_unit_sums,
    by_cohort,
    cohort_order,
    groupings,
    pending_of,
)
from kpictl.comparison.model import Arm, Cell, CompareOptions
from kpictl.engine.shapes import KpiShape
from kpictl.spec.model import KpiSpec, Spec


def paired_cells(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    current: Arm,
    baseline: Arm,
    options: CompareOptions,
    unit: str,
) -> list[Cell]:
    """Paired designs (A13): both arms ran the same units (task ids); trials are aggregated to
    the unit first, then McNemar exact (one binary outcome per unit) or paired t / Wilcoxon."""
    cells: list[Cell] = []
    for keys in groupings(kpi, current, options):
        cur_units, cur_pending = arm_unit_sums(spec, kpi, shape, current, unit, keys, options)
        base_units, base_pending = arm_unit_sums(spec, kpi, shape, baseline, unit, keys, options)
        joined = (
            base_units.select([*keys, unit, "m", "d"])
            .join(
                cur_units.select([*keys, unit, "m", "d"]),
                on=[*keys, unit],
                how="inner",
                suffix="_c",
                nulls_equal=True,
            )
            .collect()
        )
        cur_p = by_cohort(cur_pending, keys)
        base_p = by_cohort(base_pending, keys)
        parts = (
            joined.partition_by(list(keys), as_dict=True, include_key=False)
            if keys
            else {(): joined}
        )
        for cohort_key in sorted((tuple(k) for k in parts), key=cohort_order):
            part = parts[cohort_key]
            cell = Cell(
                kpi,
                dict(zip(keys, cohort_key, strict=True)),
                tuple(keys),
                None,
                part.height,
                part.height,
                pending_of(base_p, cohort_key),
                pending_of(cur_p, cohort_key),
            )
            m_b, d_b = part["m"].to_numpy(), part["d"].to_numpy()
            m_c, d_c = part["m_c"].to_numpy(), part["d_c"].to_numpy()
            usable = (d_b > 0) & (d_c > 0)
            if usable.sum() < 2:
                cell.warnings.append("fewer than 2 paired units")
                cells.append(cell)
                continue
            base_values = m_b[usable] / d_b[usable]
            cur_values = m_c[usable] / d_c[usable]
            binary = (
                np.all(d_b[usable] == 1)
                and np.all(d_c[usable] == 1)
                and np.isin(base_values, (0.0, 1.0)).all()
                and np.isin(cur_values, (0.0, 1.0)).all()
            )
            if binary and shape.kind == "ratio":
                cell.comparison = stats.mcnemar_comparison(
                    base_values, cur_values, alpha=options.significance
                )
            else:
                cell.comparison = stats.paired_t(
                    base_values, cur_values, alpha=options.significance
                )
                wilcoxon = stats.wilcoxon_signed_rank(
                    base_values, cur_values, alpha=options.significance
                )
                if wilcoxon.p_value is not None:
                    cell.warnings.append(f"Wilcoxon signed-rank p = {wilcoxon.p_value:.4g}")
            cells.append(cell)
    return cells
