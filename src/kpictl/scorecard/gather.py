"""Gathering: `gather_report` runs compute (values and trends of the current arm) and compare
(the baseline, when there is one), reads the facts and the inputs for ROI, data quality, cohorts
and drill-down, and returns everything the sections need as one `ReportData`."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import polars as pl

from kpictl.comparison import (
    OBSERVATIONAL_ARMS_CAVEAT,
    UNAVAILABLE,
    CompareOptions,
    CompareResult,
    Design,
    compare_arms,
    condition_split,
    read_columns,
    run_compare,
)
from kpictl.engine.compute import (
    ComputeOptions,
    ComputeResult,
    check_cohort_counts,
    default_engine,
    names_in,
    read_names,
    resolve_window,
    run_compute,
    where_note,
    with_cohort_columns,
    with_cost_counts,
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
from kpictl.engine.costs import source_rows as _source_rows
from kpictl.engine.costs import with_literals as _with_literals
from kpictl.engine.datacheck import check_data, require_columns
from kpictl.engine.interface import Engine, FactSet, cohort_sets
from kpictl.engine.scans import shared_scans
from kpictl.errors import InputDataError, UsageError, did_you_mean
from kpictl.io.read import Sources
from kpictl.projection import ProjectionOptions, parse_volume, project_costs
from kpictl.review import score_review
from kpictl.scorecard.charts import REPORT_FORMATS, require_matplotlib
from kpictl.scorecard.lineage import (
    kpi_inputs,
    kpi_tables,
    proportion_condition,
    source_column_names,
)
from kpictl.scorecard.markdown import code_span, redactor
from kpictl.scorecard.model import (
    CONDITION_DESIGNS,
    INSUFFICIENT,
    NOT_JUDGED,
    Finding,
    ReportData,
    ReportOptions,
    Tile,
    adjust_p_values,
    overall_rows,
)
from kpictl.scorecard.quality import (
    STARTS_ENTRIES,
    data_quality,
    kpi_caveats,
    tool_call_timing,
)
from kpictl.spec.model import BaselineSpec, KpiSpec, RollupEntry, Spec, most_severe
from kpictl.sql.expr import compile_sql

MAX_COHORT_VALUES = 12


_COHORT_BASELINE = "__kpictl_rest"


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_AGENT_ALONE = ("completed", "contained", "settled")


def _agent_alone(facts: pl.DataFrame) -> tuple[int, str] | None:
    needed = _AGENT_ALONE[:2]
    if not all(c in facts.columns for c in needed):
        return None
    condition = pl.col("completed").fill_null(False) & pl.col("contained").fill_null(False)
    how = "`completed AND contained`"
    if "settled" in facts.columns:
        condition = condition & pl.col("settled").fill_null(False)
        how += " AND `settled`"
    return int(facts.filter(condition).height), how


def _bound_status(kpi: KpiSpec, value: float | None, n: int) -> tuple[str, str | None]:
    """Without a baseline only absolute bounds ("> 1%") can be judged."""
    if value is None:
        return INSUFFICIENT, None
    if n < kpi.min_sample:
        return INSUFFICIENT, None
    fired = most_severe(t for t in kpi.thresholds if t.kind == "bound" and t.beyond(value))
    if fired is not None:
        return fired.level, fired.text
    if kpi.thresholds and all(t.kind == "bound" for t in kpi.thresholds):
        return "ok", None
    return NOT_JUDGED, None


def build_tiles(
    spec: Spec,
    trend: ComputeResult,
    comparison: CompareResult | None,
    caveats: Mapping[str, tuple[str, ...]],
) -> tuple[Tile, ...]:
    """One tile row per KPI: the compare row (overall) when there is a baseline, else the
    compute value with only absolute bounds judged. An approximate percentile
    (`--approx-percentiles`) is marked, its method a caveat."""
    tiles: list[Tile] = []
    approximation = trend.approximation
    approximate = set(approximation.kpis) if approximation else set()
    if approximation is not None and approximate:
        caveat = f"approximate percentile (--approx-percentiles: {approximation.method})"
        caveats = {**caveats, **{k: (*caveats.get(k, ()), caveat) for k in approximate}}
    if comparison is not None:
        rows = comparison.table.filter(pl.col("grouping").list.len() == 0)
        for row in rows.iter_rows(named=True):
            tiles.append(
                Tile(
                    row["kpi"],
                    row["layer"],
                    row["owner"],
                    row["format"],
                    row["current_value"],
                    row["current_n"],
                    row["delta"],
                    row["relative_delta"],
                    bool(row["significant"]),
                    row["status"],
                    row["threshold"],
                    caveats.get(row["kpi"], ()),
                    trend.check.reason(row["kpi"]),
                    row["label"],
                    row["kpi"] in approximate,
                )
            )
        return tuple(tiles)
    for row in overall_rows(trend.table).iter_rows(named=True):
        kpi = spec.kpis[row["kpi"]]
        status, fired = _bound_status(kpi, row["value"], row["n"])
        reason = trend.check.reason(kpi.name)
        if reason is not None:
            status, fired = UNAVAILABLE, None
        tiles.append(
            Tile(
                row["kpi"],
                row["layer"],
                row["owner"],
                row["format"],
                row["value"],
                row["n"],
                status=status,
                threshold=fired,
                caveats=caveats.get(row["kpi"], ()),
                reason=reason,
                label=kpi.label,
                approximate=row["kpi"] in approximate,
            )
        )
    return tuple(tiles)


def _slices(
    spec: Spec,
    sources: Sources,
    options: ReportOptions,
    comparison: CompareResult | None,
    base: BaselineSpec | None,
    baseline_sources: Sources | None,
) -> tuple[Slice, Slice | None]:
    if comparison is None:
        window = resolve_window(
            spec,
            sources,
            ComputeOptions(since=options.since, until=options.until, as_of=options.as_of),
        )
        return Slice("all conversations", sources, window), None
    window = comparison.current_window
    design = comparison.design
    if design.kind in CONDITION_DESIGNS and base is not None:
        return (
            Slice("treatment arm", sources, window, base.treatment),
            Slice("control arm", sources, window, base.control),
        )
    if comparison.baseline_window is None:
        return Slice("current period", sources, window), None
    if baseline_sources is not None:
        return (
            Slice("current dataset", sources, window),
            Slice("baseline dataset", baseline_sources, comparison.baseline_window),
        )
    return (
        Slice("current period", sources, window),
        Slice("baseline period", sources, comparison.baseline_window),
    )


def _eligible(spec: Spec, where: str | None) -> tuple[list[str], list[str]]:
    """KPIs whose tables can evaluate `where` (an arm condition), and the others."""
    if not where:
        return list(spec.kpis), []
    names = set(names_in([where]))
    ok: list[str] = []
    not_ok: list[str] = []
    for kpi in spec.kpis.values():
        tables = kpi_tables(spec, kpi)
        (ok if all(names <= set(spec.table_schema(t)) for t in tables) else not_ok).append(kpi.name)
    return ok, not_ok


def _slice_where(piece: Slice, where: str | None) -> str | None:
    """The arm's condition and --where together (either alone when the other is absent)."""
    if piece.where and where:
        return f"({piece.where}) AND ({where})"
    return piece.where or where


