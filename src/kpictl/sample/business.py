"""`generate_business_events`: bookings and refunds caused (or not) by the conversations, a
CRM export drawn from a random stream of its own.
"""

from __future__ import annotations

import datetime

import numpy as np
import polars as pl

from kpictl.sample.draws import lognormal, timestamps
from kpictl.sample.scenario import BUSINESS_EVENTS_SCHEMA, DAY, EPOCH

# --- business events (a CRM export) ------------------------------------------------------------

_OUTCOME_STREAM = 15  # the business events' own random stream: events and tool calls never move
_BOOKING_P = np.array([0.10, 0.30])  # by resolved (no, yes), treatment arm
_HOLDOUT_FACTOR = 0.7  # the holdout arm books less often
_REFUND_P = 0.15  # of a conversation's events: a refund (negative value) instead of a booking
_NAMED_P = 0.6  # events that carry the conversation_id (the rest only the user_id)
_LATE_P = 0.12  # events more than 7 days after the conversation (not attributable in 7 d)
_ORPHAN_P = 0.05  # extra events from customers without a conversation (walk-ins)


def generate_business_events(
    events: pl.DataFrame,
    *,
    seed: int = 7,
    days: int = 30,
    start: datetime.datetime = datetime.datetime(2026, 10, 1, tzinfo=datetime.UTC),
) -> pl.DataFrame:
    """Bookings and refunds caused (or not) by the conversations of `events`: a CRM export.

    Drawn from a random stream of their own (seed, 15), so adding them moves no event or tool
    call. Per conversation: a booking with probability 10 % (unresolved) or 30 % (resolved) in
    the treatment arm, 0.7 times that in the holdout arm, 15 % of them refunds (negative value);
    88 % arrive within ~1.5 days (exponential), 12 % 7 to 20 days later; 60 % carry the
    conversation_id, the rest only the user_id; 5 % more come from customers with no conversation
    (no ids). Events after ``start + days`` are not in the export. Sorted by time, ids
    ``b000001``… in that order.
    """
    if start.tzinfo is None:
        start = start.replace(tzinfo=datetime.UTC)
    if events.height == 0:
        return pl.DataFrame(schema=BUSINESS_EVENTS_SCHEMA)
    rng = np.random.default_rng([seed, _OUTCOME_STREAM])
    conv = (
        events.group_by("conversation_id")
        .agg(
            pl.col("ts").min().alias("start"),
            pl.col("user_id").first(),
            pl.col("arm").first(),
            (pl.col("event") == "resolution").any().alias("resolved"),
        )
        .sort("conversation_id")
    )
    n = conv.height
    p = _BOOKING_P[conv["resolved"].cast(pl.Int64).to_numpy()]
    p = np.where(conv["arm"].to_numpy() == "holdout", p * _HOLDOUT_FACTOR, p)
    has = rng.random(n) < p
    late = rng.random(n) < _LATE_P
    delay_s = (
        np.where(late, rng.uniform(7 * DAY, 20 * DAY, n), rng.exponential(1.5 * DAY, n)).astype(
            np.int64
        )
        + 60
    )
    refund = rng.random(n) < _REFUND_P
    value = np.round(lognormal(rng, 120.0, 0.6, n), 2)
    value = np.where(refund, -np.round(value / 3, 2), value)
    named = rng.random(n) < _NAMED_P
    caused = conv.select(
        pl.when(pl.Series(named)).then(pl.col("conversation_id")).alias("conversation_id"),
        pl.col("user_id"),
        (pl.col("start") + pl.Series(delay_s * 1_000_000).cast(pl.Duration("us"))).alias("ts"),
        pl.Series("type", np.where(refund, "refund", "booking")),
        pl.Series("value_usd", value),
    ).filter(pl.Series(has))
    n_orphan = int(rng.binomial(n, _ORPHAN_P * float(has.mean())))
    start_us = (start - EPOCH) // datetime.timedelta(microseconds=1)
    orphans = pl.DataFrame(
        {
            "conversation_id": pl.Series([None] * n_orphan, dtype=pl.String),
            "user_id": pl.Series([None] * n_orphan, dtype=pl.String),
            "ts": timestamps(start_us, rng.integers(0, days * DAY, n_orphan)),
            "type": pl.Series(["booking"] * n_orphan, dtype=pl.String),
            "value_usd": np.round(lognormal(rng, 120.0, 0.6, n_orphan), 2),
        }
    )
    until = start + datetime.timedelta(days=days)
    found = (
        pl.concat([caused, orphans])
        .filter(pl.col("ts") < until)
        .sort("ts", "conversation_id", "user_id", nulls_last=True, maintain_order=True)
    )
    ids = "b" + pl.Series(np.arange(1, found.height + 1)).cast(pl.String).str.zfill(
        max(6, len(str(found.height)))
    )
    return (
        found.with_columns(ids.alias("business_event_id"))
        .select(list(BUSINESS_EVENTS_SCHEMA))
        .cast(pl.Schema(BUSINESS_EVENTS_SCHEMA))
    )
