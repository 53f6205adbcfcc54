"""CUPED (docs/methods.md A10): a pre-period covariate of the unit table removes part of the
variance of a per-unit mean or proportion."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import polars as pl

from kpictl import stats
from kpictl.comparison.cells.common import as_float, kpi_rows
from kpictl.comparison.model import Arm, Cell, CompareOptions
from kpictl.engine.shapes import KpiShape
from kpictl.spec.model import KpiSpec, Spec


@dataclass(frozen=True)
class CupedArms:
    """Per cohort, each arm's `stats.CupedSums` and units whose covariate was missing."""

    sums: dict[str, dict[tuple, stats.CupedSums]]
    missing: dict[str, dict[tuple, int]]
    fill: float | None  # the pooled mean the missing covariates were set to


def cuped_sums(
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
            kpi_rows(spec, kpi, arm, options.where)
            .with_columns([pl.col(k).cast(pl.String) for k in keys])
            .filter(pl.col("__mature"))
        )
        if shape.kind == "ratio":
            assert shape.numerator is not None and shape.denominator is not None
            aggs = [as_float(shape.numerator).alias("m"), as_float(shape.denominator).alias("d")]
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


def apply_cuped(
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