def _compute_slice(
    spec: Spec, piece: Slice, kpis: Sequence[str], grain: str | None, where: str | None
) -> ComputeResult:
    options = ComputeOptions(
        grain=grain,
        since=piece.window.since,
        until=piece.window.until,
        as_of=piece.window.as_of,
        where=_slice_where(piece, where),
        kpis=tuple(kpis),
    )
    engine = piece.facts.engine if piece.facts is not None else None
    return run_compute(spec, piece.sources, options, facts=piece.facts, engine=engine)


def _quote_identifier(name: str) -> str:
    return name if _IDENTIFIER.match(name) else '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _cohort_conditions(group: Sequence[str], values: Sequence[str | None]) -> tuple[str, str]:
    """SQL conditions for the rows of one cohort (a value per column of `group`; null is a
    value) and for the rest."""
    if len(group) == 1:
        column, value = _quote_identifier(group[0]), values[0]
        if value is None:
            return f"{column} IS NULL", f"{column} IS NOT NULL"
        return (
            f"CAST({column} AS VARCHAR) = {_quote_literal(value)}",
            f"COALESCE(CAST({column} AS VARCHAR) <> {_quote_literal(value)}, TRUE)",
        )
    parts = [
        f"{_quote_identifier(d)} IS NULL"
        if v is None
        else f"COALESCE(CAST({_quote_identifier(d)} AS VARCHAR) = {_quote_literal(v)}, FALSE)"
        for d, v in zip(group, values, strict=True)
    ]
    inside = " AND ".join(parts)
    return inside, f"NOT ({inside})"


