"""The DuckDB engine (`--engine duckdb`, the `kpictl[duckdb]` extra): the SQL plan of a run
(`kpictl.engine.sqlplan`, printed in the DuckDB dialect) run on an embedded DuckDB.

What the plan covers and refuses is in `engine/sqlplan.py` and docs/architecture.md
("Engines"). The source rows are the rows kpictl's readers load (the same files, mappings and
types the polars engine reads), handed to DuckDB as Parquet in a temporary folder with their
position in the source (`ROW_POSITION`); results come back the same way.
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from kpictl.engine.compute import source_rows
from kpictl.engine.interface import (
    ComputeOptions,
    FactBuild,
    FactSet,
    Window,
    record_fact_build,
)
from kpictl.engine.sqlplan import (
    ROW_POSITION,
    VARIES,
    NotCovered,
    Rewriter,
    aggregate_sql,
    compile_spec,
    compile_text,
    fact_tables,
    facts_sql,
    require_covered,
    source_columns,
    uncovered,
)
from kpictl.errors import InputDataError, UsageError
from kpictl.io.read import Sources
from kpictl.spec.model import KpiSpec, Spec
from kpictl.sql.dialect import Dialect
from kpictl.sql.dialect import quote as _q

__all__ = [
    "ROW_POSITION",
    "DuckDBEngine",
    "NotCovered",
    "compile_spec",
    "compile_text",
    "require_covered",
    "uncovered",
]


class SqlSession(Protocol):
    """What a SQL engine's run needs of its database: frames in as named views, SQL results
    back as polars frames."""

    def register(self, name: str, frame: pl.LazyFrame) -> None: ...

    def query(self, sql: str) -> pl.DataFrame: ...

    def close(self) -> None: ...


class _Session:
    """An embedded DuckDB connection and a scratch folder: frames cross as Parquet files
    (no Arrow dependency), results come back the same way."""

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


class DuckDBEngine:
    """The DuckDB engine (kpictl.engine.interface.Engine): facts built by DuckDB SQL (rollup
    tables, then the row tables that look them up), KPI aggregates by DuckDB SQL over them.
    The run of every SQL engine: a subclass names its dialect and opens its own session
    (engine/spark.py)."""

    name = "duckdb"
    dialect: Dialect = "duckdb"

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
        for source in columns:
            rows = source_rows(sources, source, window).with_row_index(ROW_POSITION)
            session.register(f"source_{source}", rows)
        for name in names:
            table = spec.tables[name]
            frame = session.query(facts_sql(spec, name, window, rewriter, columns))
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
                spec, kpis, output, tables, window, options, self.dialect, session.query
            )
        finally:
            session.close()


def _check_attributes(name: str, key: str, attributes: Sequence[str], frame: pl.DataFrame) -> None:
    """An attribute varying within a key: the polars engine's message (engine.compute)."""
    for attr in attributes:
        varying = frame.filter(pl.col(VARIES + attr))
        if varying.height:
            example = varying.get_column(key).sort().to_list()[0]
            raise InputDataError(
                f"tables.{name}.attributes: {attr!r} varies within a "
                f"{key} ({varying.height} keys; e.g. {example!r}); an attribute must be "
                "constant per key — aggregate it in `rollup` instead"
            )
