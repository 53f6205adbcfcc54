"""The engine's semantics on tiny hand-built logs, each number worked out by hand."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpictl.engine.compute import compute, facts, run_compute
from kpictl.engine.interface import ComputeOptions
from kpictl.errors import InputDataError, UsageError
from kpictl.io.read import load_frames
from kpictl.spec import load_spec
from kpictl.spec.model import Spec

ROOT = Path(__file__).resolve().parents[1]
T0 = dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.UTC)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def events_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Canonical events; attributes default per conversation."""
    defaults: dict[str, object] = {
        "role": None,
        "input_tokens": None,
        "output_tokens": None,
        "cost_usd": None,
        "latency_ms": None,
        "escalation_reason": None,
        "csat": None,
        "human_minutes": None,
        "policy_violation": None,
        "user_id": "u1",
        "channel": "web",
        "intent": "billing",
        "customer_tier": "free",
        "region": "na",
        "agent_version": "v1",
        "arm": "treatment",
    }
    schema = {
        "conversation_id": pl.String,
        "ts": pl.Datetime("us", "UTC"),
        "event": pl.String,
        "role": pl.String,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "cost_usd": pl.Float64,
        "latency_ms": pl.Float64,
        "escalation_reason": pl.String,
        "csat": pl.Int64,
        "human_minutes": pl.Float64,
        "policy_violation": pl.Boolean,
        "user_id": pl.String,
        "channel": pl.String,
        "intent": pl.String,
        "customer_tier": pl.String,
        "region": pl.String,
        "agent_version": pl.String,
        "arm": pl.String,
    }
    return pl.DataFrame([{**defaults, **row} for row in rows], schema=schema)


def tool_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    schema = {
        "conversation_id": pl.String,
        "ts": pl.Datetime("us", "UTC"),
        "tool": pl.String,
        "status": pl.String,
        "cost_usd": pl.Float64,
    }
    return pl.DataFrame([{"tool": "lookup", "cost_usd": None, **r} for r in rows], schema=schema)


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec(ROOT / "kpi_definitions.yaml")


