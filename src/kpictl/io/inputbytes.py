"""A log file's bytes, read within bounds: gzip expansion, line length and JSON nesting.

A log line is written by the public; one line must not be able to exhaust memory or the stack.
The limits and what each case gets are listed in the README ("Bad input").
"""

from __future__ import annotations

import gzip
import io
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from kpictl.errors import InputDataError

MAX_LINE_BYTES = 64 << 20
"""The longest JSONL line read (`--max-line-bytes`): a longer one is a bad row."""

MAX_GZIP_RATIO = 200
"""How many times its size a gzip file may expand to once it is past GZIP_FREE_BYTES. JSONL
logs compress 5 to 30 times; a gzip bomb expands about 1,000 times."""

GZIP_FREE_BYTES = 64 << 20
"""Expanded gzip data up to this size is never refused, whatever the ratio."""

MAX_JSON_DEPTH = 64
"""The deepest nesting of JSON objects and arrays in one line: a deeper line is a bad row."""

_CHUNK = 16 << 20
_BOM = b"\xef\xbb\xbf"


def read_input_bytes(path: Path) -> bytes:
    """The bytes of a log file, gunzipped when its name ends in .gz, without a UTF-8 BOM.

    Raises InputDataError when the file cannot be read or when its gzip data expands past
    MAX_GZIP_RATIO times the file's size (and past GZIP_FREE_BYTES).
    """
    try:
        raw = path.read_bytes()
        if not path.name.lower().endswith(".gz"):
            return raw.removeprefix(_BOM)
        limit = max(GZIP_FREE_BYTES, MAX_GZIP_RATIO * len(raw))
        parts: list[bytes] = []
        total = 0
        # BytesIO shares the bytes (no copy); reading in chunks stops a bomb at the limit
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as unzipped:
            while chunk := unzipped.read(min(_CHUNK, limit + 1 - total)):
                parts.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise InputDataError(
                        f"{path}: refused: this gzip file expands to more than {limit:,} bytes, "
                        f"over {MAX_GZIP_RATIO} times its {len(raw):,} bytes (a gzip bomb?); "
                        "gunzip it yourself if it is genuine"
                    )
        return b"".join(parts).removeprefix(_BOM)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise InputDataError(f"{path}: cannot read: {exc}") from exc


@dataclass(frozen=True)
class LongLine:
    """A line longer than the limit: its 1-based number and its byte span (without the \\n)."""

    number: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def long_lines(data: bytes, limit: int) -> list[LongLine]:
    """The lines of `data` longer than `limit` bytes.

    Costs nothing measurable on ordinary data: a line longer than `limit` must cover a whole
    aligned block of limit/2 bytes, so only blocks are searched for a newline (one `find` each,
    which stops at the first newline) and only a block without one is looked at closely.
    """
    if len(data) <= limit:
        return []
    block = max(1, limit // 2)
    found: list[LongLine] = []
    position = 0
    while position + block <= len(data):
        if data.find(b"\n", position, position + block) >= 0:
            position += block
            continue
        start = data.rfind(b"\n", 0, position) + 1
        end = data.find(b"\n", position + block)
        end = len(data) if end < 0 else end
        if end - start > limit:
            found.append(LongLine(data.count(b"\n", 0, start) + 1, start, end))
        position = end + 1
    return found


def blank_lines(data: bytes, lines: list[LongLine]) -> bytes:
    """`data` with those lines emptied (line numbers of the others stay the same)."""
    parts: list[bytes] = []
    at = 0
    for line in lines:
        parts.append(data[at : line.start])
        at = line.end
    parts.append(data[at:])
    return b"".join(parts)


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def too_deep(line: bytes) -> int | None:
    """How deeply a line's JSON objects and arrays nest when that is past MAX_JSON_DEPTH,
    else None. Counts brackets outside strings, without recursion: any depth is measured."""
    if line.count(b"[") + line.count(b"{") <= MAX_JSON_DEPTH:  # cannot nest deeper
        return None
    brackets = _JSON_STRING.sub(b"", line).translate(None, _NOT_BRACKETS)
    depth = max(itertools.accumulate(_STEP[b] for b in brackets), default=0)
    return depth if depth > MAX_JSON_DEPTH else None


def dtype_depth(dtype: pl.DataType) -> int:
    """How deeply a polars type nests structs and lists (a scalar is 0)."""
    deepest = 0
    pending: list[tuple[pl.DataType, int]] = [(dtype, 0)]
    while pending:
        current, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(current, pl.Struct):
            pending.extend((f.dtype, depth + 1) for f in current.fields)
        elif isinstance(current, pl.List | pl.Array):
            pending.append((current.inner, depth + 1))
    return deepest
