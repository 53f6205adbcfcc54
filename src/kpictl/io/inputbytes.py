"""A log file's bytes, read within bounds: gzip expansion, line length and JSON nesting.

A log line is written by the public; one line must not be able to exhaust memory or the stack.
The limits and what each case gets are listed in the README ("Bad input").
"""

from __future__ import annotations

import gzip
import io
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from polars.datatypes import DataTypeClass

from kpictl.errors import InputDataError

if TYPE_CHECKING:
    import numpy as np

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
_SCAN_CHUNK = 64 << 20
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
    # a struct field's dtype may be a class (pl.Int64) rather than an instance: a class nests
    # nothing, so the isinstance checks below pass it by
    pending: list[tuple[pl.DataType | DataTypeClass, int]] = [(dtype, 0)]
    while pending:
        current, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(current, pl.Struct):
            pending.extend((f.dtype, depth + 1) for f in current.fields)
        elif isinstance(current, pl.List | pl.Array):
            pending.append((current.inner, depth + 1))
    return deepest


def repeated_key_lines(
    data: bytes, names: Iterable[str], slice_bytes: int = _SCAN_CHUNK
) -> list[int]:
    """Lines (numbered from 1, as `data.split(b"\n")`) where one of `names` is written as a
    key twice: the candidates for a duplicate JSON key, which polars reads first-wins.

    A byte scan, no JSON parsing (the fast read path's check; the caller confirms each
    candidate by parsing that line): a key is `"name"` followed by optional blanks and `:`.
    Every such key is found; text inside a string value can only add false candidates, and
    so can a name also used as a key in a nested object (the parse then finds no duplicate).
    Works on slices of `slice_bytes` (64 MB) cut at line ends: bounded scratch memory."""
    wanted = [name.encode() for name in dict.fromkeys(names) if name]
    found: list[int] = []
    line_base, start = 0, 0
    while wanted and start < len(data):
        end = min(len(data), start + slice_bytes)
        if end < len(data):
            cut = data.rfind(b"\n", start, end)
            end = cut + 1 if cut >= start else (data.find(b"\n", end) + 1 or len(data))
        found.extend(line_base + n for n in _repeated_in_block(data, start, end, wanted))
        line_base += data.count(b"\n", start, end)
        start = end
    return found


def _key_ends(data: bytes, start: int, end: int) -> np.ndarray:
    """Positions (from `start`) of the closing quote of every `"…"` followed by blanks and a
    colon in data[start:end], in order. Tight `":` pairs are found two bytes at a time."""
    import numpy as np  # imported by the scan, not the module: spec-only commands never load it

    block = np.frombuffer(data, np.uint8, count=end - start, offset=start)
    found = []
    for phase in (0, 1):
        pairs = np.frombuffer(data, "<u2", count=(end - start - phase) // 2, offset=start + phase)
        found.append(np.flatnonzero(pairs == _TIGHT) * 2 + phase)
        for blank in _SPACED:  # `"a" : 1`, `"a"\t:` — rare; walk over the blanks to a colon
            spaced = np.flatnonzero(pairs == blank) * 2 + phase
            if spaced.size:
                found.append(_followed_by_colon(block, spaced))
    return np.sort(np.concatenate(found), kind="stable")  # a merge of sorted runs


_TIGHT = int.from_bytes(b'":', "little")
_SPACED = [int.from_bytes(b'"' + blank, "little") for blank in (b" ", b"\t", b"\r")]
_BLANKS = b" \t\r"
_WINDOWS = 3  # names up to 23 bytes are compared 8 bytes at a time


def _followed_by_colon(block: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """The quotes that blanks and then a colon follow."""
    import numpy as np

    blanks = np.frombuffer(_BLANKS, np.uint8)
    origin, at = quotes, quotes + 1
    keys = []
    while at.size:
        inside = at < block.size
        origin, at = origin[inside], at[inside]
        byte = block[at]
        keys.append(origin[byte == ord(":")])
        blank = np.isin(byte, blanks)
        origin, at = origin[blank], at[blank] + 1
    return np.concatenate(keys) if keys else quotes[:0]


def _repeated_in_block(data: bytes, start: int, end: int, wanted: list[bytes]) -> list[int]:
    """`repeated_key_lines` in data[start:end], whole lines: line numbers from 1 in the slice."""
    if end - start < 8:  # too short for two keys
        return []
    import numpy as np

    ends = _key_ends(data, start, end)
    if ends.size < 2:
        return []
    block = np.frombuffer(data, np.uint8, count=end - start, offset=start)
    # the 24 bytes before each closing quote as three numbers (unaligned 8-byte windows): a
    # comparison per 8 bytes of a name; a key close to the slice's start is compared bytewise
    windows = np.ndarray((block.size - 7,), "<u8", buffer=data, offset=start, strides=(1,))
    near = ends < 8 * _WINDOWS
    tails = [windows[np.maximum(ends - 8 * k, 0)] for k in range(1, _WINDOWS + 1)]
    newlines = np.flatnonzero(block == ord("\n"))
    merged = np.argsort(np.concatenate([ends, newlines]), kind="stable")
    line = np.cumsum(merged >= ends.size)[merged < ends.size]  # newlines before each key
    lines: set[int] = set()
    for raw in wanted:
        key = b'"' + raw
        chosen = ~near
        for k, tail in enumerate(tails):
            if len(key) <= 8 * k:
                break
            chosen &= _matches(tail, key[max(len(key) - 8 * (k + 1), 0) : len(key) - 8 * k])
        pick = np.flatnonzero(chosen)
        if len(key) > 8 * _WINDOWS:  # a longer name: the rest, on the picked keys only
            pick = pick[[_is_key(block, int(ends[i]), raw) for i in pick]]
        early = [i for i in np.flatnonzero(near) if _is_key(block, int(ends[i]), raw)]
        if early:
            pick = np.sort(np.concatenate([pick, np.array(early, dtype=pick.dtype)]))
        at_line = line[pick]  # keys come in file order: one line's are adjacent
        twice = np.flatnonzero(at_line[1:] == at_line[:-1])
        lines.update((at_line[twice] + 1).tolist())
    return sorted(lines)


def _matches(window: np.ndarray, suffix: bytes) -> np.ndarray:
    """Whether each 8-byte little-endian `window` ends with `suffix` (at most 8 bytes)."""
    import numpy as np

    shift = 8 * (8 - len(suffix))
    mask = np.uint64(((1 << (8 * len(suffix))) - 1) << shift)
    return (window & mask) == np.uint64(int.from_bytes(suffix, "little") << shift)


def _is_key(block: np.ndarray, closing: int, raw: bytes) -> bool:
    opening = closing - len(raw) - 1
    return opening >= 0 and bytes(block[opening : closing + 1]) == b'"' + raw + b'"'
