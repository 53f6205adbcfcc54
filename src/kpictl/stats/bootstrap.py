"""The cluster bootstrap of two independent arms and the paired bootstrap over shared units
(docs/methods.md "Bootstrap").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kpictl.stats.core import (
    BASELINE_ZERO,
    NO_UNITS,
    ZERO_VARIANCE,
    Comparison,
    FloatArray,
    Interval,
    UnitStatistic,
    _check_alpha,
)
from kpictl.stats.paired import _paired_arrays


@dataclass(frozen=True)
class BootstrapInterval(Interval):
    """A cluster-bootstrap interval: percentile CI, SE = SD of the resampled effects (A5).

    `dropped` counts resamples whose statistic was not finite (e.g. a ratio whose resampled
    denominator sums to 0); they are left out of the SE and the CI.
    """

    resamples: int = 0
    dropped: int = 0


def _bootstrap_draws(
    stat_a: UnitStatistic,
    stat_b: UnitStatistic,
    n_units_a: int,
    n_units_b: int,
    *,
    resamples: int,
    seed: int,
    max_cells: int,
) -> tuple[float, float, FloatArray, FloatArray]:
    """Point statistics and `resamples` draws per arm (units resampled within each arm)."""
    if n_units_a < 1 or n_units_b < 1 or resamples < 2:
        raise ValueError("the bootstrap needs at least one unit per arm and two resamples")
    rng = np.random.default_rng(seed)
    point_a = float(np.asarray(stat_a(np.ones((1, n_units_a))))[0])
    point_b = float(np.asarray(stat_b(np.ones((1, n_units_b))))[0])
    batch = max(1, min(resamples, max_cells // max(n_units_a, n_units_b)))
    p_a, p_b = np.full(n_units_a, 1.0 / n_units_a), np.full(n_units_b, 1.0 / n_units_b)
    draws_a: list[FloatArray] = []
    draws_b: list[FloatArray] = []
    done = 0
    while done < resamples:
        size = min(batch, resamples - done)
        w_a = rng.multinomial(n_units_a, p_a, size=size).astype(np.float64)
        w_b = rng.multinomial(n_units_b, p_b, size=size).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            draws_a.append(np.asarray(stat_a(w_a), dtype=np.float64).ravel())
            draws_b.append(np.asarray(stat_b(w_b), dtype=np.float64).ravel())
        done += size
    return point_a, point_b, np.concatenate(draws_a), np.concatenate(draws_b)


def _percentile_interval(
    estimate: float, draws: FloatArray, alpha: float, resamples: int
) -> BootstrapInterval:
    finite = draws[np.isfinite(draws)]
    dropped = int(draws.size - finite.size)
    if finite.size < 2:
        return BootstrapInterval(estimate, math.nan, math.nan, math.nan, resamples, dropped)
    low, high = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    se = float(finite.std(ddof=1))
    return BootstrapInterval(estimate, se, float(low), float(high), resamples, dropped)


def _bootstrap_p(draws: FloatArray) -> float:
    """Two-sided p-value by inverting the percentile interval: 2·min(#≤0, #≥0), +1 smoothed."""
    finite = draws[np.isfinite(draws)]
    tail = min(int((finite <= 0).sum()), int((finite >= 0).sum()))
    return min(1.0, 2.0 * (tail + 1) / (finite.size + 1))


def bootstrap_comparison(
    stat_a: UnitStatistic,
    stat_b: UnitStatistic,
    n_units_a: int,
    n_units_b: int,
    estimate_a: float,
    estimate_b: float,
    *,
    alpha: float = 0.05,
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """A `Comparison` (test "bootstrap") from the cluster bootstrap of `cluster_bootstrap`.

    Absolute: percentile CI of the resampled differences, SE = their SD. Relative: percentile
    CI of the resampled (b − a)/|a|. p-value: the percentile interval inverted,
    2·min(#{Δ* ≤ 0}, #{Δ* ≥ 0}) + 1 over B + 1 (so it never prints 0), consistent with the CI.
    """
    _check_alpha(alpha)
    _, _, draws_a, draws_b = _bootstrap_draws(
        stat_a, stat_b, n_units_a, n_units_b, resamples=resamples, seed=seed, max_cells=4_000_000
    )
    m_a = estimate_a if math.isfinite(estimate_a) else None
    m_b = estimate_b if math.isfinite(estimate_b) else None
    if m_a is None or m_b is None:
        return Comparison("bootstrap", m_a, m_b, None, None, None, None, (NO_UNITS,))
    diffs = draws_b - draws_a
    absolute = _percentile_interval(m_b - m_a, diffs, alpha, resamples)
    warnings: list[str] = []
    if absolute.dropped:
        warnings.append(f"{absolute.dropped} of {resamples} bootstrap resamples undefined")
    if not absolute.se > 0:
        warnings.append(ZERO_VARIANCE)
        return Comparison("bootstrap", m_a, m_b, None, None, None, None, tuple(warnings))
    relative = _relative_percentile(m_a, m_b, diffs, draws_a, alpha, resamples, warnings)
    return Comparison(
        "bootstrap",
        m_a,
        m_b,
        absolute,
        relative,
        _bootstrap_p(diffs),
        None,
        tuple(warnings),
        statistic=absolute.estimate / absolute.se,
    )


def paired_bootstrap_comparison(
    baseline: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    resamples: int = 2000,
    seed: int = 0,
    max_cells: int = 4_000_000,
) -> Comparison:
    """Paired bootstrap of mean(current − baseline) over K paired units (tasks): each resample
    draws K units with replacement, the SAME units for both arms (multinomial counts W, B × K,
    from `np.random.default_rng(seed)` in batches of at most `max_cells` counts); Δ* = W·d/K.
    Percentile CI, SE = SD of Δ*, p = the percentile interval inverted (as
    `bootstrap_comparison`); relative Δ*/|W·a/K|. Test "paired_bootstrap"."""
    _check_alpha(alpha)
    a, b = _paired_arrays(baseline, current)
    k = a.size
    if k < 2 or resamples < 2:
        return Comparison("paired_bootstrap", None, None, None, None, None, None, (NO_UNITS,))
    rng = np.random.default_rng(seed)
    batch = max(1, min(resamples, max_cells // k))
    weights = np.full(k, 1.0 / k)
    diffs, bases = [], []
    done = 0
    while done < resamples:
        size = min(batch, resamples - done)
        w = rng.multinomial(k, weights, size=size).astype(np.float64)
        diffs.append(w @ (b - a) / k)
        bases.append(w @ a / k)
        done += size
    draws, base_draws = np.concatenate(diffs), np.concatenate(bases)
    m_a, m_b = float(a.mean()), float(b.mean())
    absolute = _percentile_interval(m_b - m_a, draws, alpha, resamples)
    if not absolute.se > 0:
        return Comparison("paired_bootstrap", m_a, m_b, None, None, None, None, (ZERO_VARIANCE,))
    warnings: list[str] = []
    relative = _relative_percentile(m_a, m_b, draws, base_draws, alpha, resamples, warnings)
    return Comparison(
        "paired_bootstrap",
        m_a,
        m_b,
        absolute,
        relative,
        _bootstrap_p(draws),
        None,
        tuple(warnings),
        statistic=absolute.estimate / absolute.se,
    )


def _relative_percentile(
    m_a: float,
    m_b: float,
    diffs: np.ndarray,
    base_draws: np.ndarray,
    alpha: float,
    resamples: int,
    warnings: list[str],
) -> Interval | None:
    """Percentile CI of the resampled (b − a)/|a| (Δ* over each draw's own baseline); None,
    with a warning, when the baseline is 0."""
    if m_a == 0:
        warnings.append(BASELINE_ZERO)
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        lifts = diffs / np.abs(base_draws)
    return _percentile_interval((m_b - m_a) / abs(m_a), lifts, alpha, resamples)
