"""Propose how a user's own fields map onto kpictl's columns (README "Logs: the canonical
schema"): by name (synonyms, then similar spelling) *and* by what the values are — the column
holding ISO times or epoch numbers is `ts`, the one holding `closed` / `handoff` is `event`
(with a `CASE` turning those values into kpictl's words), and so on. Every choice says why, and
what could not be decided is said too; nothing here reads files (see `detect`)."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import polars as pl

from kpictl.errors import UsageError, did_you_mean

# Names a column goes by, per kpictl column (normalised: lower case, words joined by `_`).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "conversation_id": (
        "conversation_id",
        "conversation",
        "conv",
        "conv_id",
        "convo_id",
        "session_id",
        "session",
        "thread_id",
        "thread",
        "chat_id",
        "dialog_id",
        "dialogue_id",
        "ticket_id",
        "ticket",
        "case_id",
        "interaction_id",
        "contact_id",
        "run_id",
        "trace_id",
    ),
    "ts": (
        "ts",
        "timestamp",
        "time",
        "created_at",
        "created",
        "event_time",
        "event_ts",
        "at",
        "datetime",
        "date_time",
        "occurred_at",
        "logged_at",
        "time_ms",
        "ts_ms",
        "created_ms",
        "epoch",
        "when",
    ),
    "event": (
        "event",
        "event_type",
        "type",
        "kind",
        "action",
        "event_name",
        "activity",
        "event_kind",
        "what",
    ),
    "role": ("role", "speaker", "author", "sender", "actor", "who", "participant", "from"),
    "input_tokens": (
        "input_tokens",
        "prompt_tokens",
        "tokens_in",
        "in_tokens",
        "tokens_prompt",
        "tokens_input",
        "prompt_token_count",
        "input_token_count",
    ),
    "output_tokens": (
        "output_tokens",
        "completion_tokens",
        "tokens_out",
        "out_tokens",
        "tokens_completion",
        "tokens_output",
        "completion_token_count",
        "output_token_count",
    ),
    "cost_usd": ("cost_usd", "cost", "usd", "price", "spend", "cost_dollars", "dollars"),
    "latency_ms": (
        "latency_ms",
        "latency",
        "duration_ms",
        "response_ms",
        "response_time_ms",
        "elapsed_ms",
        "duration",
        "response_time",
        "latency_s",
        "duration_s",
        "elapsed",
    ),
    "escalation_reason": (
        "escalation_reason",
        "reason",
        "handoff_reason",
        "transfer_reason",
        "escalation_cause",
    ),
    "csat": ("csat", "rating", "satisfaction", "stars", "feedback_score", "csat_score"),
    "human_minutes": (
        "human_minutes",
        "agent_minutes",
        "handle_minutes",
        "human_time_min",
        "handling_minutes",
    ),
    "policy_violation": (
        "policy_violation",
        "violation",
        "policy_flag",
        "flagged",
        "unsafe",
        "policy_breach",
    ),
    "user_id": (
        "user_id",
        "customer_id",
        "user",
        "customer",
        "account_id",
        "client_id",
        "member_id",
    ),
    "model": ("model", "model_name", "llm", "llm_model", "model_id"),
    "text": ("text", "content", "message", "body", "utterance", "message_text"),
    # tool_calls
    "tool": ("tool", "tool_name", "function", "function_name", "name", "tool_id"),
    "status": ("status", "outcome", "result", "success", "ok", "state", "succeeded"),
    "error_type": ("error_type", "error", "error_code", "failure_reason", "error_kind"),
    "retries": ("retries", "retry_count", "attempts", "num_retries"),
}

# kpictl's event words and the values that mean them (normalised).
EVENT_WORDS: dict[str, tuple[str, ...]] = {
    "message": (
        "message",
        "msg",
        "chat",
        "turn",
        "utterance",
        "reply",
        "response",
        "user_message",
        "agent_message",
        "bot_message",
        "assistant_message",
        "text",
        "said",
        "query",
        "answer",
    ),
    "escalation": (
        "escalation",
        "escalated",
        "escalate",
        "handoff",
        "hand_off",
        "handover",
        "transfer",
        "transferred",
        "human_handoff",
        "to_human",
        "agent_transfer",
        "handed_off",
    ),
    "resolution": (
        "resolution",
        "resolved",
        "resolve",
        "closed",
        "close",
        "ticket_closed",
        "solved",
        "done",
        "completed",
        "complete",
        "case_closed",
        "ticket_resolved",
    ),
    "reopen": ("reopen", "reopened", "re_opened", "ticket_reopened", "re_open"),
    "feedback": ("feedback", "rating", "rated", "csat", "survey", "review"),
}
ROLE_WORDS: dict[str, tuple[str, ...]] = {
    "user": ("user", "customer", "client", "end_user", "visitor", "caller", "guest"),
    "agent": ("agent", "assistant", "bot", "ai", "ai_agent", "llm", "model", "virtual_agent"),
    "human": (
        "human",
        "human_agent",
        "operator",
        "staff",
        "rep",
        "live_agent",
        "support_agent",
        "employee",
    ),
    "system": ("system", "tool"),
}
STATUS_WORDS: dict[str, tuple[str, ...]] = {
    "ok": (
        "ok",
        "success",
        "succeeded",
        "successful",
        "passed",
        "pass",
        "done",
        "completed",
        "true",
        "200",
    ),
    "error": (
        "error",
        "failed",
        "failure",
        "fail",
        "timeout",
        "timed_out",
        "exception",
        "denied",
        "rejected",
        "false",
        "500",
    ),
}
ARM_WORDS = {
    "control": ("control", "holdout", "baseline", "off", "legacy", "human_only", "old"),
    "treatment": ("treatment", "variant", "test", "on", "agent", "ai", "new", "bot"),
}
EPOCH_RANGES = {"s": 1e0, "ms": 1e3, "us": 1e6, "ns": 1e9}  # seconds in 2001 … 2100 times this
_EPOCH_LOW, _EPOCH_HIGH = 978_307_200, 4_102_444_800


def normalise(name: str) -> str:
    """`createdAtMs` / `Created-At` → `created_at_ms` / `created_at`."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


