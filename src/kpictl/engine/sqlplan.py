"""The spec compiled to SQL statements, one plan for every SQL engine (docs/architecture.md,
"Engines"): the statements of a run are built here once and printed in the engine's dialect by
kpictl's own rules (`kpictl.sql.dialect`). `engine/duck.py` runs them on DuckDB,
`engine/spark.py` on Spark.

What the plan covers: rollup tables (one CTE per rollup pass, later passes joined to the
entries they read; keys without rows in a later source get the entry's value over zero rows),
derive entries as chained CTEs (LEAD/LAG/MAX … OVER windows with a total order), row tables
with their `where` and `lookup`, FILTER, TOTAL, FIRST/LAST ordered by (ts, then the row's
position in the source), MEDIAN/QUANTILE_CONT (exact); KPIs of every kind (value, ratio,
breakdown, pass^k / pass@k; formulas from their inputs' rows) per grouping set (overall,
`--by`, cross-tabs, `--grain` buckets: GROUPING SETS), with `--where`, `--since/--until`,
`mature` and the cost-unknown rule. Anything else is refused with its spec line
(`NotCovered`): never a different number. The rows a statement returns become the KPI table
by the polars engine's own code (`kpi_rows`, then `engine.finish.finish_kpis`).

The engine registers, before it runs a statement, `source_<name>` (the rows of a source as
kpictl reads them, with `ROW_POSITION` their position in it) for the facts, and
`facts_<table>` for the row tables that look a table up and for the KPI queries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager

import polars as pl

from kpictl.engine.costcoverage import kpi_cost_sources
from kpictl.engine.datacheck import check_data
from kpictl.engine.facts import cost_columns, entry_levels, with_cost_counts
from kpictl.engine.finish import finish_kpis
from kpictl.engine.interface import ComputeOptions, Window
from kpictl.engine.kpis import cost_unknown, grouping_sets, ratio_or_null, usable_sets
from kpictl.engine.selection import with_cohort_columns
from kpictl.engine.shapes import KpiShape
from kpictl.engine.sqlsource import ROW_POSITION, DirectRead, quote, read_comment, source_read
from kpictl.engine.window import BUCKET, names_in, source_rows
from kpictl.errors import UsageError
from kpictl.io.read import Sources
from kpictl.spec.model import KpiSpec, Spec, TableSpec
from kpictl.sql.dialect import APPROX_FUNCTIONS, Dialect, SqlBuilder, Uncovered
from kpictl.sql.dialect import quote as _q
from kpictl.sql.tree import uses_quantile

VARIES = "__kpictl_varies_"
"""The prefix of the facts' columns saying an attribute varies within a key."""


_WATCHERS: list[list[str]] = []


@contextmanager
def watch_statements() -> Iterator[list[str]]:
    """Every facts and KPI statement an SQL engine runs while open, in order, as the engine
    runs it (the tests check that `kpictl compile` prints them)."""
    seen: list[str] = []
    _WATCHERS.append(seen)
    try:
        yield seen
    finally:
        _WATCHERS.remove(seen)


def record_statement(sql: str) -> str:
    """`sql`, recorded by every open `watch_statements` (an engine calls it as it runs one)."""
    for seen in _WATCHERS:
        seen.append(sql)
    return sql


class NotCovered(UsageError):
    """A construct of the spec an SQL engine does not compile yet (exit 2)."""


def _where(spec: Spec, line: int | None) -> str:
    return f"{spec.path.name} line {line}" if line else spec.path.name


def _refuse(spec: Spec, line: int | None, what: str, construct: str) -> NotCovered:
    return NotCovered(f"{_where(spec, line)}: {what} uses {construct}")


class Rewriter:
    """Spec expressions as holes of a `SqlBuilder` in one dialect, refused with their spec
    line; params, as_of, window_start and window_end as literals. `approx_percentiles`: a
    KPI's aggregate takes MEDIAN / QUANTILE_CONT approximately (`kpi_sql`; facts stay exact)."""

    def __init__(
        self, spec: Spec, window: Window, dialect: Dialect, approx_percentiles: bool = False
    ) -> None:
        self.values: dict[str, object] = {
            **dict(spec.params),
            "as_of": window.as_of,
            "window_start": window.since,
            "window_end": window.until or window.as_of,
        }
        self.spec = spec
        self.window = window
        self.dialect: Dialect = dialect
        self.approx_percentiles = approx_percentiles
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
        approx: bool = False,
    ) -> str:
        """A hole for `sql` translated (FIRST/LAST by (ts, row position) when `rows_ordered`;
        percentiles approximate when `approx`)."""
        order = ("ts", ROW_POSITION) if rows_ordered else None
        try:
            return self.builder.expression(
                sql, self.values, mature=mature, order=order, window_key=window_key, approx=approx
            )
        except Uncovered as exc:
            raise _refuse(self.spec, line, what, exc.construct) from None

    def literal(self, value: object) -> str:
        return self.builder.literal(value)

    def render(self, text: str) -> str:
        return self.builder.render(text)


