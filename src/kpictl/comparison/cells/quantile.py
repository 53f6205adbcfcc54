"""Percentile KPIs (docs/methods.md A5): the KPI's own quantile, its cluster-adjusted outer-CI
standard error per arm, and the difference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import polars as pl

from kpictl import stats
from kpictl.comparison.cells.common import (
    by_cohort,
    cohort_order,
    group_by_keys,
    groupings,
    pending_of,
)
from kpictl.comparison.model import Arm, Cell, CompareOptions
from kpictl.comparison.partition import PART, own_groups, partitioned, remembered
from kpictl.engine.interface import Window
from kpictl.engine.kpis import filter_kpi_rows
from kpictl.engine.shapes import KpiShape
from kpictl.spec.model import KpiSpec, Spec


def quantile_cells(
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
    # units as integer codes (the cluster adjustment groups by them; its sums count values, so
    # any one-to-one coding gives the same numbers): the row number where each row is its own
    # unit (one row per key), the run number where the rows coded come sorted by a unit never
    # null (logs grouped by conversation: each unit one run; a compare per row, where
    # interning millions of texts costs ~0.4 s per million rows), a text's categorical code
    # (hashed: a sort of millions of strings per arm costs 5x more), else dense ranks
    one_row_units = table.is_rollup and table.key == unit
    unit_type = current.tables[kpi.over].collect_schema()[unit]
    orderable = unit_type == pl.String or unit_type.is_integer()
    if one_row_units:
        codes = pl.int_range(pl.len())
    elif orderable and _in_runs(kpi, unit, [a for a in (current, baseline) if a is not None]):
        codes = pl.col(unit).rle_id()
    elif unit_type == pl.String:
        codes = pl.col(unit).cast(pl.Categorical).to_physical()
    else:
        codes = pl.col(unit).rank("dense")
    for keys in groupings(kpi, current, options):
        # per arm and cohort: values, units, and K when sorted with units coded 0..K−1
        arms: dict[str, dict[tuple, tuple[np.ndarray, np.ndarray, int | None]]] = {}
        pendings: dict[str, dict[tuple, dict[str, Any]]] = {}
        unit_counts: dict[str, dict[tuple, int]] = {"current": {}, "baseline": {}}
        for label, arm in (("current", current), ("baseline", baseline)):
            if arm is None:
                continue
            waiting_rows, data, coded = _arm_rows(
                spec, kpi, arm, keys, options.where, values_expr, codes
            )
            pendings[label] = by_cohort(waiting_rows, keys)
            grouped: dict[tuple, tuple[np.ndarray, np.ndarray, int | None]] = {}
            parts = (
                data.partition_by(list(keys), as_dict=True, include_key=False)
                if keys
                else {(): data}
            )
            for cohort_key, part in parts.items():
                key = tuple(cohort_key) if keys else ()
                values, unit_codes = part["__v"].to_numpy(), part["__unit"].to_numpy()
                grouped[key] = (values, unit_codes, coded)
                # a row per unit: its units are its rows; units coded 0..K−1: counted (no
                # hashing of the codes)
                if one_row_units:
                    units = part.height
                elif coded is not None:
                    units = int(np.count_nonzero(np.bincount(unit_codes, minlength=coded)))
                else:
                    units = part["__unit"].n_unique()
                unit_counts[label][key] = units
            arms[label] = grouped
        cur_groups = arms["current"]
        base_groups = arms.get("baseline", {})
        for cohort_key in sorted(set(cur_groups) | set(base_groups), key=cohort_order):
            c, b = cur_groups.get(cohort_key), base_groups.get(cohort_key)
            cell = Cell(
                kpi,
                dict(zip(keys, cohort_key, strict=True)),
                tuple(keys),
                None,
                len(b[0]) if b else 0,
                len(c[0]) if c else 0,
                pending_of(pendings.get("baseline", {}), cohort_key),
                pending_of(pendings["current"], cohort_key),
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


def _in_runs(kpi: KpiSpec, unit: str, arms: Sequence[Arm]) -> bool:
    """The rows `_arm_rows` codes (each arm's table, or its partition's whole, asked once for
    all its parts) have no null `unit` and come in ascending order of it, so that each unit's
    rows are one run in them and in every subset of them (then `rle_id` codes them one to one)."""
    column = pl.col(unit)

    def ascending(frames: Sequence[pl.LazyFrame]) -> bool:
        checks = [
            frame.select(
                (column.null_count() == 0) & (column.shift(1) <= column).all(ignore_nulls=True)
            )
            for frame in frames
        ]
        return all(done.item() for done in pl.collect_all(checks))

    own: list[pl.LazyFrame] = []
    for arm in arms:
        part = arm.part
        if part is not None and partitioned(part, kpi.over):
            whole = [part.whole[kpi.over]]
            if not remembered(part, ("in_runs", kpi.over, unit), partial(ascending, whole)):
                return False
        else:
            own.append(arm.tables[kpi.over])
    return not own or ascending(own)


def _rows(
    spec: Spec,
    kpi: KpiSpec,
    tables: Mapping[str, pl.LazyFrame],
    window: Window,
    keys: Sequence[str],
    where: str | None,
    values_expr: pl.Expr,
    codes: pl.Expr,
    extra: Sequence[str] = (),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(pending rows by cohort; each settled row's cohort, unit code and value): the KPI's
    rows read once. `extra`: columns kept as they are (a partition's group code)."""
    rows = filter_kpi_rows(spec, kpi, tables[kpi.over], window, where).with_columns(
        [pl.col(k).cast(pl.String) for k in keys]
    )
    waiting = group_by_keys(
        rows.filter(~pl.col("__mature")),
        [*keys, *extra],
        [pl.len().cast(pl.Int64).alias("pending")],
    )
    settled = (
        rows.filter(pl.col("__mature"))
        .with_columns(values_expr)
        .filter(pl.col("__v").is_not_null() & pl.col("__v").is_not_nan())
        .select([*keys, *extra, codes.alias("__unit"), "__v"])
    )
    waiting_rows, data = pl.collect_all([waiting, settled])
    return waiting_rows, data


