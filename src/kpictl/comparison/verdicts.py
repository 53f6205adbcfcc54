"""From a tested cell to its row: threshold verdicts (a bound, or a significant deterioration
beyond an absolute or relative amount), the sequential (always-valid) form of a cell, and the
result table, one row per cell with its status."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import polars as pl

from kpictl import stats
from kpictl.comparison.model import INSUFFICIENT, NOT_TESTABLE, ArmValues, Cell, CompareOptions
from kpictl.spec.model import KpiSpec, Spec, Threshold, most_severe


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


def result_table(
    cells: Sequence[Cell],
    adjusted: Sequence[float | None],
    options: CompareOptions,
    spec: Spec,
    values: ArmValues,
    approximate: Collection[str] = (),
) -> pl.DataFrame:
    """One row per cell. n is `compute`'s n on the arm (rows counted, e.g. tool calls); units
    is what the test counted (units of analysis, e.g. conversations). The KPIs `approximate`
    names show the engine's (approximate) values, as compute does; their test is exact."""
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
        current_value = comp.current if comp else (engine_c[0] if engine_c else None)
        if cell.kpi.name in approximate:  # the value compute shows, not the test's exact one
            current_value = engine_c[0] if engine_c else None
            if cell.target is None:
                baseline_value = engine_b[0] if engine_b else None
        records.append(
            {
                "kpi": cell.kpi.name,
                "grouping": list(cell.grouping),
                **{d: cell.cohort.get(d) for d in dims},
                "baseline_value": baseline_value,
                "baseline_n": engine_b[1] if engine_b else cell.n_baseline,
                "baseline_units": None if untestable or cell.target is not None else units_b,
                "current_value": current_value,
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
