"""Reading agent logs (JSONL, gzipped JSONL, Parquet) into frames in the canonical schema.

A source path is a file, a glob or a folder (searched recursively; `key=value` folders become
columns, hive-style). JSONL is parsed once per run. Every problem names the file, the line (or
row), the column, what was expected and what was found. Inputs are never modified.

`watch_file_reads` records every JSONL parse and every row check while it is open: the tests
count them with it (a cached file is neither parsed nor checked again).
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
from polars.datatypes import DataTypeClass

from kpictl import __version__ as kpictl_version
from kpictl.errors import EmptyInputError, InputDataError, did_you_mean
from kpictl.io import schema as canonical
from kpictl.io.cache import CACHE_FORMAT, JsonlCache, digest_file
from kpictl.io.cache import jsonl_cache_dir as jsonl_cache_dir
from kpictl.io.formats import (
    FORMAT_NAMES,
    FORMAT_SUFFIXES,
    LOCATION,
    link_conversations,
    read_format,
)
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
from kpictl.sql.expr import ExpressionProblem, compile_sql, first_line

OnBadRows = Literal["error", "skip"]

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED_SUFFIXES = JSONL_SUFFIXES + PARQUET_SUFFIXES

_TIMESTAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d",
)
_EPOCH_UNITS = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}
_NARROW_INTS = (pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16, pl.UInt32)
_ROW = "__kpictl_row"


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


def _record_read(path: Path, step: Literal["parse", "check"]) -> None:
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
class LoadedSource:
    """One source's rows in the canonical schema, plus what was read to get them."""

    name: str
    frame: pl.LazyFrame
    files: tuple[FileReport, ...]
    ignored: tuple[str, ...] = ()
    # what a reader of the numbers should know about the input (a file named twice, …)
    notes: tuple[str, ...] = ()
    # what happened to the JSONL cache (an entry damaged, the folder unusable): said on stderr
    cache_notes: tuple[str, ...] = ()
    # what the rows are, not a caveat on a number (how many business events no conversation
    # caused): shown by `kpictl check`, not on every run's stderr
    info: tuple[str, ...] = ()
    # why these rows cannot support a number (business events that match no conversation of
    # the data): every KPI reading the source is unavailable with this reason
    unusable: str | None = None

    @property
    def rows(self) -> int:
        """Rows kept, over all files."""
        return sum(f.rows for f in self.files)

    @property
    def skipped(self) -> int:
        """Rows skipped (with --on-bad-rows skip), over all files."""
        return sum(f.skipped for f in self.files)


@dataclass(frozen=True)
class Sources:
    """Every loaded source of a run, by name."""

    by_name: Mapping[str, LoadedSource] = field(default_factory=dict)

    def __getitem__(self, name: str) -> pl.LazyFrame:
        return self.by_name[name].frame

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    @property
    def files(self) -> list[FileReport]:
        """Every file read, source by source."""
        return [f for src in self.by_name.values() for f in src.files]

    @property
    def cache_notes(self) -> list[str]:
        """The sources' cache notes, each once."""
        return list(dict.fromkeys(n for src in self.by_name.values() for n in src.cache_notes))


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


# ----------------------------------------------------------------------------------------------
# Finding files
# ----------------------------------------------------------------------------------------------


