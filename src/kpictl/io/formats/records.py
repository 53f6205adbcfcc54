"""What every input format shares: JSON records read with their locations (a JSON array, one
JSON object, or JSONL), struct fields by dotted path, the frames a reader gives (`FormatFrames`)
and the registry's entry for a format (`InputFormat`)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from kpictl.errors import InputDataError
from kpictl.io.inputbytes import (
    MAX_JSON_DEPTH,
    MAX_LINE_BYTES,
    long_lines,
    read_input_bytes,
    too_deep,
)
from kpictl.sql.expr import first_line

LOCATION = "__kpictl_location"
# the files a JSON-based format reads
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")


@dataclass(frozen=True)
class FormatFrames:
    """What one file of a format gives: events and tool calls (raw values, canonical names).

    `traces` (OTLP only): the conversation ids its spans carry, per trace — one row per
    (trace_id, conversation id) with the first span's location, root spans first — so a source
    of several files can give every span of a trace its conversation (`link_conversations`)."""

    events: pl.DataFrame
    tool_calls: pl.DataFrame
    records: int
    traces: pl.DataFrame = field(default_factory=pl.DataFrame)


def _is_jsonl(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").endswith((".jsonl", ".ndjson"))


def read_records(
    path: Path, max_line_bytes: int = MAX_LINE_BYTES
) -> tuple[pl.DataFrame, pl.Series]:
    """One row per JSON record of a file, and each record's location (`file:line` for JSONL,
    `file (record N)` for a JSON array). Malformed JSON is reported with its line, and so is
    a JSONL line longer than `max_line_bytes`."""
    data = read_input_bytes(path)
    if not data.strip():
        return pl.DataFrame(), pl.Series(LOCATION, [], dtype=pl.String)
    if _is_jsonl(path):
        long = long_lines(data, max_line_bytes)
        if long:
            raise InputDataError(
                f"{path}:{long[0].number}: a line of {long[0].size:,} bytes, longer than "
                f"--max-line-bytes ({max_line_bytes:,}); raise --max-line-bytes"
            )
        try:
            frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
        except Exception as exc:
            raise _json_error(path, data, exc, jsonl=True) from exc
        lines = [i + 1 for i, line in enumerate(data.split(b"\n")) if line.strip()]
        where = [f"{path}:{n}" for n in lines[: frame.height]]
        return frame, pl.Series(LOCATION, where, dtype=pl.String)
    try:
        first = data.lstrip()[:1]
        frame = pl.read_json(io.BytesIO(data), infer_schema_length=None)
    except Exception as exc:
        raise _json_error(path, data, exc, jsonl=False) from exc
    if first == b"{":  # one object: one record
        return frame, pl.Series(LOCATION, [str(path)], dtype=pl.String)
    where = [f"{path} (record {i + 1})" for i in range(frame.height)]
    return frame, pl.Series(LOCATION, where, dtype=pl.String)


def _json_error(path: Path, data: bytes, exc: Exception, *, jsonl: bool) -> InputDataError:
    """The first malformed place of a file (error path only: Python's json finds the line)."""
    chunks = data.split(b"\n") if jsonl else [data]
    for number, chunk in enumerate(chunks, start=1):
        if not chunk.strip():
            continue
        depth = too_deep(chunk)
        if depth is not None:  # json.loads would recurse that deep (a RecursionError)
            where = f"{path}:{number}" if jsonl else str(path)
            return InputDataError(
                f"{where}: JSON nested {depth:,} levels deep, more than {MAX_JSON_DEPTH}; "
                "fix the file"
            )
        try:
            value = json.loads(chunk)
        except (json.JSONDecodeError, UnicodeDecodeError) as bad:
            line = number if jsonl else getattr(bad, "lineno", 1)
            reason = bad.msg if isinstance(bad, json.JSONDecodeError) else str(bad)
            return InputDataError(f"{path}:{line}: malformed JSON ({reason}); fix the file")
        if jsonl and not isinstance(value, dict):
            return InputDataError(
                f"{path}:{number}: expected one JSON object per line, got {type(value).__name__}"
            )
        if not jsonl and not isinstance(value, dict | list):
            return InputDataError(
                f"{path}: expected a JSON array of records, got {type(value).__name__}"
            )
    return InputDataError(
        f"{path}: cannot read: {first_line(exc)} (a field holds values of incompatible kinds, "
        "e.g. text in one record and a list in another)"
    )


def struct_field(expr: pl.Expr, dtype: Any, path: str) -> tuple[pl.Expr, Any]:
    """A (dotted) field of a struct expression; (null, Null) when the struct lacks it."""
    for part in path.split("."):
        fields = {f.name: f.dtype for f in dtype.fields} if isinstance(dtype, pl.Struct) else {}
        if part not in fields:
            return pl.lit(None), pl.Null()
        expr, dtype = expr.struct.field(part), fields[part]
    return expr, dtype


def first_null(frame: pl.DataFrame, column: str) -> str | None:
    """The location of the first row where `column` is null, or None."""
    bad = frame.filter(pl.col(column).is_null())
    return None if bad.height == 0 else str(bad.get_column(LOCATION)[0])


@dataclass(frozen=True)
class InputFormat:
    """One input format of the registry (`kpictl.io.formats.FORMATS`): its name (`format:` in a
    spec), the file suffixes it reads, its options (a frozen dataclass whose defaults read the
    common layout) and their keys in a spec, and its reader (one file, its options and the
    longest JSONL line allowed → `FormatFrames`)."""

    name: str
    suffixes: tuple[str, ...]
    options: type
    option_keys: tuple[str, ...]
    read: Callable[[Path, Any, int], FormatFrames]