# ----------------------------------------------------------------------------------------------
# Facts: rollup passes and derive entries as CTEs; row tables with their lookup
# ----------------------------------------------------------------------------------------------


def rollup_sql(
    spec: Spec,
    table: TableSpec,
    window: Window,
    rewriter: Rewriter,
    columns: Mapping[str, Collection[str]] | None = None,
) -> str:
    """The facts of one rollup table as one SQL statement of CTEs. `columns`: per source, the
    columns its rows have (None: every attribute is there); an attribute the first source
    lacks is null, as the polars engine makes it."""
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
    present = None if columns is None else set(columns.get(first, ()))
    attrs = list(table.attributes)
    attr_sql, check = "", ""
    for a in attrs:
        if present is None or a in present:
            attr_sql += f", MIN({_q(a)}) AS {_q(a)}"
            # an attribute is constant per key, nulls aside (MIN/MAX skip nulls)
            check += f", MIN({_q(a)}) IS DISTINCT FROM MAX({_q(a)}) AS {_q(VARIES + a)}"
        else:
            attr_sql += f", CAST(NULL AS VARCHAR) AS {_q(a)}"
            check += f", FALSE AS {_q(VARIES + a)}"
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
    columns_sql = ", ".join(
        [key, *(_q(n) for n in entries), *(_q(a) for a in attrs), *(_q(VARIES + a) for a in attrs)]
    )
    ctes.append(f"rolled AS (SELECT {columns_sql} FROM {current})")
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


def row_table_sql(
    spec: Spec, table: TableSpec, window: Window, rewriter: Rewriter, columns: Collection[str]
) -> str:
    """A row table's facts as one statement, as `engine.facts.row_table` makes them: its
    source's rows up to as-of (and those without a time) that meet its `where`, the columns
    its lookup carries (the parent's attributes and time) taken from `facts_<parent>` by the
    parent's key (left join). `columns`: the source's columns."""
    assert table.from_source is not None
    own = [c for c in columns if c != ROW_POSITION]
    conds = []
    if "ts" in own:
        conds.append(f"(ts IS NULL OR ts <= {rewriter.literal(window.as_of)})")
    if table.where:
        where = rewriter.rewrite(table.where, line=table.line, what=f"table {table.name!r}")
        conds.append(f"({where})")
    rows = f"SELECT * FROM {_q('source_' + table.from_source)}"
    if conds:
        rows += " WHERE " + " AND ".join(conds)
    if not table.lookup:
        return rewriter.render(f"SELECT {', '.join(_q(c) for c in own)} FROM ({rows}) AS r")
    parent = spec.tables[table.lookup]
    key = parent.key or ""
    carried = [*parent.attributes, *([parent.time] if parent.time else [])]
    kept = [f"r.{_q(c)}" for c in own if c == key or c not in carried]
    looked = [f"p.{_q(c)}" for c in carried]
    return rewriter.render(
        f"SELECT {', '.join([*kept, *looked])} FROM ({rows}) AS r "
        f"LEFT JOIN {_q('facts_' + parent.name)} AS p ON r.{_q(key)} = p.{_q(key)}"
    )


