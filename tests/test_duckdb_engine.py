"""`--engine duckdb` (issue 13, first slice): the shipped spec compiled to DuckDB SQL gives the
polars engine's numbers for every KPI it covers, and refuses the others with their spec line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
import sqlglot

from conftest import SHIPPED_SPEC, run
from kpictl.engine.compute import ComputeOptions, run_compute
from kpictl.engine.duck import DuckDBEngine, NotCovered
from kpictl.engine.sources import load_sources
from kpictl.io.read import Sources
from kpictl.spec import load_spec

# every KPI of the shipped spec the DuckDB engine covers so far ...
COVERED = (
    "task_completion_rate",
    "containment_rate",
    "containment_with_quality",
    "time_to_resolution_p50",
    "time_to_resolution_p95",
    "csat_mean",
    "repeat_contact_rate_7d",
    "cost_per_successful_task",
    "cost_per_task",
    "tokens_per_task",
    "tool_calls_per_task",
    "human_minutes_per_task",
    "policy_violation_rate",
    "business_outcome_rate",
    "value_per_conversation",
    "cost_per_outcome",
)
# ... and the ones it refuses, with the construct it does not compile yet
NOT_COVERED = {
    "escalation_rate": "breakdown",
    "tool_call_success_rate": "the row table 'tool_calls' (from: tool_calls)",
    "agent_latency_p95": "the row table 'agent_turns' (from: events)",
}


def test_the_lists_name_every_kpi_of_the_shipped_spec() -> None:
    assert sorted([*COVERED, *NOT_COVERED]) == sorted(load_spec(SHIPPED_SPEC).kpis)


@pytest.fixture(scope="module")
def default_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`kpictl sample` with its defaults (2,000 conversations over 30 days, JSONL)."""
    out = tmp_path_factory.mktemp("sample")
    code, _, err = run("sample", "-o", str(out))
    assert code == 0, err
    return out


def _sources(logs: Path) -> Sources:
    spec = load_spec(SHIPPED_SPEC)
    names = ["events", "tool_calls", "business_events"]
    return load_sources(spec, {n: [logs / n] for n in names if (logs / n).exists()})


def _rows(table: object, by: tuple[str, ...]) -> dict[tuple[object, ...], dict[str, object]]:
    rows = {}
    for row in table.iter_rows(named=True):  # type: ignore[attr-defined]
        key = (row["kpi"], tuple(row["grouping"]), *(row[d] for d in by), row["breakdown_value"])
        assert key not in rows
        rows[key] = row
    return rows


@pytest.mark.parametrize("data", ["default_sample", "logs"])
@pytest.mark.parametrize("by", [(), ("channel",)])
def test_duckdb_gives_the_polars_numbers(
    data: str, by: tuple[str, ...], request: pytest.FixtureRequest
) -> None:
    logs = request.getfixturevalue(data)
    spec = load_spec(SHIPPED_SPEC)
    sources = _sources(logs)
    polars = run_compute(spec, sources, ComputeOptions(by=by)).table
    duck = run_compute(spec, sources, ComputeOptions(by=by, kpis=COVERED), engine=DuckDBEngine())
    expected = {k: r for k, r in _rows(polars, by).items() if k[0] in COVERED}
    got = _rows(duck.table, by)
    assert set(got) == set(expected)
    assert {k[0] for k in got} == set(COVERED)
    assert len({k[1:] for k in got}) == (5 if by else 1)  # overall, and the 4 channels
    for key, row in expected.items():
        other = got[key]
        assert (other["n"], other["pending"]) == (row["n"], row["pending"]), key
        if row["value"] is None:
            assert other["value"] is None, key
        else:
            assert math.isclose(other["value"], row["value"], rel_tol=1e-9, abs_tol=0), key
        assert other["reason"] == row["reason"], key


def test_compute_engine_duckdb_refuses_what_it_does_not_cover(logs: Path) -> None:
    args = [str(logs / "events"), "--source", f"tool_calls={logs / 'tool_calls'}"]
    code, out, err = run("compute", *args, "-c", str(SHIPPED_SPEC), "--engine", "duckdb")
    spec = load_spec(SHIPPED_SPEC)
    lines = [
        f"  kpi_definitions.yaml line {spec.kpis[name].lines.get('over') or spec.kpis[name].line}"
        f": KPI {name!r} uses {construct}"
        if construct != "breakdown"
        else f"  kpi_definitions.yaml line {spec.kpis[name].lines['breakdown']}: KPI {name!r} "
        "uses breakdown"
        for name, construct in NOT_COVERED.items()
    ]
    assert (code, out) == (2, "")
    assert err == (
        "kpictl: error: --engine duckdb does not cover these yet (run them with --engine "
        "polars, the default, or leave them out with --kpi):\n" + "\n".join(lines) + "\n"
    )
    # the lines are the KPI's own keys in the file
    text = SHIPPED_SPEC.read_text().splitlines()
    assert (
        text[spec.kpis["escalation_rate"].lines["breakdown"] - 1]
        .strip()
        .startswith("breakdown: escalation_reason")
    )


def test_the_api_refuses_a_row_table_too(logs: Path) -> None:
    spec = load_spec(SHIPPED_SPEC)
    options = ComputeOptions(kpis=("tool_call_success_rate",))
    with pytest.raises(NotCovered, match=r"table 'tool_calls' is a row table \(from: tool_calls\)"):
        run_compute(spec, _sources(logs), options, engine=DuckDBEngine())


