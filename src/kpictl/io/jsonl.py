"""JSONL parsed once, with located errors: a fast typed read, else an inferring one; a line that
is not one JSON object, holds NaN, a number beyond a float, a key twice, an object where text
is expected, or kinds of value that cannot share a column is named by its line (an error, or
a skipped row with --on-bad-rows skip)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from polars.datatypes import DataTypeClass

from kpictl.errors import InputDataError
from kpictl.io.columns import describe_dtype
from kpictl.io.inputbytes import (
    MAX_JSON_DEPTH,
    MAX_LINE_BYTES,
    blank_lines,
    dtype_depth,
    long_lines,
    read_input_bytes,
    repeated_key_lines,
    too_deep,
)
from kpictl.io.request import OnBadRows, record_read
from kpictl.sql.expr import first_line


def line_numbers(data: bytes) -> list[int]:
    """1-based line numbers of the non-blank lines (error path only)."""
    return [i + 1 for i, line in enumerate(data.split(b"\n")) if line.strip()]


def _reject_constant(name: str) -> object:
    """NaN and Infinity are not JSON (Python's json module accepts them, polars does not)."""
    raise json.JSONDecodeError(f"{name} is not a JSON value; write null", name, 0)


def _finite_float(text: str) -> float:
    """A JSON number too large for a float (1e400) is an error, not Infinity."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise json.JSONDecodeError(f"number {text} is out of range", text, 0)
    return value


class _DuplicateKeyError(ValueError):
    pass


_DUPLICATE = "duplicate key"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: with a key twice, which value is meant cannot
    be known (polars keeps the first, Python's json the last)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise _DuplicateKeyError(
                    f"{_DUPLICATE} {key!r} in one object ({_short(seen[key])}, then "
                    f"{_short(value)}): which one is meant cannot be known"
                )
            seen[key] = value
    return result


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(value: object) -> str | None:
    """What kind of JSON value this is, as a message says it (None for null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "an object" if isinstance(value, dict) else "a list"


def _conflicts(first: str, later: str) -> bool:
    """Whether two kinds of value cannot share one column (polars reads text with numbers or
    booleans as text; every other mix fails, or turns objects into text)."""
    if first == later:
        return False
    return not (
        {first, later} <= {"text", "a number", "a boolean"}
        and {first, later} != {"a number", "a boolean"}
    )


def _bad_json_lines(
    data: bytes | Mapping[int, bytes],
    expected: Mapping[str, pl.DataType] | None = None,
) -> dict[int, str]:
    """Lines that are not one JSON object each, or whose values cannot be read as their
    column: {line number: reason}. The located re-parse (Python's json; error path only):
    malformed JSON, NaN / Infinity, numbers beyond a float, duplicate keys, an object or a
    list where `expected` wants a scalar, and a field holding kinds of value that cannot share
    a column (the line that differs from the field's first kind). `data`: a file's bytes,
    or some of its lines by number."""
    expected = expected or {}
    bad: dict[int, str] = {}
    first_kind: dict[str, tuple[str, int]] = {}
    numbered = data.items() if isinstance(data, Mapping) else enumerate(data.split(b"\n"), start=1)
    for number, line in numbered:
        if not line.strip():
            continue
        depth = too_deep(line)
        if depth is not None:  # json.loads would recurse that deep (a RecursionError)
            bad[number] = f"JSON nested {depth:,} levels deep, more than {MAX_JSON_DEPTH}"
            continue
        try:
            value = json.loads(
                line,
                parse_constant=_reject_constant,
                parse_float=_finite_float,
                object_pairs_hook=_unique_keys,
            )
        except _DuplicateKeyError as exc:
            bad[number] = str(exc)
            continue
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            bad[number] = f"malformed JSON ({exc.msg if hasattr(exc, 'msg') else exc})"
            continue
        if not isinstance(value, dict):
            bad[number] = f"expected a JSON object, got {type(value).__name__}"
            continue
        for key, item in value.items():
            kind = _kind(item)
            if kind is None:
                continue
            want = expected.get(key)
            if want is not None and (
                (kind in ("an object", "a list") and not isinstance(want, pl.Struct | pl.List))
                or (kind == "a boolean" and want.is_numeric())
            ):
                bad[number] = (
                    f"field {key!r}: expected {describe_dtype(want)}, got {kind} ({_short(item)})"
                )
                break
            seen, at = first_kind.setdefault(key, (kind, number))
            if _conflicts(seen, kind):
                bad[number] = (
                    f"field {key!r}: {kind} ({_short(item)}) where line {at} has "
                    f"{seen}: one field holds one kind of value"
                )
                break
    return bad


def _duplicate_keys(
    frame: pl.DataFrame, data: bytes, expected: Mapping[str, pl.DataType] | None
) -> dict[int, str]:
    """Lines where a key the frame reads (a column, or a field of a struct column) appears
    twice in one object: {line: reason}. polars keeps the first value without a word; a byte
    scan finds the candidate lines and only those are parsed again to confirm."""
    names = [name for column, dtype in frame.schema.items() for name in _key_names(column, dtype)]
    wanted = set(repeated_key_lines(data, names))
    if not wanted:
        return {}
    numbered = enumerate(data.split(b"\n"), start=1)
    found = _bad_json_lines({n: line for n, line in numbered if n in wanted}, expected)
    # only the duplicates: the fast read accepted everything else in these lines
    return {number: reason for number, reason in found.items() if reason.startswith(_DUPLICATE)}


def _key_names(name: str, dtype: pl.DataType | DataTypeClass) -> list[str]:
    """A column's JSON key and, for a struct (also inside lists), its fields' keys."""
    while isinstance(dtype, pl.List | pl.Array):
        dtype = dtype.inner
    names = [name]
    if isinstance(dtype, pl.Struct):
        for field in dtype.fields:
            names.extend(_key_names(field.name, field.dtype))
    return names


def _objects_as_text(frame: pl.DataFrame, data: bytes) -> dict[int, str]:
    """Objects and lists polars turned into text (it does so in a text column, or a column
    with text in other lines): {line: reason}. Cheap: a prefix test per text column; only
    the rows that look like JSON are parsed again, to tell an object from text such as
    "[internal] …"."""
    text_columns = [c for c, dtype in frame.schema.items() if isinstance(dtype, pl.String)]
    if not text_columns or frame.height == 0:
        return {}
    looks = pl.any_horizontal(  # polars writes them with no leading space
        pl.col(c).str.starts_with("{") | pl.col(c).str.starts_with("[") for c in text_columns
    )
    rows = set(frame.select(pl.arg_where(looks.fill_null(False))).to_series().to_list())
    if not rows:
        return {}
    # a field that holds JSON written as text ("{\"a\": 1}") looks the same once parsed: the
    # raw line tells them apart cheaply (`"name": {` or `[`), so only those lines are parsed
    raw_object = re.compile(
        rb'"(?:' + b"|".join(re.escape(c.encode()) for c in text_columns) + rb')"\s*:\s*[\[{]'
    )
    candidates: dict[int, bytes] = {}
    row = 0
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        if row in rows and raw_object.search(line):
            candidates[number] = line
        row += 1
    return _bad_json_lines(candidates, {c: pl.String() for c in text_columns})


def _without_long_lines(
    path: Path, data: bytes, on_bad_rows: OnBadRows, max_line_bytes: int
) -> tuple[bytes, dict[int, str]]:
    """`data` with lines over `max_line_bytes` emptied, and those lines as bad rows; with
    --on-bad-rows error, the first one is an InputDataError."""
    long = long_lines(data, max_line_bytes)
    if not long:
        return data, {}
    bad = {
        line.number: f"a line of {line.size:,} bytes, longer than --max-line-bytes "
        f"({max_line_bytes:,})"
        for line in long
    }
    if on_bad_rows == "error":
        number, reason = next(iter(bad.items()))
        more = f" ({len(bad) - 1} more such lines)" if len(bad) > 1 else ""
        raise InputDataError(
            f"{path}:{number}: {reason}{more}; raise --max-line-bytes or pass --on-bad-rows skip"
        )
    return blank_lines(data, long), bad


def is_blank(data: bytes) -> bool:
    """Whether `data` holds only ASCII whitespace, as `not data.strip()` but without copying a
    file's bytes (it stops at the first other byte: 0.33 s less per call on a 440 MB file)."""
    return not data or data.isspace()


def read_jsonl(
    path: Path,
    on_bad_rows: OnBadRows,
    fields: Mapping[str, pl.DataType] | None = None,
    required: Sequence[str] = (),
    expected: Mapping[str, pl.DataType] | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> tuple[pl.DataFrame, dict[int, str], bytes]:
    """Parse a JSONL file once; returns (frame, skipped {line: reason}, decoded bytes).
    `expected`: the type each field is read as (for the located re-parse's messages); a line
    longer than `max_line_bytes` is a bad row."""
    record_read(path, "parse")
    data = read_input_bytes(path)
    if is_blank(data):  # an empty file holds no rows (reported as such by load_source)
        return pl.DataFrame(), {}, data
    data, too_long = _without_long_lines(path, data, on_bad_rows, max_line_bytes)
    frame, bad = _parse_jsonl(path, data, on_bad_rows, fields, required, expected)
    return frame, dict(sorted({**too_long, **bad}.items())), data


def _parse_jsonl(
    path: Path,
    data: bytes,
    on_bad_rows: OnBadRows,
    fields: Mapping[str, pl.DataType] | None,
    required: Sequence[str],
    expected: Mapping[str, pl.DataType] | None,
) -> tuple[pl.DataFrame, dict[int, str]]:
    """`read_jsonl` on bytes: the frame and the skipped lines {line: reason}."""
    if is_blank(data):
        return pl.DataFrame(), {}
    frame: pl.DataFrame | None = None
    if fields:
        try:
            frame = pl.read_ndjson(io.BytesIO(data), schema=dict(fields))
        except Exception:  # any misfit: the inferring path below says where
            frame = None
        if frame is not None and any(
            frame.get_column(name).null_count() == frame.height
            for name in required
            if name in frame.columns
        ):
            frame = None
    error: Exception | None = None
    if frame is None:
        try:
            frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
        except Exception as exc:  # polars: ComputeError / SchemaError / panics on bad JSON
            error = exc
    if (
        frame is not None
        and max((dtype_depth(d) for d in frame.schema.values()), default=0) >= MAX_JSON_DEPTH
    ):  # nested deeper than MAX_JSON_DEPTH (the row itself is one level)
        frame = None
    bad = (
        {**_objects_as_text(frame, data), **_duplicate_keys(frame, data, expected)}
        if frame is not None
        else _bad_json_lines(data, expected)
    )
    if frame is not None and not bad:
        return frame, {}
    if not bad:
        raise InputDataError(
            f"{path}: cannot read as JSONL: {first_line(error or ValueError())} (a field holds "
            "values of incompatible kinds, e.g. an object in one line and a list in another)"
        ) from error
    if on_bad_rows == "error":
        line, reason = next(iter(sorted(bad.items())))
        more = f" ({len(bad) - 1} more bad lines)" if len(bad) > 1 else ""
        raise InputDataError(
            f"{path}:{line}: {reason}{more}; fix the file or pass --on-bad-rows skip"
        ) from error
    kept = b"\n".join(
        line for number, line in enumerate(data.split(b"\n"), start=1) if number not in bad
    )
    if is_blank(kept):
        return pl.DataFrame(), bad
    try:
        frame = pl.read_ndjson(io.BytesIO(kept), infer_schema_length=None)
    except Exception as exc:
        raise InputDataError(f"{path}: cannot read as JSONL: {first_line(exc)}") from exc
    return frame, bad
