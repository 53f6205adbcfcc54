"""Every row of a file checked in the canonical schema: a value that does not convert, or a
required column empty, located (`file:line` for JSONL, `file (row N)` for Parquet) and an
error or skipped; epoch units that put every row before 2000 or after 2100; integer columns
whose sum would overflow Int64."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from kpictl.errors import InputDataError
from kpictl.io import schema as canonical
from kpictl.io.columns import (
    ROW_INDEX,
    canonical_columns,
    field_expr,
    missing_message,
    required_missing,
    widen,
)
from kpictl.io.inputbytes import read_input_bytes
from kpictl.io.jsonl import line_numbers
from kpictl.io.request import FileReport, OnBadRows, SourceRequest, record_read


def _locate(path: Path, fmt: str, row: int, data: bytes | None, dropped: Mapping[int, str]) -> str:
    """`file:line` for JSONL (row → its line), `file (row N)` for Parquet. Error path only."""
    if fmt == "jsonl" and data is not None:
        lines = [n for n in line_numbers(data) if n not in dropped]
        if row < len(lines):
            return f"{path}:{lines[row]}"
    return f"{path} (row {row + 1})"


def _any_bad_row(
    frame: pl.LazyFrame, request: SourceRequest, where: str, required: Sequence[str]
) -> bool:
    """Whether a scanned file has a row that fails a check. Without a row index the filter
    reaches the Parquet reader, which skips row groups whose statistics rule it out (no nulls
    in a required column): a clean file is not decoded just to find nothing. One query per
    check, so a check statistics cannot rule out (NaN in a float column) decodes its own
    column only, not every column of the others."""
    converted, checks = canonical_columns(frame, request, where, with_flags=True)
    columns = canonical.CANONICAL_TABLES.get(request.name, {})
    bad = [pl.col(f"bad_{i}") for i in range(len(checks))] + [
        required_missing(n, columns[n].dtype) for n in required
    ]
    if not bad:
        return False
    # one after the other: collect_all merges the scans, and the merged scan decodes all
    return any(converted.filter(b).select(pl.len()).collect().item() > 0 for b in bad)


def checked_frame(
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
    record_read(path, "check")
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
    frame = widen(frame, frame.collect_schema())
    probe = frame.collect() if fmt == "jsonl" else None
    columns = canonical.CANONICAL_TABLES.get(request.name, {})
    required = [c.name for c in columns.values() if c.required]
    indexed = frame.with_row_index(ROW_INDEX)
    converted, checks = canonical_columns(indexed, request, str(path), probe, with_flags=True)
    flag_names = [f"bad_{i}" for i in range(len(checks))] + [f"miss_{n}" for n in required]
    converted = converted.with_columns(
        [required_missing(n, columns[n].dtype).alias(f"miss_{n}") for n in required]
    )
    any_bad = pl.any_horizontal([pl.col(n) for n in flag_names]) if flag_names else pl.lit(False)
    if probe is not None:  # in memory: convert once, keep the result
        converted = converted.collect().lazy()
        offenders = converted.filter(any_bad).select(ROW_INDEX, *flag_names, *required).collect()
    elif _any_bad_row(frame, request, str(path), required):
        offenders = converted.filter(any_bad).select(ROW_INDEX, *flag_names, *required).collect()
    else:
        offenders = pl.DataFrame()
    if probe is not None:
        canonical_frame = converted.drop(ROW_INDEX, *flag_names)
    else:  # lazily scanned: a row index in the plan would slow every later query
        canonical_frame, _ = canonical_columns(frame, request, str(path))
    skipped_rows = 0
    reasons = [f"line {n}: {r}" for n, r in list(dropped.items())[:5]]
    if offenders.height:
        first = offenders.row(0, named=True)
        flag = next(n for n in flag_names if first[n])
        if flag.startswith("bad_"):
            column, _, expected = checks[int(flag[4:])]
            original = frame.with_row_index(ROW_INDEX).filter(pl.col(ROW_INDEX) == first[ROW_INDEX])
            value = _original_value(original, request, column)
            what = f"column {column!r}: expected {expected}, got {value!r}"
        else:
            column = flag[5:]
            what = missing_message(column, first[column])
        where = _locate(path, fmt, first[ROW_INDEX], data, dropped)
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
        canonical_frame = converted.filter(~any_bad).drop(ROW_INDEX, *flag_names)
        if probe is None:
            canonical_frame = canonical_frame.collect().lazy()  # filtered once
    check_epoch_units(path, request, frame.collect_schema(), canonical_frame)
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


def check_epoch_units(
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
        and (found := field_expr(rule.source_field or rule.name, raw)) is not None
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
    expr = field_expr(field_name, row.collect_schema())
    if expr is None:
        return None
    return row.select(expr).collect().item()


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


def summed_columns(schema: pl.Schema, summed: Sequence[str] = ()) -> list[str]:
    return [
        c
        for c, dtype in schema.items()
        if (c in _SUMMED_INTEGERS or c in summed) and dtype.is_integer()
    ]


def sum_overflow(
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


def abs_sums(columns: Sequence[str], schema: pl.Schema) -> list[pl.Expr]:
    return [
        pl.col(c).cast(pl.Float64).abs().sum().alias(c) if c in schema else pl.lit(0.0).alias(c)
        for c in columns
    ]


def largest_row(column: str) -> pl.Expr:
    """The first row holding the column's largest |value| (cast first: |Int64 min|
    overflows; arg_max may name any of several equal maxima)."""
    size = pl.col(column).cast(pl.Float64).abs()
    return (size == size.max()).arg_true().first()


def check_sums(
    name: str, frames: Sequence[tuple[pl.LazyFrame, FileReport]], summed: Sequence[str] = ()
) -> None:
    """Refuse integer columns whose values add up past Int64: a SUM of them would wrap around
    to a negative number (two token counts of 5e18 give a negative tokens per task). The sum
    of every summed column together is checked, so adding two totals cannot overflow either.
    One aggregate per file, over those columns only."""
    schemas = [frame.collect_schema() for frame, _ in frames]
    columns = sorted({c for schema in schemas for c in summed_columns(schema, summed)})
    if not columns:
        return
    queries = [
        frame.select(abs_sums(columns, schema))
        for (frame, _), schema in zip(frames, schemas, strict=True)
    ]
    found = sum_overflow(name, columns, pl.concat(pl.collect_all(queries)))
    if found is None:
        return
    column, index, what = found
    frame, report = frames[index]
    largest = frame.select(
        largest_row(column).alias("row"), pl.col(column).get(largest_row(column))
    )
    row, value = largest.collect().row(0)
    raise InputDataError(f"{locate_kept(report, row)}: column {column!r}: {value}: {what}")


def locate_kept(report: FileReport, row: int) -> str:
    """Where the `row`-th kept row of a loaded file is (error path only: JSONL is read again
    to find its line; with skipped rows, the row number among those kept)."""
    path = Path(report.path)
    if report.format == "jsonl" and report.skipped == 0:
        lines = line_numbers(read_input_bytes(path))
        if row < len(lines):
            return f"{path}:{lines[row]}"
    kept = " kept" if report.skipped else ""
    return f"{path} (row {row + 1}{kept})"
