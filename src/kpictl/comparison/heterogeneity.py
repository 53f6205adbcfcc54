"""Does a KPI's effect differ across the groups of a --by dimension (docs/methods.md)? Cochran's
Q over the groups' effects, and the groups where the agent is worse while better overall."""

from __future__ import annotations

from collections.abc import Sequence

from kpictl import stats
from kpictl.comparison.model import Cell, CompareOptions, GroupEffect, Heterogeneity
from kpictl.spec.model import KpiSpec


def _better(kpi: KpiSpec, delta: float) -> bool:
    return delta > 0 if kpi.direction == "higher" else delta < 0


def heterogeneity_tests(cells: Sequence[Cell], options: CompareOptions) -> list[Heterogeneity]:
    """Per KPI × --by dimension: Cochran's Q over the groups' absolute effects (docs/methods.md
    A1 SEs), the groups' p-values Holm-adjusted over the groups, and the groups where the
    agent is worse than the baseline (group Δ in the KPI's bad direction, significant or not:
    its Holm p says) while better overall (overall Δ in the good direction with p < α)."""
    found: list[Heterogeneity] = []
    overall = {c.kpi.name: c for c in cells if not c.grouping}
    for dim in options.by:
        for name, whole in overall.items():
            groups = [
                c
                for c in cells
                if c.kpi.name == name
                and c.grouping == (dim,)
                and c.comparison is not None
                and c.comparison.absolute is not None
            ]
            if not groups:
                continue
            kpi = whole.kpi
            total = whole.comparison.absolute if whole.comparison else None
            p_total = whole.comparison.p_value if whole.comparison else None
            better = (
                total is not None
                and _better(kpi, total.estimate)
                and p_total is not None
                and p_total < options.significance
            )
            effects = [c.comparison.absolute for c in groups if c.comparison]
            holm = stats.adjust_p_values(
                [c.comparison.p_value if c.comparison else None for c in groups], "holm"
            )
            rows = tuple(
                GroupEffect(
                    c.cohort.get(dim),
                    e.estimate,
                    e.se,
                    c.comparison.p_value if c.comparison else None,
                    p,
                    better and not _better(kpi, e.estimate) and e.estimate != 0,
                )
                for c, e, p in zip(groups, effects, holm, strict=True)
                if e is not None
            )
            q = stats.cochran_q([g.delta for g in rows], [g.se for g in rows])
            found.append(
                Heterogeneity(name, dim, total.estimate if total else None, better, q, rows)
            )
    return found


def heterogeneity_notes(test: Heterogeneity, alpha: float) -> list[str]:
    """The findings of one heterogeneity test, as compare's notes."""
    notes = []
    if test.test is not None and test.test.p_value < alpha:
        notes.append(
            f"{test.kpi}: the effect differs across {test.dimension} (Cochran's Q = "
            f"{test.test.q:.4g}, df = {test.test.df}, p = {test.test.p_value:.4g})"
        )
    for group in test.groups:
        if group.worse:
            holm = "n/a" if group.p_holm is None else f"{group.p_holm:.4g}"
            notes.append(
                f"{test.kpi}: worse than the baseline for {test.dimension}="
                f"{group.group} (Δ {group.delta:+.4g}, Holm p = {holm}) while better "
                f"overall (Δ {test.overall_delta:+.4g})"
            )
    return notes
