"""Terminal tables fit the terminal: columns leave by priority, a note names them, and no number
is ever cut (README "Tables in a terminal")."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path

import polars as pl
import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from kpictl.cli import app
from kpictl.comparison.model import CompareOptions, CompareResult
from kpictl.comparison.run import run_compare
from kpictl.engine.compute import ComputeResult, run_compute
from kpictl.engine.sources import load_sources
from kpictl.render.json import compare_to_json, to_json
from kpictl.render.markdown import compare_to_markdown, to_markdown
from kpictl.render.table import render_compare_table, render_table
from kpictl.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"
runner = CliRunner()


@pytest.fixture(scope="module")
def bundled() -> tuple[ComputeResult, CompareResult]:
    """compute and compare (holdout) on the bundled sample_logs, as `kpictl compute` does."""
    spec = load_spec(SPEC)
    sources = load_sources(spec)
    return run_compute(spec, sources), run_compare(spec, sources, CompareOptions("holdout"))


def printed(draw: object, result: object, width: int, wide: bool = False) -> str:
    out = io.StringIO()
    draw(result, Console(file=out, width=width, no_color=True, force_terminal=False), wide)
    return out.getvalue()


def flat(text: str) -> str:
    return " ".join(text.split())


def cells(text: str) -> list[list[str]]:
    """The table's body lines as lists of cell texts (│-separated)."""
    return [
        [c.strip() for c in line.split("│")[1:-1]]
        for line in text.splitlines()
        if line.startswith("│")
    ]


def header(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith("┃"))
    return [c.strip() for c in line.split("┃")[1:-1]]


# What leaves at each width, worked out by hand from the widest cells of the sample's compare
# table: KPI 24, cohort 6, baseline 9 ("1,303.0 s"), current 9, Δ 21 ("[+3.86 pp, +15.41 pp]"
# on its second line), relative 18, p 6, test 17 ("quantile_cluster…"), status 17
# ("insufficient_data"); a column costs 3 more cells (padding and rule), the table 1.
COMPARE_LEFT_OUT = {
    80: "Left out to fit 80 columns: baseline, relative Δ, p adj., test, confidence "
    "intervals; --wide shows them.",
    100: "Left out to fit 100 columns: relative Δ, test, confidence intervals; --wide shows them.",
    140: "Left out to fit 140 columns: test; --wide shows them.",
}


