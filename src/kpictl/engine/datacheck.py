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

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from kpictl.errors import UsageError, did_you_mean
from kpictl.io import schema as canonical
from kpictl.io.pricing import COST_SOURCES
from kpictl.io.read import Sources
from kpictl.spec.model import OUTCOME_SOURCE, ColumnMapping, KpiSpec, RollupEntry, Spec, TableSpec
from kpictl.sql.expr import (
    compared_literals,
    compile_sql,
    picked_column,
)
from kpictl.sql.tree import names as sql_names

SEEN_VALUES = 10  # the most frequent values a note lists
# columns kpictl itself writes: a literal of their vocabulary matching no row is a count of 0
KNOWN_VALUES: dict[str, tuple[str, ...]] = {"cost_source": COST_SOURCES}


@dataclass(frozen=True)
class LiteralUse:
    """A string literal a spec expression compares a column with."""

    location: str  # spec file:line (or "--where")
    path: str  # e.g. kpis.tool_call_success_rate.numerator
    column: str  # the column as the expression names it
    literal: str
    source: str  # the source whose rows hold the column's values
    source_column: str  # the column there


@dataclass(frozen=True)
class LiteralMatch:
    """How many rows of its source a compared literal matches, and what the column holds."""

    use: LiteralUse
    rows: int
    seen: tuple[tuple[str, int], ...]  # the most frequent values, with their row counts
    column_empty: bool  # the column holds no value at all (see `MissingColumn`)

    @property
    def note(self) -> str:
        """The note of a literal that matches no row."""
        use = self.use
        values = ", ".join(f"{v!r} ({n:,})" for v, n in self.seen)
        hint = did_you_mean(use.literal, [v for v, _ in self.seen])
        where = use.location if use.location == use.path else f"{use.location}: {use.path}"
        return (
            f"{where}: no row of source {use.source!r} has "
            f"{use.source_column} = {use.literal!r}; most frequent values: {values}{hint}"
        )


@dataclass(frozen=True)
class MissingColumn:
    """A column the spec reads that no row of its source holds (absent from every file, so
    null throughout)."""

    source: str
    column: str

    @property
    def reason(self) -> str:
        return f"no `{self.column}` column in source {self.source!r}"


@dataclass(frozen=True)
class CostCoverage:
    """How many of a priced source's cost-bearing rows — agent messages (LLM calls) and any row
    with tokens or a cost — have a known cost. The others are unpriced (tokens, no price) or
    carry no usage at all (an agent message without tokens or cost): their cost is unknown,
    never $0."""

    source: str
    rows: int
    priced: int
    unpriced: int
    no_usage: int
    computed: int  # costs computed from tokens
    cache_reported: int  # of those, with a cached-token count (cache_read_tokens)

    @property
    def unknown(self) -> str:
        """What the unknown rows are: "2 unpriced (tokens but no price), 1 agent message
        without usage"."""
        parts = []
        if self.unpriced:
            parts.append(f"{self.unpriced} unpriced (tokens but no price)")
        if self.no_usage:
            parts.append(
                f"{self.no_usage} agent message{'s' if self.no_usage != 1 else ''} "
                "without usage (no tokens, no cost)"
            )
        return ", ".join(parts)

    @property
    def reason(self) -> str:
        """Why a cost KPI over this source is unavailable (no row has a cost)."""
        return f"cost unknown: no row of source {self.source!r} has a cost ({self.unknown})"


