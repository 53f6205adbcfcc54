"""kpictl's own rules from a spec expression to another engine's SQL text (docs/architecture.md,
"Engines"): sqlglot parses and prints, the rules here choose the meaning. DuckDB so far.

A construct no rule covers raises `Uncovered` naming it; the engine then refuses the run
with the spec line, never a different number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import sqlglot
from sqlglot import exp

_AGGREGATES = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.First, exp.Last)
_WINDOWED = (exp.Lead, exp.Lag, exp.Max, exp.Min)


class Uncovered(Exception):
    """A construct of an expression no rule of the target engine covers yet."""

    def __init__(self, construct: str) -> None:
        super().__init__(construct)
        self.construct = construct


def literal(value: object) -> str:
    """A Python value as a DuckDB literal (a time as a UTC TIMESTAMPTZ)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return f"TIMESTAMPTZ '{value.astimezone(dt.UTC).isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def _parse(sql: str) -> exp.Expr:
    return sqlglot.parse_one(sql, dialect="duckdb")


def to_duckdb(
    sql: str,
    values: Mapping[str, object],
    *,
    mature: str | None = None,
    order: str | None = None,
) -> str:
    """`sql` as DuckDB SQL: the names in `values` (params, as_of, …) as literals; TOTAL(x) →
    CAST(COALESCE(SUM(x), 0) AS DOUBLE); EXTRACT(EPOCH FROM t) → epoch_us(t) / 1e6;
    MEDIAN / QUANTILE_CONT → exact quantile_cont over DOUBLE; FIRST/LAST(x) → arg_min_null /
    arg_max_null(x, `order`) (null values kept, as the polars engine keeps them; `order` None:
    FIRST/LAST are not allowed here); `mature`: AND-ed into every aggregate's FILTER."""

    def rule(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table and node.name in values:
            return _parse(literal(values[node.name]))
        if isinstance(node, exp.Anonymous):
            name = node.name.upper()
            if name == "TOTAL" and len(node.expressions) == 1:
                inner = node.expressions[0].sql("duckdb")
                return _parse(f"CAST(COALESCE(SUM({inner}), 0) AS DOUBLE)")
            raise Uncovered(f"the function {name}()")
        if isinstance(node, exp.Extract):
            if node.this.name.upper() != "EPOCH":
                raise Uncovered(f"EXTRACT({node.this.name})")
            return _parse(f"(epoch_us({node.expression.sql('duckdb')}) / 1e6)")
        if isinstance(node, exp.Median):
            return _parse(f"quantile_cont(CAST({node.this.sql('duckdb')} AS DOUBLE), 0.5)")
        if isinstance(node, exp.PercentileCont):
            q = node.expression.sql("duckdb")
            return _parse(f"quantile_cont(CAST({node.this.sql('duckdb')} AS DOUBLE), {q})")
        if isinstance(node, exp.First | exp.Last):
            if order is None:
                raise Uncovered("FIRST/LAST outside a rollup")
            func = "arg_min_null" if isinstance(node, exp.First) else "arg_max_null"
            return _parse(f"{func}({node.this.sql('duckdb')}, {order})")
        if isinstance(node, exp.Window) and not isinstance(node.this, _WINDOWED):
            raise Uncovered(f"the window function {node.this.key.upper()}")
        return node

    tree = _parse(sql).transform(rule)
    if mature is not None:
        tree = _filter_aggregates(tree, mature)
    return tree.sql(dialect="duckdb")


def _filter_aggregates(tree: exp.Expr, condition: str) -> exp.Expr:
    """AND `condition` into every aggregate's FILTER (a KPI's settled units)."""
    cond = _parse(condition)

    def rule(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Filter):
            where = node.expression.this
            node.set("expression", exp.Where(this=exp.and_(exp.paren(where), cond.copy())))
            return node
        is_agg = isinstance(node, _AGGREGATES) or (
            isinstance(node, exp.Anonymous) and node.name.lower() == "quantile_cont"
        )
        if is_agg and not isinstance(node.parent, exp.Filter | exp.Window):
            return exp.Filter(this=node.copy(), expression=exp.Where(this=cond.copy()))
        return node

    return tree.transform(rule, copy=True)


def with_total_order(sql: str, key: str) -> str:
    """Every window's ORDER BY with NULLS LAST and `key` (a quoted column) last: ties in one
    order on every engine and partitioning."""
    tree = _parse(sql)
    for window in tree.find_all(exp.Window):
        order = window.args.get("order")
        if order is None:
            continue
        for ordered in order.expressions:
            ordered.set("nulls_first", False)
        order.append("expressions", exp.Ordered(this=_parse(key), nulls_first=False))
    return tree.sql(dialect="duckdb")
