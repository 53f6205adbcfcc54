"""SQL expressions: compiled with polars (`pl.sql_expr`), checked without data.

Every filter and formula in a spec is one SQL expression. There is no templating and no eval:
params and the built-ins (`as_of`, `window_start`, `window_end`) are columns.
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import polars as pl

from kpictl.errors import did_you_mean
from kpictl.sql.tree import (
    MAX_EXPRESSION_CHARS,
    MAX_OPERATORS,
    ExpressionProblem,
    is_aggregate,
    names,
    parse,
)

__all__ = ["MAX_EXPRESSION_CHARS", "MAX_OPERATORS", "ExpressionProblem"]

_STRING_OR_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


class ExpressionShape(Enum):
    """Whether an expression yields one value per group or one value per row."""

    AGGREGATE = "aggregate"
    ROW = "row"


@dataclass(frozen=True)
class CheckedExpression:
    """An expression that parsed and type-checked against a schema."""

    sql: str
    dtype: pl.DataType
    shape: ExpressionShape
    names: tuple[str, ...]


def strip_literals(sql: str) -> str:
    """The SQL text with string literals and quoted identifiers blanked out."""
    return _STRING_OR_QUOTED.sub("''", sql)


def compile_sql(sql: str) -> pl.Expr:
    """Compile one SQL expression to a polars expression: parsed once (`sql.tree.parse`, which
    refuses unsafe constructs), then polars compiles the text generated from the tree."""
    parsed = parse(sql)
    try:
        return pl.sql_expr(parsed.polars_sql)
    except Exception as exc:  # polars raises several SQL error classes
        raise ExpressionProblem(f"not a valid SQL expression: {first_line(exc)}") from exc


def first_line(exc: BaseException) -> str:
    """The first meaningful line of a (polars) error message."""
    text = str(exc).strip()
    return text.split("\n", 1)[0].strip() if text else type(exc).__name__


def referenced_names(expr: pl.Expr) -> tuple[str, ...]:
    """Column names an expression reads, deduplicated, in first-seen order."""
    seen: dict[str, None] = {}
    for name in expr.meta.root_names():
        seen.setdefault(name, None)
    return tuple(seen)


_EQUALITY_OPS = ("Eq", "NotEq", "EqValidity", "NotEqValidity")


def compared_literals(sql: str) -> tuple[tuple[str, str], ...]:
    """(column, text) for every string literal the expression compares a bare column with
    (`col = 'x'`, `'x' = col`, `col <> 'x'`, `col IN ('x', 'y')`), in first-seen order.

    Read from polars' parsed tree (its JSON form), not from the SQL text: quotes, doubled
    quotes, newlines and FILTER clauses are the parser's business."""
    try:
        tree = json.loads(compile_sql(sql).meta.serialize(format="json"))
    except (ExpressionProblem, ValueError):
        return ()
    found: dict[tuple[str, str], None] = {}
    _walk_literals(tree, found)
    return tuple(found)


@functools.lru_cache(maxsize=1024)
def summed_columns(sql: str) -> tuple[str, ...]:
    """Columns whose values the expression adds up: read under SUM, TOTAL or AVG (conditions
    — CASE WHEN predicates, FILTER clauses — excluded), in first-seen order. Read from polars'
    parsed tree; an expression that does not compile sums nothing."""
    try:
        tree = json.loads(compile_sql(sql).meta.serialize(format="json"))
    except (ExpressionProblem, ValueError):
        return ()
    found: dict[str, None] = {}
    _walk_sums(tree, False, found)
    return tuple(found)


