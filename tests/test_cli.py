"""The command line, driven through typer's runner: exit codes, stdout vs stderr, messages."""

from __future__ import annotations

import csv
import datetime as dt
import inspect
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import JsonlWriter, SpecWriter, run, sample_sources
from kpictl import __version__
from kpictl.cli.app import read_sources
from kpictl.commands import open_sources
from kpictl.engine.compute import compute
from kpictl.engine.sources import load_sources
from kpictl.render.text import md_text
from kpictl.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"
runner = CliRunner()


def data_args(logs: Path) -> list[str]:
    return [
        str(logs / "events"),
        *sample_sources(logs),
        "-c",
        str(SPEC),
    ]


def data_paths(logs: Path) -> dict[str, list[Path]]:
    """The sources of `data_args` for the Python API."""
    return {name: [logs / name] for name in ("events", "tool_calls", "business_events")}


def test_version() -> None:
    code, out, _ = run("--version")
    assert (code, out.strip()) == (0, f"kpictl {__version__}")


def test_compute_json_matches_the_library(logs: Path) -> None:
    code, out, err = run("compute", *data_args(logs), "--format", "json", "--by", "arm")
    assert code == 0, err
    document = json.loads(out)
    assert set(document) == {"kpictl_version", "as_of", "window", "results", "inputs", "notes"}
    assert document["window"] == {"since": None, "until": None}
    spec = load_spec(SPEC)
    sources = load_sources(spec, data_paths(logs))
    table = compute(spec, sources, by=["arm"])
    assert len(document["results"]) == table.height
    for record, row in zip(document["results"], table.iter_rows(named=True), strict=True):
        assert record["kpi"] == row["kpi"]
        # polars sums in parallel: the last bit may differ between runs
        assert record["value"] == pytest.approx(row["value"], rel=1e-12, nan_ok=False)
        assert (record["n"], record["pending"]) == (row["n"], row["pending"])
        expected_cohort = {"arm": row["arm"]} if row["grouping"] else {}
        assert record["cohort"] == expected_cohort
        if row["breakdown"]:
            assert record["breakdown"] == {row["breakdown"]: row["breakdown_value"]}
    assert [i["source"] for i in document["inputs"]] == ["events", "tool_calls", "business_events"]
    assert all(i["skipped"] == 0 for i in document["inputs"])


def test_compute_grain_json_puts_bucket_in_cohort(logs: Path) -> None:
    code, out, _ = run(
        "compute",
        *data_args(logs),
        "--format",
        "json",
        "--grain",
        "day",
        "--kpi",
        "task_completion_rate",
    )
    assert code == 0
    cohorts = [r["cohort"] for r in json.loads(out)["results"]]
    assert cohorts[0] == {}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00Z", c["bucket"]) for c in cohorts[1:])
    assert len(cohorts) == 11  # overall + the 10 days the sample spans


def test_compute_csv_and_markdown_and_table(logs: Path, tmp_path: Path) -> None:
    code, out, _ = run("compute", *data_args(logs), "--format", "csv", "--kpi", "escalation_rate")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["kpi"] == "escalation_rate" and rows[0]["cohort"] == "all"
    parts = [float(r["value"]) for r in rows if r["breakdown"]]
    assert sum(parts) == pytest.approx(float(rows[0]["value"]), rel=1e-12)

    code, out, _ = run("compute", *data_args(logs), "--format", "markdown")
    assert code == 0
    assert "## Business outcomes" in out
    assert "| Task completion (not reopened in 24 h) | all |" in out

    target = tmp_path / "kpis.txt"
    code, out, _ = run("compute", *data_args(logs), "--output", str(target))
    assert code == 0 and out == ""
    text = target.read_text()
    assert "Business outcomes" in text and "Risk and compliance" in text
    assert "\x1b[" not in text  # no colour codes in files


def test_validate_ok_and_errors(tmp_path: Path) -> None:
    code, out, _ = run("validate", "-c", str(SPEC))
    assert code == 0 and "ok — 19 KPIs" in out
    broken = tmp_path / "broken.yaml"
    broken.write_text(SPEC.read_text().replace("WHERE completed)", "WHERE complted)", 1))
    code, out, err = run("validate", "-c", str(broken))
    assert code == 1 and out == ""
    assert err.startswith("kpictl: error: 1 problem in the KPI spec:")
    assert "did you mean 'completed'" in err
    assert re.search(rf"{re.escape(str(broken))}:\d+: kpis\.task_completion_rate\.numerator", err)


