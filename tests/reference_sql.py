"""Independent DuckDB-SQL re-implementation of kpictl's default KPI scorecard.

This module is the test oracle for ``tests/test_kpis_reference.py``. It is written from the KPI
definitions only (never from kpictl's engine or its YAML), so that the two implementations can
check each other. The SQL below doubles as executable documentation of the definitions.

Polars is used only to normalise the input frames (types, timestamps to naive UTC) and to hand
them to / get them back from DuckDB; every KPI is computed in SQL.

Conventions
-----------
* A *conversation* is a distinct ``events.conversation_id``.
* Conversation attributes (channel, intent, arm, ...) and ``user_id`` are taken from the earliest
  event of the conversation that has a non-null value.
* All timestamps are naive UTC inside DuckDB.
* The cohort of a row is the pair ``(k_dim, k_bucket)``: ``k_dim`` is the value of the ``by``
  attribute as text (constant NULL when ``by`` is None) and ``k_bucket`` is
  ``date_trunc(grain, started_at)`` (constant NULL when ``grain`` is None). Row-level units
  (tool calls, agent messages) take the cohort of their conversation (left join).
* A (kpi, cohort) row exists when the cohort has at least one unit of the KPI, counted in ``n``
  or ``pending``; ``value`` is NULL when it is undefined (e.g. ``n = 0``, only pending units).
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import polars as pl

CONVERSATION_ATTRIBUTES = ("channel", "intent", "customer_tier", "region", "agent_version", "arm")

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "conversation_id": pl.String(),
    "ts": pl.Datetime("us"),
    "event": pl.String(),
    "role": pl.String(),
    "input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "cost_usd": pl.Float64(),
    "latency_ms": pl.Float64(),
    "escalation_reason": pl.String(),
    "csat": pl.Int64(),
    "human_minutes": pl.Float64(),
    "policy_violation": pl.Boolean(),
    "user_id": pl.String(),
    **{attr: pl.String() for attr in CONVERSATION_ATTRIBUTES},
}

TOOL_CALL_SCHEMA: dict[str, pl.DataType] = {
    "conversation_id": pl.String(),
    "ts": pl.Datetime("us"),
    "tool": pl.String(),
    "status": pl.String(),
    "error_type": pl.String(),
    "retries": pl.Int64(),
    "latency_ms": pl.Float64(),
    "cost_usd": pl.Float64(),
}

KPI_NAMES = (
    "task_completion_rate",
    "escalation_rate",
    "containment_rate",
    "containment_with_quality",
    "time_to_resolution_p50",
    "time_to_resolution_p95",
    "cost_per_successful_task",
    "cost_per_task",
    "tokens_per_task",
    "tool_calls_per_task",
    "human_minutes_per_task",
    "tool_call_success_rate",
    "agent_latency_p95",
    "policy_violation_rate",
    "csat_mean",
    "repeat_contact_rate_7d",
)


def _to_naive_utc(ts: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Any timestamp representation -> naive ``Datetime('us')`` holding UTC wall time."""
    if dtype == pl.String:
        ts = ts.str.to_datetime(time_zone="UTC", time_unit="us")
        return ts.dt.replace_time_zone(None)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            ts = ts.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return ts.cast(pl.Datetime("us"))
    return ts.cast(pl.Datetime("us"))


