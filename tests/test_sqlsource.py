"""A SQL engine reading a Parquet source itself (kpictl.engine.sqlsource, issue 13): the
relation gives exactly the rows kpictl's reader gives (columns, types, values, and the row
position that breaks FIRST/LAST ties), refuses what it cannot prove, and a value that does not
convert is the reader's located error."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import sqlglot

from conftest import SHIPPED_SPEC, run
from kpictl.engine.compute import run_compute
from kpictl.engine.duck import DuckDBEngine, uncovered
from kpictl.engine.interface import ComputeOptions
from kpictl.engine.sources import load_sources
from kpictl.engine.sqlsource import (
    ROW_POSITION,
    DirectRead,
    HandOver,
    plan_source,
    verify_read,
)
from kpictl.engine.window import resolve_window
from kpictl.errors import InputDataError
from kpictl.io.read import ParquetFile, Sources, parquet_files
from kpictl.spec import load_spec
from kpictl.spec.model import Spec


def _connect() -> Any:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _fetch(con: Any) -> Any:
    def fetch(sql: str) -> list[dict[str, Any]]:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    return fetch


def _frame(con: Any, sql: str, path: Path) -> pl.DataFrame:
    con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
    return pl.read_parquet(path)


def _plan(spec: Spec, sources: Sources, name: str) -> DirectRead | HandOver:
    files = parquet_files(sources.by_name[name])
    assert not isinstance(files, str), files
    return plan_source(spec.sources[name], files)


def assert_same_rows(spec: Spec, sources: Sources, name: str, tmp: Path) -> DirectRead:
    """DuckDB's rows of the planned relation, in row-key order, are kpictl's rows in its
    order: every column, every value, every type."""
    plan = _plan(spec, sources, name)
    assert isinstance(plan, DirectRead), plan
    con = _connect()
    assert verify_read(plan, sources.by_name[name].rows, _fetch(con)) is None
    got = _frame(
        con, f"SELECT * FROM ({plan.relation}) ORDER BY {ROW_POSITION}", tmp / f"{name}.pq"
    )
    expected = sources[name].collect()
    assert sorted(got.columns) == sorted([*expected.columns, ROW_POSITION])
    # the row key is strictly increasing in kpictl's order: (file ordinal, row in the file)
    keys = got.get_column(ROW_POSITION)
    assert keys.is_sorted() and keys.n_unique() == got.height
    got = got.drop(ROW_POSITION).select(expected.columns)
    assert got.schema == expected.schema
    assert got.equals(expected, null_equal=True)
    return plan


# ----------------------------------------------------------------------------------------------
# Data: the sample as several Parquet files, a hive-partitioned folder, a glob, ties
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 300-conversation sample rewritten as a small data lake:
    events in hive folders `channel=<c>` (the column only in the folder name), each split in
    two files by row parity (a conversation's rows in both files), with every escalation of a
    conversation at one time and a different reason per row (FIRST ties, broken by file then
    row); tool calls in three files read through a glob."""
    out = tmp_path_factory.mktemp("lake")
    events = pl.read_parquet(logs / "events")
    first_escalation = (
        pl.col("ts").filter(pl.col("event") == "escalation").min().over("conversation_id")
    )
    events = events.with_columns(
        pl.when(pl.col("event") == "escalation")
        .then(first_escalation)
        .otherwise(pl.col("ts"))
        .alias("ts"),
        pl.when(pl.col("event") == "escalation")
        .then(pl.format("reason-{}", pl.int_range(pl.len()) % 5))
        .otherwise(pl.col("escalation_reason"))
        .alias("escalation_reason"),
    )
    # each escalation twice, the copy with another reason: a tie on ts in every escalated
    # conversation, the copy later in kpictl's order (its row is later, often in the other file)
    copies = events.filter(pl.col("event") == "escalation").with_columns(
        pl.format("copy-{}", pl.col("escalation_reason")).alias("escalation_reason")
    )
    events = pl.concat([events, copies]).with_row_index("i")
    for (channel,), part in events.group_by("channel"):
        folder = out / "events" / f"channel={channel}"
        folder.mkdir(parents=True)
        for k in (0, 1):
            rows = part.filter(pl.col("i") % 2 == k).drop("i", "channel")
            rows.write_parquet(folder / f"part-{k}.parquet")
    calls = pl.read_parquet(logs / "tool_calls")
    (out / "tool_calls").mkdir()
    for k, chunk in enumerate(calls.iter_slices(calls.height // 3 + 1)):
        chunk.write_parquet(out / "tool_calls" / f"calls-{k}.parquet")
    (out / "tool_calls" / "_SUCCESS").write_text("")
    pl.read_parquet(logs / "business_events").write_parquet(out / "business_events.parquet")
    return out


def _lake_sources(spec: Spec, lake: Path) -> Sources:
    return load_sources(
        spec,
        {
            "events": [lake / "events"],
            "tool_calls": [str(lake / "tool_calls" / "calls-*.parquet")],
            "business_events": [lake / "business_events.parquet"],
        },
    )


def test_the_lake_reads_as_kpictl_reads_it(lake: Path, tmp_path: Path) -> None:
    spec = load_spec(SHIPPED_SPEC)
    sources = _lake_sources(spec, lake)
    events = assert_same_rows(spec, sources, "events", tmp_path)
    calls = assert_same_rows(spec, sources, "tool_calls", tmp_path)
    # eight files in kpictl's sorted order, the partition values as text from the folders
    assert len(events.files) == 8 and list(events.files) == sorted(events.files)
    assert "'web' AS \"channel\"" in events.relation
    assert "read_parquet([" in events.relation and "hive_partitioning = false" in events.relation
    assert len(calls.files) == 3
    # the ties are there: escalations of one conversation at one time, in both files
    escalations = sources["events"].filter(pl.col("event") == "escalation").collect()
    tied = escalations.group_by("conversation_id", "ts").len().filter(pl.col("len") > 1)
    assert tied.height > 0
    # business events are attributed by kpictl: handed over, with the reason
    outcome = _plan(spec, sources, "business_events")
    assert isinstance(outcome, HandOver)
    assert "attributed to conversations by kpictl" in outcome.reason


# ----------------------------------------------------------------------------------------------
# A mapping: renamed fields, narrow types, epoch and ISO times, text booleans
# ----------------------------------------------------------------------------------------------

MAPPED_EVENTS = """\
  events:
    path: logs/events/
    columns:
      conversation_id: {from: session}
      ts: {from: time, type: timestamp, unit: ms}
      input_tokens: {from: tokens_in}
      policy_violation: {from: violated, type: bool}
      score: {from: csat_f32, type: float}
"""


def _mapped_spec(tmp: Path) -> Spec:
    text = SHIPPED_SPEC.read_text()
    old = "\n".join(
        [
            "  events:",
            "    path: sample_logs/events/        # file, glob or folder: .jsonl, .ndjson, "
            ".jsonl.gz, .parquet",
            "    columns:",
            "      ts: {from: ts, type: timestamp}",
            "",
        ]
    )
    assert old in text
    path = tmp / "kpis.yaml"
    path.write_text(text.replace(old, MAPPED_EVENTS))
    return load_spec(path)


@pytest.fixture(scope="module")
def mapped(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's events under other names and types, in two files of two schemas: epoch
    milliseconds in one, ISO-8601 text (Z, offsets, fractions, a bare date) in the other."""
    out = tmp_path_factory.mktemp("mapped")
    events = pl.read_parquet(logs / "events")
    renamed = (
        events.rename({"conversation_id": "session", "input_tokens": "tokens_in"})
        .with_columns(
            pl.col("tokens_in").cast(pl.Int32),
            pl.when(pl.col("policy_violation"))
            .then(pl.lit(" Yes"))
            .when(pl.col("policy_violation").not_())
            .then(pl.lit("no"))
            .alias("violated"),
            pl.col("csat").cast(pl.Float32).alias("csat_f32"),
        )
        .drop("policy_violation")
    )
    half = renamed.height // 2
    (out / "events").mkdir()
    renamed.head(half).with_columns(time=pl.col("ts").dt.epoch("ms")).drop("ts").write_parquet(
        out / "events" / "a.parquet"
    )
    second = renamed.slice(half)
    offsets = ["Z", "+00:00", "+05:30", "-0800", "+02"]
    text = second.with_columns(pl.int_range(pl.len()).alias("k")).with_columns(
        pl.when(pl.col("k") % 5 == 0)
        .then(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
        .when(pl.col("k") % 5 == 1)
        .then(pl.col("ts").dt.convert_time_zone("Asia/Kolkata").dt.strftime("%Y-%m-%d %H:%M:%S%:z"))
        .when(pl.col("k") % 5 == 2)
        .then(
            pl.col("ts")
            .dt.convert_time_zone("America/Los_Angeles")
            .dt.strftime("%Y-%m-%dT%H:%M:%S%.3f%z")
        )
        .when(pl.col("k") % 5 == 3)
        .then(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S"))
        .otherwise(pl.col("ts").dt.strftime("%Y-%m-%d"))
        .alias("time")
    )
    del offsets
    text.drop("ts", "k").write_parquet(out / "events" / "b.parquet")
    pl.read_parquet(logs / "tool_calls").write_parquet(out / "tool_calls.parquet")
    return out


def test_a_mapped_source_reads_as_kpictl_reads_it(mapped: Path, tmp_path: Path) -> None:
    spec = _mapped_spec(tmp_path)
    sources = load_sources(
        spec, {"events": [mapped / "events"], "tool_calls": [mapped / "tool_calls.parquet"]}
    )
    plan = assert_same_rows(spec, sources, "events", tmp_path)
    # two schemas (epoch numbers, ISO text): one scan each, stacked in kpictl's file order
    assert plan.relation.count("read_parquet(") == 2
    assert "make_timestamp(" in plan.relation and "TRY_CAST(" in plan.relation
    # the raw fields stay, as kpictl keeps them; the mapped ones have canonical types
    assert {"session", "tokens_in", "violated", "score"} <= set(plan.columns)


@pytest.mark.parametrize(
    ("unit", "values"),
    [
        ("s", [1_790_000_000, -1, 0, 1_790_000_001]),
        ("ms", [1_790_000_000_123, -1_001, 1_790_000_000_999]),
        ("us", [1_790_000_000_123_456, -1]),
        ("ns", [1_790_000_000_123_456_789, -1, -1_000, -999, -1_001]),
        ("s", [1_790_000_000.0000005, 1_790_000_000.0000015, -0.0000005, 1.5e-6]),
        ("ms", [1_790_000_000_123.4995, 0.5e-3, 1.5e-3, -2.5e-3]),
        ("ns", [1_790_000_000_123_456_500.0, 1_500.0, 2_500.0, -500.0]),
    ],
)
def test_epoch_times_read_as_kpictl_reads_them(
    unit: str, values: list[float], write_spec: Any, tmp_path: Path
) -> None:
    """Integer epochs (ns floored as polars' //) and float epochs (rounded half to even to
    the microsecond, as polars rounds), row by row."""
    spec = load_spec(
        write_spec(
            ("ts: {from: ts, type: timestamp}", f"ts: {{from: t, type: timestamp, unit: {unit}}}")
        )
    )
    folder = tmp_path / "events"
    folder.mkdir()
    # one row in range keeps the reader's unit check quiet
    anchor = {"s": 1_790_000_000, "ms": 10**12, "us": 10**15, "ns": 10**18}[unit] * 179 // 100
    whole = all(isinstance(v, int) for v in values)
    column = [*values, anchor if whole else float(anchor)]
    dtype = pl.Int64 if whole else pl.Float64
    pl.DataFrame(
        {
            "conversation_id": [f"c{i}" for i in range(len(column))],
            "t": pl.Series(column).cast(dtype),
            "event": "message",
        }
    ).write_parquet(folder / "e.parquet")
    calls = tmp_path / "calls.parquet"
    pl.DataFrame(
        {
            "conversation_id": ["c0"],
            "ts": [dt.datetime(2026, 10, 1, tzinfo=dt.UTC)],
            "tool": ["x"],
            "status": ["ok"],
        }
    ).write_parquet(calls)
    sources = load_sources(spec, {"events": [folder], "tool_calls": [calls]})
    assert_same_rows(spec, sources, "events", tmp_path)


# ----------------------------------------------------------------------------------------------
# Bad values: the reader's located error; what SQL cannot prove: handed over
# ----------------------------------------------------------------------------------------------


def _bad_file(tmp: Path, **columns: Any) -> Path:
    folder = tmp / "bad"
    folder.mkdir(exist_ok=True)
    rows = {
        "conversation_id": ["c1", "c1", "c2", "c3", "c4"],
        "ts": [dt.datetime(2026, 10, 1, 9, i, tzinfo=dt.UTC) for i in range(5)],
        "event": ["message"] * 5,
        "csat": [1.0, 2.0, 3.0, 4.0, 5.0],
    }
    rows.update(columns)
    path = folder / "events.parquet"
    pl.DataFrame(rows).write_parquet(path)
    return path


def _reader_error(spec: Spec, path: Path) -> str:
    with pytest.raises(InputDataError) as caught:
        load_sources(spec, {"events": [path]}).by_name["events"].frame.collect()
    return caught.value.message


@pytest.mark.parametrize(
    ("columns", "fragment"),
    [
        (
            {"csat": [1.0, 2.0, float("nan"), 4.0, float("inf")]},
            "(row 3): column 'csat': expected a number (Float64), got nan (1 more bad rows)",
        ),
        (
            {"conversation_id": ["c1", "c1", "c2", " \t", "c4"]},
            "(row 4): column 'conversation_id' is empty text (' \\t'): it is required",
        ),
        (
            {"input_tokens": [1.0, 2.5, 3.0, 4.0, 5.0]},
            "(row 2): column 'input_tokens': expected a whole number (Int64), got 2.5",
        ),
    ],
)
def test_a_value_that_does_not_convert_is_the_readers_located_error(
    columns: dict[str, Any], fragment: str, shipped_spec: Spec, tmp_path: Path
) -> None:
    """The SQL check finds the row kpictl's reader finds, and says it in the same words:
    file, row, column, what was expected, what was there."""
    path = _bad_file(tmp_path, **columns)
    expected = _reader_error(shipped_spec, path)
    schema = dict(pl.read_parquet_schema(path))

    plan = plan_source(shipped_spec.sources["events"], [ParquetFile(str(path), schema)])
    assert isinstance(plan, DirectRead)
    with pytest.raises(InputDataError) as caught:
        verify_read(plan, 5, _fetch(_connect()))
    assert caught.value.message == expected
    assert fragment in expected


def test_text_times_outside_the_proven_subset_are_handed_over(
    shipped_spec: Spec, tmp_path: Path
) -> None:
    """' 2026-10-01T09:00:00Z' (a leading space) is a time to kpictl's reader; the SQL does not
    claim to read it alike: the rows are kpictl's instead (the reason says why)."""
    times = [
        "2026-10-01T09:00:00Z",
        " 2026-10-01T09:01:00Z",
        "2026-10-01",
        "2026-10-01 09:03:00.5",
        "2026-10-01T09:04:00+02:00",
    ]
    path = _bad_file(tmp_path, ts=times)
    sources = load_sources(shipped_spec, {"events": [path]})
    plan = _plan(shipped_spec, sources, "events")
    assert isinstance(plan, DirectRead)
    reason = verify_read(plan, 5, _fetch(_connect()))
    assert reason == "1 values of column 'ts' are outside what the SQL reads exactly as kpictl does"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"csat": pl.Series([1, 2, 3, 4, 5]).cast(pl.Decimal(10, 2))}, "column 'csat': Decimal"),
        ({"cost_usd": ["1", "2", "3", "4", "5"]}, "column 'cost_usd': String to a number"),
        (
            {"ts": pl.Series([1, 2, 3, 4, 5]).cast(pl.Datetime("ns", "UTC"))},
            "nanosecond timestamps",
        ),
        ({"filename": ["a"] * 5}, "has a column named 'filename'"),
    ],
)
def test_what_the_sql_cannot_prove_equal_is_refused_with_the_reason(
    change: dict[str, Any], reason: str, shipped_spec: Spec, tmp_path: Path
) -> None:

    path = _bad_file(tmp_path, **change)
    plan = plan_source(
        shipped_spec.sources["events"], [ParquetFile(str(path), dict(pl.read_parquet_schema(path)))]
    )
    assert isinstance(plan, HandOver)
    assert reason in plan.reason


