"""A run's time: as-of (default: the latest timestamp in the data), the window it ends, the
rows of a source up to as-of, and the literal columns (`as_of`, `window_start`, `window_end`,
params) an expression reads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from kpictl.engine.interface import ComputeOptions, RelativeTime, TimeBound, Window
from kpictl.engine.scans import shared_row
from kpictl.errors import EmptyInputError, UsageError
from kpictl.io import schema as canonical
from kpictl.io.read import LoadedSource, Sources
from kpictl.spec.model import OUTCOME_SOURCE, Spec
from kpictl.sql.tree import names as sql_names

BUCKET = "bucket"

# as-of of data without any timestamp (chat transcripts may have none): a fixed instant, so
# output stays reproducible; renderers print it as null
UNTIMED_AS_OF = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def latest_timestamp(sources: Sources) -> dt.datetime:
    """The latest `ts` over every log source: the default as-of. Business events (a CRM export,
    often pulled later than the logs) do not move it; those after as-of are left out."""
    latest: list[dt.datetime] = []
    for name, loaded in sources.by_name.items():
        if name == OUTCOME_SOURCE:
            continue
        if loaded.remote is not None:  # as the engine read it
            if loaded.remote.latest is not None:
                latest.append(loaded.remote.latest)
        elif "ts" in loaded.frame.collect_schema():
            (value,) = shared_row(loaded.frame, "latest", pl.col("ts").max())
            if value is not None:
                latest.append(value)
    if not latest:
        rows = sum(source_row_count(s) for s in sources.by_name.values())
        if not rows or untimed_rows(sources):  # no rows at all, or chat transcripts without
            return UNTIMED_AS_OF  # times: no as-of to take from the data
        raise EmptyInputError("the inputs hold no timestamps: nothing to compute")
    return _utc(max(latest))


def untimed_rows(sources: Sources) -> int:
    """Rows without a time (allowed for chat transcripts): their time-based values are null."""
    total = 0
    for loaded in sources.by_name.values():
        if loaded.remote is not None:
            total += loaded.remote.untimed
        elif "ts" in loaded.frame.collect_schema():
            total += shared_row(loaded.frame, "untimed", pl.col("ts").null_count())[0]
    return total


def source_row_count(loaded: LoadedSource) -> int:
    """A source's rows (a remote one: as its engine counted them)."""
    if loaded.remote is not None:
        return loaded.remote.rows
    count: int = loaded.frame.select(pl.len()).collect().item()
    return count


def _bound(value: TimeBound | None, as_of: dt.datetime) -> dt.datetime | None:
    """A window end as a time: one counted back from as-of (`7d`) placed at as-of."""
    if value is None:
        return None
    return value.at(as_of) if isinstance(value, RelativeTime) else _utc(value)


def resolve_window(spec: Spec, sources: Sources, options: ComputeOptions) -> Window:
    """as_of (default: the latest timestamp in the data) and the window it ends."""
    latest = None if options.as_of else latest_timestamp(sources)
    as_of = _utc(options.as_of) if options.as_of else latest
    assert as_of is not None
    since = _bound(options.since, as_of)
    until = _bound(options.until, as_of)
    if since is None and until is None and spec.defaults.window is not None:
        since = as_of - spec.defaults.window
    if since is not None and until is not None and until <= since:
        raise UsageError(f"--until {until.isoformat()} is not after --since {since.isoformat()}")
    return Window(as_of=as_of, since=since, until=until, latest=latest)


def literal_columns(spec: Spec, window: Window, names: Sequence[str]) -> list[pl.Expr]:
    """Params and built-ins that `names` use, as literal columns."""
    values: dict[str, object] = {
        "as_of": window.as_of,
        "window_start": window.since,
        "window_end": window.until or window.as_of,
    }
    columns = []
    for name in dict.fromkeys(names):
        if name in canonical.BUILTIN_COLUMNS:
            columns.append(pl.lit(values[name], dtype=canonical.UTC_TIMESTAMP).alias(name))
        elif name in spec.params:
            columns.append(pl.lit(spec.params[name]).alias(name))
    return columns


def names_in(sqls: Sequence[str | None]) -> list[str]:
    names: list[str] = []
    for sql in sqls:
        if sql:
            names += sql_names(sql)
    return names


def source_rows(sources: Sources, name: str, window: Window) -> pl.LazyFrame:
    """A source's rows as every command reads them: those up to as-of, and the rows without a
    time (chat transcripts without timestamps, say), which are kept.
    When as-of is at or after the latest timestamp in the data no row is dropped, and the
    filter is left out: one that keeps every row still cost 10 % of a run at 10M events.
    Business events not given (`load_frames` without them) are no rows: the KPIs reading them
    are unavailable (`datacheck.check_data`), never 0."""
    if name == OUTCOME_SOURCE and name not in sources:
        return pl.DataFrame(schema=canonical.OUTCOME_COLUMNS).lazy()
    frame = sources[name]
    if window.latest is not None and window.as_of >= window.latest and name != OUTCOME_SOURCE:
        return frame
    if "ts" in frame.collect_schema():
        frame = frame.filter((pl.col("ts") <= window.as_of) | pl.col("ts").is_null())
    return frame


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def window_text(window: Window) -> str | None:
    """The window in words for a note: `start – end` (open ends named); None when the
    data has no time to place a window in (no rows, or none with a timestamp)."""
    if window.as_of == UNTIMED_AS_OF:  # windows counted back from it are not dates
        return None
    start = _iso(window.since) if window.since else "start"
    end = _iso(window.until) if window.until else f"as-of {_iso(window.as_of)}"
    return f"{start} – {end}"
