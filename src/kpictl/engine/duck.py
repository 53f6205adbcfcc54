"""The DuckDB engine (`--engine duckdb`, the `kpictl[duckdb]` extra): the spec compiled to
DuckDB SQL text by kpictl's own rewrite rules on the sqlglot tree, run on an embedded DuckDB.

What it covers so far (docs/architecture.md, "Engines"): rollup tables (one CTE per rollup
pass, later passes joined to the entries they read; keys without rows in a later source get
the entry's value over zero rows), derive entries as chained CTEs (LEAD/LAG/MAX … OVER
windows with a total order), FILTER, TOTAL, FIRST/LAST ordered by (ts, then the row's position
in the source), MEDIAN/QUANTILE_CONT (exact), and KPIs of kind value and ratio over a rollup
table, overall and per `--by` column (GROUPING SETS), with `--where`, `--since/--until` and
`mature`. Anything else is refused with its spec line (`NotCovered`): never a different
number. The source rows are the rows kpictl's readers load (the same files, mappings and
types the polars engine reads), handed to DuckDB as Arrow.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from kpictl.engine.compute import entry_levels, finish_table, source_rows
from kpictl.engine.interface import (
    ComputeOptions,
    FactBuild,
    FactSet,
    Window,
    record_fact_build,
)
from kpictl.errors import InputDataError, UsageError
from kpictl.io.read import Sources
from kpictl.spec.model import KpiSpec, Spec, TableSpec
from kpictl.sql.dialect import Uncovered, literal, to_duckdb, with_total_order

_ROW_POSITION = "__kpictl_row"
_VARIES = "__kpictl_varies_"


class NotCovered(UsageError):
    """A construct of the spec the DuckDB engine does not compile yet (exit 2)."""


def _where(spec: Spec, line: int | None) -> str:
    return f"{spec.path.name} line {line}" if line else spec.path.name


def _refuse(spec: Spec, line: int | None, what: str, construct: str) -> NotCovered:
    return NotCovered(f"{_where(spec, line)}: {what} uses {construct}")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Rewriter:
    """A spec expression as DuckDB SQL (kpictl.sql.dialect), refused with its spec line."""

    def __init__(self, spec: Spec, window: Window) -> None:
        self.values: dict[str, object] = {
            **dict(spec.params),
            "as_of": window.as_of,
            "window_start": window.since,
            "window_end": window.until or window.as_of,
        }
        self.spec = spec
        self.window = window

    def rewrite(
        self,
        sql: str,
        *,
        line: int | None,
        what: str,
        mature: str | None = None,
        rows_ordered: bool = False,
    ) -> str:
        # FIRST/LAST: the total order (ts, then the row's position in its source)
        order = f"struct_pack(t := ts, r := {_ROW_POSITION})" if rows_ordered else None
        try:
            return to_duckdb(sql, self.values, mature=mature, order=order)
        except Uncovered as exc:
            raise _refuse(self.spec, line, what, exc.construct) from None


# ----------------------------------------------------------------------------------------------
# Facts: rollup passes and derive entries as CTEs
# ----------------------------------------------------------------------------------------------


def _rollup_sql(spec: Spec, table: TableSpec, window: Window, rewriter: _Rewriter) -> str:
    """The facts of one rollup table as one SQL statement of CTEs."""
    key = _q(table.key or "")
    entries = {e.name: e for e in table.rollup}
    sources = table.rollup_sources()
    ctes: list[str] = []
    for source in sources:
        ctes.append(
            f"{_q('rows_' + source)} AS (SELECT * FROM {_q('source_' + source)} "
            f"WHERE ts IS NULL OR ts <= {literal(window.as_of)})"
        )
    first = sources[0]
    attrs = list(table.attributes)
    attr_sql = "".join(f", MIN({_q(a)}) AS {_q(a)}" for a in attrs)
    # an attribute is constant per key, nulls aside (MIN/MAX skip nulls)
    check = "".join(
        f", MIN({_q(a)}) IS DISTINCT FROM MAX({_q(a)}) AS {_q(_VARIES + a)}" for a in attrs
    )
    ctes.append(
        f"keys AS (SELECT {key}{attr_sql}{check} FROM {_q('rows_' + first)} GROUP BY {key})"
    )
    done: list[str] = []  # entries computed so far, in the CTE "facts_<n>"
    current = "keys"
    step = 0
    for source in sources:
        for pass_names in entry_levels(table, source):
            step += 1
            needed = sorted({d for n in pass_names for d in entries[n].depends_on})
            scope = _q("rows_" + source)
            if needed:
                cols = ", ".join(f"k.{_q(d)}" for d in needed)
                scope = (
                    f"(SELECT r.*, {cols} FROM {_q('rows_' + source)} r "
                    f"JOIN {current} k USING ({key}))"
                )
            aggs = []
            for name in pass_names:
                entry = entries[name]
                sql = rewriter.rewrite(
                    entry.sql,
                    line=entry.line,
                    what=f"rollup entry {name!r} of table {table.name!r}",
                    rows_ordered=True,
                )
                aggs.append((name, sql))
            ctes.append(
                f"pass_{step} AS (SELECT {key}, "
                + ", ".join(f"{sql} AS {_q(n)}" for n, sql in aggs)
                + f" FROM {scope} GROUP BY {key})"
            )
            # a key without rows here: the entry's value over zero rows
            filled = ", ".join(
                f"COALESCE(p.{_q(n)}, (SELECT {sql} FROM {scope} WHERE FALSE)) AS {_q(n)}"
                for n, sql in aggs
            )
            ctes.append(
                f"facts_{step} AS (SELECT c.*, {filled} FROM {current} c "
                f"LEFT JOIN pass_{step} p USING ({key}))"
            )
            current = f"facts_{step}"
            done += pass_names
    columns = ", ".join(
        [key, *(_q(n) for n in entries), *(_q(a) for a in attrs), *(_q(_VARIES + a) for a in attrs)]
    )
    ctes.append(f"rolled AS (SELECT {columns} FROM {current})")
    current = "rolled"
    for i, derive in enumerate(table.derive, start=1):
        sql = rewriter.rewrite(derive.sql, line=derive.line, what=f"derive entry {derive.name!r}")
        sql = with_total_order(sql, key)
        ctes.append(f"derive_{i} AS (SELECT *, {sql} AS {_q(derive.name)} FROM {current})")
        current = f"derive_{i}"
    return "WITH " + ",\n  ".join(ctes) + f"\nSELECT * FROM {current}"


# ----------------------------------------------------------------------------------------------
# KPIs: one query per KPI, GROUPING SETS over the cohorts
# ----------------------------------------------------------------------------------------------


def uncovered(spec: Spec, kpis: Sequence[KpiSpec], options: ComputeOptions) -> list[str]:
    """Each KPI of `kpis` the DuckDB engine does not compile yet: its spec line and the
    construct ("kpi_definitions.yaml line 199: KPI 'escalation_rate' uses breakdown")."""
    problems = []
    rewriter = _Rewriter(spec, Window(as_of=dt.datetime(1970, 1, 1, tzinfo=dt.UTC)))
    for kpi in kpis:
        table = spec.tables.get(kpi.over)
        construct, line = None, kpi.line
        if kpi.kind == "formula":
            construct = "a formula"
        elif kpi.pass_k is not None:
            construct = "pass^k / pass@k"
        elif table is not None and not table.is_rollup:
            construct = f"the row table {table.name!r} (from: {table.from_source})"
            line = kpi.lines.get("over") or kpi.line
        elif kpi.breakdown:
            construct, line = "breakdown", kpi.lines.get("breakdown") or kpi.line
        if construct is not None:
            problems.append(_where(spec, line) + f": KPI {kpi.name!r} uses {construct}")
            continue
        try:
            kpi_sql(spec, kpi, rewriter.window, options, rewriter)
        except NotCovered as exc:
            problems.append(str(exc))
    return problems


def require_covered(spec: Spec, kpis: Sequence[KpiSpec], options: ComputeOptions) -> None:
    """Refuse a run the DuckDB engine cannot give the same numbers for (NotCovered, exit 2)."""
    if options.grain:
        raise NotCovered("--engine duckdb: --grain is not covered yet; run it with --engine polars")
    if options.cross:
        raise NotCovered(
            "--engine duckdb: a cross-tab (--by a,b or --cross) is not covered yet; run it "
            "with --engine polars"
        )
    problems = uncovered(spec, kpis, options)
    if problems:
        raise _refusal(problems)


def _refusal(problems: Sequence[str]) -> NotCovered:
    return NotCovered(
        "--engine duckdb does not cover these yet (run them with --engine polars, "
        "the default, or leave them out with --kpi):\n" + "\n".join(f"  {p}" for p in problems)
    )


def kpi_sql(
    spec: Spec, kpi: KpiSpec, window: Window, options: ComputeOptions, rewriter: _Rewriter
) -> str:
    """One KPI's aggregates per grouping set (overall, each --by column) over its facts."""
    table = spec.tables[kpi.over]
    what = f"KPI {kpi.name!r}"
    line = kpi.line
    conds = []
    if table.time and window.since is not None:
        conds.append(f"{_q(table.time)} >= {literal(window.since)}")
    if table.time and window.until is not None:
        conds.append(f"{_q(table.time)} < {literal(window.until)}")
    if options.where:
        conds.append(f"({rewriter.rewrite(options.where, line=None, what='--where')})")
    if kpi.where:
        conds.append(f"({rewriter.rewrite(kpi.where, line=line, what=what)})")
    mature = (
        f"COALESCE(({rewriter.rewrite(kpi.mature, line=line, what=what)}), FALSE)"
        if kpi.mature
        else "TRUE"
    )
    where = " WHERE " + " AND ".join(conds) if conds else ""
    dims = list(options.by)
    dim_cols = "".join(f", CAST({_q(d)} AS VARCHAR) AS {_q(d)}" for d in dims)
    scope = f"(SELECT *, {mature} AS __mature FROM {_q('facts_' + table.name)}{where})"

    def agg(sql: str | None) -> str:
        return rewriter.rewrite(sql or "", line=line, what=what, mature="__mature")

    n = "COUNT(*) FILTER (WHERE __mature)"
    if kpi.kind == "value":  # n = 0: a null value, as the polars engine gives
        value = f"CASE WHEN {n} > 0 THEN CAST({agg(kpi.value)} AS DOUBLE) END"
    else:
        num, den = agg(kpi.numerator), agg(kpi.denominator)
        value = f"CASE WHEN ({den}) <> 0 THEN CAST({num} AS DOUBLE) / ({den}) END"
    sets = ", ".join(["()", *(f"({_q(d)})" for d in dims)])
    grouping = "".join(f", GROUPING({_q(d)}) AS {_q('__g_' + d)}" for d in dims)
    return (
        f"SELECT {literal(kpi.name)} AS kpi{dim_cols}{grouping}, "
        f"{n} AS n, COUNT(*) FILTER (WHERE NOT __mature) AS pending, {value} AS value\n"
        f"FROM {scope}\nGROUP BY GROUPING SETS ({sets})"
    )


