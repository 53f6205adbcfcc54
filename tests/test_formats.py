"""Logs teams already have: chat transcripts and OTLP JSON, read into both canonical tables.

Every fixture is hand-written (tests/fixtures/chat, tests/fixtures/otlp) and every number is
worked out by hand in the comments.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kpictl.engine.compute import run_compute
from kpictl.engine.sources import load_sources
from kpictl.errors import InputDataError, SpecError, UsageError
from kpictl.io.formats import FORMAT_NAMES, read_format
from kpictl.spec import load_spec

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHAT_SPEC = FIXTURES / "chat" / "spec.yaml"


def chat_spec_with(
    tmp_path: Path, old: str, new: str, data: str | None = None, name: str = "runs.jsonl"
) -> Path:
    text = CHAT_SPEC.read_text(encoding="utf-8")
    assert old in text
    text = text.replace(old, new, 1)
    if data is not None:
        (tmp_path / name).write_text(data, encoding="utf-8")
    else:
        (tmp_path / "runs.jsonl").write_bytes((FIXTURES / "chat" / "runs.jsonl").read_bytes())
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    return spec


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("otlp", " (did you mean 'otlp_json'?)"), ("chats", " (did you mean 'chat'?)"), ("csv", "")],
)
def test_an_unknown_format_name_is_a_usage_error_with_the_formats(
    tmp_path: Path, name: str, suggestion: str
) -> None:
    """A library caller naming a format that is not in the registry gets kpictl's typed error
    (exit 2 at the CLI), not a bare KeyError; the file is not read."""
    path = tmp_path / "runs.jsonl"
    assert FORMAT_NAMES == ("chat", "otlp_json")
    with pytest.raises(UsageError) as caught:
        read_format(path, name, None)
    assert caught.value.message == (
        f"{path}: no log format named {name!r}{suggestion}; the formats are chat, otlp_json"
    )


# ---------------------------------------------------------------------------------------------
# chat transcripts
# ---------------------------------------------------------------------------------------------


def test_chat_transcripts_give_one_event_per_message_and_one_row_per_tool_call() -> None:
    spec = load_spec(CHAT_SPEC)
    sources = load_sources(spec, cache=False)
    events = sources["events"].collect()
    # t1-0: 5 messages; t1-1: 6 messages + 1 escalation; t2-0: 2 messages
    assert events.group_by("conversation_id").len().sort("conversation_id").rows() == [
        ("t1-0", 5),
        ("t1-1", 7),
        ("t2-0", 2),
    ]
    assert events.filter(conversation_id="t1-0").get_column("role").to_list() == [
        "system",
        "user",
        "agent",
        "tool",
        "agent",
    ]
    # record-level fields are columns of every row of their conversation
    assert events.filter(conversation_id="t1-1").get_column("reward").unique().to_list() == [0.0]
    assert events.get_column("task_id").null_count() == 0
    escalation = events.filter(event="escalation").row(0, named=True)
    assert (escalation["conversation_id"], escalation["escalation_reason"]) == (
        "t1-1",
        "order not found",
    )
    calls = sources["tool_calls"].collect()
    assert calls.select("conversation_id", "tool", "status", "error_type").rows() == [
        ("t1-0", "get_order", "ok", None),
        ("t1-1", "get_order", "error", "tool_error"),  # result starts with "Error"
        ("t1-1", "cancel_order", "ok", None),
        ("t1-1", "transfer_to_human_agents", "ok", None),
    ]
    assert calls.get_column("result").to_list()[1] == "Error: order not found"


def test_chat_kpis_costs_and_pass_k_by_hand() -> None:
    spec = load_spec(CHAT_SPEC)
    result = run_compute(spec, load_sources(spec, cache=False))
    values = {
        (r["kpi"], r["breakdown_value"]): (r["value"], r["n"], r["pending"])
        for r in result.table.iter_rows(named=True)
    }
    assert values[("completion_rate", None)] == (pytest.approx(2 / 3), 3, 0)
    assert values[("escalation_rate", "order not found")] == (pytest.approx(1 / 3), 3, 0)
    assert values[("tool_success", None)] == (pytest.approx(3 / 4), 4, 0)
    # gpt-4o at $2.5 / $10 per 1M: t1-0 1000 in + 200 out = 0.0025 + 0.002; t1-1 no usage: 0;
    # t2-0 500 + 100 = 0.00125 + 0.001 → mean over 3 trials
    assert values[("cost_per_trial", None)][0] == pytest.approx((0.0045 + 0 + 0.00225) / 3)
    # task t1: c=1 of n=2, t2: c=1 of n=1. pass^1 = mean(1/2, 1) = 0.75
    assert values[("pass_hat_1", None)] == (pytest.approx(0.75), 2, 0)
    # pass^2: only t1 has 2 trials: C(1,2)/C(2,2) = 0; t2 is pending (n < k)
    assert values[("pass_hat_2", None)] == (pytest.approx(0.0), 1, 1)
    # pass@2 for t1: 1 − C(1,2)/C(2,2) = 1
    assert values[("pass_at_2", None)] == (pytest.approx(1.0), 1, 1)
    assert result.notes == CHAT_COST_NOTES


# 5 assistant messages in runs.jsonl, 2 with usage (t1-0's answer, t2-0's); neither reports
# cached tokens: the cost per trial is a lower bound, its priced part an upper one
CHAT_COST_NOTES = (
    "cost: partially priced (2 of 5 rows of source 'events'; 3 agent messages without usage "
    "(no tokens, no cost)): the unknown costs are left out of cost_per_trial, a lower bound",
    "cost: source 'events' reports no cached tokens (cache_read_tokens): its 2 computed costs "
    "are priced without the cache discount, an upper bound where the provider cached input "
    "(cost_per_trial)",
)


def test_chat_without_timestamps_keeps_rows_and_time_kpis_are_null(tmp_path: Path) -> None:
    records = [
        {
            "conversation": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ],
            "run": "r1",
            "task_id": "a",
            "reward": 1,
        },
        {
            "conversation": [{"role": "user", "content": "bye"}],
            "run": "r2",
            "task_id": "a",
            "reward": 0,
        },
    ]
    spec = chat_spec_with(
        tmp_path,
        "    options:\n      ts: created_at\n",
        "    options:\n      messages: conversation\n      conversation_id: run\n",
        data=json.dumps(records),
        name="runs.json",
    )
    text = spec.read_text().replace("path: runs.jsonl", "path: runs.json")
    text = text.replace(
        "      reward: {type: float}",
        "      reward: {type: float}\n      ttr: {from: reward, type: float}",
    )
    spec.write_text(text)
    loaded = load_spec(spec)
    sources = load_sources(loaded, cache=False)
    events = sources["events"].collect()
    assert events.height == 3 and events.get_column("ts").null_count() == 3
    result = run_compute(loaded, sources)
    rate = result.table.filter(kpi="completion_rate").row(0, named=True)
    assert (rate["value"], rate["n"]) == (pytest.approx(0.5), 2)
    assert any("3 rows have no timestamp" in note for note in result.notes)


def test_a_message_without_a_role_is_located(tmp_path: Path) -> None:
    line = json.dumps(
        {"id": "x", "messages": [{"role": "user", "content": "a"}, {"content": "no role"}]}
    )
    spec = chat_spec_with(
        tmp_path, "path: runs.jsonl", "path: bad.jsonl", data="\n" + line + "\n", name="bad.jsonl"
    )
    with pytest.raises(InputDataError) as caught:
        load_sources(load_spec(spec), cache=False)
    assert str(caught.value) == (
        f"{tmp_path / 'bad.jsonl'}:2 messages[1]: field 'role' is missing or null: "
        "expected system, user, assistant or tool"
    )


def test_malformed_json_and_a_missing_messages_field_are_located(tmp_path: Path) -> None:
    good = json.dumps({"id": "x", "messages": []})
    spec = chat_spec_with(
        tmp_path,
        "path: runs.jsonl",
        "path: bad.jsonl",
        data=good + "\n{not json\n",
        name="bad.jsonl",
    )
    with pytest.raises(InputDataError, match=r"bad\.jsonl:2: malformed JSON"):
        load_sources(load_spec(spec), cache=False)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "x", "traj": []}) + "\n")
    with pytest.raises(InputDataError, match="no field 'messages' holding the messages"):
        load_sources(load_spec(spec), cache=False)


def test_a_bad_record_value_is_located_by_record_and_message(tmp_path: Path) -> None:
    record = {"id": "x", "created_at": "not a time", "messages": [{"role": "user", "content": "a"}]}
    spec = chat_spec_with(
        tmp_path,
        "path: runs.jsonl",
        "path: bad.jsonl",
        data=json.dumps(record) + "\n",
        name="bad.jsonl",
    )
    with pytest.raises(InputDataError) as caught:
        load_sources(load_spec(spec), cache=False)
    assert str(caught.value).startswith(
        f"{tmp_path / 'bad.jsonl'}:1 messages[0]: column 'ts': expected a timestamp"
    )


def test_spec_checks_format_sources(tmp_path: Path) -> None:
    spec = chat_spec_with(tmp_path, "    from: events", "    from: evnts")
    with pytest.raises(
        SpecError,
        match=r"sources\.tool_calls\.from: no source named 'evnts' "
        r"\(did you mean 'events'\?\)",
    ):
        load_spec(spec)
    spec = chat_spec_with(tmp_path, "      ts: created_at", "      timestamp: created_at")
    with pytest.raises(SpecError, match=r"sources\.events\.options\.timestamp: unknown key"):
        load_spec(spec)
    spec = chat_spec_with(tmp_path, "    format: chat", "    format: jsonl")
    with pytest.raises(SpecError, match="only a chat or otlp_json source makes tool calls"):
        load_spec(spec)


# ---------------------------------------------------------------------------------------------
# OTLP JSON
# ---------------------------------------------------------------------------------------------

OTLP_SPEC = FIXTURES / "otlp" / "spec.yaml"


def test_otlp_spans_of_both_generations_become_events_and_tool_calls() -> None:
    spec = load_spec(OTLP_SPEC)
    sources = load_sources(spec, cache=False)
    events = sources["events"].collect().filter(event="message").sort("ts")
    # conv-1: new names (gen_ai.provider.name, input_tokens as strings); the second export uses
    # gen_ai.system + prompt_tokens/completion_tokens, base64 ids and no conversation id
    trace_hex = bytes(range(16)).hex()
    assert events.select(
        "conversation_id",
        "model",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "latency_ms",
    ).rows() == [
        ("conv-1", "gpt-4o", 1000, 200, 400, 1500.0),
        (trace_hex, "gpt-4o-mini", 300, 50, None, 250.0),
    ]
    assert events.get_column("service_name").to_list() == ["support-bot", "batch-bot"]
    assert events.get_column("trace_id").to_list() == [
        "0af7651916cd43dd8448eb211c80319c",
        trace_hex,
    ]
    calls = sources["tool_calls"].collect().sort("conversation_id", "ts")
    assert calls.select("conversation_id", "tool", "status", "error_type", "latency_ms").rows() == [
        ("conv-1", "get_order", "ok", None, 100.0),
        ("conv-1", "refund", "error", "timeout", 2000.0),
    ]
    # conv-1 priced at $2.5/$10 with cache reads at $1.25: 600 × 2.5 + 400 × 1.25 + 200 × 10;
    # the old-generation span reports its own cost
    costs = events.select("cost_usd", "cost_source").rows()
    assert costs[0] == (pytest.approx((600 * 2.5 + 400 * 1.25 + 200 * 10) / 1e6), "computed")
    assert costs[1] == (pytest.approx(0.0007), "reported")


def test_otlp_bad_time_is_located(tmp_path: Path) -> None:
    export = json.loads((FIXTURES / "otlp" / "export.json").read_text())
    export["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["startTimeUnixNano"] = "soon"
    (tmp_path / "bad.json").write_text(json.dumps(export))
    spec = tmp_path / "spec.yaml"
    spec.write_text(OTLP_SPEC.read_text().replace("path: .", "path: bad.json"))
    with pytest.raises(InputDataError) as caught:
        load_sources(load_spec(spec), cache=False)
    assert str(caught.value).startswith(
        f"{tmp_path / 'bad.json'} resourceSpans[0] scopeSpans[0] spans[1]: span 'execute_tool "
        "get_order': startTimeUnixNano: expected nanoseconds since 1970"
    )


def test_base64_ids_decode_to_hex() -> None:
    assert base64.b64decode("AAECAwQFBgcICQoLDA0ODw==").hex() == bytes(range(16)).hex()


def test_a_reused_tool_call_id_pairs_each_call_with_the_next_unused_result(
    tmp_path: Path,
) -> None:
    """Agents reuse ids: each call takes the next result of its id in message order (was: the
    first result of the id for every call, so `refund` got `get_order`'s output and status ok)."""

    def call(name: str) -> dict[str, object]:
        return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": "{}"}}

    def result(text: str) -> dict[str, str]:
        return {"role": "tool", "tool_call_id": "call_1", "content": text}

    record = {
        "id": "r",
        "created_at": "2026-10-01T10:00:00Z",
        "messages": [
            result("stray result before any call"),  # answers no call
            {"role": "assistant", "content": None, "tool_calls": [call("get_order")]},
            result('{"status": "shipped"}'),
            {"role": "assistant", "content": None, "tool_calls": [call("refund")]},
            result("Error: refund window closed"),
            {"role": "assistant", "content": None, "tool_calls": [call("get_order")]},
            {"role": "assistant", "content": "no result for that one"},
        ],
    }
    spec = chat_spec_with(
        tmp_path,
        "path: runs.jsonl",
        "path: r.jsonl",
        data=json.dumps(record) + "\n",
        name="r.jsonl",
    )
    calls = load_sources(load_spec(spec), cache=False)["tool_calls"].collect()
    assert calls.select("tool", "turn", "result", "status").rows() == [
        ("get_order", 1, '{"status": "shipped"}', "ok"),
        ("refund", 3, "Error: refund window closed", "error"),
        ("get_order", 5, None, "ok"),
    ]


def test_escalation_rows_are_not_counted_as_agent_messages(tmp_path: Path) -> None:
    """The `escalation` row kpictl adds has role `system`: `role = 'agent'` counts only the
    assistant's messages (it counted the escalation too)."""
    spec = chat_spec_with(
        tmp_path,
        "        llm_cost: TOTAL(cost_usd)\n",
        "        llm_cost: TOTAL(cost_usd)\n"
        "        agent_messages: COUNT(*) FILTER (WHERE role = 'agent')\n",
    )
    text = spec.read_text() + (
        "  agent_messages_per_trial:\n    over: trials\n    value: AVG(agent_messages)\n"
    )
    spec.write_text(text)
    loaded = load_spec(spec)
    sources = load_sources(loaded, cache=False)
    escalation = sources["events"].collect().filter(event="escalation")
    assert escalation.select("role", "tool").rows() == [("system", "transfer_to_human_agents")]
    result = run_compute(loaded, sources)
    row = result.table.filter(kpi="agent_messages_per_trial").row(0, named=True)
    # assistant messages: t1-0 2, t1-1 2 (the escalation is not one), t2-0 1
    assert (row["value"], row["n"]) == (pytest.approx((2 + 2 + 1) / 3), 3)


def otlp_span(
    name: str,
    span_id: str,
    attributes: dict[str, str],
    *,
    parent: str | None = None,
    trace: str = "0af7651916cd43dd8448eb211c80319c",
    start_ms: int = 0,
    end_ms: int = 1000,
) -> dict[str, object]:
    """One OTLP JSON span (string attributes; ints as strings, like the exporters send them)."""
    t0 = 1_790_000_000_000
    span: dict[str, object] = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "startTimeUnixNano": str((t0 + start_ms) * 1_000_000),
        "endTimeUnixNano": str((t0 + end_ms) * 1_000_000),
        "attributes": [
            {"key": k, "value": {"intValue" if v.isdigit() else "stringValue": v}}
            for k, v in attributes.items()
        ],
        "status": {},
    }
    if parent is not None:
        span["parentSpanId"] = parent
    return span