def name_score(column: str, target: str) -> float:
    """How much a column's name says it is `target`: 1 a known name, 0.8 a known name as a
    part (`session_uuid`), 0.6 a similar spelling, else 0."""
    name = normalise(column.split(".")[-1])
    names = SYNONYMS.get(target, (target,))
    if name in names:
        return 1.0 - 0.01 * names.index(name) / len(names)
    words = set(name.split("_"))
    if any(set(n.split("_")) <= words for n in names if len(n) > 2):
        return 0.8
    best = max(difflib.SequenceMatcher(None, name, n).ratio() for n in names)
    return 0.6 if best >= 0.85 else 0.0


def word_for(value: object, words: Mapping[str, Sequence[str]]) -> str | None:
    """kpictl's word for a value (`Ticket Closed` → `resolution`), else None."""
    text = normalise(str(value))
    for word, values in words.items():
        if text in values:
            return word
    parts = set(text.split("_"))
    for word, values in words.items():
        if any(v in parts for v in values if "_" not in v and len(v) > 3):
            return word
    return None


@dataclass(frozen=True)
class Choice:
    """One proposed column: `target` made from `field` by `rule` (the YAML value)."""

    target: str
    field: str
    rule: str
    why: str
    runner_up: str | None = None


@dataclass(frozen=True)
class Proposal:
    """The mapping proposed for one source, and what could not be decided."""

    source: str  # events | tool_calls
    choices: tuple[Choice, ...]
    undecided: tuple[str, ...]
    cohorts: tuple[str, ...] = ()  # text columns constant within a conversation, few values
    arms: tuple[str, str, str] | None = None  # (column, control value, treatment value)
    event_words: frozenset[str] = frozenset()  # kpictl event words the data holds

    def column(self, target: str) -> Choice | None:
        return next((c for c in self.choices if c.target == target), None)


