"""`--approx-percentiles` (issue 13): percentile KPIs by the SQL engine's approximate aggregate
(DuckDB `approx_quantile`, Spark `percentile_approx`), within the engine's error bound of the
exact value, and labelled approximate in every output; refused on the polars engine. The Spark
case is in tests/test_spark_approx.py (`pytest -m spark`)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
import sqlglot

from conftest import SHIPPED_SPEC, run, sample_sources
from kpictl.engine.compute import run_compute
from kpictl.engine.duck import DuckDBEngine
from kpictl.engine.interface import ComputeOptions
from kpictl.engine.polarsengine import PolarsEngine
from kpictl.engine.sources import load_sources
from kpictl.engine.sqlplan import approximate_kpis
from kpictl.engine.window import resolve_window
from kpictl.spec import load_spec
from kpictl.sql.dialect import APPROX_ACCURACY, Dialect, translate

SPEC = load_spec(SHIPPED_SPEC)
PERCENTILES = ("time_to_resolution_p50", "time_to_resolution_p95", "agent_latency_p95")
KPIS = (*PERCENTILES, "task_completion_rate")
# DuckDB documents no bound for its T-Digest: the rank error the tests hold it to (observed
# well under it on these data); Spark's documented bound is n / accuracy
DUCKDB_RANK_ERROR = 0.01


def rank_error(values: np.ndarray, got: float, q: float) -> float:
    """How far `got` is, as a share of the values, from being the q-quantile: 0 when it lies
    between two adjacent values (or on one) whose ranks bracket q·n — the share below the
    lower one at most q, the share at or below the upper one at least q (an interpolating
    digest may answer between two tied runs); else the distance of q from that bracket."""
    ordered = np.sort(values)
    lower = ordered[max(int(np.searchsorted(ordered, got, side="right")) - 1, 0)]
    upper = ordered[min(int(np.searchsorted(ordered, got, side="left")), len(ordered) - 1)]
    below = float(np.mean(values < lower))
    at_or_below = float(np.mean(values <= upper))
    return max(below - q, q - at_or_below, 0.0)


def test_rules_print_and_reparse_in_each_dialect() -> None:
    cases: dict[Dialect, str] = {
        "duckdb": "APPROX_QUANTILE(CAST(x AS DOUBLE), 0.95) FILTER(WHERE (ok) AND m)",
        "spark": f"PERCENTILE_APPROX(CAST(x AS DOUBLE), 0.95, {APPROX_ACCURACY}) "
        "FILTER(WHERE (ok) AND m)",
    }
    for dialect, want in cases.items():
        tree = translate(
            "QUANTILE_CONT(x, 0.95) FILTER (WHERE ok)", {}, dialect, mature="m", approx=True
        )
        text = tree.sql(dialect=dialect)
        assert text == want
        assert sqlglot.parse_one(text, read=dialect).sql(dialect=dialect) == text
    exact = translate("MEDIAN(x)", {}, "duckdb").sql("duckdb")
    assert exact == "QUANTILE_CONT(CAST(x AS DOUBLE), 0.5)"


def test_duckdb_approx_quantile_within_its_rank_error_on_drawn_data() -> None:
    """200,000 lognormal and 200,000 tied integer values: DuckDB's approx_quantile at
    q = 0.5, 0.95, 0.99 is within 1 % rank of the exact quantile; the exact rule equals
    numpy's linear quantile."""
    con = duckdb.connect()
    con.execute(  # Box-Muller: lognormal(5, 1.2); integers 0..49
        "CREATE TABLE t AS SELECT exp(5 + 1.2 * sqrt(-2 * ln(1 - random())) "
        "* cos(2 * pi() * random())) AS x, floor(random() * 50) AS k FROM range(200000)"
    )
    columns = {k: np.asarray(v, dtype=float) for k, v in con.execute("FROM t").fetchnumpy().items()}
    assert len(columns["x"]) == 200_000 and len(np.unique(columns["k"])) == 50
    for name, values in columns.items():
        for q in (0.5, 0.95, 0.99):
            approx = translate(f"QUANTILE_CONT({name}, {q})", {}, "duckdb", approx=True)
            exact = translate(f"QUANTILE_CONT({name}, {q})", {}, "duckdb")
            row = con.execute(
                f"SELECT {approx.sql('duckdb')}, {exact.sql('duckdb')} FROM t"
            ).fetchone()
            assert row is not None
            got, want = row
            assert want == pytest.approx(float(np.quantile(values, q)), rel=1e-12)
            assert rank_error(values, got, q) <= DUCKDB_RANK_ERROR, (name, q, got, want)


