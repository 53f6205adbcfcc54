"""Facts once (issue 11 §2): every command builds the facts of a run once and reads them, and
compute, compare and report agree because they read the same facts.

Fact builds are counted with the engine's public hook `watch_fact_builds`; the commands run in
this process through typer's runner, on the bundled sample (`kpi_definitions.yaml`, its
`holdout` and `prior_4w` baselines)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from conftest import run
from kpictl.engine.compute import fact_set, run_compute
from kpictl.engine.datacheck import check_data
from kpictl.engine.interface import ComputeOptions, Engine, FactBuild, watch_fact_builds
from kpictl.engine.polarsengine import PolarsEngine
from kpictl.engine.scans import shared_row, shared_scans
from kpictl.engine.sources import load_sources
from kpictl.scorecard.report import ReportOptions, run_report
from kpictl.spec.model import Spec


def builds_of(*args: str) -> list[FactBuild]:
    """The fact builds of one `kpictl ARGS` run (which must succeed)."""
    with watch_fact_builds() as builds:
        code, _, err = run(*args)
    assert code == 0, err
    return builds


@pytest.mark.parametrize(
    "args",
    [
        ("compute", "--format", "json"),
        ("compute", "--by", "channel", "--by", "intent", "--grain", "week", "--format", "json"),
        ("compare", "--format", "json"),
        ("compare", "--baseline", "prior_4w", "--by", "channel", "--format", "json"),
        ("report",),
        ("report", "--by", "channel", "--by", "intent"),
        ("report", "--baseline", "prior_4w", "--by", "channel", "--project", "10x"),
    ],
    ids=" ".join,
)
def test_each_command_builds_the_facts_once(args: tuple[str, ...]) -> None:
    builds = builds_of(*args)
    assert len(builds) == 1, builds
    assert builds[0].engine == "polars"


@pytest.mark.parametrize(
    ("args", "one_column", "before"),
    [(("report",), 1, 9), (("report", "--by", "channel", "--by", "intent"), 3, 14)],
    ids=["report", "report --by channel --by intent"],
)
def test_the_report_passes_over_each_source_once_for_its_data_checks(
    args: tuple[str, ...], one_column: int, before: int
) -> None:
    """The report's compare, trend, baseline breakdowns and cohorts each check the data (null
    counts, literal matches) over the same sources: one pass per source, plus the one-column
    checks of the arm's and each --by column that come first (`before`: the passes each check
    made on its own, counted on the tree before `shared_scans`: 9 and 14)."""
    with shared_scans() as shared:
        code, _, err = run(*args)
    assert code == 0, err
    assert sorted(shared.passes) == sorted(
        ["business_events", "events", "tool_calls", *["events"] * one_column]
    )
    assert len(shared.passes) < before
    # every window the report resolves (its own, compare's, the trend's, the baseline
    # breakdowns') reads the latest time of each log source once: 2 sources, one row each
    assert sorted(name for _, name in shared.rows if name == "latest") == ["latest"] * 2


def test_shared_scans_check_the_data_as_a_check_alone_does(shipped_spec: Spec) -> None:
    """Counts taken by an earlier check are reused, not changed: the same DataCheck as alone,
    and a check asking nothing new makes no pass."""
    sources = load_sources(shipped_spec)
    kpis = list(shipped_spec.kpis.values())
    alone = check_data(shipped_spec, sources, kpis, ["holdout"], "channel = 'web'")
    assert alone.literals and any(m.rows for m in alone.literals)
    with shared_scans() as shared:
        assert check_data(shipped_spec, sources, kpis[:3]) == check_data(
            shipped_spec, sources, kpis[:3]
        )
        again = check_data(shipped_spec, sources, kpis, ["holdout"], "channel = 'web'")
        passes = list(shared.passes)
        assert check_data(shipped_spec, sources, kpis, ["holdout"], "channel = 'web'") == alone
        assert shared.passes == passes  # nothing new to count
    assert again == alone


def test_a_shared_row_is_taken_once_and_equals_the_row_alone(shipped_spec: Spec) -> None:
    events = load_sources(shipped_spec)["events"]
    alone = events.select(pl.col("ts").max(), pl.len()).collect().row(0)
    with shared_scans() as shared:
        first = shared_row(events, "probe", pl.col("ts").max(), pl.len())
        again = shared_row(events, "probe", pl.col("ts").min())  # the name decides: reused
    assert first == again == alone
    assert list(shared.rows) == [(id(events), "probe")]
    assert shared_row(events, "probe", pl.col("ts").min()) != alone  # outside: taken afresh


def test_facts_builds_the_facts_once(tmp_path: Path) -> None:
    builds = builds_of("facts", "--output", str(tmp_path / "facts.csv"))
    assert [b.tables for b in builds] == [("conversations",)]


def test_compare_against_another_dataset_builds_each_datasets_facts_once(logs: Path) -> None:
    builds = builds_of(
        "compare",
        "--baseline",
        str(logs / "events"),
        "--baseline-source",
        f"tool_calls={logs / 'tool_calls'}",
        "--format",
        "json",
    )
    assert len(builds) == 2
    assert builds[0].as_of != builds[1].as_of  # the sample's and the 300-conversation logs'


def test_the_polars_engine_is_an_engine() -> None:
    engine: Engine = PolarsEngine()
    assert engine.name == "polars"


def _current_rows(compare_doc: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
    rows = {}
    for row in compare_doc["results"]:
        if "breakdown" in row:
            continue
        cohort = row["cohort"]
        rows[(row["kpi"], cohort.get("channel") if cohort else None)] = row["current"]
    return rows


def _compute_rows(compute_doc: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
    rows = {}
    for row in compute_doc["results"]:
        if row.get("breakdown") is not None or row.get("bucket") is not None:
            continue
        cohort = row.get("cohort") or {}
        rows[(row["kpi"], cohort.get("channel"))] = row
    return rows


@pytest.mark.parametrize(
    ("baseline", "where"),
    [("holdout", "arm = 'treatment'"), ("prior_4w", None)],
)
def test_compare_current_value_and_n_are_computes(baseline: str, where: str | None) -> None:
    """For every KPI and channel, compare's current arm is `compute` on that arm's slice: the
    holdout's treatment (`--where` its condition), or the last 28 days (compare's window)."""
    code, out, err = run("compare", "--baseline", baseline, "--by", "channel", "--format", "json")
    assert code == 0, err
    compared = json.loads(out)
    window = ["--where", where] if where else ["--since", compared["current"]["window"]["since"]]
    code, out, err = run("compute", "--by", "channel", *window, "--format", "json")
    assert code == 0, err
    computed = _compute_rows(json.loads(out))
    current = _current_rows(compared)
    assert len(current) > 16  # every KPI, overall and by channel
    for key, arm in current.items():
        row = computed[key]
        assert arm["n"] == row["n"], key
        if arm["value"] is None or row["value"] is None:
            assert arm["value"] is None and row["value"] is None, key
        else:
            assert math.isclose(arm["value"], row["value"], rel_tol=1e-12, abs_tol=1e-15), key


def test_compute_reads_a_fact_set_built_once(shipped_spec: Spec) -> None:
    """The API: `fact_set` builds the facts; `run_compute` over them builds none and gives the
    table `run_compute` gives on its own (sums to 1e-12: the row tables in memory are summed in
    another order than the streamed ones)."""
    sources = load_sources(shipped_spec)
    with watch_fact_builds() as builds:
        facts = fact_set(shipped_spec, sources)
        shared = run_compute(
            shipped_spec, sources, ComputeOptions(by=("channel",)), facts=facts
        ).table
    assert len(builds) == 1
    alone = run_compute(shipped_spec, sources, ComputeOptions(by=("channel",))).table
    assert_frame_equal(shared, alone, rel_tol=1e-12, abs_tol=1e-15)


def test_facts_of_another_as_of_are_not_used(shipped_spec: Spec) -> None:
    """Facts as of another time are other facts: compute builds its own."""
    sources = load_sources(shipped_spec)
    facts = fact_set(shipped_spec, sources)
    earlier = facts.window.as_of.replace(day=1)
    with watch_fact_builds() as builds:
        table = run_compute(shipped_spec, sources, ComputeOptions(as_of=earlier), facts=facts)
    assert len(builds) == 1 and builds[0].as_of == earlier
    alone = run_compute(shipped_spec, sources, ComputeOptions(as_of=earlier))
    assert_frame_equal(table.table, alone.table, rel_tol=1e-12, abs_tol=1e-15)
    assert table.table.filter(pl.col("kpi") == "task_completion_rate").height > 0


def test_a_report_on_another_dataset_builds_each_datasets_facts_once(logs: Path) -> None:
    builds = builds_of(
        "report",
        "--baseline",
        str(logs / "events"),
        "--baseline-source",
        f"tool_calls={logs / 'tool_calls'}",
    )
    assert len({b.as_of for b in builds}) == len(builds) == 2


def test_report_tiles_are_the_compare_json(shipped_spec: Spec) -> None:
    """Every tile of `run_report` is `kpictl compare --format json`'s record of that KPI (a
    separate run, its own facts): current value and n, Δ, relative Δ, significance, status."""
    sources = load_sources(shipped_spec)
    tiles = run_report(shipped_spec, sources, ReportOptions(by=("channel",))).tiles
    code, out, err = run("compare", "--format", "json")
    assert code == 0, err
    records = {
        r["kpi"]: r for r in json.loads(out)["results"] if not r["cohort"] and "breakdown" not in r
    }
    assert [t.kpi for t in tiles] == list(records)
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
        assert tile.significant == record["significant"], tile.kpi
        assert tile.status == record["status"], tile.kpi
