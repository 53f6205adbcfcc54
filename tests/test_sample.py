"""Tests of the deterministic synthetic agent logs (`kpictl.sample`)."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import polars as pl
import pytest

from kpictl.sample import generate_business_events, generate_sample, write_sample

UTC_TS = pl.Datetime("us", "UTC")
START = datetime.datetime(2026, 10, 1, tzinfo=datetime.UTC)
DAYS = 30

EVENTS_COLUMNS: list[tuple[str, pl.DataType]] = [
    ("conversation_id", pl.String()),
    ("ts", UTC_TS),
    ("event", pl.String()),
    ("role", pl.String()),
    ("input_tokens", pl.Int64()),
    ("output_tokens", pl.Int64()),
    ("cost_usd", pl.Float64()),
    ("latency_ms", pl.Float64()),
    ("escalation_reason", pl.String()),
    ("csat", pl.Float64()),
    ("human_minutes", pl.Float64()),
    ("policy_violation", pl.Boolean()),
    ("user_id", pl.String()),
    ("model", pl.String()),
    ("text", pl.String()),
    ("channel", pl.String()),
    ("intent", pl.String()),
    ("customer_tier", pl.String()),
    ("region", pl.String()),
    ("agent_version", pl.String()),
    ("arm", pl.String()),
    ("pre_tokens", pl.Int64()),
]
TOOL_CALLS_COLUMNS: list[tuple[str, pl.DataType]] = [
    ("conversation_id", pl.String()),
    ("ts", UTC_TS),
    ("tool", pl.String()),
    ("status", pl.String()),
    ("error_type", pl.String()),
    ("retries", pl.Int64()),
    ("latency_ms", pl.Float64()),
    ("cost_usd", pl.Float64()),
]
ATTRIBUTES = ["user_id", "channel", "intent", "customer_tier", "region", "agent_version", "arm"]


def _mean(values: pl.Series) -> float:
    mean = values.mean()
    assert isinstance(mean, float)
    return mean


@pytest.fixture(scope="module")
def sample() -> tuple[pl.DataFrame, pl.DataFrame]:
    return generate_sample(5000)


@pytest.fixture(scope="module")
def events(sample: tuple[pl.DataFrame, pl.DataFrame]) -> pl.DataFrame:
    return sample[0]


@pytest.fixture(scope="module")
def tool_calls(sample: tuple[pl.DataFrame, pl.DataFrame]) -> pl.DataFrame:
    return sample[1]


@pytest.fixture(scope="module")
def conversations(events: pl.DataFrame) -> pl.DataFrame:
    """One row per conversation with its outcome."""
    is_ = pl.col("event").__eq__
    first_resolution = pl.col("ts").filter(is_("resolution")).min()
    first_reopen = pl.col("ts").filter(is_("reopen")).min()
    return (
        events.group_by("conversation_id")
        .agg(
            pl.col("arm").first(),
            pl.col("agent_version").first(),
            pl.col("user_id").first(),
            start=pl.col("ts").min(),
            resolved_at=first_resolution,
            reopened_at=first_reopen,
            escalations=is_("escalation").sum(),
            feedbacks=is_("feedback").sum(),
        )
        .with_columns(reopen_after=pl.col("reopened_at") - pl.col("resolved_at"))
        .with_columns(
            completed=pl.col("resolved_at").is_not_null()
            & ~(pl.col("reopen_after") <= pl.duration(hours=24)).fill_null(False)
        )
    )


def test_same_seed_gives_identical_frames_and_other_seeds_differ() -> None:
    first = generate_sample(300, seed=11)
    again = generate_sample(300, seed=11)
    other = generate_sample(300, seed=12)
    assert first[0].equals(again[0])
    assert first[1].equals(again[1])
    assert not first[0].equals(other[0])
    assert not first[1].equals(other[1])


def test_columns_dtypes_and_order(events: pl.DataFrame, tool_calls: pl.DataFrame) -> None:
    assert list(events.schema.items()) == EVENTS_COLUMNS
    assert list(tool_calls.schema.items()) == TOOL_CALLS_COLUMNS


def test_zero_conversations_give_empty_frames_with_the_schema() -> None:
    events, tool_calls = generate_sample(0)
    assert events.height == 0 and tool_calls.height == 0
    assert list(events.schema.items()) == EVENTS_COLUMNS
    assert list(tool_calls.schema.items()) == TOOL_CALLS_COLUMNS


def test_invalid_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="days"):
        generate_sample(10, days=0)
    with pytest.raises(ValueError, match="conversations"):
        generate_sample(-1)
    with pytest.raises(ValueError, match="do not fit"):
        generate_sample(86_401, days=1)
    with pytest.raises(ValueError, match="fmt"):
        write_sample(tmp_path, conversations=10, fmt="csv")  # type: ignore[arg-type]


def test_every_conversation_is_present_and_rows_are_sorted(
    events: pl.DataFrame, tool_calls: pl.DataFrame
) -> None:
    assert events["conversation_id"].n_unique() == 5000
    assert events["conversation_id"].min() == "c000001"
    assert events["conversation_id"].max() == "c005000"
    assert events.equals(events.sort("conversation_id", "ts"))
    assert tool_calls.equals(tool_calls.sort("conversation_id", "ts"))


def test_timestamps_are_whole_seconds_inside_the_window(
    events: pl.DataFrame, tool_calls: pl.DataFrame
) -> None:
    end = START + datetime.timedelta(days=DAYS)
    for frame in (events, tool_calls):
        assert frame["ts"].null_count() == 0
        assert frame.select(pl.col("ts").is_between(START, end, closed="left").all()).item()
        assert (frame["ts"].dt.microsecond() == 0).all()


def test_conversation_starts_with_a_user_message_and_time_strictly_increases(
    events: pl.DataFrame,
) -> None:
    first = events.group_by("conversation_id").agg(pl.col("event", "role").first())
    assert (first["event"] == "message").all()
    assert (first["role"] == "user").all()
    steps = events.select(pl.col("ts").diff().over("conversation_id")).to_series().drop_nulls()
    assert (steps > datetime.timedelta(0)).all()


def test_attributes_are_constant_per_conversation(events: pl.DataFrame) -> None:
    distinct = events.group_by("conversation_id").agg(pl.col(ATTRIBUTES).n_unique())
    for column in ATTRIBUTES:
        assert distinct[column].max() == 1, column
        assert events[column].null_count() == 0, column
    assert set(events["channel"].unique()) == {"web", "chat", "email", "voice"}
    assert set(events["intent"].unique()) == {
        "billing",
        "shipping",
        "returns",
        "account",
        "technical",
    }
    assert set(events["customer_tier"].unique()) == {"free", "pro", "enterprise"}
    assert set(events["region"].unique()) == {"na", "emea", "apac"}
    assert set(events["agent_version"].unique()) == {"v1", "v2"}


def test_tool_calls_belong_to_conversations_and_happen_after_their_start(
    events: pl.DataFrame, tool_calls: pl.DataFrame
) -> None:
    starts = events.group_by("conversation_id").agg(start=pl.col("ts").min())
    joined = tool_calls.join(starts, on="conversation_id", how="left")
    assert joined["start"].null_count() == 0
    assert (joined["ts"] > joined["start"]).all()
    # tool calls and events of a conversation never share a timestamp
    clash = tool_calls.join(events, on=["conversation_id", "ts"], how="inner")
    assert clash.height == 0


def test_tool_call_values(events: pl.DataFrame, tool_calls: pl.DataFrame) -> None:
    assert set(tool_calls["status"].unique()) == {"ok", "error"}
    errors = tool_calls.filter(pl.col("status") == "error")
    assert 0.04 <= errors.height / tool_calls.height <= 0.11
    assert errors["error_type"].null_count() == 0
    assert set(errors["error_type"].unique()) <= {
        "validation",
        "dependency",
        "policy_denied",
        "timeout",
    }
    assert tool_calls.filter(pl.col("status") == "ok")["error_type"].null_count() == (
        tool_calls.height - errors.height
    )
    assert (tool_calls["retries"] >= 0).all()
    assert _mean(tool_calls["retries"] == 0) > 0.8
    assert (tool_calls["latency_ms"] > 0).all() and (tool_calls["cost_usd"] >= 0).all()
    assert set(tool_calls["tool"].unique()) == {
        "lookup_order",
        "refund",
        "search_kb",
        "update_account",
        "transfer_to_human",
    }
    per_conversation = tool_calls.group_by("conversation_id").len()
    without = 5000 - per_conversation.height
    assert 0.01 * 5000 <= without <= 0.06 * 5000
    assert (per_conversation["len"] >= 3).any()


def test_agent_messages_carry_tokens_cost_latency_and_model(events: pl.DataFrame) -> None:
    agent = events.filter(pl.col("role") == "agent")
    others = events.filter(pl.col("role").ne_missing("agent"))
    for column in ("input_tokens", "output_tokens", "latency_ms", "model"):
        assert agent[column].null_count() == 0, column
        assert others[column].null_count() == others.height, column
    assert agent["model"].n_unique() == 2
    assert (agent["input_tokens"] > 0).all() and (agent["output_tokens"] > 0).all()
    assert 0 < agent["cost_usd"].null_count() < 0.02 * agent.height
    assert (agent["cost_usd"].drop_nulls() > 0).all()
    assert others["cost_usd"].null_count() == others.height
    p95 = agent["latency_ms"].quantile(0.95)
    assert p95 is not None and 1500 < p95 < 10_000
    assert agent.select(pl.col("latency_ms").median() < p95 / 1.5).item()  # skewed


def test_policy_violations_are_rare_and_only_on_agent_messages(events: pl.DataFrame) -> None:
    assert events["policy_violation"].null_count() == 0
    flagged = events.filter(pl.col("policy_violation"))
    assert (flagged["role"] == "agent").all()
    share = flagged["conversation_id"].n_unique() / 5000
    assert 0.005 <= share <= 0.03


def test_escalations_and_human_work(events: pl.DataFrame, conversations: pl.DataFrame) -> None:
    escalated = conversations.filter(pl.col("escalations") > 0)
    assert 0.15 <= escalated.height / 5000 <= 0.25
    assert (conversations["escalations"] == 2).sum() > 0
    rows = events.filter(pl.col("event") == "escalation")
    assert rows["escalation_reason"].null_count() == 0
    assert set(rows["escalation_reason"].unique()) == {
        "policy_required",
        "customer_request",
        "low_confidence",
        "tool_failure",
        "out_of_scope",
    }
    twice = (
        rows.group_by("conversation_id")
        .agg(pl.col("escalation_reason"))
        .filter(pl.col("escalation_reason").list.len() == 2)
    )
    assert (twice["escalation_reason"].list.n_unique() == 2).all()
    assert events.filter(pl.col("event") != "escalation")["escalation_reason"].null_count() == (
        events.height - rows.height
    )
    human = events.filter(pl.col("human_minutes").is_not_null())
    assert human.height > 0
    assert (human["human_minutes"] > 0).all()
    assert (human["role"] == "human").all()
    assert set(human["conversation_id"].unique()) <= set(escalated["conversation_id"])
    # humans speak only after the conversation's first escalation
    first_escalation = rows.group_by("conversation_id").agg(escalated_at=pl.col("ts").min())
    after = human.join(first_escalation, on="conversation_id")
    assert (after["ts"] > after["escalated_at"]).all()


def test_treatment_beats_holdout_and_v2_beats_v1(conversations: pl.DataFrame) -> None:
    by_arm = conversations.group_by("arm").agg(
        pl.len(), pl.col("completed").mean(), (pl.col("escalations") > 0).mean().alias("esc")
    )
    arms = {row["arm"]: row for row in by_arm.iter_rows(named=True)}
    assert set(arms) == {"treatment", "holdout"}
    assert 0.80 <= arms["treatment"]["len"] / 5000 <= 0.90
    assert arms["treatment"]["completed"] >= arms["holdout"]["completed"] + 0.05
    assert arms["treatment"]["esc"] < arms["holdout"]["esc"]
    by_version = dict(
        conversations.group_by("agent_version").agg(pl.col("completed").mean()).iter_rows()
    )
    assert by_version["v2"] > by_version["v1"]


def test_resolutions_reopens_and_feedback(
    events: pl.DataFrame, conversations: pl.DataFrame
) -> None:
    resolved = _mean(conversations["resolved_at"].is_not_null())
    assert 0.6 <= resolved <= 0.9
    reopen_after = conversations["reopen_after"].drop_nulls()
    assert (reopen_after > datetime.timedelta(0)).all()
    assert (reopen_after <= datetime.timedelta(hours=24)).sum() > 0
    assert (reopen_after > datetime.timedelta(hours=24)).sum() > 0
    assert (events.filter(pl.col("event") == "resolution").group_by("conversation_id").len())[
        "len"
    ].max() == 2
    feedback = events.filter(pl.col("event") == "feedback")
    assert feedback["csat"].null_count() == 0
    assert set(feedback["csat"].unique()) == {1, 2, 3, 4, 5}
    assert events.filter(pl.col("event") != "feedback")["csat"].null_count() == (
        events.height - feedback.height
    )
    assert 0.33 <= _mean(conversations["feedbacks"] > 0) <= 0.47
    assert (conversations["feedbacks"] == 2).sum() > 0


def test_users_come_back_but_never_start_two_conversations_at_once(
    conversations: pl.DataFrame, events: pl.DataFrame
) -> None:
    users = conversations["user_id"].n_unique()
    assert 5000 / 4 <= users <= 5000 / 2.5
    assert conversations.group_by("user_id", "start").len()["len"].max() == 1
    per_user = conversations.sort("user_id", "start").with_columns(
        gap=pl.col("start").diff().over("user_id")
    )
    gaps = per_user["gap"].drop_nulls()
    assert gaps.len() > 5000 / 2
    assert _mean(gaps <= datetime.timedelta(days=7)) > 0.8
    intents = (
        events.group_by("conversation_id")
        .agg(pl.col("user_id", "intent").first(), start=pl.col("ts").min())
        .sort("user_id", "start")
        .select(same=pl.col("intent") == pl.col("intent").shift(1).over("user_id"))
        .to_series()
        .drop_nulls()
    )
    assert _mean(intents) > 0.4  # far above the ~21 % of independent draws


def test_some_first_messages_contain_fake_pii(events: pl.DataFrame) -> None:
    first = events.group_by("conversation_id").agg(pl.col("text").first())["text"]
    assert first.null_count() == 0
    emails = _mean(first.str.contains(r"[a-z]+\.[a-z]+@example\.(com|org|net)"))
    phones = _mean(first.str.contains(r"\+1 415 555 01\d\d"))
    assert 0 < emails < 0.1 and 0 < phones < 0.1


def test_write_sample_round_trips_parquet(tmp_path: Path) -> None:
    paths = write_sample(tmp_path / "out", conversations=400, seed=5, fmt="parquet")
    assert paths == [
        tmp_path / "out" / "events" / "events.parquet",
        tmp_path / "out" / "tool_calls" / "tool_calls.parquet",
        tmp_path / "out" / "business_events" / "business_events.parquet",
    ]
    events, tool_calls = generate_sample(400, seed=5)
    assert pl.read_parquet(paths[0]).equals(events)
    assert pl.read_parquet(paths[1]).equals(tool_calls)
    assert pl.read_parquet(paths[2]).equals(generate_business_events(events, seed=5))


def test_write_sample_round_trips_jsonl(tmp_path: Path) -> None:
    paths = write_sample(tmp_path, conversations=400, seed=5)
    assert paths == [
        tmp_path / "events" / "events.jsonl",
        tmp_path / "tool_calls" / "tool_calls.jsonl",
        tmp_path / "business_events" / "business_events.jsonl",
    ]
    first_line = paths[0].read_text().splitlines()[0]
    assert '"ts":"2026-10-' in first_line and 'Z"' in first_line
    events, tool_calls = generate_sample(400, seed=5)
    expected = (events, tool_calls, generate_business_events(events, seed=5))
    for path, frame in zip(paths, expected, strict=True):
        schema = {
            name: (pl.String() if name == "ts" else dtype) for name, dtype in frame.schema.items()
        }
        back = pl.read_ndjson(path, schema=schema).with_columns(
            pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")
        )
        assert back.equals(frame)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_written_files_are_byte_identical_for_the_same_seed(tmp_path: Path, fmt: str) -> None:
    def digests(folder: str, seed: int) -> list[str]:
        paths = write_sample(tmp_path / folder, conversations=200, seed=seed, fmt=fmt)  # type: ignore[arg-type]
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]

    same = digests("a", 9)
    assert same == digests("b", 9)
    assert all(x != y for x, y in zip(same, digests("c", 10), strict=True))


def test_other_days_and_start() -> None:
    start = datetime.datetime(2025, 3, 1, 12, tzinfo=datetime.UTC)
    events, tool_calls = generate_sample(1000, seed=1, days=3, start=start)
    end = start + datetime.timedelta(days=3)
    for frame in (events, tool_calls):
        assert frame.select(pl.col("ts").is_between(start, end, closed="left").all()).item()
    assert events["conversation_id"].n_unique() == 1000
    naive = generate_sample(50, seed=1, days=3, start=start.replace(tzinfo=None))
    assert naive[0].equals(generate_sample(50, seed=1, days=3, start=start)[0])


def test_large_samples_are_written_in_independent_parts(tmp_path: Path, monkeypatch) -> None:
    import kpictl.sample.write as sample_module

    monkeypatch.setattr(sample_module, "MAX_PART", 400)
    paths = sample_module.write_sample(tmp_path, conversations=1000, seed=3, fmt="parquet")
    assert [p.name for p in paths] == [
        f"{name}-part{i:02d}.parquet"
        for i in range(3)
        for name in ("events", "tool_calls", "business_events")
    ]
    events = pl.read_parquet(tmp_path / "events")
    assert events["conversation_id"].n_unique() == 1000
    assert events["conversation_id"].str.slice(0, 4).unique().sort().to_list() == [
        "p00-",
        "p01-",
        "p02-",
    ]
    calls = pl.read_parquet(tmp_path / "tool_calls")
    assert set(calls["conversation_id"]) <= set(events["conversation_id"])


def test_business_events_leave_the_logs_unchanged_and_are_realistic(
    events: pl.DataFrame,
) -> None:
    """Their own random stream: the events and tool calls of a seed are those without them.
    Per conversation (5,000): bookings at 10 % / 30 % (unresolved / resolved, treatment), 0.7x
    in the holdout; ~60 % name the conversation; some are late (> 7 d) or have no ids."""
    again, _ = generate_sample(5000)
    assert again.equals(events)
    business = generate_business_events(events)
    assert business.columns == [
        "business_event_id",
        "conversation_id",
        "user_id",
        "ts",
        "type",
        "value_usd",
    ]
    assert business["business_event_id"].is_unique().all()
    assert business["ts"].is_sorted()
    conv = events.group_by("conversation_id").agg(
        pl.col("arm").first(),
        pl.col("user_id").first(),
        (pl.col("event") == "resolution").any().alias("resolved"),
        pl.col("ts").min(),
    )
    end = datetime.datetime(2026, 10, 31, tzinfo=datetime.UTC)
    assert business.select(pl.col("ts").max() < end).item()
    named = business.filter(pl.col("conversation_id").is_not_null()).join(
        conv, on="conversation_id", suffix="_c"
    )
    assert (named["user_id"] == named["user_id_c"]).all()  # a named event carries its user
    assert (named["ts"] > named["ts_c"]).all()
    rate = named.group_by("arm").agg(pl.len()).sort("arm")  # holdout first
    sizes = conv.group_by("arm").agg(pl.len()).sort("arm")
    per_arm = (rate["len"] / sizes["len"]).to_list()
    assert per_arm[0] < per_arm[1]  # holdout books less
    share_named = business["conversation_id"].is_not_null().mean()
    no_ids = (business["conversation_id"].is_null() & business["user_id"].is_null()).sum()
    assert 0.5 < share_named < 0.7 and no_ids > 0
    assert set(business["type"]) == {"booking", "refund"}
    assert (business.filter(pl.col("type") == "refund")["value_usd"] < 0).all()


def test_frames_have_the_canonical_types_of_io_schema() -> None:
    """One canonical schema: every canonical column of a generated frame has io.schema's type
    (the sample once declared its own and drifted: csat Int64 where logs load as Float64)."""
    from kpictl.io import schema as canonical

    events, tool_calls = generate_sample(50, seed=1)
    business = generate_business_events(events, seed=1)
    for frame, table in (
        (events, canonical.EVENTS),
        (tool_calls, canonical.TOOL_CALLS),
        (business, canonical.BUSINESS_EVENTS),
    ):
        assert {n: frame.schema[n] for n in table} == {n: c.dtype for n, c in table.items()}
    assert events.schema["csat"] == pl.Float64()


def test_the_shipped_sample_logs_are_write_sample_output(tmp_path: Path) -> None:
    """sample_logs/ is `write_sample` of 2,000 conversations over 30 days, byte for byte (csat
    written as whole numbers, as it always was)."""
    shipped = Path(__file__).resolve().parents[1] / "sample_logs"
    for path in write_sample(tmp_path, conversations=2000, days=30):
        assert path.read_bytes() == (shipped / path.relative_to(tmp_path)).read_bytes(), path