def unit_stats_sql(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    unit: str,
    keys: Sequence[str],
    where: str | None,
    rewriter: Rewriter,
    view: str,
) -> tuple[str, str]:
    """(sums, pending): compare's per-unit sufficient statistics of an additive KPI (shape
    `ratio` or `avg`) over `view`, one arm's facts of the KPI's table (`Engine.unit_stats`,
    interface.UnitStats): the rows `where` and the KPI's `where` keep, flagged mature; per
    cohort of `keys` (as text) and unit the numerator m and denominator d (a mean: the sum and
    count of its values, and the sum of their squares); then per cohort n and the sums of m,
    m², d, d², m·d and the flags (over no unit: 0 and true, as polars' aggregates give)."""
    what = f"KPI {kpi.name!r}"

    def sql(text: str | None) -> str:
        return rewriter.rewrite(text or "", line=kpi.line, what=what)

    conds = [f"({sql(c)})" for c in (where, kpi.where) if c]
    filtered = " WHERE " + " AND ".join(conds) if conds else ""
    mature = f"COALESCE(({sql(kpi.mature)}), FALSE)" if kpi.mature else "TRUE"
    group = [_q("__k_" + k) for k in keys]
    cohort = "".join(f"CAST({_q(k)} AS VARCHAR) AS {g}, " for k, g in zip(keys, group, strict=True))
    rows = f"SELECT {cohort}{_q(unit)} AS __unit, *, {mature} AS __mature FROM {_q(view)}{filtered}"
    if shape.kind == "ratio":
        per_unit = (
            f"COALESCE(CAST(({sql(shape.numerator_sql)}) AS DOUBLE), 0) AS m, "
            f"COALESCE(CAST(({sql(shape.denominator_sql)}) AS DOUBLE), 0) AS d"
        )
        having = ""
    else:
        value = f"CAST(({sql(shape.values_sql)}) AS DOUBLE)"
        per_unit = (
            f"COALESCE(SUM({value}), 0) AS m, CAST(COUNT({value}) AS DOUBLE) AS d, "
            f"COALESCE(SUM({value} * {value}), 0) AS m2_rows"
        )
        having = f" HAVING COUNT({value}) > 0"
    keys_out = "".join(f"{g} AS {_q(k)}, " for g, k in zip(group, keys, strict=True))
    grouped = f" GROUP BY {', '.join(group)}" if keys else ""
    row_sq = ", COALESCE(SUM(m2_rows), 0) AS row_sq" if shape.kind == "avg" else ""
    sums = rewriter.render(
        f"WITH kept AS ({rows}), "
        f"units AS (SELECT {''.join(g + ', ' for g in group)}{per_unit} FROM kept "
        f"WHERE __mature GROUP BY {', '.join([*group, '__unit'])}{having}) "
        f"SELECT {keys_out}COUNT(*) AS n, COALESCE(SUM(m), 0) AS m_sum, "
        "COALESCE(SUM(m * m), 0) AS m_sq, COALESCE(SUM(d), 0) AS d_sum, "
        "COALESCE(SUM(d * d), 0) AS d_sq, COALESCE(SUM(m * d), 0) AS md_sum, "
        "COALESCE(BOOL_AND(d = 1), TRUE) AS unit_rows, "
        "COALESCE(BOOL_AND(m = 0 OR m = 1), TRUE) AS binary, "
        f"COALESCE(BOOL_AND(m <= d), TRUE) AS bounded{row_sq} FROM units{grouped}"
    )
    pending = rewriter.render(
        f"WITH kept AS ({rows}) "
        f"SELECT {keys_out}COUNT(*) AS pending FROM kept WHERE NOT __mature{grouped}"
    )
    return sums, pending


def facts_sql(
    spec: Spec,
    name: str,
    window: Window,
    rewriter: Rewriter,
    columns: Mapping[str, Collection[str]] | None = None,
) -> str:
    """The statement building the facts of table `name`: a rollup table from its sources'
    rows (`source_<name>`), a row table from its source's rows and its parent's facts
    (`facts_<parent>`, built first). `columns`: per source, its columns (a row table needs
    them)."""
    table = spec.tables[name]
    try:
        if table.is_rollup:
            return rollup_sql(spec, table, window, rewriter, columns)
        assert table.from_source is not None
        if columns is None or table.from_source not in columns:
            raise NotCovered(
                f"{_where(spec, table.line)}: table {name!r} needs its source's columns"
            )
        return row_table_sql(spec, table, window, rewriter, columns[table.from_source])
    except NotCovered as exc:
        raise _refusal([str(exc)], rewriter.dialect) from None


def fact_tables(spec: Spec, names: Collection[str]) -> list[str]:
    """The tables to build for `names`, with the tables they look up, parents first."""
    wanted = set(names)
    for name in list(wanted):
        lookup = spec.tables[name].lookup
        if lookup:
            wanted.add(lookup)
    rollups = [n for n, t in spec.tables.items() if n in wanted and t.is_rollup]
    return rollups + [n for n, t in spec.tables.items() if n in wanted and not t.is_rollup]


# ----------------------------------------------------------------------------------------------
# KPIs: one query per KPI, GROUPING SETS over cohorts, time buckets and breakdown values
# ----------------------------------------------------------------------------------------------


