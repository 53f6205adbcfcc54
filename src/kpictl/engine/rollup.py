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
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

import polars as pl

from kpictl.sql.expr import compile_sql, referenced_names

_HEAD = re.compile(r"^\s*([A-Za-z_]+)\s*\(", re.DOTALL)
_FILTER = re.compile(r"^\s*FILTER\s*\(", re.IGNORECASE)
_WHERE = re.compile(r"^\s*WHERE\s+(.*)$", re.IGNORECASE | re.DOTALL)
_TAIL = re.compile(r"^(>=|<=|<>|!=|>|<|=)\s*(-?[0-9.]+|'[^']*'|TRUE|FALSE)$", re.IGNORECASE)
_CASE_AGGREGATES = ("MIN", "MAX", "SUM", "TOTAL", "AVG", "COUNT")
_ORDERED = ("FIRST", "LAST")


@dataclass(frozen=True)
class FilteredAggregate:
    """`FN(arg) FILTER (WHERE cond) tail`, split into its parts."""

    function: str
    argument: str
    condition: str
    tail: str


@dataclass(frozen=True)
class ShiftWindow:
    """`LEAD(argument, offset) OVER (PARTITION BY partition ORDER BY order)`; LAG has a
    negative offset. The value of the row `offset` places later in its partition, in `order`
    (nulls last, ties in row order), or null past the partition's end."""

    argument: str
    offset: int
    partition: tuple[str, ...]
    order: str


_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_SHIFT_WINDOW = re.compile(
    rf"^\s*(LEAD|LAG)\s*\((.+?)(?:,\s*([0-9]+)\s*)?\)\s*OVER\s*\(\s*PARTITION\s+BY\s+"
    rf"({_IDENTIFIER}(?:\s*,\s*{_IDENTIFIER})*)\s+ORDER\s+BY\s+({_IDENTIFIER})(?:\s+ASC)?"
    rf"(?:\s+NULLS\s+LAST)?\s*\)\s*$",
    re.IGNORECASE | re.DOTALL,
)


def split_shift_window(sql: str) -> ShiftWindow | None:
    """The parts of `LEAD|LAG(arg[, n]) OVER (PARTITION BY cols ORDER BY col [ASC])`; None for
    any other expression (a default value, DESC, NULLS FIRST, several ORDER BY columns…)."""
    found = _SHIFT_WINDOW.match(sql)
    if not found:
        return None
    function, argument, offset, partition, order = found.groups()
    if _closing("(" + argument + ")", 0) != len(argument) + 1 or _has_top_level_comma(argument):
        return None  # cut at a parenthesis of its own, or a third argument (a default)
    steps = int(offset) if offset is not None else 1
    return ShiftWindow(
        argument.strip(),
        steps if function.upper() == "LEAD" else -steps,
        tuple(p.strip() for p in partition.split(",")),
        order,
    )


def _unquoted(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, parenthesis depth after it) of each character from `start` that
    stands outside quoted text (quotes themselves left out)."""
    depth, quote = 0, None
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            quote = None if char == quote else quote
            continue
        if char in "'\"":
            quote = char
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        yield index, char, depth


def _top_level(text: str) -> list[bool]:
    """For each character of `text`, whether it stands outside quotes and parentheses."""
    flags = [False] * len(text)
    for index, char, depth in _unquoted(text):
        flags[index] = depth == 0 and char not in "()"
    return flags


def _has_top_level_comma(text: str) -> bool:
    return any(top and char == "," for char, top in zip(text, _top_level(text), strict=True))


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


def _closing(text: str, start: int) -> int:
    """Index of the parenthesis closing the one at `start`, skipping quoted text."""
    for index, char, depth in _unquoted(text, start):
        if char == ")" and depth == 0:
            return index
    return -1


def split_filtered_aggregate(sql: str) -> FilteredAggregate | None:
    """Parse `FN(arg) FILTER (WHERE cond) [op literal]`; None for any other shape."""
    head = _HEAD.match(sql)
    if not head:
        return None
    open_at = head.end() - 1
    close_at = _closing(sql, open_at)
    if close_at < 0:
        return None
    rest = sql[close_at + 1 :]
    found = _FILTER.match(rest)
    if not found:
        return None
    filter_open = close_at + found.end()
    filter_close = _closing(sql, filter_open)
    if filter_close < 0:
        return None
    where = _WHERE.match(sql[filter_open + 1 : filter_close])
    tail = sql[filter_close + 1 :].strip()
    if not where or (tail and not _TAIL.match(tail)):
        return None
    return FilteredAggregate(
        head.group(1).upper(), sql[open_at + 1 : close_at].strip(), where.group(1).strip(), tail
    )


def conjuncts(condition: str) -> list[str]:
    """Top-level `AND` terms of a condition (the whole condition when it has no top-level AND,
    or uses BETWEEN, whose AND is not a conjunction)."""
    if re.search(r"\bBETWEEN\b", condition, re.IGNORECASE):
        return [condition]
    terms: list[str] = []
    top = _top_level(condition)
    start, index = 0, 0
    while index < len(condition):
        if top[index] and condition[index : index + 5].upper() == " AND ":
            terms.append(condition[start:index].strip())
            start = index + 5
            index += 4
        index += 1
    terms.append(condition[start:].strip())
    return [t for t in terms if t]


def compile_entry(
    sql: str, *, dependent_names: Collection[str], time_column: str | None
) -> CompiledEntry:
    """The fastest equivalent polars aggregate for one rollup entry."""
    parts = split_filtered_aggregate(sql)
    if parts is None or parts.argument.upper().startswith("DISTINCT"):
        uses_order = bool(re.search(r"\b(FIRST|LAST)\s*\(", sql, re.IGNORECASE))
        return CompiledEntry(compile_sql(sql), None, uses_order)
    prefilter = _prefilter(parts.condition, dependent_names)
    if parts.function in _CASE_AGGREGATES:
        value = "1" if parts.argument == "*" else parts.argument
        if parts.argument == "*" and parts.function != "COUNT":
            return CompiledEntry(compile_sql(sql), prefilter, False)
        rewritten = f"{parts.function}(CASE WHEN ({parts.condition}) THEN ({value}) END)"
        if parts.tail:
            rewritten += f" {parts.tail}"
        return CompiledEntry(compile_sql(rewritten), prefilter, False)
    if parts.function in _ORDERED and not parts.tail and time_column is not None:
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
    return CompiledEntry(compile_sql(sql), prefilter, parts.function in _ORDERED)


def _prefilter(condition: str, dependent_names: Collection[str]) -> pl.Expr | None:
    """The conjuncts that read no earlier entry, AND-ed; None when there are none."""
    kept = []
    for term in conjuncts(condition):
        expr = compile_sql(term)
        if not set(referenced_names(expr)) & set(dependent_names):
            kept.append(expr.fill_null(False))
    if not kept:
        return None
    combined = kept[0]
    for expr in kept[1:]:
        combined = combined & expr
    return combined