def cohort_comparisons(
    spec: Spec, piece: Slice, facts: pl.DataFrame, by: Sequence[str], options: ReportOptions
) -> tuple[list[dict[str, Any]], list[str], int]:
    """Each cohort value against the rest of the current arm, for every KPI; p-values adjusted
    (the spec's correction) over all these tests. Returns (significant rows, notes, tests).

    The cohort and the rest are two arms of the slice's facts (`Slice.facts`, built once for
    the report), compared as a holdout's conditions are (`compare_arms`)."""
    cells: list[dict[str, Any]] = []
    notes: list[str] = []
    correction = spec.defaults.correction
    built = piece.facts or default_engine().build_facts(
        spec, piece.sources, piece.window, in_memory=True
    )
    kpis = list(spec.kpis.values())
    tables = with_cost_counts(spec, piece.sources, piece.window, built.tables, kpis)
    check = check_data(spec, piece.sources, kpis)
    arm_options = CompareOptions(
        since=piece.window.since,
        until=piece.window.until,
        as_of=piece.window.as_of,
        alpha=options.significance,
        correction="none",
    )
    design = Design(
        "conditions",
        "observational comparison of two concurrent conditions (not randomized)",
        _COHORT_BASELINE,
        randomized=False,
        caveat=OBSERVATIONAL_ARMS_CAVEAT,
    )
    split = condition_split(spec, tables, piece.window, built.engine)  # facts collected once
    for group in cohort_sets(by, options.cross)[1:]:
        dim = " × ".join(group)  # a cross-tab (--by a,b): each combination against the rest
        combos = facts.select(pl.col(d).cast(pl.String) for d in group).unique().rows()
        ordered = sorted(combos, key=lambda r: tuple((v is None, v or "") for v in r))
        if len(ordered) > MAX_COHORT_VALUES:
            notes.append(
                f"--by {','.join(group)}: {len(ordered)} values; only the first "
                f"{MAX_COHORT_VALUES} (in order) are compared with the rest"
            )
            ordered = ordered[:MAX_COHORT_VALUES]
        for combo in ordered:
            inside, outside = _cohort_conditions(group, combo)
            value = combo[0] if len(group) == 1 else " × ".join(str(v) for v in combo)
            if piece.where:
                inside, outside = f"({piece.where}) AND {inside}", f"({piece.where}) AND {outside}"
            rest = BaselineSpec(_COHORT_BASELINE, "holdout", control=outside, treatment=inside)
            cohort, others = split.arms(inside, outside)
            result = compare_arms(
                spec, cohort, others, design, rest, arm_options, check, with_fairness=False
            )
            for row in result.table.filter(pl.col("grouping").list.len() == 0).iter_rows(
                named=True
            ):
                if row["status"] == INSUFFICIENT or row["p_value"] is None:
                    continue
                shown = redactor(options.redact)(value)
                cells.append({**row, "dimension": dim, "value": shown})
    adjusted = adjust_p_values([c["p_value"] for c in cells], correction)
    significant = []
    for cell, p_adj in zip(cells, adjusted, strict=True):
        if p_adj is not None and p_adj < options.significance:
            significant.append({**cell, "p_adjusted": p_adj})
    order = {name: i for i, name in enumerate(spec.kpis)}
    significant.sort(
        key=lambda c: (order[c["kpi"]], c["dimension"], c["value"] is None, str(c["value"]))
    )
    return significant, notes, len(cells)


def _failure_types(spec: Spec) -> list[tuple[KpiSpec, str, str]]:
    """(KPI, failing-row condition, label) for every share-of-conversations KPI."""
    types = []
    for kpi in spec.kpis.values():
        condition = proportion_condition(spec, kpi)
        if condition is None:
            continue
        if kpi.direction == "higher":
            types.append(
                (kpi, f"NOT COALESCE(({condition}), FALSE)", f"not {code_span(condition)}")
            )
        else:
            types.append((kpi, f"COALESCE(({condition}), FALSE)", code_span(condition)))
    return types