# ----------------------------------------------------------------------------------------------
# The DuckDB engine reading the files: the polars engine's numbers
# ----------------------------------------------------------------------------------------------


def _rows(table: pl.DataFrame, by: tuple[str, ...]) -> dict[tuple[object, ...], dict[str, Any]]:
    rows = {}
    for row in table.iter_rows(named=True):
        key = (row["kpi"], tuple(row["grouping"]), *(row[d] for d in by), row["breakdown_value"])
        assert key not in rows
        rows[key] = row
    return rows


def assert_same_numbers(spec: Spec, sources: Sources, by: tuple[str, ...]) -> DuckDBEngine:
    """Every (kpi, cohort) row of the DuckDB engine equals the polars engine's: n and pending
    exactly, values to 1e-9 relative."""
    options = ComputeOptions(by=by)
    kpis = tuple(k.name for k in spec.kpis.values() if not uncovered(spec, [k], options))
    assert len(kpis) >= 16
    engine = DuckDBEngine()
    duck = run_compute(spec, sources, ComputeOptions(by=by, kpis=kpis), engine=engine).table
    polars = run_compute(spec, sources, ComputeOptions(by=by, kpis=kpis)).table
    expected, got = _rows(polars, by), _rows(duck, by)
    assert set(got) == set(expected)
    for key, row in expected.items():
        other = got[key]
        assert (other["n"], other["pending"]) == (row["n"], row["pending"]), key
        if row["value"] is None:
            assert other["value"] is None, key
        else:
            assert math.isclose(other["value"], row["value"], rel_tol=1e-9, abs_tol=0), key
    return engine


