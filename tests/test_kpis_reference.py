"""kpictl's default scorecard vs. the independent DuckDB implementation in reference_sql.py.

Two layers:

* a tiny hand-built data set whose every KPI is computed by hand below, checked against both
  the SQL reference and kpictl;
* a ~3000-conversation synthetic sample, on which every KPI (overall, by channel, by arm, by day,
  escalation breakdown, n and pending) must agree to 1e-9 relative.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from reference_sql import KPI_NAMES, reference_kpis

SPEC_PATH = Path(__file__).resolve().parents[1] / "kpi_definitions.yaml"
REL_TOL = 1e-9
ABS_TOL = 1e-12

Key = tuple[Any, ...]
Row = tuple[float | None, int, int]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return False
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def _as_utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _cohort_columns(by: str | None, grain: str | None) -> list[str]:
    return ([by] if by else []) + (["bucket"] if grain else [])


def _index(df: pl.DataFrame, cohort_cols: list[str]) -> dict[Key, Row]:
    """{(kpi, *cohort, breakdown, breakdown_value): (value, n, pending)}; keys must be unique."""
    out: dict[Key, Row] = {}
    for row in df.iter_rows(named=True):
        key = (
            row["kpi"],
            *(_as_utc(row[c]) for c in cohort_cols),
            row.get("breakdown"),
            row.get("breakdown_value"),
        )
        assert key not in out, f"duplicate result row {key}"
        out[key] = (row["value"], row["n"], row["pending"])
    return out


def _kpictl_rows(
    result: pl.DataFrame, grouping: frozenset[str], cohort_cols: list[str]
) -> dict[Key, Row]:
    """kpictl's rows of one grouping (the set of its cohort dimensions, in any order)."""
    mask = pl.Series([frozenset(g) == grouping for g in result["grouping"].to_list()])
    rows = result.filter(mask)
    assert rows.height > 0, f"kpictl returned no rows with grouping {grouping}"
    # the business-outcome KPIs need business_events, not given here: unavailable, never 0
    # (test_outcome_kpis_on_the_sample_match_duckdb checks them with the CRM export)
    outcome = rows.filter(pl.col("kpi").is_in(OUTCOME_KPIS))
    assert outcome.height > 0 and outcome["value"].null_count() == outcome.height
    return _index(rows.filter(~pl.col("kpi").is_in(OUTCOME_KPIS)), cohort_cols)


OUTCOME_KPIS = ("business_outcome_rate", "value_per_conversation", "cost_per_outcome")


def _compare(expected: dict[Key, Row], got: dict[Key, Row], label: str) -> None:
    missing = sorted(set(expected) - set(got), key=repr)
    extra = sorted(set(got) - set(expected), key=repr)
    assert not missing and not extra, (
        f"{label}: row sets differ\n  missing in kpictl: {missing[:20]}\n"
        f"  extra in kpictl: {extra[:20]}"
    )
    problems = []
    for key, (e_value, e_n, e_pending) in expected.items():
        g_value, g_n, g_pending = got[key]
        if not _close(e_value, g_value) or e_n != g_n or e_pending != g_pending:
            problems.append(
                f"{key}: expected value={e_value} n={e_n} pending={e_pending}; "
                f"got value={g_value} n={g_n} pending={g_pending}"
            )
    assert not problems, f"{label}: {len(problems)} mismatches\n" + "\n".join(problems[:40])


def _check_breakdown_sums(rows: dict[Key, Row]) -> None:
    """Escalation-reason parts sum to escalation_rate, cohort by cohort, with the same n."""
    parts: dict[Key, float] = {}
    part_n: dict[Key, set[int]] = {}
    for key, (value, n, _) in rows.items():
        if key[0] == "escalation_rate" and key[-2] is not None:
            cohort = key[1:-2]
            assert key[-2] == "escalation_reason"
            parts[cohort] = parts.get(cohort, 0.0) + (value or 0.0)
            part_n.setdefault(cohort, set()).add(n)
    totals = {k[1:-2]: v for k, v in rows.items() if k[0] == "escalation_rate" and k[-2] is None}
    assert totals
    for cohort, (rate, n, _) in totals.items():
        assert _close(parts.get(cohort, 0.0), rate or 0.0) or (rate is None and cohort not in parts)
        assert part_n.get(cohort, {n}) == {n}