def drilldown(
    spec: Spec,
    piece: Slice,
    facts: pl.DataFrame,
    costs: pl.DataFrame | None,
    options: ReportOptions,
    skip: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], bool]:
    """A few failing conversations per failure type (most recent first), with cohort values,
    cost and the first user message. Unless options.redact is False, every value shown (ids,
    cohort and breakdown values, the message) is redacted (kpictl.redact)."""
    table = spec.require_primary_table()
    key = table.key or "conversation_id"
    cohort_dims = [
        d for d in dict.fromkeys([*spec.defaults.cohorts, *options.by]) if d in facts.columns
    ]
    # attributes not in the facts (no KPI reads them): looked up for the rows shown only
    built = _built_columns(spec, piece)
    later = [
        d for d in cohort_dims if d in table.attributes and built is not None and d not in built
    ]
    shown = redactor(options.redact)
    groups: list[dict[str, Any]] = []
    wanted: set[str] = set()
    for kpi, condition, label in _failure_types(spec):
        if kpi.name in skip:
            continue
        # only the columns read here: the conditions, what a row shows, the breakdown
        sqls = [kpi.where, kpi.mature, condition]
        read = {key, *([table.time] if table.time else []), *cohort_dims, *names_in(sqls)}
        read |= {kpi.breakdown} if kpi.breakdown else set()
        narrow = facts.select(c for c in facts.columns if c in read)
        frame, names = _with_literals(spec, narrow.lazy(), piece.window, sqls)
        for sql in (kpi.where, kpi.mature):  # the rows the KPI counts
            if sql:
                frame = frame.filter(compile_sql(sql).fill_null(False))
        counted = frame.collect()
        failing = counted.filter(compile_sql(condition)).drop(names)
        settled = counted.drop(names)
        # (breakdown column, value), None for the whole failing set
        parts: list[tuple[tuple[str, object] | None, pl.DataFrame]] = [(None, failing)]
        if kpi.breakdown and kpi.breakdown in failing.columns:
            values = failing.get_column(kpi.breakdown).cast(pl.String)
            keys = sorted(values.drop_nulls().unique().to_list())
            parts = [((kpi.breakdown, shown(v)), failing.filter(values == v)) for v in keys]
            if values.null_count():
                parts.append(((kpi.breakdown, None), failing.filter(values.is_null())))
        for which, part in parts:
            order = [c for c in (table.time, key) if c and c in part.columns]
            fresh = part.filter(~pl.col(key).is_in(sorted(wanted)))  # each conversation once
            chosen = _latest(fresh, order, options.drilldown)
            wanted.update(chosen.get_column(key).to_list())
            groups.append(
                {
                    "kpi": kpi.name,
                    "label": label,
                    "part": which,
                    "count": part.height,
                    "of": settled.height,
                    "rows": chosen.select(
                        [key, *([table.time] if table.time else [])]
                        + [d for d in cohort_dims if d not in later]
                    ).to_dicts(),
                }
            )
    texts, has_text = _first_user_messages(piece, key, sorted(wanted))
    attributes = _shown_attributes(spec, piece, sorted(wanted), later)
    cost_of = {}
    if costs is not None and wanted:  # only the conversations shown, not every one
        shown_costs = costs.filter(pl.col(key).is_in(sorted(wanted)))
        cost_of = dict(
            zip(
                shown_costs.get_column(key).to_list(),
                shown_costs.get_column("total_cost").to_list(),
                strict=True,
            )
        )
    for group in groups:
        for row in group["rows"]:
            row.update(attributes.get(row[key], dict.fromkeys(later)))
            row["__cohort"] = " · ".join(f"{d}={shown(row[d])}" for d in cohort_dims)
            row["__cost"] = cost_of.get(row[key])
            row["__text"] = shown(texts.get(row[key]))
            row[key] = shown(row[key])  # an id may be an e-mail address or a phone number
    return groups, has_text


def _report_columns(
    spec: Spec, options: ReportOptions, entries: Sequence[tuple[RollupEntry, pl.DataType]]
) -> set[str]:
    """The unit table's columns the report reads from an arm's facts: the key and time, the
    costs (`entries`), `_agent_alone`'s, the cohorts (`--by`, the spec's cohorts) and what the
    drill-down tests and shows."""
    table = spec.require_primary_table()
    read = {
        *(c for c in (table.key, table.time) if c),
        *(e.name for e, _ in entries),
        *_AGENT_ALONE,
        *options.by,
        *spec.defaults.cohorts,
    }
    for kpi, condition, _ in _failure_types(spec):
        read |= set(names_in([kpi.where, kpi.mature, condition]))
        read |= {kpi.breakdown} if kpi.breakdown else set()
    return read


def _built_columns(spec: Spec, piece: Slice) -> set[str] | None:
    """The unit table's columns the slice's facts were built with (None: every column)."""
    if piece.facts is None:
        return None
    read = piece.facts.reads.get(spec.require_primary_table().name)
    return None if read is None else set(read)


