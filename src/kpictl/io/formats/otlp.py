"""OpenTelemetry GenAI spans (an OTLP JSON trace export, or JSONL of exports) → agent message
events (inference spans, agent runs) and tool calls (execute_tool spans); every span of a trace
takes the conversation id any of its spans carries (`link_conversations`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kpictl.errors import InputDataError
from kpictl.io.formats.records import (
    JSON_SUFFIXES,
    LOCATION,
    FormatFrames,
    InputFormat,
    first_null,
    read_records,
    struct_field,
)
from kpictl.io.inputbytes import MAX_LINE_BYTES

OTLP_OPTION_KEYS = ("conversation_id",)


@dataclass(frozen=True)
class OtlpOptions:
    """OTLP JSON options: extra attribute names that identify a conversation."""

    conversation_id: tuple[str, ...] = ()


# canonical column ← span attribute names, most preferred first (docs/formats.md, OpenTelemetry)
OTLP_ALIASES: dict[str, tuple[str, ...]] = {
    "operation": ("gen_ai.operation.name",),
    "span_kind": ("openinference.span.kind",),
    "conversation": ("gen_ai.conversation.id", "session.id"),
    "provider": ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"),
    "model": (
        "gen_ai.response.model",
        "gen_ai.request.model",
        "llm.model_name",
        "llm.invocation_parameters.model",
    ),
    "input_tokens": (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
    ),
    "output_tokens": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
    ),
    "cache_read_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "llm.token_count.prompt_details.cache_read",
    ),
    "cache_write_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_write.input_tokens",
        "llm.token_count.prompt_details.cache_write",
    ),
    "reasoning_tokens": (
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    ),
    "cost_usd": ("gen_ai.usage.cost", "llm.cost.total"),
    "tool": ("gen_ai.tool.name", "tool.name"),
    "tool_call_id": ("gen_ai.tool.call.id",),
    "error_type": ("error.type",),
    "agent_name": ("gen_ai.agent.name",),
}


INFERENCE_OPERATIONS = ("chat", "text_completion", "generate_content")


AGENT_OPERATIONS = ("invoke_agent",)  # a run of an agent (create_agent only defines one)


_INT_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def _attribute_value(value: pl.Expr, dtype: Any) -> pl.Expr:
    """An OTLP AnyValue ({stringValue | intValue | doubleValue | boolValue | …}) as text."""
    fields = {f.name: f.dtype for f in dtype.fields} if isinstance(dtype, pl.Struct) else {}
    parts = []
    for name in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if name in fields and not isinstance(fields[name], pl.Null):
            parts.append(value.struct.field(name).cast(pl.String))
    for name in ("arrayValue", "kvlistValue"):
        if name in fields and not isinstance(fields[name], pl.Null):
            parts.append(value.struct.field(name).struct.json_encode())
    return pl.coalesce(parts) if parts else pl.lit(None, dtype=pl.String)


def _attributes_wide(frame: pl.DataFrame, column: str, index: str) -> pl.DataFrame:
    """A list of OTLP key/value attributes → one text column per key (vectorised pivot)."""
    dtype = frame.schema.get(column)
    if not (isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct)):
        return frame.select(index)
    inner = {f.name: f.dtype for f in dtype.inner.fields}
    long = (
        frame.select(index, pl.col(column).alias("__a"))
        .explode("__a")
        .filter(pl.col("__a").is_not_null())
    )
    if long.height == 0 or "key" not in inner:
        return frame.select(index)
    value = _attribute_value(pl.col("__a").struct.field("value"), inner.get("value", pl.Null()))
    long = long.select(index, pl.col("__a").struct.field("key").alias("key"), value.alias("v"))
    _refuse_duplicate_attributes(frame, long, index)
    wide = long.pivot(on="key", index=index, values="v", aggregate_function="first")
    return frame.select(index).join(wide, on=index, how="left", maintain_order="left")


def _refuse_duplicate_attributes(frame: pl.DataFrame, long: pl.DataFrame, index: str) -> None:
    """One key twice in one attribute list with different values: which one is meant cannot be
    known (a pivot would keep the first silently). Identical repeats are harmless."""
    values = long.group_by(index, "key").agg(pl.col("v").unique(maintain_order=True).alias("v"))
    twice = values.filter(pl.col("v").list.len() > 1).sort(index)
    if twice.height == 0:
        return
    first = twice.row(0, named=True)
    where = frame.filter(pl.col(index) == first[index]).get_column(LOCATION)[0]
    shown = ", then ".join(repr(v) for v in first["v"][:2])
    raise InputDataError(
        f"{where}: attribute {first['key']!r} is given twice with different values ({shown}): "
        "which one is meant cannot be known; fix the export"
    )


def _normalise_id(column: str) -> pl.Expr:
    """Hex ids as lowercase hex; protobuf-JSON base64 ids decoded to hex."""
    text = pl.col(column).cast(pl.String)
    is_hex = text.str.contains(r"^(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32})$")
    decoded = text.str.decode("base64", strict=False).bin.encode("hex")
    return (
        pl.when(text.is_null() | (text == ""))
        .then(None)
        .when(is_hex)
        .then(text.str.to_lowercase())
        .otherwise(decoded)
    )


def read_otlp(
    path: Path, options: OtlpOptions, max_line_bytes: int = MAX_LINE_BYTES
) -> FormatFrames:
    """One OTLP JSON trace export (or JSONL of exports) → agent message events and tool calls."""
    exports, where = read_records(path, max_line_bytes)
    if exports.height == 0:
        return FormatFrames(pl.DataFrame(), pl.DataFrame(), 0)
    if "resourceSpans" not in exports.columns:
        fields = ", ".join(exports.columns)
        raise InputDataError(
            f"{where[0]}: expected an OTLP trace export "
            '({"resourceSpans": [{"resource": …, "scopeSpans": [{"spans": […]}]}]}); '
            f"fields there: {fields}"
        )
    frame = exports.with_columns(where).select(LOCATION, pl.col("resourceSpans").alias("__rs"))
    frame = _explode_level(frame, "__rs", "resourceSpans")
    rs_type = frame.schema["__rs"]
    resource, _resource_type = struct_field(pl.col("__rs"), rs_type, "resource.attributes")
    scope, scope_type = struct_field(pl.col("__rs"), rs_type, "scopeSpans")
    frame = frame.with_row_index("__res").with_columns(
        resource.alias("__res_attrs"), scope.alias("__ss")
    )
    resource_wide = _attributes_wide(frame, "__res_attrs", "__res")
    resource_wide = resource_wide.rename(
        {c: c.replace(".", "_") for c in resource_wide.columns if c != "__res"}
    )
    if not isinstance(scope_type, pl.List):
        return FormatFrames(pl.DataFrame(), pl.DataFrame(), exports.height)
    frame = _explode_level(frame.select("__res", LOCATION, "__ss"), "__ss", "scopeSpans")
    spans_expr, spans_type = struct_field(pl.col("__ss"), frame.schema["__ss"], "spans")
    if not isinstance(spans_type, pl.List) or not isinstance(spans_type.inner, pl.Struct):
        return FormatFrames(pl.DataFrame(), pl.DataFrame(), exports.height)
    frame = frame.select("__res", LOCATION, spans_expr.alias("__span"))
    frame = _explode_level(frame, "__span", "spans").with_row_index("__span_i")
    stype = spans_type.inner
    span = {
        name: struct_field(pl.col("__span"), stype, name)[0]
        for name in (
            "traceId",
            "spanId",
            "parentSpanId",
            "name",
            "startTimeUnixNano",
            "endTimeUnixNano",
            "status.code",
            "status.message",
            "attributes",
        )
    }
    spans = frame.select(
        "__span_i",
        "__res",
        LOCATION,
        *[expr.alias(f"__{name}") for name, expr in span.items()],
    )
    attrs = _attributes_wide(spans, "__attributes", "__span_i")
    picked = []
    for column, aliases in OTLP_ALIASES.items():
        names = [
            a
            for a in (options.conversation_id if column == "conversation" else ()) + aliases
            if a in attrs.columns
        ]
        picked.append(
            (
                pl.coalesce([pl.col(a) for a in names]) if names else pl.lit(None, dtype=pl.String)
            ).alias(column)
        )
    attrs = attrs.select("__span_i", *picked)
    spans = spans.join(attrs, on="__span_i", how="left", maintain_order="left")
    spans = spans.with_columns(
        _normalise_id("__traceId").alias("trace_id"),
        _normalise_id("__spanId").alias("span_id"),
        _normalise_id("__parentSpanId").alias("parent_span_id"),
    )
    for column in ("__startTimeUnixNano", "__endTimeUnixNano"):
        raw = pl.col(column).cast(pl.String).str.strip_chars()
        spans = spans.with_columns(raw.cast(pl.Int64, strict=False).alias(column + "_ns"))
        wrong = spans.filter(pl.col(column).is_not_null() & pl.col(column + "_ns").is_null())
        if wrong.height:
            row = wrong.row(0, named=True)
            raise InputDataError(
                f"{row[LOCATION]}: span {row['__name']!r}: {column[2:]}: expected nanoseconds "
                f'since 1970 as a decimal string such as "1727776800000000000", got '
                f"{row[column]!r}"
            )
    for column in _INT_COLUMNS:
        spans = spans.with_columns(
            pl.col(column)
            .cast(pl.Float64, strict=False)
            .round(0)
            .cast(pl.Int64, strict=False)
            .alias(column + "_n")
        )
        wrong = spans.filter(pl.col(column).is_not_null() & pl.col(column + "_n").is_null())
        if wrong.height:
            row = wrong.row(0, named=True)
            raise InputDataError(
                f"{row[LOCATION]}: span {row['__name']!r}: {column}: expected a whole number "
                f'(an intValue, often a JSON string such as "123"), got {row[column]!r}'
            )
        spans = spans.drop(column).rename({column + "_n": column})
    status = pl.col("__status.code").cast(pl.String)
    failed = status.is_in(["2", "STATUS_CODE_ERROR"]) | pl.col("error_type").is_not_null()
    kind = pl.col("span_kind").str.to_uppercase()
    is_tool = ((pl.col("operation") == "execute_tool") | (kind == "TOOL")).fill_null(False)
    is_inference = (pl.col("operation").is_in(INFERENCE_OPERATIONS) | (kind == "LLM")).fill_null(
        False
    )
    start = pl.col("__startTimeUnixNano_ns")
    latency = (pl.col("__endTimeUnixNano_ns") - start).cast(pl.Float64) / 1e6
    is_agent = (
        (pl.col("operation").is_in(AGENT_OPERATIONS) | (kind == "AGENT")).fill_null(False)
        & ~is_inference
        & ~is_tool
    )
    spans = spans.with_columns(
        pl.coalesce("conversation", "trace_id").alias("conversation_id"),
        (start // 1000).cast(pl.Datetime("us", "UTC")).alias("ts"),
        latency.alias("latency_ms"),
        (pl.col(LOCATION) + pl.lit(" span ") + pl.col("__name").cast(pl.String)).alias(LOCATION),
    )
    if (bad := first_null(spans, "conversation_id")) is not None:
        raise InputDataError(f"{bad}: no gen_ai.conversation.id and no traceId")
    traces = trace_conversations(spans)
    (spans,) = link_conversations([spans], traces)
    resource_cols = [c for c in resource_wide.columns if c != "__res"]
    spans = spans.join(resource_wide, on="__res", how="left", maintain_order="left")
    common = [
        "conversation_id",
        "ts",
        "latency_ms",
        "trace_id",
        "span_id",
        "parent_span_id",
        "agent_name",
        "provider",
        *resource_cols,
        LOCATION,
    ]
    # an agent run's own usage / cost would total its inference spans' a second time: left off
    usage = [
        pl.when(is_agent).then(None).otherwise(pl.col(c)).alias(c)
        for c in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        )
    ]
    events = spans.filter(is_inference | is_agent).select(
        *common,
        pl.when(is_agent).then(pl.lit("agent_run")).otherwise(pl.lit("message")).alias("event"),
        pl.lit("agent").alias("role"),
        "model",
        *usage,
        pl.when(is_agent)
        .then(None)
        .otherwise(pl.col("cost_usd").cast(pl.Float64, strict=False))
        .alias("cost_usd"),
        pl.col("operation"),
    )
    tool_calls = spans.filter(is_tool & ~is_inference).select(
        *common,
        "tool",
        "tool_call_id",
        pl.when(failed).then(pl.lit("error")).otherwise(pl.lit("ok")).alias("status"),
        pl.when(failed)
        .then(
            pl.coalesce("error_type", pl.col("__status.message").cast(pl.String), pl.lit("error"))
        )
        .alias("error_type"),
        pl.col("cost_usd").cast(pl.Float64, strict=False),
    )
    if (bad := first_null(tool_calls, "tool")) is not None:
        raise InputDataError(f"{bad}: an execute_tool span without gen_ai.tool.name")
    return FormatFrames(events, tool_calls, exports.height, traces)


def trace_conversations(spans: pl.DataFrame) -> pl.DataFrame:
    """The conversation ids that spans carry, per trace: (trace_id, `__trace_conversation`,
    location of the first span carrying it), root spans first."""
    return (
        spans.filter(pl.col("conversation").is_not_null() & pl.col("trace_id").is_not_null())
        .sort(pl.col("parent_span_id").is_not_null(), maintain_order=True)
        .select("trace_id", pl.col("conversation").alias("__trace_conversation"), LOCATION)
        .unique(["trace_id", "__trace_conversation"], keep="first", maintain_order=True)
    )


def link_conversations(frames: Sequence[pl.DataFrame], traces: pl.DataFrame) -> list[pl.DataFrame]:
    """Every span of a trace takes the conversation id found on any span of that trace
    (instrumentations put it on the root span only); frames without a trace_id, or whose trace
    carries no id, keep theirs. Spans of one trace carrying two ids are an error naming both."""
    if traces.height == 0:
        return list(frames)
    clash = traces.filter(pl.len().over("trace_id") > 1)
    if clash.height:
        trace = clash.get_column("trace_id")[0]
        (first, where), (second, other) = (
            clash.filter(pl.col("trace_id") == trace)
            .head(2)
            .select("__trace_conversation", LOCATION)
            .rows()
        )
        raise InputDataError(
            f"{where}: trace {trace} carries two conversation ids, {first!r} and {second!r} "
            f"(at {other}); a trace is one conversation: fix the instrumentation, or name the "
            "attribute that identifies the conversation in options.conversation_id"
        )
    by_trace = traces.select("trace_id", "__trace_conversation")
    return [
        frame.join(by_trace, on="trace_id", how="left", maintain_order="left")
        .with_columns(
            pl.coalesce("__trace_conversation", "conversation_id").alias("conversation_id")
        )
        .drop("__trace_conversation")
        if frame.height and "trace_id" in frame.columns
        else frame
        for frame in frames
    ]


def _explode_level(frame: pl.DataFrame, column: str, name: str) -> pl.DataFrame:
    """Explode one nesting level, extending each row's location with `name[i]`."""
    dtype = frame.schema[column]
    if not isinstance(dtype, pl.List):
        bad = frame.row(0, named=True)[LOCATION]
        raise InputDataError(f"{bad}: {name} is {dtype}; expected a list")
    frame = frame.with_row_index("__parent").explode(column).filter(pl.col(column).is_not_null())
    position = pl.int_range(pl.len()).over("__parent").cast(pl.String)
    return frame.with_columns(pl.col(LOCATION) + pl.lit(f" {name}[") + position + pl.lit("]")).drop(
        "__parent"
    )


OTLP_JSON = InputFormat("otlp_json", JSON_SUFFIXES, OtlpOptions, OTLP_OPTION_KEYS, read_otlp)
