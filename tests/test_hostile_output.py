"""Hostile values in the logs cannot forge, break or poison kpictl's output.

Agent logs are written by the public; kpictl's outputs are trusted. Every value from the data
(cohort and breakdown values, ids, reasons, transcript text, model and tool names, error types)
lands escaped for its place: Markdown (a real CommonMark + GFM renderer, markdown-it-py's
"gfm-like" preset with linkify, must see no heading, link, image or HTML node and the same table
shapes as on benign data), the terminal (no rich markup, no control sequence), CSV (no formula
a spreadsheet would evaluate) and JSON (no NaN/Infinity token). `-o FILE` writes atomically.

The end-to-end tests run each command twice on the same 400 conversations of the bundled sample:
once with hostile values, once with the same values replaced one-for-one by plain words. The
rendered structure must be identical.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections import Counter
from contextlib import chdir
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token
from typer.testing import CliRunner

from kpictl.cli import app
from kpictl.render.controls import visible_controls
from kpictl.render.text import md_cell, md_text

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"
SAMPLE = ROOT / "sample_logs"
runner = CliRunner()

HOSTILE = [
    "x\n# All KPIs OK — approved by CFO",
    "a|b",
    "[x](http://e)",
    "![i](http://e/t.png)",
    "<img src=x onerror=alert(1)>",
    "http://evil.example",
    "www.evil.com",
    "mail me@evil.com",
    "`code` ``x``",
    "*em* _em_ **b**",
    "back\\slash\\",
    "[/]",
    "[link=http://x]hi[/link]",
    "\x1b[31mred\x1b]8;;http://x\x07\rover",
    "=1+2",
    "-3",
    "@SUM(A1)",
    "\tTAB",
    "&lt;b&gt; ~~s~~ $x$ #12",
]
BENIGN = [f"plain{i}" for i in range(len(HOSTILE))]
# GFM: CommonMark + tables + strikethrough + autolinks (linkify-it-py), as GitHub renders it
GFM = MarkdownIt("gfm-like")


# ----------------------------------------------------------------------------------------------
# Fixtures: the same logs with hostile and with benign values
# ----------------------------------------------------------------------------------------------


def write_logs(folder: Path, values: list[str], conversations: int = 400) -> Path:
    """The bundled sample's first `conversations` conversations, with `values` (one per
    conversation, cycling) as channel, escalation reason, model, tool, error type, a prefix of
    every user message and, for every fifth conversation, a prefix of its id."""
    keep = {f"c{i:06d}" for i in range(1, conversations + 1)}

    def value(conversation: str) -> str:
        return values[int(conversation[1:]) % len(values)]

    def rewrite(row: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
        conversation = row["conversation_id"]
        mark = value(conversation)
        for field, kind in fields.items():
            if row.get(field) is None:
                continue
            row[field] = mark + " " + row[field] if kind == "prefix" else mark
        if int(conversation[1:]) % 5 == 0:
            row["conversation_id"] = mark + conversation
        return row

    for name, fields in (
        ("events", {"channel": "set", "escalation_reason": "set", "model": "set"}),
        ("tool_calls", {"tool": "set", "error_type": "set"}),
    ):
        rows = []
        for line in (SAMPLE / name / f"{name}.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row["conversation_id"] not in keep:
                continue
            user = name == "events" and row.get("role") == "user"
            rows.append(rewrite(row, {**fields, "text": "prefix"} if user else fields))
        (folder / name).mkdir(parents=True)
        (folder / name / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # the sample's CRM export as it is: some of it is credited to the kept conversations
    (folder / "business_events").mkdir()
    shutil.copy(SAMPLE / "business_events" / "business_events.jsonl", folder / "business_events")
    return folder


@pytest.fixture(scope="module")
def hostile_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_logs(tmp_path_factory.mktemp("hostile"), HOSTILE)


@pytest.fixture(scope="module")
def benign_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_logs(tmp_path_factory.mktemp("benign"), BENIGN)


def run(logs: Path, *args: str) -> tuple[int, str, str]:
    """`kpictl COMMAND events/ --source tool_calls=tool_calls/ -c SPEC ARGS…` in `logs`."""
    command, *rest = args
    with chdir(logs):
        result = runner.invoke(
            app,
            [
                command,
                "events",
                "--source",
                "tool_calls=tool_calls",
                "--source",
                "business_events=business_events",
                "-c",
                str(SPEC),
                "--no-cache",
                *rest,
            ],
        )
    return result.exit_code, result.stdout, result.stderr


# ----------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------

# Node types a value could forge: structure (headings, tables, lists, quotes, rules, code
# blocks) and inline syntax (links, images, HTML, code, emphasis, strikethrough).
STRUCTURE = {
    "heading_open",
    "table_open",
    "tr_open",
    "th_open",
    "td_open",
    "bullet_list_open",
    "ordered_list_open",
    "list_item_open",
    "blockquote_open",
    "hr",
    "fence",
    "code_block",
    "html_block",
    "html_inline",
    "link_open",
    "image",
    "code_inline",
    "em_open",
    "strong_open",
    "s_open",
    "hardbreak",
}


def structure(markdown: str) -> tuple[Counter[str], list[tuple[int, ...]], list[str]]:
    """(count of each structural node, each table's column count per row, link targets)."""
    counts: Counter[str] = Counter()
    shapes: list[tuple[int, ...]] = []
    links: list[str] = []
    columns = 0
    row_widths: list[int] = []

    def visit(tokens: list[Token]) -> None:
        nonlocal columns
        for token in tokens:
            if token.type in STRUCTURE:
                counts[token.type] += 1
            if token.type == "link_open":
                links.append(str(token.attrGet("href")))
            if token.type == "tr_open":
                columns = 0
            elif token.type in ("th_open", "td_open"):
                columns += 1
            elif token.type == "tr_close":
                row_widths.append(columns)
            elif token.type == "table_close":
                shapes.append(tuple(row_widths))
                row_widths.clear()
            if token.children:
                visit(token.children)

    visit(GFM.parse(markdown))
    return counts, sorted(shapes), sorted(links)  # value order differs: compare as sets


def assert_inert(hostile: str, benign: str) -> None:
    """The hostile rendering has exactly the benign rendering's structure, and no value
    shows up as live HTML."""
    assert structure(hostile) == structure(benign)
    html = GFM.render(hostile)
    assert "<img" not in html and "onerror" not in html.replace("onerror=alert", "")
    assert 'href="http://e' not in html and 'href="http://evil' not in html
    assert "\x1b" not in hostile and "\x07" not in hostile


def test_md_text_escapes_the_example_values() -> None:
    assert md_text("x\n# All KPIs OK") == "x \\# All KPIs OK"
    assert md_text("[x](http://e)") == "\\[x\\](http\\:\\//e)"
    assert md_text("<img src=x onerror=alert(1)>") == "\\<img src=x onerror=alert(1)\\>"
    assert md_text("http://evil.example") == "http\\:\\//evil\\.example"
    assert md_text("a|b \\ `c` *d* _e_") == "a\\|b \\\\ \\`c\\` \\*d\\* \\_e\\_"
    assert md_text("\x1b[31m\x07") == "\\\\x1b\\[31m\\\\x07"
    assert md_text("v1.2, 2026-10-01, 5.5") == "v1.2, 2026-10-01, 5.5"  # no needless escapes


def inline_text(tokens: list[Token]) -> str:
    """The literal text of rendered inline tokens; fails on any other node."""
    parts = []
    for token in tokens:
        assert token.type in ("text", "text_special"), (token.type, token)
        parts.append(token.content)
    return "".join(parts)


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        st.sampled_from(list("\\`*_[]()<>!|~&#$@:/.=+-\n\r\t \x1b\x07\u202e")) | st.characters(),
        max_size=40,
    )
)
def test_md_text_is_literal_text_in_a_heading_a_cell_and_a_list_item(value: str) -> None:
    expected = visible_controls(" ".join(value.split()))
    text = md_text(value)
    heading = GFM.parse(f"### KPI: {text}\n")
    assert [t.type for t in heading] == ["heading_open", "inline", "heading_close"]
    assert inline_text(heading[1].children or []) == f"KPI: {expected}".strip()
    table = GFM.parse(f"| a | b |\n| --- | --- |\n| x | {md_cell(text)} |\n")
    cells = [t for t in table if t.type == "inline"]
    assert len(cells) == 4
    assert inline_text(cells[3].children or []) == expected
    item = GFM.parse(f"- note: {text}\n")
    assert [t.type for t in item][:3] == ["bullet_list_open", "list_item_open", "paragraph_open"]
    assert inline_text(item[3].children or []) == f"note: {expected}".strip()


