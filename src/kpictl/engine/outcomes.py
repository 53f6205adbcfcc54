"""Business outcomes: business events (a CRM or ticketing export) attributed to conversations.

The rule (README "Business outcomes"): a conversation's attribution window opens at its first
event and closes `within` after its first event (`after: start`) or its last event
(`after: end`), both ends included. An event that names a conversation_id is attributed to that
conversation only, and only when it falls in that conversation's window (the window bounds every
attribution, so arms and periods are compared over the same span). An event without a
conversation_id but with a user_id goes to that user's conversations whose window holds it:
`first` gives it to the one that started earliest, `last` to the one that started latest (ties
by conversation_id), `split` gives each of the n a share of 1/n. Other events are attributed to
none and counted in a note. Vectorised: one equi-join per path, then a sort and a per-event
first/last or count — no Python loop over rows.
"""

from __future__ import annotations

import polars as pl

from kpictl.spec.model import AttributionSpec

_EVENT = "__kpictl_business_event"


def conversation_windows(events: pl.LazyFrame, attribution: AttributionSpec) -> pl.LazyFrame:
    """One row per conversation: its user, the window's opening (first event) and close."""
    schema = events.collect_schema()
    user = (
        pl.col("user_id").drop_nulls().first()
        if "user_id" in schema
        else pl.lit(None, dtype=pl.String)
    )
    anchor = pl.col("__start") if attribution.after == "start" else pl.col("__end")
    return (
        events.filter(pl.col("ts").is_not_null())
        .group_by("conversation_id")
        .agg(
            pl.col("ts").min().alias("__start"),
            pl.col("ts").max().alias("__end"),
            user.alias("__user"),
        )
        .select(
            "conversation_id",
            "__user",
            "__start",
            (anchor + pl.lit(attribution.within)).alias("__close"),
        )
    )


def attribute_events(
    business: pl.LazyFrame, events: pl.LazyFrame, attribution: AttributionSpec
) -> pl.LazyFrame:
    """The attributed business events: one row per (event, conversation it is attributed to),
    with `share` (1, or 1/n under split), `event_value_usd` (the whole value), `value_usd` (the
    share of it) and `attached_by` (conversation_id | user_id). Unattributed events are left
    out (see `unattributed_count`)."""
    windows = conversation_windows(events, attribution)
    rows = business.with_row_index(_EVENT)
    columns = [c for c in rows.collect_schema().names() if c != _EVENT]
    in_window = pl.col("ts").is_between(pl.col("__start"), pl.col("__close"), closed="both")
    direct = (
        rows.filter(pl.col("conversation_id").is_not_null())
        .join(
            windows.select("conversation_id", "__start", "__close"),
            on="conversation_id",
            how="inner",
        )
        .filter(in_window)
        .with_columns(pl.lit(1.0).alias("share"), pl.lit("conversation_id").alias("attached_by"))
    )
    by_user = (
        rows.filter(pl.col("conversation_id").is_null() & pl.col("user_id").is_not_null())
        .drop("conversation_id")
        .join(
            windows.filter(pl.col("__user").is_not_null()),
            left_on="user_id",
            right_on="__user",
            how="inner",
        )
        .filter(in_window)
        .sort(_EVENT, "__start", "conversation_id")
    )
    if attribution.rule == "split":
        by_user = by_user.with_columns((1.0 / pl.len().over(_EVENT)).alias("share"))
    else:
        by_user = by_user.unique(
            subset=_EVENT,
            keep="first" if attribution.rule == "first" else "last",
            maintain_order=True,
        ).with_columns(pl.lit(1.0).alias("share"))
    by_user = by_user.with_columns(pl.lit("user_id").alias("attached_by"))
    keep = [_EVENT, *columns, "share", "attached_by"]
    return (
        pl.concat([direct.select(keep), by_user.select(keep)])
        .sort(_EVENT, "conversation_id")
        .drop(_EVENT)
        .with_columns(
            pl.col("value_usd").alias("event_value_usd"),
            (pl.col("value_usd") * pl.col("share")).alias("value_usd"),
        )
    )


def unattributed_count(business: pl.LazyFrame, attributed: pl.DataFrame) -> tuple[int, int]:
    """(events attributed to no conversation, all events), from the business events and their
    attributed rows (`attribute_events`, collected)."""
    total = business.select(pl.len()).collect().item()
    shares = attributed.get_column("share").sum() if attributed.height else 0
    return total - round(shares or 0), total
