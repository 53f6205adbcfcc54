"""kpictl's own rules from a spec expression to another engine's SQL text (docs/architecture.md,
"Engines"): sqlglot parses and prints, the rules here choose the meaning. One rule set per
target dialect: DuckDB and Spark SQL.

| spec construct | DuckDB | Spark |
| --- | --- | --- |
| a time literal (as_of, …) | `TIMESTAMPTZ` in UTC | `TIMESTAMP` in UTC (the session runs in UTC) |
| `TOTAL(x)` | `CAST(COALESCE(SUM(x), 0) AS DOUBLE)` | the same |
| `EXTRACT(EPOCH FROM t)` | `epoch_us(t) / 1e6` | `UNIX_MICROS(t) / 1e6` |
| `MEDIAN(x)`, `QUANTILE_CONT(x, q)` | `quantile_cont(x', q)` | `percentile(x', q)` (exact) |
| the same, `approx=True` | `approx_quantile(x', q)` | `percentile_approx(x', q, 10000)` |
| `FIRST/LAST(x)` in a rollup | `arg_min_null/arg_max_null(x, (ts, row))` | `MIN_BY/MAX_BY(x, …)` |
| `a / b` | `a / b` | `CASE WHEN b = 0 THEN a * POWER(b, -1) ELSE try_divide(a, b) END` |
| `--grain` week of t (Monday) | `date_trunc('week', t)` | `date_trunc('WEEK', t)` |
| other functions | COALESCE, CAST, CASE, IF, ABS, LOWER, UPPER | the same |
| `… OVER (ORDER BY …)` | `NULLS LAST`, the key appended | the same |

(x' is `CAST(x AS DOUBLE)`; Spark's order is `STRUCT(ts IS NULL, ts, row)`: a null ts last.)

Approximate percentiles (`approx=True`, `--approx-percentiles`: only a KPI's aggregate asks for
them, never a table's facts). Spark's `percentile_approx` with `accuracy` = 10000
(`APPROX_ACCURACY`, Spark's default): Spark documents `1.0 / accuracy` as the relative error,
a rank error — the value returned is one of the column's values whose rank is within
n / accuracy of q·n, so it lies between the exact quantiles at q − 1e-4 and q + 1e-4. DuckDB's
`approx_quantile` is a T-Digest (compression 100) and DuckDB documents no error bound; its
error is also one of rank, smallest near 0 and 1 (kpictl's tests hold it to 1 % of n on the
data they draw, an observed bound, not a guarantee).

Both keep a null value of FIRST/LAST's argument (DuckDB's plain `arg_min` skips it; Spark's
`min_by` keeps it), as the polars engine does. `a / b` is IEEE division on all three: polars
and DuckDB give ±inf for a non-zero a over a zero b (the sign of a times the sign of b's zero:
`1 / -0.0` is -inf), NaN for 0 / 0, null where either side is null. Spark's division gives NULL
for any zero divisor (and raises in ANSI mode), so Spark's rule spells the zero case out:
`POWER(b, -1)` of a zero b is +inf, or -inf for -0.0 (Java's `StrictMath.pow`; Spark's `ATAN2`
and `SIGNUM` lose the sign of zero), times a that is ±inf, NaN for a = 0 (0 · inf) or a NaN,
NULL for a null a; any other b is `try_divide(a, b)` (NULL for a null b, no error in ANSI
mode). A construct no rule covers raises
`Uncovered` naming it; the engine then refuses the run with the spec line, never a different
number.

Whole statements (CTEs, GROUPING SETS, FILTER, casts) are written by `SqlBuilder` as text in
kpictl's own structural SQL (DuckDB syntax, names quoted with `"…"`), with a hole for each
translated expression and literal; the text is parsed once, the holes filled with their trees,
and the tree printed by sqlglot in the target dialect (`VARCHAR` → `STRING`, `"x"` → `` `x` ``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Literal, get_args

import sqlglot
from sqlglot import exp

from kpictl.sql.tree import parse

Dialect = Literal["duckdb", "spark"]
DIALECTS: tuple[Dialect, ...] = get_args(Dialect)

_AGGREGATES = (
    exp.Count,
    exp.Sum,
    exp.Avg,
    exp.Min,
    exp.Max,
    exp.First,
    exp.Last,
    exp.Median,
    exp.PercentileCont,
)
_WINDOWED = (exp.Lead, exp.Lag, exp.Max, exp.Min)
# functions (sqlglot's Func nodes) whose meaning is the same in polars, DuckDB and Spark, or
# that a rule below rewrites; any other is Uncovered (ROUND, GREATEST, DATE_TRUNC, … differ)
_COVERED_FUNCTIONS = (
    *_AGGREGATES,
    *_WINDOWED,
    exp.Anonymous,
    exp.Connector,
    exp.Coalesce,
    exp.Cast,
    exp.Case,
    exp.If,
    exp.Abs,
    exp.Lower,
    exp.Upper,
    exp.Extract,
)
_HOLE = "__kpictl_hole_"
APPROX_ACCURACY = 10_000
"""Spark's `percentile_approx` accuracy (its default): rank error at most n / accuracy."""
APPROX_FUNCTIONS: dict[Dialect, str] = {
    "duckdb": "DuckDB's approx_quantile, a T-Digest with no documented error bound",
    "spark": f"Spark's percentile_approx with accuracy {APPROX_ACCURACY:,}: rank error at "
    f"most n / {APPROX_ACCURACY:,}",
}
"""What computes an approximate percentile on each dialect, as the notes name it."""


