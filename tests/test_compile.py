"""`kpictl compile --engine duckdb|spark`: the SQL of the shipped spec in each dialect, kept as
golden files (tests/golden/sql/) and re-parsed in that dialect; what a dialect refuses; what
`--engine spark` says when pyspark or Java is missing. No Spark session here: the Spark group is
tests/test_spark_engine.py (`pytest -m spark`).

A change of the SQL on purpose (a new rule, more coverage) regenerates the files ONLY with
`KPICTL_UPDATE_GOLDEN=1` — review the diff before committing:

    KPICTL_UPDATE_GOLDEN=1 pytest tests/test_compile.py
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import sqlglot

from conftest import SHIPPED_SPEC, run
from kpictl.engine.compute import run_compute
from kpictl.engine.duck import DuckDBEngine
from kpictl.engine.interface import ComputeOptions
from kpictl.engine.selection import selected_kpis
from kpictl.engine.sources import load_sources
from kpictl.engine.spark import INSTALL, spark_session
from kpictl.engine.sqlplan import compile_text, uncovered, watch_statements
from kpictl.engine.window import resolve_window
from kpictl.errors import UsageError
from kpictl.spec import load_spec
from test_parity import EDGES, HOUR, PRICED, T0, _write

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "sql"
UPDATE = os.environ.get("KPICTL_UPDATE_GOLDEN") == "1"
AS_OF = "2026-10-10T00:00:00Z"


def _compile(dialect: str, *args: str) -> tuple[int, str, str]:
    previous = Path.cwd()
    os.chdir(ROOT)  # the shipped sample's paths, relative, in the header
    try:
        return run("compile", "--engine", dialect, "--as-of", AS_OF, *args)
    finally:
        os.chdir(previous)


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_the_shipped_spec_compiles_as_its_golden_file(dialect: str) -> None:
    spec = load_spec(SHIPPED_SPEC)
    options = ComputeOptions(by=("channel",))
    kpis = list(spec.kpis)
    assert uncovered(spec, list(spec.kpis.values()), options, dialect) == []  # type: ignore[arg-type]
    code, out, err = _compile(dialect, "--by", "channel")
    assert code == 0, err
    golden = GOLDEN / f"shipped_spec.{dialect}.sql"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(out)
    assert golden.exists(), "no golden file: run with KPICTL_UPDATE_GOLDEN=1 and review it"
    assert out == golden.read_text()
    # every statement parses in its dialect and prints back as written
    statements = [s for s in sqlglot.parse(out, read=dialect) if s is not None]
    # the facts of conversations, tool_calls and agent_turns, then one query per KPI
    assert len(statements) == 3 + len(kpis)
    for statement in statements:
        assert sqlglot.parse_one(statement.sql(dialect), read=dialect) == statement


def test_compile_spark_refuses_what_it_does_not_cover(tmp_path: Path) -> None:
    """A function without a rule (ROUND: halves round differently on the engines)."""
    spec = tmp_path / "kpi_definitions.yaml"
    spec.write_text(SHIPPED_SPEC.read_text().replace("value: AVG(csat)", "value: AVG(ROUND(csat))"))
    logs = ROOT / "sample_logs"
    sources = [f"--source={n}={logs / n}" for n in ("tool_calls", "business_events")]
    code, out, err = _compile(
        "spark", str(logs / "events"), *sources, "-c", str(spec), "--kpi", "csat_mean"
    )
    line = load_spec(spec).kpis["csat_mean"].line
    assert (code, out) == (2, "")
    assert err == (
        "kpictl: error: --engine spark does not cover these yet (run them with --engine polars, "
        "the default, or leave them out with --kpi):\n"
        f"  kpi_definitions.yaml line {line}: KPI 'csat_mean' uses the function ROUND()\n"
    )


def test_spark_without_java_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No java on PATH and no JAVA_HOME (or no pyspark): a UsageError naming the extra and the
    runtime, before any session starts; the CLI exits 2 with it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(UsageError) as caught:
        spark_session("local[1]")
    assert str(caught.value).startswith("--engine spark needs ")
    assert str(caught.value).endswith(INSTALL)
    code, out, err = _compile("spark", "--kpi", "task_completion_rate")
    assert code == 0, err  # compile needs no session
    code, out, err = run(
        "compute",
        "-c",
        str(SHIPPED_SPEC),
        "--engine",
        "spark",
        "--kpi",
        "task_completion_rate",
        str(ROOT / "sample_logs" / "events"),
    )
    assert (code, out) == (2, "")
    assert err == f"kpictl: error: {caught.value}\n"


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_validate_engine_names_each_kpi_it_does_not_compile(dialect: str, tmp_path: Path) -> None:
    """A function no rule of the SQL engines covers (ROUND: polars, DuckDB and Spark round
    halves differently) is refused with the KPI's spec line; without --engine the spec is
    valid (polars runs it)."""
    text = SHIPPED_SPEC.read_text()
    assert text.count("    value: AVG(csat)\n") == 1
    spec_file = tmp_path / "kpi_definitions.yaml"
    spec_file.write_text(text.replace("    value: AVG(csat)\n", "    value: AVG(ROUND(csat))\n"))
    code, out, err = run("validate", "-c", str(spec_file))
    assert code == 0, err
    code, out, err = run("validate", "-c", str(spec_file), "--engine", dialect)
    line = load_spec(spec_file).kpis["csat_mean"].line
    expected = f"  kpi_definitions.yaml line {line}: KPI 'csat_mean' uses the function ROUND()\n"
    assert (code, out) == (2, "")
    assert err.startswith(f"kpictl: error: --engine {dialect} does not cover these yet")
    assert expected in err


# EDGES and a conversation of model m2 (no price under PRICED) whose tokens have no cost
COSTLY = replace(
    EDGES,
    events=[
        *EDGES.events,
        *(
            {
                "conversation_id": "c9",
                "ts": T0 + HOUR,
                "event": "message",
                "role": role,
                "model": "m2",
                "channel": "web",
                "input_tokens": 120,
                "output_tokens": 30,
            }
            for role in ("user", "agent")
        ),
    ],
)


@pytest.mark.parametrize(
    "run_options",
    [
        ComputeOptions(by=("channel", "region"), grain="week"),
        ComputeOptions(by=("channel", "intent"), cross=("channel", "intent"), grain="hour"),
        ComputeOptions(by=("model",), grain="day", where="model = 'm2'"),
    ],
    ids=["by-week", "crosstab-hour", "model-day-where"],
)
def test_compile_prints_the_statements_the_engine_runs(run_options: ComputeOptions) -> None:
    """`compile` with a run's options (--by, cross-tab, --grain, --where) prints every facts
    and KPI statement the DuckDB engine runs for them, as it runs them — the time buckets'
    GROUPING SETS and, with a price table leaving a model's cost unknown, the cost counts."""
    with tempfile.TemporaryDirectory(prefix="kpictl-compile-") as folder:
        (Path(folder) / "kpi_definitions.yaml").write_text(PRICED)
        spec = load_spec(Path(folder) / "kpi_definitions.yaml")
        sources = load_sources(spec, _write(Path(folder), COSTLY), cache=False)
        options = replace(run_options, as_of=COSTLY.as_of)
        with watch_statements() as ran:
            run_compute(spec, sources, options, engine=DuckDBEngine())
        kpis = selected_kpis(spec, options.kpis)[0]
        window = resolve_window(spec, sources, options)
        printed = compile_text(spec, sources, window, options, kpis, "duckdb")
    statements = {  # each statement without its heading comment
        "\n".join(x for x in s.splitlines() if x and not x.startswith("-- "))
        for s in printed.split(";\n")
    }
    assert len(ran) >= 3 + 16
    assert [s for s in ran if s not in statements] == []
    assert any("DATE_TRUNC(" in s and "GROUPING SETS" in s for s in ran)
    # the cost KPIs' counts of rows with a known cost (the price table leaves m2 unknown)
    assert any('SUM("__cost_known:' in s for s in ran)


def test_compile_cli_takes_grain_and_cross_tabs() -> None:
    code, out, err = _compile(
        "duckdb", "--kpi", "task_completion_rate", "--grain", "week", "--by", "channel,intent"
    )
    assert code == 0, err
    (kpi,) = [s for s in out.split(";\n") if "-- KPI task_completion_rate" in s]
    assert "DATE_TRUNC('week', \"started_at\")" in kpi
    assert (
        'GROUPING SETS ((), ("__by_channel", "__by_intent"), ("__by_bucket"), '
        '("__by_bucket", "__by_channel", "__by_intent"))'
    ) in kpi
