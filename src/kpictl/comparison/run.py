"""`compare`: every KPI of the spec, baseline vs current, with the right test for each KPI.

The stages (docs/methods.md, A0): build the two arms (`arms.py`: a concurrent holdout, an
earlier period, a pinned period, another dataset, or target values) → reduce every KPI to
per-unit sufficient statistics and test it per cohort, by its shape (`cells/`; the unit is the
unit of assignment: the conversation by default) → multiple-testing correction over the run →
threshold verdicts and the result table (`verdicts.py`), heterogeneity and fairness.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import polars as pl

from kpictl import stats
from kpictl.comparison.arms import (
    build_arms,
    data_check,
    empty_arm_notes,
    materialise,
    require_arm_columns,
    same_units,
    srm_check,
)
from kpictl.comparison.cells import kpi_cells
from kpictl.comparison.fairness import fairness_findings, fairness_note, with_fairness_columns
from kpictl.comparison.heterogeneity import heterogeneity_notes, heterogeneity_tests
from kpictl.comparison.model import (
    UNAVAILABLE,
    Arm,
    Cell,
    CompareOptions,
    CompareResult,
    Design,
    Heterogeneity,
)
from kpictl.comparison.verdicts import result_table, sequential_cell, sequential_label
from kpictl.engine.findings import DataCheck
from kpictl.engine.finish import mark_unavailable
from kpictl.engine.interface import Approximation, ComputeOptions, Engine, FactSet
from kpictl.engine.notes import empty_source_notes, input_notes
from kpictl.engine.selection import (
    check_cohort_counts,
    check_where,
    selected_kpis,
    where_note,
    with_cohort_columns,
)
from kpictl.errors import UsageError, did_you_mean
from kpictl.io.read import Sources
from kpictl.spec.model import BaselineSpec, KpiSpec, Spec


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
        with_fairness_columns(spec, options),
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
        options = with_fairness_columns(spec, options)
    watched = [d for d in options.by if d not in asked.by]
    primary = spec.require_primary_table()
    unit = options.unit or (base.unit if base and base.unit else None) or primary.key
    assert unit is not None
    current = materialise(spec, current, evaluated, options, unit)
    if baseline is not None:
        baseline = materialise(spec, baseline, evaluated, options, unit)
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
            and same_units(spec, current, baseline, unit)
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
        found = kpi_cells(
            spec, kpi, current, baseline, target, design.paired, options, unit, values
        )
        for cell in found:  # as `compute` shows it: null, "unavailable (cost unknown)"
            why = unknown.get(
                (kpi.name, cell.grouping, tuple(cell.cohort.get(d) for d in cell.grouping))
            )
            if why is not None:
                cell.comparison, cell.mde = None, None
                cell.warnings = [why]
        cells += found
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
    srm = srm_check(spec, design, base, current, baseline, unit)
    heterogeneity: list[Heterogeneity] = []
    if options.heterogeneity:
        heterogeneity = heterogeneity_tests(every, options)
    elif fair:  # the spec's fairness pairs get the interaction test too
        pairs = {(f.kpi, f.column) for f in fair}
        heterogeneity = [
            h for h in heterogeneity_tests(every, options) if (h.kpi, h.dimension) in pairs
        ]
    approximation = current.engine.approximation(spec, selected)
    approximate = approximation.kpis if approximation else ()
    table = result_table(cells, adjusted, asked, spec, values, approximate).with_columns(
        pl.when(
            pl.col("kpi").is_in(list(check.unavailable))
            | pl.col("warnings").list.eval(pl.element().str.starts_with("cost unknown")).list.any()
        )
        .then(pl.lit(UNAVAILABLE))
        .otherwise(pl.col("status"))
        .alias("status")
    )
    notes: list[str] = []
    if approximation is not None:
        table = table.with_columns(pl.col("kpi").is_in(list(approximate)).alias("approximate"))
        notes.append(approximation_note(approximation))
    notes += empty_arm_notes(spec, design, base, current, baseline)
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
        approximation=approximation,
    )


def approximation_note(approximation: Approximation) -> str:
    """compare's note on `--approx-percentiles`: which numbers are approximate."""
    if not approximation.kpis:
        return approximation.note()
    return (
        f"approximate percentiles (--approx-percentiles, {approximation.method}): "
        f"{', '.join(approximation.kpis)}: their baseline and current values are the engine's "
        "approximate ones, as compute gives them (marked ≈; JSON and CSV: approximate); Δ, its "
        "CI and the p-value are computed exactly from the facts (polars), so Δ may differ from "
        "current − baseline by the approximation's error"
    )


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