@pytest.mark.parametrize("width", [80, 100, 140])
def test_compare_table_fits_and_never_cuts_a_number(
    bundled: tuple[ComputeResult, CompareResult], width: int
) -> None:
    result = bundled[1]
    text = printed(render_compare_table, result, width)
    assert max(cell_len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    assert "status" in header(text) and "current" in header(text)
    assert COMPARE_LEFT_OUT[width] in flat(text)
    body = cells(text)
    status_at = header(text).index("status")
    current_at = header(text).index("current")
    rows = result.table.to_dicts()
    # each KPI row: its current value with its unit, whole on the row's first line, and its
    # status in the status column (values written out by hand from `kpictl compute --format json`)
    firsts = [line for line in body if line[status_at] in {r["status"] for r in rows}]
    assert len(firsts) == len(rows) == 19
    by_status = [line[status_at] for line in firsts]
    assert by_status == [r["status"] for r in rows]
    assert [line[current_at] for line in firsts][:3] == ["69.51 %", "83.11 %", "52.37 %"]
    assert "$1.2287" in [line[current_at] for line in firsts]
    for line, row in zip(firsts, rows, strict=True):
        # the whole number, to the decimals of its unit (hand rule: % 2, $ 4 under 10, s 1, ms 0)
        scale, places = {"percent": (100, 2), "usd": (1, 4), "duration": (1, 1), "ms": (1, 0)}.get(
            row["format"], (1, 2)
        )
        if row["format"] == "usd" and abs(row["current_value"]) >= 10:
            places = 2  # $ 2 from 10 up
        digits = re.sub(r"[^\d.]", "", line[current_at])
        assert float(digits) == round(row["current_value"] * scale, places), line


def test_compare_table_wide_shows_every_column_and_interval(
    bundled: tuple[ComputeResult, CompareResult],
) -> None:
    text = printed(render_compare_table, bundled[1], 80, wide=True)
    assert header(text) == [
        "KPI",
        "cohort",
        "baseline",
        "current",
        "Δ [CI]",
        "relative Δ [CI]",
        "p adj.",
        "test",
        "status",
    ]
    assert "Left out" not in text and "…" not in text
    assert "+9.63 pp [+3.86 pp, +15.41 pp]" in text  # task_completion_rate, CI inline


COMPUTE_LEFT_OUT = {
    80: "Left out to fit 80 columns: owner; --wide shows them.",
    100: None,  # KPI 38 ("  └ escalation_reason=customer_request") + 6 + 9 + 5 + 5 + 27 + 19
    140: None,
}


@pytest.mark.parametrize("width", [80, 100, 140])
def test_compute_table_fits_and_never_cuts_a_number(
    bundled: tuple[ComputeResult, CompareResult], width: int
) -> None:
    result = bundled[0]
    text = printed(render_table, result, width)
    assert max(cell_len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    note = COMPUTE_LEFT_OUT[width]
    if note is None:
        assert "Left out" not in text and "owner" in header(text)
    else:
        assert note in flat(text) and "owner" not in header(text)
    value_at, n_at = header(text).index("value"), header(text).index("n")
    shown = [(line[value_at], line[n_at]) for line in cells(text) if line[n_at]]
    expected = [(None, f"{n:,}") for n in result.table["n"]]
    assert [n for _, n in shown] == [n for _, n in expected]
    assert shown[0][0] == "67.85 %" and ("$1.3731", "1,910") in shown


@pytest.mark.parametrize(
    ("columns", "note"),
    [
        (
            "100",
            "Left out to fit 100 columns: relative Δ, test, confidence intervals; --wide "
            "shows them.",
        ),
        ("80", COMPARE_LEFT_OUT[80]),
    ],
)
def test_cli_compare_reads_columns(columns: str, note: str) -> None:
    result = runner.invoke(app, ["compare", "-c", str(SPEC)], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(cell_len(line) for line in lines) <= int(columns)
    assert "…" not in result.stdout
    assert note in flat(result.stdout)
    assert "status" in header(result.stdout)


def test_cli_wide_shows_everything() -> None:
    result = runner.invoke(app, ["compare", "-c", str(SPEC), "--wide"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    assert "Left out" not in result.stdout and "…" not in result.stdout
    assert "test" in header(result.stdout) and "relative Δ [CI]" in header(result.stdout)
    result = runner.invoke(app, ["compute", "-c", str(SPEC), "--wide"], env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.stderr
    assert header(result.stdout) == ["KPI", "cohort", "value", "n", "pending", "owner"]


def test_tables_and_markdown_show_the_label_and_json_keeps_the_name(
    bundled: tuple[ComputeResult, CompareResult],
) -> None:
    compute_result, compare_result = bundled
    label = "Task completion (not reopened in 24 h)"
    record = json.loads(to_json(compute_result))["results"][0]
    assert (record["kpi"], record["label"]) == ("task_completion_rate", label)
    compared = json.loads(compare_to_json(compare_result))["results"][0]
    assert (compared["kpi"], compared["label"]) == ("task_completion_rate", label)
    assert f"| {label} | all | 67.85 % |" in to_markdown(compute_result)
    assert f"| {label} | all | 59.88 % (n=329) |" in compare_to_markdown(compare_result)
    text = printed(render_table, compute_result, 140)
    assert f"│ {label} " in text and "task_completion_rate" not in text
    assert "task_completion_rate" not in printed(render_compare_table, compare_result, 200)


def test_a_label_is_escaped_where_it_lands(bundled: tuple[ComputeResult, CompareResult]) -> None:
    result = bundled[0]
    hostile = "[red]Cost[/red] | *per* task \x1b[2J"
    table = result.table.with_columns(pl.lit(hostile).alias("label"))
    marked = dataclasses.replace(result, table=table)
    markdown = to_markdown(marked)
    assert "| \\[red\\]Cost\\[/red\\] \\| \\*per\\* task \\\\x1b\\[2J | all |" in markdown
    text = printed(render_table, marked, 200)
    assert "[red]Cost[/red] | *per* task \\x1b[2J" in text and "\x1b" not in text


# ----------------------------------------------------------------------------------------------
# One dispatch: render(result, fmt) finds the writer of the result's kind in the format's module
# ----------------------------------------------------------------------------------------------


def test_every_output_format_is_a_registered_writer_and_a_cli_choice() -> None:
    from kpictl.cli import OutputFormat
    from kpictl.render.writers import FORMATS

    assert list(FORMATS) == [f.value for f in OutputFormat]
    assert all({"compute", "compare"} <= set(writers) for writers in FORMATS.values())


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_render_dispatches_to_the_formats_writer(
    bundled: tuple[ComputeResult, CompareResult], fmt: str
) -> None:
    from kpictl.render import csv, json, markdown
    from kpictl.render.writers import render_text

    compute, compare = bundled
    direct = {
        "table": (
            printed(render_table, compute, 240),
            printed(render_compare_table, compare, 240),
        ),
        "json": (json.to_json(compute), json.compare_to_json(compare)),
        "csv": (csv.to_csv(compute), csv.compare_to_csv(compare)),
        "markdown": (markdown.to_markdown(compute), markdown.compare_to_markdown(compare)),
    }[fmt]
    assert (render_text(compute, fmt), render_text(compare, fmt)) == direct


def test_a_format_without_a_writer_for_the_result_is_a_usage_error(
    bundled: tuple[ComputeResult, CompareResult],
) -> None:
    from kpictl.errors import UsageError
    from kpictl.render.writers import render_text

    with pytest.raises(UsageError, match=r"--format yaml: expected one of table, json, csv"):
        render_text(bundled[0], "yaml")
    with pytest.raises(TypeError, match="no writer renders a str"):
        render_text("text", "json")
