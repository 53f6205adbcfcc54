"""`--engine spark` (issue 13): the shipped spec compiled to Spark SQL gives the polars engine's
numbers — every (kpi, cohort) row, n and pending exactly, values to 1e-9 relative — on one
shared local[2] session. Marked `spark`: left out of the default run, `pytest -m spark -n 0`
runs it in one process (.ci/run does, after installing Java 17 and the `spark` extra)."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

from conftest import SHIPPED_SPEC, run, sample_sources
from kpictl.engine.compute import run_compute
from kpictl.engine.interface import ComputeOptions
from kpictl.engine.polarsengine import PolarsEngine
from kpictl.engine.sources import load_sources
from kpictl.engine.spark import SparkEngine, spark_session
from kpictl.engine.sqlplan import uncovered
from kpictl.engine.window import resolve_window
from kpictl.errors import InputDataError, UsageError
from kpictl.io.read import Sources
from kpictl.io.remote import RemoteRowsError
from kpictl.spec import load_spec
from kpictl.sql.dialect import translate
from parity import assert_same_numbers
from test_parity import EDGES, Logs, _write, event_logs
from test_sql_dialect import DIVISION_EXPRS, DIVISIONS, division_rows, same_floats

pytestmark = pytest.mark.spark

SPEC = load_spec(SHIPPED_SPEC)
BY = ("channel",)  # the --by channel run holds the overall rows too
MASTER = "local[2]"
SOURCES = ("events", "tool_calls", "business_events")


@pytest.fixture(scope="session", autouse=True)
def spark() -> Iterator[Any]:
    """The one Spark session of the group: local[2], few shuffle partitions (tiny data)."""
    session = spark_session(MASTER)
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session


def _covered(options: ComputeOptions) -> tuple[str, ...]:
    """The shipped spec's KPIs the SQL plan runs with these options."""
    return tuple(k.name for k in SPEC.kpis.values() if not uncovered(SPEC, [k], options, "spark"))


def _load(folder: Path) -> Sources:
    return load_sources(SPEC, {n: [folder / n] for n in SOURCES if (folder / n).exists()})


def _parity(
    sources: Sources,
    engine: SparkEngine,
    as_of: dt.datetime | None = None,
    where: str | None = None,
) -> int:
    kpis = _covered(ComputeOptions(by=BY))
    options = ComputeOptions(by=BY, as_of=as_of, kpis=kpis, where=where)
    assert len(options.kpis) >= 16
    polars = run_compute(SPEC, sources, options)
    spark = run_compute(SPEC, sources, options, engine=engine)
    return assert_same_numbers(polars.table, spark.table, BY)


def test_spark_gives_the_polars_numbers_on_the_sample(logs: Path) -> None:
    """`kpictl sample`'s 300 conversations (Parquet), overall and per channel."""
    assert _parity(_load(logs), SparkEngine(MASTER)) >= 5 * 16