def test_compute_engine_duckdb_json_is_the_polars_json(logs: Path) -> None:
    args = [str(logs / "events"), "--source", f"tool_calls={logs / 'tool_calls'}"]
    common = [*args, "-c", str(SHIPPED_SPEC), "--by", "channel", "-f", "json"]
    common += ["--kpi", "task_completion_rate", "--kpi", "time_to_resolution_p95"]
    code, out, err = run("compute", *common, "--engine", "duckdb")
    assert code == 0, err
    code, polars_out, err = run("compute", *common)
    assert code == 0, err
    duck, polars = json.loads(out)["results"], json.loads(polars_out)["results"]
    assert [(r["kpi"], r["cohort"], r["n"], r["pending"]) for r in duck] == [
        (r["kpi"], r["cohort"], r["n"], r["pending"]) for r in polars
    ]
    for d, p in zip(duck, polars, strict=True):
        assert d["value"] == pytest.approx(p["value"], rel=1e-9)


def test_compile_prints_the_sql_that_runs(logs: Path) -> None:
    args = [str(logs / "events"), "--source", f"tool_calls={logs / 'tool_calls'}"]
    code, out, err = run(
        "compile",
        *args,
        "-c",
        str(SHIPPED_SPEC),
        "--engine",
        "duckdb",
        "--by",
        "channel",
        "--kpi",
        "task_completion_rate",
        "--kpi",
        "cost_per_task",
    )
    assert code == 0, err
    assert out.startswith("-- kpictl compile --engine duckdb\n")
    statements = [s for s in sqlglot.parse(out, read="duckdb") if s is not None]
    assert len(statements) == 3  # the conversations' facts, then one query per KPI
    assert "-- facts_conversations: one row per conversation_id\nWITH " in out
    assert "-- KPI task_completion_rate\nSELECT 'task_completion_rate' AS kpi" in out
    assert 'GROUP BY GROUPING SETS ((), ("channel"))' in out
    # mature is AND-ed into every aggregate's FILTER; TOTAL and FIRST rewritten
    assert "COUNT(*) FILTER(WHERE (completed) AND __mature)" in out
    assert "CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE)" in out
    assert "ARG_MIN_NULL(escalation_reason, {'t': ts, 'r': __kpictl_row})" in out


def test_compile_refuses_what_it_does_not_cover(logs: Path) -> None:
    args = [str(logs / "events"), "--source", f"tool_calls={logs / 'tool_calls'}"]
    code, out, err = run("compile", *args, "-c", str(SHIPPED_SPEC), "--kpi", "escalation_rate")
    line = load_spec(SHIPPED_SPEC).kpis["escalation_rate"].lines["breakdown"]
    assert (code, out) == (2, "")
    assert err.endswith(
        f"\n  kpi_definitions.yaml line {line}: KPI 'escalation_rate' uses breakdown\n"
    )


def test_grain_is_refused(logs: Path) -> None:
    args = [str(logs / "events"), "--source", f"tool_calls={logs / 'tool_calls'}"]
    code, _, err = run(
        "compute",
        *args,
        "-c",
        str(SHIPPED_SPEC),
        "--engine",
        "duckdb",
        "--grain",
        "week",
        "--kpi",
        "cost_per_task",
    )
    assert (code, err) == (
        2,
        "kpictl: error: --engine duckdb: --grain is not covered yet; run it with --engine polars\n",
    )


def test_a_cross_tab_is_refused(logs: Path) -> None:
    args = [str(logs / "events"), "--source", f"tool_calls={logs / 'tool_calls'}"]
    code, _, err = run(
        "compute",
        *args,
        "-c",
        str(SHIPPED_SPEC),
        "--engine",
        "duckdb",
        "--by",
        "channel,intent",
        "--kpi",
        "cost_per_task",
    )
    assert (code, err) == (
        2,
        "kpictl: error: --engine duckdb: a cross-tab (--by a,b or --cross) is not covered "
        "yet; run it with --engine polars\n",
    )


def test_cost_kpis_over_partly_unpriced_data_are_refused(logs: Path, tmp_path: Path) -> None:
    """With a price table that prices one of the sample's two models, polars makes a cohort
    without a known cost null ('cost unknown'); the DuckDB engine does not have that rule yet,
    so it refuses instead of printing a number for it."""
    events = pl.read_parquet(logs / "events")
    models = sorted(m for m in events["model"].unique().to_list() if m is not None)
    assert len(models) >= 2
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SHIPPED_SPEC.read_text().replace(
            "\nsources:\n",
            f"\npricing:\n  models:\n    {models[0]}: {{input: 1.0, output: 2.0}}\n\nsources:\n",
            1,
        )
    )
    args = [str(logs / "events"), "--source", f"tool_calls={logs / 'tool_calls'}"]
    args += ["--source", f"business_events={logs / 'business_events'}", "-c", str(spec)]
    code, out, err = run("compute", *args, "--kpi", "cost_per_task", "--engine", "duckdb")
    assert (code, out) == (2, "")
    assert err == (
        "kpictl: error: --engine duckdb: the cost of part of the data is unknown, and a cohort "
        "without a known cost is computed by --engine polars only (it is null there, 'cost "
        "unknown'); run cost_per_task with --engine polars\n"
    )
    code, _, err = run("compute", *args, "--kpi", "cost_per_task")  # polars computes it
    assert code == 0, err