@pytest.mark.parametrize("by", [(), ("channel",)])
def test_duckdb_reading_the_lake_gives_the_polars_numbers(lake: Path, by: tuple[str, ...]) -> None:
    spec = load_spec(SHIPPED_SPEC)
    engine = assert_same_numbers(spec, _lake_sources(spec, lake), by)
    assert engine.source_reads["events"] is None and engine.source_reads["tool_calls"] is None
    assert "attributed to conversations by kpictl" in str(engine.source_reads["business_events"])


def test_duckdb_reading_a_mapped_source_gives_the_polars_numbers(
    mapped: Path, tmp_path: Path
) -> None:
    spec = _mapped_spec(tmp_path)
    sources = load_sources(
        spec, {"events": [mapped / "events"], "tool_calls": [mapped / "tool_calls.parquet"]}
    )
    engine = assert_same_numbers(spec, sources, ("channel",))
    assert engine.source_reads["events"] is None


def test_ties_are_broken_by_file_then_row(lake: Path) -> None:
    """The first escalation reason of a conversation whose escalations share one time is the
    one of the first row in kpictl's order (files sorted by path, rows in file order), on the
    DuckDB engine reading the files as on polars."""
    spec = load_spec(SHIPPED_SPEC)
    sources = _lake_sources(spec, lake)
    engine = DuckDBEngine()
    window = resolve_window(spec, sources, ComputeOptions())
    facts = engine.build_facts(spec, sources, window, ["conversations"]).table("conversations")
    assert engine.source_reads["events"] is None
    escalations = (
        sources["events"]
        .with_row_index("position")
        .filter(pl.col("event") == "escalation")
        .sort("ts", "position")
        .group_by("conversation_id", maintain_order=True)
        .agg(pl.col("escalation_reason").first(), pl.len().alias("rows"))
        .collect()
    )
    assert escalations.filter(pl.col("rows") > 1).height > 30  # ties, across the two files
    got = dict(facts.select("conversation_id", "escalation_reason").collect().iter_rows())
    for conversation, reason, _ in escalations.iter_rows():
        assert got[conversation] == reason