def _shown_attributes(
    spec: Spec, piece: Slice, ids: Sequence[Any], names: Sequence[str]
) -> dict[Any, dict[str, Any]]:
    """Per unit of `ids`, its value of each attribute of `names`, as the facts would hold it:
    the non-null value of its rows in the first rollup source (null when none), one per unit
    (else the facts' error: an attribute varies within a key)."""
    table = spec.require_primary_table()
    key = table.key or "conversation_id"
    if not ids or not names:
        return {}
    rows = _source_rows(piece, table.rollup_sources()[0])
    if rows is None:
        return {}
    schema = rows.collect_schema()
    present = [n for n in names if n in schema]
    found = (
        rows.filter(pl.col(key).is_in(list(ids)))
        .group_by(key)
        .agg(
            *[pl.col(n).drop_nulls().first() for n in present],
            *[pl.col(n).drop_nulls().n_unique().alias(f"__kpictl_n_{n}") for n in present],
        )
        .sort(key)
        .collect()
    )
    for name in present:
        varying = found.filter(pl.col(f"__kpictl_n_{name}") > 1)
        if varying.height:
            raise InputDataError(
                f"tables.{table.name}.attributes: {name!r} varies within a {key} (e.g. "
                f"{varying.item(0, key)!r}); an attribute must be constant per key — "
                "aggregate it in `rollup` instead"
            )
    values = {row[key]: row for row in found.select(key, *present).iter_rows(named=True)}
    return {unit: {n: values.get(unit, {}).get(n) for n in names} for unit in ids}


def _latest(frame: pl.DataFrame, order: Sequence[str], n: int) -> pl.DataFrame:
    """The first `n` rows of `frame` sorted by `order` (time descending, then the unit key
    ascending). The key is unique in the unit table, so without nulls in those columns the
    order is total and the `n` rows are those of `top_k` (no sort of every row), sorted."""
    descending = [True, False][: len(order)]
    if len(order) == 2 and n > 0 and not any(frame.get_column(c).has_nulls() for c in order):
        top = frame.top_k(n, by=list(order), reverse=[False, True])
        return top.sort(list(order), descending=descending)
    return frame.sort(list(order), descending=descending).head(n)


def _first_user_messages(piece: Slice, key: str, ids: Sequence[str]) -> tuple[dict[str, str], bool]:
    rows = _source_rows(piece, "events")
    if rows is None:
        return {}, False
    schema = rows.collect_schema()
    if "text" not in schema or key not in schema or "role" not in schema:
        return {}, False
    has_text = bool(rows.select(pl.col("text").is_not_null().any()).collect().item())
    if not ids:
        return {}, has_text
    users = rows.filter((pl.col("role") == "user") & pl.col("text").is_not_null())
    if "event" in schema:
        users = users.filter(pl.col("event") == "message")
    first = (
        users.filter(pl.col(key).is_in(list(ids)))
        .sort([key, "ts"])
        .group_by(key, maintain_order=True)
        .agg(pl.col("text").first())
        .collect()
    )
    return dict(
        zip(first.get_column(key).to_list(), first.get_column("text").to_list(), strict=True)
    ), has_text


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
    # for the few conversations it shows (`_shown_attributes`), not for every one
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
    current, baseline = _slices(spec, sources, options, comparison, base, baseline_sources)
    # every section of the current data reads the one FactSet (another dataset: its own)
    current = replace(current, facts=shared)
    if baseline is not None:
        baseline = replace(baseline, facts=shared if baseline_sources is None else base_shared)
    projection = project_costs(spec, current, ProjectionOptions(volume)) if volume else None
    notes: list[str] = []
    # with an arm condition, --where joins it: KPIs whose tables lack either's columns get no
    # trend (their tiles are compare's, which filters each table it can)
    eligible, skipped = _eligible(
        spec, _slice_where(current, options.where if current.where else None)
    )
    if skipped:
        notes.append(
            f"no trend for {', '.join(skipped)}: their tables cannot evaluate the "
            f"arm condition {_slice_where(current, options.where)}"
        )
    grain = spec.defaults.grain
    trend = _compute_slice(spec, current, eligible, grain, options.where)
    if options.where:  # the tables --where does not filter, as compute and compare say
        tables = {spec.kpis[k].over for k in spec.kpis if spec.kpis[k].kind != "formula"}
        said = where_note(spec, options.where, tables)
        if said is not None:
            notes.append(said)
    notes += [n for n in trend.notes if n not in notes]
    breakdown_kpis = [k.name for k in spec.kpis.values() if k.breakdown and k.name in eligible]
    baseline_compute = None
    if baseline is not None and breakdown_kpis:
        base_eligible, _ = _eligible(
            spec, _slice_where(baseline, options.where if baseline.where else None)
        )
        names = [k for k in breakdown_kpis if k in base_eligible]
        if names:
            baseline_compute = _compute_slice(spec, baseline, names, None, options.where)

    # the current arm's unit table, with only the columns the sections below read
    shown = _report_columns(spec, options, [*entries, *base_entries])
    facts = slice_facts(spec, current, _built_columns(spec, current), shown)

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
        base_facts = slice_facts(spec, baseline, _built_columns(spec, baseline), shown)
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
        agent_alone=_agent_alone(facts),
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
