"""The text of a proposed `kpi_definitions.yaml`: a commented header and `sources:` written from
the proposal, then the shipped scorecard for that kind of data (`templates/<kind>.yaml`) kept to
the blocks the data can support.

A template marks optional lines with `# >>> if: a, not b` … `# <<<` (the block is kept when the
data has every feature named and none of those after `not`), and a line ending in
`# init: NAME` is replaced by the slot NAME (dropped when the slot is empty)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import polars as pl

from kpictl.errors import UsageError
from kpictl.init.detect import LogSample, chat_tool_calls, sample_logs
from kpictl.init.mapping import (
    Choice,
    Proposal,
    escalation_tool,
    looks_like_tool_calls,
    propose_columns,
    record_field,
)
from kpictl.io.formats import ChatOptions
from kpictl.spec import build_spec
from kpictl.spec.model import Spec
from kpictl.spec.yamlmarks import load_marked_yaml

TEMPLATE_KINDS = ("events", "chat", "otlp")
SOURCE_FORMATS = {"chat": "chat", "otlp": "otlp_json"}
EXAMPLE_PATHS = {"events": "logs/events/", "chat": "runs.jsonl", "otlp": "traces/"}
_BLOCK = re.compile(r"^#\s*>>>\s*if:\s*(.+?)\s*$")
_END = re.compile(r"^#\s*<<<\s*$")
_SLOT = re.compile(r"#\s*init:\s*(\w+)\s*$")
_KPI = re.compile(r"^  ([A-Za-z_][A-Za-z0-9_]*):\s*$")

# What a feature means, for "left out: … needs …".
FEATURE_WORDS = {
    "tool_calls": "a tool-call source",
    "escalation": "an escalation tool (a tool named like transfer_to_human)",
    "pass_k": "a task id and a reward per run, several runs per task",
    "reward": "a reward or success field per run",
    "agent_runs": "invoke_agent spans",
}


def template_text(kind: str) -> str:
    """The shipped scorecard template of a kind of data (package data, in the wheel)."""
    return resources.files("kpictl.init").joinpath("templates", f"{kind}.yaml").read_text("utf-8")


def _feature_words(feature: str) -> str:
    if feature.startswith("event."):
        return f"an event meaning {feature[6:]!r}"
    if feature.startswith("tool_calls."):
        return f"a `{feature[11:]}` column in the tool calls"
    return FEATURE_WORDS.get(feature, f"a `{feature}` column")


def render_template(
    text: str, features: set[str], slots: Mapping[str, str | None] | None = None
) -> tuple[str, list[tuple[str, list[str]]]]:
    """The template kept to `features`, slots filled; and each KPI left out with what it
    needs that the data lacks."""
    slots = slots or {}
    kept: list[str] = []
    left_out: list[tuple[str, list[str]]] = []
    condition: list[str] | None = None
    in_kpis = False
    for line in text.splitlines():
        if line.startswith("kpis:"):
            in_kpis = True
        block = _BLOCK.match(line)
        if block:
            condition = [c.strip() for c in block.group(1).split(",")]
            continue
        if _END.match(line):
            condition = None
            continue
        if condition is not None:
            missing = [
                c
                for c in condition
                if (c.startswith("not ") and c[4:] in features)
                or (not c.startswith("not ") and c not in features)
            ]
            if missing:
                kpi = _KPI.match(line)
                if in_kpis and kpi:
                    needs = [_feature_words(c) for c in missing if not c.startswith("not ")]
                    left_out.append((kpi.group(1), needs))
                continue
        slot = _SLOT.search(line)
        if slot and slot.group(1) in slots:
            value = slots[slot.group(1)]
            if value is None:
                continue
            line = value
        kept.append(line)
    return _drop_empty_keys(kept), left_out


def _drop_empty_keys(lines: list[str]) -> str:
    """Remove `key:` lines left without a body (a `derive:` whose entries were all left out)."""
    out: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.split("#", 1)[0].rstrip()
        if stripped.endswith(":") and not stripped.lstrip().startswith("-"):
            indent = len(line) - len(line.lstrip())
            body = next(
                (x for x in lines[i + 1 :] if x.strip() and not x.lstrip().startswith("#")), None
            )
            if body is None or len(body) - len(body.lstrip()) <= indent:
                continue
        out.append(line)
    return "\n".join(out) + "\n"


def yaml_value(text: str) -> str:
    """A string as a YAML scalar: plain when safe, else double-quoted (JSON); a flow mapping
    (`{from: x, type: timestamp}`) as it is."""
    if text.startswith("{") and text.endswith("}"):
        return text
    plain = re.fullmatch(r"[A-Za-z_(][^#]*", text) and ": " not in text and not text.endswith(":")
    return text if plain else json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True)
class InitProposal:
    """A proposed spec: its text, the kind of data, what was chosen and what was not decided."""

    text: str
    kind: str
    chosen: tuple[str, ...]  # one line per column or option chosen, with why
    undecided: tuple[str, ...]  # what the user should look at
    left_out: tuple[str, ...]  # KPIs the data cannot support, with what they need
    roles: tuple[tuple[str, str], ...] = ()  # (path, source it became)


def _relative(pattern: str, spec_dir: Path) -> str:
    target = Path(pattern).expanduser()
    absolute = target if target.is_absolute() else Path.cwd() / target
    relative = os.path.relpath(absolute, spec_dir.absolute())
    if pattern.endswith("/") and not relative.endswith("/"):
        relative += "/"
    return relative.replace(os.sep, "/")


def default_spec_path(pattern: str) -> Path:
    """Where `init` writes the spec: next to the data (a file's folder; beside a folder)."""
    plain = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return Path(plain or ".").expanduser().parent / "kpi_definitions.yaml"


def _header(kind: str, paths: Sequence[str], comment: Sequence[str]) -> list[str]:
    source = "from " + ", ".join(paths) if paths else f"the shipped {kind} scorecard"
    lines = [
        f"# kpi_definitions.yaml written by `kpictl init` ({source}).",
        "# Read it, fix what the notes below and `kpictl check` point at, then `kpictl compute`.",
        '# Every filter and formula is one SQL expression (README "The KPI spec").',
        *comment,
        "version: 1",
    ]
    return lines


def _source_lines(name: str, path: str, choices: Sequence[Choice]) -> list[str]:
    lines = [f"  {name}:", f"    path: {yaml_value(path)}", "    columns:"]
    for choice in choices:
        lines.append(f"      {choice.target}: {yaml_value(choice.rule)}   # {choice.why}")
    return lines


def _cost_expression(features: set[str]) -> str:
    parts = ["llm_cost"]
    if {"tool_calls", "tool_calls.cost_usd"} <= features:
        parts.append("tool_cost")
    if "human_minutes" in features:
        parts.append("human_minutes * human_cost_per_minute")
    return "      cost_usd:        " + " + ".join(parts)


def _models_comment(frame: pl.DataFrame, column: str = "model") -> list[str]:
    lines = [
        '# pricing:   # USD per 1M tokens, for rows with tokens but no cost (README "Costs")',
        "#   models:",
    ]
    if column in frame.columns:
        counts = frame.get_column(column).drop_nulls().cast(pl.String).value_counts(sort=True)
        for model, _n in counts.head(5).iter_rows():
            lines.append(f"#     {model}: {{input: 2.5, output: 10.0}}   # your price here")
    if len(lines) == 2:
        lines.append("#     gpt-4o: {input: 2.5, output: 10.0}")
    return lines


def _baselines(arms: tuple[str, str, str] | None) -> tuple[list[str], str]:
    lines = ["baselines:"]
    name = "prior_7d"
    if arms is not None:
        column, control, treatment = arms
        lines.append(
            f"  arms: {{control: {json.dumps(f'{column} = {control!r}')}, "
            f"treatment: {json.dumps(f'{column} = {treatment!r}')}}}   "
            "# observational: add design: randomized if the arms were assigned at random"
        )
        name = "arms"
    lines.append("  prior_7d: {previous: 7d}   # the 7 days before the window")
    return lines, name


def _undecided_column(target: str) -> str:
    return f"--map {target}=FIELD"


def propose_events_spec(
    samples: Sequence[LogSample], spec_path: Path, fixed: Mapping[str, str] | None = None
) -> InitProposal:
    """A spec for flat logs: the first path (or the one that is not tool calls) is `events`, a
    path holding tool names and statuses is `tool_calls`."""
    events_samples = [s for s in samples if not looks_like_tool_calls(s.frame)] or [samples[0]]
    calls_samples = [s for s in samples if s not in events_samples]
    events_sample = events_samples[0]
    fixed = dict(fixed or {})
    proposal = propose_columns(events_sample.frame, "events", fixed)
    calls = propose_columns(calls_samples[0].frame, "tool_calls", fixed) if calls_samples else None
    missing_key = [t for t in ("conversation_id", "ts") if proposal.column(t) is None]
    if missing_key:
        fields = ", ".join(events_sample.frame.columns)
        raise UsageError(
            f"{events_sample.path}: no field looks like the "
            + " or the ".join(missing_key)
            + f" (fields: {fields}); name it: kpictl init {events_sample.path} "
            + " ".join(_undecided_column(t) for t in missing_key)
        )
    features = {c.target for c in proposal.choices} | {f"event.{w}" for w in proposal.event_words}
    choices = list(proposal.choices)
    undecided = list(proposal.undecided)
    if proposal.column("event") is None:
        undecided = [u for u in undecided if not u.startswith("events.event:")]
        choices.insert(
            2, Choice("event", "", "'message'", "no field holds event kinds: every row a message")
        )
        undecided.append(
            "events.event: no field holds event kinds (closed, handoff, …): every row is a "
            "message, so resolution and escalation KPIs are left out"
        )
    if calls is not None:
        features.add("tool_calls")
        features |= {f"tool_calls.{c.target}" for c in calls.choices}
        undecided += calls.undecided
    spec_dir = spec_path.parent
    lines = _header("events", [s.path for s in samples], [])
    params = ["params:                   # constants; override with --param k=v"]
    if "human_minutes" in features:
        params.append("  human_cost_per_minute: 0.75   # a minute of a human agent, USD: yours?")
    lines += params if len(params) > 1 else []
    cohorts = list(proposal.cohorts)
    baselines, default_baseline = _baselines(proposal.arms)
    # the arms are the natural comparison; without them report describes the whole period
    # (a default prior_7d would cut it to the last 7 days) and compare asks for --baseline
    defaults = [f"  baseline: {default_baseline}"] if proposal.arms else []
    if cohorts:
        defaults.append(f"  cohorts: [{', '.join(cohorts)}]")
    lines += ["defaults:", *defaults] if defaults else []
    lines.append("sources:")
    lines += _source_lines("events", _relative(events_sample.path, spec_dir), choices)
    if calls is not None:
        lines += _source_lines(
            "tool_calls", _relative(calls_samples[0].path, spec_dir), calls.choices
        )
    lines += _models_comment(events_sample.frame, _field_of(proposal, "model"))
    lines += baselines
    attributes = cohorts + (["user_id"] if "user_id" in features else [])
    slots: dict[str, str | None] = {
        "attributes": f"    attributes: [{', '.join(attributes)}]" if attributes else None,
        "cost": _cost_expression(features),
        "completion_label": "    label: Task completion (not reopened in 24 h)"
        if "event.reopen" in features
        else "    label: Task completion",
    }
    body, left_out = render_template(template_text("events"), features, slots)
    return InitProposal(
        "\n".join(lines) + "\n\n" + body,
        "events",
        tuple(
            f"{p.source}.{c.target} ← {c.field or '(constant)'}: {c.why}"
            for p, c in [(proposal, c) for c in choices]
            + ([(calls, c) for c in calls.choices] if calls else [])
        ),
        tuple(undecided),
        tuple(f"{kpi}: needs {' and '.join(needs)}" for kpi, needs in left_out),
        ((events_sample.path, "events"), *((s.path, "tool_calls") for s in calls_samples[:1])),
    )


def _field_of(proposal: Proposal, target: str) -> str:
    choice = proposal.column(target)
    return choice.field if choice is not None else target


def _task_runs(frame: pl.DataFrame, task: str) -> int:
    """The most common number of runs per task (the k of pass^k: tasks with fewer runs are
    pending), 0 without a task column."""
    if task not in frame.columns or frame.is_empty():
        return 0
    run = pl.col("conversation_id") if "conversation_id" in frame.columns else pl.len()
    counts = frame.group_by(task).agg(run.n_unique() if "conversation_id" in frame else run)
    runs = counts.get_column(counts.columns[-1]).mode().max()
    return int(runs) if isinstance(runs, int) else 0


def propose_format_spec(
    sample: LogSample | None, kind: str, spec_path: Path | None = None
) -> InitProposal:
    """The shipped scorecard of chat transcripts or OTLP traces, fitted to a sample of them
    (no sample: every block on, with example names, for editing)."""
    chosen: list[str] = []
    undecided: list[str] = []
    features = {"tool_calls", "agent_runs", "escalation", "reward", "pass_k"}
    options: list[str] = []
    columns: list[str] = []
    tool = "transfer_to_human"
    runs = 2
    path = EXAMPLE_PATHS[kind]
    records = pl.DataFrame()
    if sample is not None:
        features = set()
        path = _relative(sample.path, (spec_path or Path("kpi_definitions.yaml")).parent)
        records = sample.frame
        calls = sample.tool_calls
        if kind == "chat":
            chat = ChatOptions(messages=sample.messages or "messages")
            if chat.messages != "messages":
                options.append(f"      messages: {chat.messages}")
                chosen.append(f"messages ← {chat.messages!r}: a list of {{role, content}} objects")
            for target, option in (("conversation_id", "conversation_id"), ("ts", "ts")):
                found = record_field(records, target)
                if found is not None:
                    options.append(f"      {option}: {found}")
                    chosen.append(f"{option} ← {found!r} (record field)")
                elif target == "ts":
                    undecided.append(
                        "events.ts: no record field holds a time: conversations have no time, "
                        "so --since/--grain and prior-period comparisons cannot work"
                    )
                else:
                    undecided.append(
                        "events.conversation_id: no id field: each record is <file>#<number>"
                    )
            cost = record_field(records, "cost_usd")
            if cost is not None:
                options.append(f"      cost_usd: {cost}")
                chosen.append(f"cost_usd ← {cost!r} (record field)")
            chat = ChatOptions(
                messages=chat.messages, conversation_id=record_field(records, "conversation_id")
            )
            calls = chat_tool_calls(sample, chat)
        if not calls.is_empty():
            features.add("tool_calls")
        agent = records.filter(pl.col("event") == "agent_run") if "event" in records else None
        if kind == "otlp" and agent is not None and agent.height:
            features.add("agent_runs")
        found_tool = escalation_tool(calls)
        if found_tool is not None:
            tool = found_tool
            features.add("escalation")
            chosen.append(f"escalation tool ← {tool!r} (its name says it hands over to a person)")
        else:
            undecided.append(
                "escalation: no tool is named like transfer_to_human; name yours in "
                "params.escalation_tool and restore escalation_rate (`kpictl init --kind "
                f"{kind}` writes the full scorecard)"
            )
        costs = records.get_column("cost_usd") if "cost_usd" in records.columns else None
        if (kind == "chat" and record_field(records, "cost_usd") is None) or (
            kind == "otlp" and (costs is None or costs.is_null().all())
        ):
            undecided.append(
                "cost: the logs report no cost: cost_per_conversation is unavailable until you "
                "give your prices per 1M tokens under `pricing:` (commented in the spec)"
            )
        reward = record_field(records, "reward")
        task = record_field(records, "task_id")
        if reward is not None:
            features.add("reward")
            dtype = records.schema[reward]
            rule = (
                f"CASE WHEN {reward} THEN 1.0 ELSE 0.0 END"
                if dtype == pl.Boolean
                else f"{{from: {reward}, type: float}}"
            )
            columns.append(f"      reward: {yaml_value(rule)}   # a run is solved when >= 1")
            chosen.append(f"reward ← {reward!r}")
        if task is not None and reward is not None:
            runs = _task_runs(records, task)
            if runs >= 2:
                features.add("pass_k")
                columns.append(f"      task_id: {task}")
                chosen.append(f"task_id ← {task!r}: most tasks have {runs} runs (the k of pass^k)")
            else:
                undecided.append(f"pass^k: a task ({task!r}) with a single run: left out")
        elif reward is None:
            undecided.append("reward: no reward or success field: completion and pass^k left out")
    fmt = SOURCE_FORMATS[kind]
    lines = _header(kind, [sample.path] if sample else [], [])
    lines += [
        "params:",
        f"  escalation_tool: {yaml_value(tool)}   # the tool that hands a conversation to a person",
        "sources:",
        "  events:",
        f"    path: {yaml_value(path)}",
        f"    format: {fmt}",
    ]
    if options:
        lines += ["    options:", *options]
    if sample is None:
        columns = [
            "      reward: {type: float}   # a run is solved when >= 1",
            "      task_id: task_id        # runs of one task: pass^k",
        ]
    if columns:
        lines += ["    columns:", *columns]
    lines += ["  tool_calls:", "    from: events   # the tool calls of the same files"]
    lines += _models_comment(records)
    lines += _baselines(None)[0]
    slots = {
        "pass_k": f"    pass_k: {{k: {runs}, task: task_id, success: solved}}",
        "pass_k_label": f"    label: Tasks solved in every one of {runs} runs (pass^{runs})",
    }
    body, left_out = render_template(template_text(kind), features, slots)
    return InitProposal(
        "\n".join(lines) + "\n\n" + body,
        kind,
        tuple(chosen),
        tuple(undecided),
        tuple(f"{kpi}: needs {' and '.join(needs)}" for kpi, needs in left_out),
    )


def propose_spec(
    samples: Sequence[LogSample], spec_path: Path, fixed: Mapping[str, str] | None = None
) -> InitProposal:
    """The spec `kpictl init` proposes for the logs sampled (one sample per path)."""
    kinds = Counter(s.kind for s in samples)
    if len(kinds) > 1:
        raise UsageError(
            "the paths hold different kinds of logs ("
            + ", ".join(f"{s.path}: {s.kind}" for s in samples)
            + "); run kpictl init once per kind"
        )
    kind = samples[0].kind
    if kind == "events":
        return propose_events_spec(samples, spec_path, fixed)
    if len(samples) > 1:
        raise UsageError(
            f"{kind} logs give both tables from one set of files: pass one path (a folder or glob)"
        )
    return propose_format_spec(samples[0], kind, spec_path)


def spec_from_text(text: str, name: str, base_dir: Path) -> Spec:
    """A spec from its text (a shipped scorecard fitted to the data, never written to disk)."""
    data = load_marked_yaml(text, name)
    return build_spec(data, base_dir / name, sha256=hashlib.sha256(text.encode()).hexdigest())


def shipped_scorecard(patterns: Sequence[str]) -> InitProposal | None:
    """The shipped scorecard for chat transcripts or OTLP traces, fitted to the logs the paths
    name (what `kpictl compute PATH` uses without a spec); None for flat logs, which need a
    mapping (`kpictl init`)."""
    sample = sample_logs(patterns[0])
    if sample.kind == "events":
        return None
    return propose_format_spec(sample, sample.kind, Path.cwd() / "kpi_definitions.yaml")