@pytest.fixture(scope="module")
def split_logs(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same rows split into 64 Parquet files per source, rows shuffled and the files named
    so that their sorted order (kpictl's read order) is not the order they were cut in."""
    out = tmp_path_factory.mktemp("split")
    rng = random.Random(7)
    for name in SOURCES:
        if not (logs / name).exists():
            continue
        rows = pl.read_parquet(sorted((logs / name).glob("*.parquet")))
        order = list(range(rows.height))
        rng.shuffle(order)
        rows = rows[order]
        names = list(range(64))
        rng.shuffle(names)
        (out / name).mkdir()
        size = -(-rows.height // 64)
        for i, label in enumerate(names):
            rows.slice(i * size, size).write_parquet(out / name / f"part-{label:03d}.parquet")
    return out


def test_the_result_does_not_depend_on_partitioning(
    logs: Path, split_logs: Path, spark: Any
) -> None:
    """64 shuffled input files, handed to Spark as 64+ files read as 64+ partitions: the same
    rows as polars on those files, and as polars on the original files."""
    assert len(list((split_logs / "events").glob("*.parquet"))) == 64
    sources = _load(split_logs)
    events = sources["events"].collect().height
    spark.conf.set("spark.sql.files.maxPartitionBytes", "4096")
    spark.conf.set("spark.sql.files.openCostInBytes", "4096")
    try:
        per_file = -(-events // 64)
        engine = SparkEngine(MASTER, rows_per_file=per_file)
        # what that gives: every handed-over file is at least one partition
        with tempfile.TemporaryDirectory() as folder:
            for i in range(64):
                pl.DataFrame({"x": [i]}).write_parquet(Path(folder, f"{i}.parquet"))
            assert spark.read.parquet(folder).rdd.getNumPartitions() >= 64
        options = ComputeOptions(by=BY, kpis=_covered(ComputeOptions(by=BY)))
        split = run_compute(SPEC, sources, options, engine=engine).table
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
        spark.conf.unset("spark.sql.files.openCostInBytes")
    polars_split = run_compute(SPEC, sources, options).table
    polars_original = run_compute(SPEC, _load(logs), options).table
    assert assert_same_numbers(polars_split, split, BY) >= 5 * 16
    assert assert_same_numbers(polars_original, split, BY) >= 5 * 16


def _run_logs(logs: Logs) -> int:
    with tempfile.TemporaryDirectory(prefix="kpictl-spark-parity-") as folder:
        sources = load_sources(SPEC, _write(Path(folder), logs), cache=False)
        return _parity(sources, SparkEngine(MASTER), logs.as_of)


def test_spark_gives_the_polars_numbers_on_the_edges() -> None:
    """tests/test_parity.py's named edges: nulls in FIRST's argument, equal times, null keys,
    exactly 24 h and 7 d, sub-second times."""
    assert _run_logs(EDGES) >= 2 * 16


@settings(
    max_examples=3,  # a Spark run takes seconds: three drawn cases, the same on every run
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(event_logs())
def test_spark_gives_the_polars_numbers_on_drawn_logs(logs: Logs) -> None:
    assert _run_logs(logs) >= 2 * 16


def test_rows_handed_over_as_to_a_remote_session() -> None:
    """The hand-over a Spark Connect session gets (rows in, rows back: timestamps as
    microseconds), on the local session: the EDGES numbers of polars."""
    with tempfile.TemporaryDirectory(prefix="kpictl-spark-parity-") as folder:
        sources = load_sources(SPEC, _write(Path(folder), EDGES), cache=False)
        assert _parity(sources, SparkEngine(MASTER, as_rows=True), EDGES.as_of) >= 2 * 16


def test_no_rows_left_gives_the_overall_row_as_polars() -> None:
    """A --where no row meets: Spark's GROUPING SETS give no row over no rows, the plan's
    Spark form gives the overall row (n = 0) the polars engine gives, and no cohort rows."""
    with tempfile.TemporaryDirectory(prefix="kpictl-spark-parity-") as folder:
        sources = load_sources(SPEC, _write(Path(folder), EDGES), cache=False)
        engine = SparkEngine(MASTER)
        assert _parity(sources, engine, EDGES.as_of, where="channel = 'none of them'") >= 16


def test_first_and_last_order_nulls_and_ties_as_polars() -> None:
    """The EDGES facts by hand: c1's first escalation reason is null (two escalations at one
    instant, the null one first in the file: the row position breaks the tie, and Spark's
    min_by keeps the null); the facts equal polars' column by column."""
    with tempfile.TemporaryDirectory(prefix="kpictl-spark-parity-") as folder:
        sources = load_sources(SPEC, _write(Path(folder), EDGES), cache=False)
        window = resolve_window(SPEC, sources, ComputeOptions(as_of=EDGES.as_of))
        polars, spark = (
            engine.build_facts(SPEC, sources, window, ["conversations"])
            .tables["conversations"]
            .collect()
            .sort("conversation_id")
            for engine in (PolarsEngine(), SparkEngine(MASTER))
        )
    c1 = spark.filter(pl.col("conversation_id") == "c1").row(0, named=True)
    assert (c1["escalated"], c1["escalation_reason"], c1["reopened_24h"]) == (True, None, True)
    for name in polars.columns:
        want, got = polars.get_column(name).to_list(), spark.get_column(name).to_list()
        if polars.schema[name].is_float():
            assert [w is None for w in want] == [g is None for g in got], name
            pairs = [(w, g) for w, g in zip(want, got, strict=True) if w is not None]
            assert [g for _, g in pairs] == pytest.approx([w for w, _ in pairs], rel=1e-9), name
        else:
            assert got == want, name


def test_compute_engine_spark_prints_the_polars_json(logs: Path) -> None:
    args = [str(logs / "events"), *sample_sources(logs), "-c", str(SHIPPED_SPEC)]
    kpis = ["--kpi", "task_completion_rate", "--kpi", "time_to_resolution_p50"]
    common = [*args, *kpis, "--by", "channel", "--format", "json", "--no-cache"]
    code, out, err = run("compute", *common, "--engine", "spark", "--spark-master", MASTER)
    assert code == 0, err
    code, polars_out, err = run("compute", *common)
    assert code == 0, err
    spark_rows, polars_rows = json.loads(out)["results"], json.loads(polars_out)["results"]
    assert len(spark_rows) == 10
    assert [(r["kpi"], r["cohort"], r["n"], r["pending"]) for r in spark_rows] == [
        (r["kpi"], r["cohort"], r["n"], r["pending"]) for r in polars_rows
    ]
    for s, p in zip(spark_rows, polars_rows, strict=True):
        assert s["value"] == pytest.approx(p["value"], rel=1e-9)


def test_division_by_zero_is_the_polars_value(spark: Any) -> None:
    """Spark's rule for `a / b` (sql/dialect.py) gives polars' IEEE values: ±inf by the signs
    of a and of b's zero (-0.0 too), NaN for 0 / 0, null over null, try_divide otherwise —
    on the rows tests/test_sql_dialect.py checks DuckDB with."""
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    schema = StructType(
        [
            StructField("i", LongType()),
            *(StructField(c, DoubleType()) for c in ("a", "b")),
            *(StructField(c, LongType()) for c in ("ai", "bi")),
        ]
    )
    rows = [(i, *row) for i, row in enumerate(DIVISIONS)]
    spark.createDataFrame(rows, schema).createOrReplaceTempView("divisions")
    frame = division_rows()
    for text in DIVISION_EXPRS:
        want = frame.select(pl.sql_expr(text).cast(pl.Float64)).to_series().to_list()
        sql = translate(text, {}, "spark").sql("spark")
        got = spark.sql(f"SELECT CAST({sql} AS DOUBLE) AS v FROM divisions ORDER BY i").collect()
        assert same_floats([r["v"] for r in got], want), text


# ----------------------------------------------------------------------------------------------
# Remote sources (issue 13): a `path:` URI or a `table:` is read by Spark where it lives;
# kpictl never lists or opens it
# ----------------------------------------------------------------------------------------------

# the shipped spec with business_events read as a plain source `crm` (kpictl attributes
# business events to conversations itself, which needs rows it does not read)
_CRM = """path: sample_logs/business_events/
    columns:
      ts: {from: ts, type: timestamp}
      conversation_id: conversation_id
      type: type
      value_usd: {from: value_usd, type: float}"""


def _lake_spec(folder: Path, out: Path, where: dict[str, str]) -> Path:
    """The shipped spec over `folder`, each source of `where` at that location instead (a
    `path:` URI, or `table: NAME` given as "table: NAME")."""
    text = re.sub(r"    # credited to.*\n.*\n    attribution: .*\n", "", SHIPPED_SPEC.read_text())
    text = text.replace("  business_events:", "  crm:")
    text = text.replace(
        _CRM.split("\n")[0] + "\n    columns:\n      ts: {from: ts, type: timestamp}", _CRM
    )
    for name in ("events", "tool_calls", "business_events"):
        line = where.get(name, f"path: {folder / name}/")
        text = text.replace(f"path: sample_logs/{name}/", line)
    out.write_text(text, encoding="utf-8")
    return out


def _same_as_polars(folder: Path, tmp_path: Path, where: dict[str, str]) -> Sources:
    """compute --by channel over the remote sources on Spark equals polars over the files."""
    local = load_spec(_lake_spec(folder, tmp_path / "local.yaml", {}))
    remote = load_spec(_lake_spec(folder, tmp_path / "remote.yaml", where))
    engine = SparkEngine(MASTER)
    sources = load_sources(remote, engine=engine)
    options = ComputeOptions(by=BY, kpis=_covered(ComputeOptions(by=BY)))
    polars = run_compute(local, load_sources(local), options).table
    spark = run_compute(remote, sources, options, engine=engine)
    assert assert_same_numbers(polars, spark.table, BY) >= 5 * 16
    assert all(engine.source_reads[name] is None for name in where)  # read by Spark itself
    assert any("kpictl never opened it" in note for note in spark.notes)
    return sources


def test_spark_reads_uri_sources_as_polars_reads_their_files(
    split_logs: Path, tmp_path: Path
) -> None:
    """events and tool_calls as file:// URIs of 64 shuffled files each (ties across files:
    Spark orders them by file path, then row, as kpictl reads the files); crm stays local."""
    where = {n: f"path: file://{split_logs / n}/" for n in ("events", "tool_calls")}
    sources = _same_as_polars(split_logs, tmp_path, where)
    events = pl.read_parquet(sorted((split_logs / "events").glob("*.parquet")))
    remote = sources.by_name["events"].remote
    assert remote is not None
    assert (remote.rows, remote.latest) == (events.height, events.get_column("ts").max())
    assert remote.nulls["csat"] == events.get_column("csat").null_count()
    with pytest.raises(RemoteRowsError, match="source 'events' stays at file://"):
        sources["events"].select(pl.len()).collect()  # kpictl never reads its rows


def test_spark_reads_a_catalog_table_as_polars_reads_its_files(
    logs: Path, tmp_path: Path, spark: Any
) -> None:
    """`table: kpictl_lake_events` (CREATE TABLE … USING parquet LOCATION the sample's
    events); tool_calls and crm stay local paths."""
    spark.sql(f"CREATE TABLE kpictl_lake_events USING parquet LOCATION '{logs / 'events'}'")
    try:
        _same_as_polars(logs, tmp_path, {"events": "table: kpictl_lake_events"})
    finally:
        spark.sql("DROP TABLE IF EXISTS kpictl_lake_events")


def test_a_bad_value_in_a_remote_source_is_located_by_its_file_and_row(
    logs: Path, tmp_path: Path
) -> None:
    """A value that does not convert: the reader's error, at the file Spark read and the row;
    text Spark cannot read exactly as kpictl: a UsageError (kpictl cannot hand it over)."""
    rows = {
        "conversation_id": ["c1", "c1", "c2"],
        "ts": ["2026-10-01T10:00:00Z", "2026-10-01T10:01:00Z", "2026-10-01T11:00:00Z"],
        "event": ["message", "feedback", "feedback"],
        "csat": [None, float("nan"), 4.0],
    }
    for folder, csat, last in (
        ("bad", [None, float("nan"), 4.0], rows["ts"][2]),
        ("odd", [None, 5.0, 4.0], "2026-10-01 11:00:00.1234567"),
    ):
        (tmp_path / folder).mkdir()
        frame = pl.DataFrame({**rows, "csat": csat, "ts": [*rows["ts"][:2], last]})
        frame.write_parquet(tmp_path / folder / "part-0.parquet")
    bad, odd = (
        load_spec(
            _lake_spec(
                logs, tmp_path / f"{name}.yaml", {"events": f"path: file://{tmp_path / name}/"}
            )
        )
        for name in ("bad", "odd")
    )
    with pytest.raises(InputDataError) as caught:
        load_sources(bad, engine=SparkEngine(MASTER))
    message = str(caught.value)
    assert message.startswith("file:")
    assert message.endswith(
        "bad/part-0.parquet (row 2): column 'csat': expected a number (Float64), got 'NaN'; "
        "fix the data or map the column in the spec"
    )
    # 7 fraction digits: outside the ISO subset proven to read alike
    with pytest.raises(UsageError, match=r"values of column 'ts' are outside what the SQL"):
        load_sources(odd, engine=SparkEngine(MASTER))


def test_compile_engine_spark_shows_the_scan_of_a_remote_source(logs: Path, tmp_path: Path) -> None:
    uri = f"file://{logs / 'tool_calls'}/"
    spec = _lake_spec(logs, tmp_path / "spec.yaml", {"tool_calls": f"path: {uri}"})
    code, out, err = run(
        "compile", "--engine", "spark", "-c", str(spec), "--kpi", "tool_call_success_rate"
    )
    assert code == 0, err
    assert f"-- source_tool_calls: read by spark itself from {uri} (kpictl never lists" in out
    assert f"FROM parquet.`{uri}`" in out
    assert "_metadata.row_index" in out


def test_a_table_without_file_metadata_orders_ties_by_content(
    logs: Path, tmp_path: Path, spark: Any
) -> None:
    """A view has no `_metadata`: rows with the same ts are ordered by their content (said in
    the run's note); on the sample, whose ties do not change a value, polars' numbers."""
    events = logs / "events"
    spark.sql(f"CREATE OR REPLACE TEMP VIEW kpictl_lake_view AS SELECT * FROM parquet.`{events}`")
    try:
        local = load_spec(_lake_spec(logs, tmp_path / "local.yaml", {}))
        remote = load_spec(
            _lake_spec(logs, tmp_path / "remote.yaml", {"events": "table: kpictl_lake_view"})
        )
        engine = SparkEngine(MASTER)
        sources = load_sources(remote, engine=engine)
        options = ComputeOptions(by=BY, kpis=("escalation_rate", "csat_mean"))
        polars = run_compute(local, load_sources(local), options).table
        spark_run = run_compute(remote, sources, options, engine=engine)
    finally:
        spark.catalog.dropTempView("kpictl_lake_view")
    assert assert_same_numbers(polars, spark_run.table, BY) >= 2 * 5
    assert any("ordered by their content (xxhash64" in note for note in spark_run.notes)
