"""The DuckDB engine (`--engine duckdb`, the `kpictl[duckdb]` extra): the SQL plan of a run
(`kpictl.engine.sqlplan`, printed in the DuckDB dialect) run on an embedded DuckDB.

What the plan covers and refuses is in `engine/sqlplan.py` and docs/architecture.md
("Engines"). The source rows are the rows kpictl's readers load (the same files, mappings and
types the polars engine reads): DuckDB reads a Parquet source's files itself where
`kpictl.engine.sqlsource` proves the SQL gives exactly those rows (`read_parquet([...])`, with
`ROW_POSITION` from the file ordinal and row number), else they are handed to it as Parquet in
a temporary folder with their position in the source; results come back that way too.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from kpictl.engine.interface import (
    Approximation,
    ComputeOptions,
    FactBuild,
    FactSet,
    UnitStats,
    Window,
    record_fact_build,
)
from kpictl.engine.shapes import KpiShape
from kpictl.engine.sqlplan import (
    ROW_POSITION,
    VARIES,
    NotCovered,
    Rewriter,
    aggregate_sql,
    approximate_kpis,
    compile_spec,
    compile_text,
    fact_tables,
    facts_sql,
    record_statement,
    require_covered,
    source_columns,
    uncovered,
    unit_stats_sql,
    view_sql,
)
from kpictl.engine.sqlsource import DirectRead, HandOver, source_read, verify_read
from kpictl.engine.unitstats import polars_unit_stats
from kpictl.engine.window import names_in, source_rows
from kpictl.errors import InputDataError, UsageError
from kpictl.io.read import Sources
from kpictl.spec.model import KpiSpec, Spec
from kpictl.sql.dialect import APPROX_FUNCTIONS, Dialect
from kpictl.sql.dialect import quote as _q

_ARM_VIEWS = 8  # arms' facts tables kept registered for unit_stats

__all__ = [
    "ROW_POSITION",
    "DuckDBEngine",
    "NotCovered",
    "compile_spec",
    "compile_text",
    "require_covered",
    "require_table",
    "uncovered",
]


class SqlSession(Protocol):
    """What a SQL engine's run needs of its database: frames in as named views, SQL results
    back as polars frames."""

    @property
    def reads_files(self) -> bool:
        """Whether the database can read the files kpictl found (kpictl.engine.sqlsource)."""
        ...

    def register(self, name: str, frame: pl.LazyFrame) -> None: ...

    def create_view(self, name: str, sql: str) -> None:
        """Run `sql`, the statement creating view `name` (dropped on close)."""
        ...

    def fetch(self, sql: str) -> list[dict[str, Any]]:
        """A small query's rows (checks, counts)."""
        ...

    def query(self, sql: str) -> pl.DataFrame: ...

    def close(self) -> None: ...


