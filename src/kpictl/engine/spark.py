"""The Spark engine (`--engine spark`, the `kpictl[spark]` extra): the SQL plan of a run
(`kpictl.engine.sqlplan`, printed in the Spark SQL dialect) run by Spark SQL, on a local
session (`--spark-master local[*]`, the default), a cluster master, or a Spark Connect server
(`--spark-master sc://host:15002` or the SPARK_REMOTE environment variable).

The session runs in UTC. `spark.sql.ansi.enabled` is left as the cluster sets it (on by
default in Spark 4): the plan divides with `try_divide`. The run is the DuckDB engine's
(`DuckDBEngine`: facts, then the KPIs' aggregates over them) with a Spark session in place of
DuckDB's: on a local master the rows cross as Parquet in a temporary folder (written by polars
with their position in the source, read by Spark; facts come back the same way); on a remote
session, whose executors cannot read the client's folder, they cross as rows. KPI results
(a few rows per KPI) come back as rows. docs/architecture.md, "Engines".
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from kpictl.engine.duck import DuckDBEngine
from kpictl.engine.sqlplan import ROW_POSITION
from kpictl.errors import UsageError
from kpictl.sql.dialect import Dialect

INSTALL = "pip install 'kpictl[spark]'; needs a Java 17 runtime"
DEFAULT_MASTER = "local[*]"


def resolve_master(master: str | None) -> str:
    """The master of `--spark-master`: the option, else SPARK_REMOTE (a Spark Connect URL),
    else a local session on every core."""
    return master or os.environ.get("SPARK_REMOTE") or DEFAULT_MASTER


def _is_remote(master: str) -> bool:
    return master.startswith("sc://")


@functools.cache
def spark_session(master: str) -> Any:
    """The Spark session of `master` (one per process; an active session is reused), in UTC.
    Raises UsageError when pyspark or Java is missing."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise UsageError(f"--engine spark needs pyspark: {INSTALL}") from exc
    java = os.environ.get("JAVA_HOME")
    has_java = shutil.which("java") or (java and Path(java, "bin", "java").exists())
    if not _is_remote(master) and not has_java:
        raise UsageError(f"--engine spark needs a Java runtime (java not found): {INSTALL}")
    builder = SparkSession.builder.appName("kpictl")
    if _is_remote(master):
        builder = builder.remote(master)
    else:
        builder = (
            builder.master(master)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
        )
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start, or the server did not answer
        raise UsageError(f"--engine spark: no Spark session at {master}: {exc}") from exc
    if not _is_remote(master):
        session.sparkContext.setLogLevel("ERROR")
    session.conf.set("spark.sql.session.timeZone", "UTC")
    # Parquet timestamps as instants both ways: read as TIMESTAMP (not _NTZ), written as
    # microseconds polars reads as Datetime("us", "UTC")
    session.conf.set("spark.sql.parquet.inferTimestampNTZ.enabled", "false")
    session.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    return session


_SPARK_TYPES: dict[type[pl.DataType], str] = {
    pl.String: "STRING",
    pl.Boolean: "BOOLEAN",
    pl.Float32: "DOUBLE",
    pl.Float64: "DOUBLE",
    pl.Int8: "BIGINT",
    pl.Int16: "BIGINT",
    pl.Int32: "BIGINT",
    pl.Int64: "BIGINT",
    pl.UInt8: "BIGINT",
    pl.UInt16: "BIGINT",
    pl.UInt32: "BIGINT",
    pl.Datetime: "TIMESTAMP",
    pl.Date: "DATE",
}


