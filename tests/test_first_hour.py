"""A new user's first hour (issue 14, "Done when"): logs with foreign column names and values →
`kpictl init` → `kpictl check` → `compute` → `compare` → `report`, every number checked
against plain Python over the rows the test wrote."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import random
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from conftest import run

Row = dict[str, object]


def _add_event(
    events: list[Row],
    base: Row,
    clock: list[dt.datetime],
    rng: random.Random,
    kind: str,
    speaker: str,
    **extra: object,
) -> None:
    clock[0] += dt.timedelta(seconds=rng.randrange(5, 90))
    events.append(
        {
            "session": base["session"],
            "created_ms": int(clock[0].timestamp() * 1000),
            "kind": kind,
            "speaker": speaker,
            **{k: v for k, v in base.items() if k != "session"},
            **extra,
        }
    )


def write_foreign_logs(
    folder: Path, conversations: int = 120, seed: int = 3
) -> tuple[list[Row], list[Row]]:
    """A support bot's own export: `session`, epoch-ms `created_ms`, `kind` in msg / handoff /
    closed / reopened / rating, `speaker` in customer / bot / operator, `latency_s` in seconds,
    `stars`; tool calls with `function`, an ISO `at` and `outcome` success / failed."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    events: list[Row] = []
    calls: list[Row] = []
    for i in range(conversations):
        session = f"S-{i:04d}"
        variant = "control" if i % 3 == 0 else "treatment"
        plan = rng.choice(["free", "pro"])
        customer = f"cust-{rng.randrange(60)}"
        clock = [start + dt.timedelta(minutes=37 * i)]
        base: Row = {"session": session, "customer_id": customer, "plan": plan, "variant": variant}
        add = functools.partial(_add_event, events, base, clock, rng)
        add("msg", "customer", body="Hello, I need help with my order please")
        for _ in range(rng.randrange(1, 4)):
            add(
                "msg",
                "bot",
                body="Let me look into that for you right away",
                prompt_tokens=rng.randrange(200, 900),
                completion_tokens=rng.randrange(20, 200),
                cost=round(rng.uniform(0.001, 0.02), 6),
                latency_s=round(rng.uniform(0.3, 4.0), 3),
            )
            if rng.random() < 0.6:
                at = clock[0] + dt.timedelta(seconds=1)
                calls.append(
                    {
                        "session": session,
                        "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "function": rng.choice(["lookup_order", "refund", "kb_search"]),
                        "outcome": "success" if rng.random() < 0.85 else "failed",
                    }
                )
        if rng.random() < (0.25 if variant == "control" else 0.15):
            add("handoff", "bot", reason=rng.choice(["angry", "policy", "tool_error"]))
            add("msg", "operator", body="Hi, a human here, taking over now")
        if rng.random() < 0.7:
            add("closed", "bot")
            if rng.random() < 0.1:
                clock[0] += dt.timedelta(hours=rng.choice([2, 30]))
                add("reopened", "customer")
        if rng.random() < 0.4:
            add("rating", "customer", stars=rng.randrange(1, 6))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in events))
    (folder / "tools.jsonl").write_text("".join(json.dumps(r) + "\n" for r in calls))
    return events, calls


def expected_kpis(events: list[Row], calls: list[Row], arm: str | None = None) -> dict[str, float]:
    """The KPIs by hand: per session from the rows as written (times in seconds)."""
    as_of = max(
        [int(e["created_ms"]) / 1000 for e in events]  # type: ignore[call-overload]
        + [dt.datetime.fromisoformat(str(c["at"])).timestamp() for c in calls]
    )
    sessions: dict[str, list[Row]] = defaultdict(list)
    for e in events:
        if arm is None or e["variant"] == arm:
            sessions[str(e["session"])].append(e)
    day = 24 * 3600
    completed = settled = escalated = 0
    ttr, tokens, cost, csat = [], [], [], []
    settled_cost = 0.0
    for rows in sessions.values():
        t = {id(r): int(r["created_ms"]) / 1000 for r in rows}  # type: ignore[call-overload]
        began = min(t.values())
        closed = [t[id(r)] for r in rows if r["kind"] == "closed"]
        resolved = min(closed) if closed else None
        reopened = resolved is not None and any(
            r["kind"] == "reopened" and resolved < t[id(r)] <= resolved + day for r in rows
        )
        session_cost = sum(float(r.get("cost", 0)) for r in rows)  # type: ignore[arg-type]
        if (resolved if resolved is not None else began) <= as_of - day:
            settled += 1
            settled_cost += session_cost
            completed += resolved is not None and not reopened
        if resolved is not None:
            ttr.append(resolved - began)
        escalated += any(r["kind"] == "handoff" for r in rows)
        tokens.append(
            sum(int(r.get("prompt_tokens", 0)) + int(r.get("completion_tokens", 0)) for r in rows)
        )  # type: ignore[call-overload]
        cost.append(session_cost)
        stars = [float(r["stars"]) for r in rows if "stars" in r]  # type: ignore[arg-type]
        if stars:
            csat.append(statistics.fmean(stars))
    latencies = [
        float(e["latency_s"]) * 1000  # type: ignore[arg-type]
        for rows in sessions.values()
        for e in rows
        if e["kind"] == "msg" and e["speaker"] == "bot"
    ]
    mine = [c for c in calls if c["session"] in sessions]
    n = len(sessions)
    return {
        "conversations": n,
        "task_completion_rate": completed / settled,
        "time_to_resolution_p50": statistics.median(ttr),
        "containment_rate": 1 - escalated / n,
        "escalation_rate": escalated / n,
        "csat_mean": statistics.fmean(csat),
        "tool_call_success_rate": sum(c["outcome"] == "success" for c in mine) / len(mine),
        "agent_latency_p95": float(np.quantile(latencies, 0.95)),
        "cost_per_successful_task": settled_cost / completed,
        "cost_per_task": statistics.fmean(cost),
        "tokens_per_task": statistics.fmean(tokens),
        "tool_calls_per_task": len(mine) / n,
    }


