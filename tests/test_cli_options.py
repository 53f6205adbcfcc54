"""The same option means the same thing on every command (README "Consistent options"):
`-o/--output`, `--format` where the output is data, the help listing and shell completion."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import SpecWriter, run
from kpictl.cli import app

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"


def data_args(logs: Path) -> list[str]:
    return [str(logs / "events"), "--source", f"tool_calls={logs / 'tool_calls'}", "-c", str(SPEC)]


def test_the_help_lists_every_command_with_its_whole_summary_at_80_columns() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0
    listing = result.stdout.split("Commands:", 1)[1]
    assert "..." not in listing and max(len(line) for line in listing.splitlines()) <= 80
    flat = " ".join(listing.split())
    import typer.main

    group = typer.main.get_command(app)
    ctx = group.make_context("kpictl", ["--help"], resilient_parsing=True)
    names = group.list_commands(ctx)  # type: ignore[attr-defined]
    assert {"compute", "compare", "report", "facts", "sample", "validate", "check"} <= set(names)
    for name in names:
        summary = group.get_command(ctx, name).get_short_help_str(limit=10_000)  # type: ignore[attr-defined]
        assert f"{name} {' '.join(summary.split())}" in flat, name
    # the shipped commands' summaries each fit on their line
    assert "  compute   Compute every KPI, overall, by cohort or by time bucket.\n" in listing
    assert "  sample    Write deterministic synthetic agent logs.\n" in listing


def test_show_completion_prints_a_bash_script(monkeypatch: pytest.MonkeyPatch) -> None:
    # typer's own switch for tests: --show-completion takes the shell as its value instead of
    # detecting it from the parent processes (with no shell among them, as under a lander run
    # from a daemon, detection finds none: 'Shell  not supported.', exit 1)
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    code, out, _ = run("--show-completion", "bash")
    assert code == 0
    assert "complete -o default -F" in out and "COMP_WORDS" in out


def test_sample_writes_to_output_and_keeps_out_as_a_hidden_alias(tmp_path: Path) -> None:
    code, _, err = run("sample", "-n", "20", "-o", str(tmp_path / "new"), "--seed", "5")
    assert code == 0 and f"kpictl: wrote {tmp_path / 'new' / 'events'}" in err
    code, _, _ = run("sample", "-n", "20", "--out", str(tmp_path / "old"), "--seed", "5")
    assert code == 0
    for sub in ("events/events.jsonl", "tool_calls/tool_calls.jsonl"):
        assert (tmp_path / "new" / sub).read_bytes() == (tmp_path / "old" / sub).read_bytes()
    code, out, _ = run("sample", "--help")
    assert "--output" in out and "--out " not in out
    code, _, err = run("sample", "-o", "a", "--out", "b")
    assert code == 2
    assert err == "kpictl: error: --output a and --out b: give the folder once (--output)\n"


def _facts_by_sql(logs: Path) -> dict[str, tuple[int, float]]:
    """Per conversation: its tool calls and the cost of its events, by DuckDB over the logs."""
    rows = duckdb.sql(
        f"""
        SELECT e.conversation_id, COALESCE(t.calls, 0) AS calls, e.cost
        FROM (SELECT conversation_id, COALESCE(SUM(cost_usd), 0) AS cost
              FROM '{logs}/events/*.parquet' GROUP BY 1) e
        LEFT JOIN (SELECT conversation_id, COUNT(*) AS calls
                   FROM '{logs}/tool_calls/*.parquet' GROUP BY 1) t USING (conversation_id)
        """
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _check_facts(frame: pl.DataFrame, expected: dict[str, tuple[int, float]]) -> None:
    assert frame.height == len(expected)
    for key, calls, cost in frame.select("conversation_id", "tool_calls", "llm_cost").rows():
        assert calls == expected[key][0]
        assert abs(cost - expected[key][1]) < 1e-9


def test_facts_writes_csv_json_and_parquet_to_stdout(logs: Path) -> None:
    expected = _facts_by_sql(logs)
    code, out, _ = run("facts", *data_args(logs), "--format", "csv")
    assert code == 0
    _check_facts(pl.read_csv(io.StringIO(out)), expected)
    code, out, _ = run("facts", *data_args(logs), "--format", "json")
    assert code == 0
    _check_facts(pl.DataFrame(json.loads(out)), expected)
    result = CliRunner().invoke(app, ["facts", *data_args(logs), "--format", "parquet"])
    assert result.exit_code == 0
    _check_facts(pl.read_parquet(io.BytesIO(result.stdout_bytes)), expected)


def test_facts_format_from_the_file_name_or_the_option(tmp_path: Path, logs: Path) -> None:
    expected = _facts_by_sql(logs)
    code, _, err = run("facts", *data_args(logs), "-o", str(tmp_path / "f.json"))
    assert code == 0 and err.endswith(f"to {tmp_path / 'f.json'}\n")
    _check_facts(pl.read_json(tmp_path / "f.json"), expected)
    code, _, _ = run("facts", *data_args(logs), "-o", str(tmp_path / "f.txt"), "-f", "csv")
    assert code == 0
    _check_facts(pl.read_csv(tmp_path / "f.txt"), expected)
    code, _, err = run("facts", *data_args(logs), "-o", str(tmp_path / "f.xlsx"))
    assert code == 2
    assert err == (
        f"kpictl: error: --output {tmp_path / 'f.xlsx'}: expected a .parquet, .csv or .json "
        "file name (or name the format with --format)\n"
    )


def test_validate_as_json(write_spec: SpecWriter) -> None:
    code, out, _ = run("validate", "-c", str(SPEC), "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert document == {
        "spec": str(SPEC),
        "valid": True,
        "kpis": 19,
        "tables": 3,
        "sources": 3,
        "baselines": 2,
        "problems": [],
    }
    broken = write_spec(("denominator: COUNT(*)", "denominater: COUNT(*)"))
    code, out, err = run("validate", "-c", str(broken), "-f", "json")
    document = json.loads(out)
    assert code == 1 and document["valid"] is False
    count = len(document["problems"])
    assert err == f"kpictl: error: {count} problem{'s' if count != 1 else ''} in the KPI spec\n"
    first = document["problems"][0]
    assert set(first) == {"file", "line", "path", "message"} and first["file"] == str(broken)
    assert any(p["path"].endswith(".denominater") for p in document["problems"])


def test_report_by_the_key_is_a_clear_error(logs: Path) -> None:
    code, out, err = run("report", *data_args(logs), "--by", "conversation_id")
    assert (code, out) == (2, "")
    assert err == (
        "kpictl: error: --by conversation_id: the key of table 'conversations' (one cohort per "
        "row): the scorecard compares groups of rows with the rest; use a column that groups "
        "them (e.g. channel, intent, customer_tier), or see each row's values with kpictl "
        "compute --by conversation_id\n"
    )


# ----------------------------------------------------------------------------------------------
# --since 7d, --since 2w, --until yesterday: counted back from as-of
# ----------------------------------------------------------------------------------------------


def _as_of_and_starts(logs: Path) -> tuple[dt.datetime, list[dt.datetime]]:
    """The default as-of (the latest ts of events and tool calls) and each conversation's
    start, by DuckDB."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    as_of = con.sql(
        f"SELECT MAX(ts) FROM (SELECT ts FROM '{logs}/events/*.parquet' "
        f"UNION ALL SELECT ts FROM '{logs}/tool_calls/*.parquet')"
    ).fetchall()[0][0]
    starts = con.sql(
        f"SELECT MIN(ts) FROM '{logs}/events/*.parquet' GROUP BY conversation_id"
    ).fetchall()
    return as_of.astimezone(dt.UTC), [s[0].astimezone(dt.UTC) for s in starts]