def _read_frames(events_path: Path, tool_calls_path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read the raw files for the reference, independently of kpictl's loader."""

    def read(path: Path) -> pl.DataFrame:
        if path.suffix == ".parquet":
            return pl.read_parquet(path)
        return pl.read_ndjson(path, infer_schema_length=None)

    return read(events_path), read(tool_calls_path)


def _kpictl_compute(
    events_path: Path, tool_calls_path: Path, *, by: str | None = None, grain: str | None = None
) -> pl.DataFrame:
    import kpictl

    spec = kpictl.load_spec(SPEC_PATH)
    sources = kpictl.load_sources(
        spec, paths={"events": [events_path], "tool_calls": [tool_calls_path]}
    )
    return kpictl.compute(spec, sources, by=[by] if by else [], grain=grain, as_of=None)


def _check_against_reference(
    events_path: Path, tool_calls_path: Path, *, by: str | None = None, grain: str | None = None
) -> None:
    """kpictl == reference for the requested cohorts and for every roll-up kpictl returns with
    them (e.g. the overall rows, or ["arm"] and ["bucket"] next to ["bucket", "arm"])."""
    events, tool_calls = _read_frames(events_path, tool_calls_path)
    result = _kpictl_compute(events_path, tool_calls_path, by=by, grain=grain)
    requested = frozenset(_cohort_columns(by, grain))
    groupings = {frozenset(g) for g in result["grouping"].to_list()}
    assert requested in groupings, f"no rows for grouping {sorted(requested)}"
    assert all(g <= requested for g in groupings), f"unexpected groupings {groupings}"

    for grouping in sorted(groupings, key=len):
        g_by = by if by in grouping else None
        g_grain = grain if "bucket" in grouping else None
        cohort_cols = _cohort_columns(g_by, g_grain)
        label = f"compute(by={by}, grain={grain}), grouping {cohort_cols}"
        expected = _index(reference_kpis(events, tool_calls, by=g_by, grain=g_grain), cohort_cols)
        got = _kpictl_rows(result, grouping, cohort_cols)
        _compare(expected, got, label)
        _check_breakdown_sums(expected)
        _check_breakdown_sums(got)


# ---------------------------------------------------------------------------------------------
# hand-built case
# ---------------------------------------------------------------------------------------------

ATTRS = ("channel", "intent", "customer_tier", "region", "agent_version", "arm")


def _conversation(cid: str, user: str | None, channel: str, intent: str, arm: str) -> dict:
    return {
        "conversation_id": cid,
        "user_id": user,
        "channel": channel,
        "intent": intent,
        "customer_tier": "gold",
        "region": "eu",
        "agent_version": "v1",
        "arm": arm,
    }


def _event(conv: dict, ts: str, event: str, role: str, **fields: Any) -> dict:
    row = {
        "conversation_id": conv["conversation_id"],
        "ts": ts,
        "event": event,
        "role": role,
        "input_tokens": None,
        "output_tokens": None,
        "cost_usd": None,
        "latency_ms": None,
        "escalation_reason": None,
        "csat": None,
        "human_minutes": None,
        "policy_violation": None,
        "user_id": conv["user_id"],
        "model": "m-1" if role == "agent" else None,
        "text": f"{event} by {role}",
        **{a: conv[a] for a in ATTRS},
    }
    unknown = set(fields) - set(row)
    assert not unknown, unknown
    row.update(fields)
    return row


def _tool_call(cid: str, ts: str, status: str, cost: float | None) -> dict:
    return {
        "conversation_id": cid,
        "ts": ts,
        "tool": "lookup",
        "status": status,
        "error_type": None if status == "ok" else "timeout",
        "retries": 0,
        "latency_ms": 120.0,
        "cost_usd": cost,
    }


C1 = _conversation("c1", "u1", "chat", "billing", "A")
C2 = _conversation("c2", "u2", "email", "billing", "B")
C3 = _conversation("c3", "u1", "chat", "billing", "A")
C4 = _conversation("c4", None, "email", "refund", "B")
C5 = _conversation("c5", "u1", "voice", "shipping", "A")

# as_of = 2024-03-12T06:00:00Z (the last tool call of c5, later than every event)
#   settled   <=> COALESCE(resolved_at, started_at) <= 2024-03-11T06:00  -> c1..c4; c5 pending
#   repeat-mature <=> user_id not null and started_at <= 2024-03-05T06:00 -> c1, c2;
#                     c3, c5 pending; c4 has no user (neither n nor pending)
HAND_EVENTS = [
    # c1: resolved after 1 h; reopened EXACTLY 24 h after resolution -> NOT completed.
    #   tokens 10+100+50 = 160; cost 0.01+0.02 + tools 0.005+0.001 = 0.036; csat 5
    _event(
        C1,
        "2024-03-01T00:00:00Z",
        "message",
        "user",
        input_tokens=10,
        output_tokens=0,
        cost_usd=0.01,
    ),
    _event(
        C1,
        "2024-03-01T00:00:05Z",
        "message",
        "agent",
        input_tokens=100,
        output_tokens=50,
        cost_usd=0.02,
        latency_ms=500.0,
        policy_violation=False,
    ),
    _event(C1, "2024-03-01T01:00:00Z", "resolution", "agent"),
    _event(C1, "2024-03-01T01:05:00Z", "feedback", "user", csat=5),
    _event(C1, "2024-03-02T01:00:00Z", "reopen", "user"),
    # c2: NULL cost on the user message, no tool calls; resolved after 30 min; reopened 24 h + 1 s
    #   after resolution -> completed. Feedback row without a score -> csat NULL.
    #   tokens 20+200+40 = 260; cost 0.03
    _event(C2, "2024-03-01T12:00:00Z", "message", "user", input_tokens=20),
    _event(
        C2,
        "2024-03-01T12:00:10Z",
        "message",
        "agent",
        input_tokens=200,
        output_tokens=40,
        cost_usd=0.03,
        latency_ms=1000.0,
    ),
    _event(C2, "2024-03-01T12:30:00Z", "resolution", "agent"),
    _event(C2, "2024-03-01T12:31:00Z", "feedback", "user"),
    _event(C2, "2024-03-02T12:30:01Z", "reopen", "user"),
    # c3: same user and intent as c1, started EXACTLY 7 days after c1 -> c1 is a repeat contact.
    #   Escalated (angry_customer), 10 human minutes, resolved after 2 h -> completed.
    #   tokens 30+300+60 = 390; cost 0.04 + tools 0.01+NULL + 10*0.75 = 7.55; csat (2+3)/2 = 2.5
    _event(C3, "2024-03-08T00:00:00Z", "message", "user", input_tokens=30, cost_usd=0.0),
    _event(
        C3,
        "2024-03-08T00:00:20Z",
        "message",
        "agent",
        input_tokens=300,
        output_tokens=60,
        cost_usd=0.04,
        latency_ms=2000.0,
    ),
    _event(C3, "2024-03-08T00:10:00Z", "escalation", "agent", escalation_reason="angry_customer"),
    _event(C3, "2024-03-08T00:40:00Z", "message", "human", human_minutes=10.0),
    _event(C3, "2024-03-08T02:00:00Z", "resolution", "human"),
    _event(C3, "2024-03-08T02:05:00Z", "feedback", "user", csat=2),
    _event(C3, "2024-03-08T02:06:00Z", "feedback", "user", csat=3),
    # c4: no user, policy violation, escalated (policy), never resolved (settled via started_at).
    #   agent latency NULL (not counted). tokens 15+100+20 = 135; cost 0.05 + tool NULL
    _event(C4, "2024-03-10T00:00:00Z", "message", "user", input_tokens=15),
    _event(
        C4,
        "2024-03-10T00:00:30Z",
        "message",
        "agent",
        input_tokens=100,
        output_tokens=20,
        cost_usd=0.05,
        policy_violation=True,
    ),
    _event(C4, "2024-03-10T00:05:00Z", "escalation", "agent", escalation_reason="policy"),
    # c5: same user as c1/c3 but another intent; resolved after 10 min -> completed but NOT
    #   settled (pending). tokens 5+50+10 = 65; cost 0.02 + tool 0.002 = 0.022
    _event(C5, "2024-03-12T00:00:00Z", "message", "user", input_tokens=5),
    _event(
        C5,
        "2024-03-12T00:00:01Z",
        "message",
        "agent",
        input_tokens=50,
        output_tokens=10,
        cost_usd=0.02,
        latency_ms=300.0,
    ),
    _event(C5, "2024-03-12T00:10:00Z", "resolution", "agent"),
]

HAND_TOOL_CALLS = [
    _tool_call("c1", "2024-03-01T00:00:03Z", "ok", 0.005),
    _tool_call("c1", "2024-03-01T00:00:04Z", "error", 0.001),
    _tool_call("c3", "2024-03-08T00:00:10Z", "ok", 0.01),
    _tool_call("c3", "2024-03-08T00:00:15Z", "ok", None),
    _tool_call("c4", "2024-03-10T00:00:20Z", "error", None),
    _tool_call("c5", "2024-03-12T06:00:00Z", "ok", 0.002),
]

# (value, n, pending) computed by hand from the comments above
HAND_EXPECTED_OVERALL: dict[str, Row] = {
    # settled c1..c4; completed: c2, c3 (c1 reopened at +24h, c4 unresolved) -> 2/4
    "task_completion_rate": (0.5, 4, 1),
    # escalated c3, c4 of 5
    "escalation_rate": (0.4, 5, 0),
    # contained (not escalated, 0 human minutes) among settled: c1, c2 -> 2/4
    "containment_rate": (0.5, 4, 1),
    # contained & completed & (csat null or >= 4): c2 only (c1 is not completed) -> 1/4
    "containment_with_quality": (0.25, 4, 1),
    # resolution times: c5 600, c2 1800, c1 3600, c3 7200 s
    #   p50: pos 1.5 -> 1800 + 0.5*1800 = 2700; p95: pos 2.85 -> 3600 + 0.85*3600 = 6660
    "time_to_resolution_p50": (2700.0, 4, 0),
    "time_to_resolution_p95": (6660.0, 4, 0),
    # settled cost 0.036 + 0.03 + 7.55 + 0.05 = 7.666 over 2 completed settled
    "cost_per_successful_task": (3.833, 4, 1),
    # (7.666 + 0.022) / 5
    "cost_per_task": (1.5376, 5, 0),
    # (160 + 260 + 390 + 135 + 65) / 5
    "tokens_per_task": (202.0, 5, 0),
    # (2 + 0 + 2 + 1 + 1) / 5
    "tool_calls_per_task": (1.2, 5, 0),
    "human_minutes_per_task": (2.0, 5, 0),
    # 4 ok of 6 calls
    "tool_call_success_rate": (4 / 6, 6, 0),
    # agent latencies 300, 500, 1000, 2000: pos 2.85 -> 1000 + 0.85*1000. c4's agent message
    # has no latency: skipped by the quantile, but it is one of the 5 agent messages (the 'over'
    # units) counted in n
    "agent_latency_p95": (1850.0, 5, 0),
    "policy_violation_rate": (0.2, 5, 0),
    # c1 5, c3 2.5 (c2's feedback has no score)
    "csat_mean": (3.75, 2, 0),
    # mature c1 (repeat: c3 at exactly +7 d), c2 (no repeat); pending c3, c5
    "repeat_contact_rate_7d": (0.5, 2, 2),
}
HAND_EXPECTED_BREAKDOWN: dict[str, Row] = {"angry_customer": (0.2, 5, 0), "policy": (0.2, 5, 0)}

# a few cohort numbers: chat = {c1, c3}, email = {c2, c4}, voice = {c5}
HAND_EXPECTED_BY_CHANNEL: dict[Key, Row] = {
    ("escalation_rate", "chat", None, None): (0.5, 2, 0),
    ("escalation_rate", "chat", "escalation_reason", "angry_customer"): (0.5, 2, 0),
    ("escalation_rate", "email", "escalation_reason", "policy"): (0.5, 2, 0),
    ("escalation_rate", "voice", None, None): (0.0, 1, 0),
    ("task_completion_rate", "voice", None, None): (None, 0, 1),
    ("task_completion_rate", "email", None, None): (0.5, 2, 0),
    ("tool_call_success_rate", "email", None, None): (0.0, 1, 0),
    ("tool_call_success_rate", "chat", None, None): (0.75, 4, 0),
    # the repeat search spans all conversations; chat: c1 mature & repeated, c3 pending
    ("repeat_contact_rate_7d", "chat", None, None): (1.0, 1, 1),
    ("repeat_contact_rate_7d", "email", None, None): (0.0, 1, 0),
    ("cost_per_successful_task", "chat", None, None): (7.586, 2, 0),
}


def _hand_expected_overall() -> dict[Key, Row]:
    expected: dict[Key, Row] = {(k, None, None): v for k, v in HAND_EXPECTED_OVERALL.items()}
    for reason, row in HAND_EXPECTED_BREAKDOWN.items():
        expected[("escalation_rate", "escalation_reason", reason)] = row
    return expected


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def hand_files(tmp_path: Path) -> tuple[Path, Path]:
    return (
        _write_jsonl(tmp_path / "events" / "events.jsonl", HAND_EVENTS),
        _write_jsonl(tmp_path / "tool_calls" / "tool_calls.jsonl", HAND_TOOL_CALLS),
    )


def test_hand_case_reference(hand_files: tuple[Path, Path]) -> None:
    events, tool_calls = _read_frames(*hand_files)
    overall = _index(reference_kpis(events, tool_calls), [])
    _compare(_hand_expected_overall(), overall, "reference, hand case")
    by_channel = _index(reference_kpis(events, tool_calls, by="channel"), ["channel"])
    for key, row in HAND_EXPECTED_BY_CHANNEL.items():
        _compare({key: row}, {key: by_channel[key]}, "reference, hand case by channel")
    _check_breakdown_sums(by_channel)
    # an explicit as_of moves the horizon: at 2024-03-13T00:10 c5 is settled as well
    later = _index(
        reference_kpis(events, tool_calls, as_of=datetime(2024, 3, 13, 0, 10, tzinfo=UTC)), []
    )
    assert later[("task_completion_rate", None, None)] == (0.6, 5, 0)


def test_hand_case_kpictl(hand_files: tuple[Path, Path]) -> None:
    result = _kpictl_compute(*hand_files)
    got = _kpictl_rows(result, frozenset(), [])
    _compare(_hand_expected_overall(), got, "kpictl, hand case")

    by_channel = _kpictl_compute(*hand_files, by="channel")
    got_by = _kpictl_rows(by_channel, frozenset({"channel"}), ["channel"])
    for key, row in HAND_EXPECTED_BY_CHANNEL.items():
        assert key in got_by, f"kpictl, hand case by channel: missing row {key}"
        _compare({key: row}, {key: got_by[key]}, "kpictl, hand case by channel")


@pytest.mark.parametrize("grain", [None, "day"])
@pytest.mark.parametrize("by", [None, "channel", "arm"])
def test_hand_case_kpictl_matches_reference(
    hand_files: tuple[Path, Path], by: str | None, grain: str | None
) -> None:
    _check_against_reference(*hand_files, by=by, grain=grain)


# ---------------------------------------------------------------------------------------------
# synthetic sample
# ---------------------------------------------------------------------------------------------

SAMPLE_CONVERSATIONS = 3000
SAMPLE_SEED = 11


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory):
    """fmt -> (events path, tool_calls path); each format is written once per module."""
    from kpictl.sample import write_sample

    cache: dict[str, tuple[Path, Path]] = {}

    def get(fmt: str) -> tuple[Path, Path]:
        if fmt not in cache:
            out = tmp_path_factory.mktemp(f"sample_{fmt}")
            write_sample(out, conversations=SAMPLE_CONVERSATIONS, seed=SAMPLE_SEED, fmt=fmt)
            cache[fmt] = (
                out / "events" / f"events.{fmt}",
                out / "tool_calls" / f"tool_calls.{fmt}",
            )
            assert all(p.exists() for p in cache[fmt]), cache[fmt]
        return cache[fmt]

    return get


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_sample_overall(sample_files, fmt: str) -> None:
    _check_against_reference(*sample_files(fmt))


