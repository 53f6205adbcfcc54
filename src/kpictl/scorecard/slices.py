"""The slices a report reads: the current arm or period and the baseline's, the KPIs an arm's
condition can filter, and compute over one slice."""

from __future__ import annotations

from collections.abc import Sequence

from kpictl.comparison import (
    CompareResult,
)
from kpictl.engine.compute import ComputeResult, run_compute
from kpictl.engine.costs import (
    Slice,
)
from kpictl.engine.interface import ComputeOptions
from kpictl.engine.window import names_in, resolve_window
from kpictl.io.read import Sources
from kpictl.scorecard.lineage import (
    kpi_tables,
)
from kpictl.scorecard.model import (
    CONDITION_DESIGNS,
    ReportOptions,
)
from kpictl.spec.model import BaselineSpec, Spec


def report_slices(
    spec: Spec,
    sources: Sources,
    options: ReportOptions,
    comparison: CompareResult | None,
    base: BaselineSpec | None,
    baseline_sources: Sources | None,
) -> tuple[Slice, Slice | None]:
    if comparison is None:
        window = resolve_window(
            spec,
            sources,
            ComputeOptions(since=options.since, until=options.until, as_of=options.as_of),
        )
        return Slice("all conversations", sources, window), None
    window = comparison.current_window
    design = comparison.design
    if design.kind in CONDITION_DESIGNS and base is not None:
        return (
            Slice("treatment arm", sources, window, base.treatment),
            Slice("control arm", sources, window, base.control),
        )
    if comparison.baseline_window is None:
        return Slice("current period", sources, window), None
    if baseline_sources is not None:
        return (
            Slice("current dataset", sources, window),
            Slice("baseline dataset", baseline_sources, comparison.baseline_window),
        )
    return (
        Slice("current period", sources, window),
        Slice("baseline period", sources, comparison.baseline_window),
    )


def eligible_kpis(spec: Spec, where: str | None) -> tuple[list[str], list[str]]:
    """KPIs whose tables can evaluate `where` (an arm condition), and the others."""
    if not where:
        return list(spec.kpis), []
    names = set(names_in([where]))
    ok: list[str] = []
    not_ok: list[str] = []
    for kpi in spec.kpis.values():
        tables = kpi_tables(spec, kpi)
        (ok if all(names <= set(spec.table_schema(t)) for t in tables) else not_ok).append(kpi.name)
    return ok, not_ok


def slice_where(piece: Slice, where: str | None) -> str | None:
    """The arm's condition and --where together (either alone when the other is absent)."""
    if piece.where and where:
        return f"({piece.where}) AND ({where})"
    return piece.where or where


def compute_slice(
    spec: Spec, piece: Slice, kpis: Sequence[str], grain: str | None, where: str | None
) -> ComputeResult:
    options = ComputeOptions(
        grain=grain,
        since=piece.window.since,
        until=piece.window.until,
        as_of=piece.window.as_of,
        where=slice_where(piece, where),
        kpis=tuple(kpis),
    )
    engine = piece.facts.engine if piece.facts is not None else None
    return run_compute(spec, piece.sources, options, facts=piece.facts, engine=engine)
