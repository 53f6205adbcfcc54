"""Cost coverage of the priced sources: which rows should carry a cost, which do, and the
sources whose `cost_usd` a KPI reads."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from kpictl.engine.findings import CostCoverage
from kpictl.engine.origins import kpi_origins
from kpictl.io.read import Sources
from kpictl.spec.model import KpiSpec, Spec


def _cost_parts(schema: pl.Schema) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """Per row of a priced source: has a cost, has tokens, is an agent message (an LLM call)."""
    has_cost = pl.col("cost_usd").is_not_null() if "cost_usd" in schema else pl.lit(False)
    has_tokens = pl.lit(False)
    for column in ("input_tokens", "output_tokens"):
        if column in schema:
            has_tokens = has_tokens | pl.col(column).is_not_null()
    llm = (
        ((pl.col("role") == "agent") & (pl.col("event") == "message")).fill_null(False)
        if "role" in schema and "event" in schema
        else pl.lit(False)
    )
    return has_cost, has_tokens, llm


def cost_flags(schema: pl.Schema) -> tuple[pl.Expr, pl.Expr]:
    """(known, bearing) per row of a priced source, as 0/1: the row has a cost; the row should
    carry one (an agent message, or tokens or a cost) — the counts of `cost_coverage`."""
    has_cost, has_tokens, llm = _cost_parts(schema)
    return has_cost.cast(pl.Int64), (has_cost | has_tokens | llm).cast(pl.Int64)


def priced_sources(sources: Sources) -> set[str]:
    """The sources whose cost is tracked row by row (a `cost_source` column)."""
    return {s for s in sources.by_name if "cost_source" in sources[s].collect_schema()}


def kpi_cost_sources(spec: Spec, kpi: KpiSpec) -> list[str]:
    """The sources whose `cost_usd` a KPI reads (through rollup entries and formulas)."""
    return sorted({s for s, c in kpi_origins(spec, kpi) if c == "cost_usd"})


def cost_coverage(sources: Sources, names: Iterable[str]) -> dict[str, CostCoverage]:
    """Per priced source: its cost-bearing rows and how many have a known cost (one pass)."""
    wanted = sorted(names)
    queries = []
    for name in wanted:
        schema = sources[name].collect_schema()
        has_cost, has_tokens, llm = _cost_parts(schema)
        computed = pl.col("cost_source") == "computed"
        cached = (
            pl.col("cache_read_tokens").is_not_null()
            if "cache_read_tokens" in schema
            else pl.lit(False)
        )
        queries.append(
            sources[name].select(
                (has_cost | has_tokens | llm).sum().alias("rows"),
                has_cost.sum().alias("priced"),
                (pl.col("cost_source") == "unpriced").sum().alias("unpriced"),
                (llm & ~has_cost & ~has_tokens).sum().alias("no_usage"),
                computed.sum().alias("computed"),
                (computed & cached).sum().alias("cache_reported"),
            )
        )
    frames = pl.collect_all(queries) if queries else []
    return {
        name: CostCoverage(name, **{k: int(v or 0) for k, v in frame.row(0, named=True).items()})
        for name, frame in zip(wanted, frames, strict=True)
    }