def test_missing_default_spec_is_a_usage_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run("compute")
    assert code == 2 and "pass the spec with -c PATH" in err


def test_usage_errors_exit_2(logs: Path) -> None:
    code, _, err = run("compute", *data_args(logs), "--kpi", "escalaton_rate")
    assert code == 2 and "did you mean 'escalation_rate'" in err
    code, _, err = run("compute", *data_args(logs), "--param", "good_csat=high")
    assert code == 2 and "--param good_csat=high: expected a whole number" in err
    code, _, err = run("compute", *data_args(logs), "--since", "last tuesday")
    assert code == 2 and "--since 'last tuesday'" in err  # yesterday is a time since issue 14
    code, _, err = run("compute", *data_args(logs), "--source", "nope=x")
    assert code == 2 and "no source 'nope'" in err
    code, _, _ = run("compute", "--format", "xml")
    assert code == 2


def test_bad_json_line_is_located_and_skippable(tmp_path: Path, logs: Path) -> None:
    events = tmp_path / "events.jsonl"
    good = pl.read_parquet(logs / "events").head(5)
    lines = [json.dumps(r, default=str) for r in good.to_dicts()]
    lines.insert(2, '{"conversation_id": "x", "ts": ')
    events.write_text("\n".join(lines) + "\n")
    before = events.read_bytes()
    args = [str(events), "--source", f"tool_calls={logs / 'tool_calls'}", "-c", str(SPEC)]
    args[3:3] = ["--source", f"business_events={logs / 'business_events'}"]
    code, out, err = run("compute", *args)
    assert code == 1 and out == ""
    assert err.startswith(f"kpictl: error: {events}:3: malformed JSON")
    code, out, err = run("compute", *args, "--on-bad-rows", "skip", "--format", "json")
    assert code == 0
    assert f"kpictl: warning: {events}: skipped 1 bad row(s)" in err
    inputs = json.loads(out)["inputs"]
    assert inputs[0]["path"] == str(events) and inputs[0]["skipped"] == 1
    assert inputs[0]["rows"] == 5
    assert events.read_bytes() == before  # inputs are never modified


# ----------------------------------------------------------------------------------------------
# Empty is valid: zero rows give n = 0, a null value and a note (a missing path stays an error)
# ----------------------------------------------------------------------------------------------


@pytest.fixture()
def empty_logs(tmp_path: Path) -> tuple[Path, Path]:
    """An empty events file and an empty tool_calls file (and an empty business_events file
    beside them, `empty_business`)."""
    events, calls = tmp_path / "events.jsonl", tmp_path / "tool_calls.jsonl"
    events.write_text("")
    calls.write_text("")
    empty_business(events).write_text("")
    return events, calls


def empty_business(events: Path) -> Path:
    return events.parent / "business_events.jsonl"


def empty_args(events: Path, calls: Path) -> list[str]:
    business = f"business_events={empty_business(events)}"
    return [str(events), "--source", f"tool_calls={calls}", "--source", business, "-c", str(SPEC)]