def _suffix_format(path: Path, forced: str) -> str | None:
    name = path.name.lower()
    if forced in FORMAT_NAMES:
        return forced if name.endswith(FORMAT_SUFFIXES) else None
    if forced in ("jsonl", "parquet"):
        return forced
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def find_files(
    pattern: str, base_dir: Path, forced: str = "auto"
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Files a path, glob or folder names, each with the root its partition folders start at.

    A path that exists is read as it is named, even when it holds glob characters
    (`logs/run[1].jsonl`); only the pattern, never `base_dir`, is read as a glob.
    Returns ([(file, root)], ignored files). Raises InputDataError when nothing matches.
    """
    expanded = Path(pattern).expanduser()
    target = expanded if expanded.is_absolute() else base_dir / expanded
    found: list[tuple[Path, Path]] = []
    ignored: list[str] = []
    if any(ch in pattern for ch in "*?[") and not target.exists():
        root = None if expanded.is_absolute() else base_dir
        matches = sorted(
            Path(p) if root is None else root / p
            for p in glob.glob(str(expanded), root_dir=root, recursive=True)
        )
        candidates = [(m, m.parent) for m in matches if m.is_file()]
        for folder in (m for m in matches if m.is_dir()):
            candidates += [(f, folder) for f in sorted(folder.rglob("*")) if f.is_file()]
    elif target.is_dir():
        candidates = [(f, target) for f in sorted(target.rglob("*")) if f.is_file()]
    elif target.is_file():
        candidates = [(target, target.parent)]
    else:
        raise InputDataError(f"{target}: no such file or folder")
    for path, root in candidates:
        if any(part.startswith((".", "_")) for part in path.relative_to(root).parts):
            continue  # hidden files and markers such as _SUCCESS
        if _suffix_format(path, forced) is None:
            ignored.append(str(path))
        else:
            found.append((path, root))
    if not found:
        extra = f" (ignored: {', '.join(ignored[:5])})" if ignored else ""
        suffixes = FORMAT_SUFFIXES if forced in FORMAT_NAMES else SUPPORTED_SUFFIXES
        raise InputDataError(f"{target}: no log files found; expected {', '.join(suffixes)}{extra}")
    return found, ignored


def _partition_values(path: Path, root: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for part in path.relative_to(root).parts[:-1]:
        if "=" in part:
            key, _, value = part.partition("=")
            values[key] = value
    return values


# ----------------------------------------------------------------------------------------------
# Reading one file
# ----------------------------------------------------------------------------------------------


def _line_numbers(data: bytes) -> list[int]:
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


def _blank(data: bytes) -> bool:
    """Whether `data` holds only ASCII whitespace, as `not data.strip()` but without copying a
    file's bytes (it stops at the first other byte: 0.33 s less per call on a 440 MB file)."""
    return not data or data.isspace()


def _read_jsonl(
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
    _record_read(path, "parse")
    data = read_input_bytes(path)
    if _blank(data):  # an empty file holds no rows (reported as such by load_source)
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
    """`_read_jsonl` on bytes: the frame and the skipped lines {line: reason}."""
    if _blank(data):
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
    if _blank(kept):
        return pl.DataFrame(), bad
    try:
        frame = pl.read_ndjson(io.BytesIO(kept), infer_schema_length=None)
    except Exception as exc:
        raise InputDataError(f"{path}: cannot read as JSONL: {first_line(exc)}") from exc
    return frame, bad


def _expected_fields(request: SourceRequest) -> dict[str, pl.DataType]:
    """The type each top-level JSON field of a source is read as (canonical columns and the
    spec's typed columns), by field name."""
    expected: dict[str, pl.DataType] = {
        name: column.dtype
        for name, column in canonical.CANONICAL_TABLES.get(request.name, {}).items()
    }
    for rule in request.columns:
        target = _target_dtype(
            rule, canonical.CANONICAL_TABLES.get(request.name, {}).get(rule.name)
        )
        field_name = rule.source_field or rule.name
        if rule.sql is None and target is not None and "." not in field_name:
            expected.pop(rule.name, None)
            expected[field_name] = target
    return expected


def _widen(frame: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    casts = []
    for name, dtype in schema.items():
        if isinstance(dtype, _NARROW_INTS):
            casts.append(pl.col(name).cast(pl.Int64))
        elif isinstance(dtype, pl.Float32):
            casts.append(pl.col(name).cast(pl.Float64))
    return frame.with_columns(casts) if casts else frame


# ----------------------------------------------------------------------------------------------
# The JSONL cache: each file's canonical frame (what `_load_file` returns) kept as Parquet
# ----------------------------------------------------------------------------------------------


def _cache_key(
    path: Path,
    request: SourceRequest,
    fields: Mapping[str, pl.DataType] | None,
    on_bad_rows: str,
    partitions: Mapping[str, str],
) -> str | None:
    """Everything a file's canonical frame depends on: the file (path and a hash of its
    bytes, so an edit that keeps size and modification time is seen), how it is read (fields,
    --on-bad-rows), the source's canonical table and column rules, its partition folders, and
    the code (cache format, kpictl and polars versions)."""
    try:
        digest = digest_file(path)
    except OSError:
        return None
    rules = [
        [r.name, r.source_field, r.sql, r.type, r.unit, type(r.default).__name__, repr(r.default)]
        for r in request.columns
    ]
    identity = json.dumps(
        [
            CACHE_FORMAT,
            kpictl_version,
            pl.__version__,
            str(path.resolve()),
            digest,
            on_bad_rows,
            request.max_line_bytes,
            None if fields is None else sorted((k, str(v)) for k, v in fields.items()),
            request.name,
            rules,
            sorted(partitions.items()),
        ]
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def _cache_get(
    cache: JsonlCache, key: str | None, path: Path
) -> tuple[pl.LazyFrame | None, int, int, tuple[str, ...]] | None:
    """An unchanged file's canonical frame (scanned lazily; None when no row was kept), rows
    kept, rows skipped and the reasons; None when there is no sound entry."""
    found = None if key is None else cache.get(key, str(path))
    if found is None:
        return None
    assert key is not None
    frame, meta = found
    rows, skipped, reasons, written = (
        meta.get("rows"),
        meta.get("skipped"),
        meta.get("reasons"),
        meta.get("path"),
    )
    if not (
        isinstance(rows, int)
        and isinstance(skipped, int)
        and isinstance(reasons, list)
        and all(isinstance(r, str) for r in reasons)
        and isinstance(written, str)
    ):
        cache.reject(key, str(path), "its report is not well-formed")
        return None
    # reasons name the file as this run spells it (a cached run may spell it differently)
    reasons = [
        str(path) + r[len(written) :] if r.startswith((f"{written}:", f"{written} (")) else r
        for r in reasons
    ]
    return frame, rows, skipped, tuple(reasons)


def _cache_put(
    cache: JsonlCache,
    key: str | None,
    path: Path,
    frame: pl.DataFrame | None,
    report: FileReport,
    request: SourceRequest,
    fields: Mapping[str, pl.DataType] | None,
    on_bad_rows: str,
    partitions: Mapping[str, str],
) -> None:
    """Keep a file's canonical frame and report, unless the file changed while it was read."""
    if key is None or _cache_key(path, request, fields, on_bad_rows, partitions) != key:
        return
    cache.put(
        key,
        str(path),
        frame,
        {
            "path": str(path),
            "rows": report.rows,
            "skipped": report.skipped,
            "reasons": list(report.skipped_reasons),
        },
    )


# ----------------------------------------------------------------------------------------------
# Canonical columns
# ----------------------------------------------------------------------------------------------


def _field_expr(source_field: str, schema: pl.Schema) -> pl.Expr | None:
    """`a.b.c` → col(a).struct.field(b).struct.field(c); None when the field is absent."""
    head, *rest = source_field.split(".")
    if head not in schema:
        return None
    expr = pl.col(head)
    dtype: Any = schema[head]
    for part in rest:
        if not isinstance(dtype, pl.Struct) or part not in {f.name for f in dtype.fields}:
            return None
        expr = expr.struct.field(part)
        dtype = next(f.dtype for f in dtype.fields if f.name == part)
    return expr


def _target_dtype(
    rule: ColumnRule | None, canonical_col: canonical.CanonicalColumn | None
) -> pl.DataType | None:
    if rule is not None and rule.type is not None:
        return canonical.TYPE_NAMES[rule.type]
    return canonical_col.dtype if canonical_col is not None else None


def _coerce(
    expr: pl.Expr,
    source: pl.DataType,
    target: pl.DataType,
    unit: str | None,
    name: str,
    where: str,
    probe: pl.DataFrame | None = None,
) -> tuple[pl.Expr, bool]:
    """An expression converting `expr` to `target`; and whether the conversion can fail
    (a value it cannot convert becomes null, and the row is reported)."""
    converted, fallible = _convert(expr, source, target, unit, name, where, probe)
    if isinstance(target, pl.Float64) and not isinstance(source, pl.Null):
        # NaN and ±Infinity (a Parquet float, or the text "NaN" / "inf" that polars parses)
        # are not numbers a KPI can use: JSON has no such value either. NaN compares above
        # every number in polars, so `csat >= 4` would count it as good.
        return pl.when(converted.is_finite()).then(converted), True
    return converted, fallible


def _required_missing(name: str, dtype: pl.DataType | None) -> pl.Expr:
    """True where a required column has no usable value: null, or text that is empty or blank
    (an empty conversation id is not a conversation)."""
    missing = pl.col(name).is_null()
    if isinstance(dtype, pl.String):
        # `< "!"` first (empty, or starting with a space or control character): Parquet
        # statistics rule it out for a clean row group, which is then not decoded
        blank = (pl.col(name) < "!") & (pl.col(name).str.strip_chars() == "")
        missing = missing | blank
    return missing


def missing_message(column: str, value: object) -> str:
    """What a required column empty on a row says (the reader's and a SQL engine's check)."""
    if value is None:
        return f"column {column!r} is empty (null): it is required"
    return f"column {column!r} is empty text ({value!r}): it is required"


def _convert(
    expr: pl.Expr,
    source: pl.DataType,
    target: pl.DataType,
    unit: str | None,
    name: str,
    where: str,
    probe: pl.DataFrame | None,
) -> tuple[pl.Expr, bool]:
    if source == target:
        return expr, False
    if isinstance(target, pl.Datetime):
        if isinstance(source, pl.Datetime):
            zoned = expr if source.time_zone else expr.dt.replace_time_zone("UTC")
            return zoned.dt.convert_time_zone("UTC").dt.cast_time_unit("us"), False
        if isinstance(source, pl.Date):
            return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"), False
        if source.is_numeric():
            if unit is None:
                raise InputDataError(
                    f"{where}: column {name!r} holds numbers; declare their epoch unit in the "
                    f"spec: columns: {{{name}: {{from: …, type: timestamp, unit: s|ms|us|ns}}}}"
                )
            factor = _EPOCH_UNITS[unit]
            # Out-of-range values (often a wrong unit) become null, so they are reported.
            if source.is_integer():  # exact: Float64 cannot hold every ns (or µs) epoch
                whole = expr.cast(pl.Int64, strict=False)
                if factor is None:
                    micros = whole // 1000  # truncated to µs, as polars casts ns to µs
                else:
                    fits = whole.abs() <= (2**63 - 1) // factor
                    micros = pl.when(fits).then(whole * factor)
                return micros.cast(pl.Datetime("us", "UTC")), True
            micros = (
                (expr.cast(pl.Float64) / 1000.0)
                if factor is None
                else (expr.cast(pl.Float64) * factor)
            )
            whole = micros.round(0).cast(pl.Int64, strict=False)
            return whole.cast(pl.Datetime("us", "UTC")), True
        if isinstance(source, pl.String):
            text = expr.str.strip_chars()
            attempts = [
                text.str.to_datetime(fmt, strict=False, time_zone="UTC", time_unit="us")
                for fmt in _TIMESTAMP_FORMATS
            ]
            if probe is not None:
                # in-memory data: when one format reads every value, parse with it alone
                present = probe.select(expr.is_not_null().sum()).item()
                for attempt in attempts:
                    if probe.select(attempt.is_not_null().sum()).item() == present:
                        return attempt, True
            return pl.coalesce(attempts), True
        raise InputDataError(f"{where}: column {name!r} is {source}; expected a timestamp")
    if isinstance(target, pl.Boolean) and isinstance(source, pl.String):
        lowered = expr.str.strip_chars().str.to_lowercase()
        mapped = (
            pl.when(lowered.is_in(["true", "t", "1", "yes"]))
            .then(True)
            .when(lowered.is_in(["false", "f", "0", "no"]))
            .then(False)
            .otherwise(None)
        )
        return mapped, True
    if isinstance(target, pl.Int64) and source.is_float():
        rounded = expr.round(0)
        # beyond ±2^63 (or not finite) the value is no Int64: null, so the row is reported
        exact = expr.is_finite() & (expr == rounded) & (rounded.abs() < 2.0**63)
        return pl.when(exact).then(rounded.cast(pl.Int64, strict=False)), True
    if isinstance(source, pl.Struct | pl.List):
        # an object or a list where a scalar is expected: every such row is reported
        return pl.lit(None, dtype=target), True
    if isinstance(target, pl.String):
        return expr.cast(pl.String), False
    if isinstance(target, pl.Int64 | pl.Float64) and isinstance(source, pl.Boolean):
        raise InputDataError(f"{where}: column {name!r} is {source}; expected {target}")
    # numbers beyond Int64 (JSON integers past 2^63 are read as Int128 or UInt64) become null
    # and are reported, never wrapped or silently dropped
    narrowing = target.is_integer() and not isinstance(source, (pl.Int64, *_NARROW_INTS))
    return expr.cast(target, strict=False), narrowing or not (
        source.is_numeric() and target.is_numeric()
    )


def describe_dtype(dtype: pl.DataType) -> str:
    """What a value of `dtype` looks like in a log file, for error messages."""
    if isinstance(dtype, pl.Datetime):
        return "a timestamp (ISO-8601 text such as 2026-10-01T12:00:00Z, or a date)"
    if isinstance(dtype, pl.Boolean):
        return "a boolean (true/false)"
    if dtype.is_integer():
        return f"a whole number ({dtype})"
    if dtype.is_float():
        return f"a number ({dtype})"
    if isinstance(dtype, pl.String):
        return "text"
    return str(dtype)


def _canonical_frame(
    frame: pl.LazyFrame,
    request: SourceRequest,
    where: str,
    probe: pl.DataFrame | None = None,
    with_flags: bool = False,
) -> tuple[pl.LazyFrame, list[tuple[str, pl.Expr, str]]]:
    """Apply column rules and canonical types. Returns the frame and fallible checks.

    Each check is (column, expression true where the row is bad, what was expected). With
    `with_flags`, the frame also has a Boolean column `bad_<i>` per check, computed from the
    raw values in the same step. `probe`: the data itself, when it is in memory.
    """
    schema = frame.collect_schema()
    visible = [n for n in schema.names() if n != _ROW]
    rules = {rule.name: rule for rule in request.columns}
    columns = canonical.CANONICAL_TABLES.get(request.name, {})
    mapped: list[pl.Expr] = []
    raw_values: dict[str, tuple[pl.Expr, pl.DataType]] = {}
    for rule in request.columns:
        if rule.sql is not None:
            try:
                expr = compile_sql(rule.sql)
                dtype = frame.select(expr).collect_schema().dtypes()[0]
            except (ExpressionProblem, Exception) as exc:
                raise InputDataError(
                    f"{where}: sources.{request.name}.columns.{rule.name}: {first_line(exc)}; "
                    f"fields there: {', '.join(visible)}"
                ) from exc
        else:
            field_name = rule.source_field or rule.name
            found = _field_expr(field_name, schema)
            if found is None:
                if rule.default is None:
                    if rule.name in columns and columns[rule.name].required:
                        raise InputDataError(
                            f"{where}: source {request.name!r}: field {field_name!r} (mapped to "
                            f"{rule.name!r}) is missing{did_you_mean(field_name, visible)}"
                            f"; fields there: {', '.join(visible)}"
                        )
                    continue
                expr, dtype = pl.lit(None), pl.Null()
            else:
                expr = found
                dtype = frame.select(found).collect_schema().dtypes()[0]
        if rule.default is not None:
            expr = expr.fill_null(pl.lit(rule.default))
            dtype = frame.select(expr).collect_schema().dtypes()[0]
        raw_values[rule.name] = (expr, dtype)
    present = set(visible) | set(raw_values)
    missing = [c.name for c in columns.values() if c.required and c.name not in present]
    if missing:
        hints = "".join(did_you_mean(m, visible) for m in missing)
        raise InputDataError(
            f"{where}: source {request.name!r} has no column {', '.join(map(repr, missing))}"
            f"{hints}; columns there: {', '.join(visible)}. Map one in the spec: "
            f"sources.{request.name}.columns.{missing[0]}: <field or SQL>"
        )
    checks: list[tuple[str, pl.Expr, str]] = []
    for name in sorted(present):
        maybe_rule = rules.get(name)
        target = _target_dtype(maybe_rule, columns.get(name))
        if name in raw_values:
            expr, dtype = raw_values[name]
        else:
            expr, dtype = pl.col(name), schema[name]
        if isinstance(dtype, pl.Null) and target is not None:
            mapped.append(pl.lit(None, dtype=target).alias(name))
            continue
        if target is None:
            if name in raw_values:
                mapped.append(expr.alias(name))
            continue
        unit = maybe_rule.unit if maybe_rule else None
        converted, fallible = _coerce(expr, dtype, target, unit, name, where, probe)
        mapped.append(converted.alias(name))
        if fallible:
            expected = describe_dtype(target)
            if isinstance(target, pl.Datetime) and dtype.is_numeric() and maybe_rule is not None:
                expected = (
                    f"an epoch time in {maybe_rule.unit} (since 1970-01-01 UTC) that fits "
                    "a timestamp"
                )
            checks.append((name, expr.is_not_null() & converted.is_null(), expected))
    # optional canonical columns the source lacks are there, empty, with their type
    mapped += [
        pl.lit(None, dtype=col.dtype).alias(name)
        for name, col in columns.items()
        if name not in present
    ]
    # so are the spec's own typed columns no file holds (the spec's checks report them)
    mapped += [
        pl.lit(None, dtype=_target_dtype(rule, None) or pl.String()).alias(rule.name)
        for rule in request.columns
        if rule.name not in present and rule.name not in columns
    ]
    if with_flags:
        mapped += [bad.alias(f"bad_{i}") for i, (_, bad, _) in enumerate(checks)]
    result = frame.with_columns(mapped) if mapped else frame
    return result, checks


def _locate(path: Path, fmt: str, row: int, data: bytes | None, dropped: Mapping[int, str]) -> str:
    """`file:line` for JSONL (row → its line), `file (row N)` for Parquet. Error path only."""
    if fmt == "jsonl" and data is not None:
        lines = [n for n in _line_numbers(data) if n not in dropped]
        if row < len(lines):
            return f"{path}:{lines[row]}"
    return f"{path} (row {row + 1})"


def _load_file(
    path: Path,
    root: Path,
    fmt: str,
    request: SourceRequest,
    on_bad_rows: OnBadRows,
    cache: JsonlCache,
) -> tuple[pl.LazyFrame | None, FileReport]:
    size = path.stat().st_size
    partitions = _partition_values(path, root)
    if fmt != "jsonl":
        try:
            frame = pl.scan_parquet(path, glob=False)  # `run[1].parquet` is a file name
            rows = frame.select(pl.len()).collect().item()
        except Exception as exc:
            raise InputDataError(f"{path}: cannot read as Parquet: {first_line(exc)}") from exc
        return _checked_frame(path, fmt, request, on_bad_rows, frame, rows, size, partitions)
    fields = (
        None
        if request.fields is None
        else {k: v for k, v in request.fields.items() if k not in partitions}
    )
    key = None if not cache.enabled else _cache_key(path, request, fields, on_bad_rows, partitions)
    cached = _cache_get(cache, key, path)
    if cached is not None:  # scanned like a Parquet input, already checked and converted
        stored, rows, skipped, reasons = cached
        report = FileReport(
            request.name, str(path), fmt, size, rows, skipped, reasons, tuple(partitions.items())
        )
        return stored, report
    required_fields = [
        c.name for c in canonical.CANONICAL_TABLES.get(request.name, {}).values() if c.required
    ]
    eager, dropped, data = _read_jsonl(
        path,
        on_bad_rows,
        fields,
        required_fields,
        _expected_fields(request),
        request.max_line_bytes,
    )
    checked, report = _checked_frame(
        path,
        fmt,
        request,
        on_bad_rows,
        eager.lazy(),
        eager.height,
        size,
        partitions,
        data,
        dropped,
    )
    kept = None if checked is None else checked.collect()  # in memory already: no new work
    _cache_put(cache, key, path, kept, report, request, fields, on_bad_rows, partitions)
    return (None if kept is None else kept.lazy()), report


def _any_bad_row(
    frame: pl.LazyFrame, request: SourceRequest, where: str, required: Sequence[str]
) -> bool:
    """Whether a scanned file has a row that fails a check. Without a row index the filter
    reaches the Parquet reader, which skips row groups whose statistics rule it out (no nulls
    in a required column): a clean file is not decoded just to find nothing. One query per
    check, so a check statistics cannot rule out (NaN in a float column) decodes its own
    column only, not every column of the others."""
    converted, checks = _canonical_frame(frame, request, where, with_flags=True)
    columns = canonical.CANONICAL_TABLES.get(request.name, {})
    bad = [pl.col(f"bad_{i}") for i in range(len(checks))] + [
        _required_missing(n, columns[n].dtype) for n in required
    ]
    if not bad:
        return False
    # one after the other: collect_all merges the scans, and the merged scan decodes all
    return any(converted.filter(b).select(pl.len()).collect().item() > 0 for b in bad)


def _checked_frame(
    path: Path,
    fmt: str,
    request: SourceRequest,
    on_bad_rows: OnBadRows,
    frame: pl.LazyFrame,
    rows: int,
    size: int,
    partitions: Mapping[str, str],
    data: bytes | None = None,
    dropped: Mapping[int, str] | None = None,
) -> tuple[pl.LazyFrame | None, FileReport]:
    """One file's rows (`rows` of them, read as `frame`) in the canonical schema, partition
    columns added, every row checked; with --on-bad-rows skip, the bad rows left out."""
    _record_read(path, "check")
    dropped = dropped or {}
    schema = frame.collect_schema() if rows or fmt == "parquet" else pl.Schema()
    extra = [pl.lit(v).alias(k) for k, v in partitions.items() if k not in schema]
    if extra:
        frame = frame.with_columns(extra)
    if rows == 0:
        report = FileReport(
            request.name,
            str(path),
            fmt,
            size,
            0,
            len(dropped),
            tuple(f"line {n}: {r}" for n, r in list(dropped.items())[:5]),
        )
        return None, report
    frame = _widen(frame, frame.collect_schema())
    probe = frame.collect() if fmt == "jsonl" else None
    columns = canonical.CANONICAL_TABLES.get(request.name, {})
    required = [c.name for c in columns.values() if c.required]
    indexed = frame.with_row_index(_ROW)
    converted, checks = _canonical_frame(indexed, request, str(path), probe, with_flags=True)
    flag_names = [f"bad_{i}" for i in range(len(checks))] + [f"miss_{n}" for n in required]
    converted = converted.with_columns(
        [_required_missing(n, columns[n].dtype).alias(f"miss_{n}") for n in required]
    )
    any_bad = pl.any_horizontal([pl.col(n) for n in flag_names]) if flag_names else pl.lit(False)
    if probe is not None:  # in memory: convert once, keep the result
        converted = converted.collect().lazy()
        offenders = converted.filter(any_bad).select(_ROW, *flag_names, *required).collect()
    elif _any_bad_row(frame, request, str(path), required):
        offenders = converted.filter(any_bad).select(_ROW, *flag_names, *required).collect()
    else:
        offenders = pl.DataFrame()
    if probe is not None:
        canonical_frame = converted.drop(_ROW, *flag_names)
    else:  # lazily scanned: a row index in the plan would slow every later query
        canonical_frame, _ = _canonical_frame(frame, request, str(path))
    skipped_rows = 0
    reasons = [f"line {n}: {r}" for n, r in list(dropped.items())[:5]]
    if offenders.height:
        first = offenders.row(0, named=True)
        flag = next(n for n in flag_names if first[n])
        if flag.startswith("bad_"):
            column, _, expected = checks[int(flag[4:])]
            original = frame.with_row_index(_ROW).filter(pl.col(_ROW) == first[_ROW])
            value = _original_value(original, request, column)
            what = f"column {column!r}: expected {expected}, got {value!r}"
        else:
            column = flag[5:]
            what = missing_message(column, first[column])
        where = _locate(path, fmt, first[_ROW], data, dropped)
        if on_bad_rows == "error":
            more = f" ({offenders.height - 1} more bad rows)" if offenders.height > 1 else ""
            raise InputDataError(
                f"{where}: {what}{more}; fix the data, map the column in "
                "the spec, or pass --on-bad-rows skip"
            )
        skipped_rows = offenders.height
        if skipped_rows == rows:  # nothing left to read in this file
            report = FileReport(
                request.name,
                str(path),
                fmt,
                size,
                0,
                len(dropped) + skipped_rows,
                (*reasons, f"{where}: {what} and every other row"),
            )
            return None, report
        reasons.append(
            f"{where}: {what}"
            + (f" and {offenders.height - 1} more" if offenders.height > 1 else "")
        )
        canonical_frame = converted.filter(~any_bad).drop(_ROW, *flag_names)
        if probe is None:
            canonical_frame = canonical_frame.collect().lazy()  # filtered once
    _check_epoch_units(path, request, frame.collect_schema(), canonical_frame)
    report = FileReport(
        request.name,
        str(path),
        fmt,
        size,
        rows - skipped_rows,
        len(dropped) + skipped_rows,
        tuple(reasons),
        tuple(partitions.items()),
    )
    return canonical_frame, report


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_YEAR_2000, _YEAR_2100 = 946_684_800, 4_102_444_800  # epoch seconds


def _check_epoch_units(
    path: Path, request: SourceRequest, raw: pl.Schema, frame: pl.LazyFrame
) -> None:
    """Epoch numbers whose declared unit puts every row before 2000 or after 2100 are almost
    surely in another unit (milliseconds declared as seconds land in the year 55,000): an
    error that names the unit the values look like. One min/max per such column."""
    columns = [
        rule
        for rule in request.columns
        if rule.unit in _PER_SECOND
        and rule.sql is None
        and (found := _field_expr(rule.source_field or rule.name, raw)) is not None
        and pl.LazyFrame(schema=raw).select(found).collect_schema().dtypes()[0].is_numeric()
    ]
    if not columns:
        return
    seconds = (
        frame.select(
            *[pl.col(r.name).dt.epoch("s").min().alias(f"{r.name}_min") for r in columns],
            *[pl.col(r.name).dt.epoch("s").max().alias(f"{r.name}_max") for r in columns],
        )
        .collect()
        .row(0, named=True)
    )
    for rule in columns:
        low, high = seconds[f"{rule.name}_min"], seconds[f"{rule.name}_max"]
        if low is None or high is None or (high >= _YEAR_2000 and low <= _YEAR_2100):
            continue
        assert rule.unit is not None
        side = (
            f"before 2000 (the latest is {high} s after 1970)"
            if high < _YEAR_2000
            else (f"after 2100 (the earliest is {low} s after 1970)")
        )
        raw_high = high * _PER_SECOND[rule.unit]
        fits = [u for u, per in _PER_SECOND.items() if _YEAR_2000 <= raw_high / per <= _YEAR_2100]
        hint = (
            f"the values look like {_UNIT_NAMES[fits[0]]}: declare unit: {fits[0]}"
            if fits
            else "check the unit and the values"
        )
        raise InputDataError(
            f"{path}: column {rule.name!r}: declared unit {rule.unit} ({_UNIT_NAMES[rule.unit]}) "
            f"puts every row {side}; {hint} (sources.{request.name}.columns.{rule.name})"
        )


def _original_value(row: pl.LazyFrame, request: SourceRequest, column: str) -> object:
    rule = next((r for r in request.columns if r.name == column), None)
    field_name = rule.source_field if rule and rule.source_field else column
    expr = _field_expr(field_name, row.collect_schema())
    if expr is None:
        return None
    return row.select(expr).collect().item()


def load_source(request: SourceRequest, on_bad_rows: OnBadRows = "error") -> LoadedSource:
    """Read every file of one source and stack them in the canonical schema."""
    frames: list[tuple[pl.LazyFrame, FileReport]] = []
    reports: list[FileReport] = []
    files, ignored, notes = _source_files(request)
    cache = JsonlCache(request.cache_dir)
    for path, root in files:
        fmt = _suffix_format(path, request.format)
        assert fmt is not None
        frame, report = _load_file(path, root, fmt, request, on_bad_rows, cache)
        reports.append(report)
        if frame is not None:
            frames.append((frame, report))
    if not frames:
        skipped = sum(r.skipped for r in reports)
        if skipped:  # rows were there, every one bad: a mapping to fix, not an empty day
            names = ", ".join(r.path for r in reports) or ", ".join(request.paths)
            raise EmptyInputError(
                f"source {request.name!r}: no rows in {names} ({skipped} bad rows skipped)"
            )
        # files without rows (an empty JSONL file, a typed empty Parquet file): a valid
        # input of zero rows, typed like any other
        return LoadedSource(
            request.name, empty_source_frame(request), tuple(reports), tuple(ignored), tuple(notes)
        )
    _check_sums(request.name, frames, request.summed)
    combined = (
        frames[0][0]
        if len(frames) == 1
        else pl.concat([f for f, _ in frames], how="diagonal_relaxed")
    )
    return LoadedSource(
        request.name, combined, tuple(reports), tuple(ignored), tuple(notes), tuple(cache.notes)
    )


def _source_files(request: SourceRequest) -> tuple[list[tuple[Path, Path]], list[str], list[str]]:
    """Every file a source's paths name, each once: a file reached twice (a folder and a file
    in it, two overlapping globs, a symlink or a hard link to it) is read once, with a note.
    Returns (files, ignored, notes)."""
    found: list[tuple[Path, Path]] = []
    ignored: list[str] = []
    seen: dict[tuple[int, int] | Path, str] = {}
    twice: list[str] = []
    for pattern in request.paths:
        files, skipped_files = find_files(pattern, request.base_dir, request.format)
        ignored += skipped_files
        for path, root in files:
            real: tuple[int, int] | Path
            try:  # the file itself, whatever its name: a symlink or a hard link is the same file
                info = path.stat()
                real = (info.st_dev, info.st_ino)
            except OSError:
                real = path.absolute()
            if real in seen:
                twice.append(f"{path} (by {seen[real]!r} and {pattern!r})")
                continue
            seen[real] = pattern
            found.append((path, root))
    notes: list[str] = []
    if twice:
        notes.append(
            f"source {request.name!r}: {len(twice)} file{'s' if len(twice) > 1 else ''} named "
            f"more than once, read once: {', '.join(twice[:5])}"
            + (f" and {len(twice) - 5} more" if len(twice) > 5 else "")
        )
    return found, ignored, notes


# integer columns that KPIs add up (TOTAL(input_tokens) + TOTAL(output_tokens), …)
_SUMMED_INTEGERS = (
    *(
        n
        for table in canonical.CANONICAL_TABLES.values()
        for n, c in table.items()
        if c.dtype.is_integer()
    ),
    *(n for n, dtype in canonical.COST_COLUMNS.items() if dtype.is_integer()),
    "reasoning_tokens",
)
_INT64_MAX = 2**63 - 1


def _summed_columns(schema: pl.Schema, summed: Sequence[str] = ()) -> list[str]:
    return [
        c
        for c, dtype in schema.items()
        if (c in _SUMMED_INTEGERS or c in summed) and dtype.is_integer()
    ]


def _sum_overflow(
    name: str, columns: Sequence[str], totals: pl.DataFrame
) -> tuple[str, int, str] | None:
    """(column, file index, what) when the per-file |sums| in `totals` (one row per file)
    add up past Int64, else None."""
    grand = totals.select(pl.sum_horizontal(pl.all().sum())).item()
    if grand <= _INT64_MAX:
        return None
    column = max(columns, key=lambda c: totals.get_column(c).sum())
    index = totals.get_column(column).arg_max()
    assert index is not None
    used = [c for c in columns if totals.get_column(c).sum() > 0]
    what = (
        f"the integer columns of source {name!r} ({', '.join(used)}) add up to "
        f"{grand:.3g}, more than a 64-bit integer holds ({_INT64_MAX}): their sums would "
        "overflow to a wrong (negative) number; fix the data"
    )
    return column, index, what


def _abs_sums(columns: Sequence[str], schema: pl.Schema) -> list[pl.Expr]:
    return [
        pl.col(c).cast(pl.Float64).abs().sum().alias(c) if c in schema else pl.lit(0.0).alias(c)
        for c in columns
    ]


def _largest(column: str) -> pl.Expr:
    """The first row holding the column's largest |value| (cast first: |Int64 min|
    overflows; arg_max may name any of several equal maxima)."""
    size = pl.col(column).cast(pl.Float64).abs()
    return (size == size.max()).arg_true().first()


def _check_sums(
    name: str, frames: Sequence[tuple[pl.LazyFrame, FileReport]], summed: Sequence[str] = ()
) -> None:
    """Refuse integer columns whose values add up past Int64: a SUM of them would wrap around
    to a negative number (two token counts of 5e18 give a negative tokens per task). The sum
    of every summed column together is checked, so adding two totals cannot overflow either.
    One aggregate per file, over those columns only."""
    schemas = [frame.collect_schema() for frame, _ in frames]
    columns = sorted({c for schema in schemas for c in _summed_columns(schema, summed)})
    if not columns:
        return
    queries = [
        frame.select(_abs_sums(columns, schema))
        for (frame, _), schema in zip(frames, schemas, strict=True)
    ]
    found = _sum_overflow(name, columns, pl.concat(pl.collect_all(queries)))
    if found is None:
        return
    column, index, what = found
    frame, report = frames[index]
    largest = frame.select(_largest(column).alias("row"), pl.col(column).get(_largest(column)))
    row, value = largest.collect().row(0)
    raise InputDataError(f"{_locate_kept(report, row)}: column {column!r}: {value}: {what}")


def locate_row(loaded: LoadedSource, row: int) -> str:
    """Where the `row`-th row of a loaded source comes from: `file:line` for JSONL, else
    `file (row N)` (error and note paths only: a JSONL file is read again to count lines)."""
    for report in loaded.files:
        if row < report.rows:
            return _locate_kept(report, row)
        row -= report.rows
    return f"source {loaded.name!r} (row {row + 1})"


def _locate_kept(report: FileReport, row: int) -> str:
    """Where the `row`-th kept row of a loaded file is (error path only: JSONL is read again
    to find its line; with skipped rows, the row number among those kept)."""
    path = Path(report.path)
    if report.format == "jsonl" and report.skipped == 0:
        lines = _line_numbers(read_input_bytes(path))
        if row < len(lines):
            return f"{path}:{lines[row]}"
    kept = " kept" if report.skipped else ""
    return f"{path} (row {row + 1}{kept})"


@dataclass(frozen=True)
class ParquetFile:
    """One Parquet file of a source as kpictl reads it: its path, its schema as polars reads
    it and its hive partition values (folders `k=v` under the source's root)."""

    path: str
    schema: Mapping[str, pl.DataType]
    partitions: Mapping[str, str] = field(default_factory=dict)


def parquet_files(loaded: LoadedSource) -> list[ParquetFile] | str:
    """The Parquet files of a loaded source that hold its rows, in the order kpictl stacks
    them, each with its schema (read from the file's footer); or why the rows are not simply
    those files' rows (JSONL, in-memory frames, rows skipped). For an engine that reads the
    files itself (kpictl.engine.sqlsource)."""
    if not loaded.files:
        return "no files (rows given in memory)"
    found: list[ParquetFile] = []
    for report in loaded.files:
        if report.format != "parquet":
            return f"{report.path} is {report.format}, read by kpictl's own reader"
        if report.skipped:
            return f"{report.path}: {report.skipped} bad rows skipped (--on-bad-rows skip)"
        if report.rows == 0:
            continue
        try:
            schema = pl.scan_parquet(report.path, glob=False).collect_schema()
        except Exception as exc:
            raise InputDataError(
                f"{report.path}: cannot read as Parquet: {first_line(exc)}"
            ) from exc
        found.append(ParquetFile(report.path, dict(schema), dict(report.partitions)))
    return found


def empty_source_frame(request: SourceRequest) -> pl.LazyFrame:
    """Zero rows of a source, typed as its rows would be: the canonical columns with their
    canonical types, each mapped column with its declared type (text when it declares none),
    and the other fields the run reads with the type they parse as. An empty file has no
    schema of its own, so this is what lets KPIs over it be n = 0 instead of an error."""
    columns = canonical.CANONICAL_TABLES.get(request.name, {})
    schema: dict[str, pl.DataType] = {name: col.dtype for name, col in columns.items()}
    renamed = set()
    for rule in request.columns:
        schema[rule.name] = (
            _target_dtype(rule, columns.get(rule.name)) or canonical.PASS_THROUGH_DTYPE
        )
        if rule.source_field and rule.source_field != rule.name:
            renamed.add(rule.source_field)
    for name, dtype in (request.fields or {}).items():
        if name not in schema and name not in renamed:
            schema[name] = dtype
    return pl.LazyFrame(schema=schema)


def load_frames(
    frames: Mapping[str, pl.DataFrame | pl.LazyFrame],
    requests: Mapping[str, SourceRequest] | None = None,
) -> Sources:
    """Sources from in-memory frames (for notebooks and tests), canonicalised like files."""
    loaded: dict[str, LoadedSource] = {}
    for name, frame in frames.items():
        lazy = frame.lazy()
        request = (requests or {}).get(name, SourceRequest(name=name, paths=()))
        lazy = _widen(lazy, lazy.collect_schema())
        flagged, checks = _canonical_frame(lazy, request, f"<frame {name}>", with_flags=True)
        flags = [f"bad_{i}" for i in range(len(checks))]
        if checks:
            # the flags are computed from the raw values (a check over the converted frame
            # would read a converted column as raw: text ts became a timestamp)
            bad = flagged.select([pl.col(f).any() for f in flags]).collect().row(0)
            if any(bad):
                column, _, expected = checks[bad.index(True)]
                raise InputDataError(
                    f"<frame {name}>: column {column!r} has values that "
                    f"cannot be read as {expected}"
                )
        canonical_frame = flagged.drop(flags)
        rows = lazy.select(pl.len()).collect().item()
        report = FileReport(name, f"<frame {name}>", "frame", 0, rows)
        _check_sums(name, [(canonical_frame, report)])
        loaded[name] = LoadedSource(name, canonical_frame, (report,))
    return Sources(loaded)


def load_requests(requests: Sequence[SourceRequest], on_bad_rows: OnBadRows = "error") -> Sources:
    """Load several sources; a format source (chat, otlp_json) also fills the sources derived
    from it (`derived_from`) with its tool calls."""
    loaded: dict[str, LoadedSource] = {}
    for request in requests:
        if request.derived_from is not None:
            continue
        if request.format in FORMAT_NAMES:
            derived = [r for r in requests if r.derived_from == request.name]
            loaded.update(load_format_source(request, derived, on_bad_rows))
        else:
            loaded[request.name] = load_source(request, on_bad_rows)
    return Sources({r.name: loaded[r.name] for r in requests if r.name in loaded})


# ----------------------------------------------------------------------------------------------
# Format sources: chat transcripts and OTLP JSON (kpictl.io.formats), both tables from one read
# ----------------------------------------------------------------------------------------------


def load_format_source(
    request: SourceRequest, derived: Sequence[SourceRequest], on_bad_rows: OnBadRows = "error"
) -> dict[str, LoadedSource]:
    """Read a `format: chat | otlp_json` source once: its events under its own name, its tool
    calls under the name of every source derived from it."""
    events: list[pl.DataFrame] = []
    calls: list[pl.DataFrame] = []
    traces: list[pl.DataFrame] = []
    sizes: list[tuple[Path, int, int, int]] = []
    files, ignored, notes = _source_files(request)
    for path, root in files:
        frames = read_format(path, request.format, request.options, request.max_line_bytes)
        partitions = [pl.lit(v).alias(k) for k, v in _partition_values(path, root).items()]
        for part, bucket in ((frames.events, events), (frames.tool_calls, calls)):
            if part.height:
                new = [e for e in partitions if e.meta.output_name() not in part.columns]
                bucket.append(part.with_columns(new) if new else part)
        if frames.traces.height:
            traces.append(frames.traces)
        sizes.append((path, path.stat().st_size, frames.events.height, frames.tool_calls.height))
    if traces and len(sizes) > 1:  # a trace split over files (exports, rotation): one conversation
        spans_by_trace = pl.concat(traces).unique(
            ["trace_id", "__trace_conversation"], keep="first", maintain_order=True
        )
        events = link_conversations(events, spans_by_trace)
        calls = link_conversations(calls, spans_by_trace)
    result: dict[str, LoadedSource] = {}
    for target, parts, position in ((request, events, 2), *((d, calls, 3) for d in derived)):
        combined = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
        if request.format == "chat" and target is request:
            _refuse_shared_chat_ids(combined)
        if request.format == "otlp_json":
            combined, repeated = _drop_repeated_spans(combined, target.name)
            notes += repeated
        frame, skipped, reasons = _canonical_format_frame(combined, target, on_bad_rows)
        reports = tuple(
            FileReport(target.name, str(path), request.format, size, counts[position - 2], 0)
            for path, size, *counts in sizes
        )
        if skipped:
            last = reports[-1]
            reports = (
                *reports[:-1],
                FileReport(
                    last.source,
                    last.path,
                    last.format,
                    last.size_bytes,
                    last.rows - skipped,
                    skipped,
                    reasons,
                ),
            )
        result[target.name] = LoadedSource(
            target.name, frame, reports, tuple(ignored), tuple(notes)
        )
    return result


def _refuse_shared_chat_ids(events: pl.DataFrame) -> None:
    """Each chat record is one conversation: two records with one id would be counted as one
    conversation (their messages merged, turns repeated), so they are refused."""
    if events.height == 0 or "conversation_id" not in events.columns:
        return
    record = pl.col(LOCATION).str.replace(r" messages\[\d+\].*$", "")
    records = (
        events.filter(pl.col("event") == "message")
        .select(pl.col("conversation_id"), record.alias("record"))
        .unique(maintain_order=True)
    )
    shared = records.filter(pl.col("conversation_id").is_duplicated())
    if shared.height == 0:
        return
    conversation = shared.item(0, "conversation_id")
    places = shared.filter(pl.col("conversation_id") == conversation).get_column("record")
    raise InputDataError(
        f"{places[1]}: conversation id {conversation!r} is also the id of {places[0]}: each "
        "record is one conversation, so their messages would be counted as one; give each "
        "record its own id (options.conversation_id names the field holding it)"
    )


def _drop_repeated_spans(frame: pl.DataFrame, name: str) -> tuple[pl.DataFrame, list[str]]:
    """An OTLP span exported twice (same traceId and spanId: a retried export, overlapping
    files) is read once, with a note; spans without ids are kept as they are."""
    if frame.height == 0 or not {"trace_id", "span_id"} <= set(frame.columns):
        return frame, []
    first = pl.struct("trace_id", "span_id").is_first_distinct() | pl.col("span_id").is_null()
    repeated = frame.filter(~first)
    if repeated.height == 0:
        return frame, []
    example = repeated.row(0, named=True)
    original = frame.filter(
        (pl.col("trace_id") == example["trace_id"]) & (pl.col("span_id") == example["span_id"])
    ).item(0, LOCATION)
    note = (
        f"source {name!r}: {repeated.height} OTLP span{'s' if repeated.height > 1 else ''} "
        f"exported more than once (same traceId and spanId) read once: e.g. "
        f"{example[LOCATION]} repeats {original}"
    )
    return frame.filter(first), [note]


def _canonical_format_frame(
    frame: pl.DataFrame, request: SourceRequest, on_bad_rows: OnBadRows
) -> tuple[pl.LazyFrame, int, tuple[str, ...]]:
    """Type a format reader's frame like any source; a bad value is located by the reader's
    location column (file:line and the message / span it came from). Timestamps may be
    missing here (chat transcripts often have none): `ts` is then null, not an error."""
    columns = canonical.CANONICAL_TABLES.get(request.name, {})
    if frame.height == 0:
        return empty_source_frame(request), 0, ()
    required = [c.name for c in columns.values() if c.required and c.name != "ts"]
    lazy = _widen(frame.lazy(), frame.schema).with_row_index(_ROW)
    where = f"source {request.name!r} ({request.format or 'format'})"
    typed, checks = _canonical_frame(lazy, request, where, frame, with_flags=True)
    flags = [f"bad_{i}" for i in range(len(checks))] + [f"miss_{n}" for n in required]
    converted = typed.with_columns(
        [_required_missing(n, columns[n].dtype).alias(f"miss_{n}") for n in required]
    ).collect()
    any_bad = pl.any_horizontal([pl.col(n) for n in flags]) if flags else pl.lit(False)
    offenders = converted.filter(any_bad)
    keep = [c for c in converted.columns if c not in (_ROW, LOCATION, *flags)]
    summed = _summed_columns(converted.schema, request.summed)
    good = converted.filter(~any_bad)
    if summed and (
        found := _sum_overflow(
            request.name, summed, good.select(_abs_sums(summed, converted.schema))
        )
    ):
        column, _, what = found
        at = good.select(pl.col(LOCATION), pl.col(column)).select(pl.all().get(_largest(column)))
        raise InputDataError(f"{at.item(0, 0)}: column {column!r}: {at.item(0, 1)}: {what}")
    if offenders.height == 0:
        return converted.select(keep).lazy(), 0, ()
    first = offenders.row(0, named=True)
    flag = next(n for n in flags if first[n])
    if flag.startswith("bad_"):
        column, _, expected = checks[int(flag[4:])]
        raw = frame.get_column(column)[first[_ROW]] if column in frame.columns else None
        what = f"column {column!r}: expected {expected}, got {raw!r}"
    else:
        what = missing_message(flag[5:], first[flag[5:]])
    place = f"{first[LOCATION]}: {what}"
    if on_bad_rows == "error":
        more = f" ({offenders.height - 1} more bad rows)" if offenders.height > 1 else ""
        raise InputDataError(
            f"{place}{more}; fix the data, map the column in the spec, or pass --on-bad-rows skip"
        )
    kept = converted.filter(~any_bad).select(keep)
    return kept.lazy(), offenders.height, (place,)
