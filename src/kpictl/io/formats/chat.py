"""Chat transcripts (OpenAI-style `messages` lists, one record per conversation) → events (one
per message, plus escalations) and tool calls (each `tool_calls` entry joined to its result)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kpictl.errors import InputDataError, did_you_mean
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
from kpictl.sql.expr import ExpressionProblem, compile_sql, first_line

ROLE_MAP = {"assistant": "agent", "developer": "system"}


DEFAULT_TOOL_ERROR = "result LIKE 'Error%'"


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


def _field(frame: pl.DataFrame | pl.Schema, path: str) -> pl.Expr | None:
    """`a.b.c` → col(a).struct.field(b)…; None when absent."""
    schema = frame if isinstance(frame, pl.Schema) else frame.schema
    head, *rest = path.split(".")
    if head not in schema:
        return None
    expr, dtype = (
        struct_field(pl.col(head), schema[head], ".".join(rest))
        if rest
        else (pl.col(head), schema[head])
    )
    return None if isinstance(dtype, pl.Null) and rest else expr


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
    missing = first_null(records.with_columns(pl.col(options.messages).alias("__m")), "__m")
    if missing is not None:
        raise InputDataError(f"{missing}: field {options.messages!r} is null: expected a list")
    record_cols = _record_columns(path, records, options, visible)
    base = records.select("__rec", LOCATION, *record_cols, pl.col(options.messages).alias("__m"))
    msgs = base.explode("__m").filter(pl.col("__m").is_not_null())
    msgs = msgs.with_columns(pl.int_range(pl.len()).over("__rec").alias("turn"))
    mtype = messages_type.inner
    assert isinstance(mtype, pl.Struct)

    def mfield(name: str) -> tuple[pl.Expr, pl.DataType]:
        return struct_field(pl.col("__m"), mtype, name)

    role, _ = mfield("role")
    content, content_type = mfield("content")
    msgs = msgs.with_columns(
        pl.col(LOCATION) + pl.lit(" messages[") + pl.col("turn").cast(pl.String) + pl.lit("]"),
        role.cast(pl.String).alias("__role"),
        _text(content, content_type).alias("text"),
    )
    if (bad := first_null(msgs, "__role")) is not None:
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
    if (bad := first_null(check, "c")) is not None:
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
    calls_expr, calls_type = struct_field(pl.col("__m"), mtype, "tool_calls")
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
    call_id, _ = struct_field(pl.col("__call"), ctype, "id")
    tool, _ = struct_field(pl.col("__call"), ctype, "function.name")
    arguments, arg_type = struct_field(pl.col("__call"), ctype, "function.arguments")
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
    if (bad := first_null(calls, "tool")) is not None:
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


CHAT = InputFormat("chat", JSON_SUFFIXES, ChatOptions, CHAT_OPTION_KEYS, read_chat)
