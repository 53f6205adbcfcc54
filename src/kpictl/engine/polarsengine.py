"""The polars engine (`kpictl.engine.interface.Engine`), the default and the reference:
facts by `facts.build_facts`, KPIs by `kpis.evaluate_kpis`, compare's per-unit statistics by
`unitstats.polars_unit_stats`."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import polars as pl

from kpictl.engine.facts import POLARS_ENGINE, build_facts
from kpictl.engine.interface import (
    Approximation,
    ComputeOptions,
    Engine,
    FactSet,
    UnitStats,
    Window,
)
from kpictl.engine.kpis import evaluate_kpis
from kpictl.engine.shapes import KpiShape
from kpictl.engine.unitstats import polars_unit_stats
from kpictl.io.read import Sources
from kpictl.spec.model import KpiSpec, Spec


class PolarsEngine:
    """The polars engine (kpictl.engine.interface.Engine): facts by `build_facts`, KPIs by
    `evaluate_kpis`, lazy plans collected in memory or by polars' streaming engine."""

    name = POLARS_ENGINE

    def approximation(self, spec: Spec, kpis: Sequence[KpiSpec]) -> Approximation | None:
        """None: every percentile is exact (`--approx-percentiles` is for the SQL engines)."""
        return None

    def build_facts(
        self,
        spec: Spec,
        sources: Sources,
        window: Window,
        tables: Sequence[str] | None = None,
        reads: Mapping[str, Collection[str] | None] | None = None,
        *,
        in_memory: bool = False,
    ) -> FactSet:
        """The FactSet of `tables` (see `build_facts`)."""
        built = build_facts(spec, sources, window, tables, reads, in_memory=in_memory)
        return FactSet(
            sources=sources,
            window=window,
            tables=built,
            reads={n: None if reads is None else reads.get(n) for n in built},
            engine=self,
        )

    def aggregate(
        self,
        spec: Spec,
        kpis: Sequence[KpiSpec],
        output: Sequence[str],
        tables: Mapping[str, pl.LazyFrame],
        window: Window,
        options: ComputeOptions,
    ) -> tuple[pl.DataFrame, list[str]]:
        """The KPI table over `tables` (see `evaluate_kpis`)."""
        return evaluate_kpis(spec, kpis, output, tables, window, options)

    def unit_stats(
        self,
        spec: Spec,
        kpi: KpiSpec,
        shape: KpiShape,
        tables: Mapping[str, pl.LazyFrame],
        window: Window,
        unit: str,
        keys: Sequence[str],
        where: str | None,
    ) -> UnitStats:
        """Per cohort, the per-unit sufficient statistics (`unit_sums` → `sufficient_stats`)."""
        return polars_unit_stats(spec, kpi, shape, tables, window, unit, keys, where)


def default_engine() -> Engine:
    """The engine a run uses when none is given: polars."""
    return PolarsEngine()