@pytest.fixture()
def tiny() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Three conversations; as_of = latest ts = at(100).

    a: web, starts 0h, resolved 1h, reopened 30h (> 24 h after: still completed); cost 0.5 + tool
       0.25; 2 agent messages with latency 100 and 300; csat 5; tokens 10+20+5+5.
    b: chat, starts 2h, escalated twice (first reason 'policy' at 3h, 'other' at 2.5h is
       EARLIER so the reason is 'other'), human 4 min, resolved 5h, reopened 6h (within 24 h):
       not completed; no tool calls; csat 2.
    c: web, starts 90h, not resolved, not settled (90h > 100h - 24h): pending; violation.
    """
    ev = events_frame(
        [
            {"conversation_id": "a", "ts": at(0), "event": "message", "role": "user"},
            {
                "conversation_id": "a",
                "ts": at(0.1),
                "event": "message",
                "role": "agent",
                "input_tokens": 10,
                "output_tokens": 20,
                "cost_usd": 0.5,
                "latency_ms": 100.0,
            },
            {
                "conversation_id": "a",
                "ts": at(0.2),
                "event": "message",
                "role": "agent",
                "input_tokens": 5,
                "output_tokens": 5,
                "latency_ms": 300.0,
            },
            {"conversation_id": "a", "ts": at(1), "event": "resolution"},
            {"conversation_id": "a", "ts": at(2), "event": "feedback", "csat": 5},
            {"conversation_id": "a", "ts": at(31), "event": "reopen"},
            {
                "conversation_id": "b",
                "ts": at(3),
                "event": "escalation",
                "escalation_reason": "policy",
                "channel": "chat",
            },
            {
                "conversation_id": "b",
                "ts": at(2),
                "event": "message",
                "role": "user",
                "channel": "chat",
            },
            {
                "conversation_id": "b",
                "ts": at(2.5),
                "event": "escalation",
                "escalation_reason": "other",
                "channel": "chat",
            },
            {
                "conversation_id": "b",
                "ts": at(4),
                "event": "message",
                "role": "human",
                "human_minutes": 4.0,
                "channel": "chat",
            },
            {"conversation_id": "b", "ts": at(5), "event": "resolution", "channel": "chat"},
            {"conversation_id": "b", "ts": at(6), "event": "reopen", "channel": "chat"},
            {
                "conversation_id": "b",
                "ts": at(7),
                "event": "feedback",
                "csat": 2,
                "channel": "chat",
            },
            {
                "conversation_id": "c",
                "ts": at(90),
                "event": "message",
                "role": "user",
                "user_id": "u2",
            },
            {
                "conversation_id": "c",
                "ts": at(100),
                "event": "message",
                "role": "agent",
                "policy_violation": True,
                "latency_ms": 1000.0,
                "user_id": "u2",
            },
        ]
    )
    tc = tool_frame(
        [
            {"conversation_id": "a", "ts": at(0.15), "status": "ok", "cost_usd": 0.25},
            {"conversation_id": "a", "ts": at(0.16), "status": "error"},
            {"conversation_id": "c", "ts": at(95), "status": "ok"},
        ]
    )
    return ev, tc


def values(table: pl.DataFrame, cohort: list[str] | None = None) -> dict[str, dict[str, object]]:
    rows = table.filter(
        pl.col("breakdown").is_null()
        & (pl.col("grouping") == pl.lit(cohort or [], pl.List(pl.String)))
    )
    return {r["kpi"]: r for r in rows.iter_rows(named=True)}


def test_default_scorecard_on_hand_computed_data(spec: Spec, tiny) -> None:
    ev, tc = tiny
    result = values(compute(spec, load_frames({"events": ev, "tool_calls": tc})))
    # settled: a (resolved 1h ≤ 76h) and b (5h ≤ 76h); c pending.
    assert result["task_completion_rate"]["value"] == 0.5  # a completed, b reopened in 24 h
    assert (result["task_completion_rate"]["n"], result["task_completion_rate"]["pending"]) == (
        2,
        1,
    )
    assert result["escalation_rate"]["value"] == pytest.approx(1 / 3, rel=1e-12)
    assert result["containment_rate"]["value"] == 0.5  # a contained, b escalated
    assert result["containment_with_quality"]["value"] == 0.5  # a: completed, csat 5 ≥ 4
    # ttr: a 3600 s, b 18000 s - 7200 s = 10800 s.  p50 = 7200, p95 = 3600 + 0.95 * 7200
    assert result["time_to_resolution_p50"]["value"] == 7200.0
    assert result["time_to_resolution_p95"]["value"] == pytest.approx(3600 + 0.95 * 7200)
    assert result["time_to_resolution_p50"]["n"] == 2
    # cost: a 0.5 + 0.25, b 4 * 0.75 = 3, c 0.  settled cost 3.75 / 1 completed
    assert result["cost_per_successful_task"]["value"] == pytest.approx(3.75)
    assert result["cost_per_task"]["value"] == pytest.approx(3.75 / 3)
    assert result["tokens_per_task"]["value"] == pytest.approx(40 / 3)
    assert result["tool_calls_per_task"]["value"] == pytest.approx(1.0)
    assert result["human_minutes_per_task"]["value"] == pytest.approx(4 / 3)
    assert result["tool_call_success_rate"]["value"] == pytest.approx(2 / 3)
    # agent latencies 100, 300, 1000: p95 = 300 + 0.9 * 700
    assert result["agent_latency_p95"]["value"] == pytest.approx(300 + 0.9 * 700)
    assert result["policy_violation_rate"]["value"] == pytest.approx(1 / 3)
    assert result["csat_mean"]["value"] == pytest.approx(3.5)
    assert result["csat_mean"]["n"] == 2


def test_first_means_earliest_whatever_the_file_order(spec: Spec, tiny) -> None:
    ev, tc = tiny
    table = facts(spec, load_frames({"events": ev, "tool_calls": tc}))
    reasons = dict(zip(table["conversation_id"], table["escalation_reason"], strict=True))
    assert reasons == {"a": None, "b": "other", "c": None}


def test_secondary_source_fills_count_and_total_with_zero(spec: Spec, tiny) -> None:
    ev, tc = tiny
    table = facts(spec, load_frames({"events": ev, "tool_calls": tc})).sort("conversation_id")
    assert table["tool_calls"].to_list() == [2, 0, 1]
    assert table["tool_cost"].to_list() == [0.25, 0.0, 0.0]


def test_breakdown_parts_sum_to_the_rate(spec: Spec, tiny) -> None:
    ev, tc = tiny
    table = compute(spec, load_frames({"events": ev, "tool_calls": tc}), kpis=["escalation_rate"])
    parts = table.filter(pl.col("breakdown").is_not_null())
    assert parts["breakdown_value"].to_list() == ["other"]
    assert parts["value"].sum() == pytest.approx(
        table.filter(pl.col("breakdown").is_null())["value"].item()
    )


def test_as_of_ignores_later_rows_and_moves_maturity(spec: Spec, tiny) -> None:
    ev, tc = tiny
    # as of 30h: only a and b exist; b resolved at 5h: settled (5 ≤ 6); a resolved 1h settled.
    # a's reopen at 31h is after as-of.
    result = run_compute(
        spec,
        load_frames({"events": ev, "tool_calls": tc}),
        ComputeOptions(as_of=at(30), kpis=("task_completion_rate",)),
    )
    row = values(result.table)["task_completion_rate"]
    assert (row["value"], row["n"], row["pending"]) == (0.5, 2, 0)
    assert result.window.as_of == at(30)


def test_default_as_of_reads_every_row_without_a_filter(spec: Spec, tiny) -> None:
    """The default as-of is the latest timestamp: the rows need no filter (window.latest),
    and the table equals the one with that as-of given explicitly (which filters)."""
    ev, tc = tiny
    sources = load_frames({"events": ev, "tool_calls": tc})
    default = run_compute(spec, sources)
    explicit = run_compute(spec, sources, ComputeOptions(as_of=default.window.as_of))
    assert default.window.latest == default.window.as_of == at(100)
    assert explicit.window.latest is None
    assert default.table.to_dicts() == explicit.table.to_dicts()


def test_window_since_until_by_start_time(spec: Spec, tiny) -> None:
    ev, tc = tiny
    table = compute(
        spec,
        load_frames({"events": ev, "tool_calls": tc}),
        since=at(1.5),
        until=at(80),
        kpis=["escalation_rate", "tool_call_success_rate"],
    )
    result = values(table)
    assert result["escalation_rate"]["value"] == 1.0  # only b starts in [1.5h, 80h)
    assert result["tool_call_success_rate"]["n"] == 0  # b has no tool calls
    assert result["tool_call_success_rate"]["value"] is None


def test_by_cohort_and_grain(spec: Spec, tiny) -> None:
    ev, tc = tiny
    table = compute(
        spec,
        load_frames({"events": ev, "tool_calls": tc}),
        by=["channel"],
        grain="day",
        kpis=["escalation_rate"],
    )
    main = table.filter(pl.col("breakdown").is_null())
    by_channel = main.filter(pl.col("grouping") == pl.lit(["channel"], pl.List(pl.String)))
    assert dict(zip(by_channel["channel"], by_channel["value"], strict=True)) == {
        "chat": 1.0,
        "web": 0.0,
    }
    buckets = main.filter(pl.col("grouping") == pl.lit(["bucket"], pl.List(pl.String)))
    assert buckets["bucket"].to_list() == [
        dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 10, 5, tzinfo=dt.UTC),
    ]
    assert buckets["n"].to_list() == [2, 1]
    both = main.filter(pl.col("grouping").list.len() == 2)
    assert both.height == 3  # (day 1, chat), (day 1, web), (day 5, web)


def test_where_and_params(spec: Spec, tiny) -> None:
    ev, tc = tiny
    sources = load_frames({"events": ev, "tool_calls": tc})
    web = values(compute(spec, sources, where="channel = 'web'", kpis=["cost_per_task"]))
    assert web["cost_per_task"]["value"] == pytest.approx(0.75 / 2)
    dearer = spec.with_params({"human_cost_per_minute": "2"})
    result = values(compute(dearer, sources, kpis=["cost_per_task"]))
    assert result["cost_per_task"]["value"] == pytest.approx((0.75 + 8.0) / 3)


def test_varying_attribute_is_an_error(spec: Spec, tiny) -> None:
    ev, tc = tiny
    ev = ev.with_columns(
        pl.when(pl.col("event") == "feedback")
        .then(pl.lit("email"))
        .otherwise(pl.col("channel"))
        .alias("channel")
    )
    sources = load_frames({"events": ev, "tool_calls": tc})
    with pytest.raises(InputDataError, match=r"'channel' varies within a conversation_id"):
        compute(spec, sources, by=["channel"])
    with pytest.raises(InputDataError, match=r"'channel' varies within a conversation_id"):
        facts(spec, sources)
    # a run that reads no channel neither rolls it up nor checks it: its numbers do not
    # depend on it
    assert compute(spec, sources, kpis=["escalation_rate"]).height > 0


def test_unknown_kpi_and_dimension_are_usage_errors(spec: Spec, tiny) -> None:
    ev, tc = tiny
    sources = load_frames({"events": ev, "tool_calls": tc})
    with pytest.raises(UsageError, match="did you mean 'escalation_rate'"):
        compute(spec, sources, kpis=["escalaton_rate"])
    with pytest.raises(UsageError, match="did you mean 'channel'"):
        compute(spec, sources, by=["chanel"])
    with pytest.raises(UsageError, match="--where"):
        compute(spec, sources, where="nope = 1")


FORMULA_SPEC = """
version: 1
sources:
  events: {}
