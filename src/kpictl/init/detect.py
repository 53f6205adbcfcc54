"""What kind of logs a path holds, told from their content (not only the file name), and a
sample of them read with kpictl's own readers (`kpictl.io`).

Kinds: `events` (flat rows, JSONL or Parquet: one row per event, mapped with `columns:`),
`chat` (OpenAI-style transcripts: a record holding a list of `{"role", …}` messages) and
`otlp` (OpenTelemetry trace exports: `{"resourceSpans": …}`), README "Logs teams already have".
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from kpictl.errors import InputDataError, UsageError
from kpictl.io.files import JSONL_SUFFIXES, PARQUET_SUFFIXES, find_files
from kpictl.io.formats import (
    FORMAT_SUFFIXES,
    ChatOptions,
    OtlpOptions,
    read_format,
    read_records,
)
from kpictl.io.inputbytes import read_input_bytes, too_deep
from kpictl.sql.expr import first_line

KINDS = ("events", "chat", "otlp")
SAMPLE_ROWS = 20_000  # rows (events) or records (chat, otlp) read per path to propose a mapping
SAMPLE_FILES = 5  # files read per path
MESSAGE_FIELDS = ("messages", "traj", "trajectory", "conversation", "turns", "history", "dialog")


@dataclass(frozen=True)
class LogSample:
    """The first rows of the logs one path names, and what they are."""

    path: str  # as the user gave it
    kind: str  # events | chat | otlp
    files: tuple[Path, ...]
    frame: pl.DataFrame  # events: the raw rows; chat: the records; otlp: the spans as events
    tool_calls: pl.DataFrame = field(default_factory=pl.DataFrame)  # chat / otlp: read calls
    messages: str | None = None  # chat: the field holding the messages

    @property
    def parquet(self) -> bool:
        return all(f.name.lower().endswith(PARQUET_SUFFIXES) for f in self.files)


def log_files(pattern: str, base_dir: Path) -> list[Path]:
    """The log files a path, glob or folder names (JSONL, JSON, Parquet; `.gz` too)."""
    target = Path(pattern).expanduser()
    target = target if target.is_absolute() else base_dir / target
    if not any(ch in pattern for ch in "*?[") and not target.exists():
        raise InputDataError(f"{target}: no such file or folder")
    found: dict[Path, None] = {}
    for forced in ("auto", "chat"):  # JSONL and Parquet; then .json too (chat and OTLP files)
        try:
            files, _ignored = find_files(pattern, base_dir, forced)
        except InputDataError:
            continue
        for path, _root in files:
            found.setdefault(path, None)
    if not found:
        suffixes = sorted({*JSONL_SUFFIXES, *FORMAT_SUFFIXES, *PARQUET_SUFFIXES})
        raise InputDataError(f"{target}: no log files found; expected {', '.join(suffixes)}")
    return sorted(found)


def _first_record(path: Path) -> dict[str, Any] | None:
    """The first JSON record of a file (a JSONL line, an array's first element, the object)."""
    data = read_input_bytes(path)
    text = data.lstrip()
    if not text:
        return None
    candidates = [text] if text[:1] == b"[" else [text.split(b"\n", 1)[0], text]
    for chunk in candidates:
        if too_deep(chunk) is not None:
            raise InputDataError(f"{path}: JSON nested too deep to read")
        try:
            value = json.loads(chunk)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(value, list):
            value = next((v for v in value if isinstance(v, dict)), None)
        return value if isinstance(value, dict) else None
    raise InputDataError(f"{path}:1: malformed JSON; fix the file")


def messages_field(record: dict[str, Any]) -> str | None:
    """The field of a chat record that holds its messages: a list of objects with a role."""
    names = sorted(record, key=lambda k: (k not in MESSAGE_FIELDS, list(record).index(k)))
    for name in names:
        value = record[name]
        if (
            isinstance(value, list)
            and value
            and all(isinstance(m, dict) for m in value)
            and any("role" in m for m in value)
        ):
            return name
    return None


def detect_kind(path: Path) -> tuple[str, str | None]:
    """(kind, messages field) of one file, from its content."""
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        schema = pl.read_parquet_schema(path)
        for column, dtype in schema.items():
            inner = dtype.inner if isinstance(dtype, pl.List) else None
            if isinstance(inner, pl.Struct) and "role" in {f.name for f in inner.fields}:
                raise UsageError(
                    f"{path}: chat transcripts in Parquet (column {column!r} holds messages); "
                    "kpictl reads transcripts from JSON or JSONL files"
                )
        return "events", None
    record = _first_record(path)
    if record is None:
        return "events", None
    if "resourceSpans" in record:
        return "otlp", None
    field_name = messages_field(record)
    if field_name is not None:
        return "chat", field_name
    if not name.removesuffix(".gz").endswith((".jsonl", ".ndjson")):
        raise UsageError(
            f"{path}: flat JSON records; kpictl reads flat logs as JSONL (one object per line, "
            ".jsonl) or Parquet"
        )
    return "events", None


def _head_jsonl(path: Path, rows: int) -> pl.DataFrame:
    data = read_input_bytes(path)
    lines = [line for line in data.split(b"\n", rows + 1)[:rows] if line.strip()]
    if not lines:
        return pl.DataFrame()
    try:
        return pl.read_ndjson(io.BytesIO(b"\n".join(lines)), infer_schema_length=None)
    except Exception as exc:
        raise InputDataError(
            f"{path}: cannot read its first {len(lines):,} lines as JSONL: {first_line(exc)}"
        ) from exc


def sample_logs(pattern: str, base_dir: Path | None = None, kind: str | None = None) -> LogSample:
    """Read the first rows of the logs `pattern` names and say what they are (or read them as
    `kind` when given)."""
    base = base_dir or Path.cwd()
    files = log_files(pattern, base)
    detected, messages = detect_kind(files[0])
    if kind is not None and kind != detected:
        if kind == "chat":
            messages = messages_field(_first_record(files[0]) or {}) or "messages"
        detected = kind
    chosen = tuple(files[:SAMPLE_FILES])
    if detected == "events":
        parts = [
            pl.scan_parquet(f).head(SAMPLE_ROWS).collect()
            if f.name.lower().endswith(PARQUET_SUFFIXES)
            else _head_jsonl(f, SAMPLE_ROWS)
            for f in chosen
        ]
        parts = [p for p in parts if p.height]
        frame = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
        return LogSample(pattern, "events", tuple(files), frame)
    if detected == "chat":
        records = [read_records(f)[0] for f in chosen]
        frame = pl.concat([r for r in records if r.height], how="diagonal_relaxed")
        return LogSample(pattern, "chat", tuple(files), frame, messages=messages)
    reads = [read_format(f, "otlp_json", OtlpOptions()) for f in chosen]
    events = [r.events for r in reads if r.events.height]
    calls = [r.tool_calls for r in reads if r.tool_calls.height]
    return LogSample(
        pattern,
        "otlp",
        tuple(files),
        pl.concat(events, how="diagonal_relaxed") if events else pl.DataFrame(),
        pl.concat(calls, how="diagonal_relaxed") if calls else pl.DataFrame(),
    )


def chat_tool_calls(sample: LogSample, options: ChatOptions) -> pl.DataFrame:
    """The tool calls of a chat sample's first files, read as the spec will read them."""
    reads = [read_format(f, "chat", options) for f in sample.files[:SAMPLE_FILES]]
    calls = [r.tool_calls for r in reads if r.tool_calls.height]
    return pl.concat(calls, how="diagonal_relaxed") if calls else pl.DataFrame()


def sample_paths(patterns: Sequence[str], kind: str | None = None) -> list[LogSample]:
    """One sample per path given on the command line."""
    return [sample_logs(p, kind=kind) for p in patterns]
