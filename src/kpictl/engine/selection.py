"""What a run selects, checked before any data is read: the KPIs (`--kpi`, formula inputs
included), the cohorts (`--by`: columns the data holds, constant per key, not too many), the
rows (`--where`: on the tables with its columns) and the columns each table is read for."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

import polars as pl

from kpictl.engine.datacheck import require_columns
from kpictl.engine.interface import ComputeOptions
from kpictl.engine.window import BUCKET, names_in
from kpictl.errors import UsageError, did_you_mean
from kpictl.io.read import Sources
from kpictl.spec.model import GRAINS, KpiSpec, Spec
from kpictl.sql.expr import ExpressionProblem, ExpressionShape, check_expression


def check_cohort_counts(
    tables: Mapping[str, pl.LazyFrame | pl.DataFrame], by: Sequence[str], limit: int
) -> None:
    """Refuse a `--by` column with more than `limit` values in any of `tables` (UsageError).

    Only the column is computed (polars projects the facts down to it), so a rollup table costs
    a group-by of its key with one aggregate, not the whole rollup.
    """
    queries: list[tuple[str, pl.LazyFrame]] = []
    for dim in by:
        for table in tables.values():
            lazy = table.lazy()
            if dim in lazy.collect_schema().names():
                queries.append((dim, lazy.select(pl.col(dim).n_unique())))
    counts: dict[str, int] = {}
    for (dim, _), frame in zip(queries, pl.collect_all([q for _, q in queries]), strict=True):
        counts[dim] = max(counts.get(dim, 0), int(frame.item()))
    for dim, count in counts.items():
        if count > limit:
            raise UsageError(
                f"--by {dim}: {count:,} values, more than --max-cohorts ({limit:,}); split by a "
                "column with fewer values, or raise --max-cohorts"
            )


def check_options(spec: Spec, options: ComputeOptions, kpis: Sequence[KpiSpec]) -> None:
    if options.grain is not None and options.grain not in GRAINS:
        raise UsageError(f"--grain {options.grain}: expected one of {', '.join(GRAINS)}")
    tables = {k.over for k in kpis if k.kind != "formula"}
    for dim in options.by:
        if dim == BUCKET:
            raise UsageError("--by bucket: use --grain for time buckets")
        if not any(dim in spec.column_types[t] for t in tables):
            columns = {c for t in tables for c in spec.column_types[t]}
            raise UsageError(
                f"--by {dim}: no such column{did_you_mean(dim, columns)}; "
                f"cohort columns include: {', '.join(sorted(columns))}"
            )
    check_where(spec, options.where, tables)


def where_tables(spec: Spec, where: str | None, tables: Collection[str]) -> list[str]:
    """The tables of `tables` --where filters: those with every column it names (README,
    "--where"); the others' KPIs are over all their rows, and `where_note` says so."""
    if not where:
        return sorted(tables)
    try:
        names = set(names_in([where]))
    except ExpressionProblem:
        return sorted(tables)  # check_where reports the problem
    return sorted(t for t in tables if names <= set(spec.table_schema(t)))


def where_note(spec: Spec, where: str | None, tables: Collection[str]) -> str | None:
    """A note naming the tables --where does not filter (they lack a column it names)."""
    applies = where_tables(spec, where, tables)
    skipped = sorted(set(tables) - set(applies))
    if not where or not skipped or not applies:
        return None
    names = names_in([where])
    lacking = [
        f"{t!r} (no {', '.join(repr(n) for n in names if n not in spec.table_schema(t))})"
        for t in skipped
    ]
    return (
        f"--where {where}: filters the KPIs of {', '.join(repr(t) for t in applies)}; not "
        f"those of {', '.join(lacking)}, which are over all their rows"
    )


def check_where(spec: Spec, where: str | None, tables: Collection[str]) -> None:
    """--where is a true/false row expression of the tables it filters (those with its
    columns; all of them when none has them, so the unknown column is named), checked before
    any data is read: a syntax error, an unknown column, the wall clock or a file reader is a
    usage error naming the table (compute and compare alike)."""
    if not where:
        return
    for table in where_tables(spec, where, tables) or sorted(tables):
        try:
            check_expression(
                where,
                spec.table_schema(table),
                shape=ExpressionShape.ROW,
                dtype=pl.Boolean,
                what="--where",
            )
        except ExpressionProblem as exc:
            raise UsageError(f"--where (on table {table!r}): {exc}") from exc