_BREAKDOWN = "__bd"


def _by(column: str) -> str:
    """The scope's column a grouping-set column is grouped by."""
    return "__by_" + column


def _flag(column: str) -> str:
    """The result's column holding GROUPING(column): 0 where the row groups by it."""
    return "__g_" + column


def time_column(spec: Spec, table: TableSpec) -> str | None:
    """The time a KPI's window and buckets read: a rollup table's own, a row table's parent's
    (looked up), as the polars engine reads it."""
    if table.is_rollup:
        return table.time
    return spec.tables[table.lookup].time if table.lookup else None


def uncovered(
    spec: Spec, kpis: Sequence[KpiSpec], options: ComputeOptions, dialect: Dialect = "duckdb"
) -> list[str]:
    """Each KPI of `kpis` the SQL engines do not compile yet: its spec line and the construct
    ("kpi_definitions.yaml line 199: KPI 'x' uses pass^k / pass@k")."""
    problems = []
    rewriter = Rewriter(spec, Window(as_of=dt.datetime(1970, 1, 1, tzinfo=dt.UTC)), dialect)
    for kpi in kpis:
        if kpi.kind == "formula":
            continue  # computed from its inputs' rows, as the polars engine does
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
    problems = uncovered(spec, kpis, options, dialect)
    if problems:
        raise _refusal(problems, dialect)


def _refusal(problems: Sequence[str], dialect: Dialect) -> NotCovered:
    return NotCovered(
        f"--engine {dialect} does not cover these yet (run them with --engine polars, "
        "the default, or leave them out with --kpi):\n" + "\n".join(f"  {p}" for p in problems)
    )


def kpi_sql(
    spec: Spec,
    kpi: KpiSpec,
    window: Window,
    options: ComputeOptions,
    rewriter: Rewriter,
    columns: Collection[str] | None = None,
    costed: Sequence[str] = (),
) -> str:
    """One KPI's aggregates per grouping set over its facts (`facts_<table>`): the cohort
    sets, with a grain the bucket sets (`grouping_sets`), and with a breakdown each of those
    with the breakdown value too. Columns: kpi, each grouping column (cohorts as text, bucket),
    __bd (the breakdown value as text), __g_<column> (GROUPING), n, pending, then value (a
    value KPI) or __num and __den (a ratio), and each cost count summed over settled units.
    `columns`: the facts' columns (None: the spec's); `costed`: the sources whose cost counts
    they carry (`costed_sources`). `kpi_rows` makes the KPI table's rows of the result."""
    table = spec.tables[kpi.over]
    what = f"KPI {kpi.name!r}"
    line = kpi.line
    present = list(columns) if columns is not None else list(spec.table_schema(kpi.over))
    readable = set(present) | set(spec.param_schema())
    time = time_column(spec, table)
    conds = []
    if time and window.since is not None:
        conds.append(f"{_q(time)} >= {rewriter.literal(window.since)}")
    if time and window.until is not None:
        conds.append(f"{_q(time)} < {rewriter.literal(window.until)}")
    # --where filters a table that has every column it names (README, "--where")
    if options.where and set(names_in([options.where])) <= readable:
        conds.append(f"({rewriter.rewrite(options.where, line=None, what='--where')})")
    if kpi.where:
        conds.append(f"({rewriter.rewrite(kpi.where, line=line, what=what)})")
    mature = (
        f"COALESCE(({rewriter.rewrite(kpi.mature, line=line, what=what)}), FALSE)"
        if kpi.mature
        else "TRUE"
    )
    where = " WHERE " + " AND ".join(conds) if conds else ""
    sets, _ = usable_sets(kpi, present, grouping_sets(options.by, options.grain, options.cross))
    keyed = list(dict.fromkeys(c for s in sets for c in s))
    scoped = [f"{mature} AS __mature"]
    for column in keyed:
        if column != BUCKET:
            scoped.append(f"CAST({_q(column)} AS VARCHAR) AS {_q(_by(column))}")
        elif time is None or options.grain is None:
            raise _refuse(spec, line, what, "--grain over a table without a time")
        else:
            bucket = rewriter.builder.truncate(options.grain, time)
            scoped.append(f"{bucket} AS {_q(_by(column))}")
    group_sets = [[_by(c) for c in s] for s in sets]
    if kpi.breakdown:
        scoped.append(f"CAST({_q(kpi.breakdown)} AS VARCHAR) AS {_BREAKDOWN}")
        group_sets += [[*s, _BREAKDOWN] for s in group_sets]
    if kpi.pass_k is not None:
        success = rewriter.rewrite(kpi.pass_k.success, line=line, what=what)
        scoped.append(f"{_q(kpi.pass_k.task)} AS __task")
        scoped.append(f"COALESCE(({success}), FALSE) AS __success")
    scope = f"(SELECT *, {', '.join(scoped)} FROM {_q('facts_' + table.name)}{where}) AS scope"

    def agg(sql: str | None) -> str:
        approx = rewriter.approx_percentiles
        return rewriter.rewrite(sql or "", line=line, what=what, mature="__mature", approx=approx)

    if kpi.pass_k is not None:
        return rewriter.render(_pass_k_sql(kpi, keyed, group_sets, scope, rewriter))
    n = "COUNT(*) FILTER (WHERE __mature)"
    selected = [f"{rewriter.literal(kpi.name)} AS kpi"]
    selected += [f"{_q(_by(c))} AS {_q(c)}" for c in keyed]
    if kpi.breakdown:
        selected.append(_BREAKDOWN)
    selected += [f"GROUPING({_q(_by(c))}) AS {_q(_flag(c))}" for c in keyed]
    if kpi.breakdown:
        selected.append(f"GROUPING({_BREAKDOWN}) AS {_q(_flag(_BREAKDOWN))}")
    selected += [f"{n} AS n", "COUNT(*) FILTER (WHERE NOT __mature) AS pending"]
    if kpi.kind == "value":  # n = 0: a null value, as the polars engine gives
        selected.append(f"CASE WHEN {n} > 0 THEN CAST({agg(kpi.value)} AS DOUBLE) END AS value")
    else:
        selected.append(f"CAST({agg(kpi.numerator)} AS DOUBLE) AS __num")
        selected.append(f"CAST({agg(kpi.denominator)} AS DOUBLE) AS __den")
    for source in costed:
        for column in cost_columns(source):
            selected.append(
                f"CAST(SUM({_q(column)}) FILTER (WHERE __mature) AS BIGINT) AS {_q(column)}"
            )
    group_by = ", ".join("(" + ", ".join(_q(c) for c in s) + ")" for s in group_sets)
    return rewriter.render(
        f"SELECT {', '.join(selected)} FROM {scope} GROUP BY GROUPING SETS ({group_by})"
    )


