"""`--engine duckdb` (issue 13, first slice): the shipped spec compiled to DuckDB SQL gives the
polars engine's numbers for every KPI it covers, and refuses the others with their spec line."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import sqlglot

from conftest import SHIPPED_SPEC, run, sample_sources
from kpictl.engine.compute import run_compute
from kpictl.engine.duck import DuckDBEngine, NotCovered, uncovered
from kpictl.engine.interface import ComputeOptions
from kpictl.engine.sources import load_sources
from kpictl.io.read import Sources
from kpictl.sample import write_sample
from kpictl.spec import load_spec
from parity import assert_same_numbers

# every construct of the shipped spec: formulas, breakdown, row tables, cost KPIs
RUNS = {
    "by channel": ComputeOptions(by=("channel",)),
    "cross-tab by week": ComputeOptions(
        by=("channel", "intent"), cross=("channel", "intent"), grain="week"
    ),
    "by day, --where on tool calls": ComputeOptions(
        by=("region",), grain="day", where="tool = 'search'"
    ),
}


def test_every_kpi_of_the_shipped_spec_is_covered() -> None:
    spec = load_spec(SHIPPED_SPEC)
    for options in RUNS.values():
        assert uncovered(spec, list(spec.kpis.values()), options) == []


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


@pytest.mark.parametrize("data", ["default_sample", "logs"])
@pytest.mark.parametrize("run", list(RUNS))
def test_duckdb_gives_the_polars_numbers(
    data: str, run: str, request: pytest.FixtureRequest
) -> None:
    """Every row of every KPI (formula and breakdown rows included), n and pending exactly,
    values to 1e-9 relative, the same notes; the sample has every cohort in every set."""
    logs = request.getfixturevalue(data)
    spec = load_spec(SHIPPED_SPEC)
    sources = _sources(logs)
    options = RUNS[run]
    polars = run_compute(spec, sources, options)
    duck = run_compute(spec, sources, options, engine=DuckDBEngine())
    assert assert_same_numbers(polars.table, duck.table, options.by) == polars.table.height
    assert set(duck.table["kpi"]) == set(spec.kpis)
    assert duck.table.filter(pl.col("breakdown").is_not_null()).height > 0
    assert duck.notes == polars.notes


@pytest.fixture()
def rounded_spec(tmp_path: Path) -> tuple[Path, int]:
    """The shipped spec with csat_mean's value as AVG(ROUND(csat)): ROUND has no rule (its
    halves round differently on the engines), so the SQL engines refuse it; and its line."""
    text = SHIPPED_SPEC.read_text()
    assert text.count("value: AVG(csat)") == 1
    path = tmp_path / "kpi_definitions.yaml"
    path.write_text(text.replace("value: AVG(csat)", "value: AVG(ROUND(csat))"))
    return path, load_spec(path).kpis["csat_mean"].line or 0


def test_compute_engine_duckdb_refuses_what_it_does_not_cover(
    logs: Path, rounded_spec: tuple[Path, int]
) -> None:
    path, line = rounded_spec
    args = [str(logs / "events"), *sample_sources(logs), "-c", str(path), "--engine", "duckdb"]
    code, out, err = run("compute", *args)
    assert (code, out) == (2, "")
    assert err == (
        "kpictl: error: --engine duckdb does not cover these yet (run them with --engine "
        "polars, the default, or leave them out with --kpi):\n"
        f"  kpi_definitions.yaml line {line}: KPI 'csat_mean' uses the function ROUND()\n"
    )
    code, _, err = run("compute", *args, "--kpi", "csat_mean", "--engine", "polars")
    assert code == 0, err  # polars computes it
    code, _, err = run("compute", *args, "--kpi", "task_completion_rate")
    assert code == 0, err  # left out with --kpi


def test_the_api_refuses_it_too(logs: Path, rounded_spec: tuple[Path, int]) -> None:
    spec = load_spec(rounded_spec[0])
    options = ComputeOptions(kpis=("csat_mean",))
    with pytest.raises(NotCovered, match=r"KPI 'csat_mean' uses the function ROUND\(\)"):
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
        "--kpi",
        "tool_call_success_rate",
    )
    assert code == 0, err
    assert out.startswith("-- kpictl compile --engine duckdb\n")
    statements = [s for s in sqlglot.parse(out, read="duckdb") if s is not None]
    # DuckDB reads the Parquet events and tool calls itself (a view each), then the two
    # tables' facts, then one query per KPI
    assert len(statements) == 7
    assert 'CREATE OR REPLACE VIEW "source_events" AS\nSELECT ' in out
    assert "-- facts_conversations: one row per conversation_id\nWITH " in out
    assert (
        "-- facts_tool_calls: the rows of source 'tool_calls' with what they look up in "
        "facts_conversations\nSELECT "
    ) in out
    assert (
        'LEFT JOIN "facts_conversations" AS p ON r."conversation_id" = p."conversation_id"' in out
    )
    assert "-- KPI task_completion_rate\nSELECT 'task_completion_rate' AS kpi" in out
    assert 'GROUP BY GROUPING SETS ((), ("__by_channel"))' in out
    # mature is AND-ed into every aggregate's FILTER; TOTAL and FIRST rewritten
    assert "COUNT(*) FILTER(WHERE (completed) AND __mature)" in out
    assert "CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE)" in out
    assert "ARG_MIN_NULL(escalation_reason, {'t': ts, 'r': __kpictl_row})" in out


def test_compile_refuses_what_it_does_not_cover(logs: Path, rounded_spec: tuple[Path, int]) -> None:
    path, line = rounded_spec
    args = [str(logs / "events"), *sample_sources(logs), "-c", str(path)]
    code, out, err = run("compile", *args, "--kpi", "csat_mean")
    assert (code, out) == (2, "")
    assert err.endswith(
        f"\n  kpi_definitions.yaml line {line}: KPI 'csat_mean' uses the function ROUND()\n"
    )


def test_grain_and_cross_tab_json_are_the_polars_json(logs: Path) -> None:
    """compute --grain week --by channel,intent through the CLI: the same JSON rows (bucket,
    cohort, n, pending) on both engines, values to 1e-9."""
    args = [str(logs / "events"), *sample_sources(logs), "-c", str(SHIPPED_SPEC), "-f", "json"]
    args += ["--grain", "week", "--by", "channel,intent", "--kpi", "escalation_rate"]
    args += ["--kpi", "tool_call_success_rate"]
    code, out, err = run("compute", *args, "--engine", "duckdb")
    assert code == 0, err
    code, polars_out, err = run("compute", *args)
    assert code == 0, err
    duck, polars = json.loads(out)["results"], json.loads(polars_out)["results"]
    assert len(polars) > 20
    assert [{k: v for k, v in r.items() if k != "value"} for r in duck] == [
        {k: v for k, v in r.items() if k != "value"} for r in polars
    ]
    for d, p in zip(duck, polars, strict=True):
        assert d["value"] == pytest.approx(p["value"], rel=1e-9)


TWO_MODELS = """\
version: 1
pricing:
  models:
    gpt-4o: {input: 2.5, output: 10.0}