tables:
  conversations:
    key: conversation_id
    time: started_at
    rollup:
      events:
        started_at: MIN(ts)
        resolved_at: MIN(ts) FILTER (WHERE event = 'resolution')
        escalated: COUNT(*) FILTER (WHERE event = 'escalation') > 0
kpis:
  resolved_rate:
    numerator: COUNT(*) FILTER (WHERE resolved_at IS NOT NULL)
    denominator: COUNT(*)
  escalated_rate:
    numerator: COUNT(*) FILTER (WHERE escalated)
    denominator: COUNT(*)
  resolved_per_escalated:
    formula: resolved_rate / escalated_rate
  ttr_median:
    where: resolved_at IS NOT NULL
    value: MEDIAN(resolved_at - started_at)
    format: duration
"""


def test_formula_and_duration_values(tmp_path: Path, tiny) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(FORMULA_SPEC)
    spec = load_spec(path)
    ev, _ = tiny
    result = values(
        compute(spec, load_frames({"events": ev}), kpis=["resolved_per_escalated", "ttr_median"])
    )
    assert set(result) == {"resolved_per_escalated", "ttr_median"}
    assert result["resolved_per_escalated"]["value"] == pytest.approx((2 / 3) / (1 / 3))
    assert result["ttr_median"]["value"] == pytest.approx(7200.0)  # a Duration, as seconds


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["web", "chat", "email"]), st.booleans(), st.booleans()),
        min_size=1,
        max_size=30,
    )
)
def test_cohort_counts_add_up_to_overall(spec: Spec, rows: list[tuple[str, bool, bool]]) -> None:
    """Splitting by cohort and merging the parts gives the overall rate; rates stay in [0, 1]."""
    records: list[dict[str, object]] = []
    for i, (channel, escalated, resolved) in enumerate(rows):
        cid = f"c{i}"
        start = at(i)
        records.append(
            {
                "conversation_id": cid,
                "ts": start,
                "event": "message",
                "role": "user",
                "channel": channel,
            }
        )
        if escalated:
            records.append(
                {
                    "conversation_id": cid,
                    "ts": start + dt.timedelta(minutes=1),
                    "event": "escalation",
                    "escalation_reason": "r",
                    "channel": channel,
                }
            )
        if resolved:
            records.append(
                {
                    "conversation_id": cid,
                    "ts": start + dt.timedelta(minutes=2),
                    "event": "resolution",
                    "channel": channel,
                }
            )
    sources = load_frames({"events": events_frame(records), "tool_calls": tool_frame([])})
    table = compute(spec, sources, by=["channel"], kpis=["escalation_rate"])
    main = table.filter(pl.col("breakdown").is_null())
    overall = main.filter(pl.col("grouping").list.len() == 0).row(0, named=True)
    parts = main.filter(pl.col("grouping").list.len() == 1)
    assert parts["n"].sum() == overall["n"] == len(rows)
    merged = sum(r["value"] * r["n"] for r in parts.iter_rows(named=True)) / overall["n"]
    assert math.isclose(merged, overall["value"], rel_tol=1e-12, abs_tol=1e-15)
    assert overall["value"] == sum(e for _, e, _ in rows) / len(rows)
    assert all(0.0 <= v <= 1.0 for v in main["value"])


@pytest.mark.parametrize(
    ("intents", "expected"),
    [
        (("billing", "billing"), 0.5),  # the first is followed by a same-intent contact in 1 day
        (("billing", "returns"), 0.0),
        ((None, None), 0.0),  # a missing intent matches nothing, not even another missing one
    ],
)
def test_repeat_contact_needs_a_known_same_intent(spec: Spec, intents, expected) -> None:
    ev = events_frame(
        [
            {"conversation_id": "p", "ts": at(0), "event": "message", "intent": intents[0]},
            {"conversation_id": "q", "ts": at(24), "event": "message", "intent": intents[1]},
            {"conversation_id": "z", "ts": at(24 * 20), "event": "message", "user_id": "u9"},
        ]
    )
    sources = load_frames({"events": ev, "tool_calls": tool_frame([])})
    row = values(compute(spec, sources, kpis=["repeat_contact_rate_7d"]))["repeat_contact_rate_7d"]
    assert (row["value"], row["n"], row["pending"]) == (expected, 2, 1)


def test_repeat_contact_with_tied_start_times(spec: Spec) -> None:
    """A and B start at the same instant, C a day later: both A and B are repeat contacts."""
    ev = events_frame(
        [
            {"conversation_id": "A", "ts": at(0), "event": "message"},
            {"conversation_id": "B", "ts": at(0), "event": "message"},
            {"conversation_id": "C", "ts": at(24), "event": "message"},
            {"conversation_id": "z", "ts": at(24 * 20), "event": "message", "user_id": "u9"},
        ]
    )
    sources = load_frames({"events": ev, "tool_calls": tool_frame([])})
    row = values(compute(spec, sources, kpis=["repeat_contact_rate_7d"]))["repeat_contact_rate_7d"]
    assert (row["value"], row["n"]) == (2 / 3, 3)


def test_attribute_missing_on_some_rows_is_not_a_variation(spec: Spec, tiny) -> None:
    ev, tc = tiny
    ev = ev.with_columns(
        pl.when(pl.col("event") == "feedback")
        .then(None)
        .otherwise(pl.col("channel"))
        .alias("channel")
    )
    table = facts(spec, load_frames({"events": ev, "tool_calls": tc})).sort("conversation_id")
    assert table["channel"].to_list() == ["web", "chat", "web"]


@pytest.fixture(scope="module")
def sample_sources(shipped_spec: Spec):
    from kpictl.engine.sources import load_sources

    root = ROOT / "sample_logs"
    return load_sources(
        shipped_spec, {"events": [root / "events"], "tool_calls": [root / "tool_calls"]}
    )


@pytest.mark.parametrize(
    "options",
    [
        ComputeOptions(),
        ComputeOptions(kpis=("tool_call_success_rate", "agent_latency_p95"), by=("channel",)),
        ComputeOptions(
            kpis=("tool_call_success_rate",),
            grain="week",
            since=dt.datetime(2026, 10, 8, tzinfo=dt.UTC),
        ),
        ComputeOptions(
            kpis=("agent_latency_p95", "escalation_rate"), where="channel = 'web'", by=("arm",)
        ),
    ],
    ids=["all", "row-tables-by-channel", "grain-since", "where-on-attribute"],
)
def test_reading_only_used_columns_changes_no_number(
    shipped_spec: Spec,
    sample_sources,
    options: ComputeOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run rolls up and looks up only the columns it reads; the same run with every
    column rolled up and looked up (`reads` None) gives the same table."""
    from kpictl.engine import compute as engine

    pruned = run_compute(shipped_spec, sample_sources, options).table
    monkeypatch.setattr(engine, "read_names", lambda *args, **kwargs: None)
    everything = run_compute(shipped_spec, sample_sources, options).table
    from polars.testing import assert_frame_equal

    assert pruned.height > 0
    # parallel float sums may differ in the last bit from run to run
    assert_frame_equal(pruned, everything, check_exact=False, rel_tol=1e-12, abs_tol=1e-15)


