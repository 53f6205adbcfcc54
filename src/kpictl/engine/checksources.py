"""`kpictl check`: the whole picture, per source (rows, time range, mapped / unmapped / empty
columns, repeated rows, orphans), with the run's data check."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from kpictl.engine.datacheck import check_data
from kpictl.engine.findings import DataCheck
from kpictl.engine.origins import kpi_expressions, kpi_origins, names_in
from kpictl.io import schema as canonical
from kpictl.io.read import Sources
from kpictl.spec.model import ColumnMapping, Spec
from kpictl.sql.tree import names as sql_names


@dataclass(frozen=True)
class SourceReport:
    """What one source holds, as the spec sees it."""

    name: str
    rows: int
    first: dt.datetime | None  # earliest ts, None without times
    last: dt.datetime | None
    mapped: tuple[str, ...]  # columns the spec maps (sources.<name>.columns)
    unmapped: tuple[str, ...]  # columns of the data the spec neither maps nor reads
    empty: tuple[str, ...]  # columns with no value in any row (or that the spec reads, absent)
    duplicates: int | None  # rows repeating another's (key, ts, event); None: not checked
    orphans: int | None  # rows whose key is not in the primary source; None: primary
    info: tuple[str, ...] = ()  # what the rows are (LoadedSource.info)


@dataclass(frozen=True)
class CheckReport:
    """`kpictl check`: per source, per compared literal, per KPI."""

    sources: tuple[SourceReport, ...]
    check: DataCheck
    kpis: tuple[str, ...]
    key: str | None

    @property
    def flagged(self) -> list[str]:
        """What makes `kpictl check` exit 2, one line each."""
        lines = self.check.notes()  # what --strict counts, and
        for source in self.sources:
            if source.duplicates:
                lines.append(
                    f"source {source.name!r}: {source.duplicates:,} rows repeat "
                    f"another row's ({self.key}, ts, event)"
                )
            if source.orphans:
                lines.append(
                    f"source {source.name!r}: {source.orphans:,} rows whose {self.key} "
                    "is not in the primary source"
                )
        return lines


def _spec_reads(spec: Spec) -> set[str]:
    """Every column name the spec's expressions, attributes, keys and breakdowns read."""
    names: set[str] = set()
    for table in spec.tables.values():
        names |= {*(c for c in (table.key, table.time) if c), *table.attributes}
        for sql in (table.where, *(e.sql for e in table.rollup), *(d.sql for d in table.derive)):
            names |= set(names_in(sql))
    for kpi in spec.kpis.values():
        names |= {n for _, sql in kpi_expressions(kpi) for n in names_in(sql)}
        names |= {c for c in (kpi.breakdown, kpi.cluster) if c}
        if kpi.pass_k is not None:
            names.add(kpi.pass_k.task)
    for baseline in spec.baselines.values():
        for sql in (baseline.control, baseline.treatment):
            names |= set(names_in(sql))
    return names


def _mapped_fields(columns: Sequence[ColumnMapping]) -> set[str]:
    """The raw fields a source's `columns:` read (`session` of `conversation_id: session`,
    `kind` of a `CASE kind …`): mapped, so not "neither mapped nor read"."""
    fields: set[str] = set()
    for mapping in columns:
        if mapping.source_field:
            fields.add(mapping.source_field.split(".")[0])
        elif mapping.sql:
            fields.update(sql_names(mapping.sql))
    return fields


def check_sources(spec: Spec, sources: Sources) -> CheckReport:
    """Read with the spec, report what the data holds: per source its rows, time range,
    columns (mapped, unmapped, empty), duplicated (key, ts, event) rows and rows whose key the
    primary source lacks; every compared literal with its matching rows; every KPI computable
    or why not."""
    unit = spec.primary_table
    key = unit.key if unit is not None else None
    primary = unit.rollup_sources()[0] if unit is not None and unit.rollup_sources() else None
    kpis = list(spec.kpis.values())
    check = check_data(spec, sources, kpis, tuple(spec.baselines))
    reads = _spec_reads(spec)
    needed = set().union(*(kpi_origins(spec, k) for k in kpis)) if kpis else set()
    needed |= {(m.use.source, m.use.source_column) for m in check.literals}
    keys = None
    if key is not None and primary is not None and primary in sources:
        keys = sources[primary].select(pl.col(key).unique())
    reports = []
    for name, loaded in sources.by_name.items():
        frame = loaded.frame
        schema = frame.collect_schema()
        aggs = [
            pl.len().alias("__rows"),
            *[pl.col(c).is_not_null().any().alias(c) for c in schema.names()],
        ]
        if "ts" in schema:
            aggs += [pl.col("ts").min().alias("__first"), pl.col("ts").max().alias("__last")]
        stats = frame.select(aggs).collect().row(0, named=True)
        declared = spec.sources.get(name)
        mapped = tuple(m.name for m in declared.columns) if declared is not None else ()
        known = {
            *canonical.CANONICAL_TABLES.get(name, {}),
            *canonical.COST_COLUMNS,
            *mapped,
            *reads,
            *_mapped_fields(declared.columns if declared is not None else ()),
        }
        triple = [c for c in (key, "ts", "event") if c is not None and c in schema]
        duplicates = None
        if key is not None and key in schema and len(triple) == 3:
            # chat messages share their record's time: `turn` (a message's position) tells
            # two messages of one conversation apart, so they are not repeats
            position = ["turn"] if "turn" in schema else []
            unique = frame.select(pl.struct(triple + position).n_unique()).collect().item()
            duplicates = int(stats["__rows"]) - int(unique)
        orphans = None
        if keys is not None and name != primary and key in schema:
            orphans = int(frame.join(keys, on=key, how="anti").select(pl.len()).collect().item())
        reports.append(
            SourceReport(
                name,
                int(stats["__rows"]),
                stats.get("__first"),
                stats.get("__last"),
                mapped,
                tuple(c for c in schema.names() if c not in known),
                (
                    *(c for c in schema.names() if not stats[c]),  # and what the spec reads, absent
                    *sorted(c for s, c in needed if s == name and c not in schema),
                ),
                duplicates,
                orphans,
                sources.by_name[name].info,
            )
        )
    return CheckReport(tuple(reports), check, tuple(spec.kpis), key)
