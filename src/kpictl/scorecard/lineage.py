"""What a KPI reads: the tables, SQL, source columns and rollup/derive entries behind it, and
the condition of a share-of-conversations KPI (`COUNT(*) FILTER (WHERE cond) / COUNT(*)`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kpictl.io.read import Sources
from kpictl.spec.model import KpiSpec, Spec, TableSpec
from kpictl.sql.tree import AggregateKind, aggregate, names


def kpi_tables(spec: Spec, kpi: KpiSpec) -> set[str]:
    if kpi.kind == "formula":
        return {t for name in kpi.formula_kpis for t in kpi_tables(spec, spec.kpis[name])}
    return {kpi.over}


def kpi_sqls(spec: Spec, kpi: KpiSpec) -> list[str | None]:
    if kpi.kind == "formula":
        return [s for name in kpi.formula_kpis for s in kpi_sqls(spec, spec.kpis[name])]
    return [kpi.where, kpi.mature, kpi.value, kpi.numerator, kpi.denominator]


def sql_names(sql: str) -> set[str]:
    """The column names an expression reads (from its parsed tree)."""
    return set(names(sql))


def kpi_inputs(
    spec: Spec, kpi: KpiSpec, source_columns: Mapping[str, set[str]]
) -> tuple[set[tuple[str, str]], list[tuple[str, str, str]]]:
    """The (source, column) pairs a KPI reads, traced through derive and rollup entries, and
    the entries it uses as (table.column, SQL, source)."""
    inputs: set[tuple[str, str]] = set()
    entries: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()

    def visit(table: TableSpec, names: Iterable[str]) -> None:
        for name in names:
            if (table.name, name) in seen:
                continue
            seen.add((table.name, name))
            derive = next((d for d in table.derive if d.name == name), None)
            rollup = next((r for r in table.rollup if r.name == name), None)
            if derive is not None:
                entries.append((f"{table.name}.{name}", derive.sql, "derive"))
                visit(table, sql_names(derive.sql))
            elif rollup is not None:
                entries.append((f"{table.name}.{name}", rollup.sql, rollup.source))
                columns = source_columns.get(rollup.source, set())
                words = sql_names(rollup.sql)
                inputs.update((rollup.source, w) for w in words if w in columns)
                visit(table, [w for w in words if w not in columns])
            elif table.is_rollup and name in table.attributes and table.rollup_sources():
                inputs.add((table.rollup_sources()[0], name))
            elif not table.is_rollup:
                parent = spec.tables[table.lookup] if table.lookup else None
                assert table.from_source is not None
                if parent is not None and (
                    name in parent.attributes
                    or name == parent.time
                    or any(e.name == name for e in parent.derive)
                    or any(e.name == name for e in parent.rollup)
                ):
                    visit(parent, [name])
                elif name in source_columns.get(table.from_source, set()):
                    inputs.add((table.from_source, name))

    for name in kpi_tables(spec, kpi):
        table = spec.tables[name]
        words: set[str] = set()
        for sql in [*kpi_sqls(spec, kpi), table.where]:
            if sql:
                words |= sql_names(sql)
        visit(table, sorted(words))
    return inputs, entries


def proportion_condition(spec: Spec, kpi: KpiSpec) -> str | None:
    """`cond` of a `COUNT(*) FILTER (WHERE cond) / COUNT(*)` KPI over the unit table."""
    if kpi.kind != "ratio" or kpi.over != spec.require_primary_table().name:
        return None
    numerator = aggregate(kpi.numerator or "")
    denominator = aggregate(kpi.denominator or "")
    if (
        numerator is None
        or denominator is None
        or numerator.kind is not AggregateKind.COUNT_FILTER
        or numerator.argument is not None  # COUNT(x) FILTER: rows with x null do not count
        or denominator.kind is not AggregateKind.COUNT
        or denominator.argument is not None
    ):
        return None
    return numerator.condition


def source_column_names(sources: Sources) -> dict[str, set[str]]:
    return {
        name: set(loaded.frame.collect_schema().names()) for name, loaded in sources.by_name.items()
    }
