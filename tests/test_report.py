"""The scorecard (`kpictl report`): golden file, Markdown structure, numbers, redaction, CLI.

Golden files live in `tests/golden/`. They are compared after masking the run-specific rows of
the provenance table (`kpictl.scorecard.model.VOLATILE_PROVENANCE`: generated at, command,
versions), and
they are rewritten ONLY when the environment variable `KPICTL_UPDATE_GOLDEN=1` is set:

    KPICTL_UPDATE_GOLDEN=1 pytest tests/test_report.py -k golden
    git diff tests/golden/        # review every changed line before committing

Numbers are checked against independent sources: the tiles against `kpictl compare --format
json` / `kpictl compute --format json` (parsed from the text, not re-formatted with kpictl's
formatters), the ROI's cost sums against DuckDB SQL over the raw JSONL.
"""

from __future__ import annotations

import datetime as dt
import html as htmllib
import json
import os
import re
import sys
from contextlib import chdir
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token
from typer.testing import CliRunner

import kpictl
from kpictl.cli import app
from kpictl.redact import redact_pii
from kpictl.scorecard.lineage import kpi_inputs, proportion_condition
from kpictl.scorecard.markdown import (
    NBSP,
    format_p_text,
    format_time,
    nowrap,
    sparkline,
)
from kpictl.scorecard.model import VOLATILE_PROVENANCE
from kpictl.scorecard.report import ReportOptions, run_report

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = os.environ.get("KPICTL_UPDATE_GOLDEN") == "1"
SAMPLE_DATA = (
    str(ROOT / "sample_logs" / "events"),
    "--source",
    f"tool_calls={ROOT / 'sample_logs' / 'tool_calls'}",
    "--source",
    f"business_events={ROOT / 'sample_logs' / 'business_events'}",
)
runner = CliRunner()


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def run(*args: str, cwd: Path = ROOT) -> tuple[int, str, str]:
    with chdir(cwd):
        result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def mask(markdown: str) -> str:
    """Blank the provenance rows that change from run to run."""
    lines = []
    for line in markdown.splitlines():
        for item in VOLATILE_PROVENANCE:
            if line.startswith(f"| {item} |"):
                line = f"| {item} | <masked> |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def section(markdown: str, title: str) -> str:
    """The text of one `## title` section (up to the next `## `)."""
    start = markdown.index(f"\n## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else len(markdown)]


def parse(markdown: str) -> list[Token]:
    return MarkdownIt("commonmark").enable("table").parse(markdown)


def rendered_text(markdown: str) -> str:
    """What a reader sees: the rendered HTML's text."""
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    return htmllib.unescape(re.sub(r"<[^>]+>", "", html))


def tables(tokens: list[Token]) -> list[list[list[str]]]:
    """Every table as rows of cell texts (header row first)."""
    found: list[list[list[str]]] = []
    row: list[str] | None = None
    for index, token in enumerate(tokens):
        if token.type == "table_open":
            found.append([])
        elif token.type == "tr_open":
            row = []
        elif token.type in ("th_open", "td_open"):
            inline = tokens[index + 1]
            assert row is not None
            # numbers keep their units on one line with non-breaking spaces (test_formats_*)
            text = inline.content if inline.type == "inline" else ""
            row.append(text.replace(NBSP, " "))
        elif token.type == "tr_close":
            assert row is not None
            found[-1].append(row)
    return found


def kpi_named(shown: str, document: dict[str, Any]) -> str:
    """The KPI name of a row the report shows by its label (`label` in the JSON, else `kpi`)."""
    titles = {r["label"] or r["kpi"]: r["kpi"] for r in document["results"]}
    return titles[shown.replace("†", "").strip()]


def tile_rows(markdown: str) -> dict[str, dict[str, str]]:
    """The four tiles' rows by the KPI as shown (its label), parsed from the Markdown."""
    rows: dict[str, dict[str, str]] = {}
    for table in tables(parse(section(markdown, "At a glance"))):
        header = table[0]
        assert header == ["KPI", "current", "change vs baseline", "status"]
        for cells in table[1:]:
            record = dict(zip(header, cells, strict=True))
            rows[record["KPI"].replace("†", "").strip()] = record
    return rows


_NUMBER = re.compile(r"([+-]?)\$?([\d,]+(?:\.\d+)?)")


def number(text: str) -> tuple[float, float]:
    """(value, half a unit of its last printed digit) of the first number in `text`."""
    match = _NUMBER.search(text)
    assert match, text
    digits = match.group(2).replace(",", "")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    value = float(digits) * (-1 if match.group(1) == "-" else 1)
    return value, 0.5 * 10 ** (-decimals) + 1e-9


def assert_shows(cell: str, value: float | None, fmt: str) -> None:
    """The cell prints `value` (in the KPI's unit) rounded to the digits it shows."""
    if value is None:
        assert cell == "—"
        return
    shown, tolerance = number(cell)
    scale = 100.0 if fmt == "percent" else 1.0
    assert abs(shown - value * scale) <= tolerance, (cell, value)


def results_by_kpi(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["kpi"]: r for r in document["results"] if not r["cohort"] and "breakdown" not in r}


# ----------------------------------------------------------------------------------------------
# Runs shared by the tests (each costs one to five seconds)
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def holdout() -> tuple[int, str, str]:
    """`kpictl report --by channel --fail-on catastrophic` on the bundled sample."""
    return run("report", "--by", "channel", "--fail-on", "catastrophic")


@pytest.fixture(scope="module")
def compare_json() -> dict[str, Any]:
    code, out, err = run("compare", "--format", "json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def descriptive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The shipped spec without a default baseline and with a human cost per conversation."""
    folder = tmp_path_factory.mktemp("descriptive")
    text = SPEC.read_text(encoding="utf-8")
    assert "  baseline: holdout" in text and "  good_csat: 4" in text
    text = re.sub(r"\n  baseline: holdout[^\n]*", "", text)
    extra = "\n  human_cost_per_resolved_conversation: 6.5"
    text = text.replace("  good_csat: 4", "  good_csat: 4" + extra)
    spec = folder / "kpis.yaml"
    spec.write_text(text, encoding="utf-8")
    data = [
        str(ROOT / "sample_logs" / "events"),
        "--source",
        f"tool_calls={ROOT / 'sample_logs' / 'tool_calls'}",
        "--source",
        f"business_events={ROOT / 'sample_logs' / 'business_events'}",
        "-c",
        str(spec),
    ]
    code, out, err = run("report", *data, cwd=folder)
    code_json, out_json, err_json = run("compute", *data, "--format", "json", cwd=folder)
    assert code_json == 0, err_json
    return {"code": code, "out": out, "err": err, "compute": json.loads(out_json), "spec": spec}


# ----------------------------------------------------------------------------------------------
# Golden file
# ----------------------------------------------------------------------------------------------


def test_golden_scorecard_on_the_bundled_sample(holdout: tuple[int, str, str]) -> None:
    code, out, err = holdout
    assert code == 3, err
    golden = GOLDEN / "scorecard_sample.md"
    if UPDATE_GOLDEN:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(mask(out), encoding="utf-8")
    assert golden.exists(), "no golden file: run with KPICTL_UPDATE_GOLDEN=1 and review it"
    assert mask(out) == golden.read_text(encoding="utf-8")


def test_body_is_deterministic_and_only_provenance_is_volatile(
    holdout: tuple[int, str, str],
) -> None:
    _, first, _ = holdout
    _, second, _ = run("report", "--by", "channel", "--fail-on", "catastrophic")
    assert mask(first) == mask(second)
    generated = re.search(r"^\| generated at \| (\S+) \|$", first, re.MULTILINE)
    assert generated is not None
    body = first[: first.index("### Provenance")]
    assert generated.group(1)[:13] not in body  # no run timestamp outside the appendix


# ----------------------------------------------------------------------------------------------
# Markdown structure
# ----------------------------------------------------------------------------------------------


def assert_well_formed(markdown: str) -> list[Token]:
    tokens = parse(markdown)
    found = tables(tokens)
    separators = [line for line in markdown.splitlines() if re.match(r"^\| (---:?|:?---)", line)]
    assert len(found) == len(separators), "a table did not parse as a table"
    for table in found:
        widths = {len(row) for row in table}
        assert len(widths) == 1, table
    pipe_lines = [line for line in markdown.splitlines() if line.startswith("|")]
    for line in pipe_lines:  # the raw text, too: escaped pipes never split a cell
        cells = re.split(r"(?<!\\)\|", line)[1:-1]
        assert cells, line
    return tokens


def test_every_table_has_consistent_columns(holdout: tuple[int, str, str]) -> None:
    _, out, _ = holdout
    assert_well_formed(out)
    headings = [line for line in out.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Is the agent worth it?",
        "## What changed",
        "## Needs action",
        "## At a glance",
        "## KPIs",
        "## Trends",
        "## Breakdowns",
        "## ROI",
        "## Data quality",
        "## Drill-down",
        "## Method and provenance",
    ]
    assert out.startswith("# Agent scorecard\n")


def test_charts_are_written_and_linked_relative_to_the_output(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    output = tmp_path / "reports" / "scorecard.md"
    code, out, err = run(
        "report",
        "-c",
        str(SPEC),
        "--charts",
        str(tmp_path / "charts"),
        "--output",
        str(output),
        "--title",
        "Weekly agent review",
    )
    assert code == 0, err
    assert out == ""  # everything went to the file
    markdown = output.read_text(encoding="utf-8")
    assert markdown.startswith("# Weekly agent review\n")
    tokens = assert_well_formed(markdown)
    images = [
        child
        for token in tokens
        if token.type == "inline"
        for child in token.children or []
        if child.type == "image"
    ]
    charts = [str(image.attrGet("src")) for image in images]
    spec = kpictl.load_spec(SPEC)
    assert len(charts) == len(spec.kpis)
    # shown in the document (not linked), titled in plain words, under the Trends section
    assert images[0].content == (
        f"{spec.kpis['task_completion_rate'].label}: treatment arm (arm = 'treatment'), per day"
    )
    assert markdown.index("![") > markdown.index("\n## Trends\n")
    for link in charts:
        assert not Path(link).is_absolute() and link.startswith("../charts/")
        target = output.parent / link
        assert target.exists() and target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "kpictl: wrote" in err


def test_charts_without_matplotlib_say_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    code, out, err = run("report", "--charts", str(tmp_path / "charts"))
    assert code == 2
    assert out == ""
    assert err.strip() == ("kpictl: error: --charts needs matplotlib: pip install 'kpictl[charts]'")


# ----------------------------------------------------------------------------------------------
# Numbers: every tile equals the compare / compute JSON
# ----------------------------------------------------------------------------------------------


def test_tiles_equal_the_compare_json(
    holdout: tuple[int, str, str], compare_json: dict[str, Any]
) -> None:
    _, out, _ = holdout
    tiles = {kpi_named(k, compare_json): v for k, v in tile_rows(out).items()}
    expected = results_by_kpi(compare_json)
    assert list(tiles) == list(expected)
    for kpi, record in expected.items():
        cells, fmt = tiles[kpi], record["format"]
        assert_shows(cells["current"], record["current"]["value"], fmt)
        change = cells["change vs baseline"]
        if record["delta"] is None:
            assert change == "—"
        else:
            assert_shows(change, record["delta"], fmt)
            relative = re.search(r"\(([+-][\d.,]+) %\)", change)
            assert (
                relative
                and abs(float(relative.group(1)) - record["relative_delta"] * 100) <= 0.05 + 1e-9
            )
            assert change.endswith(", n.s.") == (not record["significant"])
        status = cells["status"].strip("*").split(" (")[0].replace(" ", "_")
        assert status == record["status"]
        if record["threshold"]:
            assert f"({record['threshold']})" in cells["status"]


def test_kpi_table_matches_the_compare_json(
    holdout: tuple[int, str, str], compare_json: dict[str, Any]
) -> None:
    _, out, _ = holdout
    table = tables(parse(section(out, "KPIs")))[0]
    header = table[0]
    expected = results_by_kpi(compare_json)
    for cells in table[1:]:
        row = dict(zip(header, cells, strict=True))
        record = expected[kpi_named(row["KPI"], compare_json)]
        fmt = record["format"]
        assert_shows(row["baseline"], record["baseline"]["value"], fmt)
        assert f"(n={record['baseline']['n']:,})" in row["baseline"]
        assert f"(n={record['current']['n']:,})" in row["current"]
        low, high = re.findall(r"\[(.+), (.+)\]", row["Δ [CI]"])[0]
        assert_shows(low, record["delta_ci"][0], fmt)
        assert_shows(high, record["delta_ci"][1], fmt)
        if record["p_adjusted"] < 0.001:
            assert row["p adj."] == "< 0.001"
        else:
            assert re.fullmatch(r"\d\.\d{3}", row["p adj."]), row["p adj."]
            assert_shows(row["p adj."], record["p_adjusted"], "number")
        assert row["test"] == record["test"]
        assert row["owner"] == record["owner"]  # owners live in the KPI table, not the tiles


# ----------------------------------------------------------------------------------------------
# The top of the scorecard: the money, what changed, what needs action (issue 14, CFO first)
# ----------------------------------------------------------------------------------------------


def change_groups(document: dict[str, Any]) -> dict[str, list[str]]:
    """better / worse / unchanged / not judged from compare's JSON alone: a change counts when
    it is significant after the correction, better or worse by the KPI's direction."""
    groups: dict[str, list[str]] = {"better": [], "worse": [], "unchanged": [], "not judged": []}
    for kpi, record in results_by_kpi(document).items():
        untested = record["status"] in ("insufficient_data", "unavailable", "not_testable")
        if untested or record["delta"] is None:
            kind = "not judged"
        elif not record["significant"]:
            kind = "unchanged"
        elif (record["delta"] > 0) == (record["direction"] == "higher"):
            kind = "better"
        else:
            kind = "worse"
        groups[kind].append(record["label"] or kpi)
    return groups


def test_the_top_answers_the_money_then_changes_then_actions(
    holdout: tuple[int, str, str], compare_json: dict[str, Any]
) -> None:
    _, out, _ = holdout
    top = out[: out.index("\n## At a glance\n")]
    assert [line for line in top.splitlines() if line.startswith("## ")] == [
        "## Is the agent worth it?",
        "## What changed",
        "## Needs action",
    ]
    assert "owner" not in top.split("## Needs action")[0]  # owners: Needs action and KPI table
    worth = section(out, "Is the agent worth it?").replace(NBSP, " ").splitlines()
    assert [line.split(":**")[0] for line in worth if line.startswith("- **")] == [
        "- **Saving",
        "- **Cost per completed task",
        "- **Design",
    ]
    # the saving is the ROI section's estimate, with its interval
    estimated = re.search(
        r"- Estimated saving = .* = \*\*(\$[\d,.]+)\*\* \[(\$[\d,.]+), (\$[\d,.]+)\]",
        section(out, "ROI"),
    )
    assert estimated is not None
    saving = next(line for line in worth if line.startswith("- **Saving:**"))
    low_high = f"[{estimated.group(2)}, {estimated.group(3)}] (95 % CI)"
    assert f"- **Saving:** **{estimated.group(1)}** {low_high}" in saving
    # as the KPI cost_per_task the same difference is not significant (p adj. 0.056): said so
    assert "Indicative, not established: as the KPI `cost_per_task`" in saving
    record = results_by_kpi(compare_json)["cost_per_successful_task"]
    success = next(line for line in worth if line.startswith("- **Cost per completed task:**"))
    current, rest = success.removeprefix("- **Cost per completed task:** ").split(" against ")
    assert_shows(current, record["current"]["value"], "usd")
    assert_shows(rest, record["baseline"]["value"], "usd")
    assert record["significant"] and ", significant after the correction (p adj. = " in success
    assert (
        "- **Design:** randomized holdout, so the difference is a causal estimate for this "
        "period's traffic."
    ) in worth


def test_what_changed_counts_each_kind_as_the_compare_json_does(
    holdout: tuple[int, str, str], compare_json: dict[str, Any]
) -> None:
    _, out, _ = holdout
    groups = change_groups(compare_json)
    # by hand on the bundled sample: 6 significant improvements, none worse, csat too small
    # (the three business-outcome KPIs are among the unchanged: not significant after Holm)
    assert [len(groups[kind]) for kind in groups] == [6, 0, 12, 1]
    text = section(out, "What changed").replace(NBSP, " ")
    assert (
        f"Against the baseline, 19 KPIs: {len(groups['better'])} better, "
        f"{len(groups['worse'])} worse, {len(groups['unchanged'])} unchanged, "
        f"{len(groups['not judged'])} not judged. A change counts when it is significant at "
        "α = 0.05 after holm correction over the KPI tests."
    ) in text
    for kind, names in groups.items():
        prefix = f"- **{kind.capitalize()} ({len(names)}):** "
        line = next(line for line in text.splitlines() if line.startswith(prefix))
        items = line.removeprefix(prefix).removesuffix(".").removeprefix("insufficient data: ")
        shown = [item.replace(" †", "") for item in items.split("; ")] if names else []
        if kind == "better":  # each with its change, as in the tiles
            shown = [re.sub(r" [+-][$\d].*$", "", item) for item in shown]
        assert shown == names, (kind, shown)


def test_needs_action_lists_breached_thresholds_worst_first_with_owners(
    holdout: tuple[int, str, str], compare_json: dict[str, Any]
) -> None:
    _, out, _ = holdout
    table = tables(parse(section(out, "Needs action")))[0]
    assert table[0] == ["KPI", "current", "threshold breached", "owner"]
    levels = ["warning", "critical", "catastrophic"]
    breached = sorted(
        (r for r in results_by_kpi(compare_json).values() if r["status"] in levels),
        key=lambda r: -levels.index(r["status"]),
    )
    assert [(row[0], row[3]) for row in table[1:]] == [
        (r["label"] or r["kpi"], r["owner"]) for r in breached
    ]
    assert table[1] == [
        "Conversations with a policy violation",
        "1.39 %",
        "**catastrophic (> 1%)**",
        "trust-safety@acme.example",
    ]


def test_numbers_never_wrap_times_read_utc_and_p_values_read_p_lt(
    holdout: tuple[int, str, str], compare_json: dict[str, Any]
) -> None:
    _, out, _ = holdout
    lines = out.splitlines()
    checked = 0
    for index, line in enumerate(lines):
        if not re.match(r"^\| (---:?|:?---)", line):
            continue
        right = [mark.strip() == "---:" for mark in line.strip("|").split("|")]
        for row in lines[index + 1 :]:
            if not row.startswith("|"):
                break
            for cell, is_number in zip(re.split(r"(?<!\\)\|", row)[1:-1], right, strict=True):
                if is_number:
                    assert " " not in cell.strip(), cell  # NBSP only: one line per number
                    checked += 1
    assert checked > 200
    assert "| +9.63\u00a0pp\u00a0[+3.86\u00a0pp,\u00a0+15.41\u00a0pp] |" in out
    as_of = dt.datetime.fromisoformat(compare_json["current"]["window"]["as_of"])
    assert f"- **As of:** {as_of:%Y-%m-%d %H:%M} UTC\n" in out
    assert "- **As of:** 2026-10-30 23:56 UTC\n" in out
    before_provenance = out[: out.index("### Provenance")]
    assert not re.search(r"\d\d:\d\d:\d\dZ", before_provenance)  # no ISO time left
    # containment_with_quality: p adj. 0.0001 in the JSON; the saving's Welch p 0.0056
    assert compare_json["results"][2]["p_adjusted"] < 0.001
    assert "| <\u00a00.001 |" in out
    assert "; p = 0.006." in section(out, "Is the agent worth it?")


def test_time_and_p_value_formats() -> None:
    assert format_time(dt.datetime(2026, 3, 1, 0, 17, 59, tzinfo=dt.UTC)) == "2026-03-01 00:17 UTC"
    paris = dt.timezone(dt.timedelta(hours=1))
    assert format_time(dt.datetime(2026, 3, 1, 1, 17, tzinfo=paris)) == "2026-03-01 00:17 UTC"
    assert format_time(None) is None
    assert format_p_text(0.0004) == "p < 0.001"
    assert format_p_text(0.001) == "p = 0.001"
    assert format_p_text(0.01467, "p adj.") == "p adj. = 0.015"
    assert nowrap("1,037.1 s (-20.4 %)") == "1,037.1\u00a0s\u00a0(-20.4\u00a0%)"


def test_descriptive_top_says_nothing_is_compared(descriptive: dict[str, Any]) -> None:
    out = descriptive["out"]
    worth = section(out, "Is the agent worth it?").replace(NBSP, " ")
    assert "- **Not answered:** there is no baseline to compare with" in worth
    assert "- **Run cost of the period:** $" in worth
    changes = section(out, "What changed")
    kpis = len(results_by_kpi(descriptive["compute"]))
    assert f"Nothing is compared: there is no baseline. Of the {kpis} KPIs, " in changes
    assert ", 1 beyond a bound (see Needs action)" in changes  # policy_violation_rate > 1%
    table = tables(parse(section(out, "Needs action")))[0]
    assert [row[0] for row in table[1:]] == ["Conversations with a policy violation"]


def test_descriptive_tiles_equal_the_compute_json(descriptive: dict[str, Any]) -> None:
    assert descriptive["code"] == 0, descriptive["err"]
    out = descriptive["out"]
    assert "- **Baseline:** none" in out
    tiles = {kpi_named(k, descriptive["compute"]): v for k, v in tile_rows(out).items()}
    expected = results_by_kpi(descriptive["compute"])
    assert list(tiles) == list(expected)
    for kpi, record in expected.items():
        assert_shows(tiles[kpi]["current"], record["value"], record["format"])
        assert tiles[kpi]["change vs baseline"] == "—"
    # without a baseline only the absolute bound can be judged
    assert tiles["policy_violation_rate"]["status"] == "**catastrophic (> 1%)**"
    assert tiles["task_completion_rate"]["status"] == "not judged"


def test_trend_sparklines_follow_the_daily_compute(holdout: tuple[int, str, str]) -> None:
    _, out, _ = holdout
    code, raw, err = run(
        "compute",
        "--grain",
        "day",
        "--kpi",
        "task_completion_rate",
        "--where",
        "arm = 'treatment'",
        "--format",
        "json",
    )
    assert code == 0, err
    buckets = sorted(
        (r["cohort"]["bucket"], r["value"])
        for r in json.loads(raw)["results"]
        if r["cohort"].get("bucket") and "breakdown" not in r
    )
    row = next(
        line
        for line in section(out, "Trends").splitlines()
        if line.startswith("| task_completion_rate |")
    )
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1] == sparkline([v for _, v in buckets])
    present = [v for _, v in buckets if v is not None]
    assert_shows(cells[2], present[0], "percent")
    assert_shows(cells[3], present[-1], "percent")
    assert_shows(cells[4], min(present), "percent")
    assert_shows(cells[5], max(present), "percent")


def test_kpi_inputs_trace_through_derive_and_rollup_entries() -> None:
    spec = kpictl.load_spec(SPEC)
    columns = {
        "events": {"conversation_id", "ts", "event", "cost_usd", "human_minutes", "role"},
        "tool_calls": {"conversation_id", "ts", "cost_usd", "status"},
    }
    inputs, entries = kpi_inputs(spec, spec.kpis["cost_per_task"], columns)
    assert {("events", "cost_usd"), ("tool_calls", "cost_usd"), ("events", "human_minutes")} <= (
        inputs
    )
    assert ("conversations.cost_usd", spec.tables["conversations"].derive[3].sql, "derive") in (
        entries
    )
    inputs, _ = kpi_inputs(spec, spec.kpis["tool_call_success_rate"], columns)
    assert inputs == {("tool_calls", "status")}


@pytest.mark.parametrize(
    ("numerator", "denominator", "condition"),
    [
        ("COUNT(*) FILTER (WHERE escalated)", "COUNT(*)", "escalated"),
        # a multi-line condition is the condition's tree as one line of polars SQL
        (
            "count(*) filter (where channel = 'web'\n  AND completed)",
            "count(*)",
            "channel = 'web' AND completed",
        ),
        ("COUNT(*) FILTER (WHERE completed)", "COUNT(*) -- every one", "completed"),
        # the text scanner took "escalated) + COUNT(*) FILTER (WHERE completed" as the
        # condition of this sum of two counts: it is not a share of conversations
        (
            "COUNT(*) FILTER (WHERE escalated) + COUNT(*) FILTER (WHERE completed)",
            "COUNT(*)",
            None,
        ),
        ("COUNT(user_id) FILTER (WHERE escalated)", "COUNT(*)", None),  # nulls not counted
        ("COUNT(*) FILTER (WHERE escalated)", "COUNT(DISTINCT user_id)", None),
    ],
)
def test_the_share_condition_is_read_from_the_tree(
    tmp_path: Path, numerator: str, denominator: str, condition: str | None
) -> None:
    text = SPEC.read_text(encoding="utf-8").rstrip("\n") + (
        f"\n  probe:\n    over: conversations\n    numerator: {json.dumps(numerator)}"
        f"\n    denominator: {json.dumps(denominator)}\n"
    )
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    spec = kpictl.load_spec(path)
    assert proportion_condition(spec, spec.kpis["probe"]) == condition


def test_sparkline() -> None:
    assert sparkline([0.0, 1.0, 0.5, None]) == "▁█▅·"
    assert sparkline([2.0, 2.0]) == "▄▄"
    assert sparkline([None, None]) == "··"


def test_roi_cost_sums_match_sql_over_the_raw_logs(
    holdout: tuple[int, str, str], compare_json: dict[str, Any]
) -> None:
    _, out, _ = holdout
    events = str(ROOT / "sample_logs" / "events" / "events.jsonl")
    calls = str(ROOT / "sample_logs" / "tool_calls" / "tool_calls.jsonl")
    con = duckdb.connect()
    llm, minutes = con.execute(
        f"SELECT SUM(cost_usd), SUM(human_minutes) FROM read_json_auto('{events}') "
        "WHERE arm = 'treatment'"
    ).fetchall()[0]
    (tools,) = con.execute(
        f"SELECT SUM(t.cost_usd) FROM read_json_auto('{calls}') t WHERE t.conversation_id IN "
        f"(SELECT conversation_id FROM read_json_auto('{events}') WHERE arm = 'treatment')"
    ).fetchall()[0]
    llm, minutes, tools = float(llm), float(minutes), float(tools)
    roi = section(out, "ROI")
    rows = {cells[0]: cells for cells in tables(parse(roi))[0][1:]}
    assert_shows(rows["LLM cost"][1], llm, "usd")
    assert_shows(rows["tool cost"][1], tools, "usd")
    assert_shows(rows["agent run cost"][1], llm + tools, "usd")
    assert_shows(rows["human minutes"][1], minutes, "number")
    assert_shows(rows["human cost"][1], minutes * 0.75, "usd")
    # the per-conversation difference is the spec's cost_per_task KPI, tested the same way
    cost = results_by_kpi(compare_json)["cost_per_task"]
    line = next(line for line in roi.splitlines() if line.startswith("- Cost per conversation"))
    delta_text = line.split("Δ = ")[1]
    assert_shows(delta_text, cost["delta"], "usd")
    saving = next(line for line in roi.splitlines() if line.startswith("- Estimated saving"))
    conversations = cost["current"]["n"]
    assert_shows(saving.split("**")[1], -cost["delta"] * conversations, "usd")
    assert "not significant** there" in roi  # cost_per_task is n.s. after Holm: say so
    assert (
        "Not estimated: the spec declares no `params.human_cost_per_resolved_conversation`" in roi
    )


def test_arm_costs_come_from_the_facts_group_by_and_equal_sql_per_conversation() -> None:
    """The report's per-conversation costs are hidden rollup entries of the unit table
    (`cost_entries`: the facts' own group-by of each source takes them, no group-by of their
    own): each arm's costs per conversation equal those computed from the sources alone
    (`conversation_costs`) and DuckDB SQL over the raw logs."""
    from kpictl.engine.costs import (
        Slice,
        conversation_costs,
        cost_entries,
        facts_costs,
        slice_facts,
        with_rollup_entries,
    )
    from kpictl.engine.interface import ComputeOptions
    from kpictl.engine.polarsengine import PolarsEngine
    from kpictl.engine.window import resolve_window

    with chdir(ROOT):
        spec = kpictl.load_spec(SPEC)
        sources = kpictl.load_sources(spec, cache=False)
    window = resolve_window(spec, sources, ComputeOptions())
    entries = cost_entries(spec, sources)
    assert [(e.source, e.sql) for e in entries] == [
        ("events", "TOTAL(cost_usd)"),
        ("tool_calls", "TOTAL(cost_usd)"),
        ("events", "TOTAL(human_minutes)"),
    ]
    wider = with_rollup_entries(spec, [(e, pl.Float64()) for e in entries])
    built = PolarsEngine().build_facts(wider, sources, window, ["conversations"])
    events = str(ROOT / "sample_logs" / "events" / "events.jsonl")
    calls = str(ROOT / "sample_logs" / "tool_calls" / "tool_calls.jsonl")
    con = duckdb.connect()
    for arm in ("treatment", "holdout"):
        piece = Slice(arm, sources, window, f"arm = '{arm}'", facts=built)
        frame = slice_facts(spec, piece)
        shared = facts_costs(spec, frame, entries)
        assert shared is not None
        shared = shared.sort("conversation_id")
        alone = conversation_costs(spec, piece, frame.select("conversation_id"))
        assert shared.columns == alone.columns
        alone = alone.sort("conversation_id")
        assert shared["conversation_id"].equals(alone["conversation_id"])
        for column in shared.columns[1:]:
            assert shared[column].to_list() == pytest.approx(alone[column].to_list(), rel=1e-12)
        want = con.execute(
            f"""
            WITH e AS (SELECT conversation_id, SUM(cost_usd) AS llm, SUM(human_minutes) AS h,
                              MIN(arm) AS arm
                       FROM read_json_auto('{events}') GROUP BY 1),
                 t AS (SELECT conversation_id, SUM(cost_usd) AS tool
                       FROM read_json_auto('{calls}') GROUP BY 1)
            SELECT e.conversation_id, COALESCE(llm, 0), COALESCE(tool, 0), COALESCE(h, 0),
                   COALESCE(llm, 0) + COALESCE(tool, 0) + COALESCE(h, 0) * 0.75
            FROM e LEFT JOIN t USING (conversation_id) WHERE e.arm = '{arm}' ORDER BY 1
            """
        ).fetchall()
        assert len(want) == shared.height > 100
        for got, row in zip(shared.iter_rows(), want, strict=True):
            assert got[0] == row[0]
            assert got[1:] == pytest.approx(row[1:], rel=1e-12, abs=1e-12)
    # facts built without the entries: None (the report then reads the sources)
    plain = slice_facts(spec, Slice("all", sources, window))
    assert facts_costs(spec, plain, entries) is None


def test_roi_against_humans_uses_only_the_declared_param(descriptive: dict[str, Any]) -> None:
    out = descriptive["out"]
    roi = section(out, "ROI")
    spec = kpictl.load_spec(descriptive["spec"])
    sources = kpictl.load_sources(
        spec,
        {
            "events": [ROOT / "sample_logs" / "events"],
            "tool_calls": [ROOT / "sample_logs" / "tool_calls"],
        },
    )
    facts = kpictl.facts(spec, sources)
    alone = facts.filter(pl.col("completed") & pl.col("contained") & pl.col("settled")).height
    run_cost = float(facts.select(pl.col("llm_cost").sum() + pl.col("tool_cost").sum()).item())
    assert f"- Conversations the agent resolved alone: {alone:,} " in roi
    avoided_line = next(line for line in roi.splitlines() if line.startswith("- Human cost"))
    assert_shows(avoided_line.split(" = ")[-1], alone * 6.5, "usd")
    saving_line = next(line for line in roi.splitlines() if line.startswith("- Saving"))
    assert_shows(saving_line.split("**")[1], alone * 6.5 - run_cost, "usd")
    assert "Not estimated: there is no baseline arm" in roi
    # the run cost is a sliver of the saving: the ratio is stated with its inputs, not headlined
    saving = alone * 6.5 - run_cost
    roi_line = next(line for line in roi.splitlines() if line.startswith("- ROI"))
    assert roi_line == (
        f"- ROI is not a useful headline here: saving ÷ agent run cost = ${saving:,.2f} ÷ "
        f"${run_cost:,.2f} = {saving / run_cost * 100:,.0f} %, because the run cost is only "
        f"{run_cost / saving * 100:.1f} % of the saving. Judge the change by the saving and its "
        "interval, not by this ratio."
    )


def test_an_roi_of_ordinary_size_is_the_headline(tmp_path: Path) -> None:
    """Human cost $0.05 per conversation resolved alone: saving ≈ 2 × run cost, ROI ≈ 200 %."""
    text = SPEC.read_text(encoding="utf-8").replace(
        "  good_csat: 4", "  good_csat: 4\n  human_cost_per_resolved_conversation: 0.05"
    )
    spec_path = tmp_path / "kpis.yaml"
    spec_path.write_text(text, encoding="utf-8")
    code, out, err = run("report", *SAMPLE_DATA, "-c", str(spec_path))
    assert code == 0, err
    spec = kpictl.load_spec(spec_path)
    facts = kpictl.facts(
        spec,
        kpictl.load_sources(
            spec,
            {
                "events": [ROOT / "sample_logs" / "events"],
                "tool_calls": [ROOT / "sample_logs" / "tool_calls"],
            },
        ),
    )
    treatment = facts.filter(pl.col("arm") == "treatment")
    alone = treatment.filter(pl.col("completed") & pl.col("contained") & pl.col("settled")).height
    run_cost = float(treatment.select(pl.col("llm_cost").sum() + pl.col("tool_cost").sum()).item())
    saving = alone * 0.05 - run_cost
    humans = out.split("### Saving against a human-only process")[1]
    assert 1 < saving / run_cost < 10
    assert (
        f"- ROI = saving ÷ agent run cost = ${saving:,.2f} ÷ ${run_cost:,.2f} = "
        f"**{saving / run_cost * 100:,.0f} %**.\n"
    ) in humans


def test_arms_not_declared_randomized_are_observational_in_header_and_roi(tmp_path: Path) -> None:
    """agent_version v2 against v1 (a gradual rollout): no "randomized holdout", no SRM, no
    causal saving, and a 4,866 % ROI that only says the run cost is small."""
    text = SPEC.read_text(encoding="utf-8").replace(
        "  prior_4w: {previous: 28d}\n",
        "  prior_4w: {previous: 28d}\n"
        "  v2_vs_v1: {control: \"agent_version = 'v1'\", treatment: \"agent_version = 'v2'\"}\n",
    )
    spec_path = tmp_path / "kpis.yaml"
    spec_path.write_text(text, encoding="utf-8")
    code, out, err = run("report", *SAMPLE_DATA, "-c", str(spec_path), "--baseline", "v2_vs_v1")
    assert code == 0, err
    caveat = (
        "not randomized (the baseline does not declare `design: randomized`): traffic mix and "
        "time differ between the arms, so differences are associations, not causal effects"
    )
    events = str(ROOT / "sample_logs" / "events" / "events.jsonl")
    calls = str(ROOT / "sample_logs" / "tool_calls" / "tool_calls.jsonl")
    con = duckdb.connect()
    arms = dict(
        con.execute(
            "SELECT agent_version, COUNT(DISTINCT conversation_id) "
            f"FROM read_json_auto('{events}') "
            "GROUP BY 1"
        ).fetchall()
    )
    header = out.split("\n## ")[0]
    assert (
        "- **Baseline:** `v2_vs_v1` — observational comparison of two concurrent conditions "
        "(not randomized)\n"
        f"- **Compared:** current = `agent_version = 'v2'` ({arms['v2']:,} conversations), "
        f"baseline = `agent_version = 'v1'` ({arms['v1']:,} conversations)\n"
    ) in header
    # the design's caveat: in the money answer at the top and in the method appendix
    worth = section(out, "Is the agent worth it?")
    assert f"- **Design:** observational — {caveat}; this is not a causal saving.\n" in worth
    assert (
        "- Design: `v2_vs_v1`, observational comparison of two concurrent conditions (not "
        f"randomized); current = `agent_version = 'v2'` ({arms['v2']:,} conversations), "
        f"baseline = `agent_version = 'v1'` ({arms['v1']:,} conversations); {caveat}.\n"
    ) in section(out, "Method and provenance")
    assert "randomized holdout" not in out and "sample ratio" not in out
    assert "causal estimate" not in out
    (llm,) = con.execute(
        f"SELECT SUM(cost_usd) FROM read_json_auto('{events}') WHERE agent_version = 'v2'"
    ).fetchall()[0]
    (tools,) = con.execute(
        f"SELECT SUM(t.cost_usd) FROM read_json_auto('{calls}') t WHERE t.conversation_id IN "
        f"(SELECT conversation_id FROM read_json_auto('{events}') WHERE agent_version = 'v2')"
    ).fetchall()[0]
    run_cost = float(llm) + float(tools)
    roi = section(out, "ROI")
    saving_line = next(line for line in roi.splitlines() if line.startswith("- Estimated saving"))
    saving_text = saving_line.split("**")[1]
    saving = number(saving_text)[0]
    assert roi.count("- ROI") == 1
    assert (
        f"- ROI is not a useful headline here: saving ÷ agent run cost = {saving_text} ÷ "
        f"${run_cost:,.2f} = "
    ) in roi
    assert (
        f"because the run cost is only {run_cost / saving * 100:.1f} % of the saving. Judge the "
        "change by the saving and its interval, not by this ratio.\n"
    ) in roi
    assert f"- Design: observational — {caveat}; this is not a causal saving.\n" in roi
    assert f"- Observational comparison: {caveat}.\n" in out


# ----------------------------------------------------------------------------------------------
# Redaction
# ----------------------------------------------------------------------------------------------

REDACTION_CASES = [
    (
        "Hi, I'm Jane Roe, jane.roe+billing@example.co.uk - please call me on +44 20 7946 0958. "
        "Order #4412873 for €49.90.",
        "Hi, I'm Jane Roe, [email] - please call me on [phone]. Order #4412873 for €49.90.",
    ),
    (
        "My card 4111 1111 1111 1111 was charged twice ($1,299.99) on 2026-10-01; reach me at "
        "(415) 555-0123.",
        "My card [card] was charged twice ($1,299.99) on 2026-10-01; reach me at [phone].",
    ),
    (
        "Card number 5500-0000-0000-0004, phone 415.555.0199, invoice INV-2026-0042.",
        "Card number [card], phone [phone], invoice INV-2026-0042.",
    ),
    (
        "Amex 3782 822463 10005 and mobile 0171 1234567; tracking 1Z999AA10123456784.",
        "Amex [card] and mobile [phone]; tracking 1Z999AA10123456784.",
    ),
    (
        "call me on 4155550123 or email J.Doe@Mail.Example.ORG, ticket 12345678, version 2.14.3",
        "call me on [phone] or email [email], ticket 12345678, version 2.14.3",
    ),
    (
        "card 6011000990139424 expired; reference 1234567890123456 is not a card; order 9876543210",
        "card [card] expired; reference 1234567890123456 is not a card; order 9876543210",
    ),
    (
        "Berlin: +49 (0)30 1234 5678, Paris +33 1 23 45 67 89, US 415-555-0142 at 10:30.",
        "Berlin: [phone], Paris [phone], US [phone] at 10:30.",
    ),
    (
        "Why is my invoice higher than usual? My number is +1 415 555 0159.",
        "Why is my invoice higher than usual? My number is [phone].",
    ),
    (
        "Order #546076 of 3 items, $12.50 each, shipped 2026-10-03 10:15, error 500.",
        "Order #546076 of 3 items, $12.50 each, shipped 2026-10-03 10:15, error 500.",
    ),
]


@pytest.mark.parametrize(("text", "expected"), REDACTION_CASES)
def test_redact_pii(text: str, expected: str) -> None:
    assert redact_pii(text) == expected


PII_MESSAGES = [case[0] for case in REDACTION_CASES[:7]]
RAW_PII = [
    "jane.roe+billing@example.co.uk",
    "+44 20 7946 0958",
    "4111 1111 1111 1111",
    "(415) 555-0123",
    "5500-0000-0000-0004",
    "415.555.0199",
    "3782 822463 10005",
    "0171 1234567",
    "4155550123",
    "Mail.Example.ORG",
    "6011000990139424",
    "1234 5678",
    "415-555-0142",
]
KEPT = [
    "Order #4412873",
    "$1,299.99",
    "INV-2026-0042",
    "1Z999AA10123456784",
    "12345678",
    "2.14.3",
    "1234567890123456",
]


@pytest.fixture()
def pii_logs(tmp_path: Path) -> Path:
    """Seven failed conversations whose first user message carries realistic PII."""
    events, calls = [], []
    for index, message in enumerate(PII_MESSAGES):
        conversation = f"p{index}"
        day = f"2026-10-0{index + 1}"
        common = {
            "conversation_id": conversation,
            "user_id": f"u{index}",
            "channel": "web",
            "intent": "billing",
            "arm": "treatment",
        }
        events += [
            {
                **common,
                "ts": f"{day}T09:00:00Z",
                "event": "message",
                "role": "user",
                "text": message,
            },
            {
                **common,
                "ts": f"{day}T09:00:05Z",
                "event": "message",
                "role": "agent",
                "text": "Let me check.",
                "cost_usd": 0.01,
                "input_tokens": 100,
                "output_tokens": 20,
                "latency_ms": 900.0,
                "policy_violation": False,
                "human_minutes": 0.0,  # else containment is unavailable, with no drill-down
            },
            {
                **common,
                "ts": f"{day}T09:01:00Z",
                "event": "message",
                "role": "user",
                "text": "Also my backup e-mail is other.person@example.net",
            },
        ]
        calls.append(
            {
                "conversation_id": conversation,
                "ts": f"{day}T09:00:03Z",
                "tool": "lookup",
                "status": "ok",
                "cost_usd": 0.001,
            }
        )
    events.append(
        {
            "conversation_id": "late",
            "ts": "2026-10-20T00:00:00Z",
            "event": "message",
            "role": "user",
            "text": "hello",
            "arm": "treatment",
        }
    )
    for name, rows in (("events", events), ("tool_calls", calls)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_drilldown_redacts_the_first_user_message(pii_logs: Path) -> None:
    spec = kpictl.load_spec(SPEC)
    sources = kpictl.load_sources(
        spec, {"events": [pii_logs / "events"], "tool_calls": [pii_logs / "tool_calls"]}
    )
    result = run_report(spec, sources, ReportOptions(baseline=None, drilldown=10))
    drill = section(result.markdown, "Drill-down")
    for raw in RAW_PII:
        assert raw not in result.markdown, raw
    shown = rendered_text(drill)  # data values are escaped in the Markdown source
    for kept in KEPT:
        assert kept in shown, kept
    assert shown.count("[email]") >= 2 and "[card]" in shown and "[phone]" in shown
    assert "other.person" not in drill  # only the first user message is shown
    assert_well_formed(result.markdown)


def test_drilldown_cohorts_no_kpi_reads_are_the_facts_values_of_the_rows_shown() -> None:
    """The report's unit table holds only the attributes its KPIs and --by read; the
    drill-down looks the others up for the conversations it shows: every cohort value shown
    is the value `kpictl.facts` (every attribute, rolled up and checked) has for that row."""
    from kpictl.scorecard.gather import gather_report

    with chdir(ROOT):
        spec = kpictl.load_spec(SPEC)
        sources = kpictl.load_sources(spec, cache=False)
    data = gather_report(spec, sources, ReportOptions(by=("channel",), drilldown=5))
    assert data.current.facts is not None
    built = data.current.facts.reads["conversations"]
    assert built is not None and "channel" in built and "region" not in built
    every = kpictl.facts(spec, sources)
    by_id = {row["conversation_id"]: row for row in every.iter_rows(named=True)}
    shown = 0
    for group in data.drilldown:
        for row in group["rows"]:
            for column in spec.defaults.cohorts:
                assert row[column] == by_id[row["conversation_id"]][column], column
            shown += 1
    assert shown > 20


def test_drilldown_refuses_an_attribute_that_varies_in_a_row_it_shows(tmp_path: Path) -> None:
    """An attribute no KPI reads is not rolled up, but one the drill-down shows is checked on
    the rows it shows: varying within a conversation is the facts' error, never a value
    picked at random."""
    events = pl.read_ndjson(ROOT / "sample_logs" / "events" / "events.jsonl")
    events = events.with_columns(
        pl.when(pl.col("event") == "message")
        .then(pl.lit("mars"))
        .otherwise("region")
        .alias("region")
    )
    spec = kpictl.load_spec(SPEC)
    calls = pl.read_ndjson(ROOT / "sample_logs" / "tool_calls" / "tool_calls.jsonl")
    sources = kpictl.load_frames({"events": events, "tool_calls": calls})
    with pytest.raises(kpictl.InputDataError, match=r"'region' varies within a conversation_id"):
        run_report(spec, sources, ReportOptions(drilldown=3))


def test_no_redact_shows_the_message_as_written(pii_logs: Path) -> None:
    code, out, err = run(
        "report",
        str(pii_logs / "events"),
        "--source",
        f"tool_calls={pii_logs / 'tool_calls'}",
        "-c",
        str(SPEC),
        "--no-redact",
        "--fail-on",
        "warning",
        cwd=pii_logs,
    )
    assert code == 0, err  # every KPI has too few units for a verdict: nothing to fail on
    drill = section(out, "Drill-down")
    assert "**not redacted** (--no-redact)" in drill
    assert "4111 1111 1111 1111" in drill and "(415) 555-0123" in drill


# ----------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------


def test_stdout_is_only_the_markdown(holdout: tuple[int, str, str], tmp_path: Path) -> None:
    _, out, err = holdout
    assert out.startswith("# ") and out.endswith("\n")
    assert "kpictl:" not in out
    assert all(line.startswith("kpictl: ") for line in err.splitlines())
    output = tmp_path / "scorecard.md"
    code_file, out_file, err_file = run(
        "report", "--by", "channel", "--fail-on", "catastrophic", "--output", str(output)
    )
    assert (code_file, out_file) == (3, "")
    assert mask(output.read_text(encoding="utf-8")) == mask(out)
    assert f"kpictl: wrote {output}" in err_file


def test_fail_on_catastrophic_exits_3_after_writing(holdout: tuple[int, str, str]) -> None:
    code, out, err = holdout
    assert code == 3
    assert "## Method and provenance" in out  # the report is complete
    assert err.strip().splitlines()[-1] == (
        "kpictl: 1 KPI(s) at or above catastrophic: policy_violation_rate"
    )


def test_unknown_cohort_column_is_a_usage_error() -> None:
    code, out, err = run("report", "--by", "chanel")
    assert (code, out) == (2, "")
    assert err.startswith(
        "kpictl: error: --by chanel: not a column of table 'conversations' "
        "(did you mean 'channel'?)"
    )


def test_unknown_baseline_is_a_usage_error() -> None:
    code, _, err = run("report", "--baseline", "holdot")
    assert code == 2
    assert "--baseline holdot: neither a baseline of the spec (did you mean 'holdout'?)" in err


def test_report_has_help() -> None:
    code, out, _ = run("report", "--help")
    assert code == 0 and "--charts" in out and "--fail-on" in out and len(out) > 200


def test_chat_transcripts_without_timestamps_keep_their_rows_in_the_report(
    tmp_path: Path,
) -> None:
    """Rows without a time are kept by every command (one definition: engine.source_rows). The
    report used to drop them: LLM cost $0.00 while the facts held $0.00675, "tool calls of
    unknown conversations 4 of 4", "Period: start – None"."""
    from kpictl.engine.compute import facts
    from kpictl.engine.costs import Slice, conversation_costs, cost_totals, slice_facts
    from kpictl.engine.interface import ComputeOptions
    from kpictl.engine.sources import load_sources
    from kpictl.engine.window import resolve_window
    from kpictl.spec import load_spec

    fixtures = Path(__file__).resolve().parent / "fixtures" / "chat"
    (tmp_path / "spec.yaml").write_bytes((fixtures / "spec.yaml").read_bytes())
    records = [
        json.loads(line)
        for line in (fixtures / "runs.jsonl").read_text().splitlines()
        if line.strip()
    ]
    for record in records:
        del record["created_at"]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    spec = load_spec(tmp_path / "spec.yaml")
    sources = load_sources(spec, cache=False)
    assert sources["events"].select(pl.col("ts").is_null().all()).collect().item()
    # gpt-4o at $2.5 / $10 per 1M: t1-0 1000 in + 200 out = 0.0045; t1-1 no usage; t2-0 500 in +
    # 100 out = 0.00225
    llm = facts(spec, sources).get_column("llm_cost").sum()
    assert llm == pytest.approx(0.00675, rel=1e-12)
    window = resolve_window(spec, sources, ComputeOptions())
    piece = Slice("all conversations", sources, window)
    keys = slice_facts(spec, piece).select("conversation_id")
    totals = cost_totals(spec, conversation_costs(spec, piece, keys))
    assert (totals.conversations, totals.llm) == (3, pytest.approx(llm, rel=1e-12))

    code, out, err = run("report", "-c", str(tmp_path / "spec.yaml"), "--no-cache")
    assert code == 0, err
    lines = out.replace(NBSP, " ").splitlines()  # numbers: NBSP
    assert "- **Period:** no timestamps in the data (every conversation read is counted)" in lines
    assert "- **As of:** none (no timestamps in the data)" in lines
    assert "| LLM cost | $0.01 | Σ events.cost_usd |" in lines  # $0.00675, to the cent
    unknown = next(line for line in lines if "tool calls of unknown conversations" in line)
    assert unknown.startswith(
        "| tool calls of unknown conversations | tool_calls | conversation_id | 0 | 4 | 0.00 % |"
    )
    assert "None" not in out


def test_human_minutes_absent_from_the_data_are_unknown_in_the_roi_not_zero(
    tmp_path: Path,
) -> None:
    """Chat transcripts log no human minutes: the ROI showed "human minutes 0.0 min", "human
    cost $0.00" and a "total cost" that priced them as zero, while every KPI reading
    human_minutes was unavailable. Absent is unknown; {default: 0} says zero on purpose."""
    fixtures = Path(__file__).resolve().parent / "fixtures" / "chat"
    spec_text = (
        (fixtures / "spec.yaml")
        .read_text()
        .replace("version: 1\n", "version: 1\nparams:\n  human_cost_per_minute: 0.75\n", 1)
    )
    (tmp_path / "spec.yaml").write_text(spec_text)
    (tmp_path / "runs.jsonl").write_bytes((fixtures / "runs.jsonl").read_bytes())
    code, out, err = run("report", "-c", str(tmp_path / "spec.yaml"), "--no-cache")
    assert code == 0, err
    lines = out.replace(NBSP, " ").splitlines()  # numbers: NBSP
    assert (
        "| human minutes | unknown | no \\`human_minutes\\` column in source 'events' (no row "
        "has a value) |" in lines
    )
    assert "| human cost | — | not priced: the human minutes are unknown |" in lines
    assert not any(line.startswith("| total cost |") for line in lines)
    # gpt-4o at $2.5 / $10 per 1M: 1000 in + 200 out = 0.0045, 500 in + 100 out = 0.00225;
    # 3 trials: (0.0045 + 0.00225) / 3 = $0.00225 (a float just below: $0.0022), LLM + tools
    assert (
        "| cost per conversation | $0.0022 | agent run cost ÷ conversations (human minutes "
        "unknown) |" in lines
    )

    # the same data with human minutes declared zero on purpose: 0.0 min, priced at $0.00
    (tmp_path / "spec.yaml").write_text(
        spec_text.replace(
            "      reward: {type: float}\n",
            "      reward: {type: float}\n      human_minutes: {default: 0}\n",
            1,
        )
    )
    code, out, err = run("report", "-c", str(tmp_path / "spec.yaml"), "--no-cache")
    assert code == 0, err
    lines = out.replace(NBSP, " ").splitlines()  # numbers: NBSP
    assert "| human minutes | 0.0 min | Σ events.human_minutes |" in lines
    assert "| total cost | $0.01 | agent run cost + human cost |" in lines


def test_duplicate_rows_are_counted_exactly_among_rows_sharing_their_first_columns(
    tmp_path: Path,
) -> None:
    """Duplicates are looked for among rows whose (conversation_id, ts, event) repeat, then
    compared whole: rows agreeing on those three but differing elsewhere (a cost, a null
    against a value, another role) are not duplicates; exact copies among them are. Checked
    against DuckDB's DISTINCT over the same rows."""
    from kpictl.scorecard.quality import data_quality

    t0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    base = {"conversation_id": "c1", "ts": t0, "event": "message", "role": "agent"}
    rows = [
        {**base, "cost_usd": 0.5},
        {**base, "cost_usd": 0.5},  # duplicate
        {**base, "cost_usd": 0.6},  # same first columns, another cost
        {**base, "cost_usd": None},  # a null where the others have a value
        {**base, "cost_usd": None},  # duplicate (nulls equal)
        {**base, "role": "user", "cost_usd": 0.5},  # another role
        {**base, "conversation_id": "c2", "cost_usd": 0.5},  # another conversation
        {**base, "ts": t0 + dt.timedelta(seconds=1), "cost_usd": 0.5},
    ]
    schema = {
        "conversation_id": pl.String,
        "ts": pl.Datetime("us", "UTC"),
        "event": pl.String,
        "role": pl.String,
        "cost_usd": pl.Float64,
    }
    events = pl.DataFrame(rows, schema=schema)
    sources = kpictl.load_frames({"events": events})
    findings, _ = data_quality(kpictl.load_spec(SPEC), sources, t0)
    found = {(f.check, f.source): (f.count, f.of) for f in findings}
    parquet = tmp_path / "events.parquet"
    sources["events"].collect().select(events.columns).write_parquet(parquet)
    distinct = (
        duckdb.connect()
        .execute(f"SELECT COUNT(*) FROM (SELECT DISTINCT * FROM read_parquet('{parquet}'))")
        .fetchone()
    )
    assert found[("duplicate rows", "events")] == (len(rows) - distinct[0], 8) == (2, 8)


def test_tool_call_timing_from_the_facts_group_by_equals_sql(tmp_path: Path) -> None:
    """The report takes each conversation's first time and rows in the facts' group-by of the
    events (`STARTS_ENTRIES`, hidden entries of the unit table) and the data check of the tool
    calls' timing reads them: the same findings as the check's own group-by and as a shared
    `cost_sums` with `STARTS`, and DuckDB SQL's counts (a call before its conversation's
    first event, calls of a conversation without events, one whose events have no time)."""
    from kpictl.engine.costs import Slice, cost_sums
    from kpictl.engine.interface import ComputeOptions
    from kpictl.engine.window import resolve_window
    from kpictl.scorecard.gather import gather_report
    from kpictl.scorecard.quality import STARTS, data_quality

    t0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    minute = dt.timedelta(minutes=1)
    events = pl.DataFrame(
        {
            "conversation_id": ["c1", "c1", "c2", "c3"],
            "ts": [t0 + minute, t0 + 2 * minute, t0, None],
            "event": ["message", "resolution", "message", "message"],
            "cost_usd": [0.5, None, 0.25, 1.0],
            "arm": ["treatment", "treatment", "holdout", "holdout"],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )
    calls = pl.DataFrame(
        {
            "conversation_id": ["c1", "c1", "c2", "c3", "c9", None],
            "ts": [t0, t0 + 3 * minute, t0, t0, t0, t0],  # c1's first: before its start
            "tool": ["search"] * 6,
            "status": ["ok"] * 6,
            "cost_usd": [0.1] * 6,
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )
    spec = kpictl.load_spec(SPEC)
    sources = kpictl.load_frames({"events": events, "tool_calls": calls})
    window = resolve_window(spec, sources, ComputeOptions())
    sums = cost_sums(Slice("all", sources, window), "conversation_id", STARTS)
    shared, _ = data_quality(spec, sources, window.as_of, starts=sums)
    alone, _ = data_quality(spec, sources, window.as_of)
    assert shared == alone
    reported = gather_report(spec, sources).findings
    assert list(reported) == alone  # the timing findings last, as data_quality puts them
    found = {f.check: (f.count, f.of) for f in shared if f.check.startswith("tool calls")}
    paths = {}
    for name, frame in (("ev", events), ("tc", calls)):
        paths[name] = tmp_path / f"{name}.parquet"
        frame.write_parquet(paths[name])
    con = duckdb.connect()
    before, orphans, total = con.execute(
        f"""
        WITH s AS (SELECT conversation_id, MIN(ts) AS start FROM read_parquet('{paths["ev"]}')
                   GROUP BY 1)
        SELECT COUNT(*) FILTER (WHERE t.ts < s.start),
               COUNT(*) FILTER (WHERE s.conversation_id IS NULL), COUNT(*)
        FROM read_parquet('{paths["tc"]}') t LEFT JOIN s USING (conversation_id)
        """
    ).fetchone()
    assert found == {
        "tool calls before their conversation started": (before, total),
        "tool calls of unknown conversations": (orphans, total),
    }
    assert (before, orphans, total) == (1, 2, 6)


def test_data_quality_counts_equal_sql_over_the_rows(tmp_path: Path) -> None:
    """The data-quality counts (one lazy pass per source; duplicates found among rows whose
    hashes repeat, then compared exactly) equal DuckDB SQL over the same rows: duplicates with
    nulls in them, negative and out-of-scale values, rows after as-of, nulls where a value is
    expected."""
    from kpictl.scorecard.quality import data_quality

    t0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)

    def event(i: int, kind: str, role: str | None, **extra: object) -> dict[str, object]:
        return {
            "conversation_id": f"c{i % 3}",
            "ts": t0 + dt.timedelta(minutes=i),
            "event": kind,
            "role": role,
            **extra,
        }

    rows = [
        event(0, "message", "agent", cost_usd=0.5, latency_ms=-3.0),
        event(0, "message", "agent", cost_usd=0.5, latency_ms=-3.0),  # duplicate
        event(0, "message", "agent", cost_usd=0.5, latency_ms=-3.0),  # duplicate
        event(1, "message", "agent", cost_usd=None, latency_ms=10.0),
        event(1, "message", "agent", cost_usd=None, latency_ms=10.0),  # duplicate, nulls
        event(2, "message", "user"),
        event(3, "feedback", None, csat=7.0),
        event(4, "feedback", None, csat=None),
        event(900, "resolution", None),  # after as-of
    ]
    events = pl.DataFrame(
        rows,
        schema={
            "conversation_id": pl.String,
            "ts": pl.Datetime("us", "UTC"),
            "event": pl.String,
            "role": pl.String,
            "cost_usd": pl.Float64,
            "latency_ms": pl.Float64,
            "csat": pl.Float64,
        },
    )
    sources = kpictl.load_frames({"events": events})
    as_of = t0 + dt.timedelta(minutes=100)
    findings, columns = data_quality(kpictl.load_spec(SPEC), sources, as_of)
    found = {(f.check, f.column): (f.count, f.of) for f in findings if f.source == "events"}
    parquet = tmp_path / "events.parquet"
    sources["events"].collect().select(events.columns).write_parquet(parquet)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW logged AS SELECT * FROM read_parquet('{parquet}')")

    def sql(query: str) -> Any:
        return con.execute(query)

    total = len(rows)
    distinct = sql("SELECT COUNT(*) FROM (SELECT DISTINCT * FROM logged)").fetchone()[0]
    assert found[("duplicate rows", None)] == (total - distinct, total) == (3, 9)
    negative = sql("SELECT COUNT(*) FROM logged WHERE latency_ms < 0").fetchone()[0]
    assert found[("negative latency_ms", "latency_ms")] == (negative, total)
    outside = sql("SELECT COUNT(*) FROM logged WHERE csat < 1 OR csat > 5").fetchone()[0]
    assert found[("csat outside 1-5", "csat")] == (outside, total) == (1, 9)
    later = sql(f"SELECT COUNT(*) FROM logged WHERE ts > TIMESTAMPTZ '{as_of}'").fetchone()[0]
    assert found[("rows after as-of", None)] == (later, total) == (1, 9)
    agent, unpriced = sql(
        "SELECT COUNT(*), COUNT(*) - COUNT(cost_usd) FROM logged "
        "WHERE event = 'message' AND role = 'agent'"
    ).fetchone()
    assert found[("unpriced agent messages", "cost_usd")] == (unpriced, agent) == (2, 5)
    csat = next(c for c in columns if c.source == "events" and c.column == "csat")
    scoped = sql(
        "SELECT COUNT(*), COUNT(*) - COUNT(csat) FROM logged WHERE event = 'feedback'"
    ).fetchone()
    assert (csat.expected_rows, csat.expected_nulls) == scoped == (2, 1)
    assert (csat.rows, csat.nulls) == (total, total - 1)
