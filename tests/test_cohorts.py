"""`--by` any column of the data and `--by a,b` the cross-tab (README "--by any column"):
compute, compare and report split by the same cohorts, checked against DuckDB SQL."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest

import kpictl
from conftest import run

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"


def data_args(logs: Path) -> list[str]:
    return [str(logs / "events"), "--source", f"tool_calls={logs / 'tool_calls'}", "-c", str(SPEC)]


def _escalations_by(logs: Path, columns: str, where: str = "TRUE") -> dict[tuple, tuple]:
    """Per cohort of `columns`: (conversations, share escalated), by DuckDB over the events:
    a conversation's cohort is its (constant) value, escalated when it has an escalation."""
    rows = duckdb.sql(
        f"""
        WITH c AS (
            SELECT conversation_id, {columns},
                   COUNT(*) FILTER (WHERE event = 'escalation') > 0 AS escalated
            FROM (SELECT *, FIRST(arm) OVER (PARTITION BY conversation_id) AS a
                  FROM '{logs}/events/*.parquet')
            WHERE {where}
            GROUP BY conversation_id, {columns}
        )
        SELECT {columns}, COUNT(*), AVG(CAST(escalated AS DOUBLE)) FROM c GROUP BY {columns}
        """
    ).fetchall()
    width = len(columns.split(","))
    return {tuple(r[:width]): (r[width], r[width + 1]) for r in rows}


def _cohort_rows(out: str) -> list[dict]:
    results = json.loads(out)["results"]
    return [r for r in results if r["kpi"] == "escalation_rate" and "breakdown" not in r]


def test_by_a_comma_b_is_the_cross_tab_not_two_one_way_tables(logs: Path) -> None:
    code, out, err = run(
        "compute",
        *data_args(logs),
        "--kpi",
        "escalation_rate",
        "--by",
        "channel,intent",
        "-f",
        "json",
    )
    assert code == 0, err
    rows = _cohort_rows(out)
    assert {tuple(r["cohort"]) for r in rows} == {(), ("channel", "intent")}
    expected = _escalations_by(logs, "channel, intent")
    cells = {(r["cohort"]["channel"], r["cohort"]["intent"]): r for r in rows if r["cohort"]}
    assert set(cells) == set(expected) and len(cells) > 10
    for key, (n, rate) in expected.items():
        assert cells[key]["n"] == n
        assert cells[key]["value"] == pytest.approx(rate, rel=1e-12)
    # --by a --by b --cross is the same table
    crossed = run(
        "compute",
        *data_args(logs),
        "--kpi",
        "escalation_rate",
        "--by",
        "channel",
        "--by",
        "intent",
        "--cross",
        "-f",
        "json",
    )
    assert crossed[0] == 0 and _cohort_rows(crossed[1]) == rows


def test_compare_splits_by_the_same_cross_tab_and_agrees_with_compute(logs: Path) -> None:
    code, out, err = run(
        "compare",
        *data_args(logs),
        "-b",
        "holdout",
        "--kpi",
        "escalation_rate",
        "--by",
        "channel,intent",
        "-f",
        "csv",
    )
    assert code == 0, err
    table = list(csv.DictReader(io.StringIO(out)))
    cells = {(r["channel"], r["intent"]): r for r in table if r["grouping"] == "channel;intent"}
    assert {r["grouping"] for r in table} == {"", "channel;intent"}
    treatment = _escalations_by(logs, "channel, intent", "a = 'treatment'")
    holdout = _escalations_by(logs, "channel, intent", "a = 'holdout'")
    assert set(cells) == set(treatment)
    for key, (n, rate) in treatment.items():
        assert int(cells[key]["current_n"]) == n
        assert float(cells[key]["current_value"]) == pytest.approx(rate, rel=1e-12)
        if key in holdout:
            assert int(cells[key]["baseline_n"]) == holdout[key][0]
            assert float(cells[key]["baseline_value"]) == pytest.approx(holdout[key][1], rel=1e-12)
    # compute on the treatment arm prints the same values for the same cohorts
    code, out, _ = run(
        "compute",
        *data_args(logs),
        "--kpi",
        "escalation_rate",
        "--by",
        "channel,intent",
        "--where",
        "arm = 'treatment'",
        "-f",
        "json",
    )
    for row in _cohort_rows(out):
        if row["cohort"]:
            key = (row["cohort"]["channel"], row["cohort"]["intent"])
            assert row["value"] == pytest.approx(float(cells[key]["current_value"]), rel=1e-12)


