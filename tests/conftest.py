"""Small, named fixtures shared by the tests: the shipped spec, a minimal valid spec, tiny logs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kpictl.cli import app
from kpictl.io.request import FileRead, watch_file_reads
from kpictl.sample import write_sample
from kpictl.spec import load_spec
from kpictl.spec.model import Spec

SHIPPED_SPEC = Path(__file__).resolve().parents[1] / "kpi_definitions.yaml"


@pytest.fixture(autouse=True, scope="session")
def _private_jsonl_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterable[None]:
    """Tests never read or write the user's JSONL cache."""
    patch = pytest.MonkeyPatch()
    patch.setenv("KPICTL_CACHE_DIR", str(tmp_path_factory.mktemp("jsonl-cache")))
    patch.delenv("KPICTL_NO_CACHE", raising=False)
    patch.delenv("COLUMNS", raising=False)  # tables get the 240 columns of a pipe
    yield
    patch.undo()


# The smallest spec that uses every section: a rollup table with derives, a row table with a
# lookup, all three KPI kinds, `extends`, a breakdown, a cluster, thresholds and two baselines.
# Tests change it with (old, new) text replacements, so keep its lines stable.
MINIMAL_SPEC = """\
version: 1
defaults:
  owner: team@example.com
  baseline: prior
  cohorts: [channel]
params:
  good_csat: 4
  minute_cost: 0.5
sources:
  events:
    path: logs/events/
    columns:
      ts: {from: ts, type: timestamp}
  tool_calls:
    path: logs/tool_calls/
tables:
  conversations:
    key: conversation_id
    time: started_at
    attributes: [channel, arm]
    rollup:
      events:
        started_at: MIN(ts)
        resolved_at: MIN(ts) FILTER (WHERE event = 'resolution')
        escalated: COUNT(*) FILTER (WHERE event = 'escalation') > 0
        escalation_reason: FIRST(escalation_reason) FILTER (WHERE event = 'escalation')
        csat: AVG(csat) FILTER (WHERE event = 'feedback')
    derive:
      resolved: resolved_at IS NOT NULL
      ttr_s: EXTRACT(EPOCH FROM resolved_at) - EXTRACT(EPOCH FROM started_at)
      happy: csat >= good_csat
  calls:
    from: tool_calls
    lookup: conversations
baselines:
  prior: {previous: 28d}
  holdout: {control: "arm = 'holdout'", treatment: "arm = 'treatment'", design: randomized}
kpis:
  resolution_rate:
    over: conversations
    numerator: COUNT(*) FILTER (WHERE resolved)
    denominator: COUNT(*)
    direction: higher
    format: percent
    thresholds: {warning: 2pp, critical: 5pp}
  escalation_rate:
    over: conversations
    numerator: COUNT(*) FILTER (WHERE escalated)
    denominator: COUNT(*)
    breakdown: escalation_reason
    direction: lower
    format: percent
  ttr_p50:
    over: conversations
    where: resolved
    value: MEDIAN(ttr_s)
    direction: lower
    format: duration
    thresholds: {warning: 15%, critical: 30%}
  ttr_p95:
    extends: ttr_p50
    value: QUANTILE_CONT(ttr_s, 0.95)
  tool_success:
    over: calls
    numerator: COUNT(*) FILTER (WHERE status = 'ok')
    denominator: COUNT(*)
    cluster: conversation_id
  resolved_share:
    formula: resolution_rate / (resolution_rate + escalation_rate)
"""

SpecWriter = Callable[..., Path]
JsonlWriter = Callable[..., Path]


@pytest.fixture(scope="session")
def shipped_spec_path() -> Path:
    """The default spec shipped with kpictl."""
    return SHIPPED_SPEC


@pytest.fixture(scope="session")
def shipped_spec() -> Spec:
    """The default spec, loaded once."""
    return load_spec(SHIPPED_SPEC)


@pytest.fixture()
def write_spec(tmp_path: Path) -> SpecWriter:
    """Write MINIMAL_SPEC with (old, new) replacements applied; returns the file's path.

    Each `old` must occur in the text (the first occurrence is replaced), so a stale test fails
    loudly instead of testing the unchanged spec.
    """

    def write(*changes: tuple[str, str], name: str = "kpis.yaml") -> Path:
        text = MINIMAL_SPEC
        for old, new in changes:
            assert old in text, f"not in the minimal spec: {old!r}"
            text = text.replace(old, new, 1)
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture()
def event_rows() -> list[dict[str, object]]:
    """Three valid event rows of two conversations, timestamps as ISO text."""
    return [
        {
            "conversation_id": "c1",
            "ts": "2026-10-01T10:00:00Z",
            "event": "message",
            "role": "agent",
            "input_tokens": 120,
            "latency_ms": 850.5,
        },
        {
            "conversation_id": "c1",
            "ts": "2026-10-01T10:05:00Z",
            "event": "resolution",
            "role": None,
            "input_tokens": None,
            "latency_ms": None,
        },
        {
            "conversation_id": "c2",
            "ts": "2026-10-02T08:30:00Z",
            "event": "message",
            "role": "user",
            "input_tokens": 40,
            "latency_ms": 1200.0,
        },
    ]


@pytest.fixture()
def tool_call_rows() -> list[dict[str, object]]:
    """Two valid tool calls of conversation c1."""
    return [
        {"conversation_id": "c1", "ts": "2026-10-01T10:01:00Z", "tool": "search", "status": "ok"},
        {
            "conversation_id": "c1",
            "ts": "2026-10-01T10:02:00Z",
            "tool": "refund",
            "status": "error",
        },
    ]


@pytest.fixture()
def write_jsonl(tmp_path: Path) -> JsonlWriter:
    """Write rows (dicts, or raw text lines) as JSONL under tmp_path; returns the file's path."""

    def write(relative: str, rows: Iterable[dict[str, object] | str]) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    return write


FileReads = Callable[[], list[FileRead]]


@pytest.fixture
def file_reads() -> Iterator[FileReads]:
    """`file_reads()` starts counting: the parses and row checks of files from then on, through
    `kpictl.io.request.watch_file_reads` (left open until the test ends)."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(watch_file_reads())


def parsed(reads: list[FileRead]) -> list[Path]:
    """The JSONL files parsed, in order (a cache hit parses nothing)."""
    return [r.path for r in reads if r.step == "parse"]


def sample_sources(logs: Path) -> list[str]:
    """`--source` options for the tool calls and business events of a `write_sample` folder
    (its events are the command's path)."""
    return [
        "--source",
        f"tool_calls={logs / 'tool_calls'}",
        "--source",
        f"business_events={logs / 'business_events'}",
    ]


def run(*args: str) -> tuple[int, str, str]:
    """`kpictl ARGS` through typer's runner: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 sample conversations over 10 days as Parquet (seed 3), written once per test run;
    tests read it and write elsewhere."""
    out = tmp_path_factory.mktemp("logs")
    write_sample(out, conversations=300, seed=3, days=10, fmt="parquet")
    return out
