"""pass^k / pass@k: the unit is the task; a seeded bootstrap over tasks (paired when both arms
ran the same tasks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import polars as pl

from kpictl import stats
from kpictl.comparison.cells.common import BOOTSTRAP_RESAMPLES, cohort_order, groupings, kpi_rows
from kpictl.comparison.model import Arm, Cell, CompareOptions
from kpictl.engine.kpis import pass_k_probability
from kpictl.engine.shapes import KpiShape
from kpictl.spec.model import KpiSpec, Spec
from kpictl.sql.expr import compile_sql


def _pass_k_tasks(
    spec: Spec, kpi: KpiSpec, arm: Arm, keys: Sequence[str], where: str | None
) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """Per cohort: the task ids with at least k settled trials (sorted) and each task's pass^k
    (or pass@k) probability, as `compute` takes them."""
    pk = kpi.pass_k
    assert pk is not None
    success = compile_sql(pk.success).fill_null(False)
    per_task = (
        kpi_rows(spec, kpi, arm, where)
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


def pass_k_cells(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    current: Arm,
    baseline: Arm | None,
    target: float | None,
    options: CompareOptions,
    unit: str,
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
    for keys in groupings(kpi, current, options):
        cur = _pass_k_tasks(spec, kpi, current, keys, options.where)
        base = _pass_k_tasks(spec, kpi, baseline, keys, options.where)
        for cohort_key in sorted(set(cur) | set(base), key=cohort_order):
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
                    resamples=BOOTSTRAP_RESAMPLES,
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
                resamples=BOOTSTRAP_RESAMPLES,
                seed=options.seed,
            )
            cell.comparison = replace(comparison, test="pass_k_bootstrap")
    return cells