def _pass_k_sql(
    kpi: KpiSpec,
    keyed: Sequence[str],
    group_sets: Sequence[Sequence[str]],
    scope: str,
    rewriter: Rewriter,
) -> str:
    """pass^k / pass@k as `engine.compute` computes it: per grouping set and task, n settled
    trials and c successes; per grouping set the mean over the tasks with n ≥ k of
    Π_{i<k} max(x − i, 0) / (n − i) (x = c; pass@k: 1 − the product with x = n − c), n the
    tasks with n ≥ k, pending the trials not settled plus the tasks with fewer than k."""
    passk = kpi.pass_k
    assert passk is not None
    cols = [_q(_by(c)) for c in keyed]
    flags = [_q(_flag(c)) for c in keyed]
    grouping = [f"GROUPING({c}) AS {f}" for c, f in zip(cols, flags, strict=True)]
    x = "(__n - __c)" if passk.at_least_one else "__c"
    product = "CAST(1 AS DOUBLE)"
    for i in range(passk.k):  # the polars engine's order of the factors
        product = f"({product} * (CAST(GREATEST({x} - {i}, 0) AS DOUBLE) / (__n - {i})))"
    chance = f"(CAST(1 AS DOUBLE) - {product})" if passk.at_least_one else product
    enough = f"__n >= {passk.k}"
    task_sets = ", ".join("(" + ", ".join([*s, "__task"]) + ")" for s in group_sets)
    sets = ", ".join("(" + ", ".join(s) + ")" for s in group_sets)
    keys = ", ".join([*cols, *flags])
    on = " AND ".join(
        [*(f"o.{f} = p.{f}" for f in flags), *(f"o.{c} IS NOT DISTINCT FROM p.{c}" for c in cols)]
    )
    tasks = (
        f"SELECT {', '.join([*cols, *grouping])}{', ' if cols else ''}__task, COUNT(*) AS __n, "
        f"COUNT(*) FILTER (WHERE __success) AS __c FROM {scope} WHERE __mature "
        f"GROUP BY GROUPING SETS ({task_sets})"
    )
    per_set = (
        f"SELECT {keys + ', ' if keys else ''}AVG(CASE WHEN {enough} THEN {chance} END) AS value, "
        f"COUNT(*) FILTER (WHERE {enough}) AS n, "
        f"COUNT(*) FILTER (WHERE NOT ({enough})) AS __short FROM tasks"
        + (f" GROUP BY {keys}" if keys else "")
    )
    opened = (
        f"SELECT {', '.join([*cols, *grouping])}{', ' if cols else ''}"
        f"COUNT(*) FILTER (WHERE NOT __mature) AS __open FROM {scope} "
        f"GROUP BY GROUPING SETS ({sets})"
    )
    out = [f"{rewriter.literal(kpi.name)} AS kpi"]
    out += [f"o.{_q(_by(c))} AS {_q(c)}" for c in keyed]
    out += [f"o.{f}" for f in flags]
    out += [
        "COALESCE(p.n, 0) AS n",
        "o.__open + COALESCE(p.__short, 0) AS pending",
        "p.value AS value",
    ]
    return (
        f"WITH tasks AS ({tasks}), per_set AS ({per_set}), opened AS ({opened}) "
        f"SELECT {', '.join(out)} FROM opened AS o LEFT JOIN per_set AS p ON {on or 'TRUE'}"
    )


