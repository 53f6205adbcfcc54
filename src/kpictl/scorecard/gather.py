"""Gathering: `gather_report` runs compute (values and trends of the current arm) and compare
(the baseline, when there is one), reads the facts and the inputs for ROI, data quality, cohorts
and drill-down, and returns everything the sections need as one `ReportData`."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import polars as pl

from kpictl.comparison import (
    CompareOptions,
    CompareResult,
    read_columns,
    run_compare,
)
from kpictl.engine.costs import (
    Slice,
    conversation_costs,
    cost_entries,
    cost_totals,
    facts_costs,
    human_minutes_unknown,
    slice_facts,
    with_rollup_entries,
)
from kpictl.engine.datacheck import require_columns
from kpictl.engine.interface import ComputeOptions, Engine, FactSet
from kpictl.engine.polarsengine import default_engine
from kpictl.engine.scans import shared_scans
from kpictl.engine.selection import check_cohort_counts, read_names, where_note, with_cohort_columns
from kpictl.engine.window import names_in, resolve_window
from kpictl.errors import UsageError, did_you_mean
from kpictl.io.read import Sources
from kpictl.projection import ProjectionOptions, parse_volume, project_costs
from kpictl.review import score_review
from kpictl.scorecard.charts import REPORT_FORMATS, require_matplotlib
from kpictl.scorecard.cohorts import cohort_comparisons
from kpictl.scorecard.drilldown import built_columns, drilldown, report_columns
from kpictl.scorecard.lineage import (
    kpi_inputs,
    source_column_names,
)
from kpictl.scorecard.model import (
    Finding,
    ReportData,
    ReportOptions,
)
from kpictl.scorecard.quality import (
    STARTS_ENTRIES,
    data_quality,
    kpi_caveats,
    tool_call_timing,
)
from kpictl.scorecard.slices import compute_slice, eligible_kpis, report_slices, slice_where
from kpictl.scorecard.tiles import agent_alone, build_tiles
from kpictl.spec.model import BaselineSpec, RollupEntry, Spec


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return "(not readable)"
    return digest.hexdigest()


def _report_entries(
    spec: Spec, sources: Sources, starts: bool
) -> list[tuple[RollupEntry, pl.DataType]]:
    """The unit table's hidden rollup entries of the report, taken in the facts' own group-by
    of each source instead of a group-by of their own: each conversation's costs (ROI,
    drill-down: `costs.cost_entries`) and, with `starts`, the events' first time and rows (the
    tool calls' timing check: `quality.STARTS_ENTRIES`)."""
    entries: list[tuple[RollupEntry, pl.DataType]] = [
        (e, pl.Float64()) for e in cost_entries(spec, sources)
    ]
    if starts:
        ts = sources["events"].collect_schema()["ts"]
        entries += [(STARTS_ENTRIES[0], ts), (STARTS_ENTRIES[1], pl.UInt32())]
    return entries


def _timing_starts(spec: Spec, facts: FactSet) -> pl.DataFrame:
    """`quality.STARTS` per conversation, from the unit table's `STARTS_ENTRIES`."""
    table = spec.require_primary_table()
    return (
        facts.tables[table.name]
        .select(
            pl.col(table.key or "conversation_id").alias("conversation_id"),
            pl.col(STARTS_ENTRIES[0].name).alias("__start"),
            pl.col(STARTS_ENTRIES[1].name).alias("__events"),
        )
        .collect()
    )