@dataclass(frozen=True)
class DataCheck:
    """What the data lets a run show: literals matched, KPIs that cannot be computed."""

    literals: tuple[LiteralMatch, ...] = ()
    missing: Mapping[str, tuple[MissingColumn, ...]] = field(default_factory=dict)  # by KPI
    costs: Mapping[str, tuple[CostCoverage, ...]] = field(default_factory=dict)  # by cost KPI
    # by KPI: why a source it reads cannot support a number (LoadedSource.unusable)
    unusable: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def unavailable(self) -> tuple[str, ...]:
        """The KPIs that cannot be computed: a column missing, or no row with a known cost."""
        unknown = [k for k, covers in self.costs.items() if any(not c.priced for c in covers)]
        return tuple(dict.fromkeys([*self.missing, *unknown, *self.unusable]))

    @property
    def unmatched(self) -> tuple[LiteralMatch, ...]:
        """Literals that match no row of a column that does hold values (a value of a column
        kpictl writes, such as cost_source = 'unpriced', is never a typo)."""
        return tuple(
            m
            for m in self.literals
            if m.rows == 0
            and not m.column_empty
            and m.use.literal not in KNOWN_VALUES.get(m.use.source_column, ())
        )

    @property
    def findings(self) -> int:
        """How many things the check flags (what `--strict` turns into exit 2): literals that
        match nothing and missing columns."""
        return len(self.notes())

    def reason(self, kpi: str) -> str | None:
        """Why a KPI is unavailable, or None when it can be computed."""
        reasons = [m.reason for m in self.missing.get(kpi, ())]
        reasons += [c.reason for c in self.costs.get(kpi, ()) if not c.priced]
        reasons += self.unusable.get(kpi, ())
        return "; ".join(reasons) if reasons else None

    def notes(self) -> list[str]:
        """One note per unmatched literal and per unavailable KPI."""
        notes = [m.note for m in self.unmatched]
        by_column: dict[MissingColumn, list[str]] = {}
        for kpi, columns in self.missing.items():
            for column in columns:
                by_column.setdefault(column, []).append(kpi)
        for column, kpis in by_column.items():
            notes.append(
                f"{column.reason}: unavailable (value null, not computed over nulls): "
                f"{', '.join(kpis)}; map the column in the spec, e.g. sources.{column.source}"
                f".columns.{column.column}: {{from: <field>}}, or {{default: 0}} when its "
                "absence means zero"
            )
        by_reason: dict[str, list[str]] = {}
        for kpi, reasons in self.unusable.items():
            for reason in reasons:
                by_reason.setdefault(reason, []).append(kpi)
        for reason, kpis in by_reason.items():
            notes.append(f"{reason}: unavailable (value null, not 0): {', '.join(kpis)}")
        by_source: dict[CostCoverage, list[str]] = {}
        for kpi, covers in self.costs.items():
            for cover in covers:
                by_source.setdefault(cover, []).append(kpi)
        for cover, kpis in by_source.items():
            names = ", ".join(kpis)
            if not cover.priced:
                notes.append(f"{cover.reason}: unavailable (value null, not $0): {names}")
            elif cover.priced < cover.rows:
                notes.append(
                    f"cost: partially priced ({cover.priced:,} of {cover.rows:,} rows of "
                    f"source {cover.source!r}; {cover.unknown}): the unknown costs are left "
                    f"out of {names}, a lower bound"
                )
            if cover.computed and not cover.cache_reported:
                notes.append(
                    f"cost: source {cover.source!r} reports no cached tokens "
                    f"(cache_read_tokens): its {cover.computed:,} computed costs are priced "
                    f"without the cache discount, an upper bound where the provider cached "
                    f"input ({names})"
                )
        return notes


def unavailable_label(reason: str) -> str:
    """How an unavailable value is shown: "unavailable (no `intent` column)"."""
    parts = reason.split("; ")
    columns = list(dict.fromkeys(p.split("`")[1] for p in parts if p.count("`") >= 2))
    shown = []
    if columns:
        names = ", ".join(f"`{c}`" for c in columns)
        shown.append(f"no {names} column{'s' if len(columns) > 1 else ''}")
    if any(p.startswith("cost unknown") for p in parts):
        shown.append("cost unknown")
    if any(OUTCOME_SOURCE in p and ("not read" in p or "not given" in p) for p in parts):
        shown.append(f"no {OUTCOME_SOURCE} given")
    elif any(OUTCOME_SOURCE in p and "attributed" in p for p in parts):
        shown.append("no business event matched")

    return f"unavailable ({', '.join(shown)})" if shown else "unavailable"


# ----------------------------------------------------------------------------------------------
# Where a column's values come from
# ----------------------------------------------------------------------------------------------


def _location(spec: Spec, line: int | None) -> str:
    return f"{spec.path}:{line}" if line is not None else str(spec.path)


def _free(spec: Spec, name: str) -> bool:
    """Params and built-ins: constants, not data."""
    return name in spec.params or name in canonical.BUILTIN_COLUMNS


