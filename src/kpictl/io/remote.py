"""A remote source: one kpictl never lists or opens (a catalog table, or a path with a scheme
such as `s3a://`), read by the Spark engine where it lives (docs/architecture.md, "Engines").

kpictl holds, instead of its rows, what the engine told it about them (`RemoteRows`: the
columns as kpictl's reader would make them, the row count, each column's nulls, the time
span) and a frame with those columns that refuses to be read: a step of a run that would need
the rows themselves is an error naming the source, never a number over rows kpictl does not
have.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from kpictl.errors import UsageError


@dataclass(frozen=True)
class RemoteRows:
    """What an engine read of a remote source: `location` (`s3a://bucket/events/` or `table
    lake.events`), `rows`, per column its `nulls`, the latest and earliest `ts` and the rows
    without one, and `plan`, the engine's own read of it (kpictl.engine.sqlsource.DirectRead)."""

    location: str
    rows: int
    nulls: Mapping[str, int] = field(default_factory=dict)
    latest: dt.datetime | None = None
    earliest: dt.datetime | None = None
    untimed: int = 0
    plan: Any = None
    # how rows with the same ts are ordered (the total order of FIRST/LAST and windows)
    order: str = ""


class RemoteRowsError(UsageError):
    """A step needs the rows of a source kpictl does not read (they stay where they live)."""


def remote_frame(name: str, location: str, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """A frame with a remote source's columns whose rows cannot be read: collecting it raises
    RemoteRowsError naming the source (its schema is known without reading it)."""

    def refuse(_: pl.DataFrame) -> pl.DataFrame:
        raise RemoteRowsError(
            f"source {name!r} stays at {location} (read by the Spark engine only): kpictl "
            "cannot read its rows for this step; run it over local files"
        )

    typed = pl.Schema(schema)
    return pl.LazyFrame(schema=typed).map_batches(
        refuse, schema=typed, validate_output_schema=False
    )