def otlp_export(*spans: dict[str, object]) -> str:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]})


def otlp_spec(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text + "\n", encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(OTLP_SPEC.read_text())
    return spec


ROOT = "a000000000000001"
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
USAGE = {"gen_ai.usage.input_tokens": "1000", "gen_ai.usage.output_tokens": "100"}


def test_the_conversation_id_of_the_root_span_names_every_span_of_its_trace(
    tmp_path: Path,
) -> None:
    """Instrumentations set gen_ai.conversation.id on the root span only: its children (an
    inference span, a tool span — here in another file of the source) join that conversation
    (they were conversations of their own, keyed by the trace id)."""
    root = otlp_span(
        "invoke_agent support",
        ROOT,
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "app-42"},
        end_ms=3000,
    )
    chat = otlp_span("chat gpt-4o", "a000000000000002", CHAT | USAGE, parent=ROOT)
    tool = otlp_span(
        "execute_tool get_order",
        "a000000000000003",
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_order"},
        parent=ROOT,
        start_ms=1000,
        end_ms=1200,
    )
    other = otlp_span("chat gpt-4o", "b000000000000001", CHAT | USAGE, trace="f" * 32)
    spec = otlp_spec(
        tmp_path,
        **{"a.jsonl": otlp_export(root, chat) + "\n" + otlp_export(other)},
        **{"b.json": otlp_export(tool)},
    )
    sources = load_sources(load_spec(spec), cache=False)
    events = sources["events"].collect().sort("span_id")
    assert events.select("conversation_id", "span_id").rows() == [
        ("app-42", ROOT),
        ("app-42", "a000000000000002"),
        ("f" * 32, "b000000000000001"),  # a trace without an id stays keyed by its trace id
    ]
    calls = sources["tool_calls"].collect()
    assert calls.select("conversation_id", "tool").rows() == [("app-42", "get_order")]