def test_report_compares_each_combination_with_the_rest(logs: Path) -> None:
    code, out, err = run("report", *data_args(logs), "--by", "channel,intent")
    assert code == 0, err
    combinations = len(_escalations_by(logs, "channel, intent", "a = 'treatment'"))
    assert "Each value of `channel × intent` against the rest of treatment arm" in out
    assert (
        f"- --by channel,intent: {combinations} values; only the first 12 (in order) are "
        "compared with the rest" in out
    )
    # every cohort × KPI pair is either a test or said not to be one (never a bare "0 tests")
    kpis = len(kpictl.load_spec(SPEC).kpis)
    tests = int(re.search(r"every KPI: (\d+) tests", out).group(1))  # type: ignore[union-attr]
    said = re.search(
        r"--by channel,intent: (\d+) of (\d+) cohort × KPI comparisons not tested", out
    )
    assert said is not None, out
    assert int(said.group(2)) == min(combinations, 12) * kpis
    assert int(said.group(1)) + tests == int(said.group(2))


def _with_plan(tmp_path: Path, logs: Path) -> Path:
    """The sample's events as JSONL with a column the spec does not declare: `plan`, the same
    for every row of a conversation (from its user id), and `page`, which varies."""
    events = pl.read_parquet(logs / "events").with_columns(
        pl.when(pl.col("user_id").str.slice(-1).is_in(["0", "1", "2"]))
        .then(pl.lit("gold"))
        .otherwise(pl.lit("basic"))
        .alias("plan"),
        (pl.int_range(pl.len()) % 3).over("conversation_id").cast(pl.String).alias("page"),
    )
    path = tmp_path / "events.jsonl"
    events.write_ndjson(path)
    return path


def test_by_a_column_the_spec_does_not_declare_is_rolled_up(tmp_path: Path, logs: Path) -> None:
    events = _with_plan(tmp_path, logs)
    args = [str(events), "--source", f"tool_calls={logs / 'tool_calls'}", "-c", str(SPEC)]
    code, out, err = run("compute", *args, "--kpi", "escalation_rate", "--by", "plan", "-f", "json")
    assert code == 0, err
    expected = duckdb.sql(
        f"""
        SELECT plan, COUNT(*), AVG(CAST(e AS DOUBLE)) FROM (
            SELECT conversation_id, ANY_VALUE(plan) AS plan,
                   COUNT(*) FILTER (WHERE event = 'escalation') > 0 AS e
            FROM read_json_auto('{events}') GROUP BY conversation_id)
        GROUP BY plan
        """
    ).fetchall()
    cells = {r["cohort"]["plan"]: r for r in _cohort_rows(out) if r["cohort"]}
    assert set(cells) == {"gold", "basic"}
    for plan, n, rate in expected:
        assert cells[plan]["n"] == n
        assert cells[plan]["value"] == pytest.approx(rate, rel=1e-12)


def test_by_a_column_that_varies_within_a_conversation_names_an_example(
    tmp_path: Path, logs: Path
) -> None:
    events = _with_plan(tmp_path, logs)
    args = [str(events), "--source", f"tool_calls={logs / 'tool_calls'}", "-c", str(SPEC)]
    ((count,),) = duckdb.sql(
        f"SELECT COUNT(*) FROM (SELECT conversation_id FROM read_json_auto('{events}') "
        "GROUP BY 1 HAVING COUNT(DISTINCT page) > 1)"
    ).fetchall()
    ((first,),) = duckdb.sql(
        f"SELECT MIN(conversation_id) FROM (SELECT conversation_id FROM "
        f"read_json_auto('{events}') GROUP BY 1 HAVING COUNT(DISTINCT page) > 1)"
    ).fetchall()
    code, out, err = run("compute", *args, "--by", "page")
    assert (code, out) == (2, "")
    assert err == (
        f"kpictl: error: --by page: varies within a conversation_id ({count:,} of them; e.g. "
        f"conversation_id {first!r} has '0' and '1'): it cannot split the KPIs of table "
        "'conversations', one row per conversation_id; KPIs of 'agent_turns' (--kpi) split "
        "their rows by it, or roll it up in the spec (e.g. FIRST(page) in "
        "tables.conversations.rollup)\n"
    )
    # the KPIs of a row table split their rows by it
    code, out, err = run(
        "compute", *args, "--by", "page", "--kpi", "agent_latency_p95", "-f", "json"
    )
    assert code == 0, err
    pages = {r["cohort"].get("page") for r in json.loads(out)["results"]}
    assert pages == {None, "0", "1", "2"}


def test_cross_tab_usage_errors(logs: Path) -> None:
    code, _, err = run("compute", *data_args(logs), "--by", "channel,intent", "--by", "a,b")
    assert code == 2
    assert err == (
        "kpictl: error: --by channel,intent --by a,b: one cross-tab per run; join all its "
        "columns in one --by (or use --cross)\n"
    )
    code, _, err = run("compute", *data_args(logs), "--by", "channel", "--cross")
    assert (code, err) == (2, "kpictl: error: --cross needs two or more --by columns to cross\n")
    code, _, err = run(
        "compare", *data_args(logs), "--by", "channel,intent", "--heterogeneity", "-b", "holdout"
    )
    assert code == 2
    assert err == (
        "kpictl: error: --heterogeneity tests the groups of one --by column at a time, not the "
        "cross-tab of channel, intent: give the columns as separate --by\n"
    )
