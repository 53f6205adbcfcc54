"""The data checks' passes over the sources: null counts and literal matches in one pass per
source, shared across a run inside `shared_scans` (the report)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from kpictl.engine.findings import LiteralUse
from kpictl.io.read import Sources


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


def scan_sources(
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


def column_empty(
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