def _window_and_n(logs: Path, *options: str) -> tuple[dict[str, str], int]:
    code, out, err = run(
        "compute", *data_args(logs), "--kpi", "escalation_rate", "-f", "json", *options
    )
    assert code == 0, err
    document = json.loads(out)
    overall = next(r for r in document["results"] if not r["cohort"] and "breakdown" not in r)
    return document["window"], overall["n"]


def _z(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def test_relative_since_and_until_count_back_from_the_data_as_of(logs: Path) -> None:
    as_of, starts = _as_of_and_starts(logs)
    midnight = as_of.replace(hour=0, minute=0, second=0, microsecond=0)
    cases = {
        ("--since", "7d"): (as_of - dt.timedelta(days=7), None),
        ("--since", "2w"): (as_of - dt.timedelta(days=14), None),
        ("--since", "36h"): (as_of - dt.timedelta(hours=36), None),
        ("--since", "3d", "--until", "yesterday"): (
            as_of - dt.timedelta(days=3),
            midnight - dt.timedelta(days=1),
        ),
        ("--since", "yesterday", "--until", "today"): (midnight - dt.timedelta(days=1), midnight),
    }
    for options, (since, until) in cases.items():
        window, n = _window_and_n(logs, *options)
        assert window == {"since": _z(since), "until": None if until is None else _z(until)}
        inside = [s for s in starts if s >= since and (until is None or s < until)]
        assert n == len(inside) > 0, options


def test_a_relative_window_equals_the_same_window_given_as_times(logs: Path) -> None:
    as_of, _ = _as_of_and_starts(logs)
    midnight = as_of.replace(hour=0, minute=0, second=0, microsecond=0)
    relative = run("compute", *data_args(logs), "-f", "csv", "--since", "5d", "--until", "today")
    absolute = run(
        "compute",
        *data_args(logs),
        "-f",
        "csv",
        "--since",
        _z(as_of - dt.timedelta(days=5)),
        "--until",
        _z(midnight),
    )
    assert relative[0] == absolute[0] == 0 and relative[2] == absolute[2]
    left, right = pl.read_csv(io.StringIO(relative[1])), pl.read_csv(io.StringIO(absolute[1]))
    assert left.drop("value").equals(right.drop("value"))  # n and pending: the same units
    for a, b in zip(left["value"], right["value"], strict=True):  # sums in another order
        assert (a is None and b is None) or abs(a - b) <= 1e-12 * max(1.0, abs(b))


def test_relative_times_follow_as_of(logs: Path) -> None:
    window, _ = _window_and_n(
        logs, "--as-of", "2026-10-05T12:30:00Z", "--since", "1d", "--until", "today"
    )
    assert window == {"since": "2026-10-04T12:30:00Z", "until": "2026-10-05T00:00:00Z"}


def test_relative_times_work_on_report_and_compare(logs: Path) -> None:
    as_of, _ = _as_of_and_starts(logs)
    code, out, _ = run("report", *data_args(logs), "--since", "7d")
    assert code == 0
    since = as_of - dt.timedelta(days=7)
    assert f"- **Period:** {since:%Y-%m-%d %H:%M} UTC – {as_of:%Y-%m-%d %H:%M} UTC" in out
    code, out, _ = run("compare", *data_args(logs), "-b", "holdout", "--since", "7d", "-f", "json")
    assert code == 0
    assert json.loads(out)["current"]["window"] == {
        "since": _z(as_of - dt.timedelta(days=7)),
        "until": None,
        "as_of": _z(as_of),
    }


def test_a_time_that_is_neither_iso_nor_relative_is_a_usage_error(logs: Path) -> None:
    code, out, err = run("compute", *data_args(logs), "--since", "7x")
    assert (code, out) == (2, "")
    assert err == (
        "kpictl: error: --since '7x': expected an ISO-8601 date or time such as 2026-10-01 or "
        "2026-10-01T12:00:00Z, or a time back from as-of: 7d, 2w, 12h, today, yesterday\n"
    )
    code, _, err = run("compute", *data_args(logs), "--since", "today", "--until", "2d")
    assert code == 2 and err.startswith("kpictl: error: --until ") and "is not after --since" in err


# ----------------------------------------------------------------------------------------------
# `-`: JSONL from standard input; --where on the tables that have its columns
# ----------------------------------------------------------------------------------------------


def test_dash_reads_jsonl_from_standard_input(logs: Path) -> None:
    events = pl.read_parquet(logs / "events")
    text = events.write_ndjson()
    tools = ["--source", f"tool_calls={logs / 'tool_calls'}", "-c", str(SPEC)]
    piped = CliRunner().invoke(
        app, ["compute", "-", *tools, "--kpi", "escalation_rate", "-f", "json"], input=text
    )
    assert piped.exit_code == 0, piped.stderr
    from_file = run(
        "compute", str(logs / "events"), *tools, "--kpi", "escalation_rate", "-f", "json"
    )
    document, expected = json.loads(piped.stdout), json.loads(from_file[1])
    assert document["results"] == expected["results"]
    assert document["inputs"][0] == {
        "source": "events",
        "path": "<stdin>",
        "format": "jsonl",
        "rows": events.height,
        "skipped": 0,
    }


def test_a_bad_line_on_standard_input_is_located_there(logs: Path) -> None:
    lines = pl.read_parquet(logs / "events").head(3).write_ndjson().splitlines()
    lines.insert(1, '{"conversation_id": "x", "ts": ')
    result = CliRunner().invoke(
        app,
        ["compute", "-", "--source", f"tool_calls={logs / 'tool_calls'}", "-c", str(SPEC)],
        input="\n".join(lines) + "\n",
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("kpictl: error: <stdin>:2: malformed JSON")


def test_dash_twice_is_a_usage_error(logs: Path) -> None:
    result = CliRunner().invoke(
        app, ["compute", "-", "--source", "tool_calls=-", "-c", str(SPEC)], input="{}\n"
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "kpictl: error: `-` (standard input) may be given once: it can be read only once\n"
    )


def test_where_filters_the_tables_with_its_columns_and_says_so(logs: Path) -> None:
    where = "tool = 'search_kb'"
    code, out, err = run(
        "compute",
        *data_args(logs),
        "--where",
        where,
        "--kpi",
        "tool_call_success_rate",
        "--kpi",
        "escalation_rate",
        "-f",
        "json",
    )
    assert code == 0
    assert (
        f"kpictl: note: --where {where}: filters the KPIs of 'tool_calls'; not those of "
        "'conversations' (no 'tool'), which are over all their rows\n" in err
    )
    results = {
        r["kpi"]: r for r in json.loads(out)["results"] if not r["cohort"] and "breakdown" not in r
    }
    calls = duckdb.sql(
        f"SELECT COUNT(*), AVG(CAST(status = 'ok' AS DOUBLE)) FROM '{logs}/tool_calls/*.parquet' "
        "WHERE tool = 'search_kb'"
    ).fetchall()[0]
    conversations = duckdb.sql(
        f"SELECT COUNT(DISTINCT conversation_id) FROM '{logs}/events/*.parquet'"
    ).fetchall()[0][0]
    assert results["tool_call_success_rate"]["n"] == calls[0]
    assert results["tool_call_success_rate"]["value"] == pytest.approx(calls[1], rel=1e-12)
    assert results["escalation_rate"]["n"] == conversations  # not filtered: every conversation
    # a column no KPI table has is still an error
    code, _, err = run("compute", *data_args(logs), "--where", "nope = 1")
    assert code == 2 and err.startswith("kpictl: error: --where (on table ")


def test_report_takes_kpi_like_compute_and_compare(logs: Path) -> None:
    code, out, err = run("report", *data_args(logs), "--kpi", "escalation_rate")
    assert code == 0, err
    rate = duckdb.sql(
        f"""
        SELECT AVG(CAST(e AS DOUBLE)) FROM (
            SELECT conversation_id, ANY_VALUE(arm) AS arm,
                   COUNT(*) FILTER (WHERE event = 'escalation') > 0 AS e
            FROM '{logs}/events/*.parquet' GROUP BY 1)
        WHERE arm = 'treatment'
        """
    ).fetchall()[0][0]
    assert f"| Handed to a human | {rate * 100:.2f}\u00a0% |" in out  # a non-breaking space
    assert "Task completion" not in out and "Tool calls that worked" not in out
    code, out, err = run("report", *data_args(logs), "--kpi", "escalaton_rate")
    assert (code, out) == (2, "")
    assert err.startswith("kpictl: error: --kpi escalaton_rate: no such KPI (did you mean ")


def test_check_validate_and_schema_take_output(tmp_path: Path, logs: Path) -> None:
    code, out, _ = run("schema", "-o", str(tmp_path / "schema.json"))
    assert (code, out) == (0, "")
    assert (tmp_path / "schema.json").read_text() == (ROOT / "kpictl.schema.json").read_text()
    code, out, _ = run("validate", "-c", str(SPEC), "-f", "json", "-o", str(tmp_path / "v.json"))
    assert (code, out) == (0, "") and json.loads((tmp_path / "v.json").read_text())["valid"]
    code, shown, _ = run("check", *data_args(logs), "-f", "json")
    code_file, out, _ = run("check", *data_args(logs), "-f", "json", "-o", str(tmp_path / "c.json"))
    assert (code_file, out) == (code, "")
    assert (tmp_path / "c.json").read_text() == shown
    code, _, err = run("validate", "-c", str(SPEC), "-o", str(SPEC))
    assert (
        code == 2
        and err
        == f"kpictl: error: --output {SPEC}: is an input of this run; write somewhere else\n"
    )