def test_engine_values_within_the_bound_and_named_approximate(logs: Path) -> None:
    """The sample through the DuckDB engine with approx_percentiles: each percentile KPI (per
    channel too) within the rank bound of the polars engine's exact value, over the same facts;
    every other KPI equal to polars; the result names exactly the percentile KPIs."""
    sources = load_sources(
        SPEC, {n: [logs / n] for n in ("events", "tool_calls", "business_events")}
    )
    options = ComputeOptions(by=("channel",), kpis=KPIS)
    exact = run_compute(SPEC, sources, options)
    engine = DuckDBEngine()
    engine.approx_percentiles = True
    approx = run_compute(SPEC, sources, options, engine=engine)
    assert approx.approximation is not None and exact.approximation is None
    assert approx.approximation.kpis == PERCENTILES
    assert any("approximate percentiles" in n for n in approx.notes)
    window = resolve_window(SPEC, sources, options)
    facts = (
        PolarsEngine().build_facts(SPEC, sources, window, ["conversations", "agent_turns"]).tables
    )
    key = ["kpi", "channel"]
    joined = exact.table.select(*key, "value", "n").join(
        approx.table.select(*key, pl.col("value").alias("approx"), pl.col("n").alias("n2")),
        on=key,
        nulls_equal=True,
    )
    cohorts = exact.table.height // len(KPIS)  # all, then each channel
    assert joined.height == exact.table.height == len(KPIS) * cohorts and cohorts >= 4
    checked = 0
    for row in joined.iter_rows(named=True):
        assert row["n"] == row["n2"]
        kpi = SPEC.kpis[row["kpi"]]
        if row["kpi"] not in PERCENTILES:
            assert row["approx"] == pytest.approx(row["value"], rel=1e-12)
            continue
        frame = facts[kpi.over].collect()
        if kpi.where:
            frame = frame.filter(pl.sql_expr(kpi.where))
        if row["channel"] is not None:
            frame = frame.filter(pl.col("channel") == row["channel"])
        column = "ttr_s" if row["kpi"].startswith("time") else "latency_ms"
        values = frame.get_column(column).drop_nulls().cast(pl.Float64).to_numpy()
        assert len(values) == row["n"] or kpi.over == "agent_turns"
        q = 0.5 if row["kpi"].endswith("p50") else 0.95
        assert float(np.quantile(values, q)) == pytest.approx(row["value"], rel=1e-9)
        assert rank_error(values, row["approx"], q) <= DUCKDB_RANK_ERROR, row
        checked += 1
    assert checked == len(PERCENTILES) * cohorts


def test_formulas_over_a_percentile_are_approximate_too(write_spec: object) -> None:
    path = write_spec(  # type: ignore[operator]
        (
            "  resolved_share:\n    formula: resolution_rate / (resolution_rate + escalation_rate)",
            "  resolved_share:\n    formula: resolution_rate / (resolution_rate + "
            "escalation_rate)\n  spread:\n    formula: ttr_p95 - ttr_p50\n  "
            "double_spread:\n    formula: spread * 2",
        )
    )
    spec = load_spec(path)
    names = approximate_kpis(spec, list(spec.kpis.values()))
    assert names == ("ttr_p50", "ttr_p95", "spread", "double_spread")