def require_table(spec: Spec, name: str, dialect: Dialect = "duckdb") -> None:
    """Refuse, before reading anything, a table whose facts a SQL engine cannot build (a row
    table: the table it looks up; its own statement needs its source's columns)."""
    window = Window(as_of=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    table = spec.tables[name]
    if not table.is_rollup:
        if table.lookup is None:
            return
        name = table.lookup
    facts_sql(spec, name, window, Rewriter(spec, window, dialect))


class _Session:
    """An embedded DuckDB connection and a scratch folder: frames cross as Parquet files
    (no Arrow dependency), results come back the same way."""

    reads_files = True

    def __init__(self) -> None:
        self.con = _connect()
        self.folder = tempfile.TemporaryDirectory(prefix="kpictl-duckdb-")
        self.count = 0

    def _path(self) -> str:
        self.count += 1
        return str(Path(self.folder.name) / f"{self.count}.parquet")

    def register(self, name: str, frame: pl.LazyFrame) -> None:
        path = self._path()
        frame.collect().write_parquet(path)
        self.con.execute(f"CREATE VIEW {_q(name)} AS SELECT * FROM read_parquet('{path}')")

    def query(self, sql: str) -> pl.DataFrame:
        path = self._path()
        self.con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
        return pl.read_parquet(path)

    def create_view(self, name: str, sql: str) -> None:
        self.con.execute(sql)

    def fetch(self, sql: str) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        self.con.close()
        self.folder.cleanup()


def _connect() -> Any:
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
        raise UsageError(
            "--engine duckdb needs the duckdb package: pip install 'kpictl[duckdb]'"
        ) from exc
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def register_source(
    session: SqlSession,
    spec: Spec,
    sources: Sources,
    name: str,
    window: Window,
    dialect: Dialect,
) -> str | None:
    """Make the view `source_<name>`: the engine reads the source's files itself where it
    gives exactly kpictl's rows (kpictl.engine.sqlsource: planned, then checked on the data:
    a value that does not convert is the reader's located error); else kpictl's rows are
    handed over. Returns why they were handed over (None: read by the engine)."""
    remote = sources.by_name[name].remote if name in sources else None
    if remote is not None:  # read by the engine where it lives (checked then)
        session.create_view(f"source_{name}", view_sql(remote.plan))
        return None
    read: DirectRead | HandOver = HandOver(name, "the engine does not read kpictl's files")
    if session.reads_files:
        read = source_read(spec, sources, name, dialect)
    reason = (
        read.reason
        if isinstance(read, HandOver)
        else verify_read(read, sources.by_name[name].rows, session.fetch)
    )
    if isinstance(read, DirectRead) and reason is None:
        session.create_view(f"source_{name}", view_sql(read))
        return None
    rows = source_rows(sources, name, window).with_row_index(ROW_POSITION)
    session.register(f"source_{name}", rows)
    return reason


class DuckDBEngine:
    """The DuckDB engine (kpictl.engine.interface.Engine): facts built by DuckDB SQL (rollup
    tables, then the row tables that look them up), KPI aggregates by DuckDB SQL over them.
    The run of every SQL engine: a subclass names its dialect and opens its own session
    (engine/spark.py)."""

    name = "duckdb"
    dialect: Dialect = "duckdb"
    # --approx-percentiles: a KPI's MEDIAN / QUANTILE_CONT by the dialect's approximate
    # aggregate (sql/dialect.py); set on an instance (`engine.approx_percentiles = True`)
    approx_percentiles = False
    # compare's unit_stats: a session and the arms' views registered in it, set per instance
    # on first use (subclasses need no __init__ of ours)
    _stats: SqlSession | None = None
    _views: Sequence[tuple[pl.LazyFrame, str]] = ()
    _dropped = 0
    # per source of the last build_facts: None where the engine read its files itself, else
    # why kpictl's rows were handed over
    source_reads: dict[str, str | None]

    def _session(self) -> SqlSession:
        return _Session()

    def build_facts(
        self,
        spec: Spec,
        sources: Sources,
        window: Window,
        tables: Sequence[str] | None = None,
        reads: Mapping[str, Collection[str] | None] | None = None,
        *,
        in_memory: bool = False,
    ) -> FactSet:
        """The facts of `tables` (and the tables they look up), each by its compiled SQL."""
        names = fact_tables(spec, tables or list(spec.tables))
        rewriter = Rewriter(spec, window, self.dialect)
        session = self._session()
        built: dict[str, pl.LazyFrame] = {}
        columns = source_columns(spec, sources, window, names)
        self.source_reads = {}
        for source in columns:
            self.source_reads[source] = register_source(
                session, spec, sources, source, window, self.dialect
            )
        for name in names:
            table = spec.tables[name]
            frame = session.query(
                record_statement(facts_sql(spec, name, window, rewriter, columns))
            )
            if table.is_rollup:
                _check_attributes(name, table.key or "", table.attributes, frame)
                frame = frame.drop([VARIES + a for a in table.attributes])
            session.register(f"facts_{name}", frame.lazy())
            built[name] = frame.lazy()
        session.close()
        record_fact_build(FactBuild(self.name, tuple(sorted(built)), window.as_of))
        return FactSet(
            sources=sources,
            window=window,
            tables=built,
            reads={n: None for n in built},
            engine=self,
        )

    def aggregate(
        self,
        spec: Spec,
        kpis: Sequence[KpiSpec],
        output: Sequence[str],
        tables: Mapping[str, pl.LazyFrame],
        window: Window,
        options: ComputeOptions,
    ) -> tuple[pl.DataFrame, list[str]]:
        """The KPI table: each KPI's compiled aggregates run on DuckDB over `tables`
        (`kpictl.engine.sqlplan.aggregate_sql`)."""
        session = self._session()
        try:
            for name in {k.over for k in kpis if k.kind != "formula"}:
                session.register(f"facts_{name}", tables[name])
            return aggregate_sql(
                spec,
                kpis,
                output,
                tables,
                window,
                options,
                self.dialect,
                session.query,
                self.approx_percentiles,
            )
        finally:
            session.close()

    def unit_stats(
        self,
        spec: Spec,
        kpi: KpiSpec,
        shape: KpiShape,
        tables: Mapping[str, pl.LazyFrame],
        window: Window,
        unit: str,
        keys: Sequence[str],
        where: str | None,
    ) -> UnitStats:
        """compare's per-unit sufficient statistics by DuckDB SQL over the arm's facts
        (`sqlplan.unit_stats_sql`: one query for the sums, one for the pending rows); a KPI
        whose per-unit sums are not numbers (a SUM of durations) by polars over the same
        facts."""
        frame = tables[kpi.over]
        if not _numeric_sums(frame, shape):
            return polars_unit_stats(spec, kpi, shape, tables, window, unit, keys, where)
        if where and not set(names_in([where])) <= set(frame.collect_schema().names()):
            where = None  # a table without its columns: all rows, as polars filter_kpi_rows
        view = self._arm_view(frame)
        rewriter = Rewriter(spec, window, self.dialect)
        sums, pending = unit_stats_sql(spec, kpi, shape, unit, keys, where, rewriter, view)
        session = self._stats_session()
        got, waiting = session.query(sums), session.query(pending)
        flags = ["unit_rows", "binary", "bounded"]
        return UnitStats(
            got.with_columns(
                pl.col(keys).cast(pl.String), pl.col("n").cast(pl.Int64), pl.col(flags)
            ),
            waiting.with_columns(pl.col(keys).cast(pl.String), pl.col("pending").cast(pl.Int64)),
        )

    def approximation(self, spec: Spec, kpis: Sequence[KpiSpec]) -> Approximation | None:
        """With `approx_percentiles`: the percentile KPIs (and formulas over them), by the
        dialect's approximate aggregate."""
        if not self.approx_percentiles:
            return None
        return Approximation(approximate_kpis(spec, kpis), APPROX_FUNCTIONS[self.dialect])

    def _stats_session(self) -> SqlSession:
        """compare's unit_stats: one session per engine, opened at the first call."""
        if self._stats is None:
            self._stats = self._session()
        return self._stats

    def _arm_view(self, frame: pl.LazyFrame) -> str:
        """The view of an arm's facts table in this engine's session, registered once: compare
        asks for each KPI and grouping set of the same arms (the last few frames are held; the
        views end with the session)."""
        for held, view in self._views:
            if held is frame:
                return view
        view = f"kpictl_arm_{id(self)}_{len(self._views) + self._dropped}"
        self._stats_session().register(view, frame)
        self._views = [*self._views, (frame, view)]  # per instance (the class's is empty)
        if len(self._views) > _ARM_VIEWS:
            self._views, self._dropped = self._views[1:], self._dropped + 1
        return view


def _check_attributes(name: str, key: str, attributes: Sequence[str], frame: pl.DataFrame) -> None:
    """An attribute varying within a key: the polars engine's message (engine.facts)."""
    for attr in attributes:
        varying = frame.filter(pl.col(VARIES + attr))
        if varying.height:
            example = varying.get_column(key).sort().to_list()[0]
            raise InputDataError(
                f"tables.{name}.attributes: {attr!r} varies within a "
                f"{key} ({varying.height} keys; e.g. {example!r}); an attribute must be "
                "constant per key — aggregate it in `rollup` instead"
            )


def _numeric_sums(frame: pl.LazyFrame, shape: KpiShape) -> bool:
    """Whether the shape's per-unit aggregates (or a mean's values) are numbers or truth values
    in these facts (the polars compilation's type; a duration is not)."""
    exprs = [e for e in (shape.numerator, shape.denominator, shape.values) if e is not None]
    schema = frame.select([e.alias(f"__e{i}") for i, e in enumerate(exprs)]).collect_schema()
    return all(t.is_numeric() or t == pl.Boolean for t in schema.dtypes())
