"""The notes of a run: what loading found, a far-off time that became as-of, empty sources,
unpriced or untimed rows, KPIs with n = 0 — text under the KPI table, never a number."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import polars as pl

from kpictl.engine.interface import Window
from kpictl.engine.scans import shared_row
from kpictl.engine.window import (
    BUCKET,
    UNTIMED_AS_OF,
    literal_columns,
    names_in,
    source_row_count,
    untimed_rows,
    window_text,
)
from kpictl.io.read import Sources, locate_row
from kpictl.spec.model import KpiSpec, Spec
from kpictl.sql.expr import compile_sql

# a latest time this far past the rest (and past the span of the rest) is flagged
_OUTLIER_GAP = dt.timedelta(days=30)


def as_of_outlier_note(sources: Sources, window: Window) -> str | None:
    """A note when the default as-of comes from one time far beyond the rest (a year-9999
    typo): it would move what is settled, pending and trending for the whole evaluation."""
    if window.latest is None or window.latest == UNTIMED_AS_OF:
        return None
    latest = window.latest
    found: list[tuple[str, dt.datetime, dt.datetime | None, dt.datetime]] = []
    for name, loaded in sources.by_name.items():
        if loaded.remote is not None:  # only its span is known: see remote_notes
            continue
        if "ts" not in loaded.frame.collect_schema():
            continue
        ts = pl.col("ts")
        high, below, low = shared_row(
            loaded.frame,
            f"span below {latest.isoformat()}",
            ts.max().alias("high"),
            ts.filter(ts < latest).max().alias("below"),
            ts.min().alias("low"),
        )
        if high is not None:
            found.append((name, high, below, low))
    rest = [f[2] for f in found if f[2] is not None]
    if not rest:
        return None
    following, earliest = max(rest), min(f[3] for f in found)
    gap = latest - following
    if gap <= max(_OUTLIER_GAP, following - earliest):
        return None
    name = next(f[0] for f in found if f[1] == latest)
    row = (
        sources.by_name[name]
        .frame.select((pl.col("ts") == latest).arg_true().first())
        .collect()
        .item()
    )
    where = locate_row(sources.by_name[name], row)
    return (
        f"as-of is {latest.isoformat()}, the time at {where}: {gap.days} days after the "
        f"next-latest time ({following.isoformat()}); one far-off time moves the whole "
        "evaluation (what is settled, pending, trending) — check that row or pass --as-of"
    )


def input_notes(sources: Sources, window: Window) -> list[str]:
    """What loading found (a file named twice, repeated OTLP spans, …), once though derived
    sources share them, and a far-off time that became as-of: for every command's notes."""
    notes = list(dict.fromkeys(n for loaded in sources.by_name.values() for n in loaded.notes))
    if (outlier := as_of_outlier_note(sources, window)) is not None:
        notes.append(outlier)
    return notes + remote_notes(sources)


def remote_notes(sources: Sources) -> list[str]:
    """What kpictl did not check of a source it never read (read by the engine where it
    lives): the literals the spec compares its columns with, a far-off latest time; and how its
    rows with the same ts are ordered."""
    return [
        f"source {name!r} was read by the engine at {loaded.remote.location} "
        f"({loaded.remote.rows:,} rows; kpictl never opened it): the literals the spec compares "
        "its columns with were not checked against its values, nor a far-off latest time "
        f"flagged; rows with the same ts are ordered {loaded.remote.order}"
        for name, loaded in sources.by_name.items()
        if loaded.remote is not None
    ]


def empty_source_notes(sources: Sources) -> list[str]:
    """A note per source that holds no rows (an empty file, a day without tool calls): valid
    input, whose KPIs are n = 0 with a null value."""
    return [
        f"source {name!r} has no rows (in {', '.join(f.path for f in loaded.files)})"
        for name, loaded in sources.by_name.items()
        if loaded.unusable is None  # its own note says why (e.g. nothing attributed)
        and source_row_count(loaded) == 0
    ]


