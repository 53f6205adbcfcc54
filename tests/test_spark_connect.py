"""Spark Connect end to end (spark group): `kpictl compute --engine spark --spark-master
sc://localhost:15002` against a local Spark Connect server gives every (kpi, cohort) row of
polars. The server is pyspark's own (`SparkSession.builder.remote("local[2]")` starts the
Connect server jar shipped in pyspark); the client needs the `spark` extra's Connect libraries
(grpcio, pyarrow). Run in a subprocess: a Connect session switches the process's pyspark into
Connect mode, which the classic local[2] session of the other Spark tests must not see.

One source is a `file://` URI of Parquet files, so the source stays where it is: Spark reads
it, kpictl never lists or opens it."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from conftest import SHIPPED_SPEC, run

pytestmark = pytest.mark.spark

SCRIPT = """
import sys
from pyspark.sql import SparkSession
SparkSession.builder.remote("local[2]").config("spark.sql.session.timeZone", "UTC").getOrCreate()
from typer.testing import CliRunner
from kpictl.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
sys.stderr.write(result.stderr)
sys.stdout.write(result.stdout)
sys.exit(result.exit_code)
"""


def _rows(text: str) -> dict[tuple[str, str], dict[str, object]]:
    return {
        (r["kpi"], json.dumps(r["cohort"], sort_keys=True)): r for r in json.loads(text)["results"]
    }


def test_compute_over_spark_connect_equals_polars(tmp_path: Path) -> None:
    pytest.importorskip("grpc", reason="the spark extra's Connect client (grpcio)")
    with socket.socket() as probe:
        if probe.connect_ex(("localhost", 15002)) == 0:
            pytest.skip("port 15002 is taken: the local Connect server needs it")
    root = SHIPPED_SPEC.parent
    lake = tmp_path / "tool_calls"
    lake.mkdir()
    tool_calls = pl.read_ndjson(
        root / "sample_logs" / "tool_calls" / "tool_calls.jsonl", infer_schema_length=None
    )
    tool_calls.write_parquet(lake / "part-0.parquet")
    args = ["compute", "-c", str(SHIPPED_SPEC), "--by", "channel", "--format", "json"]
    code, expected, err = run(*args, "--source", f"tool_calls={lake}")
    assert code == 0, err
    remote = ["--source", f"tool_calls=file://{lake}/", "--engine", "spark"]
    connect = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args, *remote, "--spark-master", "sc://localhost:15002"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert connect.returncode == 0, connect.stderr[-3000:]
    want, have = _rows(expected), _rows(connect.stdout)
    assert set(have) == set(want) and len(want) >= 19 * 4
    for key, row in want.items():
        other = have[key]
        assert (other["n"], other["pending"], other["reason"]) == (
            row["n"],
            row["pending"],
            row["reason"],
        ), key
        if row["value"] is None:
            assert other["value"] is None, key
        else:
            assert math.isclose(other["value"], row["value"], rel_tol=1e-9), key  # type: ignore[arg-type]
    assert "kpictl never opened it" in connect.stdout + connect.stderr