def _walk_sums(node: object, inside: bool, found: dict[str, None]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk_sums(item, inside, found)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Column" and inside and isinstance(value, str):
                found.setdefault(value, None)
            elif key in ("predicate", "by"):  # a condition decides which rows, adds nothing
                _walk_sums(value, False, found)
            else:
                _walk_sums(value, inside or key in ("Sum", "Mean"), found)


def _string_scalar(node: object) -> str | None:
    scalar = node.get("Literal", {}).get("Scalar") if isinstance(node, dict) else None
    text = scalar.get("String") if isinstance(scalar, dict) else None
    return text if isinstance(text, str) else None


def _column(node: object) -> str | None:
    name = node.get("Column") if isinstance(node, dict) else None
    return name if isinstance(name, str) else None


def _series_strings(node: object) -> list[str]:
    """The strings of a literal list (`IN (…)`), which polars stores as Arrow IPC bytes."""
    data = node.get("Literal", {}).get("Series") if isinstance(node, dict) else None
    if not isinstance(data, list):
        return []
    try:
        frame = pl.read_ipc_stream(io.BytesIO(bytes(data)))
    except Exception:  # another encoding of the list: nothing to check, never an error
        return []
    values = frame.to_series(0).explode() if frame.width else pl.Series([])
    return [v for v in values.to_list() if isinstance(v, str)]


def _walk_literals(node: object, found: dict[tuple[str, str], None]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk_literals(item, found)
        return
    if not isinstance(node, dict):
        return
    binary = node.get("BinaryExpr")
    if isinstance(binary, dict) and binary.get("op") in _EQUALITY_OPS:
        left, right = binary.get("left"), binary.get("right")
        for column, literal in (
            (_column(left), _string_scalar(right)),
            (_column(right), _string_scalar(left)),
        ):
            if column is not None and literal is not None:
                found.setdefault((column, literal), None)
    function = node.get("Function")
    if isinstance(function, dict) and "IsIn" in json.dumps(function.get("function")):
        inputs = function.get("input") or []
        if len(inputs) == 2 and _column(inputs[0]) is not None:
            for literal in _series_strings(inputs[1]):
                found.setdefault((str(_column(inputs[0])), literal), None)
    for value in node.values():
        _walk_literals(value, found)


_PICKS = ("First", "Last", "Min", "Max")


def picked_column(sql: str) -> str | None:
    """The column whose values an aggregate passes through unchanged — `FIRST(c)`, `LAST(c)`,
    `MIN(c)`, `MAX(c)`, with or without FILTER — else None (COUNT, SUM, arithmetic, …)."""
    try:
        tree = json.loads(compile_sql(sql).meta.serialize(format="json"))
    except (ExpressionProblem, ValueError):
        return None
    agg = tree.get("Agg") if isinstance(tree, dict) else None
    if not isinstance(agg, dict) or len(agg) != 1:
        return None
    kind, inner = next(iter(agg.items()))
    if kind not in _PICKS:
        return None
    if isinstance(inner, dict) and "input" in inner and "Column" not in inner:
        inner = inner["input"]  # Min / Max carry options beside their input
    if isinstance(inner, dict) and isinstance(inner.get("Filter"), dict):
        inner = inner["Filter"].get("input")
    return _column(inner)


def check_expression(
    sql: str,
    schema: Mapping[str, pl.DataType],
    *,
    shape: ExpressionShape | None = None,
    dtype: type[pl.DataType] | tuple[type[pl.DataType], ...] | None = None,
    what: str = "expression",
) -> CheckedExpression:
    """Parse, name-check, type-check and shape-check `sql` against `schema` with no data.

    Raises ExpressionProblem with a message that names unknown columns (with suggestions),
    dtype errors, a wrong shape (aggregate vs row-level) or a wrong result type.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise ExpressionProblem(f"{what} must be a non-empty SQL expression (a string)")
    expr = compile_sql(sql)
    read_names = names(sql)
    unknown = [n for n in read_names if n not in schema]
    if unknown:
        parts = [f"unknown column {n!r}{did_you_mean(n, schema)}" for n in unknown]
        raise ExpressionProblem("; ".join(parts) + f"; available: {', '.join(sorted(schema))}")
    # only the columns it reads (one, for COUNT(*)): a frame of every column per expression
    # made loading the default spec take 0.1 s
    read = (
        {n: schema[n] for n in read_names}
        or dict(list(schema.items())[:1])
        or {"__probe": pl.Null()}
    )
    frame = pl.LazyFrame(schema=read)
    try:
        result_schema = frame.select(expr).collect_schema()
    except Exception as exc:
        raise ExpressionProblem(f"does not type-check: {first_line(exc)}") from exc
    result_dtype = next(iter(result_schema.values()))
    try:
        probe = pl.DataFrame(
            {name: pl.Series(name, [None, None], dtype=dt) for name, dt in read.items()}
        )
        height = probe.lazy().select(expr).collect().height
    except Exception as exc:
        raise ExpressionProblem(f"cannot be evaluated: {first_line(exc)}") from exc
    found_shape = ExpressionShape.AGGREGATE if is_aggregate(sql) else ExpressionShape.ROW
    if found_shape is ExpressionShape.AGGREGATE and height != 1:
        raise ExpressionProblem(
            f"{what} mixes aggregates with row-level values: put every column it reads "
            "inside an aggregate, e.g. SUM(x) - MAX(y), not SUM(x) - y"
        )
    if shape is ExpressionShape.AGGREGATE and found_shape is not ExpressionShape.AGGREGATE:
        raise ExpressionProblem(
            f"{what} must be an aggregate (one value per group), e.g. COUNT(*), "
            "AVG(x), SUM(x) FILTER (WHERE …), QUANTILE_CONT(x, 0.95); got a row-level expression"
        )
    if shape is ExpressionShape.ROW and found_shape is not ExpressionShape.ROW:
        raise ExpressionProblem(
            f"{what} must be row-level (one value per row); it aggregates. "
            "Aggregates belong in rollup entries, `value`, `numerator` or `denominator`"
        )
    if dtype is not None and not isinstance(result_dtype, dtype):
        wanted = (
            " or ".join(d.__name__ for d in dtype) if isinstance(dtype, tuple) else dtype.__name__
        )
        raise ExpressionProblem(f"{what} must give {wanted}, but gives {result_dtype}")
    return CheckedExpression(sql=sql, dtype=result_dtype, shape=found_shape, names=read_names)