def _quoted(name: str) -> str:
    """A field name as SQL (double-quoted when it is not a plain identifier)."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else '"' + name + '"'


def _literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _values(series: pl.Series, limit: int = 50) -> list[tuple[object, int]]:
    counts = series.drop_nulls().value_counts(sort=True)
    return [(row[0], row[1]) for row in counts.head(limit).iter_rows()]


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)


# ----------------------------------------------------------------------------------------------
# Value checks: each returns (score 0-1, rule, why) or None when the values cannot be that column
# ----------------------------------------------------------------------------------------------

Check = Callable[[str, pl.Series], tuple[float, str, str] | None]


def _time_check(name: str, series: pl.Series) -> tuple[float, str, str] | None:
    values = series.drop_nulls()
    if values.is_empty():
        return None
    if isinstance(series.dtype, pl.Datetime | pl.Date):
        lo, hi = values.min(), values.max()
        return 1.0, f"{{from: {name}, type: timestamp}}", f"times {lo!s} … {hi!s}"
    if series.dtype.is_numeric() and series.dtype != pl.Boolean:
        middle = float(cast(float, values.cast(pl.Float64).median()) or 0)
        for unit, per_second in EPOCH_RANGES.items():
            if _EPOCH_LOW * per_second <= middle <= _EPOCH_HIGH * per_second:
                first = dt.datetime.fromtimestamp(middle / per_second, dt.UTC)
                return (
                    0.9,
                    f"{{from: {name}, type: timestamp, unit: {unit}}}",
                    f"epoch {_UNIT_WORDS[unit]} (around {first:%Y-%m-%d})",
                )
        return None
    if not _is_text(series.dtype):
        return None
    text = values.cast(pl.String).head(500)
    parsed = text.str.to_datetime(strict=False, time_zone="UTC", time_unit="us")
    share = float(cast(float, parsed.is_not_null().mean()) or 0.0)
    if share < 0.9:
        return None
    return 1.0, f"{{from: {name}, type: timestamp}}", f"ISO times such as {text[0]!r}"


_UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def _id_check(name: str, series: pl.Series) -> tuple[float, str, str] | None:
    if not (_is_text(series.dtype) or series.dtype.is_integer()):
        return None
    values = series.drop_nulls()
    distinct = values.n_unique()
    if distinct < 2:
        return None
    per = len(values) / distinct
    return (1.0 if per > 1.0 else 0.7), name, f"{_plural(distinct, 'value')}, {per:.1f} rows each"


def _vocabulary_check(words: Mapping[str, Sequence[str]], what: str) -> Check:
    def check(name: str, series: pl.Series) -> tuple[float, str, str] | None:
        if not _is_text(series.dtype):
            return None
        counted = _values(series.cast(pl.String))
        if not counted or series.n_unique() > 60:
            return None
        total = sum(n for _, n in counted)
        mapped = {v: word_for(v, words) for v, _ in counted}
        share = sum(n for v, n in counted if mapped[v]) / total
        if share < 0.5:
            return None
        whens = [(v, w) for v, w in mapped.items() if w and w != v]
        if whens:
            cases = " ".join(f"WHEN {_literal(v)} THEN {_literal(w)}" for v, w in whens)
            rule = f"CASE {_quoted(name)} {cases} ELSE {_quoted(name)} END"
        else:
            rule = name
        shown = ", ".join(f"{v}→{w}" if w and w != v else str(v) for v, w in mapped.items())
        return share, rule, f"{what} values: {shown}"

    return check


def _number_check(
    integer: bool = False, low: float | None = None, high: float | None = None
) -> Check:
    def check(name: str, series: pl.Series) -> tuple[float, str, str] | None:
        dtype = series.dtype
        if not dtype.is_numeric() or dtype == pl.Boolean or (integer and not dtype.is_integer()):
            return None
        values = series.drop_nulls()
        if values.is_empty():
            return 0.5, name, "numbers (no value in the sample)"
        lo, hi = values.min(), values.max()
        assert isinstance(lo, int | float) and isinstance(hi, int | float)
        if (low is not None and lo < low) or (high is not None and hi > high):
            return None
        return 1.0, name, f"numbers {lo:g} … {hi:g}"

    return check


def _latency_check(name: str, series: pl.Series) -> tuple[float, str, str] | None:
    found = _number_check(low=0)(name, series)
    if found is None:
        return None
    score, _, why = found
    words = set(normalise(name).split("_"))
    if words & {"s", "sec", "secs", "seconds"}:
        return score, f"{_quoted(name)} * 1000", f"{why}, seconds (× 1000)"
    if words & {"ms", "millis", "milliseconds"}:
        return score, name, f"{why}, milliseconds"
    return score * 0.9, name, f"{why}, taken as milliseconds"


def _bool_check(name: str, series: pl.Series) -> tuple[float, str, str] | None:
    if series.dtype != pl.Boolean:
        return None
    return 1.0, name, f"true in {int(series.sum() or 0):,} rows"


def _text_check(long: bool) -> Check:
    def check(name: str, series: pl.Series) -> tuple[float, str, str] | None:
        if not _is_text(series.dtype):
            return None
        values = series.drop_nulls().cast(pl.String)
        if values.is_empty():
            return 0.5, name, "text"
        mean = float(cast(float, values.str.len_chars().mean()) or 0)
        if long and mean < 12:
            return None
        return 1.0, name, f"text, {mean:.0f} characters on average"

    return check


def _status_check(name: str, series: pl.Series) -> tuple[float, str, str] | None:
    if series.dtype == pl.Boolean:
        return 1.0, f"CASE WHEN {_quoted(name)} THEN 'ok' ELSE 'error' END", "true → ok"
    return _vocabulary_check(STATUS_WORDS, "status")(name, series)


EVENTS_CHECKS: dict[str, tuple[Check, bool]] = {  # target → (value check, may match by value)
    "conversation_id": (_id_check, False),
    "ts": (_time_check, True),
    "event": (_vocabulary_check(EVENT_WORDS, "event"), True),
    "role": (_vocabulary_check(ROLE_WORDS, "role"), True),
    "input_tokens": (_number_check(integer=True, low=0), False),
    "output_tokens": (_number_check(integer=True, low=0), False),
    "cost_usd": (_number_check(low=0), False),
    "latency_ms": (_latency_check, False),
    "escalation_reason": (_text_check(long=False), False),
    "csat": (_number_check(low=0, high=10), False),
    "human_minutes": (_number_check(low=0), False),
    "policy_violation": (_bool_check, False),
    "user_id": (_id_check, False),
    "model": (_text_check(long=False), False),
    "text": (_text_check(long=True), False),
}
TOOL_CALLS_CHECKS: dict[str, tuple[Check, bool]] = {
    "conversation_id": (_id_check, False),
    "ts": (_time_check, True),
    "tool": (_text_check(long=False), False),
    "status": (_status_check, True),
    "error_type": (_text_check(long=False), False),
    "retries": (_number_check(integer=True, low=0), False),
    "latency_ms": (_latency_check, False),
    "cost_usd": (_number_check(low=0), False),
}
REQUIRED = {
    "events": ("conversation_id", "ts", "event"),
    "tool_calls": ("conversation_id", "ts", "tool", "status"),
}


def _flat_columns(frame: pl.DataFrame) -> dict[str, pl.Series]:
    """Every scalar column, and the scalar fields of struct columns as `a.b`."""
    columns: dict[str, pl.Series] = {}
    for name in frame.columns:
        series = frame.get_column(name)
        if isinstance(series.dtype, pl.Struct):
            for inner in series.struct.unnest().columns:
                sub = series.struct.field(inner)
                if not isinstance(sub.dtype, pl.Struct | pl.List | pl.Array):
                    columns[f"{name}.{inner}"] = sub
        elif not isinstance(series.dtype, pl.List | pl.Array | pl.Object):
            columns[name] = series
    return columns


def _candidates(
    target: str, check: Check, by_value: bool, columns: Mapping[str, pl.Series]
) -> list[tuple[float, str, str, str]]:
    """(score, field, rule, why) of every column that could be `target`, best first."""
    found = []
    for name, series in columns.items():
        by_name = name_score(name, target)
        if by_name == 0 and not by_value:
            continue
        checked = check(name, series)
        if checked is None:
            continue
        value_score, rule, why = checked
        score = by_name + value_score
        reason = f"name {name!r}, {why}" if by_name else why
        found.append((score, name, rule, reason))
    return sorted(found, key=lambda c: -c[0])


def propose_columns(
    frame: pl.DataFrame, source: str, fixed: Mapping[str, str] | None = None
) -> Proposal:
    """The column mapping proposed for one flat source (`events` or `tool_calls`); `fixed`
    names the field of a column (`--map ts=created`) instead of guessing it."""
    checks = EVENTS_CHECKS if source == "events" else TOOL_CALLS_CHECKS
    columns = _flat_columns(frame)
    fixed = fixed or {}
    taken: set[str] = set(fixed.values())
    choices: list[Choice] = []
    undecided: list[str] = []
    for target, (check, by_value) in checks.items():
        if target in fixed:
            name = fixed[target]
            if name not in columns:
                raise UsageError(
                    f"--map {target}={name}: no field {name!r} in the sample"
                    f"{did_you_mean(name, list(columns))}; fields: {', '.join(columns)}"
                )
            checked = check(name, columns[name]) or (0.0, name, "named with --map")
            choices.append(Choice(target, name, checked[1], f"--map; {checked[2]}"))
            continue
        options = [c for c in _candidates(target, check, by_value, columns) if c[1] not in taken]
        if not options:
            if target in REQUIRED[source]:
                undecided.append(f"{source}.{target}: no column looks like it")
            continue
        score, name, rule, why = options[0]
        # a close second is worth a word, unless the first has the very name and it has not
        close = len(options) > 1 and options[1][0] >= score - 0.25
        if close and name_score(name, target) >= 0.99 > name_score(options[1][1], target):
            close = False
        runner = options[1][1] if close else None
        taken.add(name)
        choices.append(Choice(target, name, rule, why, runner))
        if runner is not None:
            undecided.append(
                f"{source}.{target}: chose {name!r}; {runner!r} looks like it too ({options[1][3]})"
            )
    proposal = Proposal(source, tuple(choices), tuple(undecided))
    if source != "events":
        return proposal
    return _with_vocabulary(proposal, frame, columns, taken)


def _with_vocabulary(
    proposal: Proposal, frame: pl.DataFrame, columns: Mapping[str, pl.Series], taken: set[str]
) -> Proposal:
    """Events: which kpictl event words the data holds, values left unmapped, cohorts, arms."""
    undecided = list(proposal.undecided)
    words: set[str] = set()
    for target, vocabulary in (("event", EVENT_WORDS), ("role", ROLE_WORDS)):
        choice = proposal.column(target)
        if choice is None:
            continue
        counted = _values(columns[choice.field].cast(pl.String))
        unknown = [f"{v!r} ({n:,})" for v, n in counted if word_for(v, vocabulary) is None]
        if target == "event":
            words = {w for v, _ in counted if (w := word_for(v, vocabulary))}
        if unknown:
            undecided.append(
                f"events.{target}: values kept as they are (no kpictl meaning found): "
                + ", ".join(unknown[:8])
            )
    cohorts: list[str] = []
    arms: tuple[str, str, str] | None = None
    key = proposal.column("conversation_id")
    for name, series in columns.items():
        if name in taken or "." in name or not _is_text(series.dtype):
            continue
        distinct = series.drop_nulls().n_unique()
        if not 2 <= distinct <= 20 or key is None:
            continue
        per_key = (
            frame.select(pl.col(key.field).alias("__k"), pl.col(name).alias("__v"))
            .group_by("__k")
            .agg(pl.col("__v").drop_nulls().n_unique())
            .get_column("__v")
            .max()
        )
        if per_key is None or int(per_key) > 1:  # type: ignore[arg-type]
            continue
        cohorts.append(name)
        if arms is None:
            values = [str(v) for v, _ in _values(series.cast(pl.String))]
            control = [v for v in values if word_for(v, {"c": ARM_WORDS["control"]})]
            treatment = [v for v in values if word_for(v, {"t": ARM_WORDS["treatment"]})]
            if len(values) == 2 and control and treatment and control[0] != treatment[0]:
                arms = (name, control[0], treatment[0])
    return Proposal(
        proposal.source,
        proposal.choices,
        tuple(undecided),
        tuple(cohorts),
        arms,
        frozenset(words),
    )


def looks_like_tool_calls(frame: pl.DataFrame) -> bool:
    """A flat source with a tool name and a status but no event column: tool calls."""
    columns = _flat_columns(frame)
    event = _candidates("event", *EVENTS_CHECKS["event"], columns)
    tool = _candidates("tool", *TOOL_CALLS_CHECKS["tool"], columns)
    status = _candidates("status", *TOOL_CALLS_CHECKS["status"], columns)
    return bool(tool and status) and not (event and event[0][0] >= 1.5)


# ----------------------------------------------------------------------------------------------
# Chat records: which fields hold the id, the time, the task and the reward
# ----------------------------------------------------------------------------------------------

RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "conversation_id": (
        "id",
        "conversation_id",
        "run_id",
        "session_id",
        "trajectory_id",
        "episode_id",
        "uuid",
        "trace_id",
        "thread_id",
    ),
    "ts": ("created_at", "timestamp", "ts", "time", "started_at", "start_time", "date", "created"),
    "task_id": (
        "task_id",
        "task",
        "instance_id",
        "problem_id",
        "question_id",
        "sample_id",
        "example_id",
        "task_name",
    ),
    "reward": (
        "reward",
        "score",
        "success",
        "passed",
        "solved",
        "resolved",
        "is_correct",
        "correct",
        "pass",
    ),
    "cost_usd": ("cost_usd", "total_cost", "cost", "usd", "price"),
}


def record_field(frame: pl.DataFrame, target: str) -> str | None:
    """The record-level field of chat records (or OTLP columns) that holds `target`."""
    names = RECORD_FIELDS[target]
    found = []
    for column, dtype in frame.schema.items():
        name = normalise(column)
        if name not in names:
            continue
        if target == "reward" and not (dtype.is_numeric() or dtype == pl.Boolean):
            # OTLP attributes arrive as text until typed: numbers written as text count
            values = frame.get_column(column).drop_nulls()
            if dtype != pl.String or values.cast(pl.Float64, strict=False).is_null().any():
                continue
        if target == "ts" and _time_check(column, frame.get_column(column)) is None:
            continue
        if target == "cost_usd" and not dtype.is_numeric():
            continue
        found.append((names.index(name), column))
    return min(found)[1] if found else None


ESCALATION_TOOL = re.compile(r"human|escalat|handoff|hand_off|transfer|operator|live_agent")


def escalation_tool(tools: pl.DataFrame) -> str | None:
    """The most called tool whose name says it hands the conversation to a person."""
    if tools.is_empty() or "tool" not in tools.columns:
        return None
    for value, _count in _values(tools.get_column("tool").cast(pl.String), limit=200):
        if ESCALATION_TOOL.search(normalise(str(value))):
            return str(value)
    return None