@pytest.mark.parametrize("by", ["channel", "arm"])
def test_sample_by_cohort(sample_files, by: str) -> None:
    _check_against_reference(*sample_files("jsonl"), by=by)


def test_sample_by_day(sample_files) -> None:
    _check_against_reference(*sample_files("jsonl"), grain="day")


def test_sample_reference_is_not_degenerate(sample_files) -> None:
    """Guard against a comparison that passes because everything is null or empty."""
    events, tool_calls = _read_frames(*sample_files("jsonl"))
    ref = reference_kpis(events, tool_calls)
    plain = ref.filter(pl.col("breakdown").is_null())
    assert sorted(plain["kpi"].to_list()) == sorted(KPI_NAMES)
    assert plain["value"].null_count() == 0
    assert plain.filter(pl.col("n") == 0).height == 0
    pending = dict(zip(plain["kpi"], plain["pending"], strict=True))
    assert pending["task_completion_rate"] > 0
    assert pending["repeat_contact_rate_7d"] > 0
    assert ref.filter(pl.col("breakdown").is_not_null()).height >= 2


def test_outcome_kpis_on_the_sample_match_duckdb(tmp_path: Path) -> None:
    """business_outcome_rate, value_per_conversation and cost_per_outcome of the shipped spec
    on a generated sample with its CRM export, against DuckDB SQL written from the README's
    attribution rule: an event naming a conversation counts for it when it falls in [start,
    start + 7 d]; one naming only a user goes to that user's conversation with the latest start
    whose window holds it (ties: the larger conversation_id); events after as-of (the logs'
    latest time) are left out; conversations that started within 7 d of as-of are pending."""
    import duckdb

    import kpictl
    from kpictl.sample import write_sample

    write_sample(tmp_path, conversations=1500, seed=5, days=20, fmt="parquet")
    spec = kpictl.load_spec(SPEC_PATH)
    paths = {n: [tmp_path / n] for n in ("events", "tool_calls", "business_events")}
    result = kpictl.compute(spec, kpictl.load_sources(spec, paths), kpis=list(OUTCOME_KPIS))
    got = {r["kpi"]: (r["value"], r["n"], r["pending"]) for r in result.iter_rows(named=True)}

    con = duckdb.connect()
    for name in paths:
        con.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{tmp_path / name}/*.parquet')"
        )
    params = spec.params
    row = con.execute(
        f"""
        WITH as_of AS (
          SELECT GREATEST((SELECT MAX(ts) FROM events), (SELECT MAX(ts) FROM tool_calls)) AS t
        ),
        conv AS (
          SELECT conversation_id, ANY_VALUE(user_id) FILTER (WHERE user_id IS NOT NULL) AS user_id,
                 MIN(ts) AS started_at,
                 COALESCE(SUM(cost_usd), 0) AS llm_cost,
                 COALESCE(SUM(human_minutes), 0) AS human_minutes
          FROM events GROUP BY conversation_id
        ),
        tools AS (
          SELECT conversation_id, COALESCE(SUM(cost_usd), 0) AS tool_cost
          FROM tool_calls GROUP BY conversation_id
        ),
        biz AS (SELECT * FROM business_events WHERE ts <= (SELECT t FROM as_of)),
        direct AS (
          SELECT b.business_event_id, c.conversation_id, b.type, b.value_usd
          FROM biz b JOIN conv c ON b.conversation_id = c.conversation_id
          WHERE b.ts BETWEEN c.started_at AND c.started_at + INTERVAL 7 DAY
        ),
        by_user AS (
          SELECT business_event_id, conversation_id, type, value_usd FROM (
            SELECT b.business_event_id, c.conversation_id, b.type, b.value_usd,
                   ROW_NUMBER() OVER (PARTITION BY b.business_event_id
                                      ORDER BY c.started_at DESC, c.conversation_id DESC) AS k
            FROM biz b JOIN conv c ON b.user_id = c.user_id
            WHERE b.conversation_id IS NULL
              AND b.ts BETWEEN c.started_at AND c.started_at + INTERVAL 7 DAY
          ) WHERE k = 1
        ),
        credited AS (SELECT * FROM direct UNION ALL SELECT * FROM by_user),
        per_conv AS (
          SELECT c.conversation_id,
                 c.started_at <= (SELECT t FROM as_of) - INTERVAL 7 DAY AS settled,
                 COUNT(cr.business_event_id) FILTER (WHERE cr.type = 'booking') AS outcomes,
                 COALESCE(SUM(cr.value_usd), 0) AS outcome_value,
                 c.llm_cost + COALESCE(t.tool_cost, 0)
                   + c.human_minutes * {params["human_cost_per_minute"]} AS cost
          FROM conv c LEFT JOIN credited cr USING (conversation_id)
          LEFT JOIN tools t USING (conversation_id)
          GROUP BY c.conversation_id, c.started_at, c.llm_cost, c.human_minutes, t.tool_cost
        )
        SELECT AVG(CASE WHEN outcomes > 0 THEN 1.0 ELSE 0.0 END) FILTER (WHERE settled),
               AVG(outcome_value) FILTER (WHERE settled),
               SUM(cost) FILTER (WHERE settled) / SUM(outcomes) FILTER (WHERE settled),
               COUNT(*) FILTER (WHERE settled), COUNT(*) FILTER (WHERE NOT settled)
        FROM per_conv
        """
    ).fetchone()
    assert row is not None
    rate, value, cost, n, pending = row
    assert got["business_outcome_rate"][1:] == (n, pending)
    assert got["business_outcome_rate"][0] == pytest.approx(rate, rel=1e-12)
    assert got["value_per_conversation"][0] == pytest.approx(value, rel=1e-12)
    assert got["cost_per_outcome"][0] == pytest.approx(cost, rel=1e-12)
    assert 0 < rate < 1 and value != 0 and cost > 0  # the sample exercises all three