def test_two_conversation_ids_in_one_trace_are_an_error(tmp_path: Path) -> None:
    root = otlp_span("invoke_agent a", ROOT, {"gen_ai.conversation.id": "app-42"})
    child = otlp_span(
        "chat gpt-4o", "a000000000000002", CHAT | {"session.id": "app-43"}, parent=ROOT
    )
    spec = otlp_spec(tmp_path, **{"t.json": otlp_export(child, root)})
    with pytest.raises(InputDataError) as caught:
        load_sources(load_spec(spec), cache=False)
    where = f"{tmp_path / 't.json'} resourceSpans[0] scopeSpans[0]"
    assert str(caught.value) == (
        f"{where} spans[1] span invoke_agent a: trace 0af7651916cd43dd8448eb211c80319c "
        f"carries two conversation ids, 'app-42' and 'app-43' (at {where} spans[0] span "
        "chat gpt-4o); a trace is one conversation: fix the instrumentation, or name the "
        "attribute that identifies the conversation in options.conversation_id"
    )


def test_agent_spans_become_agent_run_events_with_their_duration(tmp_path: Path) -> None:
    """invoke_agent spans and OpenInference AGENT spans are `agent_run` rows (role agent,
    latency = the span's duration, no tokens or cost: the run's usage is its inference spans');
    message-based KPIs and costs are unchanged."""
    root = otlp_span(
        "invoke_agent support",
        ROOT,
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "support",
            "gen_ai.conversation.id": "c1",
        }
        | USAGE,  # the run's totals: must not be counted a second time
        end_ms=4250,
    )
    chat = otlp_span("chat gpt-4o", "a000000000000002", CHAT | USAGE, parent=ROOT, end_ms=800)
    openinference = otlp_span(
        "agent",
        "b000000000000001",
        {"openinference.span.kind": "AGENT", "session.id": "c2"},
        trace="e" * 32,
        end_ms=1500,
    )
    create = otlp_span(
        "create_agent support",
        "b000000000000002",
        {"gen_ai.operation.name": "create_agent"},
        trace="e" * 32,
    )
    spec = otlp_spec(tmp_path, **{"t.json": otlp_export(root, chat, openinference, create)})
    text = spec.read_text().replace(
        "        llm_cost: TOTAL(cost_usd)\n",
        "        llm_cost: TOTAL(cost_usd)\n"
        "        llm_messages: COUNT(*) FILTER (WHERE event = 'message' AND role = 'agent')\n"
        "        tokens: TOTAL(input_tokens + output_tokens)\n",
    ) + (
        "  agent_latency_ms:\n    over: agent_runs\n    value: AVG(latency_ms)\n"
        "  tokens_per_conversation:\n    over: conversations\n    value: AVG(tokens)\n"
        "  messages_per_conversation:\n    over: conversations\n    value: AVG(llm_messages)\n"
    )
    text = text.replace(
        "  calls:\n",
        "  agent_runs:\n    from: events\n    where: event = 'agent_run'\n  calls:\n",
    )
    spec.write_text(text)
    loaded = load_spec(spec)
    sources = load_sources(loaded, cache=False)
    events = sources["events"].collect().sort("span_id")
    assert events.select(
        "conversation_id", "event", "role", "agent_name", "latency_ms", "input_tokens", "cost_usd"
    ).rows() == [
        ("c1", "agent_run", "agent", "support", 4250.0, None, None),
        ("c1", "message", "agent", None, 800.0, 1000, pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)),
        ("c2", "agent_run", "agent", None, 1500.0, None, None),  # create_agent: no row
    ]
    result = run_compute(loaded, sources)
    values = {r["kpi"]: (r["value"], r["n"]) for r in result.table.iter_rows(named=True)}
    assert values["agent_latency_ms"] == (pytest.approx((4250 + 1500) / 2), 2)
    assert values["tokens_per_conversation"] == (pytest.approx((1100 + 0) / 2), 2)
    assert values["messages_per_conversation"] == (pytest.approx((1 + 0) / 2), 2)
    assert values["cost_per_conversation"] == (pytest.approx(0.0035 / 2), 2)


