"""Compiling rollup and derive entries for speed, without changing what they mean.

Polars evaluates `AGG(x) FILTER (WHERE c)` inside a group-by as a per-group filter, which is
several times slower than a plain reduction over `CASE WHEN c THEN x END` computed row-wise
(measured at 10M events: 3.9 s against 1.0 s for the conversation rollup). This module
rewrites an entry of the shape

    AGG(arg) FILTER (WHERE cond) [op literal]

- for MIN, MAX, SUM, TOTAL, AVG and COUNT: into `AGG(CASE WHEN cond THEN arg END) [op literal]`
  (COUNT(*) counts `CASE WHEN cond THEN 1 END`); both ignore the same rows, so the result is
  the same, including on groups with no matching row;
- for FIRST and LAST: into "the value of the earliest (latest) matching row by ts", so the
  source need not be sorted as a whole;

and, for an entry that uses earlier entries (a second pass), returns the conjuncts of `cond`
that read only source columns: rows failing them cannot change the entry, so the second pass
runs only over the rows that pass them (e.g. `event = 'reopen'`). Anything else is left as
written.

A derive entry `LEAD|LAG(arg[, n]) OVER (PARTITION BY a, b ORDER BY t [ASC])` is split into its
parts (`split_shift_window`) so the engine can run it as one sort and a shift compared with
the neighbouring row's partition (3x faster than polars' `shift().over(order_by=…)`).

Every part (function, argument, FILTER condition, comparison, AND terms, window) is read from
the expression's parsed tree (`kpictl.sql.tree`), and each rewrite is polars SQL generated from
that tree: no SQL text is scanned here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import polars as pl

from kpictl.sql.expr import compile_sql
from kpictl.sql.tree import (
    AggregateKind,
    compared_aggregate,
    conjuncts,
    names,
    uses_row_order,
    window,
)

_CASE_AGGREGATES = (
    AggregateKind.MIN,
    AggregateKind.MAX,
    AggregateKind.SUM,
    AggregateKind.TOTAL,
    AggregateKind.AVG,
    AggregateKind.COUNT,
    AggregateKind.COUNT_FILTER,
)


@dataclass(frozen=True)
class ShiftWindow:
    """`LEAD(argument, offset) OVER (PARTITION BY partition ORDER BY order)`; LAG has a
    negative offset. The value of the row `offset` places later in its partition, in `order`
    (nulls last, ties in row order), or null past the partition's end."""

    argument: str
    offset: int
    partition: tuple[str, ...]
    order: str


def split_shift_window(sql: str) -> ShiftWindow | None:
    """The parts of `LEAD|LAG(arg[, n]) OVER (PARTITION BY cols ORDER BY col [ASC])`; None for
    any other expression (a default value, DESC, NULLS FIRST, several ORDER BY columns…)."""
    found = window(sql)
    if (
        found is None
        or found.function not in ("LEAD", "LAG")
        or found.argument is None
        or found.offset is None
        or found.has_default
        or found.partition_columns is None
        or not found.partition_columns
        or len(found.order) != 1
    ):
        return None
    order = found.order[0]
    if order.column is None or order.descending or order.nulls_first:
        return None
    steps = found.offset if found.function == "LEAD" else -found.offset
    return ShiftWindow(found.argument, steps, found.partition_columns, order.column)


def partition_hash(columns: Sequence[str]) -> pl.Expr:
    """One 64-bit hash of a row's values in `columns` (equal values, equal hashes)."""
    return pl.struct(list(columns)).hash()