def test_md_cell_escapes_pipes_once() -> None:
    assert md_cell("`a|b` \\| c\nd") == "`a\\|b` \\| c d"
    assert md_cell(md_text("a\\|b")) == "a\\\\\\|b"


def test_compute_markdown_is_inert(hostile_logs: Path, benign_logs: Path) -> None:
    outputs = []
    for logs in (hostile_logs, benign_logs):
        code, out, err = run(logs, "compute", "--by", "channel", "-f", "markdown")
        assert code == 0, err
        outputs.append(out)
    assert_inert(*outputs)
    assert "\\<img src=x onerror=alert(1)\\>" in outputs[0]
    assert "# All KPIs OK" not in outputs[0].replace("\\# All KPIs OK", "")


def test_compute_markdown_by_tool_is_inert(hostile_logs: Path, benign_logs: Path) -> None:
    outputs = []
    for logs in (hostile_logs, benign_logs):
        code, out, err = run(logs, "compute", "--by", "tool", "-f", "markdown")
        assert code == 0, err
        outputs.append(out)
    assert_inert(*outputs)
    assert "tool=\\[x\\](http\\:\\//e)" in outputs[0]


def test_compare_markdown_is_inert(hostile_logs: Path, benign_logs: Path) -> None:
    outputs = []
    for logs in (hostile_logs, benign_logs):
        code, out, err = run(logs, "compare", "--by", "channel", "-f", "markdown")
        assert code == 0, err
        outputs.append(out)
    assert_inert(*outputs)