def value_origin(spec: Spec, table: TableSpec, name: str) -> tuple[str, str] | None:
    """(source, column) whose values a column of `table` takes unchanged: an attribute, a
    row table's own column, a looked-up attribute, a FIRST/LAST/MIN/MAX rollup entry."""
    if _free(spec, name):
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
        if (table.name, name) in seen or _free(spec, name):
            continue
        seen.add((table.name, name))
        if table.is_rollup:
            derive = next((d for d in table.derive if d.name == name), None)
            entry = next((e for e in table.rollup if e.name == name), None)
            if derive is not None:
                origins |= column_origins(spec, table, _names(derive.sql), seen)
            elif entry is not None:
                if _null_when_absent(spec, entry):
                    continue  # null, as for a key without matching rows: never a hidden 0
                reads = _names(entry.sql)  # earlier entries (depends_on) or source columns
                earlier = [n for n in reads if n in entry.depends_on]
                origins |= column_origins(spec, table, earlier, seen)
                origins |= {
                    (entry.source, n)
                    for n in reads
                    if n not in entry.depends_on and not _free(spec, n)
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
    reads = _names(entry.sql)
    if any(_free(spec, n) for n in reads):
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


def _names(sql: str | None) -> list[str]:
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
    names = [n for _, sql in kpi_expressions(kpi) for n in _names(sql)]
    if kpi.pass_k is not None:
        names.append(kpi.pass_k.task)
    return column_origins(spec, spec.tables[kpi.over], names)


# ----------------------------------------------------------------------------------------------
# Literals
# ----------------------------------------------------------------------------------------------


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
            if origin is not None and not _free(spec, column):
                uses.append(LiteralUse(location, path, column, literal, *origin))

    for table in _tables_of(spec, kpis):
        base = f"tables.{table.name}"
        for entry in table.rollup:
            add(
                _location(spec, entry.line),
                f"{base}.rollup.{entry.source}.{entry.name}",
                entry.sql,
                table,
                entry.source,
            )
        for derive in table.derive:
            add(_location(spec, derive.line), f"{base}.derive.{derive.name}", derive.sql, table)
        add(_location(spec, table.where_line or table.line), f"{base}.where", table.where, table)
    for kpi in kpis:
        if kpi.kind == "formula":
            continue
        for key, sql in kpi_expressions(kpi):
            line = kpi.lines.get("pass_k" if key == "success" else key, kpi.line)
            add(_location(spec, line), f"kpis.{kpi.name}.{key}", sql, spec.tables[kpi.over])
    unit_table = spec.primary_table
    for name in baselines:
        baseline = spec.baselines.get(name)
        if baseline is None or unit_table is None:
            continue
        for key in ("control", "treatment"):
            add(
                _location(spec, baseline.line),
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


@dataclass
class SharedScans:
    """The counts `check_data` took over each source while `shared_scans` is open: one run that
    checks the same sources several times (the report: its compare, its trend, its cohorts)
    counts each thing once. `passes`: the source of each pass made over a source's rows."""

    counts: dict[tuple[int, str], int] = field(default_factory=dict)
    frames: list[pl.LazyFrame] = field(default_factory=list)  # alive while their ids are keys
    passes: list[str] = field(default_factory=list)
    rows: dict[tuple[int, str], tuple[Any, ...]] = field(default_factory=dict)  # shared_row's


_SHARED: list[SharedScans] = []


@contextmanager
def shared_scans() -> Iterator[SharedScans]:
    """While the block runs, `check_data` counts each column's nulls and each literal's matches
    once per source frame, and reuses them (an enclosing block's counts, when one is open).
    Outside such a block every call counts afresh."""
    if _SHARED:
        yield _SHARED[-1]
        return
    shared = SharedScans()
    _SHARED.append(shared)
    try:
        yield shared
    finally:
        _SHARED.remove(shared)


def shared_row(frame: pl.LazyFrame, name: str, *exprs: pl.Expr) -> tuple[Any, ...]:
    """The one row of `exprs` over `frame` (aggregates); while `shared_scans` is open, taken
    once per frame and `name` (the latest time of a source, asked by every window a report
    resolves)."""
    shared = _SHARED[-1] if _SHARED else None
    if shared is not None and (id(frame), name) in shared.rows:
        return shared.rows[(id(frame), name)]
    row = frame.select(*exprs).collect().row(0)
    if shared is not None:
        shared.frames.append(frame)
        shared.rows[(id(frame), name)] = row
    return row


def _scan(
    sources: Sources, columns: set[tuple[str, str]], uses: Sequence[LiteralUse]
) -> tuple[dict[str, int], dict[tuple[str, str], int], dict[int, int]]:
    """One pass per source: its rows, the null count of each column and the rows each literal
    matches (counts already taken inside `shared_scans` are not taken again). Returns (rows by
    source, nulls by column, matches by use index)."""
    plans: dict[str, dict[str, pl.Expr]] = {}
    for source, column in sorted(columns):
        if source in sources and column in sources[source].collect_schema():
            plan = plans.setdefault(source, {})
            plan[f"n:{column}"] = pl.col(column).null_count()
    aliases: dict[int, str] = {}
    for index, use in enumerate(uses):
        if use.source in sources and use.source_column in sources[use.source].collect_schema():
            match = pl.col(use.source_column).cast(pl.String) == pl.lit(use.literal)
            aliases[index] = f"m:{use.source_column}\x00{use.literal}"
            plans.setdefault(use.source, {})[aliases[index]] = match.sum()
    names = [s for s in sources.by_name if s in plans]
    shared = _SHARED[-1] if _SHARED else None
    counted: dict[str, dict[str, int]] = {}
    queries: list[pl.LazyFrame] = []
    asked: list[str] = []
    for source in names:
        remote = sources.by_name[source].remote
        if remote is not None:  # as the engine counted it (literals: not checked, see uses)
            counted[source] = {"rows": remote.rows}
            counted[source].update({a: remote.nulls[a[2:]] for a in plans[source] if a[:2] == "n:"})
            continue
        frame = sources[source]
        known = {}
        if shared is not None:
            known = {
                alias: shared.counts[(id(frame), alias)]
                for alias in ["rows", *plans[source]]
                if (id(frame), alias) in shared.counts
            }
        counted[source] = known
        todo = {a: e for a, e in plans[source].items() if a not in known}
        if todo or "rows" not in known:
            queries.append(
                frame.select(pl.len().alias("rows"), *(e.alias(a) for a, e in todo.items()))
            )
            asked.append(source)
    for source, result in zip(asked, pl.collect_all(queries) if queries else [], strict=True):
        values = {key: int(value or 0) for key, value in result.row(0, named=True).items()}
        counted[source].update(values)
        if shared is not None:
            shared.frames.append(sources[source])
            shared.counts.update({(id(sources[source]), a): v for a, v in values.items()})
            shared.passes.append(source)
    rows = {source: counted[source]["rows"] for source in names}
    nulls = {
        (source, alias[2:]): value
        for source in names
        for alias, value in counted[source].items()
        if alias.startswith("n:") and alias in plans[source]
    }
    matches = {index: counted[uses[index].source][alias] for index, alias in aliases.items()}
    return rows, nulls, matches


def _empty(
    sources: Sources,
    pair: tuple[str, str],
    rows: Mapping[str, int],
    nulls: Mapping[tuple[str, str], int],
) -> bool:
    """A column with no value in a source that has rows (absent: filled with nulls)."""
    source, column = pair
    if source not in sources:
        return False
    if column not in sources[source].collect_schema():
        return True
    return bool(rows.get(source)) and nulls.get(pair) == rows[source]


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
    rows, nulls, matched = _scan(sources, columns, uses)
    empty = {pair for pair in columns if _empty(sources, pair, rows, nulls)}
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


def require_columns(
    spec: Spec, sources: Sources, table: TableSpec, names: Iterable[str], what: str
) -> None:
    """Raise a UsageError when a column `names` read (a baseline's condition, a --by cohort)
    holds no value in its source: every unit would land in no arm, or in one null cohort."""
    origins = column_origins(spec, table, names)
    rows, nulls, _ = _scan(sources, origins, [])
    empty = sorted(pair for pair in origins if _empty(sources, pair, rows, nulls))
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


# ----------------------------------------------------------------------------------------------
# `kpictl check`: the whole picture, per source
# ----------------------------------------------------------------------------------------------


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
            names |= set(_names(sql))
    for kpi in spec.kpis.values():
        names |= {n for _, sql in kpi_expressions(kpi) for n in _names(sql)}
        names |= {c for c in (kpi.breakdown, kpi.cluster) if c}
        if kpi.pass_k is not None:
            names.add(kpi.pass_k.task)
    for baseline in spec.baselines.values():
        for sql in (baseline.control, baseline.treatment):
            names |= set(_names(sql))
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
