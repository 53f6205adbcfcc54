"""The engine seam (issue 11 §6, issue 13): `--engine` on compare, report and facts and
`defaults.engine` in the spec; compare's per-unit sufficient statistics behind the engine
(`Engine.unit_stats`). Parity: compare on DuckDB gives the polars engine's comparison for every
KPI the DuckDB engine covers (values and n equal, p-values and CI bounds to 1e-9), and the
report's tiles on DuckDB are compare's JSON on DuckDB."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conftest import SHIPPED_SPEC, run
from kpictl.comparison.model import CompareOptions
from kpictl.comparison.run import run_compare
from kpictl.engine.compute import facts
from kpictl.engine.duck import DuckDBEngine, uncovered
from kpictl.engine.interface import ComputeOptions, FactBuild, watch_fact_builds
from kpictl.engine.polarsengine import PolarsEngine
from kpictl.engine.sources import load_sources
from kpictl.io.read import Sources
from kpictl.scorecard.report import ReportOptions, run_report
from kpictl.spec import load_spec
from kpictl.spec.model import ENGINES, Spec


def covered(spec: Spec) -> tuple[str, ...]:
    """The KPIs of `spec` the DuckDB engine accepts (the list grows with its coverage)."""
    refused = "\n".join(uncovered(spec, list(spec.kpis.values()), ComputeOptions()))
    return tuple(k for k in spec.kpis if f"KPI {k!r}" not in refused)


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec(SHIPPED_SPEC)


@pytest.fixture(scope="module")
def sources(spec: Spec) -> Sources:
    """The shipped sample (`kpictl sample`: 2,000 conversations over 30 days, a holdout arm)."""
    return load_sources(spec)


def _args(logs: Path | None = None) -> list[str]:
    """The shipped spec over the shipped sample, or over the 300 conversations of `logs`."""
    if logs is None:
        return ["-c", str(SHIPPED_SPEC)]
    return [
        str(logs / "events"),
        "--source",
        f"tool_calls={logs / 'tool_calls'}",
        "--source",
        f"business_events={logs / 'business_events'}",
        "-c",
        str(SHIPPED_SPEC),
    ]


def assert_same_rows(polars: pl.DataFrame, duck: pl.DataFrame) -> None:
    """Same rows in the same order; counts, texts and flags equal, numbers to 1e-9 relative."""
    assert polars.columns == duck.columns
    assert polars.height == duck.height
    for expected, got in zip(polars.iter_rows(named=True), duck.iter_rows(named=True), strict=True):
        where = (expected["kpi"], expected.get("grouping"), got.get("channel"))
        for column, value in expected.items():
            other = got[column]
            if isinstance(value, float) and isinstance(other, float):
                assert math.isclose(other, value, rel_tol=1e-9, abs_tol=1e-12), (where, column)
            else:
                assert other == value, (where, column, value, other)


@pytest.mark.parametrize(
    ("baseline", "by"), [("holdout", ()), ("holdout", ("channel",)), ("prior_4w", ("channel",))]
)
def test_compare_on_duckdb_is_compare_on_polars(
    spec: Spec, sources: Sources, baseline: str, by: tuple[str, ...]
) -> None:
    """The holdout (and the previous 4 weeks') comparison of every covered KPI, overall and by
    channel: each row's values, n, pending, test, CI bounds, p-values (raw and Holm) and
    status equal."""
    options = CompareOptions(baseline=baseline, by=by, kpis=covered(spec))
    polars = run_compare(spec, sources, options).table
    with watch_fact_builds() as builds:
        duck = run_compare(spec, sources, options, engine=DuckDBEngine()).table
    assert [b.engine for b in builds] == ["duckdb"]
    assert_same_rows(polars, duck)
    tested = polars.filter(pl.col("p_value").is_not_null())
    # nearly every covered KPI × cohort has a test (the per-unit sums of proportions, means
    # and ratios from Engine.unit_stats; percentiles over the facts), with verdicts
    assert polars.height >= len(covered(spec)) * (5 if by else 1)
    assert tested.height >= 0.9 * polars.height
    assert {"proportion_t", "welch_t", "delta_ratio", "quantile_outer_ci"} <= set(tested["test"])
    if baseline == "holdout":  # 1,000+ units an arm: verdicts (prior_4w's baseline is thin)
        assert "ok" in set(polars["status"])


def test_compare_engine_duckdb_json_is_the_polars_json(spec: Spec) -> None:
    """The command line: --engine duckdb and --engine polars print the same JSON (numbers to
    1e-9), --by channel, against the holdout."""
    kpis = [a for k in covered(spec) for a in ("--kpi", k)]
    common = [*_args(), "--baseline", "holdout", "--by", "channel", *kpis, "-f", "json"]
    code, out, err = run("compare", *common, "--engine", "duckdb")
    assert code == 0, err
    code, polars_out, err = run("compare", *common, "--engine", "polars")
    assert code == 0, err
    duck, polars = json.loads(out), json.loads(polars_out)
    assert len(polars["results"]) > 2 * len(covered(spec))

    def same(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict):
            assert a.keys() == b.keys(), path
            for key in a:
                same(a[key], b[key], f"{path}.{key}")
        elif isinstance(a, list):
            assert len(a) == len(b), path
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                same(x, y, f"{path}[{i}]")
        elif isinstance(a, float) and isinstance(b, float):
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), path
        else:
            assert a == b, path

    same(polars, duck, "")


def test_unit_stats_on_duckdb_are_the_polars_ones_and_the_hand_counts(
    spec: Spec, sources: Sources
) -> None:
    """`Engine.unit_stats` of the treatment arm by channel: the DuckDB engine's frame is the
    polars engine's, and task completion's sums are the counts of completed conversations
    per channel (by hand from the facts)."""
    from kpictl.comparison.arms import build_arms
    from kpictl.engine.shapes import kpi_shape

    options = CompareOptions(
        baseline="holdout", by=("channel",), kpis=("task_completion_rate", "csat_mean")
    )
    arms = {}
    for engine in (PolarsEngine(), DuckDBEngine()):
        current, _, _, _ = build_arms(spec, sources, options, engine=engine)
        arms[engine.name] = current
    for name in ("task_completion_rate", "csat_mean"):
        kpi = spec.kpis[name]
        shape = kpi_shape(kpi)
        got = {}
        for engine_name, arm in arms.items():
            stats = arm.engine.unit_stats(
                spec, kpi, shape, arm.tables, arm.window, "conversation_id", ["channel"], None
            )
            got[engine_name] = (stats.sums.sort("channel"), stats.pending.sort("channel"))
        assert_same_rows(
            got["polars"][0].with_columns(pl.lit(name).alias("kpi")),
            got["duckdb"][0].with_columns(pl.lit(name).alias("kpi")),
        )
        assert got["polars"][1].equals(got["duckdb"][1])
    facts_frame = arms["polars"].tables["conversations"].collect()
    by_hand = (
        facts_frame.filter(pl.col("settled"))
        .group_by("channel")
        .agg(pl.len().alias("n"), pl.col("completed").fill_null(False).sum().alias("done"))
    )
    sums = (
        arms["duckdb"]
        .engine.unit_stats(
            spec,
            spec.kpis["task_completion_rate"],
            kpi_shape(spec.kpis["task_completion_rate"]),
            arms["duckdb"].tables,
            arms["duckdb"].window,
            "conversation_id",
            ["channel"],
            None,
        )
        .sums
    )
    for row in by_hand.iter_rows(named=True):
        mine = sums.filter(pl.col("channel") == row["channel"]).row(0, named=True)
        assert (mine["n"], mine["m_sum"], mine["d_sum"]) == (row["n"], row["done"], row["n"])


@pytest.mark.parametrize("keys", [(), ("channel",)])
def test_unit_stats_of_an_empty_slice_agree(
    spec: Spec, sources: Sources, keys: tuple[str, ...]
) -> None:
    """A `where` no row meets: overall one row with n = 0, sums 0 and the flags true (as
    polars' aggregate of nothing gives), by channel no row; no pending row either way."""
    from kpictl.comparison.arms import build_arms
    from kpictl.engine.shapes import kpi_shape

    options = CompareOptions(baseline="holdout", by=("channel",), kpis=("csat_mean",))
    got = []
    for engine in (PolarsEngine(), DuckDBEngine()):
        arm, _, _, _ = build_arms(spec, sources, options, engine=engine)
        kpi = spec.kpis["csat_mean"]
        got.append(
            arm.engine.unit_stats(
                spec,
                kpi,
                kpi_shape(kpi),
                arm.tables,
                arm.window,
                "conversation_id",
                keys,
                "channel = 'nowhere'",
            )
        )
    polars, duck = got
    assert polars.sums.rows() == duck.sums.rows()
    assert polars.sums.columns == duck.sums.columns
    assert polars.pending.rows() == duck.pending.rows()
    if keys:
        assert polars.sums.height == 0
    else:
        assert polars.sums.row(0, named=True) == {
            "n": 0,
            "m_sum": 0.0,
            "m_sq": 0.0,
            "d_sum": 0.0,
            "d_sq": 0.0,
            "md_sum": 0.0,
            "unit_rows": True,
            "binary": True,
            "bounded": True,
            "row_sq": 0.0,
        }
        assert polars.pending.rows() == [(0,)]


def test_report_tiles_on_duckdb_are_compare_json_on_duckdb(spec: Spec, sources: Sources) -> None:
    """Every tile of `run_report` on DuckDB is `kpictl compare --engine duckdb`'s JSON record
    of that KPI: current value and n, Δ, relative Δ, significance, status; one fact build."""
    names = covered(spec)
    only = dataclasses.replace(spec, kpis={k: v for k, v in spec.kpis.items() if k in names})
    with watch_fact_builds() as builds:
        tiles = run_report(
            only, sources, ReportOptions(baseline="holdout"), engine=DuckDBEngine()
        ).tiles
    assert [b.engine for b in builds] == ["duckdb"]
    kpis = [a for k in names for a in ("--kpi", k)]
    code, out, err = run("compare", *_args(), *kpis, "--engine", "duckdb", "-f", "json")
    assert code == 0, err
    records = {r["kpi"]: r for r in json.loads(out)["results"] if not r["cohort"]}
    assert [t.kpi for t in tiles] == list(records) == list(names)
    for tile in tiles:
        record = records[tile.kpi]
        assert tile.n == record["current"]["n"], tile.kpi
        for shown, expected in (
            (tile.value, record["current"]["value"]),
            (tile.delta, record["delta"]),
            (tile.relative, record["relative_delta"]),
        ):
            if expected is None:
                assert shown is None, tile.kpi
            else:
                assert shown is not None and math.isclose(shown, expected, rel_tol=1e-12), tile.kpi
        assert (tile.significant, tile.status) == (record["significant"], record["status"])


def _builds(*args: str) -> list[FactBuild]:
    with watch_fact_builds() as builds:
        code, _, err = run(*args)
    assert code == 0, err
    return builds


@pytest.mark.parametrize("command", ["compare", "report"])
def test_each_command_on_duckdb_builds_the_facts_once(logs: Path, spec: Spec, command: str) -> None:
    kpis = [a for k in covered(spec) for a in ("--kpi", k)]
    builds = _builds(*command.split(), *_args(logs), *kpis, "--engine", "duckdb")
    assert [b.engine for b in builds] == ["duckdb"]


def test_report_on_duckdb_is_the_polars_report(logs: Path, spec: Spec) -> None:
    """The whole scorecard (tiles, KPI table, trends, cohorts against the rest) on DuckDB reads
    as on polars, but for the command line it quotes."""
    kpis = [a for k in covered(spec) for a in ("--kpi", k)]
    common = ["report", *_args(logs), "--by", "channel", *kpis]
    with watch_fact_builds() as builds:
        code, duck, err = run(*common, "--engine", "duckdb")
    assert code == 0, err
    assert [b.engine for b in builds] == ["duckdb"]  # once, cohorts against the rest included
    code, polars, err = run(*common)
    assert code == 0, err

    def body(text: str) -> list[str]:
        return [
            line
            for line in text.splitlines()
            if "| command |" not in line and "generated" not in line
        ]

    assert body(duck) == body(polars)
    assert "## Trends" in duck or "Trend" in duck


def test_facts_engine_duckdb_is_the_polars_facts(spec: Spec, sources: Sources) -> None:
    polars = facts(spec, sources)
    with watch_fact_builds() as builds:
        duck = facts(spec, sources, engine=DuckDBEngine())
    assert [b.engine for b in builds] == ["duckdb"]
    assert sorted(duck.columns) == sorted(polars.columns)
    duck = duck.select(polars.columns).sort("conversation_id")
    polars = polars.sort("conversation_id")
    assert duck.height == polars.height == 2000
    for column in polars.columns:
        a, b = polars[column], duck[column]
        if a.dtype.is_float():
            assert ((a - b).abs() <= 1e-9 * b.abs().clip(lower_bound=1)).fill_null(True).all()
            assert a.is_null().equals(b.is_null()), column
        else:
            assert a.cast(pl.String).equals(b.cast(pl.String)), column


def test_the_cli_facts_engine_duckdb_writes_the_facts(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "facts.csv"
    builds = _builds("facts", *_args(logs), "--engine", "duckdb", "-o", str(out))
    assert [(b.engine, b.tables) for b in builds] == [("duckdb", ("conversations",))]
    assert pl.read_csv(out).height == 300


@pytest.mark.parametrize("command", ["compute", "compare", "report"])
def test_each_command_refuses_what_duckdb_does_not_cover_up_front(
    logs: Path, tmp_path: Path, command: str
) -> None:
    """compute's refusal, with the spec line, before reading anything (no fact build): the
    shipped spec with csat_mean's value as AVG(ROUND(csat)) (ROUND has no rule)."""
    text = SHIPPED_SPEC.read_text()
    assert text.count("value: AVG(csat)") == 1
    path = tmp_path / "kpi_definitions.yaml"
    path.write_text(text.replace("value: AVG(csat)", "value: AVG(ROUND(csat))"))
    line = load_spec(path).kpis["csat_mean"].line
    args = [a if a != str(SHIPPED_SPEC) else str(path) for a in _args(logs)]
    with watch_fact_builds() as builds:
        code, out, err = run(command, *args, "--engine", "duckdb")
    assert (code, out, builds) == (2, "", [])
    assert err == (
        "kpictl: error: --engine duckdb does not cover these yet (run them with --engine "
        "polars, the default, or leave them out with --kpi):\n"
        f"  kpi_definitions.yaml line {line}: KPI 'csat_mean' uses the function ROUND()\n"
    )


def test_facts_of_a_row_table_on_duckdb_are_the_polars_facts(logs: Path, spec: Spec) -> None:
    """`facts --table tool_calls --engine duckdb`: the row table's rows, as polars gives them."""
    table = next(t for t in spec.tables.values() if not t.is_rollup)
    outs = []
    for engine in ("polars", "duckdb"):
        code, out, err = run(
            "facts", *_args(logs), "--table", table.name, "--engine", engine, "-f", "csv"
        )
        assert code == 0, err
        outs.append(pl.read_csv(out.encode()))
    polars, duck = outs
    assert polars.height > 0 and sorted(polars.columns) == sorted(duck.columns)
    order = sorted(polars.columns)
    assert polars.select(order).sort(order).equals(duck.select(order).sort(order))


def test_defaults_engine_chooses_the_engine_and_the_command_line_wins(
    logs: Path, tmp_path: Path
) -> None:
    """`defaults: engine: duckdb` runs compute on DuckDB (a KPI it covers) and refuses one it
    does not; `--engine polars` wins over the spec."""
    text = SHIPPED_SPEC.read_text()
    assert "  correction: holm\n" in text
    text = text.replace("  correction: holm\n", "  correction: holm\n  engine: duckdb\n", 1)
    path = tmp_path / "kpi_definitions.yaml"
    path.write_text(text)
    args = [a if a != str(SHIPPED_SPEC) else str(path) for a in _args(logs)]
    assert load_spec(path).defaults.engine == "duckdb"
    one = ["--kpi", "task_completion_rate", "-f", "json"]
    assert [b.engine for b in _builds("compute", *args, *one)] == ["duckdb"]
    assert [b.engine for b in _builds("compute", *args, *one, "--engine", "polars")] == ["polars"]
    assert [b.engine for b in _builds("facts", *args, "-f", "csv")] == ["duckdb"]
    refused = [k for k in load_spec(path).kpis if k not in covered(load_spec(path))]
    if refused:
        code, _, err = run("compute", *args, "--kpi", refused[0])
        assert code == 2 and f"KPI {refused[0]!r} uses" in err
        code, _, err = run("compute", *args, "--kpi", refused[0], "--engine", "polars")
        assert code == 0, err


def test_defaults_engine_is_one_of_the_engines(write_spec: Any) -> None:
    from kpictl.errors import SpecError

    path = write_spec(("defaults:\n", "defaults:\n  engine: duck\n"))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert f"defaults.engine: expected one of {', '.join(ENGINES)}, got 'duck'" in message
    assert "did you mean 'duckdb'" in message


def test_the_engine_names_are_the_clis() -> None:
    from kpictl.cli import EngineName

    assert tuple(e.value for e in EngineName) == ENGINES


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_unit_stats_sql_prints_in_each_dialect(spec: Spec, dialect: str) -> None:
    """The statements of `unit_stats` are part of the SQL plan: printed for DuckDB and Spark,
    each re-parsed in its dialect."""
    import datetime as dt

    import sqlglot

    from kpictl.engine.interface import Window
    from kpictl.engine.shapes import kpi_shape
    from kpictl.engine.sqlplan import Rewriter, unit_stats_sql

    window = Window(as_of=dt.datetime(2026, 10, 30, tzinfo=dt.UTC))
    for name in ("task_completion_rate", "csat_mean"):
        kpi = spec.kpis[name]
        rewriter = Rewriter(spec, window, dialect)  # type: ignore[arg-type]
        sums, pending = unit_stats_sql(
            spec, kpi, kpi_shape(kpi), "conversation_id", ["channel"], None, rewriter, "arm_0"
        )
        for statement in (sums, pending):
            assert sqlglot.parse_one(statement, read=dialect) is not None
        if dialect == "spark":
            assert "STRING" in sums and "VARCHAR" not in sums


def test_the_api_takes_an_engine(spec: Spec, sources: Sources) -> None:
    """kpictl.compare / kpictl.report / kpictl.facts with `engine=`: DuckDB's numbers are the
    polars engine's (compare rows to 1e-9; the scorecard's text the same but its run stamp)."""
    import kpictl

    names = ["task_completion_rate", "csat_mean"]
    polars = kpictl.compare(spec, sources, baseline="holdout", kpis=names)
    with watch_fact_builds() as builds:
        duck = kpictl.compare(spec, sources, baseline="holdout", kpis=names, engine=DuckDBEngine())
    assert [b.engine for b in builds] == ["duckdb"]
    assert_same_rows(polars, duck)
    only = dataclasses.replace(spec, kpis={k: spec.kpis[k] for k in names})
    texts = [
        kpictl.report(only, sources, baseline="holdout", engine=engine)
        for engine in (None, DuckDBEngine())
    ]
    stamp = ("| generated at |", "| kpictl |", "| polars |", "| python |", "| command |")
    kept = [[line for line in t.splitlines() if not line.startswith(stamp)] for t in texts]
    assert kept[0] == kept[1]
    assert "Task completion" in texts[1] or "task_completion_rate" in texts[1]


@pytest.mark.spark
def test_compare_on_spark_is_compare_on_polars(spec: Spec, logs: Path) -> None:
    """The Spark group (`pytest -m spark`): compare's arms aggregated and their per-unit sums
    (`unit_stats_sql` printed in Spark SQL) on a local[2] session give the polars comparison,
    holdout by channel, a proportion and a mean on the 300-conversation logs."""
    from kpictl.engine.spark import SparkEngine, spark_session

    spark_session("local[2]").conf.set("spark.sql.shuffle.partitions", "4")
    names = ["events", "tool_calls", "business_events"]
    data = load_sources(spec, {n: [logs / n] for n in names if (logs / n).exists()})
    options = CompareOptions(
        baseline="holdout", by=("channel",), kpis=("task_completion_rate", "csat_mean")
    )
    polars = run_compare(spec, data, options).table
    with watch_fact_builds() as builds:
        spark = run_compare(spec, data, options, engine=SparkEngine("local[2]")).table
    assert [b.engine for b in builds] == ["spark"]
    assert_same_rows(polars, spark)
    assert polars.height == 10 and polars["p_value"].is_not_null().sum() >= 6
