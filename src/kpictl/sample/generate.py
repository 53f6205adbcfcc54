"""`generate_sample`: the `events` and `tool_calls` frames of a seed, with the
pre-period covariate `pre_tokens` from a random stream of its own.
"""

from __future__ import annotations

import datetime

import numpy as np
import polars as pl

from kpictl.sample.conversations import Conversations
from kpictl.sample.draws import masked
from kpictl.sample.scenario import DAY, EPOCH, EVENTS_SCHEMA, TOOL_CALLS_SCHEMA
from kpictl.sample.timeline import Rows


def generate_sample(
    conversations: int = 2000,
    *,
    seed: int = 7,
    days: int = 30,
    start: datetime.datetime = datetime.datetime(2026, 10, 1, tzinfo=datetime.UTC),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (events, tool_calls) frames in kpictl's canonical schema.

    Args:
        conversations: number of conversations; at most ``days * 86400`` (conversation starts
            are distinct seconds).
        seed: random seed; the same seed always gives identical frames.
        days: length of the observation window; events after ``start + days`` are cut off
            (not yet logged), so late conversations have their outcome window still open.
        start: start of the window (a naive datetime is taken as UTC).

    Returns:
        ``events`` (columns and dtypes of `EVENTS_SCHEMA`) and ``tool_calls``
        (`TOOL_CALLS_SCHEMA`), both sorted by (conversation_id, ts); timestamps are whole
        seconds after `start` and strictly increase within a conversation.

    Raises:
        ValueError: for a negative count, a non-positive number of days, or more conversations
            than seconds in the window.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if conversations < 0:
        raise ValueError(f"conversations must be >= 0, got {conversations}")
    if conversations > days * DAY:
        raise ValueError(
            f"{conversations} conversations do not fit in {days} day(s): conversation starts are "
            f"distinct seconds, so at most {days * DAY} fit; use more days"
        )
    if conversations == 0:
        return pl.DataFrame(schema=EVENTS_SCHEMA), pl.DataFrame(schema=TOOL_CALLS_SCHEMA)
    if start.tzinfo is None:
        start = start.replace(tzinfo=datetime.UTC)
    start_us = (start - EPOCH) // datetime.timedelta(microseconds=1)

    rng = np.random.default_rng(seed)
    c = Conversations(rng, conversations, days, start_us // 1_000_000)
    rows = Rows(rng, c)
    pre = _pre_period_tokens(seed, rows)
    return rows.events(start_us, days * DAY, pre), rows.tool_calls(start_us, days * DAY)


_PRE_STREAM = 16  # the pre-period covariate's own random stream: no other value moves
_PRE_NEW_P = 0.12  # customers without a pre-period (new): pre_tokens is null


def _pre_period_tokens(seed: int, rows: Rows) -> pl.Series:
    """Per conversation, its customer's tokens per conversation in the 4 weeks before: drawn to
    correlate with the conversation's own tokens (0.8 times them, times a log-normal factor
    with sigma 0.35), as a customer's habits carry over; null for new customers. From a random
    stream of its own (seed, 16), so adding it moves no other value of the sample."""
    rng = np.random.default_rng([seed, _PRE_STREAM])
    n = rows.c.n
    tokens = np.bincount(
        rows.m_conv, weights=np.where(rows.m_agent, rows.m_in + rows.m_out, 0), minlength=n
    )
    pre = np.round(0.8 * tokens * np.exp(0.35 * rng.standard_normal(n))).astype(np.int64)
    return masked(pre, rng.random(n) >= _PRE_NEW_P)
