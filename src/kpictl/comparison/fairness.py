"""The spec's `fairness:` entries: the gap between a KPI's highest and lowest group value
against the declared max_gap, and the note that says it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from kpictl.comparison.model import Cell, CompareOptions, FairnessFinding
from kpictl.spec.model import KpiSpec, Spec


def with_fairness_columns(spec: Spec, options: CompareOptions) -> CompareOptions:
    """`options` with the spec's fairness columns of the selected KPIs added to `by`: they are
    compared by group too (kept out of the table and of the family)."""
    names = set(options.kpis or spec.kpis)
    watched = [f.column for f in spec.fairness if f.kpi in names and f.column not in options.by]
    if not watched:
        return options
    return replace(options, by=(*options.by, *dict.fromkeys(watched)))


def fairness_findings(
    spec: Spec, cells: Sequence[Cell], selected: Sequence[KpiSpec]
) -> list[FairnessFinding]:
    """Each `fairness:` entry of the spec for a selected KPI, on the cells of its column."""
    names = {k.name for k in selected}
    found = []
    for entry in spec.fairness:
        if entry.kpi not in names:
            continue
        kpi = spec.kpis[entry.kpi]
        groups = [c for c in cells if c.kpi.name == entry.kpi and c.grouping == (entry.column,)]
        gaps: dict[str, float | None] = {}
        ends: tuple[tuple[str | None, float], tuple[str | None, float]] | None = None
        excluded = 0
        for side in ("current", "baseline"):
            values = []
            for cell in groups:
                units = (
                    (cell.n_current if cell.units_current is None else cell.units_current)
                    if side == "current"
                    else (cell.n_baseline if cell.units_baseline is None else cell.units_baseline)
                )
                value = (
                    None
                    if cell.comparison is None
                    else cell.comparison.current
                    if side == "current"
                    else cell.comparison.baseline
                )
                if value is None or not math.isfinite(value) or units < kpi.min_sample:
                    excluded += side == "current"
                    continue
                values.append((cell.cohort.get(entry.column), float(value)))
            if len(values) >= 2:
                low, high = min(values, key=lambda v: v[1]), max(values, key=lambda v: v[1])
                gaps[side] = high[1] - low[1]
                if side == "current":
                    ends = (low, high)
            else:
                gaps[side] = None
        gap = gaps["current"]
        found.append(
            FairnessFinding(
                entry.kpi,
                entry.column,
                entry.max_gap,
                entry.text,
                gap,
                ends[0] if ends else None,
                ends[1] if ends else None,
                gaps["baseline"],
                gap is not None and gap > entry.max_gap + 1e-12,
                excluded,
                kpi.format,
            )
        )
    return found


def _in_kpi_units(value: float, fmt: str, unit: str = " pp") -> str:
    return f"{100 * value:.1f}{unit}" if fmt == "percent" else f"{value:.4g}"


def fairness_note(finding: FairnessFinding) -> str:
    """The line a fairness finding gets in compare's notes and the report."""
    if finding.gap is None or finding.low is None or finding.high is None:
        return (
            f"fairness: {finding.kpi} across {finding.column}: fewer than two groups with "
            "min_sample units, gap not checked"
        )
    fmt = finding.format
    base = (
        ""
        if finding.baseline_gap is None
        else f"; baseline gap {_in_kpi_units(finding.baseline_gap, fmt)}"
    )
    verdict = "ABOVE" if finding.breached else "within"
    return (
        f"fairness: {finding.kpi} gap across {finding.column} is "
        f"{_in_kpi_units(finding.gap, fmt)} ({finding.low[0]} "
        f"{_in_kpi_units(finding.low[1], fmt, ' %')} vs {finding.high[0]} "
        f"{_in_kpi_units(finding.high[1], fmt, ' %')}), {verdict} max_gap "
        f"{finding.max_gap_text}{base}"
    )
