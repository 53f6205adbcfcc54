"""Column mapping and canonical typing: a source's column rules (`from:` a field or a dotted
struct path, SQL, a default, a declared type and epoch unit) and the canonical columns applied
to a frame, with the checks a conversion can fail (`canonical_columns`)."""

from __future__ import annotations

from typing import Any

import polars as pl

from kpictl.errors import InputDataError, did_you_mean
from kpictl.io import schema as canonical
from kpictl.io.request import ColumnRule, SourceRequest
from kpictl.sql.expr import ExpressionProblem, compile_sql, first_line

_TIMESTAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d",
)


_EPOCH_UNITS = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}


_NARROW_INTS = (pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16, pl.UInt32)


ROW_INDEX = "__kpictl_row"


def expected_fields(request: SourceRequest) -> dict[str, pl.DataType]:
    """The type each top-level JSON field of a source is read as (canonical columns and the
    spec's typed columns), by field name."""
    expected: dict[str, pl.DataType] = {
        name: column.dtype
        for name, column in canonical.CANONICAL_TABLES.get(request.name, {}).items()
    }
    for rule in request.columns:
        target = target_dtype(rule, canonical.CANONICAL_TABLES.get(request.name, {}).get(rule.name))
        field_name = rule.source_field or rule.name
        if rule.sql is None and target is not None and "." not in field_name:
            expected.pop(rule.name, None)
            expected[field_name] = target
    return expected


def widen(frame: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    casts = []
    for name, dtype in schema.items():
        if isinstance(dtype, _NARROW_INTS):
            casts.append(pl.col(name).cast(pl.Int64))
        elif isinstance(dtype, pl.Float32):
            casts.append(pl.col(name).cast(pl.Float64))
    return frame.with_columns(casts) if casts else frame


def field_expr(source_field: str, schema: pl.Schema) -> pl.Expr | None:
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


def target_dtype(
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


def required_missing(name: str, dtype: pl.DataType | None) -> pl.Expr:
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


def canonical_columns(
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
    visible = [n for n in schema.names() if n != ROW_INDEX]
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
            found = field_expr(field_name, schema)
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
        target = target_dtype(maybe_rule, columns.get(name))
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
        pl.lit(None, dtype=target_dtype(rule, None) or pl.String()).alias(rule.name)
        for rule in request.columns
        if rule.name not in present and rule.name not in columns
    ]
    if with_flags:
        mapped += [bad.alias(f"bad_{i}") for i, (_, bad, _) in enumerate(checks)]
    result = frame.with_columns(mapped) if mapped else frame
    return result, checks