def test_empty_sources_compute_n_0_with_notes_in_every_format(
    empty_logs: tuple[Path, Path],
) -> None:
    events, calls = empty_logs
    notes = [
        f"source 'events' has no rows (in {events})",
        f"source 'tool_calls' has no rows (in {calls})",
        f"source 'business_events' has no rows (in {empty_business(events)})",
        "no conversations in the data: every KPI is n = 0 with a null value",
    ]
    code, out, err = run("compute", *empty_args(events, calls), "--format", "json")
    assert code == 0, err
    assert err == "".join(f"kpictl: note: {n}\n" for n in notes)
    document = json.loads(out)
    assert document["notes"] == notes and document["as_of"] is None
    assert [r["kpi"] for r in document["results"]] == list(load_spec(SPEC).kpis)
    assert {(r["value"], r["n"], r["pending"]) for r in document["results"]} == {(None, 0, 0)}
    code, out, err = run("compute", *empty_args(events, calls), "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 19 and {(r["value"], r["n"]) for r in rows} == {("", "0")}
    code, out, err = run("compute", *empty_args(events, calls), "--format", "markdown")
    assert code == 0, err
    assert out.startswith("# KPIs as of — (no timestamps in the data)\n")
    assert out.endswith("Notes:\n\n" + "".join(f"- {md_text(n)}\n" for n in notes))
    code, out, err = run("compute", *empty_args(events, calls), "--by", "channel")
    assert code == 0, err
    assert "KPIs as of — (no timestamps in the data)" in out
    assert re.search(r"│ Task completion \(not reopened in 24 h\) +│ all +│ +— │ 0 │", out)


def test_a_day_without_tool_calls(logs: Path, tmp_path: Path) -> None:
    calls = tmp_path / "tool_calls.jsonl"
    calls.write_text("")
    args = [str(logs / "events"), "--source", f"tool_calls={calls}", "-c", str(SPEC)]
    args[3:3] = ["--source", f"business_events={logs / 'business_events'}"]
    code, out, err = run("compute", *args, "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert document["notes"] == [
        f"source 'tool_calls' has no rows (in {calls})",
        "tool_call_success_rate: n = 0 (tool_calls has no rows to count in the window): "
        "the value is null",
    ]
    results = {r["kpi"]: r for r in document["results"] if not r["cohort"]}
    conversations = pl.read_parquet(logs / "events").get_column("conversation_id").n_unique()
    assert (results["tool_call_success_rate"]["value"], results["tool_call_success_rate"]["n"]) == (
        None,
        0,
    )
    # COUNT over no calls is 0 per conversation: a true zero, over every conversation
    assert results["tool_calls_per_task"]["value"] == 0.0
    assert results["tool_calls_per_task"]["n"] == conversations
    # KPIs that do not read tool calls are unchanged
    _, full, _ = run("compute", *data_args(logs), "--format", "json")
    before = {r["kpi"]: r for r in json.loads(full)["results"] if not r["cohort"]}
    for name in ("task_completion_rate", "escalation_rate", "csat_mean"):
        assert (results[name]["value"], results[name]["n"]) == (
            before[name]["value"],
            before[name]["n"],
        )


def latest_ts(logs: Path) -> str:
    latest = pl.read_parquet(logs / "events").get_column("ts").max()
    assert isinstance(latest, dt.datetime)
    return latest.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_since_after_the_last_row_says_the_window_is_empty(logs: Path) -> None:
    as_of = latest_ts(logs)
    code, out, err = run("compute", *data_args(logs), "--since", "2030-01-01", "--format", "json")
    assert code == 0, err
    note = (
        f"no conversations in the window (2030-01-01T00:00:00Z – as-of {as_of}): every KPI "
        "is n = 0 with a null value"
    )
    assert err == f"kpictl: note: {note}\n"
    document = json.loads(out)
    assert document["notes"] == [note]
    assert {(r["value"], r["n"]) for r in document["results"]} == {(None, 0)}


def test_compare_with_both_arms_empty_is_insufficient_data_with_notes(
    empty_logs: tuple[Path, Path],
) -> None:
    events, calls = empty_logs
    code, out, err = run("compare", *empty_args(events, calls), "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    arm_notes = [
        "no conversations in the treatment arm (`arm = 'treatment'`): every KPI is insufficient "
        "data",
        "no conversations in the control arm (`arm = 'holdout'`): every KPI is insufficient data",
    ]
    assert document["notes"] == [
        f"source 'events' has no rows (in {events})",
        f"source 'tool_calls' has no rows (in {calls})",
        f"source 'business_events' has no rows (in {empty_business(events)})",
        *arm_notes,
    ]
    assert err.endswith("".join(f"kpictl: note: {n}\n" for n in arm_notes))
    assert {r["status"] for r in document["results"]} == {"insufficient_data"}
    assert document["srm"] == {
        "checked": False,
        "reason": "no units in either arm",
        "treatment": 0,
        "control": 0,
    }
    for fmt in ("table", "markdown", "csv"):
        code, out, err = run("compare", *empty_args(events, calls), "--format", fmt)
        assert code == 0 and "insufficient_data" in out, err
        assert "Sample ratio" not in out


def test_compare_with_an_empty_baseline_period_is_insufficient_data(logs: Path) -> None:
    """The 28 days before the first conversation hold none: no verdict (was `ok` for a KPI
    whose current value alone was judged)."""
    first = pl.read_parquet(logs / "events").get_column("ts").min()
    assert isinstance(first, dt.datetime)
    since = first.astimezone(dt.UTC).date().isoformat()
    code, out, err = run(
        "compare", *data_args(logs), "--baseline", "prior_4w", "--since", since, "--format", "json"
    )
    assert code == 0, err
    document = json.loads(out)
    start = dt.date.fromisoformat(since) - dt.timedelta(days=28)
    note = (
        f"no conversations in the baseline arm (window {start}T00:00:00Z – "
        f"{since}T00:00:00Z): every KPI is insufficient data"
    )
    assert note in document["notes"] and f"kpictl: note: {note}\n" in err
    assert {r["status"] for r in document["results"]} == {"insufficient_data"}
    assert {r["baseline"]["n"] for r in document["results"]} == {0}


def test_report_on_empty_sources_says_so_in_the_header(empty_logs: tuple[Path, Path]) -> None:
    events, calls = empty_logs
    code, out, err = run("report", *empty_args(events, calls))
    assert code == 0, err
    header = out.split("\n## ")[0]
    assert header.startswith(
        "# Agent scorecard\n\n"
        "- **Period:** no timestamps in the data (every conversation read is counted)\n"
        "- **As of:** none (no timestamps in the data)\n"
        "- **No data:** no conversations in the window (sources `events`, `tool_calls`, "
        "`business_events` hold no rows): every KPI is n = 0 with a null value; nothing below "
        "is an estimate\n"
    )
    assert "sample ratio not checked (no units in either arm)" in out  # method appendix
    assert "Against the baseline, 19 KPIs: 0 better, 0 worse, 0 unchanged, 19 not judged." in out


def test_report_after_the_last_row_says_the_window_is_empty(logs: Path) -> None:
    code, out, err = run("report", *data_args(logs), "--since", "2030-01-01")
    assert code == 0, err
    assert (
        "- **No data:** no conversations in the window: every KPI is n = 0 with a null "
        "value; nothing below is an estimate\n"
    ) in out.split("\n## ")[0]


def test_python_api_on_empty_sources(empty_logs: tuple[Path, Path]) -> None:
    import kpictl

    events, calls = empty_logs
    spec = kpictl.load_spec(SPEC)
    paths = {"events": [events], "tool_calls": [calls], "business_events": [empty_business(events)]}
    sources = kpictl.load_sources(spec, paths)
    table = kpictl.compute(spec, sources)
    assert table.height == 19 and table.get_column("n").to_list() == [0] * 19
    assert table.get_column("value").null_count() == 19
    assert kpictl.facts(spec, sources).height == 0
    changes = kpictl.compare(spec, sources, baseline="holdout")
    assert set(changes.get_column("status")) == {"insufficient_data"}
    assert "- **No data:** no conversations in the window" in kpictl.report(spec, sources)


def test_facts_export(logs: Path, tmp_path: Path) -> None:
    target = tmp_path / "conversations.parquet"
    code, _, err = run("facts", *data_args(logs), "--output", str(target))
    assert code == 0, err
    frame = pl.read_parquet(target)
    assert frame.height == 300 and {"completed", "cost_usd", "channel"} <= set(frame.columns)
    target_csv = tmp_path / "calls.csv"
    code, _, _ = run(
        "facts", *data_args(logs), "--table", "tool_calls", "--output", str(target_csv)
    )
    assert code == 0 and pl.read_csv(target_csv).height > 0
    code, _, err = run("facts", *data_args(logs), "--output", str(tmp_path / "x.xlsx"))
    assert code == 2 and ".parquet, .csv or .json" in err


def test_sample_command_is_deterministic(tmp_path: Path) -> None:
    for name in ("one", "two"):
        code, _, _ = run(
            "sample", "--conversations", "50", "--out", str(tmp_path / name), "--seed", "5"
        )
        assert code == 0
    for sub in ("events/events.jsonl", "tool_calls/tool_calls.jsonl"):
        assert (tmp_path / "one" / sub).read_bytes() == (tmp_path / "two" / sub).read_bytes()


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = [
        "compute",
        "compare",
        "report",
        "project",
        "check",
        "init",
        "validate",
        "facts",
        "sample",
        "cache",
        "review sample",
        "review score",
    ]
    for command in commands:
        code, out, _ = run(*command.split(), "--help")
        assert code == 0 and len(out) > 200
        assert f"kpictl {command}" in readme


def test_minimal_events_without_optional_columns(tmp_path: Path, logs: Path) -> None:
    """Only the required fields: optional canonical columns are empty, KPIs still compute."""
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"conversation_id": "a", "ts": "2026-10-01T00:00:00Z", "event": "message"}\n'
        '{"conversation_id": "a", "ts": "2026-10-01T00:05:00Z", "event": "escalation"}\n'
        '{"conversation_id": "b", "ts": "2026-10-03T00:00:00Z", "event": "message"}\n'
    )
    code, out, err = run(
        "compute",
        str(events),
        *sample_sources(logs),
        "-c",
        str(SPEC),
        "--format",
        "json",
        "--kpi",
        "escalation_rate",
    )
    assert code == 0, err
    results = json.loads(out)["results"]
    assert results[0]["value"] == 0.5
    assert results[1]["breakdown"] == {"escalation_reason": None}


