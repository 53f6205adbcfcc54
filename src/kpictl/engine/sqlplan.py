"""The spec compiled to SQL statements, one plan for every SQL engine (docs/architecture.md,
"Engines"): the statements of a run are built here once and printed in the engine's dialect by
kpictl's own rules (`kpictl.sql.dialect`). `engine/duck.py` runs them on DuckDB,
`engine/spark.py` on Spark.

What the plan covers so far: rollup tables (one CTE per rollup pass, later passes joined to the
entries they read; keys without rows in a later source get the entry's value over zero rows),
derive entries as chained CTEs (LEAD/LAG/MAX … OVER windows with a total order), FILTER,
TOTAL, FIRST/LAST ordered by (ts, then the row's position in the source), MEDIAN/QUANTILE_CONT
(exact), and KPIs of kind value and ratio over a rollup table, overall and per `--by` column
(GROUPING SETS), with `--where`, `--since/--until` and `mature`. Anything else is refused with
its spec line (`NotCovered`): never a different number.

The engine registers, before it runs a statement, `source_<name>` (the rows of a source as
kpictl reads them, with `ROW_POSITION` their position in it) for the facts and
`facts_<table>` for the KPI queries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from kpictl.engine.compute import entry_levels
from kpictl.engine.interface import ComputeOptions, Window
from kpictl.errors import UsageError
from kpictl.io.read import Sources
from kpictl.spec.model import KpiSpec, Spec, TableSpec
from kpictl.sql.dialect import Dialect, SqlBuilder, Uncovered
from kpictl.sql.dialect import quote as _q

ROW_POSITION = "__kpictl_row"
"""The column holding a source row's position in its source as kpictl reads it (files in
sorted path order, rows in file order): the tie-break after ts for FIRST/LAST and windows."""
VARIES = "__kpictl_varies_"
"""The prefix of the facts' columns saying an attribute varies within a key."""


class NotCovered(UsageError):
    """A construct of the spec an SQL engine does not compile yet (exit 2)."""


def _where(spec: Spec, line: int | None) -> str:
    return f"{spec.path.name} line {line}" if line else spec.path.name


def _refuse(spec: Spec, line: int | None, what: str, construct: str) -> NotCovered:
    return NotCovered(f"{_where(spec, line)}: {what} uses {construct}")


class Rewriter:
    """Spec expressions as holes of a `SqlBuilder` in one dialect, refused with their spec
    line; params, as_of, window_start and window_end as literals."""

    def __init__(self, spec: Spec, window: Window, dialect: Dialect) -> None:
        self.values: dict[str, object] = {
            **dict(spec.params),
            "as_of": window.as_of,
            "window_start": window.since,
            "window_end": window.until or window.as_of,
        }
        self.spec = spec
        self.window = window
        self.dialect: Dialect = dialect
        self.builder = SqlBuilder(dialect)

    def rewrite(
        self,
        sql: str,
        *,
        line: int | None,
        what: str,
        mature: str | None = None,
        rows_ordered: bool = False,
        window_key: str | None = None,
    ) -> str:
        """A hole for `sql` translated (FIRST/LAST by (ts, row position) when `rows_ordered`)."""
        order = ("ts", ROW_POSITION) if rows_ordered else None
        try:
            return self.builder.expression(
                sql, self.values, mature=mature, order=order, window_key=window_key
            )
        except Uncovered as exc:
            raise _refuse(self.spec, line, what, exc.construct) from None

    def literal(self, value: object) -> str:
        return self.builder.literal(value)

    def render(self, text: str) -> str:
        return self.builder.render(text)


# ----------------------------------------------------------------------------------------------
# Facts: rollup passes and derive entries as CTEs
# ----------------------------------------------------------------------------------------------


def rollup_sql(spec: Spec, table: TableSpec, window: Window, rewriter: Rewriter) -> str:
    """The facts of one rollup table as one SQL statement of CTEs."""
    key = _q(table.key or "")
    entries = {e.name: e for e in table.rollup}
    sources = table.rollup_sources()
    ctes: list[str] = []
    as_of = rewriter.literal(window.as_of)
    for source in sources:
        ctes.append(
            f"{_q('rows_' + source)} AS (SELECT * FROM {_q('source_' + source)} "
            f"WHERE ts IS NULL OR ts <= {as_of})"
        )
    first = sources[0]
    attrs = list(table.attributes)
    attr_sql = "".join(f", MIN({_q(a)}) AS {_q(a)}" for a in attrs)
    # an attribute is constant per key, nulls aside (MIN/MAX skip nulls)
    check = "".join(
        f", MIN({_q(a)}) IS DISTINCT FROM MAX({_q(a)}) AS {_q(VARIES + a)}" for a in attrs
    )
    ctes.append(
        f"keys AS (SELECT {key}{attr_sql}{check} FROM {_q('rows_' + first)} GROUP BY {key})"
    )
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
                    f"(SELECT r.*, {cols} FROM {_q('rows_' + source)} AS r "
                    f"JOIN {current} AS k USING ({key})) AS scoped"
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
                f"facts_{step} AS (SELECT c.*, {filled} FROM {current} AS c "
                f"LEFT JOIN pass_{step} AS p USING ({key}))"
            )
            current = f"facts_{step}"
    columns = ", ".join(
        [key, *(_q(n) for n in entries), *(_q(a) for a in attrs), *(_q(VARIES + a) for a in attrs)]
    )
    ctes.append(f"rolled AS (SELECT {columns} FROM {current})")
    current = "rolled"
    for i, derive in enumerate(table.derive, start=1):
        sql = rewriter.rewrite(
            derive.sql,
            line=derive.line,
            what=f"derive entry {derive.name!r}",
            window_key=table.key or "",
        )
        ctes.append(f"derive_{i} AS (SELECT *, {sql} AS {_q(derive.name)} FROM {current})")
        current = f"derive_{i}"
    return rewriter.render("WITH " + ", ".join(ctes) + f" SELECT * FROM {current}")


