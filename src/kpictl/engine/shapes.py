"""How a KPI reduces to units (its *shape*), read from its parsed SQL tree: the question compare
asks before any test, and what an engine's `unit_stats` (engine/interface.py) is handed.

The shape holds SQL text generated from the tree (an engine compiles it to its own dialect);
`numerator`, `denominator` and `values` are the polars compilations of that text, as `compute`
evaluates them.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from kpictl.spec.model import KpiSpec
from kpictl.sql.expr import compile_sql
from kpictl.sql.tree import (
    AggregateKind,
    additive_reason,
    aggregate,
    counts_rows,
    is_row_level,
    ratio_parts,
)


@dataclass(frozen=True)
class KpiShape:
    """How a KPI reduces to units: additive ratio, mean, quantile, formula, or not testable.

    Read from the KPI's parsed SQL tree (`kpictl.sql.tree`)."""

    kind: str  # ratio | avg | quantile | formula | pass_k | other
    numerator_sql: str | None = None  # ratio: per-unit additive aggregates
    denominator_sql: str | None = None
    values_sql: str | None = None  # the row expression of AVG / quantile (FILTER → null)
    nu: float | None = None
    counts_rows: bool = False  # COUNT(*) [FILTER (WHERE p)] / COUNT(*): each row 0 or 1
    reason: str | None = None  # other: why no test applies

    @property
    def numerator(self) -> pl.Expr | None:
        """The numerator aggregate as a polars expression."""
        return compile_sql(self.numerator_sql) if self.numerator_sql is not None else None

    @property
    def denominator(self) -> pl.Expr | None:
        """The denominator aggregate as a polars expression."""
        return compile_sql(self.denominator_sql) if self.denominator_sql is not None else None

    @property
    def values(self) -> pl.Expr | None:
        """The row values of AVG / a quantile as a polars expression."""
        return compile_sql(self.values_sql) if self.values_sql is not None else None


def _ratio_shape(numerator: str, denominator: str) -> KpiShape:
    reason = additive_reason(numerator)
    if reason is None:
        reason = additive_reason(denominator)
        where = "denominator"
    else:
        where = "numerator"
    if reason is not None:
        return KpiShape("other", reason=f"{where}: {reason}")
    return KpiShape(
        "ratio",
        numerator_sql=numerator,
        denominator_sql=denominator,
        counts_rows=counts_rows(numerator) and counts_rows(denominator),
    )


def kpi_shape(kpi: KpiSpec) -> KpiShape:
    """Classify a KPI by its parsed SQL (see the README's compare section).

    Only shapes that are exactly per-unit sums get the additive tests: a ratio of additive
    aggregates (`ratio`), `AVG(x)` (`avg`), `MEDIAN(x)`/`QUANTILE_CONT(x, ν)` (`quantile`),
    each with an optional FILTER. Anything else (COUNT(DISTINCT …), MAX, SUM(a) − MAX(b), …)
    is `other`, with the reason, and is reported as not testable."""
    if kpi.kind == "formula":
        return KpiShape("formula")
    if kpi.pass_k is not None:
        return KpiShape("pass_k")
    if kpi.kind == "ratio":
        return _ratio_shape(kpi.numerator or "", kpi.denominator or "")
    sql = kpi.value or ""
    found = aggregate(sql)
    values = found.values() if found is not None else None
    if found is not None and values is not None and is_row_level(values):
        if found.kind is AggregateKind.AVG:
            return KpiShape("avg", values_sql=values)
        if found.kind is AggregateKind.QUANTILE and found.quantile is not None:
            return KpiShape("quantile", values_sql=values, nu=found.quantile)
    parts = ratio_parts(sql)
    if parts is not None:
        return _ratio_shape(*parts)
    reason = additive_reason(sql)
    if reason is None:
        return KpiShape(
            "other",
            reason="a total grows with the size of the arm: compare it "
            "as a ratio (over COUNT(*), say)",
        )
    return KpiShape("other", reason=reason)
