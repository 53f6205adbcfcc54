"""Logs teams already have → frames in kpictl's column names: one module per input format and
the registry that names them (`FORMATS`).

Each reader turns one file into two frames, `events` and `tool_calls`, with canonical column
names (values still raw: the io layer types them like any other source) plus a location column,
`LOCATION`, that says where each row came from (`file:line messages[3]`), so a bad value is
reported at its place. Everything is parsed and reshaped by polars (explode / unnest / joins);
Python only loops over files, option names and attribute aliases.

A new format is one module here (its options, its reader, its `InputFormat`) and one entry in
`FORMATS`; columns it makes beyond the canonical ones go in `FORMAT_COLUMNS`, and options it
takes are read from the spec by `spec/sources.py` (docs/architecture.md, "Where a new thing goes").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from kpictl.errors import UsageError, did_you_mean
from kpictl.io.formats.chat import CHAT, CHAT_OPTION_KEYS, ChatOptions, read_chat
from kpictl.io.formats.otlp import (
    OTLP_JSON,
    OTLP_OPTION_KEYS,
    OtlpOptions,
    link_conversations,
    read_otlp,
    trace_conversations,
)
from kpictl.io.formats.records import LOCATION, FormatFrames, InputFormat, read_records
from kpictl.io.inputbytes import MAX_LINE_BYTES

# the registry: `format:` name → the format
FORMATS: dict[str, InputFormat] = {f.name: f for f in (CHAT, OTLP_JSON)}
FORMAT_NAMES = tuple(FORMATS)
FORMAT_SUFFIXES = tuple(dict.fromkeys(s for f in FORMATS.values() for s in f.suffixes))

# Extra columns the readers make, known to the spec before any data is read (by table).
FORMAT_COLUMNS: dict[str, dict[str, pl.DataType]] = {
    "events": {
        "turn": pl.Int64(),
        "tool": pl.String(),
        "tool_call_id": pl.String(),
        "trace_id": pl.String(),
        "span_id": pl.String(),
        "parent_span_id": pl.String(),
        "provider": pl.String(),
        "agent_name": pl.String(),
        "operation": pl.String(),
        "reasoning_tokens": pl.Int64(),
    },
    "tool_calls": {
        "turn": pl.Int64(),
        "tool_call_id": pl.String(),
        "arguments": pl.String(),
        "result": pl.String(),
        "trace_id": pl.String(),
        "span_id": pl.String(),
        "parent_span_id": pl.String(),
        "provider": pl.String(),
        "agent_name": pl.String(),
    },
}


def read_format(
    path: Path, fmt: str, options: Any, max_line_bytes: int = MAX_LINE_BYTES
) -> FormatFrames:
    """Read one file of the format named `fmt` (its default options unless `options` are that
    format's); a longer JSONL line is an error. A name not in `FORMATS` is a `UsageError`."""
    found = FORMATS.get(fmt)
    if found is None:
        raise UsageError(
            f"{path}: no log format named {fmt!r}{did_you_mean(fmt, FORMAT_NAMES)}; the formats "
            f"are {', '.join(FORMAT_NAMES)}"
        )
    return found.read(
        path, options if isinstance(options, found.options) else found.options(), max_line_bytes
    )


__all__ = [
    "CHAT_OPTION_KEYS",
    "FORMATS",
    "FORMAT_COLUMNS",
    "FORMAT_NAMES",
    "FORMAT_SUFFIXES",
    "LOCATION",
    "OTLP_OPTION_KEYS",
    "ChatOptions",
    "FormatFrames",
    "InputFormat",
    "OtlpOptions",
    "link_conversations",
    "read_chat",
    "read_format",
    "read_otlp",
    "read_records",
    "trace_conversations",
]
