"""Hostile input is bounded: alias bombs, giant or endless specs, huge expressions, forbidden
functions hidden by quoting (issue 12, "Resource bombs are bounded" and "Also")."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import JsonlWriter, SpecWriter, run
from kpictl.cli import app
from kpictl.errors import InputDataError, SpecError
from kpictl.io.inputbytes import long_lines
from kpictl.io.jsonl import is_blank
from kpictl.io.read import SourceRequest, load_source
from kpictl.redact import redact_pii
from kpictl.spec import load_spec
from kpictl.sql.expr import ExpressionProblem, compile_sql

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"
TOOL_CALLS = ROOT / "sample_logs" / "tool_calls"

runner = CliRunner()

# 9 levels of 9 aliases: 9**9 = 387 million strings once expanded, from 375 bytes
BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)


# ---------------------------------------------------------------------------------------------
# The spec file
# ---------------------------------------------------------------------------------------------


def test_a_billion_laughs_spec_is_refused_in_well_under_a_second(tmp_path: Path) -> None:
    # Before: `params: *i` made the error message repr() 387 million strings (never returned).
    spec = tmp_path / "bomb.yaml"
    spec.write_text("version: 1\n" + BILLION_LAUGHS + "params: *i\n", encoding="utf-8")
    assert len(spec.read_bytes()) < 700
    started = time.perf_counter()
    code, _, err = run("validate", "-c", str(spec))
    assert time.perf_counter() - started < 1.0
    assert code == 1
    # values per level: a = 1 + 9, then each level 1 + 9 * the one below
    sizes = [10]
    for _ in range(8):
        sizes.append(1 + 9 * sizes[-1])
    # the root, version: 1, ten keys, the nine anchored lists and `params: *i` once more
    expanded = 1 + 2 + 10 + sum(sizes) + sizes[-1]
    assert expanded == 926_177_117
    # located at f (line 7), the largest anchor whose expansion alone passes the limit
    assert sizes[5] > 100_000 > sizes[4]
    assert err == (
        "kpictl: error: 1 problem in the KPI spec:\n"
        f"  {spec}:7: (yaml): aliases (*name) expand this document to 926,177,117 values, "
        "more than the 100,000 they may add (an alias bomb?); write the values out or use fewer "
        "nested aliases\n"
    )


def test_aliases_that_stay_small_still_work(write_spec: SpecWriter) -> None:
    # a shared anchor used twice is ordinary YAML and loads as before
    path = write_spec(
        ("thresholds: {warning: 2pp", "thresholds: &t {warning: 2pp"),
        (
            "    direction: lower\n    format: percent\n",
            "    direction: lower\n    format: percent\n    thresholds: *t\n",
        ),
    )
    spec = load_spec(path)
    assert spec.kpis["escalation_rate"].thresholds == spec.kpis["resolution_rate"].thresholds


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null"])
def test_a_device_is_not_a_spec(path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"no {path} here")
    code, _, err = run("validate", "-c", path)
    assert (code, err) == (
        1,
        "kpictl: error: 1 problem in the KPI spec:\n"
        f"  {path}: (file): not a regular file (a device, pipe or folder); pass a YAML file\n",
    )


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    pipe = tmp_path / "spec.yaml"
    os.mkfifo(pipe)
    with pytest.raises(SpecError, match="not a regular file"):
        load_spec(pipe)


def test_a_folder_is_not_a_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not a regular file"):
        load_spec(tmp_path)


def test_a_spec_over_one_mebibyte_is_refused(write_spec: SpecWriter) -> None:
    path = write_spec(("version: 1\n", "version: 1\n" + "#" * (1 << 20) + "\n"))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value.problems[0]) == (
        f"{path}: (file): larger than 1 MiB, the most a spec may be; is this the KPI spec?"
    )


@pytest.mark.parametrize(
    ("depth", "message"),
    [
        # libyaml stops at 1,000 levels; the pure-Python loader used for its message recursed
        (100_000, "nested too deeply (exceeded maximum nesting depth); a spec nests a few levels"),
        # below libyaml's limit, building the values recursed (RecursionError, exit 70)
        (600, "nested more than 64 levels deep (mappings and lists); a spec nests a few levels"),
    ],
)
def test_a_deeply_nested_spec_is_a_located_problem(
    tmp_path: Path, depth: int, message: str
) -> None:
    spec = tmp_path / "deep.yaml"
    spec.write_text("version: 1\nparams:\n  k: " + "[" * depth + "]" * depth + "\n")
    code, _, err = run("validate", "-c", str(spec))
    assert (code, err) == (
        1,
        f"kpictl: error: 1 problem in the KPI spec:\n  {spec}:3: (yaml): {message}\n",
    )


def test_a_large_value_is_quoted_short(write_spec: SpecWriter) -> None:
    nested = "{a: " * 40 + "1" + "}" * 40
    path = write_spec(("  good_csat: 4\n", f"  good_csat: {nested}\n"))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value.problems[0]) == (
        f"{path}:7: params.good_csat: expected a number, text or true/false, got "
        "{'a': {'a': {'a': {...}}}}"
    )


# ---------------------------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------------------------


def test_an_expression_over_ten_thousand_characters_is_a_located_problem(
    write_spec: SpecWriter,
) -> None:
    long = "resolved AND " + "happy OR " * 1200 + "resolved"
    assert len(long) == 13 + 9 * 1200 + 8 == 10_821
    path = write_spec(("    where: resolved\n", f"    where: {long}\n"))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    # ttr_p95 extends ttr_p50 and inherits the where
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:55: kpis.{kpi}.where: is 10,821 characters long, more than the 10,000 an "
        "expression may have; split it into named columns of a table  "
        f"[{long[:200]}… (10,821 characters)]"
        for kpi in ("ttr_p50", "ttr_p95")
    ]


def test_sixteen_hundred_ands_are_refused_at_once(write_spec: SpecWriter) -> None:
    # Before: accepted, and polars took 87 s (the chain is a tree 1,600 deep; its cost is
    # quadratic in the depth). 1,600 ANDs of a 1-letter name are 9,597 characters: under the
    # length limit, so the operator limit is what answers.
    chain = " AND ".join(["r"] * 1_600)
    assert len(chain) == 1_600 + 5 * 1_599 == 9_595
    path = write_spec(
        ("      happy: csat >= good_csat\n", "      happy: csat >= good_csat\n      r: resolved\n"),
        ("    where: resolved\n", f"    where: {chain}\n"),
    )
    started = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert time.perf_counter() - started < 2.0
    assert str(caught.value.problems[0]).startswith(
        f"{path}:56: kpis.ttr_p50.where: has 1,599 operators, more than the 128 an expression "
        "may have (polars slows down with the square of a chain's length); split it into named "
        "columns of a table  ["
    )


def test_operators_inside_strings_and_names_do_not_count() -> None:
    # 200 '+' inside a string literal and a quoted name are text, not operators
    compile_sql("'" + "+" * 200 + "' = \"a" + "-" * 200 + 'b"')
    with pytest.raises(ExpressionProblem, match="has 129 operators"):
        compile_sql(" + ".join(["x"] * 130))


@pytest.mark.parametrize(
    "sql",
    [
        '"now"()',
        '"NOW"()',
        "NoW ( )",
        "now /* a comment */ ()",
        "`now`()",
        '"current_timestamp"()',
        '"current_date"()',
        "CURRENT_DATE",
        "localtimestamp",
        "date_trunc('day', \"now\"())",
        # a backslash escapes nothing (as in polars): the string ends at the second quote
        "x = 'a\\' OR \"now\"() > x",
    ],
)
def test_the_wall_clock_cannot_be_reached_by_quoting_or_case(sql: str) -> None:
    # Before: a quoted name passed the text check ("now" was blanked as a quoted identifier)
    # and polars compiled it to the current time.
    with pytest.raises(ExpressionProblem, match=r"^the wall clock is not allowed"):
        compile_sql(sql)


def test_a_string_is_read_as_polars_reads_it() -> None:
    """The parser and polars 2.1 read a string alike (only '' escapes a quote), and polars
    compiles the text generated from the parsed tree: a call cannot sit in a string for the
    checks and outside it for polars. `'a\\''` leaves a quote open for both."""
    sql = "'a\\'' = \"now\"() OR '' = ''"
    with pytest.raises(ExpressionProblem, match=r"^not a valid SQL expression"):
        compile_sql(sql)
    with pytest.raises(pl.exceptions.SQLInterfaceError, match="Unterminated string"):
        pl.sql_expr(sql)
    assert pl.select(compile_sql("'it''s a\\b'")).item() == "it's a\\b"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ('"random"()', "^random functions are not allowed"),
        ("Rand()", "^random functions are not allowed"),
        ("\"read_csv\"('/etc/passwd')", r"^reading files is not allowed in an expression \(read_"),
        ("READ_PARQUET('x.parquet')", r"^reading files is not allowed in an expression"),
    ],
)
def test_random_and_file_reading_functions_are_refused_however_written(
    sql: str, message: str
) -> None:
    with pytest.raises(ExpressionProblem, match=message):
        compile_sql(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "'now()' = x",  # a string
        "x -- now()\n",  # a comment
        '"current_date" > x',  # a quoted name is a column in polars, not the function
        "x = 'it''s now'",
        "now_playing = 1",  # a longer name
    ],
)
def test_names_of_clock_functions_in_text_columns_or_comments_are_allowed(sql: str) -> None:
    compile_sql(sql)


def test_a_quoted_now_in_the_spec_is_a_located_problem(write_spec: SpecWriter) -> None:
    path = write_spec(("      happy: csat >= good_csat\n", '      happy: started_at < "now"()\n'))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:31: tables.conversations.derive.happy: the wall clock is not allowed (results "
        "must be reproducible): use the built-in column as_of (set with --as-of; default: the "
        'latest timestamp in the data)  [started_at < "now"()]'
    ]


@pytest.mark.parametrize("where", ['"now"() > started_at', "NOW() > started_at", "a (("])
def test_a_bad_where_is_the_same_usage_error_in_compute_and_compare(where: str) -> None:
    """compare checked --where only while reading the data: the wall clock or a syntax error
    there was 'internal error: ExpressionProblem' (exit 70)."""
    args = [
        str(ROOT / "sample_logs" / "events"),
        "--source",
        f"tool_calls={TOOL_CALLS}",
        "-c",
        str(SPEC),
        "--no-cache",
        "--where",
        where,
    ]
    compute = runner.invoke(app, ["compute", *args])
    compare = runner.invoke(app, ["compare", *args])
    assert (compute.exit_code, compare.exit_code) == (2, 2)
    assert compare.stderr == compute.stderr
    assert compare.stderr.startswith("kpictl: error: --where (on table 'agent_turns'): ")
    assert compare.stderr.count("\n") == 1 and "internal error" not in compare.stderr


# ---------------------------------------------------------------------------------------------
# Log files: line length, gzip expansion, JSON nesting
# ---------------------------------------------------------------------------------------------

Rows = list[dict[str, object]]


def compute_args(events: Path, *extra: str) -> list[str]:
    return [
        "compute",
        str(events),
        "--source",
        f"tool_calls={TOOL_CALLS}",
        "-c",
        str(SPEC),
        "-f",
        "json",
        *extra,
    ]


def test_a_line_over_max_line_bytes_is_a_located_bad_row(
    write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    long = {**event_rows[1], "text": "x" * 2_000}
    path = write_jsonl("e.jsonl", [event_rows[0], long, event_rows[2]])
    size = len(json.dumps(long))
    assert size > 1_024
    code, _, err = run(*compute_args(path, "--max-line-bytes", "1KiB"))
    assert (code, err) == (
        1,
        f"kpictl: error: {path}:2: a line of {size:,} bytes, longer than --max-line-bytes "
        "(1,024); raise --max-line-bytes or pass --on-bad-rows skip\n",
    )


def test_a_long_line_is_skipped_and_counted_with_skip(
    write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    long = {**event_rows[1], "text": "x" * 2_000}
    path = write_jsonl("e.jsonl", [event_rows[0], long, event_rows[2], long])
    request = SourceRequest("events", (str(path),), max_line_bytes=1_024)
    loaded = load_source(request, "skip")
    size = len(json.dumps(long))
    assert (loaded.rows, loaded.skipped) == (2, 2)
    assert loaded.files[0].skipped_reasons == tuple(
        f"line {n}: a line of {size:,} bytes, longer than --max-line-bytes (1,024)" for n in (2, 4)
    )
    assert loaded.frame.collect()["conversation_id"].to_list() == ["c1", "c2"]
    # the default limit (64 MiB) reads the same file whole
    assert load_source(SourceRequest("events", (str(path),)), "error").rows == 4


def test_a_long_line_of_a_chat_source_is_a_located_error(tmp_path: Path) -> None:
    # format sources (chat, otlp_json) read their JSONL with the same limit
    fixtures = ROOT / "tests" / "fixtures" / "chat"
    lines = (fixtures / "runs.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "runs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "spec.yaml").write_bytes((fixtures / "spec.yaml").read_bytes())
    size = max(len(line.encode()) for line in lines)  # line 2: 970 bytes
    code, _, err = run(
        "compute",
        "-c",
        str(tmp_path / "spec.yaml"),
        "--max-line-bytes",
        str(size - 1),
        "--no-cache",
    )
    first = next(n for n, line in enumerate(lines, start=1) if len(line.encode()) > size - 1)
    assert (code, err) == (
        1,
        f"kpictl: error: {tmp_path / 'runs.jsonl'}:{first}: a line of "
        f"{len(lines[first - 1].encode()):,} bytes, longer than --max-line-bytes "
        f"({size - 1:,}); raise --max-line-bytes\n",
    )
    code, _, err = run("compute", "-c", str(tmp_path / "spec.yaml"), "--no-cache", "-f", "json")
    assert code == 0, err


def test_max_line_bytes_must_be_a_size(write_jsonl: JsonlWriter, event_rows: Rows) -> None:
    path = write_jsonl("e.jsonl", event_rows)
    code, _, err = run(*compute_args(path, "--max-line-bytes", "lots"))
    assert (code, err) == (
        2,
        "kpictl: error: --max-line-bytes 'lots': expected a size such as 64MiB, 512KiB or "
        "1048576\n",
    )


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=12)
    | st.lists(st.sampled_from(b" \t\n\r\x0b\x0c{}a\x00\xa0"), max_size=12).map(bytes)
)
def test_a_blank_file_is_told_without_copying_it(data: bytes) -> None:
    """The JSONL path asks whether a whole file is blank; `not data.strip()` copied the file
    (0.33 s per call on a 440 MB file, four calls per run of two files)."""
    assert is_blank(data) == (not data.strip())


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=30),
    limit=st.integers(min_value=1, max_value=25),
    final_newline=st.booleans(),
)
def test_long_lines_finds_exactly_the_lines_a_plain_split_finds(
    lines: list[int], limit: int, final_newline: bool
) -> None:
    data = b"\n".join(b"a" * n for n in lines) + (b"\n" if final_newline else b"")
    expected = [
        (number, len(line))
        for number, line in enumerate(data.split(b"\n"), start=1)
        if len(line) > limit
    ]
    assert [(line.number, line.size) for line in long_lines(data, limit)] == expected


def test_a_gzip_bomb_is_refused_with_the_file_name_and_the_limit(tmp_path: Path) -> None:
    # 80 MiB of one repeated line compress ~1,000 times: past 64 MiB and 200 times the file
    line = b'{"conversation_id": "c1", "ts": "2026-10-01T10:00:00Z", "event": "message"}\n'
    data = line * ((80 << 20) // len(line))
    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip.compress(data, compresslevel=9))
    packed = path.stat().st_size
    assert len(data) > 200 * packed and len(data) > 64 << 20
    limit = max(64 << 20, 200 * packed)
    with pytest.raises(InputDataError) as caught:
        load_source(SourceRequest("events", (str(path),)))
    assert str(caught.value) == (
        f"{path}: refused: this gzip file expands to more than {limit:,} bytes, over 200 times "
        f"its {packed:,} bytes (a gzip bomb?); gunzip it yourself if it is genuine"
    )


def test_an_ordinary_gzip_file_still_reads(tmp_path: Path, event_rows: Rows) -> None:
    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in event_rows).encode()))
    assert load_source(SourceRequest("events", (str(path),))).rows == 3


@pytest.mark.parametrize("depth", [70, 100_000])
def test_json_nested_too_deep_is_a_bad_row_not_a_recursion_error(
    write_jsonl: JsonlWriter, event_rows: Rows, depth: int
) -> None:
    # Before: 100,000 levels made Python's json module raise RecursionError (exit 70); 70
    # levels was read as a List nested 69 deep.
    deep = json.dumps(event_rows[1])[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    path = write_jsonl("e.jsonl", [event_rows[0], deep, event_rows[2]])
    request = SourceRequest("events", (str(path),))
    with pytest.raises(InputDataError) as caught:
        load_source(request)
    assert str(caught.value) == (
        f"{path}:2: JSON nested {depth + 1:,} levels deep, more than 64; fix the file or pass "
        "--on-bad-rows skip"
    )
    loaded = load_source(request, "skip")
    assert (loaded.rows, loaded.skipped) == (2, 1)


def test_brackets_inside_strings_do_not_count_as_nesting(
    write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    text = {**event_rows[1], "text": "[" * 500 + "{" * 500 + '\\"]'}
    path = write_jsonl("e.jsonl", [event_rows[0], text, event_rows[2]])
    assert load_source(SourceRequest("events", (str(path),))).rows == 3


def test_a_deep_line_through_the_command_line_is_a_one_line_error(
    write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    deep = json.dumps(event_rows[1])[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = write_jsonl("e.jsonl", [event_rows[0], deep, event_rows[2]])
    code, _, err = run(*compute_args(path))
    assert (code, err) == (
        1,
        f"kpictl: error: {path}:2: JSON nested 100,001 levels deep, more than 64; fix the file "
        "or pass --on-bad-rows skip\n",
    )


# ---------------------------------------------------------------------------------------------
# --by a column with too many values
# ---------------------------------------------------------------------------------------------


def sample_user_ids(arm: str | None = None) -> int:
    """Distinct user_id values in the bundled sample events (of one arm), counted in Python."""
    users = set()
    for line in (ROOT / "sample_logs" / "events" / "events.jsonl").read_text().splitlines():
        row = json.loads(line)
        if arm is None or row.get("arm") == arm:
            users.add(row.get("user_id"))
    return len(users)


def test_compute_by_a_column_with_too_many_values_is_refused_with_the_count() -> None:
    # Before: one result row per user and KPI; with millions of users memory ran out.
    count = sample_user_ids()
    assert count == 678
    code, out, err = run("compute", "-c", str(SPEC), "--by", "user_id", "--max-cohorts", "100")
    assert (code, out, err) == (
        2,
        "",
        "kpictl: error: --by user_id: 678 values, more than --max-cohorts (100); split by a "
        "column with fewer values, or raise --max-cohorts\n",
    )
    code, _, err = run(
        "compute",
        "-c",
        str(SPEC),
        "--by",
        "user_id",
        "--max-cohorts",
        "678",
        "-f",
        "json",
        "--kpi",
        "escalation_rate",
    )
    assert code == 0, err


@pytest.mark.parametrize("command", ["compare", "report"])
def test_compare_and_report_refuse_too_many_cohorts_in_the_current_arm(command: str) -> None:
    # the current arm of the default baseline (holdout) is `arm = 'treatment'`
    count = sample_user_ids("treatment")
    assert count == 582
    code, _, err = run(command, "-c", str(SPEC), "--by", "user_id", "--max-cohorts", "500")
    assert (code, err) == (
        2,
        "kpictl: error: --by user_id: 582 values, more than --max-cohorts (500); split by a "
        "column with fewer values, or raise --max-cohorts\n",
    )


# ---------------------------------------------------------------------------------------------
# Panics and MemoryError reach the error boundary
# ---------------------------------------------------------------------------------------------


def test_a_polars_panic_is_a_one_line_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # pyo3's PanicException derives from BaseException: before, `except Exception` let it
    # through as a raw traceback.
    import polars as pl

    def panic(*_: object, **__: object) -> None:
        raise pl.exceptions.PanicException("index out of bounds: the len is 0 but the index is 0")

    assert not issubclass(pl.exceptions.PanicException, Exception)
    monkeypatch.setattr("kpictl.spec.load_spec", panic)
    code, out, err = run("validate", "-c", str(SPEC))
    assert (code, out, err) == (
        70,
        "",
        "kpictl: internal error: polars panicked: index out of bounds: the len is 0 but the "
        "index is 0 (a bug: please report it with the command line; rerun with --traceback for "
        "details)\n",
    )


def test_memory_error_is_a_one_line_error_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(*_: object, **__: object) -> None:
        raise MemoryError

    monkeypatch.setattr("kpictl.spec.load_spec", exhausted)
    code, out, err = run("validate", "-c", str(SPEC))
    assert (code, out, err) == (
        1,
        "",
        "kpictl: error: out of memory. Ask for less at once: fewer KPIs (--kpi), a shorter "
        "window (--since/--until), fewer or smaller --by columns; Parquet logs are read column "
        "by column and need far less memory than JSONL\n",
    )


def test_keyboard_interrupt_still_interrupts(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("kpictl.spec.load_spec", interrupted)
    code, out, err = run("validate", "-c", str(SPEC))
    # 130 (128 + SIGINT) as shells expect, quietly: not an internal error
    assert (code, out, err) == (130, "", "")


# ---------------------------------------------------------------------------------------------
# Redaction: the documented kinds in their real variety, secrets, IBANs, SSNs, IPs; every
# value the drill-down shows
# ---------------------------------------------------------------------------------------------

REDACTED = [
    # internationalised e-mail addresses and the fullwidth / small commercial at
    ("écrivez à josé.müller@exämple.de", "écrivez à [email]"),
    ("用户@例子.广告 に連絡", "[email] に連絡"),
    ("mail: jane＠example.com or jane﹫example.org", "mail: [email] or [email]"),
    # phones: national formats and no separators
    ("appelez le 06 12 34 56 78", "appelez le [phone]"),
    ("ou 0612345678, ou 06.12.34.56.78", "ou [phone], ou [phone]"),
    ("東京 03-1234-5678", "東京 [phone]"),
    ("UK 0044 20 7946 0958", "UK [phone]"),
    ("or +442079460958 today", "or [phone] today"),
    # cards with dots, underscores or double spaces (Luhn-valid test numbers)
    ("4111.1111.1111.1111 / 4111_1111_1111_1111", "[card] / [card]"),
    ("card 4111  1111  1111  1111 ok", "card [card] ok"),
    # secrets
    ("key sk-proj-abcdefghijklmnopqrstuvwx123456", "key [secret]"),
    ("aws AKIAIOSFODNN7EXAMPLE id", "aws [secret] id"),
    ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789 token", "gh [secret] token"),
    ("slack xoxb-123456789012-abcdefghijkl", "slack [secret]"),
    ("api_key=abcd1234xyz and password: hunter2!", "api_key=[secret] and password: [secret]"),
    ("Authorization: Bearer abc.def-ghi_jkl", "Authorization: Bearer [secret]"),
    ("session aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5 here", "session [secret] here"),
    # IBANs (valid check digits), US SSNs, IP addresses
    ("IBAN GB82 WEST 1234 5698 7654 32", "IBAN [iban]"),
    ("DE89370400440532013000 please", "[iban] please"),
    ("SSN 123-45-6789", "SSN [ssn]"),
    ("from 192.168.1.20 and 10.0.0.1", "from [ip] and [ip]"),
    ("v6 2001:db8::8a2e:370:7334 or fe80::1", "v6 [ip] or [ip]"),
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_redaction_covers_the_kinds_in_their_real_variety(text: str, expected: str) -> None:
    assert redact_pii(text) == expected


KEPT = [
    "order 0012345678 and order 9876543210, ticket 12345678",
    "price 1 234,56 €, total $1,299.99, qty 12 345, ratio 3.14",
    "dates 2026-10-01, 01-02-2024, 05.12.2024, 2026-10-01T10:00:00Z at 12:30:45",
    "versions v1.2.3.4, version 10.0.0.1, 2.14.3, kpictl 0.4.1",
    "sha 3f786850e387550fdab836ed7e6dc881de23001b, id 550e8400-e29b-41d4-a716-446655440000",
    "INV-2026-0042, tracking 1Z999AA10123456784, reason payment_failed_after_retry_limit",
    "MAC 00:1A:2B:3C:4D:5E, IBAN-like GB00WEST12345698765432 with bad check digits",
    "SSN-like 000-12-3456 and 666-12-3456 are not issued",
]


@pytest.mark.parametrize("text", KEPT)
def test_order_ids_prices_dates_and_versions_survive(text: str) -> None:
    assert redact_pii(text) == text


def test_the_drilldown_redacts_every_value_it_shows(tmp_path: Path) -> None:
    # Before: only the first user message was redacted; an e-mail as a conversation id, a
    # phone number as an escalation reason or a card number as a cohort value went through.
    events = []
    for number in range(3):
        conversation = f"jane.doe{number}@example.com"
        base = {
            "conversation_id": conversation,
            "channel": "+44 20 7946 0958",
            "intent": "4111 1111 1111 1111",
            "customer_tier": "gold",
            "region": "eu",
            "agent_version": "v1.2.3.4",
            "arm": "treatment",
            "user_id": "u1",
        }
        events += [
            {
                **base,
                "ts": f"2026-10-0{number + 1}T09:00:00Z",
                "event": "message",
                "role": "user",
                "text": "my key is AKIAIOSFODNN7EXAMPLE",
            },
            {
                **base,
                "ts": f"2026-10-0{number + 1}T09:01:00Z",
                "event": "escalation",
                "escalation_reason": "call 06 12 34 56 78",
            },
        ]
    calls = [
        {
            "conversation_id": "jane.doe0@example.com",
            "ts": "2026-10-01T09:00:30Z",
            "tool": "lookup",
            "status": "ok",
        }
    ]
    for name, rows in (("events", events), ("tool_calls", calls)):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = run(
        "report",
        str(tmp_path / "events"),
        "--source",
        f"tool_calls={tmp_path / 'tool_calls'}",
        "-c",
        str(SPEC),
    )
    assert code == 0, err
    for raw in ("jane.doe", "7946", "4111", "06 12 34", "AKIA"):
        assert raw not in out, raw  # nowhere in the scorecard
    drill = out[out.index("## Drill-down") : out.index("## Method")]
    assert "### escalation_rate: `escalated`, escalation_reason = call \\[phone\\]" in drill
    row = (
        "| \\[email\\] | 2026-10-03\u00a009:00\u00a0UTC | "
        "channel=\\[phone\\] · intent=\\[card\\] · "
        "customer_tier=gold · region=eu · agent_version=v1.2.3.4 | $0.0000 | my key is "
        "\\[secret\\] |"
    )
    assert row in drill
    assert "v1.2.3.4" in drill  # a version is not an IP address


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcXYZ019 .-+@:()/_＠", max_size=60))
def test_redaction_is_idempotent(text: str) -> None:
    once = redact_pii(text)
    assert redact_pii(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFXYZ .,!?'()-éü", max_size=80))
def test_prose_without_digits_or_at_signs_is_kept(text: str) -> None:
    assert redact_pii(text) == text