def _compute(logs: Path, *args: str) -> tuple[int, str, str]:
    common = [str(logs / "events"), *sample_sources(logs), "-c", str(SHIPPED_SPEC)]
    kpis = [a for k in ("time_to_resolution_p50", "task_completion_rate") for a in ("--kpi", k)]
    return run("compute", *common, *kpis, "--no-cache", *args)


def test_every_format_labels_the_approximate_values(logs: Path) -> None:
    flag = ("--engine", "duckdb", "--approx-percentiles")
    code, out, err = _compute(logs, *flag, "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    marks = {(r["kpi"], r["approximate"]) for r in document["results"]}
    assert marks == {("time_to_resolution_p50", True), ("task_completion_rate", False)}
    assert any("approx_quantile" in n for n in document["notes"])
    assert "approx_quantile" in err  # the note on stderr too

    code, out, err = _compute(logs, *flag, "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {(r["kpi"], r["approximate"]) for r in rows} == {
        ("time_to_resolution_p50", "true"),
        ("task_completion_rate", "false"),
    }

    code, out, err = _compute(logs, *flag, "--format", "markdown")
    assert code == 0, err
    lines = out.splitlines()
    (median,) = [line for line in lines if line.startswith("| Time to resolution, median")]
    (rate,) = [line for line in lines if line.startswith("| Task completion")]
    assert "| ≈ " in median and "≈" not in rate
    assert any(line.startswith("- approximate percentiles (--approx-percentiles") for line in lines)

    code, out, err = _compute(logs, *flag)
    assert code == 0, err
    (median,) = [line for line in out.splitlines() if "Time to resolution, median" in line]
    assert "≈ " in median
    assert "≈ approximate percentile (--approx-percentiles: DuckDB's approx_quantile" in out


def test_exact_runs_carry_no_label(logs: Path) -> None:
    code, out, err = _compute(logs, "--engine", "duckdb", "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert all("approximate" not in r for r in document["results"])
    code, out, err = _compute(logs, "--engine", "duckdb", "--format", "csv")
    assert "approximate" not in out.splitlines()[0]
    code, out, err = _compute(logs, "--engine", "duckdb")
    assert "≈" not in out


def test_polars_refuses_the_option(logs: Path) -> None:
    code, out, err = _compute(logs, "--approx-percentiles")
    assert code == 2
    assert err == (
        "kpictl: error: --approx-percentiles: the polars engine computes percentiles exactly "
        "only; add --engine duckdb or --engine spark for approximate percentiles, or leave "
        "the option out\n"
    )
    assert out == ""


def test_compile_prints_the_approximate_sql() -> None:
    for dialect, function in (("duckdb", "APPROX_QUANTILE("), ("spark", "PERCENTILE_APPROX(")):
        args = ["--kpi", "time_to_resolution_p50", "--kpi", "task_completion_rate"]
        code, out, err = run(
            "compile", "-c", str(SHIPPED_SPEC), "--engine", dialect, "--approx-percentiles", *args
        )
        assert code == 0, err
        assert out.startswith(f"-- kpictl compile --engine {dialect} --approx-percentiles\n")
        assert "-- approximate percentiles (" in out
        assert "-- KPI time_to_resolution_p50 (approximate)" in out
        assert "-- KPI task_completion_rate\n" in out
        assert out.count(function) == 1
        assert "QUANTILE_CONT(" not in out and "PERCENTILE(" not in out
        code, exact, err = run("compile", "-c", str(SHIPPED_SPEC), "--engine", dialect, *args)
        assert function not in exact and "approximate" not in exact


def _command(logs: Path, command: str, *args: str) -> tuple[int, str, str]:
    common = [str(logs / "events"), *sample_sources(logs), "-c", str(SHIPPED_SPEC)]
    kpis = [a for k in ("time_to_resolution_p50", "task_completion_rate") for a in ("--kpi", k)]
    return run(command, *common, *kpis, "--no-cache", *args)


@pytest.mark.parametrize("command", ["compare", "report"])
def test_compare_and_report_refuse_it_on_polars(logs: Path, command: str) -> None:
    code, out, err = _command(logs, command, "--approx-percentiles")
    assert code == 2 and out == ""
    assert err.startswith("kpictl: error: --approx-percentiles: the polars engine computes")


def test_compare_shows_compute_values_marked_and_an_exact_test(logs: Path) -> None:
    """With the option compare's percentile values are the engine's approximate ones (as
    compute's), marked in JSON, CSV, Markdown and the table; Δ, its CI and p stay the exact
    test's (equal to the run without the option); the values are within the rank bound of
    the exact ones."""
    flag = ("--engine", "duckdb", "--approx-percentiles")
    code, out, err = _command(logs, "compare", *flag, "--format", "json")
    assert code == 0, err
    approx = {r["kpi"]: r for r in json.loads(out)["results"]}
    code, out, err = _command(logs, "compare", "--engine", "duckdb", "--format", "json")
    assert code == 0, err
    exact = {r["kpi"]: r for r in json.loads(out)["results"]}
    assert {k: r["approximate"] for k, r in approx.items()} == {
        "time_to_resolution_p50": True,
        "task_completion_rate": False,
    }
    assert all("approximate" not in r for r in exact.values())
    for name in approx:
        a, e = approx[name], exact[name]
        assert (a["delta"], a["delta_ci"], a["p_value"]) == (
            e["delta"],
            e["delta_ci"],
            e["p_value"],
        )
        assert a["current"]["n"] == e["current"]["n"]
    median = approx["time_to_resolution_p50"]
    # the exact test's point estimates are numpy's linear quantiles of the same rows: the
    # approximate values differ from them, within DuckDB's rank bound (checked on compute's
    # rows in test_engine_values_within_the_bound_and_named_approximate)
    for arm in ("baseline", "current"):
        got, want = median[arm]["value"], exact["time_to_resolution_p50"][arm]["value"]
        assert got == pytest.approx(want, rel=0.05)
    rate = approx["task_completion_rate"]
    assert rate["current"]["value"] == exact["task_completion_rate"]["current"]["value"]

    code, out, err = _command(logs, "compare", *flag, "--format", "csv")
    assert code == 0, err
    rows = {r["kpi"]: r["approximate"] for r in csv.DictReader(io.StringIO(out))}
    assert rows == {"time_to_resolution_p50": "true", "task_completion_rate": "false"}
    assert "Δ, its CI and the p-value are computed exactly" in err

    for fmt in ("markdown", "table"):
        code, out, err = _command(logs, "compare", *flag, "--format", fmt)
        assert code == 0, err
        (line,) = [x for x in out.splitlines() if "Time to resolution, median" in x]
        assert line.count("≈ ") == 2  # baseline and current
        (line,) = [x for x in out.splitlines() if "Task completion" in x]
        assert "≈" not in line
        assert "≈ approximate percentile (--approx-percentiles: DuckDB's" in out


def test_report_marks_tiles_table_and_trend(logs: Path) -> None:
    code, out, err = _command(logs, "report", "--engine", "duckdb", "--approx-percentiles")
    assert code == 0, err
    median = [x for x in out.splitlines() if x.startswith("| Time to resolution, median †")]
    # the tile, the KPI table (the report keeps a value on one line: a no-break space)
    assert len(median) == 2 and all("≈\xa0" in x or "≈ " in x for x in median)
    (trend,) = [x for x in out.splitlines() if x.startswith("| time_to_resolution_p50 |")]
    assert trend.count("≈") == 4  # first, last, min, max
    assert "- **time_to_resolution_p50** †: approximate percentile (--approx-percentiles" in out
    assert not [x for x in out.splitlines() if "Task completion" in x and "≈" in x]
    code, out, err = _command(logs, "report", "--engine", "duckdb")
    assert code == 0, err
    assert "≈" not in out and "approximate" not in out
