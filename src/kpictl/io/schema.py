"""The canonical log schema: the column names and types every source is mapped onto."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

UTC_TIMESTAMP = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class CanonicalColumn:
    """One column of a canonical table."""

    name: str
    dtype: pl.DataType
    required: bool
    meaning: str


def _columns(*cols: CanonicalColumn) -> dict[str, CanonicalColumn]:
    return {c.name: c for c in cols}


EVENTS = _columns(
    CanonicalColumn("conversation_id", pl.String(), True, "the task / conversation"),
    CanonicalColumn("ts", UTC_TIMESTAMP, True, "event time, normalised to UTC"),
    CanonicalColumn("event", pl.String(), True, "message, escalation, resolution, reopen, …"),
    CanonicalColumn("role", pl.String(), False, "user, agent, human"),
    CanonicalColumn("input_tokens", pl.Int64(), False, "input tokens of an agent message"),
    CanonicalColumn("output_tokens", pl.Int64(), False, "output tokens of an agent message"),
    CanonicalColumn("cost_usd", pl.Float64(), False, "reported cost of the row"),
    CanonicalColumn("latency_ms", pl.Float64(), False, "agent response latency"),
    CanonicalColumn("escalation_reason", pl.String(), False, "reason, on escalation rows"),
    CanonicalColumn("csat", pl.Float64(), False, "satisfaction 1-5, on feedback rows"),
    CanonicalColumn("human_minutes", pl.Float64(), False, "human time spent"),
    CanonicalColumn("policy_violation", pl.Boolean(), False, "the row broke a policy"),
    CanonicalColumn("user_id", pl.String(), False, "the customer"),
    CanonicalColumn("model", pl.String(), False, "the model"),
    CanonicalColumn("text", pl.String(), False, "message text"),
)

TOOL_CALLS = _columns(
    CanonicalColumn("conversation_id", pl.String(), True, "the task / conversation"),
    CanonicalColumn("ts", UTC_TIMESTAMP, True, "call time, normalised to UTC"),
    CanonicalColumn("tool", pl.String(), True, "tool name"),
    CanonicalColumn("status", pl.String(), True, "ok or error"),
    CanonicalColumn("error_type", pl.String(), False, "validation, dependency, policy_denied, …"),
    CanonicalColumn("retries", pl.Int64(), False, "retries of the call"),
    CanonicalColumn("latency_ms", pl.Float64(), False, "call latency"),
    CanonicalColumn("cost_usd", pl.Float64(), False, "cost of the call"),
)

# A CRM or ticketing export of the business events an agent is meant to cause. Rows carry a
# conversation_id (attached directly) or only a user_id (attached through that user's
# conversations); `attribution:` on the source says how (kpictl.engine.outcomes, README "Business
# outcomes").
BUSINESS_EVENTS = _columns(
    CanonicalColumn("business_event_id", pl.String(), False, "the event's own id"),
    CanonicalColumn("conversation_id", pl.String(), False, "the conversation it came from"),
    CanonicalColumn("user_id", pl.String(), False, "the customer, when no conversation is named"),
    CanonicalColumn("ts", UTC_TIMESTAMP, True, "event time, normalised to UTC"),
    CanonicalColumn("type", pl.String(), True, "booking, refund, churn, …"),
    CanonicalColumn("value_usd", pl.Float64(), False, "the event's value (negative: a loss)"),
)

CANONICAL_TABLES: dict[str, dict[str, CanonicalColumn]] = {
    "events": EVENTS,
    "tool_calls": TOOL_CALLS,
    "business_events": BUSINESS_EVENTS,
}

# Columns the attribution adds to each attributed business event (kpictl.engine.outcomes).
ATTRIBUTION_COLUMNS: dict[str, pl.DataType] = {
    "share": pl.Float64(),  # the event's share this conversation gets: 1, or 1/n under split
    "event_value_usd": pl.Float64(),  # the event's whole value; value_usd is the share of it
    "attached_by": pl.String(),  # conversation_id | user_id
}

# Business events as the attribution writes them: the columns a rollup over them reads.
OUTCOME_COLUMNS: dict[str, pl.DataType] = {
    **{name: column.dtype for name, column in BUSINESS_EVENTS.items()},
    **ATTRIBUTION_COLUMNS,
}

TYPE_NAMES: dict[str, pl.DataType] = {
    "timestamp": UTC_TIMESTAMP,
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "str": pl.String(),
}

# Columns every expression may use: injected as literals at evaluation time.
BUILTIN_COLUMNS: dict[str, pl.DataType] = {
    "as_of": UTC_TIMESTAMP,
    "window_start": UTC_TIMESTAMP,
    "window_end": UTC_TIMESTAMP,
}

# Columns kpictl adds when it prices rows (a `pricing:` section, or a chat / OTLP source):
# not canonical (a log need not have them), but typed for the spec's validation.
COST_COLUMNS: dict[str, pl.DataType] = {
    "cost_source": pl.String(),  # reported | computed | unpriced (kpictl.io.pricing)
    "price_model": pl.String(),  # the price row that priced a computed cost
    "price_match": pl.String(),  # exact | alias | snapshot | genai_prices (kpictl.io.pricing)
    "cache_read_tokens": pl.Int64(),
    "cache_write_tokens": pl.Int64(),
}

# Pass-through columns of unknown type are typed as text for validation.
PASS_THROUGH_DTYPE: pl.DataType = pl.String()