def units_in_window(
    spec: Spec, tables: Mapping[str, pl.LazyFrame], window: Window, where: str | None = None
) -> tuple[str, int] | None:
    """(the primary table, its rows in the window meeting `where`), or None when the run did
    not build it."""
    table = spec.primary_table
    if table is None or table.name not in tables:
        return None
    frame = tables[table.name]
    if table.time is not None:
        if window.since is not None:
            frame = frame.filter(pl.col(table.time) >= window.since)
        if window.until is not None:
            frame = frame.filter(pl.col(table.time) < window.until)
    if where and set(names_in([where])) <= set(spec.table_schema(table.name)):
        literals = literal_columns(spec, window, names_in([where]))
        frame = (frame.with_columns(literals) if literals else frame).filter(compile_sql(where))
    return table.name, frame.select(pl.len()).collect().item()


def zero_n_notes(
    spec: Spec,
    table: pl.DataFrame,
    tables: Mapping[str, pl.LazyFrame],
    window: Window,
    where: str | None,
) -> list[str]:
    """Why a KPI has no value: no units in the window at all (one note), else each KPI whose
    overall n is 0 (e.g. a tool-call KPI on a day without tool calls)."""
    units = units_in_window(spec, tables, window, where)
    if units is not None and units[1] == 0:
        text = window_text(window)
        place = f"in the window ({text})" if text else "in the data"
        if where and (units_in_window(spec, tables, window) or ("", 0))[1]:
            place += f" meet --where {where}"
        return [f"no {units[0]} {place}: every KPI is n = 0 with a null value"]
    # n = 0 with units pending is shown by the pending count itself: no note
    overall = table.filter(
        (pl.col("grouping").list.len() == 0)
        & pl.col("breakdown").is_null()
        & (pl.col("n") == 0)
        & (pl.col("pending") == 0)
    )
    notes = []
    for row in overall.iter_rows(named=True):
        kpi = spec.kpis[row["kpi"]]
        if BUCKET in row and row[BUCKET] is not None:
            continue
        over = kpi.over if kpi.kind != "formula" else "its inputs"
        # a KPI's own `where` may be what leaves nothing ("conversations has no rows" was
        # wrong for time_to_resolution_p50 when no conversation had a resolution)
        why = (
            f"no row of {over} in the window meets its where: {kpi.where}"
            if kpi.where
            else f"{over} has no rows to count in the window"
        )
        notes.append(f"{kpi.name}: n = 0 ({why}): the value is null")
    return notes


def data_notes(sources: Sources, kpis: Sequence[KpiSpec]) -> list[str]:
    """What the numbers cannot show: unpriced rows (cost null, never a silent zero) and rows
    without a time."""
    notes: list[str] = []
    for name, loaded in sources.by_name.items():
        schema = loaded.frame.collect_schema()
        if "cost_source" not in schema:
            continue
        unpriced = loaded.frame.filter(pl.col("cost_source") == "unpriced")
        model = pl.col("model").drop_nulls().unique().sort() if "model" in schema else None
        counts = (
            unpriced.select(
                pl.len().alias("rows"),
                (
                    pl.col("conversation_id").n_unique()
                    if "conversation_id" in schema
                    else pl.lit(0)
                ).alias("conversations"),
                *([model.implode().alias("models")] if model is not None else []),
            )
            .collect()
            .row(0, named=True)
        )
        if counts["rows"]:
            models = ", ".join(counts.get("models") or []) or "no model"
            notes.append(
                f"cost: {counts['rows']} {name} rows in {counts['conversations']} conversations "
                f"are unpriced (tokens but no cost and no price; models: {models}): their "
                "cost_usd is null, so cost totals leave them out — add the models to `pricing:`"
            )
    untimed = untimed_rows(sources)
    if untimed:
        notes.append(
            f"{untimed} rows have no timestamp (ts is null): time-based values from them "
            "(MIN(ts), durations, time buckets, windows) are null, not zero"
        )
    return notes