def _report_facts(
    spec: Spec,
    sources: Sources,
    options: ReportOptions,
    baseline_name: str | None,
    baseline_sources: Sources | None,
    engine: Engine,
    entries: Sequence[tuple[RollupEntry, pl.DataType]] = (),
) -> FactSet | None:
    """The facts every section of the report reads, built once: the unit table with its
    rollup and derive columns, the attributes the KPIs and --by read, and the hidden `entries`
    (`_report_entries`), the KPIs' tables with what compare and compute read (times, --by and
    the spec's fairness columns, the baseline's conditions). None when the baseline named is
    not declared (compare says so)."""
    base = None
    if baseline_sources is None and baseline_name is not None:
        base = spec.baselines.get(baseline_name)
        if base is None:
            return None
    window = resolve_window(
        spec, sources, ComputeOptions(since=options.since, until=options.until, as_of=options.as_of)
    )
    by = tuple(dict.fromkeys([*options.by, *(f.column for f in spec.fairness)]))
    conditions = names_in([base.control, base.treatment] if base else [])
    kpis = list(spec.kpis.values())
    reads: dict[str, set[str] | None] = {
        name: set(columns)
        for name, columns in read_names(
            spec, kpis, ComputeOptions(by=by), with_time=True, extra=conditions
        ).items()
    }
    for name, columns in read_columns(
        spec, CompareOptions(by=by, where=options.where), window, base
    ).items():
        reads[name] = (reads.get(name) or set()) | columns
    # the unit table: every rollup and derive column (ROI and drill-down read them), and of
    # its attributes those compare, compute and --by read: the drill-down looks the others up
    # for the few conversations it shows (`drilldown._shown_attributes`), not for every one
    unit = spec.require_primary_table()
    others = {c for c in spec.column_types[unit.name] if c not in unit.attributes}
    if unit.key:
        others.add(unit.key)
    reads[unit.name] = (reads.get(unit.name) or set()) | others
    tables = sorted({k.over for k in kpis if k.kind != "formula"} | {unit.name})
    wider = with_rollup_entries(spec, entries)
    return engine.build_facts(wider, sources, window, tables, reads, in_memory=True)


def _as_of(spec: Spec, sources: Sources, options: ReportOptions) -> dt.datetime:
    """The run's as-of (compute's and compare's: `--as-of`, else the latest time)."""
    return resolve_window(spec, sources, ComputeOptions(as_of=options.as_of)).as_of


def gather_report(
    spec: Spec,
    sources: Sources,
    options: ReportOptions | None = None,
    *,
    baseline_sources: Sources | None = None,
    baseline_label: str | None = None,
    engine: Engine | None = None,
) -> ReportData:
    """Everything the scorecard shows: run compute and compare, check the data, read the facts
    for ROI, cohorts and drill-down (`run_report` then draws the charts and renders). The data
    checks of its compare, trend and cohorts count each thing over the sources once
    (`scans.shared_scans`). `engine` builds the run's facts (default: polars); compute,
    compare and the cohorts aggregate them with it."""
    with shared_scans():
        return _gather(
            spec, sources, options, baseline_sources, baseline_label, engine or default_engine()
        )


