"""The same option means the same thing on every command (README "Consistent options"):
`-o/--output`, `--format` where the output is data, the help listing and shell completion."""

from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
import polars as pl
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


def test_show_completion_prints_a_bash_script() -> None:
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
        "kpis": 16,
        "tables": 3,
        "sources": 2,
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