PASSES_SPEC = """
version: 1
sources:
  events: {}
  tool_calls: {}
tables:
  conversations:
    key: conversation_id
    time: started_at
    rollup:
      events:
        started_at: MIN(ts)
        resolved_at: MIN(ts) FILTER (WHERE event = 'resolution')
        # the argument uses an earlier entry, the condition does not
        first_escalation_s: >-
          FIRST(EXTRACT(EPOCH FROM ts) - EXTRACT(EPOCH FROM started_at))
          FILTER (WHERE event = 'escalation')
        reopens_after: COUNT(*) FILTER (WHERE event = 'reopen' AND ts > resolved_at)
        last_reason: LAST(escalation_reason) FILTER (WHERE event = 'escalation')
      tool_calls:
        # a secondary source whose only entry uses the first source's entries
        calls_after_resolution: COUNT(*) FILTER (WHERE ts > resolved_at)
kpis:
  reopened:
    numerator: COUNT(*) FILTER (WHERE reopens_after > 0)
    denominator: COUNT(*)
"""


def test_rollup_passes_by_hand(tmp_path: Path) -> None:
    """Entries in later passes (using earlier entries), in passes of their own (FIRST/LAST over
    matching rows), and of a secondary source that only has later-pass entries; keys without
    matching rows take each entry's value over zero rows (COUNT 0, FIRST null)."""
    path = tmp_path / "spec.yaml"
    path.write_text(PASSES_SPEC)
    spec = load_spec(path)
    ev = events_frame(
        [
            {"conversation_id": "a", "ts": at(0), "event": "message"},
            {"conversation_id": "a", "ts": at(2), "event": "escalation", "escalation_reason": "x"},
            {"conversation_id": "a", "ts": at(1), "event": "escalation", "escalation_reason": "y"},
            {"conversation_id": "a", "ts": at(3), "event": "resolution"},
            {"conversation_id": "a", "ts": at(4), "event": "reopen"},
            {"conversation_id": "a", "ts": at(2.5), "event": "reopen"},  # before the resolution
            {"conversation_id": "b", "ts": at(10), "event": "message"},
            {"conversation_id": "b", "ts": at(11), "event": "resolution"},
            {"conversation_id": "c", "ts": at(20), "event": "message"},
            {"conversation_id": "c", "ts": at(20), "event": "reopen"},  # c is never resolved
        ]
    )
    tc = tool_frame(
        [
            {"conversation_id": "a", "ts": at(3.5), "status": "ok"},
            {"conversation_id": "a", "ts": at(0.5), "status": "ok"},
            {"conversation_id": "c", "ts": at(21), "status": "ok"},
            {"conversation_id": "zz", "ts": at(1), "status": "ok"},  # no events: not a key
        ]
    )
    table = facts(spec, load_frames({"events": ev, "tool_calls": tc})).sort("conversation_id")
    assert table["conversation_id"].to_list() == ["a", "b", "c"]
    assert table["first_escalation_s"].to_list() == [3600.0, None, None]
    assert table["last_reason"].to_list() == ["x", None, None]
    assert table["reopens_after"].to_list() == [1, 0, 0]
    assert table["calls_after_resolution"].to_list() == [1, 0, 0]


