"""Where a column's values come from: the (source, column) pairs a table's column or a KPI's
value is computed from, through derive and rollup entries, lookups and formulas."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from kpictl.io import schema as canonical
from kpictl.spec.model import KpiSpec, RollupEntry, Spec, TableSpec
from kpictl.sql.expr import (
    compile_sql,
    picked_column,
)
from kpictl.sql.tree import names as sql_names


def spec_location(spec: Spec, line: int | None) -> str:
    return f"{spec.path}:{line}" if line is not None else str(spec.path)


def is_free(spec: Spec, name: str) -> bool:
    """Params and built-ins: constants, not data."""
    return name in spec.params or name in canonical.BUILTIN_COLUMNS


def value_origin(spec: Spec, table: TableSpec, name: str) -> tuple[str, str] | None:
    """(source, column) whose values a column of `table` takes unchanged: an attribute, a
    row table's own column, a looked-up attribute, a FIRST/LAST/MIN/MAX rollup entry."""
    if is_free(spec, name):
        return None
    if table.is_rollup:
        sources = table.rollup_sources()
        entry = next((e for e in table.rollup if e.name == name), None)
        if entry is not None:
            picked = picked_column(entry.sql)
            return (entry.source, picked) if picked is not None else None
        if any(d.name == name for d in table.derive):
            return None
        return (sources[0], name) if sources else None
    assert table.from_source is not None
    if table.lookup:
        parent = spec.tables[table.lookup]
        if name in parent.attributes or name == parent.time:
            return value_origin(spec, parent, name)
    return table.from_source, name


def column_origins(
    spec: Spec, table: TableSpec, names: Iterable[str], seen: set[tuple[str, str]] | None = None
) -> set[tuple[str, str]]:
    """Every (source, column) the columns `names` of `table` are computed from, through
    derive and rollup entries and lookups."""
    seen = set() if seen is None else seen
    origins: set[tuple[str, str]] = set()
    for name in names:
        if (table.name, name) in seen or is_free(spec, name):
            continue
        seen.add((table.name, name))
        if table.is_rollup:
            derive = next((d for d in table.derive if d.name == name), None)
            entry = next((e for e in table.rollup if e.name == name), None)
            if derive is not None:
                origins |= column_origins(spec, table, names_in(derive.sql), seen)
            elif entry is not None:
                if _null_when_absent(spec, entry):
                    continue  # null, as for a key without matching rows: never a hidden 0
                reads = names_in(entry.sql)  # earlier entries (depends_on) or source columns
                earlier = [n for n in reads if n in entry.depends_on]
                origins |= column_origins(spec, table, earlier, seen)
                origins |= {
                    (entry.source, n)
                    for n in reads
                    if n not in entry.depends_on and not is_free(spec, n)
                }
            elif name != table.key and table.rollup_sources():
                origins.add((table.rollup_sources()[0], name))
        else:
            assert table.from_source is not None
            parent = spec.tables[table.lookup] if table.lookup else None
            if parent is not None and (name in parent.attributes or name == parent.time):
                origins |= column_origins(spec, parent, [name], seen)
            else:
                origins.add((table.from_source, name))
    return origins


def _null_when_absent(spec: Spec, entry: RollupEntry) -> bool:
    """Whether a rollup entry is null when the columns it reads hold no value (AVG, MIN,
    FIRST, SUM, …): then a missing column gives what a key without matching rows gives, which
    the spec handles. TOTAL, COUNT and comparisons give a value (0, false): a hidden number."""
    reads = names_in(entry.sql)
    if any(is_free(spec, n) for n in reads):
        return False
    types = canonical.CANONICAL_TABLES.get(entry.source, {})
    frame = pl.DataFrame(
        {
            n: pl.Series(
                n,
                [None, None],
                dtype=types[n].dtype if n in types else canonical.PASS_THROUGH_DTYPE,
            )
            for n in reads
        }
    )
    try:
        result = frame.select(compile_sql(entry.sql))
    except Exception:  # a type it cannot take: keep the dependency
        return False
    return result.height == 1 and result.item() is None


def names_in(sql: str | None) -> list[str]:
    return list(sql_names(sql)) if sql else []


def kpi_expressions(kpi: KpiSpec) -> list[tuple[str, str]]:
    """(key, SQL) of the expressions that decide a KPI's value (not its breakdown)."""
    pairs = [(k, getattr(kpi, k)) for k in ("where", "mature", "value", "numerator", "denominator")]
    if kpi.pass_k is not None:
        pairs.append(("success", kpi.pass_k.success))
    return [(k, sql) for k, sql in pairs if isinstance(sql, str) and sql]


# kpi_origins per (spec, KPI) object: a report with `--by` asks for every KPI once per arm and
# cohort (~400 times at 9 cohorts), and each answer compiles its rollup entries' SQL. Keyed on
# the objects' identity (hashing a whole frozen spec would cost as much); the entry holds both
# objects, so an id is not reused while its entry lives. Bounded: oldest entries dropped.
_ORIGINS: dict[tuple[int, int], tuple[Spec, KpiSpec, frozenset[tuple[str, str]]]] = {}
_ORIGINS_MAX = 512


def kpi_origins(spec: Spec, kpi: KpiSpec) -> set[tuple[str, str]]:
    """The (source, column) pairs a KPI's value depends on (formulas: their components')."""
    key = (id(spec), id(kpi))
    hit = _ORIGINS.get(key)
    if hit is not None and hit[0] is spec and hit[1] is kpi:
        return set(hit[2])
    origins = _kpi_origins(spec, kpi)
    if len(_ORIGINS) >= _ORIGINS_MAX:
        del _ORIGINS[next(iter(_ORIGINS))]
    _ORIGINS[key] = (spec, kpi, frozenset(origins))
    return origins


def _kpi_origins(spec: Spec, kpi: KpiSpec) -> set[tuple[str, str]]:
    if kpi.kind == "formula":
        return set().union(*(kpi_origins(spec, spec.kpis[k]) for k in kpi.formula_kpis))
    names = [n for _, sql in kpi_expressions(kpi) for n in names_in(sql)]
    if kpi.pass_k is not None:
        names.append(kpi.pass_k.task)
    return column_origins(spec, spec.tables[kpi.over], names)