def _gather(
    spec: Spec,
    sources: Sources,
    options: ReportOptions | None,
    baseline_sources: Sources | None,
    baseline_label: str | None,
    engine: Engine,
) -> ReportData:
    options = options or ReportOptions()
    if options.alpha is None:
        options = replace(options, alpha=spec.defaults.alpha)
    if not 0 < options.significance < 0.5:
        raise UsageError(f"--alpha {options.significance}: expected a level such as 0.05")
    table = spec.require_primary_table()
    spec = with_cohort_columns(spec, sources, options.by, {table.name})
    for dim in options.by:
        known = spec.column_types[table.name]
        if dim == table.key:
            raise UsageError(
                f"--by {dim}: the key of table {table.name!r} (one cohort per row): the "
                "scorecard compares groups of rows with the rest; use a column that groups "
                f"them (e.g. {', '.join(table.attributes[:3]) or 'an attribute'}), or see "
                f"each row's values with kpictl compute --by {dim}"
            )
        if dim not in known:
            raise UsageError(
                f"--by {dim}: not a column of table {table.name!r}"
                f"{did_you_mean(dim, known)}; e.g. "
                f"{', '.join(table.attributes) or ', '.join(sorted(known))}"
            )
        require_columns(spec, sources, table, [dim], f"--by {dim}")
    if options.format not in REPORT_FORMATS:
        raise UsageError(f"--format {options.format}: expected one of {', '.join(REPORT_FORMATS)}")
    if options.charts_dir is not None:
        require_matplotlib()
    if options.format == "html":
        require_matplotlib("--format html (its charts)")
    review = score_review(options.review, options.significance) if options.review else None
    volume = parse_volume(options.project, "--project") if options.project else None
    baseline_name = options.baseline or spec.defaults.baseline
    comparison: CompareResult | None = None
    base: BaselineSpec | None = None
    # the data-quality checks read the sources, not the facts: run before the facts are in
    # memory, their passes over every row add to a smaller peak. The per-conversation costs
    # (ROI, drill-down) and, when the facts' rollup of the events reads every row (as-of at
    # the latest time), the conversation starts of the tool calls' timing check are hidden
    # entries of the unit table: the facts' own group-by of each source takes them
    key = table.key or "conversation_id"
    window = resolve_window(spec, sources, ComputeOptions(as_of=options.as_of))
    every_row = (
        key == "conversation_id"
        and table.rollup_sources()[:1] == ("events",)
        and window.latest is not None
        and window.as_of >= window.latest
        and "events" in sources
        and "ts" in sources["events"].collect_schema()
    )
    findings, columns = data_quality(spec, sources, window.as_of, timing=not every_row)
    files = list(sources.files)
    more: list[Finding] = []
    if baseline_sources is not None:  # its own as-of, as compare takes it
        found, more_columns = data_quality(
            spec, baseline_sources, _as_of(spec, baseline_sources, replace(options, as_of=None))
        )
        more = [replace(f, source=f"baseline {f.source}") for f in found]
        columns += [replace(c, source=f"baseline {c.source}") for c in more_columns]
        files += list(baseline_sources.files)
    entries = _report_entries(spec, sources, every_row)
    shared = _report_facts(spec, sources, options, baseline_name, baseline_sources, engine, entries)
    if every_row:  # the timing check's findings come last, as data_quality puts them
        findings += tool_call_timing(
            sources, _timing_starts(spec, shared) if shared is not None else None
        )
    findings += more
    base_shared = None
    base_entries = _report_entries(spec, baseline_sources, False) if baseline_sources else []
    if baseline_sources is not None:  # its own as-of, as compare takes it
        base_shared = _report_facts(
            spec,
            baseline_sources,
            replace(options, as_of=None),
            None,
            baseline_sources,
            engine,
            base_entries,
        )
    if baseline_sources is not None or baseline_name is not None:
        comparison = run_compare(
            spec,
            sources,
            CompareOptions(
                baseline=None if baseline_sources is not None else baseline_name,
                since=options.since,
                until=options.until,
                as_of=options.as_of,
                where=options.where,
                alpha=options.significance,
            ),
            baseline_sources=baseline_sources,
            baseline_label=baseline_label,
            facts=shared,
            baseline_facts=base_shared,
            engine=engine,
        )
        if baseline_sources is None and baseline_name is not None:
            base = spec.baselines[baseline_name]
    current, baseline = report_slices(spec, sources, options, comparison, base, baseline_sources)
    # every section of the current data reads the one FactSet (another dataset: its own)
    current = replace(current, facts=shared)
    if baseline is not None:
        baseline = replace(baseline, facts=shared if baseline_sources is None else base_shared)
    projection = project_costs(spec, current, ProjectionOptions(volume)) if volume else None
    notes: list[str] = []
    # with an arm condition, --where joins it: KPIs whose tables lack either's columns get no
    # trend (their tiles are compare's, which filters each table it can)
    eligible, skipped = eligible_kpis(
        spec, slice_where(current, options.where if current.where else None)
    )
    if skipped:
        notes.append(
            f"no trend for {', '.join(skipped)}: their tables cannot evaluate the "
            f"arm condition {slice_where(current, options.where)}"
        )
    grain = spec.defaults.grain
    trend = compute_slice(spec, current, eligible, grain, options.where)
    if options.where:  # the tables --where does not filter, as compute and compare say
        tables = {spec.kpis[k].over for k in spec.kpis if spec.kpis[k].kind != "formula"}
        said = where_note(spec, options.where, tables)
        if said is not None:
            notes.append(said)
    notes += [n for n in trend.notes if n not in notes]
    breakdown_kpis = [k.name for k in spec.kpis.values() if k.breakdown and k.name in eligible]
    baseline_compute = None
    if baseline is not None and breakdown_kpis:
        base_eligible, _ = eligible_kpis(
            spec, slice_where(baseline, options.where if baseline.where else None)
        )
        names = [k for k in breakdown_kpis if k in base_eligible]
        if names:
            baseline_compute = compute_slice(spec, baseline, names, None, options.where)

    # the current arm's unit table, with only the columns the sections below read
    shown = report_columns(spec, options, [*entries, *base_entries])
    facts = slice_facts(spec, current, built_columns(spec, current), shown)

    def slice_costs(
        piece: Slice, frame: pl.DataFrame, built: Sequence[tuple[RollupEntry, pl.DataType]]
    ) -> pl.DataFrame:
        """The slice's per-conversation costs: from the hidden entries its facts carry, else
        (facts built without them) from the sources."""
        found = facts_costs(spec, frame, [e for e, _ in built if e not in STARTS_ENTRIES])
        return conversation_costs(spec, piece, frame.select(key)) if found is None else found

    costs_frame = slice_costs(current, facts, entries)
    costs = cost_totals(spec, costs_frame, human_minutes_unknown(current.sources))
    baseline_costs = None
    if baseline is not None:
        base_facts = slice_facts(spec, baseline, built_columns(spec, baseline), shown)
        baseline_costs = cost_totals(
            spec,
            slice_costs(
                baseline, base_facts, entries if baseline_sources is None else base_entries
            ),
            human_minutes_unknown(baseline.sources),
        )
        del base_facts
    caveats = {k.name: kpi_caveats(spec, k, sources, findings, columns) for k in spec.kpis.values()}
    tiles = build_tiles(spec, trend, comparison, caveats)
    cohorts: list[dict[str, Any]] = []
    cohort_notes: list[str] = []
    tests = 0
    if options.by:
        check_cohort_counts({"facts": facts}, options.by, options.max_cohorts)
        cohorts, cohort_notes, tests = cohort_comparisons(spec, current, facts, options.by, options)
    # no drill-down of an unavailable KPI: its failures would be counted over nulls
    groups, has_text = drilldown(
        spec, current, facts, costs_frame, options, skip=trend.check.unavailable
    )
    time = table.time
    period_start = current.window.since
    if period_start is None and time is not None and facts.height:
        period_start = facts.get_column(time).min()  # type: ignore[assignment]
    source_columns = source_column_names(sources)
    used: dict[str, tuple[str, str, str]] = {}
    for kpi in spec.kpis.values():
        for entry in kpi_inputs(spec, kpi, source_columns)[1]:
            used.setdefault(entry[0], entry)
    return ReportData(
        spec=spec,
        options=options,
        current=current,
        baseline=baseline,
        compare=comparison,
        trend=trend,
        baseline_compute=baseline_compute,
        tiles=tiles,
        period_start=period_start,
        cohorts=tuple(cohorts),
        cohort_notes=tuple(cohort_notes),
        cohort_tests=tests,
        costs=costs,
        baseline_costs=baseline_costs,
        agent_alone=agent_alone(facts),
        files=tuple(files),
        file_hashes={f.path: _sha256(f.path) for f in files},
        findings=tuple(findings),
        columns=tuple(columns),
        drilldown=tuple(groups),
        has_text=has_text,
        charts={},
        notes=tuple(notes),
        used_columns=tuple(sorted(used.values(), key=_entry_order(spec))),
        review=review,
        projection=projection,
    )


def _entry_order(spec: Spec) -> Any:
    order: dict[str, int] = {}
    for table in spec.tables.values():
        for name in [*(e.name for e in table.rollup), *(e.name for e in table.derive)]:
            order[f"{table.name}.{name}"] = len(order)
    return lambda entry: order.get(entry[0], len(order))