def test_first_and_last_take_file_order_among_equal_times(tmp_path: Path) -> None:
    """FIRST/LAST … FILTER mean earliest/latest by ts; rows with equal ts keep their file
    order (FIRST takes the first of them, LAST the last); the file order of rows with
    different times does not matter."""
    path = tmp_path / "spec.yaml"
    path.write_text(
        PASSES_SPEC.replace(
            "        last_reason: LAST(escalation_reason) FILTER (WHERE event = 'escalation')\n",
            "        last_reason: LAST(escalation_reason) FILTER (WHERE event = 'escalation')\n"
            "        first_reason: FIRST(escalation_reason) FILTER (WHERE event = 'escalation')\n",
        )
    )
    spec = load_spec(path)
    many = [  # enough rows that polars works in several chunks
        {"conversation_id": f"m{i}", "ts": at(i % 50), "event": "message"} for i in range(3000)
    ]
    ev = events_frame(
        [
            {
                "conversation_id": "a",
                "ts": at(5),
                "event": "escalation",
                "escalation_reason": "late",
            },
            *many[:1500],
            {"conversation_id": "a", "ts": at(1), "event": "escalation", "escalation_reason": "p"},
            {"conversation_id": "a", "ts": at(1), "event": "escalation", "escalation_reason": "q"},
            {"conversation_id": "a", "ts": at(0), "event": "message"},
            *many[1500:],
            {"conversation_id": "b", "ts": at(2), "event": "escalation", "escalation_reason": "r"},
            {"conversation_id": "b", "ts": at(2), "event": "escalation", "escalation_reason": "s"},
            {"conversation_id": "b", "ts": at(0), "event": "message"},
        ]
    )
    table = facts(spec, load_frames({"events": ev, "tool_calls": tool_frame([])}))
    rows = {
        r["conversation_id"]: r
        for r in table.filter(pl.col("conversation_id").is_in(["a", "b"])).to_dicts()
    }
    assert (rows["a"]["first_reason"], rows["a"]["last_reason"]) == ("p", "late")
    assert (rows["b"]["first_reason"], rows["b"]["last_reason"]) == ("r", "s")
