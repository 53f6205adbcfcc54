"""`kpictl facts` writes its rows in an order that does not depend on threads or the engine:
a rollup table by its key, a row table by its time then its other columns (two runs of the
same command write the same file; before, the polars group-by's order leaked out)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from conftest import run
from kpictl.engine.compute import facts
from kpictl.engine.duck import DuckDBEngine
from kpictl.engine.sources import load_sources
from kpictl.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[1]


def test_rollup_facts_sorted_by_key_and_row_facts_by_time() -> None:
    spec = load_spec(ROOT / "kpi_definitions.yaml")
    sources = load_sources(spec)
    conversations = facts(spec, sources)
    key = spec.require_primary_table().key
    assert key is not None
    ids = conversations[key].to_list()
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    rows = facts(spec, sources, "tool_calls")
    time = spec.tables["tool_calls"].time  # none in the shipped spec: every column in order
    order = [time, *[c for c in rows.columns if c != time]] if time else rows.columns
    assert rows.height > 1000 and not rows.equals(rows.reverse())
    assert_frame_equal(rows, rows.sort(order, nulls_last=True))


def test_duckdb_facts_come_in_the_polars_order() -> None:
    spec = load_spec(ROOT / "kpi_definitions.yaml")
    sources = load_sources(spec)
    for table in ("conversations", "tool_calls"):
        polars_rows = facts(spec, sources, table)
        duck_rows = facts(spec, sources, table, engine=DuckDBEngine())
        assert_frame_equal(duck_rows.select(polars_rows.columns), polars_rows, check_dtypes=False)


def test_two_cli_runs_write_the_same_file(tmp_path: Path) -> None:
    outputs = []
    for i in range(3):
        out = tmp_path / f"facts{i}.csv"
        code, _, err = run("facts", "--format", "csv", "-o", str(out))
        assert code == 0, err
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    assert pl.read_csv(outputs[0]).height == 2000
