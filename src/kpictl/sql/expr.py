"""SQL expressions: compiled with polars (`pl.sql_expr`), checked against a schema without data.

Every filter and formula in a spec is one SQL expression. There is no templating and no eval:
params and the built-ins (`as_of`, `window_start`, `window_end`) are columns. Each expression
is parsed once by `kpictl.sql.tree`, which answers every question about it; polars compiles
the text generated from that tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import polars as pl

from kpictl.errors import did_you_mean
from kpictl.sql.tree import (
    MAX_EXPRESSION_CHARS,
    MAX_OPERATORS,
    ExpressionProblem,
    compared_literals,
    is_aggregate,
    names,
    parse,
    picked_column,
    summed_columns,
)

__all__ = [
    "MAX_EXPRESSION_CHARS",
    "MAX_OPERATORS",
    "ExpressionProblem",
    "compared_literals",
    "picked_column",
    "summed_columns",
]


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