def compile_spec(
    spec: Spec, window: Window, options: ComputeOptions, kpis: Sequence[KpiSpec]
) -> tuple[dict[str, str], dict[str, str]]:
    """The DuckDB SQL of a run: per rollup table its facts, per KPI its aggregates.
    Raises NotCovered naming every construct not covered."""
    rewriter = _Rewriter(spec, window)
    require_covered(spec, kpis, options)
    tables = sorted({k.over for k in kpis})
    facts = {t: _facts_sql(spec, t, window, rewriter) for t in tables}
    return facts, {k.name: kpi_sql(spec, k, window, options, rewriter) for k in kpis}


def _facts_sql(spec: Spec, name: str, window: Window, rewriter: _Rewriter) -> str:
    table = spec.tables[name]
    if not table.is_rollup:
        raise _refusal(
            [
                _where(spec, table.line) + f": table {name!r} is a row table (from: "
                f"{table.from_source})"
            ]
        )
    try:
        return _rollup_sql(spec, table, window, rewriter)
    except NotCovered as exc:
        raise _refusal([str(exc)]) from None


def compile_text(
    spec: Spec, sources: Sources, window: Window, options: ComputeOptions, kpis: Sequence[KpiSpec]
) -> str:
    """What `kpictl compile --engine duckdb` prints: the SQL a run executes, one statement
    per rollup table's facts and per KPI, each headed by a comment saying what it is."""
    facts, queries = compile_spec(spec, window, options, kpis)
    sourced = sorted({s for t in facts for s in spec.tables[t].rollup_sources()})
    lines = [
        "-- kpictl compile --engine duckdb",
        f"-- as_of {window.as_of.isoformat()}; params and as_of are literals below",
    ]
    for source in sourced:
        files = [f.path for f in sources.by_name[source].files] if source in sources else []
        lines.append(
            f"-- source_{source}: the rows of source {source!r} as kpictl reads them "
            f"({', '.join(files) or 'no files'}), with {_ROW_POSITION} their position"
        )
    for table, sql in facts.items():
        lines += ["", f"-- facts_{table}: one row per {spec.tables[table].key}", f"{sql};"]
    for name, sql in queries.items():
        lines += ["", f"-- KPI {name}", f"{sql};"]
    return "\n".join(lines) + "\n"


