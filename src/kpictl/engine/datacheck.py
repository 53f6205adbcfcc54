"""Does the data speak the spec's vocabulary? Checked on every run, before any number is shown.

Two checks, both cheap (one group-by per column compared with a literal, one null count per
column a KPI reads):

- every string literal a spec expression compares a column with (`event = 'resolution'`,
  `status IN ('ok', 'success')`) must match some row of the source that column comes from;
  one that matches none is a note naming the spec line, the literal, the values seen and a
  "did you mean";
- a column a KPI depends on (through rollup and derive entries, lookups and formulas) that no
  row of its source holds makes the KPI *unavailable*: its value is null, with the reason,
  never a 0 computed over nulls.

See the README's "When the data does not fit the spec" section.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import polars as pl

from kpictl.engine.costcoverage import cost_coverage, priced_sources
from kpictl.engine.findings import DataCheck, LiteralMatch, MissingColumn
from kpictl.engine.literals import literal_uses, top_values
from kpictl.engine.origins import column_origins, kpi_origins
from kpictl.engine.scans import column_empty, scan_sources
from kpictl.errors import UsageError
from kpictl.io.read import Sources
from kpictl.spec.model import OUTCOME_SOURCE, KpiSpec, Spec, TableSpec


def check_data(
    spec: Spec,
    sources: Sources,
    kpis: Sequence[KpiSpec],
    baselines: Sequence[str] = (),
    where: str | None = None,
) -> DataCheck:
    """The literals a run compares columns with, matched against the data, and the KPIs whose
    columns the data lacks: one pass over each source (null counts and literal matches), and
    a group-by only for a column whose literal matches nothing (the note lists its values)."""
    origins = {k.name: kpi_origins(spec, k) for k in kpis}
    absent = (  # declared, but the caller gave no such frame (load_frames without it)
        f"source {OUTCOME_SOURCE!r} not given: no business outcome can be credited"
    )
    unusable = {
        name: tuple(
            dict.fromkeys(
                str(sources.by_name[s].unusable) if s in sources else absent
                for s, _ in sorted(pairs)
                if (s in sources and sources.by_name[s].unusable)
                or (s == OUTCOME_SOURCE and s not in sources)
            )
        )
        for name, pairs in origins.items()
    }
    priced = priced_sources(sources)
    cost_sources = {
        name: sorted(s for s, c in pairs if c == "cost_usd" and s in priced)
        for name, pairs in origins.items()
    }
    for name in list(origins):  # a priced source's cost: its coverage, below
        origins[name] = {(s, c) for s, c in origins[name] if not (c == "cost_usd" and s in priced)}
    # a remote source's values are not scanned here (notes.remote_notes says so)
    uses = [
        u
        for u in literal_uses(spec, kpis, baselines, where)
        if u.source not in sources or sources.by_name[u.source].remote is None
    ]
    columns = set().union(*origins.values()) if origins else set()
    columns |= {(u.source, u.source_column) for u in uses}
    rows, nulls, matched = scan_sources(sources, columns, uses)
    empty = {pair for pair in columns if column_empty(sources, pair, rows, nulls)}
    missing = {
        name: tuple(MissingColumn(s, c) for s, c in sorted(pairs & empty))
        for name, pairs in origins.items()
        if pairs & empty
    }
    # a source without rows holds no values to match: its own note says it is empty
    no_rows = {s for s in sources.by_name if not rows.get(s)}
    missed = [
        (u.source, u.source_column)
        for i, u in enumerate(uses)
        if not matched.get(i)
        and (u.source, u.source_column) not in empty
        and u.source not in no_rows
    ]
    seen = top_values(sources, missed)
    matches = tuple(
        LiteralMatch(
            use,
            matched.get(i, 0),
            seen.get((use.source, use.source_column), ()),
            (use.source, use.source_column) in empty
            or use.source not in sources
            or use.source in no_rows,
        )
        for i, use in enumerate(uses)
    )
    coverage = cost_coverage(sources, {s for names in cost_sources.values() for s in names})
    costs = {
        name: tuple(
            coverage[s]
            for s in names
            if coverage[s].rows > coverage[s].priced
            or (coverage[s].computed and not coverage[s].cache_reported)
        )
        for name, names in cost_sources.items()
    }
    return DataCheck(
        matches,
        missing,
        {k: v for k, v in costs.items() if v},
        {k: v for k, v in unusable.items() if v},
    )


def require_columns(
    spec: Spec, sources: Sources, table: TableSpec, names: Iterable[str], what: str
) -> None:
    """Raise a UsageError when a column `names` read (a baseline's condition, a --by cohort)
    holds no value in its source: every unit would land in no arm, or in one null cohort."""
    origins = column_origins(spec, table, names)
    rows, nulls, _ = scan_sources(sources, origins, [])
    empty = sorted(pair for pair in origins if column_empty(sources, pair, rows, nulls))
    if not empty:
        return
    source, column = empty[0]
    frame = sources[source]
    schema = frame.collect_schema().names()
    counts = frame.select([pl.col(c).is_not_null().any().alias(c) for c in schema]).collect()
    present = [c for c in schema if counts.get_column(c).item()]
    raise UsageError(
        f"{what}: no `{column}` column in source {source!r} (no row has a value); "
        f"columns with values there: {', '.join(present)}"
    )
