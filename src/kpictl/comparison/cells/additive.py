"""Additive shapes (a ratio of per-unit sums, a mean): the engine's per-unit sufficient
statistics per arm and cohort → a proportion, mean or ratio (delta method) test, its MDE and
design effect; CUPED-adjusted on request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from kpictl import stats
from kpictl.comparison.cells.common import by_cohort, cohort_order, groupings, pending_of
from kpictl.comparison.cells.cuped import apply_cuped, cuped_sums
from kpictl.comparison.model import Arm, Cell, CompareOptions
from kpictl.comparison.partition import part_unit_stats
from kpictl.engine.shapes import KpiShape
from kpictl.spec.model import KpiSpec, Spec


def _unit_stats(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    arm: Arm,
    unit: str,
    keys: Sequence[str],
    where: str | None,
) -> tuple[dict[tuple, dict[str, Any]], dict[tuple, dict[str, Any]]]:
    """The arm's per-unit sufficient statistics and pending rows by cohort, from the engine of
    its facts (`Engine.unit_stats`; a part of a partitioned arm: the whole's, once)."""
    got = part_unit_stats(spec, kpi, shape, arm, unit, keys, where)
    return by_cohort(got.sums, keys), by_cohort(got.pending, keys)


def _summary(row: Mapping[str, Any], kind: str) -> stats.ArmSummary:
    if kind == "proportion":
        return stats.proportion_summary(row["m_sum"], row["n"])
    if kind == "mean":
        return stats.mean_summary(row["n"], row["m_sum"], row["m_sq"])
    return stats.ratio_summary(
        row["n"], row["m_sum"], row["m_sq"], row["d_sum"], row["d_sq"], row["md_sum"]
    )


def additive_cells(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    current: Arm,
    baseline: Arm | None,
    target: float | None,
    options: CompareOptions,
    unit: str,
) -> list[Cell]:
    cells: list[Cell] = []
    for keys in groupings(kpi, current, options):
        cur, cur_p = _unit_stats(spec, kpi, shape, current, unit, keys, options.where)
        if baseline is not None:
            base, base_p = _unit_stats(spec, kpi, shape, baseline, unit, keys, options.where)
        else:
            base, base_p = {}, {}
        cuped = None
        if (
            options.cuped is not None
            and baseline is not None
            and target is None
            and options.cuped in spec.column_types[kpi.over]
        ):
            cuped = cuped_sums(spec, kpi, shape, (baseline, current), unit, keys, options)
        for cohort_key in sorted(set(cur) | set(base), key=cohort_order):
            c_row, b_row = cur.get(cohort_key), base.get(cohort_key)
            cell = Cell(
                kpi,
                dict(zip(keys, cohort_key, strict=True)),
                tuple(keys),
                None,
                int(b_row["n"]) if b_row else 0,
                int(c_row["n"]) if c_row else 0,
                pending_of(base_p, cohort_key),
                pending_of(cur_p, cohort_key),
            )
            rows = [r for r in (b_row, c_row) if r is not None]
            kind = _summary_kind(shape, rows)
            if c_row is None or (baseline is not None and b_row is None):
                cell.warnings.append("no units in one of the arms")
            elif target is not None:
                cell.target = target
                cell.comparison = stats.one_sample(
                    _summary(c_row, kind), target, alpha=options.significance
                )
            else:
                assert b_row is not None
                cell.comparison = _two_arm_test(kind, b_row, c_row, options)
                cell.mde = _mde(kind, b_row, c_row, options)
                deff = _design_effect(kind, shape, b_row, c_row, cell.comparison)
                if deff is not None and cell.comparison.absolute is not None:
                    cell.comparison = replace(
                        cell.comparison, design_effect=deff[0], naive_se=deff[1]
                    )
                if cuped is not None and kind in ("proportion", "mean"):
                    apply_cuped(cell, kind, cuped, cohort_key, options)
            cells.append(cell)
    return cells


def _summary_kind(shape: KpiShape, rows: Sequence[Mapping[str, Any]]) -> str:
    if rows and all(r["unit_rows"] for r in rows):
        if shape.kind == "ratio" and all(r["binary"] for r in rows):
            return "proportion"
        return "mean"
    return "ratio"


def _two_arm_test(
    kind: str, b: Mapping[str, Any], c: Mapping[str, Any], options: CompareOptions
) -> stats.Comparison:
    if kind == "proportion":
        return stats.compare_proportions(
            b["m_sum"],
            b["n"],
            c["m_sum"],
            c["n"],
            alpha=options.significance,
            relative_ci=options.relative_ci,
        )
    if kind == "mean":
        return stats.compare_summaries(
            _summary(b, kind),
            _summary(c, kind),
            alpha=options.significance,
            relative_ci=options.relative_ci,
        )
    return stats.compare_ratio(
        (b["n"], b["m_sum"], b["m_sq"], b["d_sum"], b["d_sq"], b["md_sum"]),
        (c["n"], c["m_sum"], c["m_sq"], c["d_sum"], c["d_sq"], c["md_sum"]),
        alpha=options.significance,
        relative_ci=options.relative_ci,
    )


def _mde(
    kind: str, b: Mapping[str, Any], c: Mapping[str, Any], options: CompareOptions
) -> float | None:
    try:
        sb, sc = _summary(b, kind), _summary(c, kind)
    except (ValueError, ZeroDivisionError):
        return None
    if sb.n < 2 or sc.n < 2:
        return None
    return stats.mde_mean(sb.variance, sc.variance, sb.n, sc.n, alpha=options.significance)


def _design_effect(
    kind: str,
    shape: KpiShape,
    b: Mapping[str, Any],
    c: Mapping[str, Any],
    comparison: stats.Comparison,
) -> tuple[float, float] | None:
    """deff = Var(cluster) / Var(naive, rows independent), for row-level KPIs (A6)."""
    if kind != "ratio" or comparison.absolute is None:
        return None
    naive_var = 0.0
    for row in (b, c):
        rows_n = row["d_sum"]
        if rows_n <= 1:
            return None
        ratio = row["m_sum"] / rows_n
        if shape.kind == "ratio" and row["bounded"] and shape.counts_rows:
            naive_var += ratio * (1 - ratio) / rows_n
        elif shape.kind == "avg":
            row_var = (row["row_sq"] - row["m_sum"] ** 2 / rows_n) / (rows_n - 1)
            naive_var += row_var / rows_n
        else:
            return None
    if naive_var <= 0:
        return None
    naive_se = float(np.sqrt(naive_var))
    return (comparison.absolute.se / naive_se) ** 2, naive_se