sources:
  events:
    path: runs.jsonl
    format: chat
    options:
      ts: created_at
tables:
  trials:
    key: conversation_id
    time: started_at
    attributes: [model]
    rollup:
      events:
        started_at: MIN(ts)
        llm_cost: TOTAL(cost_usd)
kpis:
  cost_per_trial:
    over: trials
    value: AVG(llm_cost)
    format: usd
"""


def test_a_cohort_without_a_known_cost_is_cost_unknown_on_duckdb_too(tmp_path: Path) -> None:
    """c1, c2 on a priced model, c3 (tokens, no price) and c4 (no usage) on an unpriced one:
    the unpriced cohort is null with the polars engine's reason, never $0; the priced
    cohort's cost by hand (2.5 and 10 USD per 1M input and output tokens)."""

    def chat(name: str, model: str, usage: tuple[int, int] | None) -> dict[str, object]:
        reply: dict[str, object] = {"role": "assistant", "content": "Done."}
        if usage is not None:
            reply["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
        messages = [{"role": "user", "content": "Hi"}, reply]
        return {
            "id": name,
            "model": model,
            "created_at": "2026-10-01T10:00:00Z",
            "messages": messages,
        }

    chats = [
        chat("c1", "gpt-4o", (1000, 200)),
        chat("c2", "gpt-4o", (2000, 100)),
        chat("c3", "my-finetune", (500, 50)),
        chat("c4", "my-finetune", None),
    ]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    (tmp_path / "spec.yaml").write_text(TWO_MODELS)
    args = ["-c", str(tmp_path / "spec.yaml"), "--by", "model", "-f", "json", "--no-cache"]
    code, out, err = run("compute", *args, "--engine", "duckdb")
    assert code == 0, err
    code, polars_out, err = run("compute", *args)
    assert code == 0, err
    duck = {r["cohort"].get("model"): r for r in json.loads(out)["results"]}
    assert duck["my-finetune"]["value"] is None
    assert duck["my-finetune"]["reason"] == (
        "cost unknown: no row of source 'events' here has a cost (rows that should carry one: 2)"
    )
    priced = (1000 * 2.5 + 200 * 10.0 + 2000 * 2.5 + 100 * 10.0) / 1e6
    assert duck["gpt-4o"]["value"] == pytest.approx(priced / 2, rel=1e-12)
    assert duck[None]["value"] == pytest.approx(priced / 4, rel=1e-12)
    assert json.loads(out)["results"] == json.loads(polars_out)["results"]


CHAT = Path(__file__).resolve().parent / "fixtures" / "chat"


@pytest.mark.parametrize(
    "options",
    [ComputeOptions(), ComputeOptions(grain="day"), ComputeOptions(by=("task_id",))],
    ids=["overall", "by day", "by the task column"],
)
def test_the_chat_fixture_on_duckdb(options: ComputeOptions) -> None:
    """tau-bench-style chat logs (tests/fixtures/chat): pass^1, pass^2, pass@2 over tasks, a
    breakdown, a row table over a source derived from the chats (tool calls), a priced cost
    KPI: the same rows and numbers on both engines. `--by task_id`, the pass^k task column
    itself: polars grouped by it twice and failed ("duplicate output name") before."""
    spec = load_spec(CHAT / "spec.yaml")
    sources = load_sources(spec, cache=False)
    polars = run_compute(spec, sources, options)
    duck = run_compute(spec, sources, options, engine=DuckDBEngine())
    assert assert_same_numbers(polars.table, duck.table, options.by) == polars.table.height
    passk = polars.table.filter(
        pl.col("kpi").str.starts_with("pass_") & pl.col("value").is_not_null()
    )
    assert passk.height >= 3
    assert duck.notes == polars.notes


def test_logs_without_some_attribute_columns(tmp_path: Path) -> None:
    """Events with no region, agent_version, arm or customer_tier column at all: those
    attributes are null on both engines (DuckDB raised a binder error, a traceback, before the
    plan made a missing attribute NULL); the other numbers equal polars'."""
    logs = tmp_path / "logs"
    write_sample(logs, conversations=60, seed=11, days=10, fmt="parquet")
    events = pl.read_parquet(logs / "events")
    dropped = ["region", "agent_version", "arm", "customer_tier"]
    assert set(dropped) <= set(events.columns)
    (logs / "events" / "events.parquet").unlink()
    events.drop(dropped).write_parquet(logs / "events" / "events.parquet")
    spec = load_spec(SHIPPED_SPEC)
    sources = _sources(logs)
    options = ComputeOptions(by=("channel",), grain="week")
    polars = run_compute(spec, sources, options)
    duck = run_compute(spec, sources, options, engine=DuckDBEngine())
    assert assert_same_numbers(polars.table, duck.table, options.by) == polars.table.height
    window = polars.window
    facts = DuckDBEngine().build_facts(spec, sources, window, ["conversations"])
    conversations = facts.tables["conversations"].collect()
    assert conversations.height == 60
    assert conversations.select(pl.col(dropped).null_count()).row(0) == (60, 60, 60, 60)
