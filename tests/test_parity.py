"""Parity harness (issue 13): the polars engine and the DuckDB engine give the same numbers for
every KPI of the shipped spec (and of a pass^k spec) on hypothesis-generated small event logs —
every (kpi, cohort, bucket, breakdown) row present in both, n and pending exactly equal, values
to 1e-9 relative, reasons and notes equal — overall, by cohort, as a cross-tab, at each grain,
with a --where, a window, and a price table that leaves one model's cost unknown.

The logs are drawn to hit the edges where two engines can part: nulls in FIRST's argument,
equal timestamps within a conversation (FIRST/LAST ties: the row's position in the source),
null cohort and partition keys (channel, user_id, intent), attributes null on some of a
conversation's rows, cohorts left empty by a KPI's `where`, a reopen exactly 24 h (and 24 h +
1 µs) after the resolution, a repeat contact exactly 7 d (and 7 d + 1 µs) after a start,
business events exactly 7 d after a start, as-of exactly on a `settled` boundary, and
sub-second times.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHIPPED_SPEC
from kpictl.engine.compute import run_compute
from kpictl.engine.duck import DuckDBEngine, uncovered
from kpictl.engine.interface import ComputeOptions
from kpictl.engine.polarsengine import PolarsEngine
from kpictl.engine.sources import load_sources
from kpictl.engine.window import resolve_window
from kpictl.io import schema as canonical
from kpictl.spec import load_spec
from parity import assert_same_numbers

T0 = dt.datetime(2026, 10, 1, 9, 0, tzinfo=dt.UTC)
US = dt.timedelta(microseconds=1)
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
ATTRIBUTES = ("channel", "intent", "customer_tier", "region", "agent_version", "arm")

# conversation starts: pairs exactly 7 d and 7 d + 1 µs apart, equal starts, a sub-second one
STARTS = (T0, T0 + US, T0 + 7 * DAY, T0 + 7 * DAY + US, T0 + 3 * DAY + dt.timedelta(seconds=0.25))
# event times after a start: differences of exactly 24 h (0 → 24 h, 1 µs → 24 h + 1 µs,
# 1 h → 25 h) and 24 h + 1 µs, equal times, half a second
OFFSETS = (dt.timedelta(0), US, dt.timedelta(milliseconds=500), HOUR, DAY, DAY + US, 25 * HOUR)
# as-of: the default (the latest time) or on a `settled` / 7-day boundary of some start
AS_OF = (None, T0 + DAY, T0 + DAY + US, T0 + 7 * DAY, T0 + 8 * DAY, T0 + 14 * DAY + US)
EVENT_TYPES = ("message", "message", "resolution", "reopen", "escalation", "feedback")


@dataclass(frozen=True)
class Logs:
    """One drawn dataset: rows of the three sources, and the run's as-of (None: the latest)."""

    events: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    business_events: list[dict[str, Any]]
    as_of: dt.datetime | None


def _maybe(values: Sequence[Any]) -> st.SearchStrategy[Any]:
    return st.sampled_from([None, *values])


@st.composite
def event_logs(draw: st.DrawFn) -> Logs:
    """A few conversations of a few users; see the module docstring for the edges drawn."""
    events: list[dict[str, Any]] = []
    ids = [f"c{i}" for i in range(draw(st.integers(1, 6)))]
    for cid in ids:
        start = draw(st.sampled_from(STARTS))
        attrs = {
            "channel": draw(_maybe(["chat", "web"])),
            "intent": draw(_maybe(["billing", "refund"])),
            "customer_tier": draw(_maybe(["gold"])),
            "region": draw(_maybe(["eu", "us"])),
            "agent_version": draw(_maybe(["v1"])),
            "arm": draw(_maybe(["treatment", "holdout"])),
            "user_id": draw(_maybe(["u1", "u2"])),
            "model": draw(_maybe(["m1", "m2"])),  # m1 priced, m2 not (PRICED)
        }
        for _ in range(draw(st.integers(1, 5))):
            event = draw(st.sampled_from(EVENT_TYPES))
            # an attribute may be null on some of a conversation's rows (nulls aside, constant)
            blank = draw(st.sets(st.sampled_from(sorted(attrs)), max_size=2))
            events.append(
                {
                    "conversation_id": cid,
                    "ts": start + draw(st.sampled_from(OFFSETS)),
                    "event": event,
                    "role": draw(_maybe(["agent", "user"])),
                    "input_tokens": draw(_maybe([0, 7, 120])),
                    "output_tokens": draw(_maybe([0, 30])),
                    # m2 reports no cost (unpriced under PRICED: its cost unknown)
                    "cost_usd": None
                    if attrs["model"] == "m2"
                    else draw(_maybe([0.0, 0.001, 0.25])),
                    "latency_ms": draw(_maybe([12.5, 900.0])),
                    "escalation_reason": draw(_maybe(["policy", "user_request"])),
                    "csat": draw(_maybe([1.0, 3.0, 4.0, 5.0])) if event == "feedback" else None,
                    "human_minutes": draw(_maybe([0.0, 2.5])),
                    "policy_violation": draw(_maybe([False, True])),
                    **{k: None if k in blank else v for k, v in attrs.items()},
                }
            )
    calls = [
        {
            "conversation_id": draw(st.sampled_from([*ids, "c_unknown"])),
            "ts": draw(st.sampled_from(STARTS)) + draw(st.sampled_from(OFFSETS)),
            "tool": "search",
            "status": draw(st.sampled_from(["ok", "error"])),
            "cost_usd": draw(_maybe([0.0, 0.02])),
        }
        for _ in range(draw(st.integers(0, 4)))
    ]
    business = [
        {
            "business_event_id": f"b{i}",
            "conversation_id": draw(_maybe(ids)),
            "user_id": draw(_maybe(["u1", "u2"])),
            # at a start, exactly 7 d after one (the window's closed end) or 1 µs past it
            "ts": draw(st.sampled_from(STARTS))
            + draw(st.sampled_from([dt.timedelta(0), 7 * DAY, 7 * DAY + US])),
            "type": draw(st.sampled_from(["booking", "refund"])),
            "value_usd": draw(_maybe([100.0, -40.0])),
        }
        for i in range(draw(st.integers(0, 3)))
    ]
    return Logs(events, calls, business, draw(st.sampled_from(AS_OF)))