class Uncovered(Exception):
    """A construct of an expression no rule of the target engine covers yet."""

    def __init__(self, construct: str) -> None:
        super().__init__(construct)
        self.construct = construct


def _literal(value: object, dialect: Dialect) -> exp.Expr:
    """A Python value as a literal tree (a time as a UTC timestamp)."""
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.true() if value else exp.false()
    if isinstance(value, int | float):
        number = exp.Literal.number(repr(value))
        return exp.Neg(this=exp.Literal.number(repr(-value))) if value < 0 else number
    if isinstance(value, dt.datetime):
        text = value.astimezone(dt.UTC).isoformat()
        kind = "TIMESTAMPTZ" if dialect == "duckdb" else "TIMESTAMP"
        return exp.cast(exp.Literal.string(text), kind)
    return exp.Literal.string(str(value))


GRAIN_UNITS = {"hour": "HOUR", "day": "DAY", "week": "WEEK", "month": "MONTH"}


def truncate(grain: str, column: str, dialect: Dialect) -> exp.Expr:
    """The time `column` truncated to the start of its `grain` bucket in UTC (the session's
    zone on both engines), as polars' `dt.truncate` gives it: weeks start on Monday
    (DuckDB's `date_trunc('week', …)` and Spark's `date_trunc('WEEK', …)` are ISO weeks),
    months on the 1st. A null time is a null bucket."""
    if grain not in GRAIN_UNITS:
        raise Uncovered(f"the grain {grain!r}")
    unit = GRAIN_UNITS[grain]
    text = unit.lower() if dialect == "duckdb" else unit
    return _call("date_trunc", exp.Literal.string(text), exp.column(column, quoted=True))


