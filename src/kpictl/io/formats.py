"""Logs teams already have → frames in kpictl's column names: chat transcripts and OTLP JSON.

Each reader turns one file into two frames, `events` and `tool_calls`, with canonical column
names (values still raw: the io layer types them like any other source) plus a location column,
`LOCATION`, that says where each row came from (`file:line messages[3]`), so a bad value is
reported at its place. Everything is parsed and reshaped by polars (explode / unnest / joins);
Python only loops over files, option names and attribute aliases.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from kpictl.errors import InputDataError, did_you_mean
from kpictl.io.inputbytes import (
    MAX_JSON_DEPTH,
    MAX_LINE_BYTES,
    long_lines,
    read_input_bytes,
    too_deep,
)
from kpictl.sql.expr import ExpressionProblem, compile_sql, first_line

LOCATION = "__kpictl_location"
FORMAT_NAMES = ("chat", "otlp_json")
FORMAT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
ROLE_MAP = {"assistant": "agent", "developer": "system"}
DEFAULT_TOOL_ERROR = "result LIKE 'Error%'"

# Extra columns the readers make, known to the spec before any data is read (by table).
FORMAT_COLUMNS: dict[str, dict[str, pl.DataType]] = {
    "events": {
        "turn": pl.Int64(),
        "tool": pl.String(),
        "tool_call_id": pl.String(),
        "trace_id": pl.String(),
        "span_id": pl.String(),
        "parent_span_id": pl.String(),
        "provider": pl.String(),
        "agent_name": pl.String(),
        "operation": pl.String(),
        "reasoning_tokens": pl.Int64(),
    },
    "tool_calls": {
        "turn": pl.Int64(),
        "tool_call_id": pl.String(),
        "arguments": pl.String(),
        "result": pl.String(),
        "trace_id": pl.String(),
        "span_id": pl.String(),
        "parent_span_id": pl.String(),
        "provider": pl.String(),
        "agent_name": pl.String(),
    },
}

CHAT_OPTION_KEYS = (
    "messages",
    "conversation_id",
    "ts",
    "message_ts",
    "fields",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "tool_error",
    "escalation_tool",
    "escalation_reason",
)
OTLP_OPTION_KEYS = ("conversation_id",)


@dataclass(frozen=True)
class ChatOptions:
    """Where a chat-transcript record keeps what kpictl needs (every name configurable)."""

    messages: str = "messages"  # the field holding the list of messages
    conversation_id: str | None = None  # record field; default `id`, else <file>#<record>
    ts: str | None = None  # record-level time (used for messages without their own)
    message_ts: str | None = None  # a field of each message holding its time
    fields: Mapping[str, str] | None = None  # column → record field; None: every scalar field
    input_tokens: str = "usage.prompt_tokens"  # message fields (dotted), used when present
    output_tokens: str = "usage.completion_tokens"
    cost_usd: str | None = None  # record-level reported cost (USD), put on its first row
    tool_error: str = DEFAULT_TOOL_ERROR  # SQL over result, tool, arguments, result_<field>
    escalation_tool: str | None = None  # a call of this tool adds an `escalation` event
    escalation_reason: str | None = None  # the argument of that call holding the reason


@dataclass(frozen=True)
class OtlpOptions:
    """OTLP JSON options: extra attribute names that identify a conversation."""

    conversation_id: tuple[str, ...] = ()


@dataclass(frozen=True)
class FormatFrames:
    """What one file of a format gives: events and tool calls (raw values, canonical names).

    `traces` (OTLP only): the conversation ids its spans carry, per trace — one row per
    (trace_id, conversation id) with the first span's location, root spans first — so a source
    of several files can give every span of a trace its conversation (`link_conversations`)."""

    events: pl.DataFrame
    tool_calls: pl.DataFrame
    records: int
    traces: pl.DataFrame = field(default_factory=pl.DataFrame)


# ----------------------------------------------------------------------------------------------
# Reading JSON records (a JSON array, one JSON object, or JSONL), located
# ----------------------------------------------------------------------------------------------


def _is_jsonl(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").endswith((".jsonl", ".ndjson"))


def read_records(
    path: Path, max_line_bytes: int = MAX_LINE_BYTES
) -> tuple[pl.DataFrame, pl.Series]:
    """One row per JSON record of a file, and each record's location (`file:line` for JSONL,
    `file (record N)` for a JSON array). Malformed JSON is reported with its line, and so is
    a JSONL line longer than `max_line_bytes`."""
    data = read_input_bytes(path)
    if not data.strip():
        return pl.DataFrame(), pl.Series(LOCATION, [], dtype=pl.String)
    if _is_jsonl(path):
        long = long_lines(data, max_line_bytes)
        if long:
            raise InputDataError(
                f"{path}:{long[0].number}: a line of {long[0].size:,} bytes, longer than "
                f"--max-line-bytes ({max_line_bytes:,}); raise --max-line-bytes"
            )
        try:
            frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
        except Exception as exc:
            raise _json_error(path, data, exc, jsonl=True) from exc
        lines = [i + 1 for i, line in enumerate(data.split(b"\n")) if line.strip()]
        where = [f"{path}:{n}" for n in lines[: frame.height]]
        return frame, pl.Series(LOCATION, where, dtype=pl.String)
    try:
        first = data.lstrip()[:1]
        frame = pl.read_json(io.BytesIO(data), infer_schema_length=None)
    except Exception as exc:
        raise _json_error(path, data, exc, jsonl=False) from exc
    if first == b"{":  # one object: one record
        return frame, pl.Series(LOCATION, [str(path)], dtype=pl.String)
    where = [f"{path} (record {i + 1})" for i in range(frame.height)]
    return frame, pl.Series(LOCATION, where, dtype=pl.String)


def _json_error(path: Path, data: bytes, exc: Exception, *, jsonl: bool) -> InputDataError:
    """The first malformed place of a file (error path only: Python's json finds the line)."""
    chunks = data.split(b"\n") if jsonl else [data]
    for number, chunk in enumerate(chunks, start=1):
        if not chunk.strip():
            continue
        depth = too_deep(chunk)
        if depth is not None:  # json.loads would recurse that deep (a RecursionError)
            where = f"{path}:{number}" if jsonl else str(path)
            return InputDataError(
                f"{where}: JSON nested {depth:,} levels deep, more than {MAX_JSON_DEPTH}; "
                "fix the file"
            )
        try:
            value = json.loads(chunk)
        except (json.JSONDecodeError, UnicodeDecodeError) as bad:
            line = number if jsonl else getattr(bad, "lineno", 1)
            reason = bad.msg if isinstance(bad, json.JSONDecodeError) else str(bad)
            return InputDataError(f"{path}:{line}: malformed JSON ({reason}); fix the file")
        if jsonl and not isinstance(value, dict):
            return InputDataError(
                f"{path}:{number}: expected one JSON object per line, got {type(value).__name__}"
            )
        if not jsonl and not isinstance(value, dict | list):
            return InputDataError(
                f"{path}: expected a JSON array of records, got {type(value).__name__}"
            )
    return InputDataError(
        f"{path}: cannot read: {first_line(exc)} (a field holds values of incompatible kinds, "
        "e.g. text in one record and a list in another)"
    )


def _field(frame: pl.DataFrame | pl.Schema, path: str) -> pl.Expr | None:
    """`a.b.c` → col(a).struct.field(b)…; None when absent."""
    schema = frame if isinstance(frame, pl.Schema) else frame.schema
    head, *rest = path.split(".")
    if head not in schema:
        return None
    expr, dtype = (
        _struct_field(pl.col(head), schema[head], ".".join(rest))
        if rest
        else (pl.col(head), schema[head])
    )
    return None if isinstance(dtype, pl.Null) and rest else expr


def _struct_field(expr: pl.Expr, dtype: Any, path: str) -> tuple[pl.Expr, Any]:
    """A (dotted) field of a struct expression; (null, Null) when the struct lacks it."""
    for part in path.split("."):
        fields = {f.name: f.dtype for f in dtype.fields} if isinstance(dtype, pl.Struct) else {}
        if part not in fields:
            return pl.lit(None), pl.Null()
        expr, dtype = expr.struct.field(part), fields[part]
    return expr, dtype


def _first_null(frame: pl.DataFrame, column: str) -> str | None:
    """The location of the first row where `column` is null, or None."""
    bad = frame.filter(pl.col(column).is_null())
    return None if bad.height == 0 else str(bad.get_column(LOCATION)[0])


# ----------------------------------------------------------------------------------------------
# Chat transcripts
# ----------------------------------------------------------------------------------------------


def _text(expr: pl.Expr, dtype: Any) -> pl.Expr:
    """Message content as text: a string, or the `text` of content parts joined."""
    if isinstance(dtype, pl.List):
        inner = dtype.inner
        if isinstance(inner, pl.Struct) and "text" in {f.name for f in inner.fields}:
            return expr.list.eval(pl.element().struct.field("text")).list.join("")
        return expr.cast(pl.List(pl.String), strict=False).list.join("")
    if isinstance(dtype, pl.Struct):
        return expr.struct.json_encode()
    if isinstance(dtype, pl.Null):
        return pl.lit(None, dtype=pl.String)
    return expr.cast(pl.String)


def read_chat(
    path: Path, options: ChatOptions, max_line_bytes: int = MAX_LINE_BYTES
) -> FormatFrames:
    """One file of chat transcripts → events (one per message, plus escalations) and tool calls."""
    records, where = read_records(path, max_line_bytes)
    if records.height == 0:
        return FormatFrames(pl.DataFrame(), pl.DataFrame(), 0)
    records = records.with_columns(where).with_row_index("__rec")
    visible = [c for c in records.columns if c not in ("__rec", LOCATION)]
    if options.messages not in records.columns:
        raise InputDataError(
            f"{path}: no field {options.messages!r} holding the messages"
            f"{did_you_mean(options.messages, visible)}; fields there: {', '.join(visible)}. "
            "Name it in the spec: sources.<name>.options.messages"
        )
    messages_type = records.schema[options.messages]
    if not (isinstance(messages_type, pl.List) and isinstance(messages_type.inner, pl.Struct)):
        raise InputDataError(
            f"{where[0]}: field {options.messages!r} is {messages_type}; expected a list of "
            'messages such as [{"role": "user", "content": "…"}]'
        )
    missing = _first_null(records.with_columns(pl.col(options.messages).alias("__m")), "__m")
    if missing is not None:
        raise InputDataError(f"{missing}: field {options.messages!r} is null: expected a list")
    record_cols = _record_columns(path, records, options, visible)
    base = records.select("__rec", LOCATION, *record_cols, pl.col(options.messages).alias("__m"))
    msgs = base.explode("__m").filter(pl.col("__m").is_not_null())
    msgs = msgs.with_columns(pl.int_range(pl.len()).over("__rec").alias("turn"))
    mtype = messages_type.inner
    assert isinstance(mtype, pl.Struct)

    def mfield(name: str) -> tuple[pl.Expr, pl.DataType]:
        return _struct_field(pl.col("__m"), mtype, name)

    role, _ = mfield("role")
    content, content_type = mfield("content")
    msgs = msgs.with_columns(
        pl.col(LOCATION) + pl.lit(" messages[") + pl.col("turn").cast(pl.String) + pl.lit("]"),
        role.cast(pl.String).alias("__role"),
        _text(content, content_type).alias("text"),
    )
    if (bad := _first_null(msgs, "__role")) is not None:
        raise InputDataError(
            f"{bad}: field 'role' is missing or null: expected system, user, assistant or tool"
        )
    ts_columns: list[pl.Expr] = []
    if options.message_ts is not None:
        ts_columns.append(mfield(options.message_ts)[0])
    if "__record_ts" in msgs.columns:
        ts_columns.append(pl.col("__record_ts"))
    if len(ts_columns) == 2:
        ts_columns = [e.cast(pl.String) for e in ts_columns]
    ts = pl.coalesce(ts_columns) if ts_columns else pl.lit(None)
    tokens = [
        mfield(options.input_tokens)[0].alias("input_tokens"),
        mfield(options.output_tokens)[0].alias("output_tokens"),
    ]
    name, _ = mfield("name")
    call_id, _ = mfield("tool_call_id")
    msgs = msgs.with_columns(
        ts.alias("ts"),
        pl.col("__role").replace(ROLE_MAP).alias("role"),
        *tokens,
        name.cast(pl.String).alias("__name"),
        call_id.cast(pl.String).alias("tool_call_id"),
    )
    if "model" not in msgs.columns:
        model, _ = mfield("model")
        msgs = msgs.with_columns(model.cast(pl.String).alias("model"))
    tool_calls = _chat_tool_calls(path, msgs, mtype, record_cols, options)
    events = msgs.select(
        pl.lit("message").alias("event"),
        pl.exclude("__m", "__role", "__name", "__record_ts", "__cost"),
        pl.when(pl.col("__role") == "tool").then(pl.col("__name")).alias("tool"),
    )
    if "__cost" in msgs.columns:  # a record-level reported cost: on the record's first row
        first = pl.col("turn") == 0
        cost = msgs.get_column("__cost").cast(pl.Float64, strict=False)
        events = events.with_columns(
            pl.when(pl.lit(cost).is_null())
            .then(None)
            .when(first)
            .then(pl.lit(cost))
            .otherwise(0.0)
            .alias("cost_usd"),
            pl.when(pl.lit(cost).is_not_null()).then(pl.lit("reported")).alias("cost_source"),
        )
    if options.escalation_tool is not None and tool_calls.height:
        events = pl.concat([events, _escalations(tool_calls, options)], how="diagonal_relaxed")
        events = events.sort("__rec", "turn", maintain_order=True)
    return FormatFrames(
        events.drop("__rec"), tool_calls.drop("__rec", strict=False), records.height
    )


def _record_columns(
    path: Path, records: pl.DataFrame, options: ChatOptions, visible: Sequence[str]
) -> list[pl.Expr]:
    """Record-level columns carried onto every row: conversation id, fields, time, cost."""
    columns: list[pl.Expr] = []
    if options.conversation_id is not None:
        found = _field(records, options.conversation_id)
        if found is None:
            raise InputDataError(
                f"{path}: no field {options.conversation_id!r} for the conversation id"
                f"{did_you_mean(options.conversation_id, visible)}; fields there: "
                f"{', '.join(visible)}"
            )
        conversation = found.cast(pl.String)
    elif "id" in records.columns:
        conversation = pl.col("id").cast(pl.String)
    else:  # no id: the file and the record's number
        conversation = pl.lit(f"{path.name}#") + (pl.col("__rec") + 1).cast(pl.String)
    check = records.select(conversation.alias("c"), LOCATION)
    if (bad := _first_null(check, "c")) is not None:
        raise InputDataError(
            f"{bad}: the conversation id ({options.conversation_id or 'id'}) is null: every "
            "record needs one"
        )
    columns.append(conversation.alias("conversation_id"))
    taken = {options.messages, "conversation_id", "id"}
    if options.fields is None:
        for name, dtype in records.schema.items():
            if name in taken or name in ("__rec", LOCATION):
                continue
            if not isinstance(dtype, pl.List | pl.Struct | pl.Null):
                columns.append(pl.col(name))
    else:
        for column, field_path in options.fields.items():
            found = _field(records, field_path)
            if found is None:
                raise InputDataError(
                    f"{path}: no record field {field_path!r} (options.fields.{column})"
                    f"{did_you_mean(field_path, visible)}; fields there: {', '.join(visible)}"
                )
            columns.append(found.alias(column))
    for option, alias in ((options.ts, "__record_ts"), (options.cost_usd, "__cost")):
        if option is None:
            continue
        found = _field(records, option)  # absent in this file: null (times are optional)
        columns.append((pl.lit(None) if found is None else found).alias(alias))
    return columns


def _chat_tool_calls(
    path: Path,
    msgs: pl.DataFrame,
    mtype: pl.Struct,
    record_cols: Sequence[pl.Expr],
    options: ChatOptions,
) -> pl.DataFrame:
    """One row per `tool_calls` entry of an assistant message, joined to its result message."""
    calls_expr, calls_type = _struct_field(pl.col("__m"), mtype, "tool_calls")
    if not (isinstance(calls_type, pl.List) and isinstance(calls_type.inner, pl.Struct)):
        return pl.DataFrame()
    carried = [e.meta.output_name() for e in record_cols]
    carried = [c for c in carried if c not in ("__record_ts",)]
    calls = (
        msgs.filter(pl.col("__role") == "assistant")
        .select("__rec", LOCATION, "turn", "ts", *carried, calls_expr.alias("__call"))
        .explode("__call")
        .filter(pl.col("__call").is_not_null())
    )
    if calls.height == 0:
        return pl.DataFrame()
    ctype = calls_type.inner
    call_id, _ = _struct_field(pl.col("__call"), ctype, "id")
    tool, _ = _struct_field(pl.col("__call"), ctype, "function.name")
    arguments, arg_type = _struct_field(pl.col("__call"), ctype, "function.arguments")
    calls = calls.with_columns(
        (
            pl.col(LOCATION)
            + pl.lit(".tool_calls[")
            + pl.int_range(pl.len()).over("__rec", "turn").cast(pl.String)
            + pl.lit("]")
        ),
        call_id.cast(pl.String).alias("tool_call_id"),
        tool.cast(pl.String).alias("tool"),
        _text(arguments, arg_type).alias("arguments"),
    ).drop("__call")
    if (bad := _first_null(calls, "tool")) is not None:
        raise InputDataError(f"{bad}: field 'function.name' is missing: every tool call needs one")
    extra = [
        f.name
        for f in mtype.fields
        if f.name not in ("role", "content", "tool_call_id", "tool_calls", "name")
        and not isinstance(f.dtype, pl.List | pl.Struct)
    ]
    results = msgs.filter((pl.col("__role") == "tool") & pl.col("tool_call_id").is_not_null())
    results = results.select(
        "__rec",
        "turn",
        "tool_call_id",
        pl.col("text").alias("result"),
        *[pl.col("__m").struct.field(f).alias(f"result_{f}") for f in extra],
    )
    calls, results = _pair_reused_ids(calls, results)
    joined = calls.join(
        results, on=["__rec", "tool_call_id", "__pair"], how="left", maintain_order="left"
    ).drop("__pair")
    try:
        is_error = compile_sql(options.tool_error)
        flagged = joined.with_columns(is_error.fill_null(False).alias("__error"))
    except (ExpressionProblem, pl.exceptions.PolarsError) as exc:
        raise InputDataError(
            f"{path}: options.tool_error {options.tool_error!r}: {first_line(exc)}; columns: "
            f"{', '.join(c for c in joined.columns if not c.startswith('__'))}"
        ) from exc
    return flagged.with_columns(
        pl.when(pl.col("__error")).then(pl.lit("error")).otherwise(pl.lit("ok")).alias("status"),
        pl.when(pl.col("__error")).then(pl.lit("tool_error")).alias("error_type"),
    ).drop("__error")


def _pair_reused_ids(
    calls: pl.DataFrame, results: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A pair number (`__pair`) on calls and results, so that each call takes the next unused
    result of its id in message order (agents reuse ids: the first result of an id is not every
    call's). Per (record, id), in message order, a result answers the oldest call still waiting;
    a result with no waiting call answers nothing. Vectorised: with c calls and r results seen so
    far, the results left unanswered so far are max(0, running max of r − c)."""
    key = ["__rec", "tool_call_id"]
    both = pl.concat(
        [
            calls.select(*key, "turn", pl.lit(1).alias("__c"), pl.lit(0).alias("__r")),
            results.select(*key, "turn", pl.lit(0).alias("__c"), pl.lit(1).alias("__r")),
        ]
    ).with_row_index("__i")  # calls first, each in message order; a result follows its call
    both = both.sort(*key, "turn", "__r", "__i").with_columns(
        pl.col("__c").cum_sum().over(key).alias("__cs"),
        pl.col("__r").cum_sum().over(key).alias("__rs"),
    )
    ahead = (pl.col("__rs") - pl.col("__cs")).cum_max().over(key).clip(lower_bound=0)
    both = both.with_columns(ahead.alias("__orphans"))
    before = pl.col("__orphans").shift(1, fill_value=0).over(key)
    both = both.with_columns(
        pl.when(pl.col("__c") == 1)
        .then(pl.col("__cs"))
        .when(pl.col("__orphans") == before)  # answered a waiting call
        .then(pl.col("__rs") - pl.col("__orphans"))
        .alias("__pair")
    ).sort("__i")
    n_calls = calls.height
    return (
        calls.with_columns(both.get_column("__pair").head(n_calls)),
        results.with_columns(both.get_column("__pair").tail(results.height))
        .filter(pl.col("__pair").is_not_null())
        .drop("turn"),
    )


def _escalations(tool_calls: pl.DataFrame, options: ChatOptions) -> pl.DataFrame:
    """An `escalation` event for each call of the escalation tool, its reason from an argument;
    its role is `system` (no one said it), so a filter on agent messages does not count it."""
    reason = (
        pl.col("arguments").str.json_path_match(f"$.{options.escalation_reason}")
        if options.escalation_reason
        else pl.lit(None, dtype=pl.String)
    )
    carried = [
        c
        for c in tool_calls.columns
        if c not in ("tool", "tool_call_id", "arguments", "status", "error_type", "result")
        and not c.startswith("result_")
    ]
    return tool_calls.filter(pl.col("tool") == options.escalation_tool).select(
        *carried,
        pl.lit("escalation").alias("event"),
        pl.lit("system").alias("role"),  # kpictl's row, not a message: `role = 'agent'` skips it
        reason.alias("escalation_reason"),
        pl.col("tool"),
    )


# ----------------------------------------------------------------------------------------------
# OpenTelemetry GenAI spans (OTLP JSON)
# ----------------------------------------------------------------------------------------------

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
    resource, _resource_type = _struct_field(pl.col("__rs"), rs_type, "resource.attributes")
    scope, scope_type = _struct_field(pl.col("__rs"), rs_type, "scopeSpans")
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
    spans_expr, spans_type = _struct_field(pl.col("__ss"), frame.schema["__ss"], "spans")
    if not isinstance(spans_type, pl.List) or not isinstance(spans_type.inner, pl.Struct):
        return FormatFrames(pl.DataFrame(), pl.DataFrame(), exports.height)
    frame = frame.select("__res", LOCATION, spans_expr.alias("__span"))
    frame = _explode_level(frame, "__span", "spans").with_row_index("__span_i")
    stype = spans_type.inner
    span = {
        name: _struct_field(pl.col("__span"), stype, name)[0]
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
    if (bad := _first_null(spans, "conversation_id")) is not None:
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
    if (bad := _first_null(tool_calls, "tool")) is not None:
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


def read_format(
    path: Path, fmt: str, options: Any, max_line_bytes: int = MAX_LINE_BYTES
) -> FormatFrames:
    """Read one file of a format (`chat` or `otlp_json`); a longer JSONL line is an error."""
    if fmt == "chat":
        chat = options if isinstance(options, ChatOptions) else ChatOptions()
        return read_chat(path, chat, max_line_bytes)
    otlp = options if isinstance(options, OtlpOptions) else OtlpOptions()
    return read_otlp(path, otlp, max_line_bytes)