def test_text_outside_the_subset_hands_kpictls_rows_over(
    shipped_spec: Spec, tmp_path: Path
) -> None:
    times = [
        "2026-10-01T09:00:00Z",
        " 2026-10-01T09:01:00Z",
        "2026-10-01",
        "2026-10-01 09:03:00.5",
        "2026-10-01T09:04:00+02:00",
    ]
    attributes = {a: ["x"] * 5 for a in shipped_spec.tables["conversations"].attributes}
    path = _bad_file(tmp_path, ts=times, **attributes)
    calls = tmp_path / "calls.parquet"
    pl.DataFrame(
        {"conversation_id": ["c1"], "ts": [times[0]], "tool": ["x"], "status": ["ok"]}
    ).write_parquet(calls)
    sources = load_sources(shipped_spec, {"events": [path], "tool_calls": [calls]})
    engine = assert_same_numbers(shipped_spec, sources, ())
    assert engine.source_reads["events"] == (
        "1 values of column 'ts' are outside what the SQL reads exactly as kpictl does"
    )
    assert engine.source_reads["tool_calls"] is None  # the same text, all in the subset


def test_compile_shows_the_read_and_says_what_is_handed_over(lake: Path) -> None:
    code, out, err = run(
        "compile",
        "--engine",
        "duckdb",
        "-c",
        str(SHIPPED_SPEC),
        "--kpi",
        "business_outcome_rate",
        "--source",
        f"events={lake / 'events'}",
        "--source",
        f"tool_calls={lake / 'tool_calls' / 'calls-*.parquet'}",
        "--source",
        f"business_events={lake / 'business_events.parquet'}",
    )
    assert code == 0, err
    assert 'CREATE OR REPLACE VIEW "source_events" AS\nSELECT ' in out
    assert 'CREATE OR REPLACE VIEW "source_tool_calls" AS\nSELECT ' in out
    assert f"read_parquet(['{lake / 'events' / 'channel=chat' / 'part-0.parquet'}', " in out
    assert "-- source_events: read by duckdb from 8 Parquet file(s) as kpictl reads them" in out
    assert (
        f"-- source_business_events: the rows of source 'business_events' as kpictl reads "
        f"them ({lake / 'business_events.parquet'}), with __kpictl_row their position, handed "
        "over (not read by the engine itself: business events are attributed to "
        "conversations by kpictl (engine/outcomes.py))"
    ) in out
    assert 'source_business_events" AS' not in out
    # the view statements parse as DuckDB SQL
    views = [s for s in sqlglot.parse(out, read="duckdb") if isinstance(s, sqlglot.exp.Create)]
    assert len(views) == 2
