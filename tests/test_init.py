"""`kpictl init` (detect the kind of logs, propose a mapping, write a spec, check it) and the
shipped chat / OTLP scorecards `kpictl compute PATH` uses when there is no spec."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conftest import run
from kpictl.errors import UsageError
from kpictl.init.detect import detect_kind, sample_logs
from kpictl.init.mapping import propose_columns
from kpictl.init.write import (
    TEMPLATE_KINDS,
    propose_format_spec,
    render_template,
    spec_from_text,
    template_text,
)
from kpictl.spec import load_spec

# ----------------------------------------------------------------------------------------------
# Logs written by the tests
# ----------------------------------------------------------------------------------------------


def chat_records() -> list[dict[str, object]]:
    """Six runs of three tasks (two runs each): rewards, tool calls (some failing), handoffs."""
    records = []
    plan = [  # (task, reward, tool results, hands over)
        ("t1", 1.0, ["ok"], False),
        ("t1", 1.0, ["ok", "Error: timeout"], False),
        ("t2", 0.0, ["Error: not found"], True),
        ("t2", 1.0, [], False),
        ("t3", 0.0, ["ok", "ok"], True),
        ("t3", 0.0, ["ok"], False),
    ]
    for i, (task, reward, results, hands_over) in enumerate(plan):
        messages: list[dict[str, object]] = [{"role": "user", "content": "help"}]
        for j, result in enumerate(results):
            call = f"c{i}-{j}"
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call,
                            "type": "function",
                            "function": {"name": "lookup", "arguments": "{}"},
                        }
                    ],
                    "usage": {"prompt_tokens": 100 * (i + 1), "completion_tokens": 10},
                }
            )
            messages.append(
                {"role": "tool", "tool_call_id": call, "name": "lookup", "content": result}
            )
        if hands_over:
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"h{i}",
                            "type": "function",
                            "function": {"name": "transfer_to_human", "arguments": "{}"},
                        }
                    ],
                }
            )
            messages.append({"role": "tool", "tool_call_id": f"h{i}", "content": "transferred"})
        messages.append(
            {
                "role": "assistant",
                "content": "done",
                "usage": {"prompt_tokens": 50, "completion_tokens": 5},
            }
        )
        records.append(
            {
                "run_id": f"run-{i}",
                "task_id": task,
                "score": reward,
                "created_at": f"2026-04-0{1 + i // 3}T1{i}:00:00Z",
                "traj": messages,
            }
        )
    return records


def write_chat(path: Path) -> list[dict[str, object]]:
    records = chat_records()
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def _attr(key: str, value: object) -> dict[str, object]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def otlp_spans() -> list[dict[str, object]]:
    """Three traces: chat spans with tokens and a reported cost, tool spans (one failing per
    trace but the last), one invoke_agent span per trace, the escalation tool in trace 2."""
    spans: list[dict[str, object]] = []
    base = 1_790_000_000_000_000_000
    for t in range(3):
        trace = f"{t + 1:032x}"
        start = base + t * 100_000_000_000
        spans.append(
            {
                "traceId": trace,
                "spanId": f"{t}a".rjust(16, "0"),
                "name": "invoke_agent support",
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + (4 + t) * 1_000_000_000),
                "attributes": [
                    _attr("gen_ai.operation.name", "invoke_agent"),
                    _attr("gen_ai.conversation.id", f"conv-{t}"),
                ],
                "status": {},
            }
        )
        for c in range(t + 1):
            s = start + c * 1_000_000_000
            spans.append(
                {
                    "traceId": trace,
                    "spanId": f"{t}b{c}".rjust(16, "0"),
                    "parentSpanId": f"{t}a".rjust(16, "0"),
                    "name": "chat gpt-4o",
                    "startTimeUnixNano": str(s),
                    "endTimeUnixNano": str(s + (200 + 100 * c + 10 * t) * 1_000_000),
                    "attributes": [
                        _attr("gen_ai.operation.name", "chat"),
                        _attr("gen_ai.response.model", "gpt-4o"),
                        _attr("gen_ai.usage.input_tokens", 100 * (c + 1)),
                        _attr("gen_ai.usage.output_tokens", 20),
                        _attr("gen_ai.usage.cost", 0.001 * (c + 1)),
                    ],
                    "status": {},
                }
            )
        tools = ["lookup", "refund"] + (["transfer_to_human"] if t == 1 else [])
        for k, tool in enumerate(tools):
            failing = k == 1 and t < 2
            s = start + (10 + k) * 1_000_000_000
            spans.append(
                {
                    "traceId": trace,
                    "spanId": f"{t}c{k}".rjust(16, "0"),
                    "parentSpanId": f"{t}a".rjust(16, "0"),
                    "name": f"execute_tool {tool}",
                    "startTimeUnixNano": str(s),
                    "endTimeUnixNano": str(s + 50_000_000),
                    "attributes": [
                        _attr("gen_ai.operation.name", "execute_tool"),
                        _attr("gen_ai.tool.name", tool),
                    ],
                    "status": {"code": 2, "message": "failed"} if failing else {"code": 1},
                }
            )
    return spans


def write_otlp(path: Path) -> list[dict[str, object]]:
    spans = otlp_spans()
    export = {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attr("service.name", "bot")]},
                "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}],
            }
        ]
    }
    path.write_text(json.dumps(export) + "\n")
    return spans


def _results(out: str) -> dict[str, float | None]:
    return {
        r["kpi"]: r["value"]
        for r in json.loads(out)["results"]
        if not r["cohort"] and "breakdown" not in r
    }


# ----------------------------------------------------------------------------------------------
# The shipped scorecards (package data)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TEMPLATE_KINDS)
def test_every_shipped_template_is_package_data_that_validates_with_every_block(kind: str) -> None:
    """A template with every optional block on, and with none, is a valid spec."""
    text = template_text(kind)
    features = {
        "tool_calls",
        "agent_runs",
        "escalation",
        "reward",
        "pass_k",
        "event.resolution",
        "event.reopen",
        "event.escalation",
        "escalation_reason",
        "policy_violation",
        "csat",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "human_minutes",
        "user_id",
        "latency_ms",
        "role",
        "tool_calls.cost_usd",
    }
    header = "version: 1\nparams: {escalation_tool: x, human_cost_per_minute: 1}\nsources:\n"
    if kind == "events":
        header += "  events: {path: logs/}\n  tool_calls: {path: calls/}\n"
    else:
        fmt = {"chat": "chat", "otlp": "otlp_json"}[kind]
        header += (
            f"  events: {{path: logs/, format: {fmt}, columns: {{reward: {{type: float}}, "
            "task_id: task_id}}\n  tool_calls: {from: events}\n"
        )
    # every block on, none, and each feature alone or missing (a block split around a line)
    combinations = [features, set(), *({f} for f in features), *(features - {f} for f in features)]
    for on in combinations:
        body, _left_out = render_template(text, on)
        spec = spec_from_text(header + body, "t.yaml", Path.cwd())
        assert spec.kpis, kind


def test_the_wheel_ships_the_templates() -> None:
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"init/templates/*.yaml"' in pyproject


@pytest.mark.parametrize("kind", ["chat", "otlp"])
def test_init_kind_writes_the_full_shipped_scorecard(kind: str, tmp_path: Path) -> None:
    target = tmp_path / "spec.yaml"
    code, out, err = run("init", "--kind", kind, "-o", str(target))
    assert code == 0, err
    spec = load_spec(target)
    expected = {"chat": 9, "otlp": 11}[kind]
    assert out.splitlines() == [
        f"wrote {target} ({expected} KPIs)",
        f"next: set sources.events.path in {target}, then kpictl check -c {target}",
    ]
    assert "escalation_rate" in spec.kpis and "pass_hat_k" in spec.kpis
    assert spec.sources["events"].format == {"chat": "chat", "otlp": "otlp_json"}[kind]


@pytest.mark.parametrize("kind", ["chat", "otlp"])
def test_the_shipped_scorecards_validate_against_the_json_schema(kind: str) -> None:
    import jsonschema
    import yaml

    from kpictl.spec import spec_json_schema

    document = yaml.safe_load(propose_format_spec(None, kind).text)
    jsonschema.Draft202012Validator(spec_json_schema()).validate(document)


def test_init_without_paths_or_kind_says_what_to_give() -> None:
    code, _, err = run("init")
    assert code == 2
    assert err == (
        "kpictl: error: kpictl init: give the log paths (kpictl init logs/), or --kind chat or "
        "--kind otlp to write that shipped scorecard\n"
    )


# ----------------------------------------------------------------------------------------------
# Detecting the kind of logs from content
# ----------------------------------------------------------------------------------------------


def test_the_kind_is_told_from_content_not_the_file_name(tmp_path: Path) -> None:
    otlp = tmp_path / "spans.jsonl"  # OTLP under a JSONL name
    write_otlp(otlp)
    chat = tmp_path / "runs.json"
    chat.write_text(json.dumps(chat_records()))  # a JSON array of records, messages in `traj`
    flat = tmp_path / "events.ndjson"
    flat.write_text('{"session": "a", "kind": "msg"}\n')
    assert detect_kind(otlp) == ("otlp", None)
    assert detect_kind(chat) == ("chat", "traj")
    assert detect_kind(flat) == ("events", None)
    flat_json = tmp_path / "events.json"
    flat_json.write_text('[{"session": "a", "kind": "msg"}]')
    with pytest.raises(UsageError, match="flat JSON records; kpictl reads flat logs as JSONL"):
        detect_kind(flat_json)


# ----------------------------------------------------------------------------------------------
# Proposing columns
# ----------------------------------------------------------------------------------------------


def test_columns_are_chosen_by_name_and_values() -> None:
    frame = pl.DataFrame(
        {
            "sessionId": ["a", "a", "b", "b", "b"],
            "when_ms": [1_772_323_274_000 + i for i in range(5)],
            "what": ["chat", "ticket_closed", "chat", "handoff", "something"],
            "tokensIn": [1, 2, 3, 4, 5],
            "note": ["x", "y", "z", "w", "v"],
        }
    )
    proposal = propose_columns(frame, "events")
    rules = {c.target: (c.field, c.rule) for c in proposal.choices}
    assert rules["conversation_id"] == ("sessionId", "sessionId")
    assert rules["ts"] == ("when_ms", "{from: when_ms, type: timestamp, unit: ms}")
    assert rules["event"] == (
        "what",
        "CASE what WHEN 'chat' THEN 'message' WHEN 'ticket_closed' THEN 'resolution' "
        "WHEN 'handoff' THEN 'escalation' ELSE what END",
    )
    assert rules["input_tokens"] == ("tokensIn", "tokensIn")
    assert "note" not in {f for f, _ in rules.values()}
    assert proposal.event_words == {"message", "resolution", "escalation"}
    assert proposal.undecided == (
        "events.event: values kept as they are (no kpictl meaning found): 'something' (1)",
    )


def test_two_time_columns_are_said_and_map_decides(tmp_path: Path) -> None:
    rows = [
        {
            "conv": f"c{i // 2}",
            "timestamp": f"2026-03-01T0{i}:00:00Z",
            "created_at": f"2026-03-02T0{i}:00:00Z",
            "type": "message",
        }
        for i in range(6)
    ]
    logs = tmp_path / "e.jsonl"
    logs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = run("init", str(logs), "-o", str(tmp_path / "a.yaml"))
    assert code == 0, err
    assert (
        "  - events.ts: chose 'timestamp'; 'created_at' looks like it too (name 'created_at', "
        "ISO times such as '2026-03-02T00:00:00Z')"
    ) in out.splitlines()
    code, out, err = run(
        "init", str(logs), "--map", "ts=created_at", "-o", str(tmp_path / "b.yaml")
    )
    assert code == 0, err
    assert "  - events.ts ← created_at: --map; ISO times such as '2026-03-02T00:00:00Z'" in out
    assert load_spec(tmp_path / "b.yaml").sources["events"].columns[1].source_field == "created_at"


def test_logs_without_a_conversation_id_are_refused_with_the_fields(tmp_path: Path) -> None:
    logs = tmp_path / "e.jsonl"
    logs.write_text('{"zzz": "a", "ts": "2026-03-01T00:00:00Z"}\n')
    code, _, err = run("init", str(logs))
    assert code == 2
    assert err == (
        f"kpictl: error: {logs}: no field looks like the conversation_id (fields: zzz, ts); "
        f"name it: kpictl init {logs} --map conversation_id=FIELD\n"
    )
    assert not (tmp_path / "kpi_definitions.yaml").exists()


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    logs = tmp_path / "runs.jsonl"
    write_chat(logs)
    target = tmp_path / "kpi_definitions.yaml"
    target.write_text("mine\n")
    code, _, err = run("init", str(logs))
    assert code == 2
    assert err == (
        f"kpictl: error: {target} exists: --force overwrites it, or write elsewhere with -o\n"
    )
    assert target.read_text() == "mine\n"
    code, _, err = run("init", str(logs), "--force")
    assert code == 0, err
    assert load_spec(target).sources["events"].format == "chat"


# ----------------------------------------------------------------------------------------------
# Chat transcripts and OTLP traces with no spec
# ----------------------------------------------------------------------------------------------


def test_compute_on_a_chat_file_without_a_spec_uses_the_shipped_chat_scorecard(
    tmp_path: Path,
) -> None:
    records = write_chat(tmp_path / "runs.jsonl")
    with contextlib.chdir(tmp_path):
        code, out, err = run("compute", "runs.jsonl", "--format", "json")
    assert code == 0, err
    assert err.splitlines()[0] == (
        "kpictl: note: no kpi_definitions.yaml here: runs.jsonl holds chat transcripts, computed "
        "with the shipped chat scorecard (`kpictl init runs.jsonl` writes it out for editing)"
    )
    values = _results(out)
    # independently, from the records as written
    calls = [
        m
        for r in records
        for m in r["traj"]
        if m["role"] == "tool" and m["content"] != "transferred"  # type: ignore[attr-defined]
    ]
    handoffs = [
        r for r in records if any(m.get("tool_call_id", "").startswith("h") for m in r["traj"])
    ]  # type: ignore[attr-defined]
    tokens = [
        sum(
            m.get("usage", {}).get("prompt_tokens", 0)
            + m.get("usage", {}).get("completion_tokens", 0)
            for m in r["traj"]
        )  # type: ignore[attr-defined]
        for r in records
    ]
    solved = {r["run_id"]: r["score"] >= 1 for r in records}  # type: ignore[operator]
    by_task: dict[str, list[bool]] = {}
    for r in records:
        by_task.setdefault(str(r["task_id"]), []).append(solved[r["run_id"]])
    assert values["conversations"] == len(records) == 6
    all_calls = len(calls) + len(handoffs)
    ok = sum(not str(m["content"]).startswith("Error") for m in calls) + len(handoffs)
    assert values["tool_call_success_rate"] == pytest.approx(ok / all_calls)  # 7 / 9
    assert values["escalation_rate"] == pytest.approx(len(handoffs) / 6)
    assert values["tokens_per_conversation"] == pytest.approx(sum(tokens) / 6)
    assert values["completion_rate"] == pytest.approx(3 / 6)
    # pass^2: a task counts when both of its two runs are solved (t1 only)
    assert values["pass_hat_k"] == pytest.approx(sum(all(v) for v in by_task.values()) / 3)
    assert values["cost_per_conversation"] is None  # no cost and no price: unknown, not $0


def test_compute_on_an_otlp_file_without_a_spec_uses_the_shipped_otlp_scorecard(
    tmp_path: Path,
) -> None:
    spans = write_otlp(tmp_path / "traces.otlp.jsonl")
    with contextlib.chdir(tmp_path):
        code, out, err = run("compute", "traces.otlp.jsonl", "--format", "json")
    assert code == 0, err
    assert err.splitlines()[0] == (
        "kpictl: note: no kpi_definitions.yaml here: traces.otlp.jsonl holds OpenTelemetry "
        "traces, computed with the shipped otlp scorecard (`kpictl init traces.otlp.jsonl` "
        "writes it out for editing)"
    )
    values = _results(out)

    def attrs(span: dict[str, object]) -> dict[str, object]:
        return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}  # type: ignore[attr-defined, index]

    def ms(span: dict[str, object]) -> float:
        return (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e6  # type: ignore[arg-type]

    chats = [s for s in spans if attrs(s)["gen_ai.operation.name"] == "chat"]
    tools = [s for s in spans if attrs(s)["gen_ai.operation.name"] == "execute_tool"]
    runs = [s for s in spans if attrs(s)["gen_ai.operation.name"] == "invoke_agent"]
    assert values["conversations"] == 3
    assert values["llm_calls"] == len(chats) == 6
    assert values["llm_calls_per_conversation"] == pytest.approx(6 / 3)
    tokens = sum(
        int(attrs(s)["gen_ai.usage.input_tokens"]) + int(attrs(s)["gen_ai.usage.output_tokens"])
        for s in chats
    )  # type: ignore[call-overload]
    assert values["tokens_per_conversation"] == pytest.approx(tokens / 3)
    cost = sum(float(attrs(s)["gen_ai.usage.cost"]) for s in chats)  # type: ignore[arg-type]
    assert values["cost_per_conversation"] == pytest.approx(cost / 3)
    ok = sum(s["status"] == {"code": 1} for s in tools)
    assert values["tool_call_success_rate"] == pytest.approx(ok / len(tools))  # 5 / 7
    assert values["llm_latency_p95"] == pytest.approx(np.quantile([ms(s) for s in chats], 0.95))
    assert values["agent_latency_p95"] == pytest.approx(np.quantile([ms(s) for s in runs], 0.95))
    assert values["escalation_rate"] == pytest.approx(1 / 3)  # trace 2 called transfer_to_human


def test_compute_on_flat_logs_without_a_spec_points_at_init(tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_text('{"session": "a"}\n')
    with contextlib.chdir(tmp_path):
        code, _, err = run("compute", "e.jsonl")
    assert code == 2
    assert err == (
        f"kpictl: error: no kpi_definitions.yaml in {tmp_path}: pass the spec with -c PATH, or "
        "write one for these logs with `kpictl init e.jsonl`\n"
    )


def test_init_on_chat_transcripts_fits_the_shipped_scorecard_to_them(tmp_path: Path) -> None:
    write_chat(tmp_path / "runs.jsonl")
    with contextlib.chdir(tmp_path):
        code, out, err = run("init", "runs.jsonl")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:8] == [
        "runs.jsonl: chat transcripts → source events; 1 file, 6 records sampled",
        "proposed:",
        "  - messages ← 'traj': a list of {role, content} objects",
        "  - conversation_id ← 'run_id' (record field)",
        "  - ts ← 'created_at' (record field)",
        "  - escalation tool ← 'transfer_to_human' (its name says it hands over to a person)",
        "  - reward ← 'score'",
        "  - task_id ← 'task_id': most tasks have 2 runs (the k of pass^k)",
    ]
    assert lines[8:11] == [
        "could not decide (look at these lines of the spec):",
        "  - cost: the logs report no cost: cost_per_conversation is unavailable until you give "
        "your prices per 1M tokens under `pricing:` (commented in the spec)",
        "wrote kpi_definitions.yaml (9 KPIs)",
    ]
    # messages share their record's time; their position (turn) tells them apart
    assert "  rows repeating a (conversation_id, ts, event): 0" in lines
    assert lines[-2:] == [
        "1 finding:",
        "  - cost unknown: no row of source 'events' has a cost (13 unpriced (tokens but no "
        "price), 2 agent messages without usage (no tokens, no cost)): unavailable (value null, "
        "not $0): cost_per_conversation",
    ]
    assert err == (
        "kpictl: init: the check found 1 finding: edit kpi_definitions.yaml, then kpictl check "
        "-c kpi_definitions.yaml\n"
    )
    spec = load_spec(tmp_path / "kpi_definitions.yaml")
    assert spec.kpis["pass_hat_k"].pass_k is not None and spec.kpis["pass_hat_k"].pass_k.k == 2


def test_a_format_sample_without_rewards_leaves_those_kpis_out(tmp_path: Path) -> None:
    path = tmp_path / "traces.json"
    write_otlp(path)
    proposal = propose_format_spec(sample_logs(str(path)), "otlp", tmp_path / "k.yaml")
    assert proposal.left_out == (
        "completion_rate: needs a task id and a reward per run, several runs per task",
        "pass_hat_k: needs a task id and a reward per run, several runs per task",
    )
    spec = spec_from_text(proposal.text, "k.yaml", tmp_path)
    assert "escalation_rate" in spec.kpis and "completion_rate" not in spec.kpis


def test_otlp_runs_with_task_ids_and_rewards_get_completion_and_pass_k(tmp_path: Path) -> None:
    """Evaluation runs exported as traces: task id and reward as resource attributes (text
    until typed) give completion and pass^k, k = the usual number of runs per task."""
    spans = otlp_spans()
    resources = []
    for t in range(3):  # trace t: task t % 2, reward 1 for task1 only
        mine = [s for s in spans if s["traceId"] == f"{t + 1:032x}"]
        attributes = [_attr("task_id", f"task{t % 2}"), _attr("reward", str(float(t % 2)))]
        resources.append({"resource": {"attributes": attributes}, "scopeSpans": [{"spans": mine}]})
    (tmp_path / "evals.jsonl").write_text(json.dumps({"resourceSpans": resources}) + "\n")
    with contextlib.chdir(tmp_path):
        code, out, err = run("compute", "evals.jsonl", "--format", "json")
    assert code == 0, err
    results = {r["kpi"]: r for r in json.loads(out)["results"] if not r["cohort"]}
    assert results["completion_rate"]["value"] == pytest.approx(1 / 3)
    # task0 has its 2 runs, both failed: pass^2 = 0; task1 has 1 run: pending
    assert (results["pass_hat_k"]["value"], results["pass_hat_k"]["n"]) == (0.0, 1)
    assert results["pass_hat_k"]["pending"] == 1
    assert results["pass_hat_k"]["label"] == "Tasks solved in every one of 2 runs (pass^2)"


def test_parquet_logs_without_an_event_column_are_all_messages(tmp_path: Path) -> None:
    start = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    rows = [
        {
            "ConversationID": f"c{i}",
            "EventTime": start + dt.timedelta(minutes=10 * i + j),
            "Speaker": ["user", "assistant", "user"][j],
        }
        for i in range(5)
        for j in range(3 - i % 2)
    ]
    pl.DataFrame(rows).write_parquet(tmp_path / "ev.parquet")
    with contextlib.chdir(tmp_path):
        code, out, err = run("init", "ev.parquet")
        assert code == 0, err
        lines = out.splitlines()
        assert lines[:7] == [
            "ev.parquet: flat logs (Parquet) → source events; 1 file, 13 rows sampled",
            "proposed:",
            "  - events.conversation_id ← ConversationID: name 'ConversationID', 5 values, 2.6 "
            "rows each",
            "  - events.ts ← EventTime: name 'EventTime', times 2026-05-01 00:00:00+00:00 … "
            "2026-05-01 00:42:00+00:00",
            "  - events.event ← (constant): no field holds event kinds: every row a message",
            "  - events.role ← Speaker: name 'Speaker', role values: user, assistant→agent",
            "could not decide (look at these lines of the spec):",
        ]
        assert lines[7].startswith("  - events.event: no field holds event kinds")
        code, out, err = run("compute", "--format", "json")
    assert code == 0, err
    values = _results(out)
    assert (values["conversations"], values["messages_per_conversation"]) == (5, 13 / 5)


def test_init_on_canonical_logs_gives_the_shipped_scorecards_numbers(
    logs: Path, tmp_path: Path
) -> None:
    """On logs already in kpictl's names (the sample, Parquet), init maps every column onto
    itself, with no doubt, and its KPIs equal the shipped spec's (the same definitions; the
    repeat-contact rate differs by design: init's counts by user, the shipped one by user and
    intent)."""
    target = tmp_path / "init.yaml"
    code, out, err = run("init", str(logs / "events"), str(logs / "tool_calls"), "-o", str(target))
    assert code == 0, err
    assert "could not decide" not in out
    assert out.splitlines()[-1] == f"next: kpictl compute -c {target}"
    values = []
    for spec in (str(target), str(Path(__file__).resolve().parents[1] / "kpi_definitions.yaml")):
        code, out, err = run(
            "compute",
            str(logs / "events"),
            "--source",
            f"tool_calls={logs / 'tool_calls'}",
            "-c",
            spec,
            "--format",
            "json",
        )
        assert code == 0, err
        values.append(_results(out))
    mine, shipped = values
    common = set(mine) & set(shipped) - {"repeat_contact_rate_7d"}
    assert len(common) == 13
    for kpi in common:
        assert mine[kpi] == pytest.approx(shipped[kpi], rel=1e-12), kpi


def test_report_compare_and_facts_take_the_shipped_scorecard_too(tmp_path: Path) -> None:
    write_chat(tmp_path / "runs.jsonl")
    with contextlib.chdir(tmp_path):
        code, out, err = run("report", "runs.jsonl")
        assert code == 0, err
        # no default baseline: the whole period, described (not cut to a prior_7d window)
        period = next(line for line in out.splitlines() if line.startswith("- **Period:**"))
        assert period.startswith("- **Period:** 2026-04-01 10:00") and "2026-04-02 15:00" in period
        code, _, err = run("compare", "runs.jsonl")
        assert code == 2
        assert err.splitlines()[-1] == (
            "kpictl: error: no baseline: pass --baseline NAME|PATH or set defaults.baseline "
            "(declared: prior_7d)"
        )
        code, _, err = run("facts", "runs.jsonl", "-o", "facts.csv")
        assert code == 0, err
    assert pl.read_csv(tmp_path / "facts.csv").height == 6