# every column non-null somewhere: a column all null is "unavailable" for both engines alike,
# and would leave the KPIs reading it uncompared
ANCHOR = [
    {
        "conversation_id": "c_anchor",
        "ts": T0 - DAY + offset,
        "event": event,
        "role": "agent",
        "input_tokens": 50,
        "output_tokens": 20,
        "cost_usd": 0.01,
        "latency_ms": 300.0,
        "escalation_reason": "policy" if event == "escalation" else None,
        "csat": 5.0 if event == "feedback" else None,
        "human_minutes": 1.0,
        "policy_violation": False,
        "model": "m1",
        "channel": "chat",
        "intent": "billing",
        "customer_tier": "gold",
        "region": "eu",
        "agent_version": "v1",
        "arm": "treatment",
        "user_id": "u_anchor",
    }
    for offset, event in [(dt.timedelta(0), "escalation"), (HOUR, "resolution"), (HOUR, "feedback")]
]

# The named edges, always run (hypothesis draws around them).
EDGES = Logs(
    events=[
        # c1: FIRST's argument null on the first of two escalations at the same instant;
        # resolved, reopened exactly 24 h later (counts: reopened_24h is ts <= resolved + 24 h)
        *(
            {
                "conversation_id": "c1",
                "ts": T0 + off,
                "event": ev,
                "escalation_reason": reason,
                "channel": ch,
                "intent": "billing",
                "user_id": "u1",
            }
            for off, ev, reason, ch in [
                (dt.timedelta(0), "message", None, None),
                (HOUR, "escalation", None, "chat"),
                (HOUR, "escalation", "policy", "chat"),
                (2 * HOUR, "resolution", None, "chat"),
                (26 * HOUR, "reopen", None, "chat"),
            ]
        ),
        # c2: same user and intent, starting exactly 7 d after c1 (a repeat contact);
        # reopened 24 h + 1 µs after its resolution (not counted); sub-second times
        *(
            {
                "conversation_id": "c2",
                "ts": T0 + 7 * DAY + off,
                "event": ev,
                "channel": "web",
                "intent": "billing",
                "user_id": "u1",
            }
            for off, ev in [
                (dt.timedelta(0), "message"),
                (dt.timedelta(seconds=1.25), "resolution"),
                (DAY + dt.timedelta(seconds=1.25) + US, "reopen"),
            ]
        ),
        # c3: 7 d + 1 µs after c1 (not a repeat of it); null channel and intent
        {"conversation_id": "c3", "ts": T0 + 7 * DAY + US, "event": "message", "user_id": "u1"},
        # c4: no user (left out of the repeat-contact KPI), null channel: an empty cohort there
        {"conversation_id": "c4", "ts": T0 + 3 * DAY, "event": "feedback", "csat": 2.0},
    ],
    tool_calls=[
        {
            "conversation_id": "c1",
            "ts": T0 + HOUR,
            "tool": "search",
            "status": "ok",
            "cost_usd": 0.02,
        },
    ],
    business_events=[
        {
            "business_event_id": "b1",
            "conversation_id": "c1",
            "ts": T0 + 7 * DAY,
            "type": "booking",
            "value_usd": 100.0,
        },
        {
            "business_event_id": "b2",
            "user_id": "u1",
            "ts": T0 + 7 * DAY + US,
            "type": "booking",
            "value_usd": 50.0,
        },
    ],
    as_of=T0 + 8 * DAY + dt.timedelta(seconds=1.5),
)