def _normalise(df: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Select the columns of ``schema`` (missing ones as nulls) with the expected types."""
    exprs = []
    for name, dtype in schema.items():
        if name not in df.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
        elif name == "ts":
            exprs.append(_to_naive_utc(pl.col(name), df.schema[name]).alias(name))
        elif isinstance(dtype, pl.String):
            exprs.append(pl.col(name).cast(pl.String).alias(name))
        else:
            exprs.append(pl.col(name).cast(dtype, strict=True).alias(name))
    return df.select(exprs)


class _ArrowStream:
    """Hand a polars frame to DuckDB through the Arrow PyCapsule interface (no pyarrow needed)."""

    def __init__(self, df: pl.DataFrame) -> None:
        self._df = df

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._df.__arrow_c_stream__(requested_schema)


RESULT_SCHEMA = {
    "kpi": pl.String(),
    "k_dim": pl.String(),
    "k_bucket": pl.Datetime("us"),
    "breakdown": pl.String(),
    "breakdown_value": pl.String(),
    "value": pl.Float64(),
    "n": pl.Int64(),
    "pending": pl.Int64(),
}


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


# ---------------------------------------------------------------------------------------------
# SQL
# ---------------------------------------------------------------------------------------------

# The data horizon: the latest timestamp anywhere in the data, unless given explicitly.
AS_OF_SQL = """
SELECT COALESCE(
    $as_of::TIMESTAMP,
    (SELECT MAX(ts) FROM (SELECT ts FROM ev UNION ALL SELECT ts FROM tc))
) AS as_of
"""

# One row per conversation with every per-conversation fact the KPIs need.
# {dim_agg} picks the `by` attribute (or NULL), {bucket_expr} the time bucket (or NULL).
CONVERSATIONS_SQL = """
CREATE OR REPLACE TEMP TABLE conv AS
WITH
per_conversation AS (
    SELECT
        conversation_id,
        MIN(ts)                                               AS started_at,
        MIN(ts) FILTER (WHERE event = 'resolution')           AS resolved_at,
        COUNT(*) FILTER (WHERE event = 'escalation') > 0      AS escalated,
        -- reason of the EARLIEST escalation event (even if that reason is NULL)
        FIRST(escalation_reason ORDER BY ts) FILTER (WHERE event = 'escalation')
                                                              AS escalation_reason,
        SUM(COALESCE(cost_usd, 0))                            AS event_cost,
        SUM(COALESCE(human_minutes, 0))                       AS human_minutes,
        SUM(COALESCE(input_tokens, 0)) + SUM(COALESCE(output_tokens, 0))
                                                              AS tokens,
        AVG(csat) FILTER (WHERE event = 'feedback')           AS csat,
        COALESCE(BOOL_OR(policy_violation), FALSE)            AS policy_violation,
        FIRST(user_id ORDER BY ts) FILTER (WHERE user_id IS NOT NULL) AS user_id,
        FIRST(intent ORDER BY ts) FILTER (WHERE intent IS NOT NULL)   AS intent,
        {dim_agg}                                             AS dim_value
    FROM ev
    GROUP BY conversation_id
),
per_conversation_tools AS (
    SELECT conversation_id, COUNT(*) AS tool_calls, SUM(COALESCE(cost_usd, 0)) AS tool_cost
    FROM tc
    GROUP BY conversation_id
),
facts AS (
    SELECT
        c.*,
        COALESCE(t.tool_calls, 0)                             AS tool_calls,
        c.event_cost + COALESCE(t.tool_cost, 0) + c.human_minutes * $human_cost_per_minute
                                                              AS cost,
        -- completed: resolved, and no reopen within (resolved_at, resolved_at + 24h]
        c.resolved_at IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM ev r
            WHERE r.conversation_id = c.conversation_id
              AND r.event = 'reopen'
              AND r.ts > c.resolved_at
              AND r.ts <= c.resolved_at + INTERVAL 24 HOUR
        )                                                     AS completed,
        COALESCE(c.resolved_at, c.started_at) <= $as_of - INTERVAL 24 HOUR
                                                              AS settled,
        NOT c.escalated AND c.human_minutes = 0               AS contained,
        -- repeat contact: same user starts another conversation with the same intent
        -- within (started_at, started_at + 7 days]; searched over ALL conversations.
        -- SQL equality: a NULL intent is never "the same intent" as anything.
        EXISTS (
            SELECT 1 FROM per_conversation o
            WHERE o.user_id = c.user_id
              AND o.intent = c.intent
              AND o.conversation_id <> c.conversation_id
              AND o.started_at > c.started_at
              AND o.started_at <= c.started_at + INTERVAL 7 DAY
        )                                                     AS repeated,
        c.user_id IS NOT NULL AND c.started_at <= $as_of - INTERVAL 7 DAY
                                                              AS repeat_mature
    FROM per_conversation c
    LEFT JOIN per_conversation_tools t USING (conversation_id)
)
SELECT
    *,
    CAST(dim_value AS VARCHAR)                                AS k_dim,
    {bucket_expr}                                             AS k_bucket
