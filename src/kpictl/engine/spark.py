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

import datetime as dt
import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from kpictl.engine.duck import DuckDBEngine
from kpictl.engine.sqlplan import ROW_POSITION
from kpictl.engine.sqlsource import HandOver, RemoteScan, plan_remote, quote, verify_read
from kpictl.errors import InputDataError, UsageError
from kpictl.io.read import FileReport, LoadedSource
from kpictl.io.remote import RemoteRows, remote_frame
from kpictl.spec.model import SourceSpec, Spec
from kpictl.sql.dialect import Dialect
from kpictl.sql.expr import first_line

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
    # hive partition values of a remote source as text, as kpictl reads local folders
    session.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
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

    def read_remote(self, spec: Spec, source: SourceSpec) -> LoadedSource:
        """A source kpictl never opens (`s3a://…`, a catalog table), read by Spark where it
        lives (kpictl.engine.sources.RemoteReader): its schema from Spark, planned as kpictl's
        reader makes its columns (kpictl.engine.sqlsource.plan_remote), every conversion
        checked on the data (a bad value: a located InputDataError), then counted (rows, nulls
        per column, the time span). Raises UsageError where Spark cannot give exactly the rows
        kpictl's reader would (kpictl cannot hand over rows it does not read)."""
        return read_remote(spark_session(self.master), spec, source)


def _spark_dtype(field: Any) -> pl.DataType:
    """A Spark column type as the polars dtype kpictl's reader would see in the file."""
    kind = field.dataType.typeName()
    if kind == "decimal":
        return pl.Decimal(field.dataType.precision, field.dataType.scale)
    simple: dict[str, pl.DataType] = {
        "string": pl.String(),
        "char": pl.String(),
        "varchar": pl.String(),
        "long": pl.Int64(),
        "integer": pl.Int32(),
        "short": pl.Int16(),
        "byte": pl.Int8(),
        "double": pl.Float64(),
        "float": pl.Float32(),
        "boolean": pl.Boolean(),
        "timestamp": pl.Datetime("us", "UTC"),
        "timestamp_ntz": pl.Datetime("us"),
        "date": pl.Date(),
        "void": pl.Null(),
    }
    return simple.get(kind, pl.Binary())  # nested and other types: passed through, unread


def remote_scan(spark: Any, source: SourceSpec) -> tuple[RemoteScan, dict[str, pl.DataType]]:
    """The scan of a remote source and its columns' types, as Spark reports them (no row is
    read: Spark lists the files and reads their footers, or asks its catalog)."""
    if source.table is not None:
        relation = ".".join(quote(part, "spark") for part in source.table.split("."))
    else:
        relation = f"parquet.{quote(source.path or '', 'spark')}"
    location = source.remote or relation
    try:
        fields = spark.sql(f"SELECT * FROM {relation}").schema.fields
    except Exception as exc:  # no such path or table, no access: Spark's own words
        raise InputDataError(
            f"source {source.name!r}: Spark cannot read {location}: {first_line(exc)}"
        ) from exc
    located = source.table is None or _has_file_metadata(spark, source.table, relation)
    schema = {f.name: _spark_dtype(f) for f in fields}
    return RemoteScan(relation, location, located), schema


def _has_file_metadata(spark: Any, table: str, relation: str) -> bool:
    """Whether a catalog table's rows carry `_metadata` (file path, row index): a table over
    files does, a view does not (asked of the catalog first: the probe of a view fails)."""
    try:
        if spark.catalog.getTable(table).tableType in ("VIEW", "TEMPORARY"):
            return False
        metadata = f"SELECT _metadata.file_path, _metadata.row_index FROM {relation}"
        return bool(spark.sql(metadata).schema.fields)
    except Exception:  # a table format without file metadata
        return False


def read_remote(spark: Any, spec: Spec, source: SourceSpec) -> LoadedSource:
    """SparkEngine.read_remote on a session."""
    scan, schema = remote_scan(spark, source)
    where = f"{spec.path.name} line {source.line}" if source.line else spec.path.name

    def fetch(sql: str) -> list[dict[str, Any]]:
        return [row.asDict() for row in spark.sql(sql).collect()]

    plan = plan_remote(source, scan, schema)
    reason = plan.reason if isinstance(plan, HandOver) else verify_read(plan, None, fetch)
    if reason is not None or isinstance(plan, HandOver):
        raise UsageError(
            f"source {source.name!r} ({where}) at {scan.location}: Spark cannot read it exactly "
            f"as kpictl's reader would ({reason}), and kpictl does not read it itself to hand "
            "its rows over; convert it (e.g. a Parquet timestamp for ts) or read a local copy"
        )
    dtypes = dict(plan.dtypes)
    columns = list(dtypes)
    counts = [f"COUNT({quote(c, 'spark')}) AS n_{i}" for i, c in enumerate(columns)]
    if "ts" in dtypes:
        counts += ["unix_micros(MAX(ts)) AS latest", "unix_micros(MIN(ts)) AS earliest"]
    row = fetch(f"SELECT COUNT(*) AS rows, {', '.join(counts)} FROM ({plan.relation}) AS r")[0]
    rows = int(row["rows"])
    nulls = {c: rows - int(row[f"n_{i}"]) for i, c in enumerate(columns)}

    def stamp(name: str) -> dt.datetime | None:
        micros = row.get(name)
        return None if micros is None else EPOCH + dt.timedelta(microseconds=int(micros))

    remote = RemoteRows(
        location=scan.location,
        rows=rows,
        nulls=nulls,
        latest=stamp("latest"),
        earliest=stamp("earliest"),
        untimed=nulls.get("ts", 0),
        plan=plan,
        order=scan.order,
    )
    report = FileReport(source.name, scan.location, "parquet", 0, rows)
    frame = remote_frame(source.name, scan.location, dtypes)
    return LoadedSource(source.name, frame, (report,), remote=remote)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