# ----------------------------------------------------------------------------------------------
# KPIs: one query per KPI, GROUPING SETS over the cohorts
# ----------------------------------------------------------------------------------------------


def uncovered(
    spec: Spec, kpis: Sequence[KpiSpec], options: ComputeOptions, dialect: Dialect = "duckdb"
) -> list[str]:
    """Each KPI of `kpis` the SQL engines do not compile yet: its spec line and the construct
    ("kpi_definitions.yaml line 199: KPI 'escalation_rate' uses breakdown")."""
    problems = []
    rewriter = Rewriter(spec, Window(as_of=dt.datetime(1970, 1, 1, tzinfo=dt.UTC)), dialect)
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


def require_covered(
    spec: Spec, kpis: Sequence[KpiSpec], options: ComputeOptions, dialect: Dialect = "duckdb"
) -> None:
    """Refuse a run the SQL engine of `dialect` cannot give the same numbers for
    (NotCovered, exit 2)."""
    if options.grain:
        raise NotCovered(
            f"--engine {dialect}: --grain is not covered yet; run it with --engine polars"
        )
    if options.cross:
        raise NotCovered(
            f"--engine {dialect}: a cross-tab (--by a,b or --cross) is not covered yet; run it "
            "with --engine polars"
        )
    problems = uncovered(spec, kpis, options, dialect)
    if problems:
        raise _refusal(problems, dialect)


def _refusal(problems: Sequence[str], dialect: Dialect) -> NotCovered:
    return NotCovered(
        f"--engine {dialect} does not cover these yet (run them with --engine polars, "
        "the default, or leave them out with --kpi):\n" + "\n".join(f"  {p}" for p in problems)
    )


def kpi_sql(
    spec: Spec, kpi: KpiSpec, window: Window, options: ComputeOptions, rewriter: Rewriter
) -> str:
    """One KPI's aggregates per grouping set (overall, each --by column) over its facts:
    columns kpi, the --by columns (as text), __g_<column> (GROUPING), n, pending, value."""
    table = spec.tables[kpi.over]
    what = f"KPI {kpi.name!r}"
    line = kpi.line
    conds = []
    if table.time and window.since is not None:
        conds.append(f"{_q(table.time)} >= {rewriter.literal(window.since)}")
    if table.time and window.until is not None:
        conds.append(f"{_q(table.time)} < {rewriter.literal(window.until)}")
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
    scope = f"(SELECT *, {mature} AS __mature FROM {_q('facts_' + table.name)}{where}) AS scope"

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
    return rewriter.render(
        f"SELECT {rewriter.literal(kpi.name)} AS kpi{dim_cols}{grouping}, "
        f"{n} AS n, COUNT(*) FILTER (WHERE NOT __mature) AS pending, {value} AS value "
        f"FROM {scope} GROUP BY GROUPING SETS ({sets})"
    )


def facts_sql(spec: Spec, name: str, window: Window, rewriter: Rewriter) -> str:
    """The statement building the facts of rollup table `name` (NotCovered for a row table)."""
    table = spec.tables[name]
    if not table.is_rollup:
        raise _refusal(
            [
                _where(spec, table.line) + f": table {name!r} is a row table (from: "
                f"{table.from_source})"
            ],
            rewriter.dialect,
        )
    try:
        return rollup_sql(spec, table, window, rewriter)
    except NotCovered as exc:
        raise _refusal([str(exc)], rewriter.dialect) from None


def compile_spec(
    spec: Spec,
    window: Window,
    options: ComputeOptions,
    kpis: Sequence[KpiSpec],
    dialect: Dialect = "duckdb",
) -> tuple[dict[str, str], dict[str, str]]:
    """The SQL of a run in `dialect`: per rollup table its facts, per KPI its aggregates.
    Raises NotCovered naming every construct not covered."""
    rewriter = Rewriter(spec, window, dialect)
    require_covered(spec, kpis, options, dialect)
    tables = sorted({k.over for k in kpis})
    facts = {t: facts_sql(spec, t, window, rewriter) for t in tables}
    return facts, {k.name: kpi_sql(spec, k, window, options, rewriter) for k in kpis}


def compile_text(
    spec: Spec,
    sources: Sources,
    window: Window,
    options: ComputeOptions,
    kpis: Sequence[KpiSpec],
    dialect: Dialect = "duckdb",
) -> str:
    """What `kpictl compile --engine <dialect>` prints: the SQL a run executes, one statement
    per rollup table's facts and per KPI, each headed by a comment saying what it is."""
    facts, queries = compile_spec(spec, window, options, kpis, dialect)
    sourced = sorted({s for t in facts for s in spec.tables[t].rollup_sources()})
    lines = [
        f"-- kpictl compile --engine {dialect}",
        f"-- as_of {window.as_of.isoformat()}; params and as_of are literals below",
    ]
    for source in sourced:
        files = [f.path for f in sources.by_name[source].files] if source in sources else []
        lines.append(
            f"-- source_{source}: the rows of source {source!r} as kpictl reads them "
            f"({', '.join(files) or 'no files'}), with {ROW_POSITION} their position"
        )
    for table, sql in facts.items():
        lines += ["", f"-- facts_{table}: one row per {spec.tables[table].key}", f"{sql};"]
    for name, sql in queries.items():
        lines += ["", f"-- KPI {name}", f"{sql};"]
    return "\n".join(lines) + "\n"