FROM facts
"""

# KPIs whose unit is the conversation.
CONVERSATION_KPIS_SQL = """
WITH per_cohort AS (
    SELECT
        k_dim,
        k_bucket,
        COUNT(*)                                                      AS n_all,
        COUNT(*) FILTER (WHERE settled)                               AS n_settled,
        COUNT(*) FILTER (WHERE NOT settled)                           AS n_unsettled,
        COUNT(*) FILTER (WHERE settled AND completed)                 AS n_completed,
        COUNT(*) FILTER (WHERE settled AND contained)                 AS n_contained,
        COUNT(*) FILTER (WHERE settled AND contained AND completed
                         AND (csat IS NULL OR csat >= $good_csat))    AS n_quality,
        SUM(cost) FILTER (WHERE settled)                              AS cost_settled,
        COUNT(*) FILTER (WHERE escalated)                             AS n_escalated,
        COUNT(*) FILTER (WHERE policy_violation)                      AS n_violating,
        AVG(cost)                                                     AS mean_cost,
        AVG(tokens::DOUBLE)                                           AS mean_tokens,
        AVG(tool_calls::DOUBLE)                                       AS mean_tool_calls,
        AVG(human_minutes)                                            AS mean_human_minutes,
        -- time to resolution in seconds over RESOLVED conversations, linear interpolation
        COUNT(resolved_at)                                            AS n_resolved,
        QUANTILE_CONT(EPOCH_US(resolved_at - started_at) / 1e6, 0.5)  AS ttr_p50,
        QUANTILE_CONT(EPOCH_US(resolved_at - started_at) / 1e6, 0.95) AS ttr_p95,
        -- mean of per-conversation mean csat, over conversations that have one
        COUNT(csat)                                                   AS n_with_csat,
        AVG(csat)                                                     AS mean_csat,
        -- repeat contacts, over conversations with a user started >= 7 days before as_of;
        -- pending = has a user but started less than 7 days before as_of
        COUNT(*) FILTER (WHERE repeat_mature)                         AS n_mature,
        COUNT(*) FILTER (WHERE repeat_mature AND repeated)            AS n_repeated,
        COUNT(*) FILTER (WHERE user_id IS NOT NULL AND NOT repeat_mature)
                                                                      AS n_immature
    FROM conv
    GROUP BY k_dim, k_bucket
)
-- value; n = units after the 'over' filter; pending = units left out only as not yet mature
SELECT k_dim, k_bucket, kpi, value, n, pending
FROM per_cohort,
LATERAL (VALUES
    -- over SETTLED conversations
    ('task_completion_rate',     n_completed / NULLIF(n_settled, 0),    n_settled, n_unsettled),
    ('containment_rate',         n_contained / NULLIF(n_settled, 0),    n_settled, n_unsettled),
    ('containment_with_quality', n_quality / NULLIF(n_settled, 0),      n_settled, n_unsettled),
    ('cost_per_successful_task', cost_settled / NULLIF(n_completed, 0), n_settled, n_unsettled),
    -- over ALL conversations
    ('escalation_rate',          n_escalated / n_all,                   n_all,     0),
    ('policy_violation_rate',    n_violating / n_all,                   n_all,     0),
    ('cost_per_task',            mean_cost,                             n_all,     0),
    ('tokens_per_task',          mean_tokens,                           n_all,     0),
    ('tool_calls_per_task',      mean_tool_calls,                       n_all,     0),
    ('human_minutes_per_task',   mean_human_minutes,                    n_all,     0),
    -- over RESOLVED conversations
    ('time_to_resolution_p50',   ttr_p50,                               n_resolved, 0),
    ('time_to_resolution_p95',   ttr_p95,                               n_resolved, 0),
    -- over conversations WITH A CSAT
    ('csat_mean',                mean_csat,                             n_with_csat, 0),
    -- over MATURE conversations with a user
    ('repeat_contact_rate_7d',   n_repeated / NULLIF(n_mature, 0),      n_mature,  n_immature)
) AS kpis(kpi, value, n, pending)
"""

# Escalation breakdown: for each reason, escalated-with-that-reason / ALL conversations of the
# cohort (reasons that occur in the cohort; a NULL reason is its own part), so the parts sum to
# escalation_rate.
ESCALATION_BREAKDOWN_SQL = """
WITH cohort_size AS (
    SELECT k_dim, k_bucket, COUNT(*) AS conversations FROM conv GROUP BY ALL
)
SELECT c.k_dim, c.k_bucket, 'escalation_rate' AS kpi,
       'escalation_reason' AS breakdown,
       c.escalation_reason AS breakdown_value,
       COUNT(*) / ANY_VALUE(s.conversations) AS value,
       ANY_VALUE(s.conversations) AS n,
       0 AS pending
FROM conv c
JOIN cohort_size s
  ON c.k_dim IS NOT DISTINCT FROM s.k_dim AND c.k_bucket IS NOT DISTINCT FROM s.k_bucket
WHERE c.escalated
GROUP BY c.k_dim, c.k_bucket, c.escalation_reason
"""

# KPIs whose unit is a row of another table, which takes its conversation's cohort
# (left join: a tool call of an unknown conversation still counts, in the NULL cohort).
ROW_LEVEL_KPIS_SQL = """
WITH
tool_calls AS (
    SELECT c.k_dim, c.k_bucket, t.status
    FROM tc t
    LEFT JOIN conv c USING (conversation_id)
),
agent_messages AS (
    SELECT c.k_dim, c.k_bucket, e.latency_ms
    FROM ev e
    JOIN conv c USING (conversation_id)
    WHERE e.event = 'message' AND e.role = 'agent'
)
SELECT k_dim, k_bucket, 'tool_call_success_rate' AS kpi,
       COUNT(*) FILTER (WHERE status = 'ok') / COUNT(*) AS value,
       COUNT(*) AS n,
       0 AS pending