class _SparkSession:
    """Frames to Spark temporary views and SQL results back, through a scratch folder on a
    local master and as rows on a remote one (`as_rows`)."""

    def __init__(self, master: str, rows_per_file: int, as_rows: bool) -> None:
        self.spark = spark_session(master)
        self.rows_per_file = rows_per_file
        self.remote = as_rows
        self.folder = tempfile.TemporaryDirectory(prefix="kpictl-spark-")
        self.count = 0
        self.views: list[str] = []

    def _path(self) -> str:
        self.count += 1
        return str(Path(self.folder.name) / str(self.count))

    def register(self, name: str, frame: pl.LazyFrame) -> None:
        rows = frame.collect()
        if ROW_POSITION in rows.columns:
            rows = rows.with_columns(pl.col(ROW_POSITION).cast(pl.Int64))
        if self.remote:
            df = self.spark.createDataFrame(rows.rows(), schema=_ddl(rows.schema))
        else:
            path = self._path()
            os.makedirs(path)
            # a file per `rows_per_file` rows: Spark reads them in parallel
            chunk = self.rows_per_file
            for i, start in enumerate(range(0, max(rows.height, 1), chunk)):
                rows.slice(start, chunk).write_parquet(Path(path, f"part-{i:05d}.parquet"))
            df = self.spark.read.parquet(path)
        df.createOrReplaceTempView(name)
        self.views.append(name)

    @property
    def reads_files(self) -> bool:
        """A remote cluster cannot read the files kpictl found on this machine."""
        return not self.remote

    def create_view(self, name: str, sql: str) -> None:
        self.spark.sql(sql)
        self.views.append(name)

    def fetch(self, sql: str) -> list[dict[str, Any]]:
        return [row.asDict() for row in self.spark.sql(sql).collect()]

    def query(self, sql: str) -> pl.DataFrame:
        df = self.spark.sql(sql)
        if not self.remote:
            path = self._path()
            df.write.parquet(path)
            files = sorted(Path(path).glob("*.parquet"))
            if files:
                return pl.read_parquet(files)
        return _collect(df)

    def close(self) -> None:
        for name in self.views:
            self.spark.catalog.dropTempView(name)
        self.folder.cleanup()


def _ddl(schema: pl.Schema) -> str:
    columns = []
    for name, dtype in schema.items():
        kind = _SPARK_TYPES.get(dtype.base_type())
        if kind is None:
            raise UsageError(
                f"--engine spark: the column {name!r} has the type {dtype}, which kpictl does "
                "not hand to a remote Spark session yet"
            )
        columns.append(f"`{name.replace('`', '``')}` {kind}")
    return ", ".join(columns)


_POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "boolean": pl.Boolean(),
    "double": pl.Float64(),
    "float": pl.Float64(),
    "decimal": pl.Float64(),
    "long": pl.Int64(),
    "integer": pl.Int64(),
    "short": pl.Int64(),
    "byte": pl.Int64(),
    "timestamp": pl.Int64(),  # microseconds since the epoch, below
    "timestamp_ntz": pl.Int64(),
}


def _collect(df: Any) -> pl.DataFrame:
    """A Spark result as a polars frame, from its rows: timestamps cross as microseconds since
    the epoch (exact, whatever the client's time zone) and become Datetime("us", "UTC")."""
    from pyspark.sql import functions as spark_functions

    schema: dict[str, pl.DataType] = {}
    columns = []
    stamps = []
    for field in df.schema.fields:
        kind = field.dataType.typeName()
        column = spark_functions.col(f"`{field.name.replace('`', '``')}`")
        if kind.startswith("timestamp"):
            stamps.append(field.name)
            column = spark_functions.unix_micros(column)
        elif kind == "decimal":
            column = column.cast("double")
        columns.append(column.alias(field.name))
        schema[field.name] = _POLARS_TYPES.get(kind, pl.String())
    rows = [tuple(r) for r in df.select(*columns).collect()]
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    return frame.with_columns(
        pl.from_epoch(pl.col(c), time_unit="us").dt.replace_time_zone("UTC") for c in stamps
    )


class SparkEngine(DuckDBEngine):
    """The Spark engine (kpictl.engine.interface.Engine): the DuckDB engine's run with the
    plan printed in Spark SQL and run on a Spark session."""

    name = "spark"
    dialect: Dialect = "spark"

    def __init__(
        self,
        master: str | None = None,
        *,
        rows_per_file: int = 1_000_000,
        as_rows: bool | None = None,
    ) -> None:
        """`master`: see `resolve_master`; `rows_per_file`: on a local master, the rows handed
        over per Parquet file (each file one or more of Spark's input partitions); `as_rows`:
        hand frames over and back as rows, as to a remote session (None: only to one)."""
        self.master = resolve_master(master)
        self.rows_per_file = rows_per_file
        self.as_rows = _is_remote(self.master) if as_rows is None else as_rows

    def _session(self) -> _SparkSession:
        return _SparkSession(self.master, self.rows_per_file, self.as_rows)
