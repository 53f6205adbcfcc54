"""A source's rows read by a SQL engine itself: the planner (docs/architecture.md, "Engines").

`plan_source` turns one spec source and the Parquet files kpictl's reader resolved for it
(paths, each file's schema as polars reads it, its hive partition values) into a SQL relation
that gives exactly the rows kpictl's reader gives — the same columns, names and canonical
types, the same rows — or says why it cannot (`HandOver`: the engine then takes the rows
kpictl read). Pure: no file is opened here; the engine reads the schemas and runs the SQL.

What it writes, per dialect (`duckdb`, `spark`):

- a scan of the files in kpictl's order (DuckDB `read_parquet([...])` with its `file_index`
  and `file_row_number` virtual columns; Spark `parquet.`path`` with `_metadata.file_path`
  and `_metadata.row_index`), the hive partition values as kpictl reads them (text, from the
  folders under the source's root: never the engine's own partition discovery, which types
  and decodes them);
- each column as `io.read` makes it: renamed (`from:`), cast to the canonical type where the
  cast is the same one polars does (integers widened, numbers to DOUBLE with NaN/±inf a bad
  value, floats to BIGINT only when whole, timestamps to UTC microseconds, epoch numbers with
  their unit — half-to-even rounding as polars rounds —, ISO-8601 text in the subset both
  parse alike, text "true/t/1/yes" / "false/f/0/no" as booleans), the rest refused;
- `__kpictl_row`: the row's position in its source as kpictl reads it — (file ordinal in
  kpictl's sorted path order) · 2^40 + (row index within the file) — the tie-break after `ts`
  for FIRST/LAST and LEAD, the same total order the polars engine uses;
- row checks: per fallible conversion a predicate true where a value does not convert (a bad
  row: the engine reports the first one, with file, row, column and expectation, as the
  reader does), and per text timestamp column one true where the text is outside the subset
  proven equal (`unproven`: the engine then hands over kpictl's rows instead).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import polars as pl

from kpictl.engine.sources import priced
from kpictl.errors import InputDataError
from kpictl.io import schema as canonical
from kpictl.io.read import (
    ColumnRule,
    LoadedSource,
    ParquetFile,
    Sources,
    describe_dtype,
    missing_message,
    parquet_files,
)
from kpictl.spec.model import OUTCOME_SOURCE, SourceSpec, Spec
from kpictl.sql.dialect import Dialect

ROW_POSITION = "__kpictl_row"
"""The column holding a source row's position in its source as kpictl reads it (files in
sorted path order, rows in file order): the tie-break after ts for FIRST/LAST and windows.
Read by the engine itself: file ordinal · 2^40 + row index in the file."""
FILE_SHIFT = 2**40  # rows per file the key leaves room for (a Parquet file holds far fewer)

_FILE = "__kpictl_file"  # the file's ordinal in kpictl's order (a remote read: its path)
_FILE_ROW = "__kpictl_file_row"  # the row's index within its file (0-based)
_CONTENT = "__kpictl_content"  # a remote row without a file: its content as JSON
_RESERVED = {
    _FILE,
    _FILE_ROW,
    _CONTENT,
    ROW_POSITION,
    "filename",
    "file_row_number",
    "file_index",
    "_metadata",
}

_EPOCH_FACTORS = {"s": 1_000_000, "ms": 1_000, "us": 1}  # to microseconds; "ns": divided
_INT64_MAX = 2**63 - 1
# |µs| a timestamp may hold on every engine (years 1677-2262, the ns range); an epoch outside
# it is not proven to read alike, the rows then come from kpictl's reader
_SAFE_MICROS = 9_223_372_036_854_775

# ISO-8601 text both polars (kpictl's formats) and the engines parse to the same instant:
# date, or date and time (T or space), 0-6 fraction digits, Z or an offset ±HH[[:]MM]
_ISO_TEXT = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?)?"
)
# Rust's char::is_whitespace (polars' strip_chars): the White_Space property
_WHITESPACE = (
    r"[\t\n\x0b\f\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
)
_TRUE_WORDS = ("true", "t", "1", "yes")
_FALSE_WORDS = ("false", "f", "0", "no")
_NARROW_INTS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)


@dataclass(frozen=True)
class RowCheck:
    """A conversion that can fail: `bad` (SQL over the scan's raw columns) is true where a
    row's value does not convert. kind `bad`: the row is an error (`expected` says what the
    column must hold; `missing`: a required column empty); `unproven`: the value is outside
    what the SQL conversion is proven to read as polars does."""

    column: str
    kind: Literal["bad", "missing", "unproven"]
    expected: str
    raw: str | None  # SQL of the raw value, for the message (None: the column was missing)


@dataclass(frozen=True)
class RemoteScan:
    """A source kpictl never opens, in Spark SQL: `relation` (parquet.`s3a://…` or a catalog
    table's name), `location` for messages, and whether its rows have `_metadata` (the file
    path and row index: the order of a source's rows; without it, their content)."""

    relation: str
    location: str
    located: bool = True

    @property
    def order(self) -> str:
        """How rows with the same ts are ordered (docs/architecture.md, "Engines")."""
        if self.located:
            return "by file path, then row in file (_metadata.file_path, _metadata.row_index)"
        return (
            "by their content (xxhash64 of the row as JSON, then that JSON): the table has no "
            "_metadata file path and row index"
        )


@dataclass(frozen=True)
class DirectRead:
    """A source read by the engine itself: `relation` is a SELECT of the canonical rows (with
    `ROW_POSITION`), `flags` a SELECT of (`__kpictl_file`, `__kpictl_file_row`, one Boolean column
    `check_<i>` per entry of `checks`) over the same rows."""

    source: str
    dialect: Dialect
    files: tuple[str, ...]
    columns: tuple[str, ...]
    relation: str
    flags: str
    checks: tuple[RowCheck, ...]
    # the canonical columns' polars dtypes (as kpictl's reader would make them)
    dtypes: tuple[tuple[str, pl.DataType], ...] = ()
    # a source kpictl never opens: the engine scans it (its files are the engine's to list)
    remote: RemoteScan | None = None

    def count_sql(self) -> str:
        """One row: the rows read (`rows`), then per check the rows it flags (`check_<i>`)."""
        counts = "".join(
            f", COUNT(*) FILTER (WHERE check_{i}) AS check_{i}" for i in range(len(self.checks))
        )
        return f"SELECT COUNT(*) AS rows{counts} FROM ({self.flags}) AS flags"

    def first_bad_sql(self, kinds: Sequence[str] = ("bad", "missing")) -> str:
        """The first flagged row in kpictl's order (file, then row) with its flags, and how
        many rows of its file are flagged (`in_file`)."""
        picked = [f"check_{i}" for i, c in enumerate(self.checks) if c.kind in kinds]
        cond = " OR ".join(picked) or "FALSE"
        return (
            f"SELECT *, COUNT(*) OVER (PARTITION BY {_FILE}) AS in_file FROM ({self.flags}) "
            f"AS flags WHERE {cond} ORDER BY {_FILE}, {_FILE_ROW} LIMIT 1"
        )

    def raw_value_sql(self, check: int, file: int, row: int) -> str:
        """The raw value a check flagged, at (file ordinal, row index)."""
        raw = self.checks[check].raw or "NULL"
        path = self.files[file]
        scan = _scan_file(path, self.dialect)
        return f"SELECT {raw} FROM {scan} WHERE {_row_col(self.dialect)} = {row}"


@dataclass(frozen=True)
class HandOver:
    """Why a source's rows cannot be read by the engine itself: it takes kpictl's rows."""

    source: str
    reason: str


# ----------------------------------------------------------------------------------------------
# Dialect spelling
# ----------------------------------------------------------------------------------------------


def quote(name: str, dialect: Dialect) -> str:
    """A column name quoted for `dialect`."""
    if dialect == "spark":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def text_literal(value: str, dialect: Dialect) -> str:
    """A text literal for `dialect` (Spark reads backslash escapes in strings)."""
    if dialect == "spark":
        value = value.replace("\\", "\\\\")
    return "'" + value.replace("'", "''") + "'"


_SQL_TYPES: dict[Dialect, dict[type[pl.DataType], str]] = {
    "duckdb": {
        pl.String: "VARCHAR",
        pl.Int64: "BIGINT",
        pl.Float64: "DOUBLE",
        pl.Boolean: "BOOLEAN",
        pl.Datetime: "TIMESTAMPTZ",
    },
    "spark": {
        pl.String: "STRING",
        pl.Int64: "BIGINT",
        pl.Float64: "DOUBLE",
        pl.Boolean: "BOOLEAN",
        pl.Datetime: "TIMESTAMP",
    },
}


def sql_type(dtype: pl.DataType, dialect: Dialect) -> str | None:
    """The SQL type of a canonical dtype in `dialect` (None: not one kpictl spells)."""
    if isinstance(dtype, pl.Datetime) and dtype != canonical.UTC_TIMESTAMP:
        return None
    return _SQL_TYPES[dialect].get(type(dtype))


def _row_col(dialect: Dialect) -> str:
    return "_metadata.row_index" if dialect == "spark" else "file_row_number"


def _scan_file(path: str, dialect: Dialect) -> str:
    if dialect == "spark":
        return f"parquet.{quote(path, 'spark')}"
    return f"read_parquet({text_literal(path, 'duckdb')})"


def _scan(paths: Sequence[str], ordinals: Sequence[int], dialect: Dialect) -> str:
    """The raw rows of files with one schema, with their file ordinal and row index."""
    if dialect == "spark":
        parts = [
            f"SELECT *, {o} AS {_FILE}, _metadata.row_index AS {_FILE_ROW} "
            f"FROM parquet.{quote(p, 'spark')}"
            for p, o in zip(paths, ordinals, strict=True)
        ]
        return parts[0] if len(parts) == 1 else " UNION ALL ".join(f"({p})" for p in parts)
    files = ", ".join(text_literal(p, "duckdb") for p in paths)
    if list(ordinals) == list(range(ordinals[0], ordinals[0] + len(ordinals))):
        ordinal = f"file_index + {ordinals[0]}" if ordinals[0] else "file_index"
    else:
        arms = " ".join(f"WHEN {i} THEN {o}" for i, o in enumerate(ordinals))
        ordinal = f"CASE file_index {arms} END"
    return (
        f"SELECT *, CAST({ordinal} AS BIGINT) AS {_FILE}, file_row_number AS {_FILE_ROW} "
        f"FROM read_parquet([{files}], hive_partitioning = false)"
    )


# ----------------------------------------------------------------------------------------------
# Conversions: io.read's rules, as SQL
# ----------------------------------------------------------------------------------------------


class _Refused(Exception):
    """A column whose conversion is not proven equal (or not expressible) in SQL."""


@dataclass(frozen=True)
class _Column:
    """A column's SQL and the checks of its conversion: (predicate, check)."""

    sql: str
    checks: tuple[tuple[str, RowCheck], ...] = ()


def _words(expr: str, words: Sequence[str], dialect: Dialect) -> str:
    return f"{expr} IN ({', '.join(text_literal(w, dialect) for w in words)})"


def _matches(expr: str, pattern: str, dialect: Dialect) -> str:
    """`expr` is wholly `pattern` (RE2 in DuckDB, Java regex in Spark: same syntax here)."""
    if dialect == "spark":
        return f"({expr} RLIKE {text_literal('^(' + pattern + ')$', dialect)})"
    return f"regexp_full_match({expr}, {text_literal(pattern, dialect)})"


def _strip(expr: str, dialect: Dialect) -> str:
    """polars' strip_chars(): Unicode white space off both ends."""
    pattern = text_literal(f"^{_WHITESPACE}+|{_WHITESPACE}+$", dialect)
    if dialect == "spark":
        return f"regexp_replace({expr}, {pattern}, '')"
    return f"regexp_replace({expr}, {pattern}, '', 'g')"


def _finite(value: str, dialect: Dialect) -> str:
    if dialect == "spark":
        return f"NOT (isnan({value}) OR abs({value}) = double('infinity'))"
    return f"isfinite({value})"


def _fallible(raw: str, value: str, name: str, expected: str) -> _Column:
    """`value` is null exactly where the non-null raw value does not convert: a bad row."""
    pred = f"({raw} IS NOT NULL AND ({value}) IS NULL)"
    return _Column(value, ((pred, RowCheck(name, "bad", expected, raw)),))


def _convert(
    raw: str,
    source: pl.DataType,
    target: pl.DataType,
    unit: str | None,
    name: str,
    dialect: Dialect,
) -> _Column:
    """`raw` (a column of polars dtype `source`) as `target`, as io.read._coerce does."""
    typed = sql_type(target, dialect)
    if typed is None:
        raise _Refused(f"column {name!r}: the type {target} has no SQL spelling here")
    expected = describe_dtype(target)
    if isinstance(source, pl.Null):
        return _Column(f"CAST(NULL AS {typed})")
    if isinstance(target, pl.Float64):  # NaN and ±inf are bad values (io.read._coerce)
        if not (source.is_integer() or isinstance(source, pl.Float32 | pl.Float64)):
            raise _Refused(f"column {name!r}: {source} to a number is not proven equal")
        value = raw if isinstance(source, pl.Float64) else f"CAST({raw} AS DOUBLE)"
        return _fallible(
            raw, f"CASE WHEN {_finite(value, dialect)} THEN {value} END", name, expected
        )
    if source == target:
        return _Column(raw)
    if isinstance(target, pl.Datetime):
        return _timestamp(raw, source, unit, name, dialect)
    if isinstance(target, pl.Int64):
        if isinstance(source, _NARROW_INTS):
            return _Column(f"CAST({raw} AS BIGINT)")
        if isinstance(source, pl.UInt64):
            whole = f"CASE WHEN {raw} <= {_INT64_MAX} THEN CAST({raw} AS BIGINT) END"
            return _fallible(raw, whole, name, expected)
        if isinstance(source, pl.Float32 | pl.Float64):
            value = f"CAST({raw} AS DOUBLE)"
            exact = (
                f"{_finite(value, dialect)} AND {value} = round({value}) "
                f"AND abs({value}) < 9223372036854775808.0"
            )
            return _fallible(
                raw, f"CASE WHEN {exact} THEN CAST({value} AS BIGINT) END", name, expected
            )
        raise _Refused(f"column {name!r}: {source} to a whole number is not proven equal")
    if isinstance(target, pl.Boolean):
        if isinstance(source, pl.String):
            lowered = f"lower({_strip(raw, dialect)})"
            value = (
                f"CASE WHEN {_words(lowered, _TRUE_WORDS, dialect)} THEN TRUE "
                f"WHEN {_words(lowered, _FALSE_WORDS, dialect)} THEN FALSE END"
            )
            return _fallible(raw, value, name, expected)
        if source.is_integer():
            return _Column(f"({raw} <> 0)")
        raise _Refused(f"column {name!r}: {source} to a boolean is not proven equal")
    if isinstance(target, pl.String):
        if source.is_integer() or isinstance(source, pl.Boolean):
            return _Column(f"CAST({raw} AS {typed})")
        raise _Refused(f"column {name!r}: {source} as text (engines format it differently)")
    raise _Refused(f"column {name!r}: {source} to {target} is not proven equal")


def _timestamp(
    raw: str, source: pl.DataType, unit: str | None, name: str, dialect: Dialect
) -> _Column:
    """`raw` as a UTC timestamp, as io.read._convert makes one."""
    ts = "TIMESTAMPTZ" if dialect == "duckdb" else "TIMESTAMP"
    if isinstance(source, pl.Datetime):
        if source.time_unit == "ns":
            raise _Refused(f"column {name!r}: nanosecond timestamps (truncation not proven equal)")
        if dialect == "spark" and source.time_zone is None:  # read as TIMESTAMP_NTZ
            return _Column(f"to_utc_timestamp(CAST({raw} AS TIMESTAMP), 'UTC')")
        return _Column(f"CAST({raw} AS {ts})")
    if isinstance(source, pl.Date):
        return _Column(f"CAST(CAST({raw} AS TIMESTAMP) AS {ts})")
    if source.is_numeric():
        if unit is None:
            raise _Refused(f"column {name!r}: epoch numbers without a unit (kpictl refuses them)")
        if source.is_integer():
            whole = (
                f"CAST(CASE WHEN {raw} <= {_INT64_MAX} THEN CAST({raw} AS BIGINT) END AS BIGINT)"
                if isinstance(source, pl.UInt64)
                else f"CAST({raw} AS BIGINT)"
            )
            if unit == "ns":  # floor division, as polars' //
                micros = (
                    f"(({whole} - pmod({whole}, 1000)) div 1000)"
                    if dialect == "spark"
                    else f"(({whole} - ((({whole} % 1000) + 1000) % 1000)) // 1000)"
                )
            else:
                factor = _EPOCH_FACTORS[unit]
                bound = _INT64_MAX // factor
                micros = f"(CASE WHEN abs({whole}) <= {bound} THEN {whole} * {factor} END)"
        else:  # rounded half to even, as polars' round
            value = f"CAST({raw} AS DOUBLE)"
            scaled = (
                f"({value} / 1000.0)" if unit == "ns" else f"({value} * {_EPOCH_FACTORS[unit]})"
            )
            rounded = f"bround({scaled}, 0)" if dialect == "spark" else f"round_even({scaled}, 0)"
            micros = (
                f"try_cast({rounded} AS BIGINT)"
                if dialect == "spark"
                else f"TRY_CAST({rounded} AS BIGINT)"
            )
        stamp = (
            f"timestamp_micros({micros})"
            if dialect == "spark"
            else f"CAST(make_timestamp({micros}) AS TIMESTAMPTZ)"
        )
        expected = f"an epoch time in {unit} (since 1970-01-01 UTC) that fits a timestamp"
        # a time beyond years 1677-2262: not proven to read alike, kpictl's reader decides
        value = f"CASE WHEN abs({micros}) <= {_SAFE_MICROS} THEN {stamp} END"
        return _Column(
            value,
            (
                (f"({raw} IS NOT NULL AND {micros} IS NULL)", RowCheck(name, "bad", expected, raw)),
                (
                    f"({micros} IS NOT NULL AND abs({micros}) > {_SAFE_MICROS})",
                    RowCheck(name, "unproven", expected, raw),
                ),
            ),
        )
    if isinstance(source, pl.String):
        matches = _matches(raw, _ISO_TEXT, dialect)
        cast = f"try_cast({raw} AS {ts})" if dialect == "spark" else f"TRY_CAST({raw} AS {ts})"
        expected = describe_dtype(canonical.UTC_TIMESTAMP)
        return _Column(
            f"CASE WHEN {matches} THEN {cast} END",
            (
                # text outside the proven subset: kpictl's reader decides (it may read it)
                (
                    f"({raw} IS NOT NULL AND NOT {matches})",
                    RowCheck(name, "unproven", expected, raw),
                ),
                # in the subset and still no time (2026-02-30): a bad value for both
                (f"({matches} AND {cast} IS NULL)", RowCheck(name, "bad", expected, raw)),
            ),
        )
    raise _Refused(f"column {name!r}: {source} to a timestamp is not proven equal")


def _target(rule: ColumnRule | None, col: canonical.CanonicalColumn | None) -> pl.DataType | None:
    if rule is not None and rule.type is not None:
        return canonical.TYPE_NAMES[rule.type]
    return col.dtype if col is not None else None


def _missing(value: str, dtype: pl.DataType, dialect: Dialect) -> str:
    """io.read._required_missing over the converted value: null, or text starting below "!"
    that is all white space."""
    if isinstance(dtype, pl.String):
        blank = _matches(value, _WHITESPACE + "*", dialect)
        return f"(({value}) IS NULL OR (({value}) < '!' AND {blank}))"
    return f"(({value}) IS NULL)"


# ----------------------------------------------------------------------------------------------
# The plan
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    """Files with one schema (and partition values): the columns made from them."""

    columns: dict[str, tuple[str, pl.DataType]]  # name -> (SQL, the polars dtype it has)
    checks: tuple[tuple[str, RowCheck], ...]
    paths: tuple[str, ...] = ()
    ordinals: tuple[int, ...] = ()


def _refused_source(source: SourceSpec) -> HandOver | None:
    """A source whose rows kpictl makes beyond reading columns (a chat or OTLP format,
    attributed business events)."""
    if source.derived_from is not None or source.format in ("chat", "otlp_json"):
        return HandOver(source.name, f"format {source.format} is read by kpictl's own reader")
    if source.name == OUTCOME_SOURCE and source.attribution is not None:
        reason = "business events are attributed to conversations by kpictl (engine/outcomes.py)"
        return HandOver(source.name, reason)
    return None


def _refused_mapping(source: SourceSpec) -> HandOver | None:
    """A column mapping the SQL does not reproduce (SQL, a default, a nested field)."""
    for m in source.columns:
        if m.sql is not None:
            reason = f"column {m.name!r} is made by SQL (sources.{source.name}.columns)"
        elif m.default is not None:
            reason = f"column {m.name!r} has a default (sources.{source.name}.columns)"
        elif m.source_field and "." in m.source_field:
            reason = f"column {m.name!r} is read from a nested field ({m.source_field})"
        else:
            continue
        return HandOver(source.name, reason)
    return None


def _rules(source: SourceSpec) -> tuple[ColumnRule, ...]:
    return tuple(ColumnRule(m.name, m.source_field, m.sql, m.type, m.unit) for m in source.columns)


def plan_remote(
    source: SourceSpec, scan: RemoteScan, schema: Mapping[str, pl.DataType]
) -> DirectRead | HandOver:
    """The Spark SQL relation of a remote `source` (kpictl never opens it) from `scan`, whose
    columns have `schema` (Spark's, as polars dtypes): every column as kpictl's reader makes
    it, with `ROW_POSITION` the row's file path and row index (or its content), or why the SQL
    cannot give exactly kpictl's rows (`HandOver`: then nothing can, kpictl cannot read it)."""
    refused = _refused_source(source) or _refused_mapping(source)
    if refused is not None:
        return refused
    file = ParquetFile(scan.location, dict(schema))
    clash = sorted(_RESERVED & set(schema))
    if clash:
        return HandOver(source.name, f"{scan.location} has a column named {clash[0]!r}")
    try:
        group = _plan_group(source.name, _rules(source), file, "spark")
    except _Refused as exc:
        return HandOver(source.name, str(exc))
    group = replace(group, paths=(scan.location,), ordinals=(0,))
    return _assemble(source.name, "spark", [file], [group], scan)


def plan_source(
    source: SourceSpec,
    files: Sequence[ParquetFile],
    dialect: Dialect = "duckdb",
) -> DirectRead | HandOver:
    """The SQL relation of `source`'s rows read from `files` (kpictl's resolved Parquet files
    with rows, in its order) by `dialect` itself, or why not (`HandOver`)."""

    def refuse(reason: str) -> HandOver:
        return HandOver(source.name, reason)

    refused = _refused_source(source) or _refused_mapping(source)
    if refused is not None:
        return refused
    if not files:
        return refuse("no Parquet file with rows")
    rules = _rules(source)
    groups: dict[tuple[object, ...], _Group] = {}
    for ordinal, file in enumerate(files):
        clash = sorted(_RESERVED & {*file.schema, *file.partitions})
        if clash:
            return refuse(f"{file.path} has a column named {clash[0]!r}")
        key = (tuple((k, repr(v)) for k, v in file.schema.items()), tuple(file.partitions.items()))
        if key not in groups:
            try:
                groups[key] = _plan_group(source.name, rules, file, dialect)
            except _Refused as exc:
                return refuse(str(exc))
        group = groups[key]
        groups[key] = replace(
            group, paths=(*group.paths, file.path), ordinals=(*group.ordinals, ordinal)
        )
    return _assemble(source.name, dialect, files, list(groups.values()))


def _plan_group(
    name: str, rules: Sequence[ColumnRule], file: ParquetFile, dialect: Dialect
) -> _Group:
    """The columns io.read._canonical_frame makes from one file's schema: every raw column
    (the partition values as text where the file lacks the column), converted where the spec
    or the canonical schema types it, plus the mapped and missing canonical columns."""
    present: dict[str, tuple[str, pl.DataType]] = {
        n: _widened_raw(quote(n, dialect), d) for n, d in file.schema.items()
    }
    for key, value in file.partitions.items():
        present.setdefault(key, (text_literal(value, dialect), pl.String()))
    raw_fields = dict(present)
    for rule in rules:
        field_name = rule.source_field or rule.name
        if field_name in raw_fields:
            present[rule.name] = raw_fields[field_name]
    by_rule = {r.name: r for r in rules}
    columns = canonical.CANONICAL_TABLES.get(name, {})
    out: dict[str, tuple[str, pl.DataType]] = {}
    checks: list[tuple[str, RowCheck]] = []
    for name_ in sorted(present):
        raw, dtype = present[name_]
        found = by_rule.get(name_)
        target = _target(found, columns.get(name_))
        if target is None:
            out[name_] = (raw, dtype)
            continue
        converted = _convert(raw, dtype, target, found.unit if found else None, name_, dialect)
        out[name_] = (converted.sql, target)
        checks += converted.checks
    for col in columns.values():
        if col.name not in out:
            out[col.name] = (f"CAST(NULL AS {sql_type(col.dtype, dialect)})", col.dtype)
    for rule in rules:
        if rule.name not in out:
            dtype = _target(rule, None) or pl.String()
            out[rule.name] = (f"CAST(NULL AS {sql_type(dtype, dialect)})", dtype)
    for col in columns.values():
        if col.required:
            value = out[col.name][0]
            check = RowCheck(col.name, "missing", "a value", value)
            checks.append((_missing(value, col.dtype, dialect), check))
    return _Group(out, tuple(checks))


def _widened_raw(raw: str, dtype: pl.DataType) -> tuple[str, pl.DataType]:
    """io.read._widen: narrow integers read as BIGINT, FLOAT as DOUBLE (both exact)."""
    if isinstance(dtype, _NARROW_INTS) and not isinstance(dtype, pl.Int64):
        return f"CAST({raw} AS BIGINT)", pl.Int64()
    if isinstance(dtype, pl.Float32):
        return f"CAST({raw} AS DOUBLE)", pl.Float64()
    return raw, dtype


_NULL_TYPES: dict[type[pl.DataType], tuple[str, str]] = {  # (DuckDB, Spark)
    pl.String: ("VARCHAR", "STRING"),
    pl.Int8: ("TINYINT", "TINYINT"),
    pl.Int16: ("SMALLINT", "SMALLINT"),
    pl.Int32: ("INTEGER", "INT"),
    pl.Int64: ("BIGINT", "BIGINT"),
    pl.Float32: ("FLOAT", "FLOAT"),
    pl.Float64: ("DOUBLE", "DOUBLE"),
    pl.Boolean: ("BOOLEAN", "BOOLEAN"),
    pl.Date: ("DATE", "DATE"),
}


def _supertype(a: pl.DataType, b: pl.DataType) -> pl.DataType:
    """The type polars' diagonal_relaxed concat gives a column of types `a` and `b`."""
    if a == b:
        return a
    frames = [pl.LazyFrame(schema={"x": a}), pl.LazyFrame(schema={"x": b})]
    return pl.concat(frames, how="diagonal_relaxed").collect_schema()["x"]


def _widened(sql: str, dtype: pl.DataType, target: pl.DataType, dialect: Dialect) -> str | None:
    """`sql` (of `dtype`) cast to the wider `target` where the cast is the same on every
    engine (integers to wider integers, to DOUBLE or to text; booleans to text); None else."""
    null = _null_of(target, dialect)
    if null is None or not (dtype.is_integer() or isinstance(dtype, pl.Boolean | pl.Null)):
        return None
    spelled = null.removeprefix("CAST(NULL AS ").removesuffix(")")
    if isinstance(target, pl.String) or (target.is_numeric() and not isinstance(dtype, pl.Boolean)):
        return f"CAST({sql} AS {spelled})"
    return None


def _null_of(dtype: pl.DataType, dialect: Dialect) -> str | None:
    """A typed null of `dtype` (for files without the column), None when not spelled here."""
    if dtype == canonical.UTC_TIMESTAMP:
        return f"CAST(NULL AS {sql_type(dtype, dialect)})"
    types = _NULL_TYPES.get(type(dtype))
    return None if types is None else f"CAST(NULL AS {types[dialect == 'spark']})"


def _remote_scan(scan: RemoteScan) -> str:
    """A remote source's raw rows with their file path and row index (or none: its content)."""
    if scan.located:
        return (
            f"SELECT *, _metadata.file_path AS {_FILE}, _metadata.row_index AS {_FILE_ROW} "
            f"FROM {scan.relation}"
        )
    return (
        f"SELECT *, CAST(NULL AS STRING) AS {_FILE}, CAST(NULL AS BIGINT) AS {_FILE_ROW}, "
        f"to_json(struct(*)) AS {_CONTENT} FROM {scan.relation}"
    )


def _assemble(
    name: str,
    dialect: Dialect,
    files: Sequence[ParquetFile],
    groups: list[_Group],
    remote: RemoteScan | None = None,
) -> DirectRead | HandOver:
    """One relation over every group: the same columns, in one order, in each (polars'
    diagonal concat: a column a file lacks is null there)."""
    dtypes: dict[str, pl.DataType] = {}
    for group in groups:
        for col, (_, dtype) in group.columns.items():
            dtypes[col] = _supertype(dtypes.get(col, dtype), dtype)
    for group in groups:  # a column of other types in other files: widened as polars does
        for col, (sql, dtype) in list(group.columns.items()):
            if dtype == dtypes[col]:
                continue
            widened = _widened(sql, dtype, dtypes[col], dialect)
            if widened is None:
                return HandOver(
                    name, f"column {col!r} is {dtype} in one file and {dtypes[col]} in another"
                )
            group.columns[col] = (widened, dtypes[col])
    names = sorted(dtypes)
    fills: dict[str, str] = {}
    for col in names:
        if any(col not in g.columns for g in groups):
            null = _null_of(dtypes[col], dialect)
            if null is None:
                return HandOver(name, f"column {col!r} ({dtypes[col]}) is missing from some files")
            fills[col] = null
    # the checks in io.read's order: converted columns by name, then the required ones
    ordered: list[RowCheck] = []
    for kinds in (("bad", "unproven"), ("missing",)):
        found = [c for g in groups for _, c in g.checks if c.kind in kinds and c not in ordered]
        ordered += sorted(dict.fromkeys(found), key=lambda c: (c.column, c.kind))
    key = f"{_FILE} * {FILE_SHIFT} + {_FILE_ROW}"
    if remote is not None:  # the row's file path and index, or its content
        key = (
            f"named_struct('file', {_FILE}, 'row', {_FILE_ROW})"
            if remote.located
            else f"named_struct('hash', xxhash64({_CONTENT}), 'content', {_CONTENT})"
        )
    selects, flag_selects = [], []
    for group in groups:
        scan = (
            _scan(group.paths, group.ordinals, dialect) if remote is None else _remote_scan(remote)
        )
        cols = ", ".join(
            f"{group.columns[c][0] if c in group.columns else fills[c]} AS {quote(c, dialect)}"
            for c in names
        )
        selects.append(f"SELECT {cols}, {key} AS {ROW_POSITION}\nFROM ({scan}) AS raw")
        preds = {c: p for p, c in group.checks}
        flags = "".join(f", {preds.get(c, 'FALSE')} AS check_{i}" for i, c in enumerate(ordered))
        if remote is not None:  # the raw values, for the message (no file to look them up in)
            flags += "".join(
                f", CAST({c.raw or 'NULL'} AS STRING) AS raw_{i}" for i, c in enumerate(ordered)
            )
        flag_selects.append(f"SELECT {_FILE}, {_FILE_ROW}{flags} FROM ({scan}) AS raw")
    return DirectRead(
        source=name,
        dialect=dialect,
        files=tuple(f.path for f in files),
        columns=tuple(names),
        relation="\nUNION ALL\n".join(selects),
        flags="\nUNION ALL\n".join(flag_selects),
        checks=tuple(ordered),
        dtypes=tuple((c, dtypes[c]) for c in names),
        remote=remote,
    )


# ----------------------------------------------------------------------------------------------
# Checking a read before it is used
# ----------------------------------------------------------------------------------------------

Fetch = Callable[[str], list[dict[str, Any]]]
"""Runs one query on the engine and returns its rows (the engine's side of `verify_read`)."""


def verify_read(plan: DirectRead, rows: int | None, fetch: Fetch) -> str | None:
    """Check `plan`'s rows on the engine before they are used (one counting query): a value
    outside what the SQL reads as polars does gives the reason to hand kpictl's rows over
    instead (kpictl's reader then decides, and reports a bad one); a value that does not
    convert raises InputDataError naming the first such row (file, row, column, what was
    expected, the value), as kpictl's reader does; a row count other than kpictl's (`rows`)
    is a reason to hand over too (None: a remote source, whose rows kpictl never counts).
    None: the engine's rows are kpictl's rows."""
    counts = fetch(plan.count_sql())[0]
    flagged = {kind: 0 for kind in ("bad", "missing", "unproven")}
    for i, check in enumerate(plan.checks):
        flagged[check.kind] += int(counts[f"check_{i}"] or 0)
    if flagged["unproven"]:
        column = next(
            c.column
            for i, c in enumerate(plan.checks)
            if c.kind == "unproven" and counts[f"check_{i}"]
        )
        return (
            f"{flagged['unproven']:,} values of column {column!r} are outside what the SQL "
            "reads exactly as kpictl does"
        )
    if flagged["bad"] or flagged["missing"]:
        first = fetch(plan.first_bad_sql())[0]
        i = next(
            i
            for i, c in enumerate(plan.checks)
            if c.kind in ("bad", "missing") and first[f"check_{i}"]
        )
        check = plan.checks[i]
        if plan.remote is not None:
            path, row = first[_FILE], first[_FILE_ROW]
            got = first[f"raw_{i}"]
            at = plan.remote.location if path is None else f"{path} (row {int(row) + 1})"
        else:
            file, row = int(first[_FILE]), int(first[_FILE_ROW])
            value = fetch(plan.raw_value_sql(i, file, row))[0]
            got = next(iter(value.values()))
            at = f"{plan.files[file]} (row {row + 1})"
        if check.kind == "missing":
            what = missing_message(check.column, got)
        else:
            what = f"column {check.column!r}: expected {check.expected}, got {got!r}"
        more = int(first["in_file"]) - 1
        extra = f" ({more} more bad rows)" if more else ""
        fix = (  # kpictl cannot skip rows it does not read
            "fix the data or map the column in the spec"
            if plan.remote is not None
            else "fix the data, map the column in the spec, or pass --on-bad-rows skip"
        )
        raise InputDataError(f"{at}: {what}{extra}; {fix}")
    if rows is not None and int(counts["rows"]) != rows:
        return f"the files hold {int(counts['rows']):,} rows where kpictl read {rows:,}"
    return None


# ----------------------------------------------------------------------------------------------
# A run's source
# ----------------------------------------------------------------------------------------------


def source_read(spec: Spec, sources: Sources, name: str, dialect: Dialect) -> DirectRead | HandOver:
    """How source `name` of a run reaches a `dialect` engine: its files read by the engine
    (`DirectRead`, to check with `verify_read` before use) or kpictl's rows handed over
    (`HandOver`, with the reason). Reads each Parquet file's footer (its schema), no rows."""
    source = spec.sources.get(name)
    loaded: LoadedSource | None = sources.by_name.get(name)
    if source is None or loaded is None:
        return HandOver(name, "not read from files in this run")
    if loaded.remote is not None:  # planned and checked when the engine read it
        plan: DirectRead = loaded.remote.plan
        return plan
    refused = _refused_source(source)
    if refused is not None:
        return refused
    if loaded.unusable is not None:
        return HandOver(name, loaded.unusable)
    if priced(spec) and name in canonical.CANONICAL_TABLES:
        return HandOver(name, "its rows are priced by kpictl (pricing:, or a chat/OTLP source)")
    files = parquet_files(loaded)
    if isinstance(files, str):
        return HandOver(name, files)
    return plan_source(source, files, dialect)


def read_comment(read: DirectRead | HandOver, files: Sequence[str]) -> str:
    """What `kpictl compile` says of a source's rows, as a SQL comment."""
    view = f"source_{read.source}"
    if isinstance(read, DirectRead) and read.remote is not None:
        return (
            f"-- {view}: read by spark itself from {read.remote.location} (kpictl never lists "
            "or opens it), every column made as kpictl's reader makes it and checked first (a "
            f"value that does not convert is an error); {ROW_POSITION} orders rows with the "
            f"same ts {read.remote.order}"
        )
    if isinstance(read, DirectRead):
        return (
            f"-- {view}: read by {read.dialect} from {len(read.files)} Parquet file(s) as kpictl "
            f"reads them (checked first: a value that does not convert is an error, one outside "
            f"what this SQL reads exactly hands kpictl's rows over), with {ROW_POSITION} their "
            "position (file ordinal * 2^40 + row in file)"
        )
    return (
        f"-- {view}: the rows of source {read.source!r} as kpictl reads them "
        f"({', '.join(files) or 'no files'}), with {ROW_POSITION} their position, handed over "
        f"(not read by the engine itself: {read.reason})"
    )
