"""`compute`: spec + sources → the KPI table with its window and notes (`run_compute`, the
orchestration: selection → data checks → window → facts → the engine's aggregate → notes), and
the fact entry points of the API (`fact_set`, `facts`).

The stages live in their own modules: `window` (as-of and the window), `selection` (`--kpi`,
`--by`, `--where` checked), `facts` (rollup → derive → row tables), `kpis` (KPI values per
grouping set), `unitstats` (compare's per-unit statistics), `finish` (formulas, order,
metadata), `notes`, and `polarsengine` (`PolarsEngine`). Pure functions over polars frames; no
printing, no files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from kpictl.engine.datacheck import check_data
from kpictl.engine.facts import usable, with_cost_counts
from kpictl.engine.findings import DataCheck
from kpictl.engine.finish import mark_unavailable
from kpictl.engine.interface import (
    Approximation,
    ComputeOptions,
    Engine,
    FactSet,
    TimeBound,
    Window,
)
from kpictl.engine.notes import data_notes, empty_source_notes, input_notes, zero_n_notes
from kpictl.engine.polarsengine import default_engine
from kpictl.engine.selection import (
    check_cohort_counts,
    check_options,
    read_names,
    require_cohorts,
    selected_kpis,
    where_note,
    with_cohort_columns,
)
from kpictl.engine.window import resolve_window
from kpictl.errors import UsageError, did_you_mean
from kpictl.io.read import Sources
from kpictl.spec.model import Spec, TableSpec


@dataclass(frozen=True)
class ComputeResult:
    """KPI values of one run with the window they describe."""

    table: pl.DataFrame
    window: Window
    dimensions: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    check: DataCheck = field(default_factory=DataCheck)  # literals matched, KPIs unavailable
    approximation: Approximation | None = None  # --approx-percentiles: the KPIs it made ≈


def fact_set(
    spec: Spec,
    sources: Sources,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    as_of: dt.datetime | None = None,
    tables: Sequence[str] | None = None,
    engine: Engine | None = None,
) -> FactSet:
    """The facts of every table (or those named) for one dataset, window and as-of, built once
    to pass to `run_compute`, `run_compare` and `run_report` (`facts=`) — all of a table's
    columns, row tables in memory."""
    window = resolve_window(spec, sources, ComputeOptions(since=since, until=until, as_of=as_of))
    return (engine or default_engine()).build_facts(spec, sources, window, tables, in_memory=True)


def facts(
    spec: Spec,
    sources: Sources,
    table: str | None = None,
    as_of: dt.datetime | None = None,
    *,
    engine: Engine | None = None,
) -> pl.DataFrame:
    """One table of facts (default: the first rollup table, e.g. one row per conversation),
    built by `engine` (default: polars).

    >>> import kpictl
    >>> spec = kpictl.load_spec("kpi_definitions.yaml")
    >>> conversations = kpictl.facts(spec, kpictl.load_sources(spec))
    >>> conversations.height, conversations.columns[:3]
    (2000, ['conversation_id', 'started_at', 'resolved_at'])
    """
    name = table or spec.require_primary_table().name
    if name not in spec.tables:
        raise UsageError(
            f"no table named {name!r}{did_you_mean(name, spec.tables)}; "
            f"tables: {', '.join(spec.tables)}"
        )
    window = resolve_window(spec, sources, ComputeOptions(as_of=as_of))
    built = (engine or default_engine()).build_facts(spec, sources, window, [name])
    return in_stable_order(built.table(name).collect(), spec.tables[name])


def in_stable_order(frame: pl.DataFrame, table: TableSpec) -> pl.DataFrame:
    """A facts table's rows in an order that does not depend on threads or the engine: a
    rollup by its key (one row each), a row table by its time, then every other column
    that sorts (nulls last), so two runs over the same data write the same file."""
    if table.is_rollup and table.key in frame.columns:
        return frame.sort(table.key, nulls_last=True)
    sortable = [
        c
        for c, dtype in frame.schema.items()
        if not isinstance(dtype, pl.List | pl.Array | pl.Struct | pl.Object)
    ]
    if table.time in sortable:
        sortable.remove(table.time)
        sortable.insert(0, table.time)
    return frame.sort(sortable, nulls_last=True) if sortable else frame


def run_compute(
    spec: Spec,
    sources: Sources,
    options: ComputeOptions | None = None,
    *,
    facts: FactSet | None = None,
    engine: Engine | None = None,
) -> ComputeResult:
    """Compute KPIs: one row per KPI × cohort (× breakdown value), with n and pending.

    `facts`: the run's FactSet (`fact_set`), when the caller built one to share (the report
    does); facts that do not serve this window or lack a column it reads are not used.
    `engine`: the engine that builds the facts and aggregates them (default: polars)."""
    options = options or ComputeOptions()
    kpis, output = selected_kpis(spec, options.kpis)
    spec = with_cohort_columns(spec, sources, options.by, {k.over for k in kpis})
    check_options(spec, options, kpis)
    require_cohorts(spec, sources, kpis, options.by)
    check = check_data(spec, sources, kpis, where=options.where)
    window = resolve_window(spec, sources, options)
    used_tables = sorted({k.over for k in kpis if k.kind != "formula"})
    bounded = window.since is not None or window.until is not None or options.grain is not None
    reads = read_names(spec, kpis, options, with_time=bounded)
    if facts is None or not usable(spec, facts, window, used_tables, reads):
        facts = (engine or default_engine()).build_facts(spec, sources, window, used_tables, reads)
    tables = dict(facts.tables)
    if options.by:
        check_cohort_counts(tables, options.by, options.max_cohorts)
    # a cohort's cost can be unknown only where some row of the source lacks one
    tables = with_cost_counts(
        spec, sources, window, tables, [k for k in kpis if k.name in check.costs]
    )
    table, kpi_notes = facts.engine.aggregate(spec, kpis, output, tables, window, options)
    table = mark_unavailable(table, check)
    approximation = facts.engine.approximation(spec, [k for k in kpis if k.name in output])
    notes = [
        *([approximation.note()] if approximation else []),
        *check.notes(),
        *input_notes(sources, window),
        *data_notes(sources, kpis),
        *empty_source_notes(sources),
        *kpi_notes,
        *zero_n_notes(spec, table, tables, window, options.where),
    ]
    note = where_note(spec, options.where, used_tables)
    if note is not None:
        notes.insert(0, note)
    return ComputeResult(
        table=table,
        window=window,
        dimensions=tuple(options.by),
        notes=tuple(notes),
        check=check,
        approximation=approximation,
    )


def compute(
    spec: Spec,
    sources: Sources,
    *,
    by: Sequence[str] | None = (),
    grain: str | None = None,
    since: TimeBound | None = None,
    until: TimeBound | None = None,
    as_of: dt.datetime | None = None,
    where: str | None = None,
    kpis: Sequence[str] | None = (),
    cross: Sequence[str] = (),
) -> pl.DataFrame:
    """KPI values as a polars DataFrame: one row per KPI × cohort (× breakdown value).

    Columns: kpi, grouping (the cohort's dimensions; [] for overall), one column per `by`
    dimension, bucket (with `grain`), breakdown, breakdown_value, value, n (units counted),
    pending (units left out because their outcome window is still open), layer, format,
    direction, owner. `cross`: the `by` columns taken together (the cross-tab).

    >>> import kpictl, polars as pl
    >>> spec = kpictl.load_spec("kpi_definitions.yaml")
    >>> sources = kpictl.load_sources(spec)
    >>> table = kpictl.compute(spec, sources, kpis=["task_completion_rate"], by=["channel"])
    >>> table.select("channel", pl.col("value").round(4), "n").rows()
    [(None, 0.6785, 1910), ('chat', 0.6997, 626), ('email', 0.6767, 331),
     ('voice', 0.6944, 252), ('web', 0.6548, 701)]
    >>> cross = kpictl.compute(spec, sources, kpis=["task_completion_rate"],
    ...                        by=["channel", "intent"], cross=["channel", "intent"])
    >>> sorted({tuple(g) for g in cross["grouping"]})
    [(), ('channel', 'intent')]
    """
    options = ComputeOptions(
        by=tuple(by or ()),
        grain=grain,
        since=since,
        until=until,
        as_of=as_of,
        where=where,
        kpis=tuple(kpis or ()),
        cross=tuple(cross),
    )
    return run_compute(spec, sources, options).table
