"""Remote sources (issue 13): a source's `path:` may be a URI Spark reads (`s3a://`,
`hdfs://`, `abfss://`, `file://`, …) and `table:` names a catalog table instead of `path:`.
kpictl never lists or opens such a source: the Spark engine reads it (tests/test_spark_engine.py,
marked `spark`); the polars and DuckDB engines refuse it, naming the source, its spec line and
`--engine spark`."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHIPPED_SPEC, SpecWriter, run
from kpictl.engine.duck import DuckDBEngine
from kpictl.engine.sources import load_sources
from kpictl.errors import UsageError
from kpictl.spec import load_spec
from kpictl.spec.model import is_remote_path
from test_spec import Want, check, line_of

EVENTS_PATH = ("    path: logs/events/", "    path: s3a://bucket/events/")
EVENTS_TABLE = ("    path: logs/events/", "    table: lake.agents.events")


@pytest.mark.parametrize(
    ("path", "remote"),
    [
        ("s3a://bucket/events/", True),
        ("hdfs://nn:8020/logs/events", True),
        ("abfss://c@acct.dfs.core.windows.net/events", True),
        ("gs://bucket/e/*.parquet", True),
        ("file:///data/events/", True),
        ("logs/events/", False),
        ("/data/events/*.parquet", False),
        ("C:/logs/events", False),
        ("logs/a://b", False),
    ],
)
def test_a_path_with_a_scheme_is_remote(path: str, remote: bool) -> None:
    assert is_remote_path(path) is remote


def test_a_uri_path_and_a_table_load_as_remote_sources(write_spec: SpecWriter) -> None:
    spec = load_spec(write_spec(EVENTS_PATH))
    assert spec.sources["events"].remote == "s3a://bucket/events/"
    assert spec.sources["tool_calls"].remote is None
    spec = load_spec(write_spec(EVENTS_TABLE))
    events = spec.sources["events"]
    assert (events.table, events.path, events.remote) == (
        "lake.agents.events",
        None,
        "table lake.agents.events",
    )


@pytest.mark.parametrize(
    ("changes", "wanted"),
    [
        (
            [("    path: logs/events/", "    path: logs/events/\n    table: lake.events")],
            Want("table: lake.events", "sources.events.table", ("`path:`", "`table:`", "not both")),
        ),
        (
            [("    path: logs/events/", "    table: lake.events; drop")],
            Want("table: lake.events; drop", "sources.events.table", ("expected a table name",)),
        ),
        (
            [("    path: logs/events/", "    table: lake.events\n    format: jsonl")],
            Want("format: jsonl", "sources.events.format", ("catalog table", "parquet or auto")),
        ),
        (
            [("    path: logs/events/", "    path: s3a://b/events/\n    format: jsonl")],
            Want("format: jsonl", "sources.events.format", ("s3a://b/events/", "parquet or auto")),
        ),
    ],
    ids=["path and table", "bad table name", "table as jsonl", "remote jsonl"],
)
def test_a_remote_source_the_spec_cannot_have_is_a_located_problem(
    write_spec: SpecWriter, changes: list[tuple[str, str]], wanted: Want
) -> None:
    check(write_spec(*changes), wanted)


@pytest.mark.parametrize("change", [EVENTS_PATH, EVENTS_TABLE], ids=["uri", "table"])
def test_polars_and_duckdb_refuse_a_remote_source_naming_it(
    write_spec: SpecWriter, change: tuple[str, str]
) -> None:
    path = write_spec(change)
    spec = load_spec(path)
    where = f"{path.name} line {line_of(path, 'sources:') + 1}"
    what = change[1].split(": ", 1)[1].replace("lake", "table lake")
    for engine, name in ((None, "polars"), (DuckDBEngine(), "duckdb")):
        with pytest.raises(UsageError) as caught:
            load_sources(spec, engine=engine)
        message = str(caught.value)
        assert message.startswith(f"source 'events' ({where}) is {what}, which kpictl does not")
        assert "list or open itself: only the Spark engine reads it" in message
        assert f"--engine spark (the {name} engine reads local files)" in message


def test_the_cli_refuses_a_remote_source_on_polars_and_duckdb(
    write_spec: SpecWriter, tmp_path: Path
) -> None:
    path = write_spec(EVENTS_TABLE)
    for extra in ((), ("--engine", "duckdb")):
        code, out, err = run("compute", "-c", str(path), *extra)
        assert (code, out) == (2, ""), err
        assert err.startswith("kpictl: error: source 'events' (")
        assert "is table lake.agents.events" in err and "--engine spark" in err


def test_a_uri_given_on_the_command_line_is_a_remote_source() -> None:
    code, _, err = run(
        "compute", "-c", str(SHIPPED_SPEC), "--source", "tool_calls=s3a://bucket/tool_calls/"
    )
    assert code == 2
    assert "source 'tool_calls' (kpi_definitions.yaml line" in err
    assert "is s3a://bucket/tool_calls/" in err and "--engine spark" in err
    with pytest.raises(UsageError, match="s3a://bucket/a/ is read by Spark as one path"):
        load_sources(load_spec(SHIPPED_SPEC), {"tool_calls": ["s3a://bucket/a/", "logs/b/"]})


def test_report_refuses_a_remote_source_before_reading_anything(write_spec: SpecWriter) -> None:
    """The report's data checks, costs and drill-down read every source's rows: refused up
    front (no Spark session is opened), whichever engine."""
    path = write_spec(EVENTS_PATH)
    for extra in ((), ("--engine", "spark")):
        code, out, err = run("report", "-c", str(path), *extra)
        assert (code, out) == (2, ""), err
        assert err == (
            "kpictl: error: kpictl report reads the rows of every source itself (its "
            "data-quality checks, per-conversation costs and drill-down), and source 'events' "
            "stays at s3a://bucket/events/ (read by the Spark engine only, never by kpictl): "
            "run it over local files, or use compute or compare --engine spark\n"
        )


def test_a_command_without_engine_says_which_commands_read_a_remote_source(
    write_spec: SpecWriter,
) -> None:
    code, out, err = run("check", "-c", str(write_spec(EVENTS_TABLE)))
    assert (code, out) == (2, ""), err
    assert "is table lake.agents.events, which kpictl does not list or open itself" in err
    assert "run compute, compare, facts or compile with --engine spark (the polars" in err