def costed_sources(spec: Spec, kpi: KpiSpec, columns: Collection[str]) -> list[str]:
    """The priced sources a cost KPI's table carries cost counts of (`with_cost_counts`)."""
    return [s for s in kpi_cost_sources(spec, kpi) if cost_columns(s)[0] in columns]


def kpi_rows(
    kpi: KpiSpec,
    got: pl.DataFrame,
    sets: Sequence[tuple[str, ...]],
    costed: Sequence[str],
) -> pl.DataFrame:
    """The KPI table's rows of one KPI from its `kpi_sql` result, as `engine.compute` makes
    them: the grouping set of each row, a ratio's value (null where the denominator is 0), a
    cohort without a settled unit null (as the polars engine's join leaves it), a cost
    unknown where no row of the cohort has a known cost (`cost_unknown`), and one row per
    breakdown value with a non-zero numerator (the value's share of the cohort's
    denominator; n and pending the cohort's)."""
    keyed = list(dict.fromkeys(c for s in sets for c in s))
    code = pl.concat_str([pl.col(_flag(c)).cast(pl.String) for c in keyed]) if keyed else pl.lit("")
    codes = pl.DataFrame(
        {
            "__set": ["".join("0" if c in s else "1" for c in keyed) for s in sets],
            "grouping": [list(s) for s in sets],
        },
        schema={"__set": pl.String, "grouping": pl.List(pl.String)},
    )
    frame = got.with_columns(code.alias("__set")).join(codes, on="__set", how="left")
    parts = [] if kpi.breakdown is None else [_flag(_BREAKDOWN)]
    main = frame.filter(pl.col(parts[0]) == 1) if parts else frame
    overall = "1" * len(keyed)
    if () in sets and overall not in main.get_column("__set").to_list():
        # the grand total over no rows: Spark gives no row for GROUPING SETS (()) on empty
        # input, DuckDB and the polars engine one (n 0, no value)
        empty_row = main.clear(1).with_columns(
            pl.lit(overall).alias("__set"),
            pl.lit([], dtype=pl.List(pl.String)).alias("grouping"),
            pl.lit(0, dtype=main.schema["n"]).alias("n"),
            pl.lit(0, dtype=main.schema["pending"]).alias("pending"),
        )
        main = pl.concat([main, empty_row])
    cost = [c for s in costed for c in cost_columns(s)]
    # a cohort (not the overall row) without a settled unit: no value, as a left join leaves it
    empty = (pl.col("n") == 0) & (pl.col("grouping").list.len() > 0)
    if kpi.pass_k is not None:  # no cost rule for pass^k, as in the polars engine
        costed, cost = [], []
    numbers = ["value"] if kpi.kind == "value" or kpi.pass_k else ["__num", "__den"]
    main = main.with_columns([pl.when(~empty).then(pl.col(c)).alias(c) for c in [*numbers, *cost]])
    if kpi.kind != "value" and kpi.pass_k is None:
        main = main.with_columns(ratio_or_null(pl.col("__num"), pl.col("__den")).alias("value"))
    rows = [cost_unknown(main.lazy(), costed).collect()]
    if kpi.breakdown is not None:
        on = ["__set", *keyed]
        split = (
            frame.filter(pl.col(parts[0]) == 0)
            .select(*on, "__num", pl.col("n").alias("__own_n"), pl.col(_BREAKDOWN))
            .join(main.select(*on, "n", "pending", "__den"), on=on, nulls_equal=True)
            .filter((pl.col("__own_n") > 0) & (pl.col("__num") != 0))
            .with_columns(
                ratio_or_null(pl.col("__num"), pl.col("__den")).alias("value"),
                pl.lit(kpi.breakdown).alias("breakdown"),
                pl.col(_BREAKDOWN).alias("breakdown_value"),
            )
            .join(codes, on="__set", how="left")
        )
        rows.append(split)
    columns = ["kpi", "grouping", *keyed, "breakdown", "breakdown_value", "value", "reason"]
    out = []
    for part in rows:
        part = part.with_columns(pl.lit(kpi.name).alias("kpi"))
        part = part.with_columns(
            [pl.lit(None, dtype=pl.String).alias(c) for c in columns if c not in part.columns]
        )
        out.append(part.select(*columns, "n", "pending"))
    return pl.concat(out, how="vertical_relaxed")