def shifted_in_partition(
    frame: pl.DataFrame, window: ShiftWindow, *, exact: bool = False
) -> pl.Series:
    """The window's values for `frame`'s rows, in their order: the rows ordered by partition
    and order (stable), each row's value taken `offset` rows away when that row is in the
    same partition (null partition values form a partition of their own).

    The order comes from two stable one-column sorts, by the order column and then by a hash
    of the partition (2x faster than one sort over the partition's text columns). Rows of two
    partitions whose hashes collide would interleave: that shows as neighbours with one hash
    and different partitions, and then (or with `exact`) the rows are sorted by the partition
    columns themselves."""
    row, value, group, clash = "__kpictl_row", "__kpictl_value", "__kpictl_group", "__clash"
    narrow = (
        frame.lazy()
        .select(*window.partition, window.order, compile_sql(window.argument).alias(value))
        .with_row_index(row)
    )
    if exact:
        ordered = narrow.sort(
            [*window.partition, window.order], nulls_last=True, maintain_order=True
        )
    else:  # eager: a lazy plan fuses the two sorts back into one over both columns
        ordered = (
            narrow.with_columns(partition_hash(window.partition).alias(group))
            .collect()
            .sort(window.order, nulls_last=True, maintain_order=True)
            .sort(group, maintain_order=True)
            .lazy()
        )
    same = pl.all_horizontal([pl.col(p).eq_missing(pl.col(p).shift(1)) for p in window.partition])
    steps = -window.offset
    same_steps = pl.all_horizontal(
        [pl.col(p).eq_missing(pl.col(p).shift(steps)) for p in window.partition]
    )
    shifted = ordered.select(
        row,
        pl.when(same_steps).then(pl.col(value).shift(steps)).alias(value),
        (
            pl.lit(False) if exact else ((pl.col(group) == pl.col(group).shift(1)) & ~same).any()
        ).alias(clash),
    ).collect()
    if shifted.height and shifted.item(0, clash):
        return shifted_in_partition(frame, window, exact=True)
    empty = pl.Series(value, [], dtype=shifted.schema[value])
    return empty.extend_constant(None, frame.height).scatter(
        shifted.get_column(row), shifted.get_column(value)
    )


@dataclass(frozen=True)
class CompiledEntry:
    """A rollup entry as a polars aggregate, and the row prefilter it allows (or None).

    `separate`: the entry runs in a pass of its own over the rows `prefilter` keeps (its
    aggregate then no longer filters), e.g. FIRST(reason) over escalation rows only.
    """

    expr: pl.Expr
    prefilter: pl.Expr | None
    needs_sorted_rows: bool
    separate: bool = False
    # a separate FIRST/LAST: its argument, and whether it takes the latest matching row
    argument: pl.Expr | None = None
    latest: bool = False


def compile_entry(
    sql: str, *, dependent_names: Collection[str], time_column: str | None
) -> CompiledEntry:
    """The fastest equivalent polars aggregate for one rollup entry."""
    found = compared_aggregate(sql)
    parts = found.aggregate if found is not None else None
    if (
        found is None
        or parts is None
        or parts.condition is None
        or parts.kind is AggregateKind.COUNT_DISTINCT
    ):
        return CompiledEntry(compile_sql(sql), None, uses_row_order(sql))
    prefilter = _prefilter(parts.condition, dependent_names)
    if parts.kind in _CASE_AGGREGATES:
        return CompiledEntry(compile_sql(parts.unfiltered() + found.comparison), prefilter, False)
    ordered = parts.kind is AggregateKind.FIRST_LAST
    if ordered and not found.comparison and time_column is not None and parts.argument:
        condition = compile_sql(parts.condition).fill_null(False)
        argument = compile_sql(parts.argument)
        matching = argument.filter(condition).sort_by(
            pl.col(time_column).filter(condition), maintain_order=True, nulls_last=True
        )
        expr = matching.first() if parts.function == "FIRST" else matching.last()
        if not dependent_names:
            # a pass of its own over the matching rows only (the engine's `_separate_pass`):
            # no per-group filter or sort, no global sort
            return CompiledEntry(
                expr,
                condition,
                False,
                separate=True,
                argument=argument,
                latest=parts.function == "LAST",
            )
        return CompiledEntry(expr, prefilter, False)
    return CompiledEntry(compile_sql(sql), prefilter, ordered)


def _prefilter(condition: str, dependent_names: Collection[str]) -> pl.Expr | None:
    """The conjuncts that read no earlier entry, AND-ed; None when there are none."""
    kept = []
    for term in conjuncts(condition):
        if not set(names(term)) & set(dependent_names):
            kept.append(compile_sql(term).fill_null(False))
    if not kept:
        return None
    combined = kept[0]
    for expr in kept[1:]:
        combined = combined & expr
    return combined