def _arm_rows(
    spec: Spec,
    kpi: KpiSpec,
    arm: Arm,
    keys: Sequence[str],
    where: str | None,
    values_expr: pl.Expr,
    codes: pl.Expr,
) -> tuple[pl.DataFrame, pl.DataFrame, int | None]:
    """`_rows` of the arm, and None. Of a part of a partitioned arm: the whole's rows read
    once for every part, sorted by value (stable) with units coded 0..K−1 over the whole, then
    this part's groups — its pending rows added up, its rows (still sorted) — and K (None, and
    the rows in their order, when a value is −0.0: see `stats.quantile_arm`)."""
    part = arm.part
    if part is None or not partitioned(part, kpi.over):
        waiting, data = _rows(spec, kpi, arm.tables, arm.window, keys, where, values_expr, codes)
        return waiting, data, None
    whole = part.whole

    def read() -> tuple[pl.DataFrame, pl.DataFrame, int | None]:
        waiting, data = _rows(spec, kpi, whole, arm.window, keys, where, values_expr, codes, [PART])
        values = data.get_column("__v").to_numpy()
        if np.signbit(values[values == 0]).any():  # −0.0: the parts' rows in their own order
            return waiting, data, None
        data = data.sort("__v", maintain_order=True)
        coded, count = stats.unit_codes(data["__unit"].to_numpy())
        return (
            waiting,
            data.with_columns(
                pl.Series("__unit", coded.astype(np.int32 if count < 2**31 else np.int64))
            ),
            count,
        )

    waiting, settled, count = remembered(
        part, ("quantile_rows", kpi.name, tuple(keys), where, str(codes)), read
    )
    groups = settled.get_column(PART).to_numpy()
    chosen = np.zeros(int(groups.max()) + 1 if len(groups) else 0, dtype=bool)
    chosen[[c for c in part.codes if c < len(chosen)]] = True
    mine = settled.filter(pl.Series(chosen[groups])).drop(PART)  # a table lookup per row
    return own_groups(waiting, keys, part.codes), mine, count


def _quantile_arm(
    data: tuple[np.ndarray, np.ndarray, int | None], nu: float, alpha: float
) -> stats.QuantileArm:
    values, units, coded = data
    # The point estimate is the KPI's own (linear interpolation, as `compute` reports it:
    # np.quantile's, from the same partition as the order statistics); the standard error is
    # the outer-CI, cluster-adjusted one (docs/methods.md A5). A part of a partitioned arm
    # comes sorted, its units coded over the whole (`_arm_rows`): the same numbers.
    if coded is None:
        return stats.quantile_arm(values, units, nu, alpha=alpha, linear=True)
    return stats.quantile_arm(
        values, units, nu, alpha=alpha, linear=True, presorted=True, coded_units=coded
    )