def test_a_closed_pipe_exits_quietly_like_other_unix_tools() -> None:
    """`kpictl compute … | head -1`: the reader goes away after one line; kpictl stops with exit
    141 (128 + SIGPIPE) and nothing on stderr (was: "internal error: BrokenPipeError … please
    report it", exit 70). The output (one row per KPI and conversation, ~3.5 MB) is far larger
    than a pipe's buffer, so the write does fail."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as users
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    kpictl = f'"{sys.executable}" -c "from kpictl.cli import main; main()"'
    pipeline = (
        f"{kpictl} compute --by conversation_id --format csv | head -1; "
        'echo "kpictl exit ${PIPESTATUS[0]}" >&2'
    )
    done = subprocess.run(
        ["bash", "-c", pipeline], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.splitlines() == [
        "kpi,cohort,conversation_id,breakdown,breakdown_value,value,reason,n,pending,layer,format,"
        "direction,owner"
    ]
    assert done.stderr == "kpictl exit 141\n"


def test_compare_with_a_formula_kpi_and_an_empty_arm_is_insufficient_data(
    write_spec: SpecWriter, write_jsonl: JsonlWriter
) -> None:
    """A formula KPI whose baseline arm holds no unit: insufficient data, as for every other
    KPI (was exit 70: 'the bootstrap needs at least one unit per arm')."""
    spec = write_spec()
    arm = {"channel": "web", "arm": "treatment"}
    write_jsonl(
        "logs/events/e.jsonl",
        [
            {"conversation_id": "a", "ts": "2026-01-01T00:00:00Z", "event": "message", **arm},
            {"conversation_id": "a", "ts": "2026-01-01T00:05:00Z", "event": "resolution", **arm},
            {"conversation_id": "b", "ts": "2026-01-02T00:00:00Z", "event": "message", **arm},
            {
                "conversation_id": "b",
                "ts": "2026-01-02T00:05:00Z",
                "event": "escalation",
                "escalation_reason": "x",
                **arm,
            },
        ],
    )
    write_jsonl(
        "logs/tool_calls/t.jsonl",
        [
            {"conversation_id": "a", "ts": "2026-01-01T00:01:00Z", "tool": "t", "status": "ok"},
        ],
    )
    for baseline in ("holdout", "prior"):
        code, out, err = run("compare", "-c", str(spec), "--baseline", baseline, "--format", "json")
        assert code == 0, err
        rows = {r["kpi"]: r for r in json.loads(out)["results"]}
        share = rows["resolved_share"]
        assert share["status"] == "insufficient_data"
        assert (share["baseline"]["n"], share["current"]["n"]) == (0, 2)
        # the current value is compute's: resolution 1/2 over (1/2 + escalation 1/2)
        assert share["current"]["value"] == pytest.approx(0.5 / (0.5 + 0.5), rel=1e-12)


@pytest.mark.parametrize(
    ("fmt", "unbuffered"), [("table", False), ("csv", True)], ids=["table", "PYTHONUNBUFFERED"]
)
def test_a_closed_pipe_is_exit_141_for_a_table_and_for_unbuffered_stdout(
    fmt: str, unbuffered: bool
) -> None:
    """The same `| head -1` as above: a table went through rich's own closed-pipe handler, which
    exits 1 (the code of a data error); with PYTHONUNBUFFERED=1 (`python -u`, common in
    containers) the write the reader cut short came back short, Python's text layer dropped the
    rest, and kpictl exited 0. Both are now 141 with nothing on stderr. ~240 kB of output: far
    more than a pipe's buffer."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    kpictl = f'"{sys.executable}" -c "from kpictl.cli import main; main()"'
    pipeline = (
        f"{kpictl} compute --by conversation_id --kpi tokens_per_task --format {fmt} "
        '| head -1 > /dev/null; echo "kpictl exit ${PIPESTATUS[0]}" >&2'
    )
    done = subprocess.run(
        ["bash", "-c", pipeline], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stderr == "kpictl exit 141\n"


def test_a_total_over_no_conversations_is_null_not_zero(
    empty_logs: tuple[Path, Path], logs: Path, tmp_path: Path
) -> None:
    """A KPI whose value is a TOTAL (or a COUNT) printed $0.0000 with n = 0 on an empty source,
    under the note "every KPI is n = 0 with a null value" (a cohort without rows was already
    null). Over data it is the plain sum."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SPEC.read_text() + "\n  total_llm_cost:\n    over: conversations\n"
        "    value: TOTAL(llm_cost)\n    format: usd\n"
    )
    events, calls = empty_logs
    code, out, err = run(
        "compute",
        str(events),
        "--source",
        f"tool_calls={calls}",
        "-c",
        str(spec),
        "--kpi",
        "total_llm_cost",
        "--format",
        "json",
    )
    assert code == 0, err
    [result] = json.loads(out)["results"]
    assert (result["value"], result["n"]) == (None, 0)
    code, out, err = run(
        "compute",
        str(logs / "events"),
        *sample_sources(logs),
        "-c",
        str(spec),
        "--kpi",
        "total_llm_cost",
        "--format",
        "json",
    )
    assert code == 0, err
    [result] = json.loads(out)["results"]
    total = pl.read_parquet(logs / "events").get_column("cost_usd").sum()
    assert result["value"] == pytest.approx(total, rel=1e-12)


def test_a_kpi_whose_own_where_leaves_nothing_says_so(logs: Path, tmp_path: Path) -> None:
    """No conversation has a resolution (the data calls it 'closed'): the note said
    "conversations has no rows to count in the window" while 300 conversations were there."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.read_text().replace("event = 'resolution'", "event = 'closed'"))
    code, out, err = run(
        "compute",
        str(logs / "events"),
        *sample_sources(logs),
        "-c",
        str(spec),
        "--kpi",
        "time_to_resolution_p50",
        "--format",
        "json",
    )
    assert code == 0, err
    assert (
        "time_to_resolution_p50: n = 0 (no row of conversations in the window meets its "
        "where: resolved_at IS NOT NULL): the value is null"
    ) in json.loads(out)["notes"]


def test_the_cli_reads_sources_with_open_sources_own_signature() -> None:
    """cli.app.read_sources is open_sources under a spinner, not a restated copy of it."""
    assert inspect.signature(read_sources) == inspect.signature(open_sources)
    assert read_sources.__wrapped__ is open_sources  # type: ignore[attr-defined]


def test_compare_without_baseline_compares_against_the_specs_defaults_baseline(
    logs: Path,
) -> None:
    """What kpi_definitions.yaml's comment on defaults.baseline says: compare (and report) use
    it when no --baseline is given."""
    default = load_spec(SPEC).defaults.baseline
    assert default == "holdout"
    args = [*data_args(logs), "--kpi", "task_completion_rate", "--format", "json"]
    code, implicit, _ = run("compare", *args)
    explicit_code, explicit, _ = run("compare", *args, "--baseline", default)
    assert code == explicit_code == 0
    assert json.loads(implicit)["baseline"]["name"] == default
    assert implicit == explicit


@pytest.mark.parametrize("command", ["compare", "report"])
def test_baseline_source_without_a_dataset_baseline_is_a_usage_error(
    logs: Path, command: str
) -> None:
    code, out, err = run(
        command, *data_args(logs), "--baseline", "holdout", "--baseline-source", "x=y"
    )
    assert (code, out) == (2, "")
    assert err == "kpictl: error: --baseline-source needs --baseline PATH (a dataset)\n"