def test_scorecard_is_inert(hostile_logs: Path, benign_logs: Path) -> None:
    outputs = []
    for logs in (hostile_logs, benign_logs):
        code, out, err = run(logs, "report", "--no-redact")
        assert code == 0, err
        outputs.append(out)
    assert_inert(*outputs)
    hostile = outputs[0]
    # the reason that used to add a heading is one heading's text now
    assert "escalation_reason = x \\# All KPIs OK — approved by CFO\n" in hostile
    assert "| \\[x\\](http\\:\\//e)" in hostile  # a breakdown value, and an id in the drill-down


# ----------------------------------------------------------------------------------------------
# Terminal
# ----------------------------------------------------------------------------------------------

CONTROL = ("\x1b", "\x07", "\r", "\x9b")


def assert_no_control(text: str) -> None:
    for char in CONTROL:
        assert char not in text, repr(char)


@pytest.mark.parametrize("command", ["compute", "compare"])
def test_table_shows_markup_and_escape_sequences_as_text(hostile_logs: Path, command: str) -> None:
    code, out, err = run(hostile_logs, command, "--by", "channel")
    assert code == 0, err  # `[/]` was read as a closing tag: exit 70
    assert_no_control(out)
    assert_no_control(err)
    # shown as written (a wide table may wrap a cell: look for short pieces)
    for piece in ("channel=[/]", "=[link=http://x]hi", "=\\x1b[31mred\\x1b]8;;", "=x\\x0a#"):
        assert piece in out, piece


def test_compute_table_by_tool_shows_tool_names_as_text(hostile_logs: Path) -> None:
    code, out, err = run(hostile_logs, "compute", "--by", "tool")
    assert code == 0, err
    assert_no_control(out)
    assert "tool=[/]" in out and "tool=*em* _em_ **b**" in out