_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "events": {
        **{name: column.dtype for name, column in canonical.EVENTS.items()},
        **{a: pl.String() for a in ATTRIBUTES},
    },
    "tool_calls": {name: column.dtype for name, column in canonical.TOOL_CALLS.items()},
    "business_events": {name: column.dtype for name, column in canonical.BUSINESS_EVENTS.items()},
}


def _write(folder: Path, logs: Logs) -> dict[str, list[Path]]:
    paths = {}
    rows = {
        "events": [*ANCHOR, *logs.events],
        "tool_calls": logs.tool_calls,
        "business_events": logs.business_events,
    }
    for name, schema in _SCHEMAS.items():
        (folder / name).mkdir()
        frame = pl.DataFrame(rows[name], schema=schema)  # absent keys: null
        frame.write_parquet(folder / name / "part.parquet")
        paths[name] = [folder / name]
    return paths


SPEC = load_spec(SHIPPED_SPEC)


def test_the_duckdb_engine_covers_the_whole_shipped_spec() -> None:
    for run in RUNS:
        assert uncovered(SPEC, list(SPEC.kpis.values()), run) == []


BY = ("channel",)  # the --by channel run holds the overall rows too


# the runs compared: overall and by channel; a cross-tab; each grain; a --where that only the
# tool-call table (or only the row tables) has the column of, the others over all their rows;
# a window; a cohort of an unpriced model
RUNS = (
    ComputeOptions(by=BY),
    ComputeOptions(by=("channel", "intent"), cross=("channel", "intent"), grain="hour"),
    ComputeOptions(by=("channel", "region"), grain="week"),
    ComputeOptions(grain="day", where="channel = 'chat'"),
    ComputeOptions(by=("intent",), grain="month", where="status = 'ok'"),
    ComputeOptions(by=("model",), where="model = 'm2'", since=T0 + US, until=T0 + 7 * DAY),
)
# the shipped spec with a price for m1 only: rows of m2 with tokens and no reported cost are
# unpriced, and a cohort with none of a known cost is null, 'cost unknown'
PRICED = SHIPPED_SPEC.read_text().replace(
    "\nsources:\n", "\npricing:\n  models:\n    m1: {input: 1.0, output: 2.0}\n\nsources:\n", 1
)


def assert_engines_agree(logs: Logs, run: ComputeOptions, priced: bool) -> None:
    """Both engines over `logs` with `run` (as-of the logs'), the shipped spec or PRICED: the
    same rows and numbers (`assert_same_numbers`) and the same notes."""
    options = replace(run, as_of=logs.as_of)  # every KPI
    with tempfile.TemporaryDirectory(prefix="kpictl-parity-") as folder:
        spec = SPEC
        if priced:
            (Path(folder) / "kpi_definitions.yaml").write_text(PRICED)
            spec = load_spec(Path(folder) / "kpi_definitions.yaml")
        sources = load_sources(spec, _write(Path(folder), logs), cache=False)
        polars = run_compute(spec, sources, options)
        duck = run_compute(spec, sources, options, engine=DuckDBEngine())
    compared = assert_same_numbers(polars.table, duck.table, options.by)
    assert compared >= len(spec.kpis)
    assert duck.notes == polars.notes


