"""Reading agent logs (JSONL, gzipped JSONL, Parquet, the formats of `kpictl.io.formats`) into
frames in the canonical schema: `load_source` (files → checked canonical frames, the JSONL
cache), `load_frames` (in-memory frames), `load_requests` (several sources; a format source
fills the sources derived from it), and `Sources`, what every later layer reads.

A source path is a file, a glob or a folder (`io/files.py`); columns are mapped and typed by
`io/columns.py`, JSONL parsed by `io/jsonl.py`, rows checked by `io/rowchecks.py`. Every
problem names the file, the line (or row), the column, what was expected and what was found.
Inputs are never modified.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from kpictl import __version__ as kpictl_version
from kpictl.errors import EmptyInputError, InputDataError
from kpictl.io import schema as canonical
from kpictl.io.cache import CACHE_FORMAT, JsonlCache, digest_file, jsonl_cache_dir
from kpictl.io.columns import (
    ROW_INDEX,
    canonical_columns,
    describe_dtype,
    expected_fields,
    missing_message,
    required_missing,
    target_dtype,
    widen,
)
from kpictl.io.files import partition_values, source_files, suffix_format
from kpictl.io.formats import FORMAT_NAMES, LOCATION, link_conversations, read_format
from kpictl.io.jsonl import read_jsonl
from kpictl.io.remote import RemoteRows
from kpictl.io.request import ColumnRule, FileReport, OnBadRows, SourceRequest
from kpictl.io.rowchecks import (
    abs_sums,
    check_sums,
    checked_frame,
    largest_row,
    locate_kept,
    sum_overflow,
    summed_columns,
)
from kpictl.sql.expr import first_line

# read.py's own names, then those defined by the modules it reads with that other packages
# import from here (the spec's sources, the engines, the renderers)
__all__ = [
    "ColumnRule",
    "FileReport",
    "LoadedSource",
    "OnBadRows",
    "ParquetFile",
    "SourceRequest",
    "Sources",
    "describe_dtype",
    "empty_source_frame",
    "jsonl_cache_dir",
    "load_format_source",
    "load_frames",
    "load_requests",
    "load_source",
    "locate_row",
    "missing_message",
    "parquet_files",
]


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
    # a source kpictl does not read (s3a://…, a catalog table): what the engine told of it;
    # `frame` then has its columns and refuses to be read (kpictl.io.remote)
    remote: RemoteRows | None = None

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


def locate_row(loaded: LoadedSource, row: int) -> str:
    """Where the `row`-th row of a loaded source comes from: `file:line` for JSONL, else
    `file (row N)` (error and note paths only: a JSONL file is read again to count lines)."""
    for report in loaded.files:
        if row < report.rows:
            return locate_kept(report, row)
        row -= report.rows
    return f"source {loaded.name!r} (row {row + 1})"


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


def load_source(request: SourceRequest, on_bad_rows: OnBadRows = "error") -> LoadedSource:
    """Read every file of one source and stack them in the canonical schema."""
    frames: list[tuple[pl.LazyFrame, FileReport]] = []
    reports: list[FileReport] = []
    files, ignored, notes = source_files(request)
    cache = JsonlCache(request.cache_dir)
    for path, root in files:
        fmt = suffix_format(path, request.format)
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
    check_sums(request.name, frames, request.summed)
    combined = (
        frames[0][0]
        if len(frames) == 1
        else pl.concat([f for f, _ in frames], how="diagonal_relaxed")
    )
    return LoadedSource(
        request.name, combined, tuple(reports), tuple(ignored), tuple(notes), tuple(cache.notes)
    )


def _load_file(
    path: Path,
    root: Path,
    fmt: str,
    request: SourceRequest,
    on_bad_rows: OnBadRows,
    cache: JsonlCache,
) -> tuple[pl.LazyFrame | None, FileReport]:
    size = path.stat().st_size
    partitions = partition_values(path, root)
    if fmt != "jsonl":
        try:
            frame = pl.scan_parquet(path, glob=False)  # `run[1].parquet` is a file name
            rows = frame.select(pl.len()).collect().item()
        except Exception as exc:
            raise InputDataError(f"{path}: cannot read as Parquet: {first_line(exc)}") from exc
        return checked_frame(path, fmt, request, on_bad_rows, frame, rows, size, partitions)
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
    eager, dropped, data = read_jsonl(
        path,
        on_bad_rows,
        fields,
        required_fields,
        expected_fields(request),
        request.max_line_bytes,
    )
    checked, report = checked_frame(
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
            target_dtype(rule, columns.get(rule.name)) or canonical.PASS_THROUGH_DTYPE
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
        lazy = widen(lazy, lazy.collect_schema())
        flagged, checks = canonical_columns(lazy, request, f"<frame {name}>", with_flags=True)
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
        check_sums(name, [(canonical_frame, report)])
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


def load_format_source(
    request: SourceRequest, derived: Sequence[SourceRequest], on_bad_rows: OnBadRows = "error"
) -> dict[str, LoadedSource]:
    """Read a `format: chat | otlp_json` source once: its events under its own name, its tool
    calls under the name of every source derived from it."""
    events: list[pl.DataFrame] = []
    calls: list[pl.DataFrame] = []
    traces: list[pl.DataFrame] = []
    sizes: list[tuple[Path, int, int, int]] = []
    files, ignored, notes = source_files(request)
    for path, root in files:
        frames = read_format(path, request.format, request.options, request.max_line_bytes)
        partitions = [pl.lit(v).alias(k) for k, v in partition_values(path, root).items()]
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
    lazy = widen(frame.lazy(), frame.schema).with_row_index(ROW_INDEX)
    where = f"source {request.name!r} ({request.format or 'format'})"
    typed, checks = canonical_columns(lazy, request, where, frame, with_flags=True)
    flags = [f"bad_{i}" for i in range(len(checks))] + [f"miss_{n}" for n in required]
    converted = typed.with_columns(
        [required_missing(n, columns[n].dtype).alias(f"miss_{n}") for n in required]
    ).collect()
    any_bad = pl.any_horizontal([pl.col(n) for n in flags]) if flags else pl.lit(False)
    offenders = converted.filter(any_bad)
    keep = [c for c in converted.columns if c not in (ROW_INDEX, LOCATION, *flags)]
    summed = summed_columns(converted.schema, request.summed)
    good = converted.filter(~any_bad)
    if summed and (
        found := sum_overflow(request.name, summed, good.select(abs_sums(summed, converted.schema)))
    ):
        column, _, what = found
        at = good.select(pl.col(LOCATION), pl.col(column)).select(pl.all().get(largest_row(column)))
        raise InputDataError(f"{at.item(0, 0)}: column {column!r}: {at.item(0, 1)}: {what}")
    if offenders.height == 0:
        return converted.select(keep).lazy(), 0, ()
    first = offenders.row(0, named=True)
    flag = next(n for n in flags if first[n])
    if flag.startswith("bad_"):
        column, _, expected = checks[int(flag[4:])]
        raw = frame.get_column(column)[first[ROW_INDEX]] if column in frame.columns else None
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