def test_stderr_shows_control_characters_as_escapes(tmp_path: Path) -> None:
    events = write_logs(tmp_path, BENIGN, conversations=20) / "events"
    (events / "notes\x1b]8;;x\x07.txt").write_text("not a log\n")
    code, _, err = run(tmp_path, "compute")
    assert code == 0, err
    assert_no_control(err)
    assert "notes\\x1b]8;;x\\x07.txt" in err


def test_term_text_is_never_markup() -> None:
    from rich.console import Console

    from kpictl.render.text import term_text

    console = Console(width=80, force_terminal=True, color_system=None, emoji=True)
    with console.capture() as capture:
        console.print(term_text("[bold]b[/] :smile: [link=http://x]y[/link] \x1b[2J\r"))
    assert capture.get() == "[bold]b[/] :smile: [link=http://x]y[/link] \\x1b[2J\\x0d\n"


# ----------------------------------------------------------------------------------------------
# CSV
# ----------------------------------------------------------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def read_csv(text: str) -> list[dict[str, str]]:
    """Parsed as a spreadsheet would: every row as wide as the header (a bare CR unquoted
    would end a row early)."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows and all(len(r) == len(rows[0]) for r in rows), "a row was split"
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


@settings(max_examples=200, deadline=None)
@given(
    # no lone surrogates (category Cs): not text a UTF-8 frame can hold, nor a log can contain
    st.lists(
        st.text(
            st.sampled_from(list("=+-@\t\r\n,\"' a1")) | st.characters(exclude_categories=("Cs",)),
            max_size=12,
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.none(), min_size=1, max_size=6),
)
def test_csv_safe_round_trips_through_a_csv_reader(texts: list[str], numbers: list[float]) -> None:
    import polars as pl

    from kpictl.render.text import csv_safe

    size = min(len(texts), len(numbers))
    frame = pl.DataFrame(
        {"text": texts[:size], "number": numbers[:size]},
        schema={"text": pl.String, "number": pl.Float64},
    )
    rows = read_csv(csv_safe(frame).write_csv())
    assert [r["text"] for r in rows] == [
        "'" + t if t.startswith(FORMULA_START) else t for t in texts[:size]
    ]
    assert [float(r["number"]) if r["number"] else None for r in rows] == numbers[:size]


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from(list("\x1b\x07\r\n\t\x9b\u202e[]/=:")) | st.characters()))
def test_terminal_text_never_carries_a_control_character(value: str) -> None:
    from kpictl.render.text import term_text

    shown = term_text(value).plain
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
    assert "\u202e" not in shown


def test_compute_csv_neutralises_formulas_and_quotes_cr(hostile_logs: Path) -> None:
    code, out, err = run(hostile_logs, "compute", "--by", "channel", "-f", "csv")
    assert code == 0, err
    rows = read_csv(out)
    channels = {r["channel"] for r in rows if r["channel"]}
    assert channels == {"'" + v if v.startswith(FORMULA_START) else v for v in HOSTILE}
    assert {"'=1+2", "'-3", "'@SUM(A1)", "'\tTAB"} <= channels
    assert "\x1b[31mred\x1b]8;;http://x\x07\rover" in channels  # a CR inside: quoted, kept
    for row in rows:
        for name, cell in row.items():
            if name not in ("value", "n", "pending"):
                assert not cell.startswith(FORMULA_START), (name, cell)
        _ = float(row["value"] or "nan"), int(row["n"]), int(row["pending"])  # '' is null


def test_compare_csv_keeps_negative_numbers_as_numbers(hostile_logs: Path) -> None:
    code, out, err = run(hostile_logs, "compare", "--by", "channel", "-f", "csv")
    assert code == 0, err
    rows = read_csv(out)
    assert {r["channel"] for r in rows if r["channel"]} >= {"'=1+2", "'-3", "'@SUM(A1)"}
    deltas = [r["delta"] for r in rows if r["delta"]]
    assert any(d.startswith("-") for d in deltas)  # a negative number stays a number
    assert all(float(d) == float(d) for d in deltas)
    for row in rows:
        assert not row["kpi"].startswith("'") and not row["channel"].startswith(FORMULA_START)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_facts_csv_neutralises_formulas(hostile_logs: Path, tmp_path: Path) -> None:
    target = tmp_path / "facts.csv"
    code, _, err = run(hostile_logs, "facts", "-o", str(target))
    assert code == 0, err
    with target.open(encoding="utf-8", newline="") as handle:
        rows = read_csv(handle.read())
    channels = {r["channel"] for r in rows}
    assert {"'=1+2", "'-3", "'@SUM(A1)", "'\tTAB"} <= channels
    ids = {r["conversation_id"] for r in rows}
    formula_id = next(n for n in range(5, 400, 5) if HOSTILE[n % len(HOSTILE)] == "=1+2")
    assert f"'=1+2c{formula_id:06d}" in ids and "c000001" in ids
    for row in rows:  # a number (a refund's -45.0) stays a number
        assert not any(
            cell.startswith(FORMULA_START) and not _is_number(cell) for cell in row.values()
        ), row


# ----------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN, Infinity and -Infinity, as strict parsers do."""

    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_json_text_writes_non_finite_values_as_null_with_a_note() -> None:
    from kpictl.render.text import json_text

    document = {
        "results": [{"value": float("inf")}, {"ci": [float("-inf"), 1.5]}],
        "srm": {"p": float("nan")},
        "notes": ["kept"],
    }
    parsed = strict_json(json_text(document))
    assert parsed["results"] == [{"value": None}, {"ci": [None, 1.5]}]
    assert parsed["srm"] == {"p": None}
    assert parsed["notes"] == [
        "kept",
        "3 value(s) not finite, written as null: results[0].value (Infinity), "
        "results[1].ci[0] (-Infinity), srm.p (NaN)",
    ]
    assert strict_json(json_text({"a": 1.0})) == {"a": 1.0}  # no note when all is finite


