"""What to read for a source (`SourceRequest`, its `ColumnRule`s, `OnBadRows`), what reading one
file gave (`FileReport`), and the log of file reads (`watch_file_reads`: every JSONL parse and
every row check while it is open; the tests count them with it — a cached file is neither
parsed nor checked again)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from kpictl.io.inputbytes import MAX_LINE_BYTES

OnBadRows = Literal["error", "skip"]


@dataclass(frozen=True)
class FileRead:
    """One step of reading a file: `parse` (a JSONL file's bytes into a frame) or `check`
    (a file's rows converted to the canonical schema and checked)."""

    path: Path
    step: Literal["parse", "check"]


_READ_WATCHERS: list[list[FileRead]] = []


@contextmanager
def watch_file_reads() -> Iterator[list[FileRead]]:
    """Every parse and check of a file while the block runs, in order (a list filled as they
    happen)."""
    reads: list[FileRead] = []
    _READ_WATCHERS.append(reads)
    try:
        yield reads
    finally:
        _READ_WATCHERS.remove(reads)


def record_read(path: Path, step: Literal["parse", "check"]) -> None:
    for reads in _READ_WATCHERS:
        reads.append(FileRead(path, step))


@dataclass(frozen=True)
class FileReport:
    """What was read from one input file."""

    source: str
    path: str
    format: str
    size_bytes: int
    rows: int
    skipped: int = 0
    skipped_reasons: tuple[str, ...] = ()
    # hive partition values (`key=value` folders under the source's root), as the rows get them
    partitions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ColumnRule:
    """How to make one column of a source: the io layer's view of a spec column mapping."""

    name: str
    source_field: str | None = None
    sql: str | None = None
    type: str | None = None
    unit: str | None = None
    default: object = None


@dataclass(frozen=True)
class SourceRequest:
    """What to read for one source: paths (files, globs, folders) and column rules."""

    name: str
    paths: tuple[str, ...]
    base_dir: Path = Path(".")
    columns: tuple[ColumnRule, ...] = ()
    format: str = "auto"
    # JSON fields the run can use, with the type each must parse as; None reads every field
    # (types inferred from every line). With fields, JSONL parses ~2.5x faster; any value that
    # does not fit its type sends the file down the inferring path, which locates the problem.
    fields: Mapping[str, pl.DataType] | None = None
    # where each JSONL file's canonical frame is kept between runs (None: no cache); see
    # `kpictl.io.cache`
    cache_dir: Path | None = None
    # `format: chat | otlp_json`: the reader's options (kpictl.io.formats.ChatOptions, OtlpOptions)
    options: Any = None
    # a source made by another source's format (e.g. tool_calls from a chat source): its name
    derived_from: str | None = None
    # a longer JSONL line is a bad row (`--max-line-bytes`)
    max_line_bytes: int = MAX_LINE_BYTES
    # columns the spec adds up (SUM/TOTAL/AVG): integer ones are checked for Int64 overflow
    # like the canonical counts (declared columns such as `units: {type: int}`)
    summed: tuple[str, ...] = ()