FROM tool_calls
GROUP BY k_dim, k_bucket
UNION ALL
-- the quantile skips NULL latencies; n counts every agent message (the 'over' units)
SELECT k_dim, k_bucket, 'agent_latency_p95',
       QUANTILE_CONT(latency_ms, 0.95),
       COUNT(*),
       0
FROM agent_messages
GROUP BY k_dim, k_bucket
"""

RESULT_SQL = f"""
WITH all_rows AS (
    SELECT kpi, k_dim, k_bucket, NULL::VARCHAR AS breakdown, NULL::VARCHAR AS breakdown_value,
           value::DOUBLE AS value, n::BIGINT AS n, pending::BIGINT AS pending
    FROM ({CONVERSATION_KPIS_SQL})
    UNION ALL
    SELECT kpi, k_dim, k_bucket, breakdown, breakdown_value,
           value::DOUBLE, n::BIGINT, pending::BIGINT
    FROM ({ESCALATION_BREAKDOWN_SQL})
    UNION ALL
    SELECT kpi, k_dim, k_bucket, NULL, NULL, value::DOUBLE, n::BIGINT, pending::BIGINT
    FROM ({ROW_LEVEL_KPIS_SQL})
)
SELECT *
FROM all_rows
-- a (kpi, cohort) row exists when the cohort has a unit for the KPI, counted or pending
WHERE n > 0 OR pending > 0
ORDER BY kpi, k_dim, k_bucket, breakdown NULLS FIRST, breakdown_value
"""


def reference_kpis(
    events: pl.DataFrame,
    tool_calls: pl.DataFrame,
    *,
    by: str | None = None,
    grain: str | None = None,
    as_of: datetime | None = None,
    human_cost_per_minute: float = 0.75,
    good_csat: float = 4,
) -> pl.DataFrame:
    """Compute the default scorecard in DuckDB.

    Returns columns ``kpi``, then ``<by>`` (String) when ``by`` is given, then ``bucket``
    (Datetime UTC) when ``grain`` is given, then ``breakdown``, ``breakdown_value``, ``value``
    (Float64), ``n`` (Int64), ``pending`` (Int64).
    """
    if by is not None and by not in CONVERSATION_ATTRIBUTES:
        raise ValueError(f"unknown conversation attribute {by!r}")
    if grain is not None and grain not in {"hour", "day", "week", "month", "quarter", "year"}:
        raise ValueError(f"unknown grain {grain!r}")

    ev = _normalise(events, EVENT_SCHEMA)
    tc = _normalise(tool_calls, TOOL_CALL_SCHEMA)

    dim_agg = (
        "NULL::VARCHAR"
        if by is None
        else f"FIRST({by} ORDER BY ts) FILTER (WHERE {by} IS NOT NULL)"
    )
    bucket_expr = "NULL::TIMESTAMP" if grain is None else f"DATE_TRUNC('{grain}', started_at)"

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("ev", _ArrowStream(ev))
        con.register("tc", _ArrowStream(tc))
        given = None if as_of is None else _naive_utc(as_of)
        (horizon,) = con.execute(AS_OF_SQL, {"as_of": given}).fetchone()
        con.execute(
            CONVERSATIONS_SQL.format(dim_agg=dim_agg, bucket_expr=bucket_expr),
            {"as_of": horizon, "human_cost_per_minute": float(human_cost_per_minute)},
        )
        rows = con.execute(RESULT_SQL, {"good_csat": float(good_csat)}).fetchall()
    finally:
        con.close()

    out = pl.DataFrame(rows, schema=RESULT_SCHEMA, orient="row")
    columns: list[pl.Expr] = [pl.col("kpi")]
    if by is not None:
        columns.append(pl.col("k_dim").cast(pl.String).alias(by))
    if grain is not None:
        columns.append(
            pl.col("k_bucket").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("bucket")
        )
    columns += [
        pl.col("breakdown").cast(pl.String),
        pl.col("breakdown_value").cast(pl.String),
        pl.col("value").cast(pl.Float64),
        pl.col("n").cast(pl.Int64),
        pl.col("pending").cast(pl.Int64),
    ]
    return out.select(columns)