def aggregate_sql(
    spec: Spec,
    kpis: Sequence[KpiSpec],
    output: Sequence[str],
    tables: Mapping[str, pl.LazyFrame],
    window: Window,
    options: ComputeOptions,
    dialect: Dialect,
    run: Callable[[str], pl.DataFrame],
    approx_percentiles: bool = False,
) -> tuple[pl.DataFrame, list[str]]:
    """The KPI table over `tables` (registered as `facts_<table>` where `run` executes a
    statement): each KPI's `kpi_sql` run, its rows made by `kpi_rows`, the formula KPIs and
    the order by `finish_kpis` — the same code as the polars engine's from there on.
    `approx_percentiles`: percentile KPIs approximately (`approximate_kpis` names them)."""
    rewriter = Rewriter(spec, window, dialect, approx_percentiles)
    sets = grouping_sets(options.by, options.grain, options.cross)
    statements: list[tuple[KpiSpec, str, list[tuple[str, ...]], list[str]]] = []
    notes: list[str] = []
    problems: list[str] = []
    for kpi in kpis:
        if kpi.kind == "formula":
            continue
        columns = tables[kpi.over].collect_schema().names()
        usable, note = usable_sets(kpi, columns, sets)
        if note is not None:
            notes.append(note)
        costed = costed_sources(spec, kpi, columns)
        try:
            sql = kpi_sql(spec, kpi, window, options, rewriter, columns, costed)
        except NotCovered as exc:
            problems.append(str(exc))
            continue
        statements.append((kpi, sql, usable, costed))
    if problems:  # before anything runs
        raise _refusal(problems, dialect)
    frames = [
        kpi_rows(kpi, run(record_statement(sql)), usable, costed)
        for kpi, sql, usable, costed in statements
    ]
    table, formula_notes = finish_kpis(spec, kpis, output, frames, options, sets)
    return table, notes + formula_notes