@pytest.mark.parametrize("run", RUNS, ids=[f"run{i}" for i in range(len(RUNS))])
@settings(
    max_examples=3,  # per run; the first is the smallest log
    deadline=None,
    derandomize=True,  # the same cases on every run: CI is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(logs=event_logs(), priced=st.booleans())
def test_polars_and_duckdb_give_the_same_numbers(
    run: ComputeOptions, logs: Logs, priced: bool
) -> None:
    assert_engines_agree(logs, run, priced)


@pytest.mark.parametrize(("run", "priced"), [(RUNS[0], False), (RUNS[2], True)])
def test_the_named_edges_on_both_engines(run: ComputeOptions, priced: bool) -> None:
    assert_engines_agree(EDGES, run, priced)


def test_the_edges_case_meets_its_edges() -> None:
    """EDGES holds what it says, checked by hand on both engines' facts: c1's reopen exactly
    24 h after its resolution counts, c2's 24 h + 1 µs after does not; c2 starts exactly 7 d
    after c1 (c1 is a repeat contact), c3 7 d + 1 µs after (c2 is none); c1's first
    escalation reason is null (two escalations at one instant, the null one first in the
    file); c2's time to resolution is 1.25 s."""
    with tempfile.TemporaryDirectory(prefix="kpictl-parity-") as folder:
        sources = load_sources(SPEC, _write(Path(folder), EDGES), cache=False)
        window = resolve_window(SPEC, sources, ComputeOptions(as_of=EDGES.as_of))
        frames = [
            engine.build_facts(SPEC, sources, window, ["conversations"])
            .tables["conversations"]
            .collect()
            for engine in (PolarsEngine(), DuckDBEngine())
        ]
    for frame in frames:
        got = {r["conversation_id"]: r for r in frame.iter_rows(named=True)}
        assert (got["c1"]["reopened_24h"], got["c2"]["reopened_24h"]) == (True, False)
        assert (got["c1"]["repeat_7d"], got["c2"]["repeat_7d"]) == (True, False)
        assert got["c1"]["escalation_reason"] is None
        assert got["c1"]["channel"] == "chat"  # null on its first row only
        assert got["c2"]["ttr_s"] == 1.25


# ----------------------------------------------------------------------------------------------
# pass^k / pass@k: trials of tasks, some still open
# ----------------------------------------------------------------------------------------------

PASS_SPEC = """\
version: 1
sources:
  events:
    path: events/
    columns:
      ts: {from: ts, type: timestamp}
      task_id: {from: task_id, type: str}
      reward: {from: reward, type: float}
      channel: {from: channel, type: str}
tables:
  trials:
    key: conversation_id
    time: started_at
    attributes: [task_id, channel]
    rollup:
      events:
        started_at: MIN(ts)
        final_reward: LAST(reward)
    derive:
      solved: final_reward >= 1
kpis:
  pass_hat_1:
    over: trials
    pass_k: {k: 1, task: task_id, success: solved}
  pass_hat_2:
    over: trials
    pass_k: {k: 2, task: task_id, success: solved}
    mature: started_at <= as_of - INTERVAL '1 hours'
  pass_at_3:
    over: trials
    pass_at_k: {k: 3, task: task_id, success: solved}
    mature: started_at <= as_of - INTERVAL '1 hours'
"""


@st.composite
def trials(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Conversations of a few tasks (a null task too), each a trial: its last reward (null,
    0 or 1) says whether it succeeded; some start within the last hour (not settled)."""
    # an anchor with every column set (a column no row has a value in is refused by --by)
    rows: list[dict[str, Any]] = [
        {
            "conversation_id": "c_anchor",
            "ts": T0,
            "event": "message",
            "task_id": "t1",
            "channel": "chat",
            "reward": 1.0,
        }
    ]
    for i in range(draw(st.integers(0, 14))):
        task = draw(_maybe(["t1", "t2", "t3"]))
        channel = draw(_maybe(["chat", "web"]))
        start = T0 + draw(st.sampled_from([dt.timedelta(0), HOUR, 2 * HOUR, DAY, DAY + HOUR]))
        for offset in draw(st.lists(st.sampled_from([dt.timedelta(0), US]), min_size=1)):
            rows.append(
                {
                    "conversation_id": f"c{i}",
                    "ts": start + offset,
                    "event": "message",
                    "task_id": task,
                    "channel": channel,
                    "reward": draw(_maybe([0.0, 1.0])),
                }
            )
    return rows


@settings(max_examples=6, deadline=None, derandomize=True, database=None)
@given(trials(), st.sampled_from([ComputeOptions(by=BY), ComputeOptions(by=BY, grain="day")]))
def test_pass_k_on_duckdb_is_the_polars_pass_k(
    rows: list[dict[str, Any]], run: ComputeOptions
) -> None:
    with tempfile.TemporaryDirectory(prefix="kpictl-parity-") as folder:
        (Path(folder) / "spec.yaml").write_text(PASS_SPEC)
        spec = load_spec(Path(folder) / "spec.yaml")
        (Path(folder) / "events").mkdir()
        schema = {
            "conversation_id": pl.String(),
            "ts": canonical.UTC_TIMESTAMP,
            "event": pl.String(),
            "task_id": pl.String(),
            "channel": pl.String(),
            "reward": pl.Float64(),
        }
        pl.DataFrame(rows, schema=schema).write_parquet(Path(folder) / "events" / "e.parquet")
        sources = load_sources(spec, {"events": [Path(folder) / "events"]}, cache=False)
        options = replace(run, as_of=T0 + DAY + HOUR)
        polars = run_compute(spec, sources, options)
        duck = run_compute(spec, sources, options, engine=DuckDBEngine())
    assert assert_same_numbers(polars.table, duck.table, options.by) >= 3
