"""The string literals a run's expressions compare columns with, and the most frequent
values of a column whose literal matches no row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import polars as pl

from kpictl.engine.findings import LiteralUse
from kpictl.engine.origins import is_free, kpi_expressions, spec_location, value_origin
from kpictl.io.read import Sources
from kpictl.spec.model import KpiSpec, Spec, TableSpec
from kpictl.sql.expr import (
    compared_literals,
)
from kpictl.sql.tree import names as sql_names

SEEN_VALUES = 10  # the most frequent values a note lists


def _tables_of(spec: Spec, kpis: Sequence[KpiSpec]) -> list[TableSpec]:
    wanted = {k.over for k in kpis if k.kind != "formula"}
    for name in list(wanted):
        if spec.tables[name].lookup:
            wanted.add(str(spec.tables[name].lookup))
    return [t for t in spec.tables.values() if t.name in wanted]


def literal_uses(
    spec: Spec, kpis: Sequence[KpiSpec], baselines: Sequence[str] = (), where: str | None = None
) -> list[LiteralUse]:
    """Every string literal compared with a column in what a run evaluates: the tables its
    KPIs read (rollup, derive, `where`), the KPIs, the baselines named and --where."""
    uses: list[LiteralUse] = []

    def add(
        location: str, path: str, sql: str | None, table: TableSpec, source: str | None = None
    ) -> None:
        if not sql:
            return
        earlier = next((e.depends_on for e in table.rollup if e.sql == sql), ())
        for column, literal in compared_literals(sql):
            if source is not None and column not in earlier:
                origin: tuple[str, str] | None = (source, column)
            else:
                origin = value_origin(spec, table, column)
            if origin is not None and not is_free(spec, column):
                uses.append(LiteralUse(location, path, column, literal, *origin))

    for table in _tables_of(spec, kpis):
        base = f"tables.{table.name}"
        for entry in table.rollup:
            add(
                spec_location(spec, entry.line),
                f"{base}.rollup.{entry.source}.{entry.name}",
                entry.sql,
                table,
                entry.source,
            )
        for derive in table.derive:
            add(spec_location(spec, derive.line), f"{base}.derive.{derive.name}", derive.sql, table)
        add(
            spec_location(spec, table.where_line or table.line), f"{base}.where", table.where, table
        )
    for kpi in kpis:
        if kpi.kind == "formula":
            continue
        for key, sql in kpi_expressions(kpi):
            line = kpi.lines.get("pass_k" if key == "success" else key, kpi.line)
            add(spec_location(spec, line), f"kpis.{kpi.name}.{key}", sql, spec.tables[kpi.over])
    unit_table = spec.primary_table
    for name in baselines:
        baseline = spec.baselines.get(name)
        if baseline is None or unit_table is None:
            continue
        for key in ("control", "treatment"):
            add(
                spec_location(spec, baseline.line),
                f"baselines.{name}.{key}",
                getattr(baseline, key),
                unit_table,
            )
    if where and unit_table is not None:
        names = set(sql_names(where))
        for table in _tables_of(spec, kpis):
            if names <= set(spec.table_schema(table.name)):  # --where filters this table
                add("--where", "--where", where, table)
    unique: dict[tuple[str, str, str, str], LiteralUse] = {}
    for use in uses:
        unique.setdefault((use.path, use.literal, use.source, use.source_column), use)
    return list(unique.values())


def top_values(
    sources: Sources, columns: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[tuple[str, int], ...]]:
    """Per (source, column): its most frequent values with their row counts (a group-by per
    column, run together; only for the columns a note needs)."""
    wanted = [
        (s, c)
        for s, c in dict.fromkeys(columns)
        if s in sources and c in sources[s].collect_schema()
    ]
    queries = [
        sources[s]
        .group_by(pl.col(c).cast(pl.String).alias("value"))
        .agg(pl.len().alias("rows"))
        .drop_nulls("value")
        .sort(["rows", "value"], descending=[True, False])
        .head(SEEN_VALUES)
        for s, c in wanted
    ]
    frames = pl.collect_all(queries) if queries else []
    return {
        key: tuple((str(v), int(n)) for v, n in frame.iter_rows())
        for key, frame in zip(wanted, frames, strict=True)
    }