class _Session:
    """An embedded DuckDB connection and a scratch folder: frames cross as Parquet files
    (no Arrow dependency), results come back the same way."""

    def __init__(self) -> None:
        self.con = _connect()
        self.folder = tempfile.TemporaryDirectory(prefix="kpictl-duckdb-")
        self.count = 0

    def _path(self) -> str:
        self.count += 1
        return str(Path(self.folder.name) / f"{self.count}.parquet")

    def register(self, name: str, frame: pl.LazyFrame) -> None:
        path = self._path()
        frame.collect().write_parquet(path)
        self.con.execute(f"CREATE VIEW {_q(name)} AS SELECT * FROM read_parquet('{path}')")

    def query(self, sql: str) -> pl.DataFrame:
        path = self._path()
        self.con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
        return pl.read_parquet(path)

    def close(self) -> None:
        self.con.close()
        self.folder.cleanup()


def _connect() -> Any:
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
        raise UsageError(
            "--engine duckdb needs the duckdb package: pip install 'kpictl[duckdb]'"
        ) from exc
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


class DuckDBEngine:
    """The DuckDB engine (kpictl.engine.interface.Engine): rollup facts built by DuckDB SQL,
    KPI aggregates by DuckDB SQL over them."""

    name = "duckdb"

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
        """The facts of `tables`, each rollup table computed by its compiled SQL."""
        names = list(tables or spec.tables)
        rewriter = _Rewriter(spec, window)
        session = _Session()
        built: dict[str, pl.LazyFrame] = {}
        for name in names:
            table = spec.tables[name]
            sql = _facts_sql(spec, name, window, rewriter)
            for source in table.rollup_sources():
                rows = source_rows(sources, source, window).with_row_index(_ROW_POSITION)
                session.register(f"source_{source}", rows)
            frame = session.query(sql)
            key = table.key or ""
            for attr in table.attributes:
                varying = frame.filter(pl.col(_VARIES + attr))
                if varying.height:  # the polars engine's message (engine.compute)
                    example = varying.get_column(key).sort().to_list()[0]
                    raise InputDataError(
                        f"tables.{name}.attributes: {attr!r} varies within a "
                        f"{key} ({varying.height} keys; e.g. {example!r}); an attribute must be "
                        "constant per key — aggregate it in `rollup` instead"
                    )
            built[name] = frame.drop([_VARIES + a for a in table.attributes]).lazy()
        session.close()
        record_fact_build(FactBuild(self.name, tuple(sorted(built)), window.as_of))
        return FactSet(
            sources=sources,
            window=window,
            tables=built,
            reads={n: None for n in built},
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
        """The KPI table: each KPI's compiled aggregates run on DuckDB over `tables`."""
        rewriter = _Rewriter(spec, window)
        require_covered(spec, kpis, options)
        # a cost KPI over partly unpriced data: polars makes a cohort without a known cost
        # null ("cost unknown") from per-row cost counts; that rule is not in SQL yet
        partly = [
            k.name
            for k in kpis
            if any(c.startswith("__cost_rows:") for c in tables[k.over].collect_schema().names())
        ]
        if partly:
            raise NotCovered(
                "--engine duckdb: the cost of part of the data is unknown, and a cohort "
                "without a known cost is computed by --engine polars only (it is null there, "
                f"'cost unknown'); run {', '.join(partly)} with --engine polars"
            )
        session = _Session()
        for name in {k.over for k in kpis}:
            session.register(f"facts_{name}", tables[name])
        dims = list(options.by)
        frames = []
        for kpi in kpis:
            got = session.query(kpi_sql(spec, kpi, window, options, rewriter))
            grouping = [
                [d for d in dims if row[f"__g_{d}"] == 0] for row in got.iter_rows(named=True)
            ]
            got = got.with_columns(
                pl.Series("grouping", grouping, dtype=pl.List(pl.String)),
                pl.lit(None, dtype=pl.String).alias("breakdown"),
                pl.lit(None, dtype=pl.String).alias("breakdown_value"),
                pl.lit(None, dtype=pl.String).alias("reason"),
            )
            frames.append(
                got.select(
                    "kpi",
                    "grouping",
                    *dims,
                    "breakdown",
                    "breakdown_value",
                    "value",
                    "reason",
                    "n",
                    "pending",
                ).cast({"n": pl.Int64, "pending": pl.Int64, "value": pl.Float64})
            )
        session.close()
        computed = pl.concat(frames) if frames else pl.DataFrame()
        computed = computed.with_columns(pl.col("value").fill_nan(None))
        sets = [(), *((d,) for d in dims)]
        table = finish_table(
            spec, computed.filter(pl.col("kpi").is_in(output)), output, sets, dims, False
        )
        return table, []