def test_shipped_otlp_sample_gives_the_same_numbers_with_agent_runs() -> None:
    """sample_logs/otlp has an invoke_agent span without a conversation id in conv-1's trace:
    it joins conv-1 (not a third conversation) and adds no cost."""
    spec = load_spec(FIXTURES.parent.parent / "sample_logs" / "otlp.yaml")
    sources = load_sources(spec, cache=False)
    events = sources["events"].collect()
    counts = events.group_by("conversation_id", "event").len()
    assert counts.sort("conversation_id", "event").rows() == [
        ("000102030405060708090a0b0c0d0e0f", "message", 1),
        ("conv-1", "agent_run", 1),
        ("conv-1", "message", 1),
    ]
    result = run_compute(spec, sources)
    values = {r["kpi"]: (r["value"], r["n"]) for r in result.table.iter_rows(named=True)}
    assert values["tool_success"] == (pytest.approx(1 / 2), 2)
    # conv-1: 600 × 2.5 + 400 × 1.25 + 200 × 10 per 1M = 0.004; the other reports 0.0007
    assert values["cost_per_conversation"] == (pytest.approx((0.004 + 0.0007) / 2), 2)


def test_two_conversation_ids_in_one_trace_split_over_files_are_an_error(tmp_path: Path) -> None:
    root = otlp_span("invoke_agent a", ROOT, {"gen_ai.conversation.id": "app-42"})
    child = otlp_span(
        "chat gpt-4o",
        "a000000000000002",
        CHAT | {"gen_ai.conversation.id": "app-43"},
        parent=ROOT,
    )
    spec = otlp_spec(tmp_path, **{"a.json": otlp_export(root), "b.json": otlp_export(child)})
    with pytest.raises(InputDataError) as caught:
        load_sources(load_spec(spec), cache=False)
    assert str(caught.value).startswith(
        f"{tmp_path / 'a.json'} resourceSpans[0] scopeSpans[0] spans[0] span invoke_agent a: "
        "trace 0af7651916cd43dd8448eb211c80319c carries two conversation ids, 'app-42' and "
        f"'app-43' (at {tmp_path / 'b.json'} resourceSpans[0] scopeSpans[0] spans[0] span "
        "chat gpt-4o); a trace is one conversation"
    )