@pytest.fixture(scope="module")
def huge_costs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three conversations whose two agent messages cost 1.5e308 each: the sum overflows."""
    folder = tmp_path_factory.mktemp("huge")
    events = []
    for index in range(3):
        common = {
            "conversation_id": f"c{index}",
            "channel": "web",
            "intent": "billing",
            "user_id": f"u{index}",
            "arm": "treatment" if index else "holdout",
            "human_minutes": 0,
            "policy_violation": False,
        }
        day = f"2026-10-0{index + 1}"
        events.append(
            {**common, "ts": f"{day}T00:00:00Z", "event": "message", "role": "user", "text": "hi"}
        )
        events += [
            {
                **common,
                "ts": f"{day}T00:00:0{k}Z",
                "event": "message",
                "role": "agent",
                "cost_usd": 1.5e308,
                "input_tokens": 1,
                "output_tokens": 1,
                "latency_ms": 10.0,
            }
            for k in (1, 2)
        ]
    call = {
        "conversation_id": "c1",
        "ts": "2026-10-02T00:00:03Z",
        "tool": "x",
        "status": "ok",
        "cost_usd": 0.0,
    }
    booking = {
        "business_event_id": "b1",
        "conversation_id": "c1",
        "ts": "2026-10-02T01:00:00Z",
        "type": "booking",
        "value_usd": 10.0,
    }
    for name, rows in (
        ("events", events),
        ("tool_calls", [call]),
        ("business_events", [booking]),
    ):
        (folder / name).mkdir()
        (folder / name / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_compute_json_has_no_infinity_token(huge_costs: Path) -> None:
    code, out, err = run(huge_costs, "compute", "-f", "json")
    assert code == 0, err
    document = strict_json(out)  # was: "value": Infinity
    costs = [r for r in document["results"] if r["kpi"] == "cost_per_task"]
    assert [r["value"] for r in costs] == [None]
    index = document["results"].index(costs[0])
    assert f"results[{index}].value (Infinity)" in document["notes"][-1]


def test_compare_json_is_strict_json(huge_costs: Path) -> None:
    code, out, err = run(huge_costs, "compare", "-f", "json")
    assert code == 0, err
    strict_json(out)


# ----------------------------------------------------------------------------------------------
# -o FILE: atomic, and a clear one-line error when it cannot be written
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_logs(tmp_path_factory.mktemp("small"), BENIGN, conversations=30)


def test_a_failing_render_leaves_the_existing_file_as_it_was(
    small_logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kpictl.render.writers

    def half_then_fail(
        result: object, fmt: str, console: Any, files: object = (), wide: bool = False
    ) -> None:
        console.file.write('{"partial": ')
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(kpictl.render.writers, "render", half_then_fail)
    target = tmp_path / "kpis.json"
    target.write_text("yesterday's numbers\n")
    code, _, err = run(small_logs, "compute", "-f", "json", "-o", str(target))
    assert code == 70 and "RuntimeError: renderer broke" in err
    assert target.read_text() == "yesterday's numbers\n"  # was: '{"partial": '
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kpis.json"]  # no temporary left


def test_write_atomically_keeps_the_old_file_on_a_disk_error(tmp_path: Path) -> None:
    import errno

    from kpictl.errors import OutputError
    from kpictl.render.files import write_atomically

    target = tmp_path / "out.csv"
    target.write_text("old\n")
    target.chmod(0o640)

    def full_disk(path: Path) -> None:
        path.write_text("new, half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OutputError) as caught:
        write_atomically(target, full_disk)
    assert caught.value.message == f"cannot write {target}: No space left on device"
    assert target.read_text() == "old\n" and list(tmp_path.iterdir()) == [target]
    write_atomically(target, lambda path: path.write_text("new\n"))
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o640  # the file keeps its permissions


def one_line_error(logs: Path, *args: str) -> tuple[int, str]:
    code, _, err = run(logs, *args)
    assert err.count("\n") == 1, err
    return code, err.strip()


@pytest.mark.parametrize(
    "command", [("compute", "-f", "json"), ("compare", "-f", "csv"), ("facts",), ("report",)]
)
def test_output_at_a_folder_is_a_one_line_error(
    small_logs: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    target = tmp_path / ("out.csv" if command == ("facts",) else "out")
    target.mkdir()
    assert one_line_error(small_logs, *command, "-o", str(target)) == (
        1,
        f"kpictl: error: cannot write {target}: it is a folder; name a file",
    )


def test_output_in_a_missing_folder_or_under_a_file_is_a_one_line_error(
    small_logs: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "missing" / "kpis.json"
    assert one_line_error(small_logs, "compute", "-f", "json", "-o", str(missing)) == (
        1,
        f"kpictl: error: cannot write {missing}: {missing.parent} does not exist",
    )
    (tmp_path / "file.txt").write_text("x")
    under = tmp_path / "file.txt" / "kpis.csv"
    assert one_line_error(small_logs, "facts", "-o", str(under)) == (
        1,
        f"kpictl: error: cannot write {under}: {under.parent} is not a folder",
    )
    # the scorecard creates its folder (charts are linked relative to it), but not under a file
    code, err = one_line_error(small_logs, "report", "-o", str(tmp_path / "file.txt" / "s.md"))
    assert code == 1 and err.startswith(f"kpictl: error: cannot write {tmp_path / 'file.txt'}")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_output_in_a_read_only_folder_is_a_one_line_error(small_logs: Path, tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code, err = one_line_error(small_logs, "compute", "-o", str(folder / "k.txt"))
    finally:
        folder.chmod(0o700)
    assert code == 1 and err == (
        f"kpictl: error: cannot write {folder / 'k.txt'}: Permission denied in {folder}"
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_output_on_a_full_disk_is_a_one_line_error(small_logs: Path) -> None:
    assert one_line_error(small_logs, "compute", "-f", "json", "-o", "/dev/full") == (
        1,
        "kpictl: error: cannot write /dev/full: No space left on device",
    )


@pytest.mark.parametrize("command", [("compute", "-f", "csv"), ("compare",), ("report",)])
def test_output_naming_an_input_is_refused(
    small_logs: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    log = small_logs / "events" / "events.jsonl"
    before = log.read_bytes()
    assert one_line_error(small_logs, *command, "-o", str(log)) == (
        2,
        f"kpictl: error: --output {log}: is an input of this run; write somewhere else",
    )
    assert log.read_bytes() == before  # was: the log file overwritten with the output
    spec_copy = tmp_path / "spec.yaml"
    spec_copy.write_text(SPEC.read_text())
    with chdir(small_logs):
        result = runner.invoke(
            app,
            [
                *command,
                "events",
                "--source",
                "tool_calls=tool_calls",
                "--source",
                "business_events=business_events",
                "-c",
                str(spec_copy),
                "--no-cache",
                "-o",
                str(spec_copy),
            ],
        )
    assert (result.exit_code, result.stderr) == (
        2,
        f"kpictl: error: --output {spec_copy}: is an input of this run; write somewhere else\n",
    )
    assert spec_copy.read_text() == SPEC.read_text()


def test_review_sample_csv_neutralises_formulas(hostile_logs: Path, tmp_path: Path) -> None:
    target = tmp_path / "review.csv"
    with chdir(hostile_logs):
        result = runner.invoke(
            app,
            [
                "review",
                "sample",
                "events",
                "--source",
                "tool_calls=tool_calls",
                "--source",
                "business_events=business_events",
                "-c",
                str(SPEC),
                "--no-cache",
                "--size",
                "60",
                "--seed",
                "1",
                "--stratify-by",
                "channel",
                "-o",
                str(target),
            ],
        )
    assert result.exit_code == 0, result.stderr
    with target.open(encoding="utf-8", newline="") as handle:
        rows = read_csv(handle.read())
    cells = [cell for row in rows for cell in row.values()]
    assert not [c for c in cells if c.startswith(FORMULA_START)]
    assert any(c.startswith("'=1+2") for c in cells)


# ----------------------------------------------------------------------------------------------
# HTML (`report --format html`)
# ----------------------------------------------------------------------------------------------


class _Elements(HTMLParser):
    """Every element of a page with its attributes, chart images' data left out."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, tuple[tuple[str, str], ...]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        kept = tuple(
            (k, "data:" if k == "src" else "" if k in ("alt", "id") else v or "") for k, v in attrs
        )
        self.found.append((tag, kept))