def with_cohort_columns(
    spec: Spec, sources: Sources, by: Sequence[str], tables: Collection[str]
) -> Spec:
    """The spec with each `--by` column it does not declare but the data holds (README,
    "--by any column"), for the KPI tables `tables`: a column of a row table's source is a
    column of that table; a column of a rollup table's first source that is constant within
    each key is rolled up as an attribute (and looked up by the row tables under it). One that
    varies within a key is a UsageError naming a key and two of its values."""
    specs = dict(spec.tables)
    types = {name: dict(columns) for name, columns in spec.column_types.items()}
    for dim in dict.fromkeys(d for d in by if d != BUCKET):
        for name, table in spec.tables.items():
            if name not in tables or dim in types.get(name, {}):
                continue
            origin = table.from_source
            if table.is_rollup:
                origin = (table.rollup_sources() or (None,))[0]
            if origin is None or origin not in sources:
                continue
            schema = sources[origin].collect_schema()
            if dim not in schema:
                continue
            types.setdefault(name, {})[dim] = schema[dim]
            if table.is_rollup and table.key is not None:
                row_tables = [
                    n for n, t in spec.tables.items() if t.from_source == origin and dim in schema
                ]
                if sources.by_name[origin].remote is None:  # else the engine's own check
                    _require_constant(sources[origin], table.key, dim, name, row_tables)
                specs[name] = replace(specs[name], attributes=(*specs[name].attributes, dim))
                for child, child_table in spec.tables.items():
                    if child_table.lookup == name:
                        types.setdefault(child, {}).setdefault(dim, schema[dim])
    if specs == dict(spec.tables) and types == spec.column_types:
        return spec
    return replace(spec, tables=specs, column_types=types)


def _require_constant(
    rows: pl.LazyFrame, key: str, dim: str, table: str, row_tables: Sequence[str]
) -> None:
    """`--by dim` rolled up per `key`: every key has at most one value (nulls aside)."""
    varying = (
        rows.filter(pl.col(dim).is_not_null())
        .group_by(key)
        .agg(pl.col(dim).cast(pl.String).unique().sort().alias("__values"))
        .filter(pl.col("__values").list.len() > 1)
        .sort(key)
        .collect()
    )
    if varying.height:
        example, values = varying.row(0)
        raise UsageError(
            f"--by {dim}: varies within a {key} ({varying.height:,} of them; e.g. {key} "
            f"{example!r} has {values[0]!r} and {values[1]!r}): it cannot split the KPIs of "
            f"table {table!r}, one row per {key}; "
            + (
                f"KPIs of {' or '.join(repr(t) for t in row_tables)} (--kpi) split their rows by "
                "it, or "
                if row_tables
                else ""
            )
            + f"roll it up in the spec (e.g. FIRST({dim}) in tables.{table}.rollup)"
        )


def require_cohorts(
    spec: Spec, sources: Sources, kpis: Sequence[KpiSpec], by: Sequence[str]
) -> None:
    """A --by column no row holds is an error: every unit would fall in one null cohort."""
    tables = [spec.tables[t] for t in dict.fromkeys(k.over for k in kpis if k.kind != "formula")]
    for dim in by:
        table = next((t for t in tables if dim in spec.column_types[t.name]), None)
        if table is not None and dim != BUCKET:
            require_columns(spec, sources, table, [dim], f"--by {dim}")


def _kpi_reads(kpi: KpiSpec) -> set[str]:
    """The column names one KPI's expressions, breakdown and cluster read."""
    names = set(
        names_in(
            [
                kpi.where,
                kpi.mature,
                kpi.value,
                kpi.numerator,
                kpi.denominator,
                kpi.pass_k.success if kpi.pass_k else None,
            ]
        )
    )
    names |= {c for c in (kpi.breakdown, kpi.cluster) if c}
    if kpi.pass_k is not None:
        names.add(kpi.pass_k.task)
    return names


def read_names(
    spec: Spec,
    kpis: Sequence[KpiSpec],
    options: ComputeOptions,
    *,
    with_time: bool = False,
    extra: Collection[str] = (),
) -> dict[str, set[str]]:
    """Per table, every column name a run can read from it: its KPIs' expressions,
    breakdowns and clusters, --where, --by and `extra`, and (`with_time`: windows, buckets)
    the time. A rollup table also gets its derive and the names of every other table (what
    row tables look up, what `where`s read: a superset, never too few)."""
    common = set(names_in([options.where])) | set(options.by) | set(extra)
    if with_time:
        common |= {t.time for t in spec.tables.values() if t.time}
    reads = {name: set(common) for name in spec.tables}
    for kpi in kpis:
        if kpi.kind != "formula":
            reads[kpi.over] |= _kpi_reads(kpi)
    everything = set().union(*reads.values()) | set(
        names_in(
            [sql for t in spec.tables.values() for sql in [t.where, *(d.sql for d in t.derive)]]
        )
    )
    for name, table in spec.tables.items():
        if table.is_rollup:
            reads[name] = everything
    return reads


def selected_kpis(spec: Spec, names: Sequence[str]) -> tuple[list[KpiSpec], list[str]]:
    """The KPIs to compute (formula inputs included) and the names to output."""
    for name in names:
        if name not in spec.kpis:
            raise UsageError(
                f"--kpi {name}: no such KPI{did_you_mean(name, spec.kpis)}; "
                f"KPIs: {', '.join(spec.kpis)}"
            )
    output = list(names) or list(spec.kpis)
    needed = set(output)
    stack = list(output)
    while stack:
        for dep in spec.kpis[stack.pop()].formula_kpis:
            if dep not in needed:
                needed.add(dep)
                stack.append(dep)
    return [k for k in spec.kpis.values() if k.name in needed], output