def _call(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _double(node: exp.Expr) -> exp.Expr:
    return exp.cast(node, "DOUBLE")


def _total(argument: exp.Expr, where: exp.Expr | None = None) -> exp.Expr:
    """TOTAL(x) [FILTER (WHERE c)] → CAST(COALESCE(SUM(x) [FILTER (WHERE c)], 0) AS DOUBLE)."""
    summed: exp.Expr = exp.Sum(this=argument)
    if where is not None:
        summed = exp.Filter(this=summed, expression=where)
    return _double(exp.Coalesce(this=summed, expressions=[exp.Literal.number(0)]))


def _is_total(node: exp.Expr) -> bool:
    return (
        isinstance(node, exp.Anonymous)
        and node.name.upper() == "TOTAL"
        and len(node.expressions) == 1
    )


def _row_order(dialect: Dialect, time: str, row: str) -> exp.Expr:
    """The total order of a source's rows: (time, then the row's position)."""
    t, r = exp.column(time), exp.column(row)
    if dialect == "duckdb":
        return exp.Struct(
            expressions=[
                exp.PropertyEQ(this=exp.to_identifier("t"), expression=t),
                exp.PropertyEQ(this=exp.to_identifier("r"), expression=r),
            ]
        )
    # Spark orders a null field first, DuckDB (and polars' nulls_last sort) last
    is_null = exp.Is(this=t.copy(), expression=exp.null())
    return _call("STRUCT", exp.alias_(is_null, "n"), exp.alias_(t, "t"), exp.alias_(r, "r"))


def _rule(
    node: exp.Expr,
    values: Mapping[str, object],
    dialect: Dialect,
    order: tuple[str, str] | None,
    approx: bool = False,
) -> exp.Expr:
    """One node rewritten for `dialect`; its children are rewritten already."""
    if isinstance(node, exp.Column) and not node.table and node.name in values:
        return _literal(values[node.name], dialect)
    if isinstance(node, exp.Filter) and _is_total(node.this):
        return _total(node.this.expressions[0], node.expression)
    if isinstance(node, exp.Anonymous):
        name = node.name.upper()
        if name == "TOTAL" and len(node.expressions) == 1:
            if isinstance(node.parent, exp.Filter):
                return node  # the FILTER node rewrites it, the filter inside the SUM
            return _total(node.expressions[0])
        raise Uncovered(f"the function {name}()")
    if isinstance(node, exp.Extract):
        if node.this.name.upper() != "EPOCH":
            raise Uncovered(f"EXTRACT({node.this.name})")
        micros = _call("epoch_us" if dialect == "duckdb" else "UNIX_MICROS", node.expression)
        return exp.paren(exp.Div(this=micros, expression=exp.Literal.number("1e6")))
    if isinstance(node, exp.Median | exp.PercentileCont):
        q = exp.Literal.number("0.5") if isinstance(node, exp.Median) else node.expression
        if approx and dialect == "spark":
            accuracy = exp.Literal.number(APPROX_ACCURACY)
            return _call("percentile_approx", _double(node.this), q, accuracy)
        if approx:
            return _call("approx_quantile", _double(node.this), q)
        name = "quantile_cont" if dialect == "duckdb" else "percentile"
        return _call(name, _double(node.this), q)
    if isinstance(node, exp.First | exp.Last):
        if order is None:
            raise Uncovered("FIRST/LAST outside a rollup")
        first = isinstance(node, exp.First)
        if dialect == "duckdb":
            name = "arg_min_null" if first else "arg_max_null"
        else:
            name = "MIN_BY" if first else "MAX_BY"
        return _call(name, node.this, _row_order(dialect, *order))
    if isinstance(node, exp.Window) and not isinstance(node.this, _WINDOWED):
        raise Uncovered(f"the window function {node.this.key.upper()}")
    if isinstance(node, exp.Func) and not isinstance(node, _COVERED_FUNCTIONS):
        raise Uncovered(f"the function {node.sql_name()}()")
    if isinstance(node, exp.Div) and dialect == "spark":
        return _spark_divide(node.this, node.expression)
    return node


def _spark_divide(a: exp.Expr, b: exp.Expr) -> exp.Expr:
    """`a / b` in Spark with polars' IEEE meaning (the module's docstring): a zero b gives
    a · POWER(b, -1) (±inf by the signs of a and of b's zero, NaN for a = 0), any other b
    `try_divide(a, b)`."""
    reciprocal = _call("POWER", b.copy(), exp.Neg(this=exp.Literal.number(1)))
    zero = exp.EQ(this=exp.paren(b.copy()), expression=exp.Literal.number(0))
    spelled = exp.Mul(this=exp.paren(a.copy()), expression=reciprocal)
    return exp.Case(ifs=[exp.If(this=zero, true=spelled)], default=_call("try_divide", a, b))


def translate(
    sql: str,
    values: Mapping[str, object],
    dialect: Dialect,
    *,
    mature: str | None = None,
    order: tuple[str, str] | None = None,
    window_key: str | None = None,
    approx: bool = False,
) -> exp.Expr:
    """The tree of `sql` (a spec expression) for `dialect`: the names in `values` (params,
    as_of, …) as literals, each construct by the rules of the table above (`approx`: MEDIAN
    and QUANTILE_CONT approximate). `mature`: a column
    AND-ed into every aggregate's FILTER (a KPI's settled units); `order`: the (time, row
    position) columns FIRST/LAST order by (None: FIRST/LAST are not allowed here);
    `window_key`: a column appended to every window's ORDER BY, all with NULLS LAST (ties in
    one order on every engine and partitioning)."""
    tree = parse(sql).tree.copy()
    if mature is not None:
        tree = _filter_aggregates(tree, exp.column(mature))
    if window_key is not None:
        _total_order(tree, window_key)
    # children before parents: a rule sees its arguments rewritten
    for node in reversed(list(tree.walk(bfs=False))):
        new = _rule(node, values, dialect, order, approx)
        if new is node:
            continue
        if node is tree:
            tree = new
        else:
            node.replace(new)
    return tree


def _filter_aggregates(tree: exp.Expr, condition: exp.Expr) -> exp.Expr:
    """AND `condition` into every aggregate's FILTER."""
    for node in list(tree.walk(bfs=False)):
        if isinstance(node, exp.Filter):
            where = node.expression.this
            node.set("expression", exp.Where(this=exp.and_(exp.paren(where), condition.copy())))
            continue
        is_agg = isinstance(node, _AGGREGATES) or _is_total(node)
        if is_agg and not isinstance(node.parent, exp.Filter | exp.Window):
            wrapped = exp.Filter(this=node.copy(), expression=exp.Where(this=condition.copy()))
            if node is tree:
                return wrapped
            node.replace(wrapped)
    return tree


def _total_order(tree: exp.Expr, key: str) -> None:
    for window in tree.find_all(exp.Window):
        order = window.args.get("order")
        if order is None:
            continue
        for ordered in order.expressions:
            ordered.set("nulls_first", False)
        order.append(
            "expressions", exp.Ordered(this=exp.column(key, quoted=True), nulls_first=False)
        )


class SqlBuilder:
    """Statements in one dialect: written as structural SQL text (DuckDB syntax, names quoted
    with `"…"`) with holes (`hole`, `expression`, `literal` return a hole's name to put in
    the text), printed by `render` as one tree in the target dialect."""

    def __init__(self, dialect: Dialect) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown SQL dialect {dialect!r}; one of {', '.join(DIALECTS)}")
        self.dialect: Dialect = dialect
        self._holes: dict[str, exp.Expr] = {}

    def _hole(self, tree: exp.Expr) -> str:
        name = f"{_HOLE}{len(self._holes)}"
        self._holes[name] = tree
        return name

    def expression(
        self,
        sql: str,
        values: Mapping[str, object],
        *,
        mature: str | None = None,
        order: tuple[str, str] | None = None,
        window_key: str | None = None,
        approx: bool = False,
    ) -> str:
        """A hole holding `translate(sql, …)` (raises Uncovered)."""
        tree = translate(
            sql,
            values,
            self.dialect,
            mature=mature,
            order=order,
            window_key=window_key,
            approx=approx,
        )
        return self._hole(tree)

    def literal(self, value: object) -> str:
        """A hole holding `value` as a literal (a time as a UTC timestamp)."""
        return self._hole(_literal(value, self.dialect))

    def truncate(self, grain: str, column: str) -> str:
        """A hole holding the time `column` truncated to its `grain` bucket (`truncate`)."""
        return self._hole(truncate(grain, column, self.dialect))

    def render(self, text: str) -> str:
        """`text` (structural SQL with holes) printed in the target dialect: a statement with
        CTEs as one CTE a line, then its final query."""
        tree = sqlglot.parse_one(text, dialect="duckdb")

        def fill(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column) and not node.table and node.name in self._holes:
                return self._holes[node.name].copy()
            return node

        tree = tree.transform(fill)
        with_ = tree.args.get("with_")
        if not isinstance(with_, exp.With):
            return tree.sql(dialect=self.dialect)
        ctes = [cte.sql(dialect=self.dialect) for cte in with_.expressions]
        tree.set("with_", None)
        return "WITH " + ",\n  ".join(ctes) + "\n" + tree.sql(dialect=self.dialect)


def quote(name: str) -> str:
    """A name quoted for structural SQL text."""
    return '"' + name.replace('"', '""') + '"'