def test_scorecard_html_is_inert(hostile_logs: Path, benign_logs: Path) -> None:
    pytest.importorskip("matplotlib")
    pages = []
    for logs in (hostile_logs, benign_logs):
        code, _, err = run(logs, "report", "--no-redact", "--format", "html", "-o", "s.html")
        assert code == 0, err
        pages.append((logs / "s.html").read_text(encoding="utf-8"))
    hostile, benign = pages
    # the same elements with the same attributes: no value made a tag, a link or an image
    assert Counter(_Elements(hostile).found) == Counter(_Elements(benign).found)
    assert "<script" not in hostile and "onerror=" not in hostile.replace(
        "onerror=alert(1)&gt;", ""
    )
    assert "&lt;img src=x onerror=alert(1)&gt;" in hostile  # shown as text
    assert 'href="http' not in hostile and 'src="http' not in hostile


def test_check_text_shows_a_control_character_in_a_column_name_as_an_escape(
    tmp_path: Path,
) -> None:
    logs = write_logs(tmp_path, BENIGN, conversations=20)
    events = logs / "events" / "events.jsonl"  # as Parquet: a column no reader drops
    frame = pl.read_ndjson(events, infer_schema_length=None)
    frame.with_columns(pl.lit("x").alias("note\x1b[31m\r")).write_parquet(
        events.with_suffix(".parquet")
    )
    events.unlink()
    code, out, err = run(logs, "check")
    assert code == 0, err
    assert_no_control(out)
    assert "note\\x1b[31m\\x0d" in out