def compile_spec(
    spec: Spec,
    window: Window,
    options: ComputeOptions,
    kpis: Sequence[KpiSpec],
    dialect: Dialect = "duckdb",
    columns: Mapping[str, Collection[str]] | None = None,
    approx_percentiles: bool = False,
    fact_columns: Mapping[str, Sequence[str]] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """The SQL of a run in `dialect`: per table its facts, per KPI its aggregates (formula
    KPIs have none: they are computed from their inputs' rows). `columns`: per source, its
    columns; `fact_columns`: per table, the columns its facts have when the KPIs run (the
    cost counts `with_cost_counts` adds included; None: the spec's). Raises NotCovered
    naming every construct not covered."""
    rewriter = Rewriter(spec, window, dialect, approx_percentiles)
    require_covered(spec, kpis, options, dialect)
    used = [k for k in kpis if k.kind != "formula"]
    tables = fact_tables(spec, {k.over for k in used})
    facts = {t: facts_sql(spec, t, window, rewriter, columns) for t in tables}
    queries = {}
    for kpi in used:
        present = fact_columns.get(kpi.over) if fact_columns else None
        costed = costed_sources(spec, kpi, present) if present is not None else []
        queries[kpi.name] = kpi_sql(spec, kpi, window, options, rewriter, present, costed)
    return facts, queries


def approximate_kpis(spec: Spec, kpis: Sequence[KpiSpec]) -> tuple[str, ...]:
    """The KPIs of `kpis` an SQL engine with `approx_percentiles` gives approximately: those
    whose aggregate takes a percentile (MEDIAN, QUANTILE_CONT), and the formulas that read one
    of them (through other formulas too). Their facts' own percentiles stay exact."""

    def approx(kpi: KpiSpec) -> bool:
        if kpi.kind == "formula":
            return any(approx(spec.kpis[n]) for n in kpi.formula_kpis)
        exprs = (kpi.value, kpi.numerator, kpi.denominator)
        return any(e is not None and uses_quantile(e) for e in exprs)

    return tuple(k.name for k in kpis if approx(k))


def source_columns(
    spec: Spec, sources: Sources, window: Window, tables: Collection[str]
) -> dict[str, list[str]]:
    """Per source the tables of a run read, its rows' columns as kpictl reads them."""
    names = {
        s
        for t in tables
        for s in (
            spec.tables[t].rollup_sources()
            if spec.tables[t].is_rollup
            else (spec.tables[t].from_source or "",)
        )
    }
    return {s: source_rows(sources, s, window).collect_schema().names() for s in sorted(names)}


def view_sql(read: DirectRead) -> str:
    """The statement making a source's view from the engine's own read of its files."""
    temporary = " TEMPORARY" if read.dialect == "spark" else ""
    name = quote("source_" + read.source, read.dialect)
    return f"CREATE OR REPLACE{temporary} VIEW {name} AS\n{read.relation}"


def compile_text(
    spec: Spec,
    sources: Sources,
    window: Window,
    options: ComputeOptions,
    kpis: Sequence[KpiSpec],
    dialect: Dialect = "duckdb",
    approx_percentiles: bool = False,
) -> str:
    """What `kpictl compile --engine <dialect>` prints: the SQL a run executes, one statement
    per table's facts and per KPI, each headed by a comment saying what it is
    (`approx_percentiles`: as `--approx-percentiles` runs it)."""
    # as run_compute prepares a run: --by columns of the data, the cost counts of the KPIs
    # whose cost may be unknown (check_data), so the statements are those that run
    spec = with_cohort_columns(spec, sources, options.by, {k.over for k in kpis})
    check = check_data(spec, sources, kpis, where=options.where)
    used = fact_tables(spec, {k.over for k in kpis if k.kind != "formula"})
    columns = source_columns(spec, sources, window, used)
    schemas = {t: pl.LazyFrame(schema=spec.column_types[t]) for t in used}
    costly = [k for k in kpis if k.name in check.costs]
    fact_columns = {
        t: frame.collect_schema().names()
        for t, frame in with_cost_counts(spec, sources, window, schemas, costly).items()
    }
    facts, queries = compile_spec(
        spec, window, options, kpis, dialect, columns, approx_percentiles, fact_columns
    )
    lines = [
        f"-- kpictl compile --engine {dialect}"
        + (" --approx-percentiles" if approx_percentiles else ""),
        f"-- as_of {window.as_of.isoformat()}; params and as_of are literals below",
    ]
    approximate = approximate_kpis(spec, kpis) if approx_percentiles else ()
    if approximate:
        lines.append(
            f"-- approximate percentiles ({APPROX_FUNCTIONS[dialect]}): {', '.join(approximate)}"
        )
    views = []
    for source in columns:
        files = [f.path for f in sources.by_name[source].files] if source in sources else []
        read = source_read(spec, sources, source, dialect)
        lines.append(read_comment(read, files))
        if isinstance(read, DirectRead):
            views += ["", f"{read_comment(read, files)}", f"{view_sql(read)};"]
    lines += views
    for table, sql in facts.items():
        shape = spec.tables[table]
        what = (
            f"one row per {shape.key}"
            if shape.is_rollup
            else f"the rows of source {shape.from_source!r}"
            + (f" with what they look up in facts_{shape.lookup}" if shape.lookup else "")
        )
        lines += ["", f"-- facts_{table}: {what}", f"{sql};"]
    for name, sql in queries.items():
        mark = " (approximate)" if name in approximate else ""
        lines += ["", f"-- KPI {name}{mark}", f"{sql};"]
    formulas = [k.name for k in kpis if k.kind == "formula"]
    if formulas:
        lines += ["", f"-- formula KPIs, computed from their inputs' rows: {', '.join(formulas)}"]
    return "\n".join(lines) + "\n"
