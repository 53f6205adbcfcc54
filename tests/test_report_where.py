"""`kpictl report --where`: the same filter as compare's (README, "kpictl report"), so the
scorecard's tiles are compare's numbers under the same --where, and the header says so."""

from __future__ import annotations

import json
from contextlib import chdir
from pathlib import Path

import pytest
from typer.testing import CliRunner

import kpictl
from kpictl.cli import app
from kpictl.scorecard.report import ReportOptions, run_report

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"
WEB = "channel = 'web'"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    with chdir(ROOT):
        result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_report_tiles_equal_compare_under_the_same_where() -> None:
    code, out, err = run("compare", "--where", WEB, "--format", "json")
    assert code == 0, err
    expected = {
        r["kpi"]: r["current"]
        for r in json.loads(out)["results"]
        if not r["cohort"] and "breakdown" not in r
    }
    code, out, err = run("compare", "--format", "json")
    unfiltered = {r["kpi"]: r["current"] for r in json.loads(out)["results"] if not r["cohort"]}
    spec = kpictl.load_spec(SPEC)
    with chdir(ROOT):
        sources = kpictl.load_sources(
            spec,
            {
                "events": [ROOT / "sample_logs" / "events"],
                "tool_calls": [ROOT / "sample_logs" / "tool_calls"],
                "business_events": [ROOT / "sample_logs" / "business_events"],
            },
        )
        result = run_report(spec, sources, ReportOptions(where=WEB))
    tiles = {t.kpi: t for t in result.tiles}
    assert set(tiles) == set(expected)
    for kpi, current in expected.items():
        assert tiles[kpi].n == current["n"], kpi
        # the same numbers; a sum's order may differ in the last bit (one ulp)
        if current["value"] is None:
            assert tiles[kpi].value is None, kpi
        else:
            assert tiles[kpi].value == pytest.approx(current["value"], rel=1e-12), kpi
    # the filter bites: web is a part of the treatment arm's conversations
    assert tiles["task_completion_rate"].n < unfiltered["task_completion_rate"]["n"]
    assert (
        f"- **Filter:** `{WEB}` (`--where`): the KPIs' values are over the rows it keeps of the "
        "tables that have its columns; costs, drill-down and cohorts are over every conversation"
    ) in result.markdown


def test_report_header_says_the_where() -> None:
    code, out, err = run("report", "--where", WEB, "--kpi", "task_completion_rate")
    assert code == 0, err
    assert f"- **Filter:** `{WEB}` (`--where`)" in out
    code, out, _ = run("report", "--kpi", "task_completion_rate")
    assert "**Filter:**" not in out


def test_report_unknown_where_column_is_compares_usage_error() -> None:
    code, _, compare_err = run("compare", "--where", "chanel = 'web'")
    assert code == 2
    code, out, err = run("report", "--where", "chanel = 'web'")
    assert code == 2
    assert out == ""
    assert err == compare_err
    assert err.startswith(
        "kpictl: error: --where (on table 'agent_turns'): unknown column 'chanel' "
        "(did you mean 'channel'?); available: "
    )