def test_the_first_hour_init_check_compute_compare_report(tmp_path: Path) -> None:
    events, calls = write_foreign_logs(tmp_path / "logs")
    spec = "logs/kpi_definitions.yaml"
    with contextlib.chdir(tmp_path):
        # 1. init: the mapping proposed from names and values, then the check on what it wrote
        code, out, err = run("init", "logs/events.jsonl", "logs/tools.jsonl")
        assert code == 0, err
        lines = out.splitlines()
        assert lines[:6] == [
            "logs/events.jsonl: flat logs → source events; 1 file, 557 rows sampled",
            "logs/tools.jsonl: flat logs → source tool_calls; 1 file, 147 rows sampled",
            "proposed:",
            "  - events.conversation_id ← session: name 'session', 120 values, 4.6 rows each",
            "  - events.ts ← created_ms: name 'created_ms', epoch milliseconds (around 2026-03-02)",
            "  - events.event ← kind: name 'kind', event values: msg→message, closed→resolution, "
            "rating→feedback, handoff→escalation, reopened→reopen",
        ]
        assert (
            "  - events.latency_ms ← latency_s: name 'latency_s', numbers 0.306 … 3.992, seconds "
            "(× 1000)" in lines
        )
        assert (
            "  - tool_calls.status ← outcome: name 'outcome', status values: success→ok, "
            "failed→error" in lines
        )
        assert lines[-2:] == ["0 findings", f"next: kpictl compute -c {spec}"]
        assert err == ""
        written = (tmp_path / spec).read_text()
        assert (
            "      event: CASE kind WHEN 'msg' THEN 'message' WHEN 'closed' THEN 'resolution' "
            "WHEN 'rating' THEN 'feedback' WHEN 'handoff' THEN 'escalation' WHEN 'reopened' "
            "THEN 'reopen' ELSE kind END" in written
        )
        assert (
            "arms: {control: \"variant = 'control'\", treatment: \"variant = 'treatment'\"}"
            in written
        )

        # 2. check
        code, out, err = run("check", "-c", spec)
        assert (code, out.splitlines()[-1], err) == (0, "0 findings", "")
        # the raw fields the mapping reads (session, the `kind` of the CASE) are mapped
        assert out.count("  columns neither mapped nor read: —\n") == 2

        # 3. compute: every KPI against the rows by hand
        code, out, err = run("compute", "-c", spec, "--format", "json")
        assert code == 0, err
        got = {
            r["kpi"]: r["value"]
            for r in json.loads(out)["results"]
            if not r["cohort"] and "breakdown" not in r
        }
        expected = expected_kpis(events, calls)
        for kpi, value in expected.items():
            assert got[kpi] == pytest.approx(value, rel=1e-9), kpi
        assert set(got) - set(expected) == {"repeat_contact_rate_7d", "messages_per_conversation"}
        assert got["messages_per_conversation"] == pytest.approx(
            sum(e["kind"] == "msg" for e in events) / 120
        )

        # 4. compare the two arms the `variant` column holds (the spec's default baseline)
        code, out, err = run("compare", "-c", spec, "--format", "json")
        assert code == 0, err
        document = json.loads(out)
        assert document["baseline"]["name"] == "arms"
        control, treatment = (
            expected_kpis(events, calls, "control"),
            expected_kpis(events, calls, "treatment"),
        )
        for row in document["results"]:
            if row["cohort"] or row["kpi"] not in control or row["kpi"] == "conversations":
                continue
            assert row["baseline"]["value"] == pytest.approx(control[row["kpi"]], rel=1e-9), row[
                "kpi"
            ]
            assert row["current"]["value"] == pytest.approx(treatment[row["kpi"]], rel=1e-9), row[
                "kpi"
            ]

        # 5. the report, as Markdown and as the self-contained HTML page a CFO opens
        code, out, err = run("report", "-c", spec, "--format", "html", "-o", "scorecard.html")
        assert code == 0, err
        page = (tmp_path / "scorecard.html").read_text()
        assert page.startswith("<!DOCTYPE html>") or page.lower().startswith("<!doctype html>")
        assert f"{treatment['task_completion_rate'] * 100:.2f}" in page
        assert f"{control['task_completion_rate'] * 100:.2f}" in page
        code, out, err = run("report", "-c", spec, "-o", "scorecard.md")
        assert code == 0, err
        scorecard = (tmp_path / "scorecard.md").read_text()
        # the scorecard's headline is the treatment arm against the control arm
        row = next(line for line in scorecard.splitlines() if line.startswith("| Task completion"))
        assert f"{treatment['task_completion_rate'] * 100:.2f}" in row
        assert f"{control['task_completion_rate'] * 100:.2f}" in scorecard
