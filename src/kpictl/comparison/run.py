"""`compare`: every KPI of the spec, baseline vs current, with the right test for each KPI.

The stages (docs/methods.md, A0): build the two arms (a concurrent holdout, an earlier period, a
pinned period, another dataset, or target values) → reduce every KPI to per-unit sufficient
statistics (the unit is the unit of assignment: the conversation by default) → one test per
KPI × cohort (kpictl.stats) → multiple-testing correction over the run → threshold verdicts.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import polars as pl

from kpictl import stats
from kpictl.engine.compute import (
    MAX_COHORTS,
    ComputeOptions,
    PolarsEngine,
    Window,
    check_cohort_counts,
    check_where,
    empty_source_notes,
    filter_kpi_rows,
    input_notes,
    literal_columns,
    mark_unavailable,
    names_in,
    pass_k_probability,
    read_names,
    require_cohorts,
    resolve_window,
    selected_kpis,
    unit_sums,
    usable,
    where_note,
    window_text,
    with_cohort_columns,
    with_cost_counts,
)
from kpictl.engine.datacheck import DataCheck, check_data, require_columns
from kpictl.engine.interface import Engine, FactSet, TimeBound, cohort_sets
from kpictl.engine.shapes import KpiShape, kpi_shape
from kpictl.errors import UsageError, did_you_mean
from kpictl.io.read import Sources
from kpictl.spec.model import (
    LEVELS,
    BaselineSpec,
    Defaults,
    KpiSpec,
    Spec,
    TableSpec,
    Threshold,
    most_severe,
)
from kpictl.sql.expr import compile_sql

STATUSES = ("ok", *LEVELS)
INSUFFICIENT = "insufficient_data"
UNAVAILABLE = "unavailable"  # a column a KPI depends on is missing from the data (datacheck)
NOT_TESTABLE = "not_testable"
_BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class CompareOptions:
    """What `compare` is asked for."""

    baseline: str | None = None  # a baseline name of the spec (default: defaults.baseline)
    by: tuple[str, ...] = ()
    cross: tuple[str, ...] = ()  # `by` columns crossed into one grouping set (--by a,b)
    since: TimeBound | None = None
    until: TimeBound | None = None
    as_of: dt.datetime | None = None
    where: str | None = None
    kpis: tuple[str, ...] = ()
    alpha: float | None = None  # None: 1 − the spec's defaults.confidence
    correction: str | None = None  # holm | bh | none (default: the spec's)
    unit: str | None = None
    relative_ci: Literal["delta", "fieller"] = "delta"
    paired: bool | None = None  # None: paired when both datasets ran the same --unit ids
    seed: int = 20261122
    max_cohorts: int = MAX_COHORTS  # the most values one --by column may have
    sequential: bool = False  # always-valid CIs and p-values (docs/methods.md A9)
    cuped: str | None = None  # a pre-period covariate column of the unit table (A10)
    heterogeneity: bool = False  # per --by dimension: does the effect differ across groups?
    sequential_n_star: float = stats.SEQUENTIAL_N_STAR

    @property
    def significance(self) -> float:
        """alpha; None (not filled in from a spec's defaults.confidence): the default level."""
        return self.alpha if self.alpha is not None else Defaults().alpha


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: facts tables restricted to the arm's units and window."""

    label: str
    tables: Mapping[str, pl.LazyFrame]
    window: Window
    engine: Engine = field(default_factory=PolarsEngine)  # the engine of its facts


# The caveat of control/treatment arms that were not declared `design: randomized`.
OBSERVATIONAL_ARMS_CAVEAT = (
    "not randomized (the baseline does not declare `design: randomized`): traffic mix and time "
    "differ between the arms, so differences are associations, not causal effects"
)


@dataclass(frozen=True)
class Design:
    """How the two arms were formed, and what that allows one to conclude."""

    kind: str  # holdout (randomized) | conditions | previous | between | dataset | values
    label: str  # e.g. "randomized holdout", "observational period (time-confounded)"
    baseline: str
    randomized: bool
    paired: bool = False
    caveat: str = ""


@dataclass(frozen=True)
class CompareResult:
    """A compare run: one row per KPI × cohort, plus the design and the SRM check."""

    table: pl.DataFrame
    design: Design
    baseline_window: Window | None
    current_window: Window
    srm: Mapping[str, Any] | None
    alpha: float
    correction: str
    unit: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    check: DataCheck = field(default_factory=DataCheck)  # literals matched, KPIs unavailable
    heterogeneity: tuple[Heterogeneity, ...] = ()
    fairness: tuple[FairnessFinding, ...] = ()


@dataclass(frozen=True)
class FairnessFinding:
    """A `fairness:` entry of the spec checked on the current arm: the gap between the highest
    and the lowest group value of the KPI (groups with at least min_sample units), against the
    declared max_gap; `breached` when it is larger. `baseline_gap` is the same gap in the
    baseline arm (None without one)."""

    kpi: str
    column: str
    max_gap: float
    max_gap_text: str
    gap: float | None
    low: tuple[str | None, float] | None
    high: tuple[str | None, float] | None
    baseline_gap: float | None
    breached: bool
    excluded: int  # groups left out: fewer than min_sample units (or no value)
    format: str = "number"  # the KPI's format


@dataclass(frozen=True)
class GroupEffect:
    """One group's effect in a heterogeneity test; `worse` when the agent is worse than the
    baseline in this group (by the KPI's direction) while better overall."""

    group: str | None
    delta: float
    se: float
    p_value: float | None
    p_holm: float | None
    worse: bool


@dataclass(frozen=True)
class Heterogeneity:
    """Does a KPI's effect differ across the groups of a --by dimension? Cochran's Q over the
    per-group absolute effects and SEs (an interaction test), Holm over the groups' tests."""

    kpi: str
    dimension: str
    overall_delta: float | None
    better_overall: bool
    test: stats.CochranQ | None
    groups: tuple[GroupEffect, ...]


# ----------------------------------------------------------------------------------------------
# Arms
# ----------------------------------------------------------------------------------------------


def _time_column(spec: Spec, table: TableSpec) -> str | None:
    if table.is_rollup:
        return table.time
    return spec.tables[table.lookup].time if table.lookup else None


def _restrict(
    spec: Spec,
    tables: Mapping[str, pl.LazyFrame],
    window: Window,
    since: dt.datetime | None,
    until: dt.datetime | None,
    condition: str | None,
) -> dict[str, pl.LazyFrame]:
    """Tables limited to units whose time is in [since, until) and that meet `condition`."""
    parent = spec.require_primary_table()
    key = parent.key
    assert key is not None
    keys: pl.LazyFrame | None = None
    if condition is not None:
        literals = literal_columns(spec, window, names_in([condition]))
        facts = tables[parent.name].with_columns(literals) if literals else tables[parent.name]
        keys = facts.filter(compile_sql(condition)).select(key)
    restricted: dict[str, pl.LazyFrame] = {}
    for name, frame in tables.items():
        table = spec.tables[name]
        time_col = _time_column(spec, table)
        if time_col is not None:
            if since is not None:
                frame = frame.filter(pl.col(time_col) >= since)
            if until is not None:
                frame = frame.filter(pl.col(time_col) < until)
        if keys is not None and key in frame.collect_schema():
            frame = frame.join(keys, on=key, how="semi")
        restricted[name] = frame
    return restricted


def condition_arms(
    spec: Spec,
    tables: Mapping[str, pl.LazyFrame],
    window: Window,
    engine: Engine,
    treatment: str,
    control: str,
) -> tuple[Arm, Arm]:
    """Two arms of facts already built: the units in `window` meeting `treatment`, and those
    meeting `control` (a holdout's conditions; the report's cohort and the rest)."""
    return (
        Arm(
            "treatment",
            _restrict(spec, tables, window, window.since, window.until, treatment),
            window,
            engine,
        ),
        Arm(
            "control",
            _restrict(spec, tables, window, window.since, window.until, control),
            window,
            engine,
        ),
    )


def _baseline_spec(spec: Spec, name: str | None) -> BaselineSpec:
    chosen = name or spec.defaults.baseline
    if chosen is None:
        raise UsageError(
            "no baseline: pass --baseline NAME|PATH or set defaults.baseline "
            f"(declared: {', '.join(spec.baselines) or 'none'})"
        )
    if chosen not in spec.baselines:
        raise UsageError(
            f"--baseline {chosen}: the spec declares no such baseline"
            f"{did_you_mean(chosen, spec.baselines)}; declared: "
            f"{', '.join(spec.baselines) or 'none'} (or pass a path to a dataset)"
        )
    return spec.baselines[chosen]


def read_columns(
    spec: Spec, options: CompareOptions, window: Window, base: BaselineSpec | None
) -> dict[str, set[str]]:
    """Per table, the columns this comparison reads (see engine.read_names): its KPIs and
    their formulas' components, --by, --where, the unit, the arms' conditions, and the times
    when a window or a period baseline bounds the arms. The rest is neither rolled up nor
    looked up."""
    kpis, _ = selected_kpis(spec, options.kpis)
    unit = options.unit or (base.unit if base and base.unit else None)
    period = base is not None and base.kind in ("previous", "between")
    bounded = window.since is not None or window.until is not None or period
    reads = read_names(
        spec,
        kpis,
        ComputeOptions(by=options.by, where=options.where, cross=options.cross),
        with_time=bounded,
        extra=[c for c in (unit, options.cuped) if c is not None],
    )
    conditions = names_in([base.control, base.treatment] if base else [])
    for name, table in spec.tables.items():
        if table.is_rollup:
            reads[name] |= set(conditions)
    return reads


def build_arms(
    spec: Spec,
    sources: Sources,
    options: CompareOptions,
    baseline_sources: Sources | None = None,
    baseline_label: str | None = None,
    *,
    facts: FactSet | None = None,
    baseline_facts: FactSet | None = None,
    engine: Engine | None = None,
) -> tuple[Arm, Arm | None, Design, BaselineSpec | None]:
    """The current and baseline arms (baseline None for `values`), and the design: both arms
    restrict the same facts (`facts` when they serve this comparison, else built here by
    `engine`, polars by default), except against another dataset, whose facts are its own
    (built by the same engine)."""
    window = resolve_window(
        spec, sources, ComputeOptions(since=options.since, until=options.until, as_of=options.as_of)
    )
    # the tables of the compared KPIs (formulas' components too) and the unit table
    kpi_tables = sorted(
        {k.over for k in selected_kpis(spec, options.kpis)[0] if k.kind != "formula"}
        | {spec.require_primary_table().name}
    )
    base = None if baseline_sources is not None else _baseline_spec(spec, options.baseline)
    reads = read_columns(spec, options, window, base)
    if facts is None or not usable(spec, facts, window, kpi_tables, reads):
        facts = (engine or PolarsEngine()).build_facts(
            spec, sources, window, kpi_tables, reads, in_memory=True
        )
    engine = facts.engine
    tables = with_cost_counts(spec, sources, window, facts.tables, list(spec.kpis.values()))

    def arm(label: str, frames: Mapping[str, pl.LazyFrame], arm_window: Window) -> Arm:
        return Arm(label, frames, arm_window, engine)

    if baseline_sources is not None:
        base_window = resolve_window(
            spec,
            baseline_sources,
            ComputeOptions(since=options.since, until=options.until, as_of=None),
        )
        base_reads = read_columns(spec, options, base_window, None)
        base_facts = baseline_facts
        if base_facts is None or not usable(spec, base_facts, base_window, kpi_tables, base_reads):
            base_facts = engine.build_facts(
                spec, baseline_sources, base_window, kpi_tables, base_reads, in_memory=True
            )
        base_tables = with_cost_counts(
            spec, baseline_sources, base_window, base_facts.tables, list(spec.kpis.values())
        )
        design = Design(
            "dataset",
            "observational comparison of two datasets",
            baseline_label or "dataset",
            randomized=False,
            caveat="the datasets differ in time and traffic mix: differences are "
            "not causal effects",
        )
        current = arm(
            "current", _restrict(spec, tables, window, window.since, window.until, None), window
        )
        baseline = arm(
            "baseline",
            _restrict(spec, base_tables, base_window, base_window.since, base_window.until, None),
            base_window,
        )
        return current, baseline, design, None
    assert base is not None
    if base.kind == "holdout":
        design = (
            Design("holdout", "randomized holdout (concurrent control)", base.name, randomized=True)
            if base.design == "randomized"
            else Design(
                "conditions",
                "observational comparison of two concurrent conditions (not randomized)",
                base.name,
                randomized=False,
                caveat=OBSERVATIONAL_ARMS_CAVEAT,
            )
        )
        assert base.treatment is not None and base.control is not None
        current, baseline = condition_arms(
            spec, tables, window, engine, base.treatment, base.control
        )
        return current, baseline, design, base
    if base.kind == "values":
        design = Design(
            "values",
            "current period against target values",
            base.name,
            randomized=False,
            caveat="targets are constants: the test asks whether "
            "the current value differs from the target",
        )
        current = arm(
            "current", _restrict(spec, tables, window, window.since, window.until, None), window
        )
        return current, None, design, base
    caveat = (
        "periods differ in time (seasonality, traffic mix, prices): the change is "
        "observational, not a causal effect; a concurrent holdout is the remedy"
    )
    if base.kind == "previous":
        assert base.previous is not None
        # Without --since the current period is the declared length ending at --until (or
        # as-of); the baseline is the declared length just before the current period.
        start = window.since or ((window.until or window.as_of) - base.previous)
        current_window = replace(window, since=start, until=window.until)
        base_window = replace(window, since=start - base.previous, until=start)
        design = Design(
            "previous",
            "observational period comparison (time-confounded)",
            base.name,
            randomized=False,
            caveat=caveat,
        )
    else:
        assert base.between is not None
        base_window = replace(window, since=base.between[0], until=base.between[1])
        start = window.since or base.between[1]
        current_window = replace(window, since=start)
        design = Design(
            "between",
            "observational period comparison (time-confounded)",
            base.name,
            randomized=False,
            caveat=caveat,
        )
    current = arm(
        "current",
        _restrict(spec, tables, window, current_window.since, current_window.until, None),
        current_window,
    )
    baseline = arm(
        "baseline",
        _restrict(spec, tables, window, base_window.since, base_window.until, None),
        base_window,
    )
    return current, baseline, design, base


# ----------------------------------------------------------------------------------------------
# Per-unit sufficient statistics
# ----------------------------------------------------------------------------------------------


def _kpi_rows(spec: Spec, kpi: KpiSpec, arm: Arm, where: str | None) -> pl.LazyFrame:
    """The KPI's table in this arm, filtered and flagged as `compute` does."""
    return filter_kpi_rows(spec, kpi, arm.tables[kpi.over], arm.window, where)


def _as_float(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Float64).fill_null(0.0)


def _group(frame: pl.LazyFrame, keys: Sequence[str], aggs: Sequence[pl.Expr]) -> pl.LazyFrame:
    if keys:
        return frame.group_by(list(keys)).agg(aggs)
    return frame.select(aggs)


# ----------------------------------------------------------------------------------------------
# Tests per KPI x cohort
# ----------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One KPI × cohort comparison before correction and verdicts."""

    kpi: KpiSpec
    cohort: dict[str, str | None]
    grouping: tuple[str, ...]
    comparison: stats.Comparison | None
    n_baseline: int
    n_current: int
    pending_baseline: int
    pending_current: int
    mde: float | None = None
    warnings: list[str] = field(default_factory=list)
    cuped_theta: float | None = None  # --cuped: θ and the share of Var(Δ) removed
    variance_reduction: float | None = None
    target: float | None = None  # a `values` baseline: one-sample test, no baseline arm
    # units per arm when n counts rows (percentiles over turns); min_sample is about units
    units_baseline: int | None = None
    units_current: int | None = None


def _cohort_sets(by: Sequence[str], cross: Sequence[str] = ()) -> list[tuple[str, ...]]:
    return cohort_sets(by, cross)


def _collect_by_cohort(
    frame: pl.LazyFrame | pl.DataFrame, keys: Sequence[str]
) -> dict[tuple, dict[str, Any]]:
    collected = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    return {tuple(row[k] for k in keys): row for row in collected.iter_rows(named=True)}


def _unit_stats(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    arm: Arm,
    unit: str,
    keys: Sequence[str],
    where: str | None,
) -> tuple[dict[tuple, dict[str, Any]], dict[tuple, dict[str, Any]]]:
    """The arm's per-unit sufficient statistics and pending rows by cohort, from the engine of
    its facts (`Engine.unit_stats`)."""
    got = arm.engine.unit_stats(spec, kpi, shape, arm.tables, arm.window, unit, keys, where)
    return _collect_by_cohort(got.sums, keys), _collect_by_cohort(got.pending, keys)


def _arm_unit_sums(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    arm: Arm,
    unit: str,
    keys: Sequence[str],
    options: CompareOptions,
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Each unit's m and d (a paired design and a formula's bootstrap join them by unit):
    polars over the arm's facts."""
    return unit_sums(spec, kpi, shape, arm.tables, arm.window, unit, keys, options.where)


def _summary(row: Mapping[str, Any], kind: str) -> stats.ArmSummary:
    if kind == "proportion":
        return stats.proportion_summary(row["m_sum"], row["n"])
    if kind == "mean":
        return stats.mean_summary(row["n"], row["m_sum"], row["m_sq"])
    return stats.ratio_summary(
        row["n"], row["m_sum"], row["m_sq"], row["d_sum"], row["d_sq"], row["md_sum"]
    )


def _additive_cells(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    current: Arm,
    baseline: Arm | None,
    target: float | None,
    options: CompareOptions,
    unit: str,
) -> list[Cell]:
    cells: list[Cell] = []
    for keys in _cohort_sets(options.by, options.cross):
        if any(k not in current.tables[kpi.over].collect_schema() for k in keys):
            continue
        cur, cur_p = _unit_stats(spec, kpi, shape, current, unit, keys, options.where)
        if baseline is not None:
            base, base_p = _unit_stats(spec, kpi, shape, baseline, unit, keys, options.where)
        else:
            base, base_p = {}, {}
        cuped = None
        if (
            options.cuped is not None
            and baseline is not None
            and target is None
            and options.cuped in spec.column_types[kpi.over]
        ):
            cuped = _cuped_sums(spec, kpi, shape, (baseline, current), unit, keys, options)
        for cohort_key in sorted(set(cur) | set(base), key=_sort_key):
            c_row, b_row = cur.get(cohort_key), base.get(cohort_key)
            cell = Cell(
                kpi,
                dict(zip(keys, cohort_key, strict=True)),
                tuple(keys),
                None,
                int(b_row["n"]) if b_row else 0,
                int(c_row["n"]) if c_row else 0,
                _pending(base_p, cohort_key),
                _pending(cur_p, cohort_key),
            )
            rows = [r for r in (b_row, c_row) if r is not None]
            kind = _summary_kind(shape, rows)
            if c_row is None or (baseline is not None and b_row is None):
                cell.warnings.append("no units in one of the arms")
            elif target is not None:
                cell.target = target
                cell.comparison = stats.one_sample(
                    _summary(c_row, kind), target, alpha=options.significance
                )
            else:
                assert b_row is not None
                cell.comparison = _two_arm_test(kind, b_row, c_row, options)
                cell.mde = _mde(kind, b_row, c_row, options)
                deff = _design_effect(kind, shape, b_row, c_row, cell.comparison)
                if deff is not None and cell.comparison.absolute is not None:
                    cell.comparison = replace(
                        cell.comparison, design_effect=deff[0], naive_se=deff[1]
                    )
                if cuped is not None and kind in ("proportion", "mean"):
                    _apply_cuped(cell, kind, cuped, cohort_key, options)
            cells.append(cell)
    return cells


@dataclass(frozen=True)
class CupedArms:
    """Per cohort, each arm's `stats.CupedSums` and units whose covariate was missing."""

    sums: dict[str, dict[tuple, stats.CupedSums]]
    missing: dict[str, dict[tuple, int]]
    fill: float | None  # the pooled mean the missing covariates were set to


def _cuped_sums(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    arms: tuple[Arm, Arm],
    unit: str,
    keys: Sequence[str],
    options: CompareOptions,
) -> CupedArms:
    """Per unit y (the KPI's unit value) and w (the covariate, its mean over the unit's rows);
    a unit without w gets the pooled mean of both arms' units (so it is not adjusted, and no
    unit is dropped) and is counted."""
    column = options.cuped
    assert column is not None
    frames = []
    for label, arm in zip(("baseline", "current"), arms, strict=True):
        rows = (
            _kpi_rows(spec, kpi, arm, options.where)
            .with_columns([pl.col(k).cast(pl.String) for k in keys])
            .filter(pl.col("__mature"))
        )
        if shape.kind == "ratio":
            assert shape.numerator is not None and shape.denominator is not None
            aggs = [_as_float(shape.numerator).alias("m"), _as_float(shape.denominator).alias("d")]
        else:
            assert shape.values is not None
            aggs = [
                shape.values.cast(pl.Float64).sum().alias("m"),
                shape.values.count().cast(pl.Float64).alias("d"),
            ]
        aggs.append(pl.col(column).cast(pl.Float64).mean().alias("w"))
        per_unit = rows.group_by([*keys, unit]).agg(aggs).filter(pl.col("d") > 0)
        frames.append(per_unit.with_columns(pl.lit(label).alias("__arm")).collect())
    units = pl.concat(frames)
    fill = units["w"].drop_nans().mean()
    fill_value = float(fill) if isinstance(fill, (int, float)) else None
    y, w = pl.col("m") / pl.col("d"), pl.col("w").fill_nan(None).fill_null(fill_value or 0.0)
    sums = units.group_by(["__arm", *keys]).agg(
        pl.len().cast(pl.Int64).alias("n"),
        y.sum().alias("y_sum"),
        (y * y).sum().alias("y_sq"),
        w.sum().alias("w_sum"),
        (w * w).sum().alias("w_sq"),
        (y * w).sum().alias("yw_sum"),
        pl.col("w").fill_nan(None).is_null().sum().cast(pl.Int64).alias("missing"),
    )
    result: dict[str, dict[tuple, stats.CupedSums]] = {"baseline": {}, "current": {}}
    missing: dict[str, dict[tuple, int]] = {"baseline": {}, "current": {}}
    for r in sums.iter_rows(named=True):
        key = tuple(r[k] for k in keys)
        result[r["__arm"]][key] = stats.CupedSums(
            r["n"], r["y_sum"], r["y_sq"], r["w_sum"], r["w_sq"], r["yw_sum"]
        )
        missing[r["__arm"]][key] = r["missing"]
    return CupedArms(result, missing, fill_value)


def _apply_cuped(
    cell: Cell, kind: str, cuped: CupedArms, key: tuple, options: CompareOptions
) -> None:
    """Replace the cell's test by the CUPED-adjusted one (A10) and say what it removed."""
    b, c = cuped.sums["baseline"].get(key), cuped.sums["current"].get(key)
    if b is None or c is None:
        return
    binary = kind == "proportion"
    theta = stats.cuped_theta(b, c, binary=binary)
    adjusted = stats.compare_cuped(b, c, binary=binary, theta=theta, alpha=options.significance)
    if adjusted.absolute is None:
        cell.warnings.append(f"CUPED on {options.cuped}: no adjusted test (zero variance)")
        return
    plain = [stats.cuped_summary(s, 0.0, binary=binary) for s in (b, c)]
    variance = sum(a.variance / a.n for a in plain)
    removed = 1.0 - adjusted.absolute.se**2 / variance if variance > 0 else 0.0
    cell.comparison = replace(
        adjusted, test=f"cuped_{cell.comparison.test}" if cell.comparison else "cuped"
    )
    cell.cuped_theta, cell.variance_reduction = theta, removed
    cell.warnings.append(
        f"CUPED on {options.cuped}: θ = {theta:.4g}, {100 * removed:.1f} % "
        f"of the variance removed (CI {100 * (1 - math.sqrt(1 - removed)):.1f} % "
        "narrower)"
        if removed < 1
        else f"CUPED on {options.cuped}: θ = {theta:.4g}"
    )
    lacking = cuped.missing["baseline"].get(key, 0) + cuped.missing["current"].get(key, 0)
    if lacking:
        cell.warnings.append(
            f"{lacking} units without {options.cuped}: set to the pooled mean "
            f"{cuped.fill:.4g} (kept, not adjusted)"
        )


def _paired_cells(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    current: Arm,
    baseline: Arm,
    options: CompareOptions,
    unit: str,
) -> list[Cell]:
    """Paired designs (A13): both arms ran the same units (task ids); trials are aggregated to
    the unit first, then McNemar exact (one binary outcome per unit) or paired t / Wilcoxon."""
    cells: list[Cell] = []
    for keys in _cohort_sets(options.by, options.cross):
        if any(k not in current.tables[kpi.over].collect_schema() for k in keys):
            continue
        cur_units, cur_pending = _arm_unit_sums(spec, kpi, shape, current, unit, keys, options)
        base_units, base_pending = _arm_unit_sums(spec, kpi, shape, baseline, unit, keys, options)
        joined = (
            base_units.select([*keys, unit, "m", "d"])
            .join(
                cur_units.select([*keys, unit, "m", "d"]),
                on=[*keys, unit],
                how="inner",
                suffix="_c",
                nulls_equal=True,
            )
            .collect()
        )
        cur_p = _collect_by_cohort(cur_pending, keys)
        base_p = _collect_by_cohort(base_pending, keys)
        parts = (
            joined.partition_by(list(keys), as_dict=True, include_key=False)
            if keys
            else {(): joined}
        )
        for cohort_key in sorted((tuple(k) for k in parts), key=_sort_key):
            part = parts[cohort_key]
            cell = Cell(
                kpi,
                dict(zip(keys, cohort_key, strict=True)),
                tuple(keys),
                None,
                part.height,
                part.height,
                _pending(base_p, cohort_key),
                _pending(cur_p, cohort_key),
            )
            m_b, d_b = part["m"].to_numpy(), part["d"].to_numpy()
            m_c, d_c = part["m_c"].to_numpy(), part["d_c"].to_numpy()
            usable = (d_b > 0) & (d_c > 0)
            if usable.sum() < 2:
                cell.warnings.append("fewer than 2 paired units")
                cells.append(cell)
                continue
            base_values = m_b[usable] / d_b[usable]
            cur_values = m_c[usable] / d_c[usable]
            binary = (
                np.all(d_b[usable] == 1)
                and np.all(d_c[usable] == 1)
                and np.isin(base_values, (0.0, 1.0)).all()
                and np.isin(cur_values, (0.0, 1.0)).all()
            )
            if binary and shape.kind == "ratio":
                cell.comparison = stats.mcnemar_comparison(
                    base_values, cur_values, alpha=options.significance
                )
            else:
                cell.comparison = stats.paired_t(
                    base_values, cur_values, alpha=options.significance
                )
                wilcoxon = stats.wilcoxon_signed_rank(
                    base_values, cur_values, alpha=options.significance
                )
                if wilcoxon.p_value is not None:
                    cell.warnings.append(f"Wilcoxon signed-rank p = {wilcoxon.p_value:.4g}")
            cells.append(cell)
    return cells


def _sort_key(key: tuple) -> tuple:
    return tuple((v is not None, str(v)) for v in key)


def _pending(rows: Mapping[tuple, Mapping[str, Any]], key: tuple) -> int:
    row = rows.get(key)
    return int(row["pending"]) if row else 0


def _summary_kind(shape: KpiShape, rows: Sequence[Mapping[str, Any]]) -> str:
    if rows and all(r["unit_rows"] for r in rows):
        if shape.kind == "ratio" and all(r["binary"] for r in rows):
            return "proportion"
        return "mean"
    return "ratio"


def _two_arm_test(
    kind: str, b: Mapping[str, Any], c: Mapping[str, Any], options: CompareOptions
) -> stats.Comparison:
    if kind == "proportion":
        return stats.compare_proportions(
            b["m_sum"],
            b["n"],
            c["m_sum"],
            c["n"],
            alpha=options.significance,
            relative_ci=options.relative_ci,
        )
    if kind == "mean":
        return stats.compare_summaries(
            _summary(b, kind),
            _summary(c, kind),
            alpha=options.significance,
            relative_ci=options.relative_ci,
        )
    return stats.compare_ratio(
        (b["n"], b["m_sum"], b["m_sq"], b["d_sum"], b["d_sq"], b["md_sum"]),
        (c["n"], c["m_sum"], c["m_sq"], c["d_sum"], c["d_sq"], c["md_sum"]),
        alpha=options.significance,
        relative_ci=options.relative_ci,
    )


def _mde(
    kind: str, b: Mapping[str, Any], c: Mapping[str, Any], options: CompareOptions
) -> float | None:
    try:
        sb, sc = _summary(b, kind), _summary(c, kind)
    except (ValueError, ZeroDivisionError):
        return None
    if sb.n < 2 or sc.n < 2:
        return None
    return stats.mde_mean(sb.variance, sc.variance, sb.n, sc.n, alpha=options.significance)


def _design_effect(
    kind: str,
    shape: KpiShape,
    b: Mapping[str, Any],
    c: Mapping[str, Any],
    comparison: stats.Comparison,
) -> tuple[float, float] | None:
    """deff = Var(cluster) / Var(naive, rows independent), for row-level KPIs (A6)."""
    if kind != "ratio" or comparison.absolute is None:
        return None
    naive_var = 0.0
    for row in (b, c):
        rows_n = row["d_sum"]
        if rows_n <= 1:
            return None
        ratio = row["m_sum"] / rows_n
        if shape.kind == "ratio" and row["bounded"] and shape.counts_rows:
            naive_var += ratio * (1 - ratio) / rows_n
        elif shape.kind == "avg":
            row_var = (row["row_sq"] - row["m_sum"] ** 2 / rows_n) / (rows_n - 1)
            naive_var += row_var / rows_n
        else:
            return None
    if naive_var <= 0:
        return None
    naive_se = float(np.sqrt(naive_var))
    return (comparison.absolute.se / naive_se) ** 2, naive_se


def _quantile_cells(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    current: Arm,
    baseline: Arm | None,
    target: float | None,
    options: CompareOptions,
    unit: str,
) -> list[Cell]:
    cells: list[Cell] = []
    assert shape.values is not None
    values_expr = shape.values.cast(pl.Float64).alias("__v")
    nu = shape.nu or 0.5
    table = spec.tables[kpi.over]
    # units as integer codes (the cluster adjustment groups by them): the row number where
    # each row is its own unit (one row per key), else dense ranks of the unit's values
    codes = (
        pl.int_range(pl.len())
        if table.is_rollup and table.key == unit
        else pl.col(unit).rank("dense")
    )
    for keys in _cohort_sets(options.by, options.cross):
        if any(k not in current.tables[kpi.over].collect_schema() for k in keys):
            continue
        arms: dict[str, dict[tuple, tuple[np.ndarray, np.ndarray]]] = {}
        pendings: dict[str, dict[tuple, dict[str, Any]]] = {}
        unit_counts: dict[str, dict[tuple, int]] = {"current": {}, "baseline": {}}
        for label, arm in (("current", current), ("baseline", baseline)):
            if arm is None:
                continue
            rows = _kpi_rows(spec, kpi, arm, options.where).with_columns(
                [pl.col(k).cast(pl.String) for k in keys]
            )
            pendings[label] = _collect_by_cohort(
                _group(
                    rows.filter(~pl.col("__mature")),
                    keys,
                    [pl.len().cast(pl.Int64).alias("pending")],
                ),
                keys,
            )
            data = (
                rows.filter(pl.col("__mature"))
                .with_columns(values_expr)
                .filter(pl.col("__v").is_not_null() & pl.col("__v").is_not_nan())
                .select([*keys, codes.alias("__unit"), "__v"])
                .collect()
            )
            grouped: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
            parts = (
                data.partition_by(list(keys), as_dict=True, include_key=False)
                if keys
                else {(): data}
            )
            for cohort_key, part in parts.items():
                key = tuple(cohort_key) if keys else ()
                grouped[key] = (part["__v"].to_numpy(), part["__unit"].to_numpy())
                unit_counts[label][key] = part["__unit"].n_unique()
            arms[label] = grouped
        cur_groups = arms["current"]
        base_groups = arms.get("baseline", {})
        for cohort_key in sorted(set(cur_groups) | set(base_groups), key=_sort_key):
            c, b = cur_groups.get(cohort_key), base_groups.get(cohort_key)
            cell = Cell(
                kpi,
                dict(zip(keys, cohort_key, strict=True)),
                tuple(keys),
                None,
                len(b[0]) if b else 0,
                len(c[0]) if c else 0,
                _pending(pendings.get("baseline", {}), cohort_key),
                _pending(pendings["current"], cohort_key),
                units_baseline=unit_counts["baseline"].get(cohort_key, 0),
                units_current=unit_counts["current"].get(cohort_key, 0),
            )
            if c is None or (baseline is not None and b is None):
                cell.warnings.append("no rows in one of the arms")
                cells.append(cell)
                continue
            try:
                c_arm = _quantile_arm(c, nu, options.significance)
                if target is not None:
                    cell.target = target
                    cell.comparison = stats.one_sample(
                        stats.ArmSummary(c_arm.estimate, c_arm.se**2 * len(c[0]), len(c[0])),
                        target,
                        alpha=options.significance,
                    )
                else:
                    assert b is not None
                    b_arm = _quantile_arm(b, nu, options.significance)
                    cell.comparison = stats.compare_quantiles(
                        b_arm, c_arm, alpha=options.significance
                    )
                    if np.isfinite(b_arm.se) and np.isfinite(c_arm.se):
                        cell.mde = stats.mde_mean(
                            b_arm.se**2, c_arm.se**2, 1, 1, alpha=options.significance
                        )
            except (ValueError, ZeroDivisionError) as exc:
                cell.warnings.append(str(exc))
            cells.append(cell)
    return cells


def _quantile_arm(
    data: tuple[np.ndarray, np.ndarray], nu: float, alpha: float
) -> stats.QuantileArm:
    values, units = data
    arm = stats.quantile_arm(values, units, nu, alpha=alpha)
    # The point estimate is the KPI's own (linear interpolation, as `compute` reports it);
    # the standard error is the outer-CI, cluster-adjusted one (docs/methods.md A5).
    linear = float(np.quantile(values, nu)) if len(values) else float("nan")
    return replace(arm, estimate=linear)


def _pass_k_tasks(
    spec: Spec, kpi: KpiSpec, arm: Arm, keys: Sequence[str], where: str | None
) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """Per cohort: the task ids with at least k settled trials (sorted) and each task's pass^k
    (or pass@k) probability, as `compute` takes them."""
    pk = kpi.pass_k
    assert pk is not None
    success = compile_sql(pk.success).fill_null(False)
    per_task = (
        _kpi_rows(spec, kpi, arm, where)
        .with_columns([pl.col(k).cast(pl.String) for k in keys])
        .filter(pl.col("__mature"))
        .with_columns(pl.col(pk.task).cast(pl.String))
        .group_by([*keys, pk.task])
        .agg(pl.len().cast(pl.Int64).alias("__n"), success.sum().cast(pl.Int64).alias("__c"))
        .filter(pl.col("__n") >= pk.k)
        .with_columns(
            pass_k_probability(pl.col("__n"), pl.col("__c"), pk.k, pk.at_least_one).alias("__p")
        )
        .sort([*keys, pk.task], nulls_last=True)
        .collect()
    )
    parts = (
        per_task.partition_by(list(keys), as_dict=True, include_key=False)
        if keys
        else {(): per_task}
    )
    return {
        tuple(key): (part[pk.task].to_numpy(), part["__p"].to_numpy())
        for key, part in parts.items()
        if part.height
    }


def _resampled_mean(values: np.ndarray) -> stats.UnitStatistic:
    """The mean of `values` under each row of multinomial counts W (B × K): W·v / ΣW."""

    def stat(weights: np.ndarray) -> np.ndarray:
        return np.asarray((weights @ values) / weights.sum(axis=1), dtype=np.float64)

    return stat


def _pass_k_cells(
    spec: Spec, kpi: KpiSpec, current: Arm, baseline: Arm | None, options: CompareOptions
) -> list[Cell]:
    """pass^k / pass@k (README): the unit is the task. Both arms ran the same tasks → paired
    bootstrap over tasks of the per-task differences; otherwise each arm's tasks are
    resampled on their own (`stats.bootstrap_comparison`). Seeded, vectorised, 1,000
    resamples; percentile CI, p from the inverted percentile interval."""
    if baseline is None:
        return [
            Cell(
                kpi,
                {},
                (),
                None,
                0,
                0,
                0,
                0,
                warnings=["no test: pass^k / pass@k is compared against a baseline arm"],
            )
        ]
    cells: list[Cell] = []
    for keys in _cohort_sets(options.by, options.cross):
        if any(k not in current.tables[kpi.over].collect_schema() for k in keys):
            continue
        cur = _pass_k_tasks(spec, kpi, current, keys, options.where)
        base = _pass_k_tasks(spec, kpi, baseline, keys, options.where)
        for cohort_key in sorted(set(cur) | set(base), key=_sort_key):
            c, b = cur.get(cohort_key), base.get(cohort_key)
            cell = Cell(
                kpi,
                dict(zip(keys, cohort_key, strict=True)),
                tuple(keys),
                None,
                len(b[0]) if b else 0,
                len(c[0]) if c else 0,
                0,
                0,
            )
            cells.append(cell)
            if b is None or c is None:
                cell.warnings.append(
                    f"no task with {kpi.pass_k.k if kpi.pass_k else 0} "
                    "settled trials in one of the arms"
                )
                continue
            if len(b[0]) == len(c[0]) and (b[0] == c[0]).all() and len(b[0]) >= 2:
                comparison = stats.paired_bootstrap_comparison(
                    b[1],
                    c[1],
                    alpha=options.significance,
                    resamples=_BOOTSTRAP_RESAMPLES,
                    seed=options.seed,
                )
                cell.comparison = replace(comparison, test="pass_k_paired_bootstrap")
                continue
            shared = len(np.intersect1d(b[0], c[0]))
            if shared:
                cell.warnings.append(
                    f"the arms ran different tasks ({shared} shared): "
                    "unpaired bootstrap over each arm's tasks"
                )
            p_b, p_c = b[1], c[1]
            comparison = stats.bootstrap_comparison(
                _resampled_mean(p_b),
                _resampled_mean(p_c),
                len(p_b),
                len(p_c),
                float(p_b.mean()),
                float(p_c.mean()),
                alpha=options.significance,
                resamples=_BOOTSTRAP_RESAMPLES,
                seed=options.seed,
            )
            cell.comparison = replace(comparison, test="pass_k_bootstrap")
    return cells


def _formula_cells(
    spec: Spec, kpi: KpiSpec, current: Arm, baseline: Arm, options: CompareOptions, unit: str
) -> list[Cell]:
    """Cluster bootstrap of a formula over additive component KPIs (overall and cohorts)."""
    components = [spec.kpis[name] for name in kpi.formula_kpis]
    shapes = [kpi_shape(c) for c in components]
    cells: list[Cell] = []
    for keys in _cohort_sets(options.by, options.cross):
        frames = {}
        for label, arm in (("baseline", baseline), ("current", current)):
            joined: pl.LazyFrame | None = None
            for index, (component, shape) in enumerate(zip(components, shapes, strict=True)):
                if any(k not in arm.tables[component.over].collect_schema() for k in keys):
                    break
                per_unit, _ = _arm_unit_sums(spec, component, shape, arm, unit, keys, options)
                part = per_unit.select(
                    [*keys, unit, pl.col("m").alias(f"m{index}"), pl.col("d").alias(f"d{index}")]
                )
                joined = (
                    part
                    if joined is None
                    else joined.join(
                        part, on=[*keys, unit], how="full", coalesce=True, nulls_equal=True
                    )
                )
            else:
                assert joined is not None
                # a stable unit order: the seeded resampling then gives the same numbers
                frames[label] = joined.fill_null(0.0).sort([*keys, unit]).collect()
        if len(frames) < 2:
            continue
        groups = {
            label: (
                frame.partition_by(list(keys), as_dict=True, include_key=False)
                if keys
                else {(): frame}
            )
            for label, frame in frames.items()
        }
        cohort_keys = sorted(
            {tuple(k) if keys else () for g in groups.values() for k in g}, key=_sort_key
        )
        for cohort_key in cohort_keys:
            b = groups["baseline"].get(cohort_key)
            c = groups["current"].get(cohort_key)
            cell = Cell(
                kpi,
                dict(zip(keys, cohort_key, strict=True)),
                tuple(keys),
                None,
                b.height if b is not None else 0,
                c.height if c is not None else 0,
                0,
                0,
            )
            if b is None or c is None or b.height == 0 or c.height == 0:
                cell.warnings.append("no units in one of the arms")
                cells.append(cell)
                continue
            cell.comparison = _bootstrap_formula(kpi, components, b, c, options)
            cells.append(cell)
    return cells


def _bootstrap_formula(
    kpi: KpiSpec,
    components: Sequence[KpiSpec],
    b: pl.DataFrame,
    c: pl.DataFrame,
    options: CompareOptions,
) -> stats.Comparison:
    formula = compile_sql(kpi.formula or "")
    names = [comp.name for comp in components]

    def statistic(frame: pl.DataFrame) -> Any:
        def stat(weights: np.ndarray) -> np.ndarray:
            columns = {}
            for index, name in enumerate(names):
                m = weights @ frame[f"m{index}"].to_numpy()
                d = weights @ frame[f"d{index}"].to_numpy()
                with np.errstate(divide="ignore", invalid="ignore"):
                    columns[name] = m / d
            return pl.DataFrame(columns).select(formula.cast(pl.Float64)).to_series().to_numpy()

        return stat

    point_b = statistic(b)(np.ones((1, b.height)))[0]
    point_c = statistic(c)(np.ones((1, c.height)))[0]
    return stats.bootstrap_comparison(
        statistic(b),
        statistic(c),
        b.height,
        c.height,
        point_b,
        point_c,
        alpha=options.significance,
        resamples=_BOOTSTRAP_RESAMPLES,
        seed=options.seed,
    )


# ----------------------------------------------------------------------------------------------
# Verdicts
# ----------------------------------------------------------------------------------------------


def _deterioration(kpi: KpiSpec, change: float) -> float:
    return -change if kpi.direction == "higher" else change


def verdict(
    kpi: KpiSpec, comparison: stats.Comparison | None, significant: bool, insufficient: bool
) -> tuple[str, str | None]:
    """(status, the threshold that fired) for one cell."""
    if insufficient or comparison is None or comparison.current is None:
        return INSUFFICIENT, None
    fired = most_severe(t for t in kpi.thresholds if _fires(kpi, t, comparison, significant))
    if fired is None:
        return "ok", None
    return fired.level, fired.text


def _fires(
    kpi: KpiSpec, threshold: Threshold, comparison: stats.Comparison, significant: bool
) -> bool:
    current = comparison.current
    if threshold.kind == "bound":
        assert current is not None
        return threshold.beyond(current)
    if not significant:
        return False
    if threshold.kind == "relative":
        if comparison.relative is None:
            return False
        return _deterioration(kpi, comparison.relative.estimate) >= threshold.amount
    if comparison.absolute is None:
        return False
    return _deterioration(kpi, comparison.absolute.estimate) >= threshold.amount - 1e-12


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


def run_compare(
    spec: Spec,
    sources: Sources,
    options: CompareOptions | None = None,
    *,
    baseline_sources: Sources | None = None,
    baseline_label: str | None = None,
    facts: FactSet | None = None,
    baseline_facts: FactSet | None = None,
    engine: Engine | None = None,
) -> CompareResult:
    """Compare every (selected) KPI between the baseline and the current arm.

    `facts`: the run's FactSet (`fact_set`), when the caller built one to share (the report
    does); both arms restrict it. `baseline_facts`: the baseline dataset's, likewise. Facts
    that do not serve this comparison are not used. `engine`: the engine that builds the
    facts when none are given (default: polars); the facts' engine aggregates each arm and
    gives its per-unit sufficient statistics (`Engine.unit_stats`)."""
    options = options or CompareOptions()
    if options.alpha is None:
        options = replace(options, alpha=spec.defaults.alpha)
    if not 0 < options.significance < 0.5:
        raise UsageError(f"--alpha {options.significance}: expected a level such as 0.05")
    if options.sequential and not options.sequential_n_star > 0:
        raise UsageError(
            f"--n-star {options.sequential_n_star:g}: expected the planned number "
            "of units, e.g. 5000"
        )
    correction = options.correction or spec.defaults.correction
    if correction not in ("holm", "bh", "none"):
        raise UsageError(f"--correction {correction}: expected holm, bh or none")
    for name in options.kpis:
        if name not in spec.kpis:
            raise UsageError(f"--kpi {name}: no such KPI{did_you_mean(name, spec.kpis)}")
    selected = [spec.kpis[n] for n in (options.kpis or spec.kpis)]
    evaluated, _ = selected_kpis(spec, options.kpis)  # with formulas' components
    spec = with_cohort_columns(
        spec, sources, options.by, {k.over for k in evaluated if k.kind != "formula"}
    )
    check_where(spec, options.where, {k.over for k in evaluated if k.kind != "formula"})
    require_arm_columns(spec, sources, selected, options, baseline_sources)
    check = data_check(spec, sources, selected, options, baseline_sources)
    if options.heterogeneity and not options.by:
        raise UsageError("--heterogeneity needs --by COLUMN (the groups to compare)")
    if options.heterogeneity and options.cross:
        raise UsageError(
            f"--heterogeneity tests the groups of one --by column at a time, not the cross-tab "
            f"of {', '.join(options.cross)}: give the columns as separate --by"
        )
    current, baseline, design, base = build_arms(
        spec,
        sources,
        _with_fairness_columns(spec, options),
        baseline_sources,
        baseline_label,
        facts=facts,
        baseline_facts=baseline_facts,
        engine=engine,
    )
    unit = (
        options.unit
        or (base.unit if base and base.unit else None)
        or spec.require_primary_table().key
    )
    assert unit is not None
    if options.paired and design.kind != "dataset":
        raise UsageError("--paired needs --baseline PATH (two runs of the same task suite)")
    for kpi in selected:
        if kpi.kind != "formula" and unit not in spec.column_types[kpi.over]:
            raise UsageError(
                f"--unit {unit}: not a column of table {kpi.over!r} (KPI "
                f"{kpi.name}); use an attribute of the conversations"
            )
    unit_columns = spec.column_types[spec.require_primary_table().name]
    if options.cuped is not None and options.cuped not in unit_columns:
        raise UsageError(
            f"--cuped {options.cuped}: not a column of the unit table "
            f"{spec.require_primary_table().name!r}{did_you_mean(options.cuped, unit_columns)}"
            "; declare the pre-period value as an attribute (or derive) there"
        )
    for dim in options.by:
        if not any(dim in spec.column_types[k.over] for k in selected if k.kind != "formula"):
            columns = {
                c for k in selected if k.kind != "formula" for c in spec.column_types[k.over]
            }
            raise UsageError(f"--by {dim}: no such column{did_you_mean(dim, columns)}")
    result = compare_arms(spec, current, baseline, design, base, options, check)
    where = where_note(spec, options.where, {k.over for k in evaluated if k.kind != "formula"})
    notes = [
        *([where] if where is not None else []),
        *check.notes(),
        *input_notes(sources, current.window),
        *(
            input_notes(baseline_sources, baseline.window)
            if baseline_sources is not None and baseline is not None
            else []
        ),
        *([design.caveat] if design.caveat else []),
    ]
    notes += [
        *empty_source_notes(sources),
        *(f"baseline {n}" for n in empty_source_notes(baseline_sources or Sources())),
    ]
    return replace(result, notes=(*notes, *result.notes))


def _with_fairness_columns(spec: Spec, options: CompareOptions) -> CompareOptions:
    """`options` with the spec's fairness columns of the selected KPIs added to `by`: they are
    compared by group too (kept out of the table and of the family)."""
    names = set(options.kpis or spec.kpis)
    watched = [f.column for f in spec.fairness if f.kpi in names and f.column not in options.by]
    if not watched:
        return options
    return replace(options, by=(*options.by, *dict.fromkeys(watched)))


def compare_arms(
    spec: Spec,
    current: Arm,
    baseline: Arm | None,
    design: Design,
    base: BaselineSpec | None,
    options: CompareOptions,
    check: DataCheck,
    *,
    with_fairness: bool = True,
) -> CompareResult:
    """Compare two arms (or the current arm against `base`'s values): per KPI its test, the
    correction over the run, verdicts, SRM, heterogeneity and fairness. The arms are
    restrictions of facts already built (`build_arms`, or the report's cohort against the
    rest); `with_fairness`: False leaves the spec's fairness groups out (only the table is read).
    The notes are those of the arms (sources' notes are the caller's)."""
    asked = options
    correction = options.correction or spec.defaults.correction
    selected = [spec.kpis[n] for n in (options.kpis or spec.kpis)]
    evaluated, output = selected_kpis(spec, options.kpis)  # with formulas' components
    fair = [f for f in spec.fairness if f.kpi in {k.name for k in selected}]
    fair = fair if with_fairness else []
    if with_fairness:
        options = _with_fairness_columns(spec, options)
    watched = [d for d in options.by if d not in asked.by]
    primary = spec.require_primary_table()
    unit = options.unit or (base.unit if base and base.unit else None) or primary.key
    assert unit is not None
    current = _materialise(spec, current, evaluated, options, unit)
    if baseline is not None:
        baseline = _materialise(spec, baseline, evaluated, options, unit)
    # each arm's values and n exactly as `compute` gives them on that slice (the same function)
    values: dict[str, dict[tuple, tuple[float | None, int, int]]] = {}
    unknown: dict[tuple, str] = {}  # a cohort's cost unknown in an arm: no test, null values
    for label, arm in (("current", current), ("baseline", baseline)):
        if arm is not None:
            values[label], reasons = _arm_values(spec, arm, evaluated, output, options, check)
            unknown.update(reasons)
    key = primary.key
    paired = (
        options.paired
        if options.paired is not None
        else (
            unit != key
            and baseline is not None
            and design.kind == "dataset"
            and _same_units(spec, current, baseline, unit)
        )
    )
    if paired and baseline is not None:
        design = replace(
            design,
            kind="paired",
            label="paired design (same units in both arms)",
            paired=True,
            caveat="",
        )
    used = {
        c.over
        for k in selected
        for c in ([spec.kpis[n] for n in k.formula_kpis] if k.kind == "formula" else [k])
    }
    for arm in (current, baseline):  # materialised: counting is a pass over memory
        if arm is not None and options.by:
            check_cohort_counts({t: arm.tables[t] for t in used}, options.by, options.max_cohorts)
    cells: list[Cell] = []
    for kpi in selected:
        reason = check.reason(kpi.name)
        if reason is not None:  # no test on a value computed over nulls
            cells.append(Cell(kpi, {}, (), None, 0, 0, 0, 0, warnings=[reason]))
            continue
        target = None
        if design.kind == "values":
            assert base is not None
            if kpi.name not in base.values:
                continue
            target = base.values[kpi.name]
        shape = kpi_shape(kpi)
        reason = _untestable(spec, kpi, shape, baseline)
        if reason is not None:
            kpi_cells = _untestable_cells(kpi, reason, values, target)
        elif design.paired and baseline is not None and shape.kind in ("ratio", "avg"):
            kpi_cells = _paired_cells(spec, kpi, shape, current, baseline, options, unit)
        elif shape.kind in ("ratio", "avg"):
            kpi_cells = _additive_cells(spec, kpi, shape, current, baseline, target, options, unit)
        elif shape.kind == "quantile":
            kpi_cells = _quantile_cells(spec, kpi, shape, current, baseline, target, options, unit)
        elif shape.kind == "pass_k":
            kpi_cells = _pass_k_cells(spec, kpi, current, baseline, options)
        else:
            assert baseline is not None  # _untestable: a formula needs a baseline arm
            kpi_cells = _formula_cells(spec, kpi, current, baseline, options, unit)
        kpi_cells = kpi_cells + _cells_left_out(kpi, kpi_cells, values, design.paired)
        for cell in kpi_cells:  # as `compute` shows it: null, "unavailable (cost unknown)"
            why = unknown.get(
                (kpi.name, cell.grouping, tuple(cell.cohort.get(d) for d in cell.grouping))
            )
            if why is not None:
                cell.comparison, cell.mde = None, None
                cell.warnings = [why]
        cells += kpi_cells
    if options.sequential:
        design = replace(design, label=f"{design.label}; {sequential_label(options)}")
        for cell in cells:
            if cell.comparison is not None:
                cell.comparison = sequential_cell(cell, options)
    every = cells  # with the groups of the spec's fairness columns
    # the fairness groups the user did not ask for stay out of the table and of the family
    cells = [c for c in cells if not (c.grouping and c.grouping[0] in watched)]
    p_values = [c.comparison.p_value if c.comparison else None for c in cells]
    adjusted = stats.adjust_p_values(p_values, correction)  # type: ignore[arg-type]
    srm = _srm(spec, design, base, current, baseline, unit)
    heterogeneity: list[Heterogeneity] = []
    if options.heterogeneity:
        heterogeneity = heterogeneity_tests(every, options)
    elif fair:  # the spec's fairness pairs get the interaction test too
        pairs = {(f.kpi, f.column) for f in fair}
        heterogeneity = [
            h for h in heterogeneity_tests(every, options) if (h.kpi, h.dimension) in pairs
        ]
    table = _result_table(cells, adjusted, asked, spec, values).with_columns(
        pl.when(
            pl.col("kpi").is_in(list(check.unavailable))
            | pl.col("warnings").list.eval(pl.element().str.starts_with("cost unknown")).list.any()
        )
        .then(pl.lit(UNAVAILABLE))
        .otherwise(pl.col("status"))
        .alias("status")
    )
    notes: list[str] = []
    notes += _empty_arm_notes(spec, design, base, current, baseline)
    for test in heterogeneity:
        notes += heterogeneity_notes(test, options.significance)
    fairness = fairness_findings(spec, every, selected) if with_fairness else []
    notes += [fairness_note(f) for f in fairness if f.breached]
    if options.cuped is not None:
        notes.append(
            f"--cuped {options.cuped}: per-unit means and proportions are adjusted "
            "(test cuped_…); ratio, percentile and formula KPIs are not"
        )
    return CompareResult(
        table=table,
        design=design,
        baseline_window=baseline.window if baseline else None,
        current_window=current.window,
        srm=srm,
        alpha=options.significance,
        correction=correction,
        unit=unit,
        notes=tuple(notes),
        check=check,
        heterogeneity=tuple(heterogeneity),
        fairness=tuple(fairness),
    )


def require_arm_columns(
    spec: Spec,
    sources: Sources,
    kpis: Sequence[KpiSpec],
    options: CompareOptions,
    baseline_sources: Sources | None,
) -> None:
    """A baseline condition or --by column no row holds is an error, not two empty arms."""
    name = options.baseline or spec.defaults.baseline
    base = spec.baselines.get(name or "") if baseline_sources is None else None
    if base is not None and base.kind == "holdout":
        names = names_in([base.control, base.treatment])
        where = f"{spec.path}:{base.line}" if base.line is not None else str(spec.path)
        require_columns(
            spec, sources, spec.require_primary_table(), names, f"{where}: baselines.{base.name}"
        )
    for data in (sources, baseline_sources):
        if data is not None:
            require_cohorts(spec, data, kpis, options.by)


def data_check(
    spec: Spec,
    sources: Sources,
    kpis: Sequence[KpiSpec],
    options: CompareOptions,
    baseline_sources: Sources | None = None,
) -> DataCheck:
    """The data check of both arms' data: literals (the baseline's conditions too) and the
    KPIs a column missing from either dataset makes unavailable."""
    named = (
        [] if baseline_sources is not None else [options.baseline or spec.defaults.baseline or ""]
    )
    check = check_data(spec, sources, kpis, [n for n in named if n], options.where)
    if baseline_sources is None:
        return check
    other = check_data(spec, baseline_sources, kpis, (), options.where)
    missing = dict(other.missing)
    missing.update(
        {k: tuple(dict.fromkeys([*other.missing.get(k, ()), *v])) for k, v in check.missing.items()}
    )
    costs = {**other.costs, **check.costs}
    return DataCheck(check.literals + other.literals, missing, costs)


def _untestable(spec: Spec, kpi: KpiSpec, shape: KpiShape, baseline: Arm | None) -> str | None:
    """Why no test applies to this KPI (None: one does)."""
    if shape.kind == "other":
        return shape.reason or "no test for this shape"
    if shape.kind == "formula":
        if baseline is None:
            return "a formula is bootstrapped against a baseline arm, not a target value"
        for name in kpi.formula_kpis:
            component = kpi_shape(spec.kpis[name])
            if component.kind not in ("ratio", "avg"):
                why = component.reason or "a percentile or a formula"
                return f"its component {name} is not a ratio or a mean ({why})"
    return None


def _untestable_cells(
    kpi: KpiSpec,
    reason: str,
    values: Mapping[str, Mapping[tuple, tuple[float | None, int, int]]],
    target: float | None,
) -> list[Cell]:
    """A KPI no test applies to: its values and n per cohort, as `compute` gives them on each
    arm, and the reason; never tested with a test that does not fit it."""
    keys = sorted(
        {key[1:] for arm in values.values() for key in arm if key[0] == kpi.name},
        key=lambda k: (len(k[0]), k[0], _sort_key(k[1])),
    )
    cells = []
    for grouping, cohort in keys:
        b = values.get("baseline", {}).get((kpi.name, grouping, cohort))
        c = values["current"].get((kpi.name, grouping, cohort))
        comparison = stats.Comparison(
            NOT_TESTABLE,
            target if target is not None else (b[0] if b else None),
            c[0] if c else None,
            None,
            None,
            None,
            None,
            (f"not testable: {reason}",),
        )
        cells.append(
            Cell(
                kpi,
                dict(zip(grouping, cohort, strict=True)),
                grouping,
                comparison,
                b[1] if b else 0,
                c[1] if c else 0,
                b[2] if b else 0,
                c[2] if c else 0,
                target=target,
            )
        )
    return cells


def _cells_left_out(
    kpi: KpiSpec,
    cells: Sequence[Cell],
    values: Mapping[str, Mapping[tuple, tuple[float | None, int, int]]],
    paired: bool,
) -> list[Cell]:
    """A cohort `compute` reports but no test saw (no unit with a value in it): listed with
    compute's value and n and no test, so compare shows every KPI × cohort compute shows."""
    if paired:  # paired cells count the units both arms ran: no row per compute cohort
        return []
    seen = {(c.grouping, tuple(c.cohort.get(d) for d in c.grouping)) for c in cells}
    missing = sorted(
        {
            key[1:]
            for arm in values.values()
            for key in arm
            if key[0] == kpi.name and key[1:] not in seen
        },
        key=lambda k: (len(k[0]), k[0], _sort_key(k[1])),
    )
    return [
        Cell(
            kpi,
            dict(zip(grouping, cohort, strict=True)),
            grouping,
            None,
            0,
            0,
            0,
            0,
            warnings=["no unit with a value in one of the arms: no test"],
        )
        for grouping, cohort in missing
    ]


def _arm_values(
    spec: Spec,
    arm: Arm,
    kpis: Sequence[KpiSpec],
    output: Sequence[str],
    options: CompareOptions,
    check: DataCheck,
) -> tuple[dict[tuple, tuple[float | None, int, int]], dict[tuple, str]]:
    """(kpi, grouping, cohort values) → (value, n, pending) of `compute` on this arm (an
    unavailable KPI's value is null, as there), and → reason for the cohorts whose own cost
    is unknown (`compute` shows them unavailable)."""
    table, _ = arm.engine.aggregate(
        spec,
        kpis,
        output,
        arm.tables,
        arm.window,
        ComputeOptions(by=options.by, where=options.where, cross=options.cross),
    )
    table = mark_unavailable(table, check)
    result = {}
    reasons: dict[tuple, str] = {}
    for row in table.filter(pl.col("breakdown").is_null()).iter_rows(named=True):
        grouping = tuple(row["grouping"])
        key = (row["kpi"], grouping, tuple(row[d] for d in grouping))
        result[key] = (row["value"], int(row["n"] or 0), int(row["pending"] or 0))
        if row["reason"] is not None and row["reason"].startswith("cost unknown"):
            reasons[key] = row["reason"]
    return result, reasons


def _better(kpi: KpiSpec, delta: float) -> bool:
    return delta > 0 if kpi.direction == "higher" else delta < 0


def heterogeneity_tests(cells: Sequence[Cell], options: CompareOptions) -> list[Heterogeneity]:
    """Per KPI × --by dimension: Cochran's Q over the groups' absolute effects (docs/methods.md
    A1 SEs), the groups' p-values Holm-adjusted over the groups, and the groups where the
    agent is worse than the baseline (group Δ in the KPI's bad direction, significant or not:
    its Holm p says) while better overall (overall Δ in the good direction with p < α)."""
    found: list[Heterogeneity] = []
    overall = {c.kpi.name: c for c in cells if not c.grouping}
    for dim in options.by:
        for name, whole in overall.items():
            groups = [
                c
                for c in cells
                if c.kpi.name == name
                and c.grouping == (dim,)
                and c.comparison is not None
                and c.comparison.absolute is not None
            ]
            if not groups:
                continue
            kpi = whole.kpi
            total = whole.comparison.absolute if whole.comparison else None
            p_total = whole.comparison.p_value if whole.comparison else None
            better = (
                total is not None
                and _better(kpi, total.estimate)
                and p_total is not None
                and p_total < options.significance
            )
            effects = [c.comparison.absolute for c in groups if c.comparison]
            holm = stats.adjust_p_values(
                [c.comparison.p_value if c.comparison else None for c in groups], "holm"
            )
            rows = tuple(
                GroupEffect(
                    c.cohort.get(dim),
                    e.estimate,
                    e.se,
                    c.comparison.p_value if c.comparison else None,
                    p,
                    better and not _better(kpi, e.estimate) and e.estimate != 0,
                )
                for c, e, p in zip(groups, effects, holm, strict=True)
                if e is not None
            )
            q = stats.cochran_q([g.delta for g in rows], [g.se for g in rows])
            found.append(
                Heterogeneity(name, dim, total.estimate if total else None, better, q, rows)
            )
    return found


def heterogeneity_notes(test: Heterogeneity, alpha: float) -> list[str]:
    """The findings of one heterogeneity test, as compare's notes."""
    notes = []
    if test.test is not None and test.test.p_value < alpha:
        notes.append(
            f"{test.kpi}: the effect differs across {test.dimension} (Cochran's Q = "
            f"{test.test.q:.4g}, df = {test.test.df}, p = {test.test.p_value:.4g})"
        )
    for group in test.groups:
        if group.worse:
            holm = "n/a" if group.p_holm is None else f"{group.p_holm:.4g}"
            notes.append(
                f"{test.kpi}: worse than the baseline for {test.dimension}="
                f"{group.group} (Δ {group.delta:+.4g}, Holm p = {holm}) while better "
                f"overall (Δ {test.overall_delta:+.4g})"
            )
    return notes


def fairness_findings(
    spec: Spec, cells: Sequence[Cell], selected: Sequence[KpiSpec]
) -> list[FairnessFinding]:
    """Each `fairness:` entry of the spec for a selected KPI, on the cells of its column."""
    names = {k.name for k in selected}
    found = []
    for entry in spec.fairness:
        if entry.kpi not in names:
            continue
        kpi = spec.kpis[entry.kpi]
        groups = [c for c in cells if c.kpi.name == entry.kpi and c.grouping == (entry.column,)]
        gaps: dict[str, float | None] = {}
        ends: tuple[tuple[str | None, float], tuple[str | None, float]] | None = None
        excluded = 0
        for side in ("current", "baseline"):
            values = []
            for cell in groups:
                units = (
                    (cell.n_current if cell.units_current is None else cell.units_current)
                    if side == "current"
                    else (cell.n_baseline if cell.units_baseline is None else cell.units_baseline)
                )
                value = (
                    None
                    if cell.comparison is None
                    else cell.comparison.current
                    if side == "current"
                    else cell.comparison.baseline
                )
                if value is None or not math.isfinite(value) or units < kpi.min_sample:
                    excluded += side == "current"
                    continue
                values.append((cell.cohort.get(entry.column), float(value)))
            if len(values) >= 2:
                low, high = min(values, key=lambda v: v[1]), max(values, key=lambda v: v[1])
                gaps[side] = high[1] - low[1]
                if side == "current":
                    ends = (low, high)
            else:
                gaps[side] = None
        gap = gaps["current"]
        found.append(
            FairnessFinding(
                entry.kpi,
                entry.column,
                entry.max_gap,
                entry.text,
                gap,
                ends[0] if ends else None,
                ends[1] if ends else None,
                gaps["baseline"],
                gap is not None and gap > entry.max_gap + 1e-12,
                excluded,
                kpi.format,
            )
        )
    return found


def _in_kpi_units(value: float, fmt: str, unit: str = " pp") -> str:
    return f"{100 * value:.1f}{unit}" if fmt == "percent" else f"{value:.4g}"


def fairness_note(finding: FairnessFinding) -> str:
    """The line a fairness finding gets in compare's notes and the report."""
    if finding.gap is None or finding.low is None or finding.high is None:
        return (
            f"fairness: {finding.kpi} across {finding.column}: fewer than two groups with "
            "min_sample units, gap not checked"
        )
    fmt = finding.format
    base = (
        ""
        if finding.baseline_gap is None
        else f"; baseline gap {_in_kpi_units(finding.baseline_gap, fmt)}"
    )
    verdict = "ABOVE" if finding.breached else "within"
    return (
        f"fairness: {finding.kpi} gap across {finding.column} is "
        f"{_in_kpi_units(finding.gap, fmt)} ({finding.low[0]} "
        f"{_in_kpi_units(finding.low[1], fmt, ' %')} vs {finding.high[0]} "
        f"{_in_kpi_units(finding.high[1], fmt, ' %')}), {verdict} max_gap "
        f"{finding.max_gap_text}{base}"
    )


def sequential_label(options: CompareOptions) -> str:
    """The header words of a sequential run (README, compare --sequential)."""
    return (
        f"sequential: always-valid CIs and p-values (N* = {options.sequential_n_star:g}), "
        "valid at every look"
    )


def sequential_cell(cell: Cell, options: CompareOptions) -> stats.Comparison:
    """The cell's fixed-horizon comparison made always-valid (docs/methods.md A9): the CI becomes
    a confidence sequence Δ̂ ± SE·multiplier(n units of both arms), the p-value the mixture
    SPRT's; the test name gets "+sequential". n counts units (not turns), both arms (or the one
    arm of a `values` baseline)."""
    assert cell.comparison is not None
    n_b = cell.n_baseline if cell.units_baseline is None else cell.units_baseline
    n_c = cell.n_current if cell.units_current is None else cell.units_current
    n = n_c + (0 if cell.target is not None else n_b)
    if n <= 0:
        return cell.comparison
    return stats.sequential_comparison(
        cell.comparison, n, n_star=options.sequential_n_star, alpha=options.significance
    )


def _materialise(
    spec: Spec, arm: Arm, kpis: Sequence[KpiSpec], options: CompareOptions, unit: str
) -> Arm:
    """Each table an arm's KPIs read, computed once with only the columns they use (every
    KPI × cohort query then runs in memory instead of re-reading the logs)."""
    wanted: dict[str, set[str]] = {}
    for kpi in kpis:
        for component in (
            [spec.kpis[n] for n in kpi.formula_kpis] if kpi.kind == "formula" else [kpi]
        ):
            pass_k = component.pass_k
            names = names_in(
                [
                    component.where,
                    component.mature,
                    component.value,
                    component.numerator,
                    component.denominator,
                    options.where,
                    pass_k.success if pass_k else None,
                ]
            )
            extra = [pass_k.task] if pass_k else []
            extra += [component.breakdown] if component.breakdown else []
            # the time column too: `compute` on an arm bounds it again by the arm's window
            time = _time_column(spec, spec.tables[component.over])
            extra += [time] if time else []
            extra += [options.cuped] if options.cuped else []
            wanted.setdefault(component.over, set()).update([*names, *extra, unit, *options.by])
    tables = dict(arm.tables)
    for name, columns in wanted.items():
        available = tables[name].collect_schema().names()
        keep = [c for c in available if c in columns or c.startswith("__cost_")]
        tables[name] = tables[name].select(keep).collect().lazy()
    return replace(arm, tables=tables)


def _same_units(spec: Spec, current: Arm, baseline: Arm, unit: str) -> bool:
    """Both arms ran exactly the same units (e.g. task ids of an evaluation suite)."""
    table = spec.require_primary_table().name
    if unit not in current.tables[table].collect_schema():
        return False
    sets = [
        arm.tables[table].select(pl.col(unit).unique().sort()).collect().to_series()
        for arm in (current, baseline)
    ]
    return sets[0].len() > 1 and sets[0].equals(sets[1])


def _empty_arm_notes(
    spec: Spec, design: Design, base: BaselineSpec | None, current: Arm, baseline: Arm | None
) -> list[str]:
    """A note for each arm without units: its KPIs are n = 0, so every verdict is
    insufficient data (said, not left to be guessed from a table of dashes)."""
    table = spec.require_primary_table().name
    arms = [
        (current, base.treatment if base and design.kind in ("holdout", "conditions") else None)
    ]
    if baseline is not None:
        arms.append(
            (baseline, base.control if base and design.kind in ("holdout", "conditions") else None)
        )
    empty = [
        (arm, condition)
        for arm, condition in arms
        if arm.tables[table].select(pl.len()).collect().item() == 0
    ]
    notes = []
    for arm, condition in empty:
        place = ", ".join(
            p for p in (f"`{condition}`" if condition else None, _window_words(arm.window)) if p
        )
        notes.append(
            f"no {table} in the {arm.label} arm"
            + (f" ({place})" if place else "")
            + ": every KPI is insufficient data"
        )
    return notes


def _window_words(window: Window) -> str | None:
    text = window_text(window)
    return f"window {text}" if text else None


def _srm(
    spec: Spec,
    design: Design,
    base: BaselineSpec | None,
    current: Arm,
    baseline: Arm | None,
    unit: str,
) -> dict[str, Any] | None:
    if base is None or baseline is None or base.kind != "holdout":
        return None
    table = spec.require_primary_table().name
    counts = [
        int(arm.tables[table].select(pl.col(unit).n_unique()).collect().item())
        for arm in (current, baseline)
    ]
    if not design.randomized:
        return {
            "checked": False,
            "reason": "observational design: the arms were not randomized",
            "treatment": counts[0],
            "control": counts[1],
        }
    if not any(counts):
        return {"checked": False, "reason": "no units in either arm", "treatment": 0, "control": 0}
    if base.split is None:
        return {
            "checked": False,
            "reason": "no intended split declared (baselines.<name>.split)",
            "treatment": counts[0],
            "control": counts[1],
        }
    chi2, p = stats.sample_ratio_mismatch(counts, [base.split, 1 - base.split])
    return {
        "checked": True,
        "treatment": counts[0],
        "control": counts[1],
        "expected_treatment_share": base.split,
        "chi2": chi2,
        "p_value": p,
        "mismatch": bool(p < 0.001),
    }


def _result_table(
    cells: Sequence[Cell],
    adjusted: Sequence[float | None],
    options: CompareOptions,
    spec: Spec,
    values: Mapping[str, Mapping[tuple, tuple[float | None, int, int]]],
) -> pl.DataFrame:
    """One row per cell. n is `compute`'s n on the arm (rows counted, e.g. tool calls); units
    is what the test counted (units of analysis, e.g. conversations)."""
    records = []
    dims = list(options.by)
    for cell, p_adj in zip(cells, adjusted, strict=True):
        comp = cell.comparison
        untestable = comp is not None and comp.test == NOT_TESTABLE
        # min_sample counts units (not turns); a target (`values`) has no baseline arm.
        units_b = cell.n_baseline if cell.units_baseline is None else cell.units_baseline
        units_c = cell.n_current if cell.units_current is None else cell.units_current
        baseline_n = units_b if cell.target is None else cell.kpi.min_sample
        insufficient = min(baseline_n, units_c) < cell.kpi.min_sample
        significant = p_adj is not None and p_adj < options.significance
        status, fired = verdict(cell.kpi, comp, significant, insufficient)
        if untestable and status in ("ok", INSUFFICIENT):  # only a bound ("> 1%") can fire
            status, fired = NOT_TESTABLE, None
        warnings = [*cell.warnings, *(comp.warnings if comp else ())]
        if insufficient and comp is not None and not untestable:
            warnings.append(
                f"fewer than min_sample = {cell.kpi.min_sample} units in an arm: no verdict"
            )
        absolute = comp.absolute if comp else None
        relative = comp.relative if comp else None
        key = (cell.kpi.name, cell.grouping, tuple(cell.cohort.get(d) for d in cell.grouping))
        engine_b = values.get("baseline", {}).get(key)
        engine_c = values["current"].get(key)
        baseline_value = comp.baseline if comp else (engine_b[0] if engine_b else None)
        records.append(
            {
                "kpi": cell.kpi.name,
                "grouping": list(cell.grouping),
                **{d: cell.cohort.get(d) for d in dims},
                "baseline_value": baseline_value,
                "baseline_n": engine_b[1] if engine_b else cell.n_baseline,
                "baseline_units": None if untestable or cell.target is not None else units_b,
                "current_value": comp.current if comp else (engine_c[0] if engine_c else None),
                "current_n": engine_c[1] if engine_c else cell.n_current,
                "current_units": None if untestable else units_c,
                "delta": absolute.estimate if absolute else None,
                "delta_low": absolute.low if absolute else None,
                "delta_high": absolute.high if absolute else None,
                "relative_delta": relative.estimate if relative else None,
                "relative_low": relative.low if relative else None,
                "relative_high": relative.high if relative else None,
                "p_value": comp.p_value if comp else None,
                "p_adjusted": p_adj,
                "test": comp.test if comp else None,
                "significant": significant,
                "mde": cell.mde,
                "status": status,
                "threshold": fired,
                "pending_baseline": cell.pending_baseline,
                "pending_current": cell.pending_current,
                "design_effect": comp.design_effect if comp else None,
                "cuped_theta": cell.cuped_theta,
                "variance_reduction": cell.variance_reduction,
                "warnings": warnings,
                "layer": cell.kpi.layer,
                "format": cell.kpi.format,
                "direction": cell.kpi.direction,
                "owner": cell.kpi.owner,
                "label": cell.kpi.label,
            }
        )
    schema: dict[str, pl.DataType] = {
        "kpi": pl.String(),
        "grouping": pl.List(pl.String()),
        **{d: pl.String() for d in dims},
        "baseline_value": pl.Float64(),
        "baseline_n": pl.Int64(),
        "baseline_units": pl.Int64(),
        "current_value": pl.Float64(),
        "current_n": pl.Int64(),
        "current_units": pl.Int64(),
        "delta": pl.Float64(),
        "delta_low": pl.Float64(),
        "delta_high": pl.Float64(),
        "relative_delta": pl.Float64(),
        "relative_low": pl.Float64(),
        "relative_high": pl.Float64(),
        "p_value": pl.Float64(),
        "p_adjusted": pl.Float64(),
        "test": pl.String(),
        "significant": pl.Boolean(),
        "mde": pl.Float64(),
        "status": pl.String(),
        "threshold": pl.String(),
        "pending_baseline": pl.Int64(),
        "pending_current": pl.Int64(),
        "design_effect": pl.Float64(),
        "cuped_theta": pl.Float64(),
        "variance_reduction": pl.Float64(),
        "warnings": pl.List(pl.String()),
        "layer": pl.String(),
        "format": pl.String(),
        "direction": pl.String(),
        "owner": pl.String(),
        "label": pl.String(),
    }
    return pl.DataFrame(records, schema=schema).with_columns(pl.col(pl.Float64).fill_nan(None))


def compare(
    spec: Spec,
    sources: Sources,
    *,
    baseline: str | None = None,
    baseline_sources: Sources | None = None,
    by: Sequence[str] | None = (),
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    as_of: dt.datetime | None = None,
    where: str | None = None,
    kpis: Sequence[str] | None = (),
    alpha: float = 0.05,
    correction: str | None = None,
    unit: str | None = None,
    relative_ci: Literal["delta", "fieller"] = "delta",
    engine: Engine | None = None,
) -> pl.DataFrame:
    """Compare KPIs against a baseline; one row per KPI × cohort (see CompareResult);
    `engine` builds the facts (default: polars; e.g. kpictl.engine.duck.DuckDBEngine()).

    >>> import kpictl, polars as pl
    >>> spec = kpictl.load_spec("kpi_definitions.yaml")
    >>> table = kpictl.compare(spec, kpictl.load_sources(spec), baseline="holdout",
    ...                        kpis=["task_completion_rate"])
    >>> table.select(pl.col("baseline_value", "current_value").round(4), "test", "status").rows()
    [(0.5988, 0.6951, 'proportion_t', 'ok')]
    """
    options = CompareOptions(
        baseline=baseline,
        by=tuple(by or ()),
        since=since,
        until=until,
        as_of=as_of,
        where=where,
        kpis=tuple(kpis or ()),
        alpha=alpha,
        correction=correction,
        unit=unit,
        relative_ci=relative_ci,
    )
    return run_compare(
        spec, sources, options, baseline_sources=baseline_sources, engine=engine
    ).table
