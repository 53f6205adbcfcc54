"""Hostile input is bounded: alias bombs, giant or endless specs, huge expressions, forbidden
functions hidden by quoting (issue 12, "Resource bombs are bounded" and "Also")."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SpecWriter
from kpictl.cli import app
from kpictl.errors import SpecError
from kpictl.spec import load_spec
from kpictl.sqlexpr import ExpressionProblem, compile_sql

runner = CliRunner()

# 9 levels of 9 aliases: 9**9 = 387 million strings once expanded, from 375 bytes
BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


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
    compile_sql("'" + "+" * 200 + "' = \"a" + "-" * 200 + "b\"")
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
        # polars reads \' as a quote inside a string: the call is outside the string for it
        "'a\\'' = \"now\"() OR '' = ''",
    ],
)
def test_the_wall_clock_cannot_be_reached_by_quoting_or_case(sql: str) -> None:
    # Before: a quoted name passed the text check ("now" was blanked as a quoted identifier)
    # and polars compiled it to the current time.
    with pytest.raises(ExpressionProblem, match=r"^the wall clock is not allowed"):
        compile_sql(sql)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ('"random"()', "^random functions are not allowed"),
        ("Rand()", "^random functions are not allowed"),
        ('"read_csv"(\'/etc/passwd\')', r"^reading files is not allowed in an expression \(read_"),
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
