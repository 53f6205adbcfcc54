"""CUPED: means and proportions adjusted by a pre-period covariate (docs/methods.md
"CUPED").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from kpictl.stats.core import (
    BASELINE_ZERO,
    NO_UNITS,
    ZERO_VARIANCE,
    ArmSummary,
    Comparison,
    Interval,
    _bounds,
    _check_alpha,
    _p_value,
    welch_df,
)


class CupedSums(NamedTuple):
    """Per-arm sufficient statistics of a mean or proportion KPI y with a pre-period covariate
    w (A10): n, Σy, Σy², Σw, Σw², Σyw. For proportions (`binary=True`) Σy² and Σw² are not
    used (s² = p(1−p))."""

    n: int
    y_sum: float
    y_sq: float
    w_sum: float
    w_sq: float
    yw_sum: float


def _cuped_moments(s: CupedSums, binary: bool) -> tuple[float, float, float]:
    """(s²_Y, s²_W, s_YW): n−1 moments, or for proportions p(1−p) and ΣYW/n − ΣYΣW/n²."""
    n = s.n
    if n <= 1:
        return 0.0, 0.0, 0.0
    if binary:
        p_y, p_w = s.y_sum / n, s.w_sum / n
        return p_y * (1 - p_y), p_w * (1 - p_w), s.yw_sum / n - s.y_sum * s.w_sum / n**2
    var_y = (s.y_sq - s.y_sum**2 / n) / (n - 1)
    var_w = (s.w_sq - s.w_sum**2 / n) / (n - 1)
    return var_y, var_w, (s.yw_sum - s.y_sum * s.w_sum / n) / (n - 1)


def cuped_theta(baseline: CupedSums, current: CupedSums, *, binary: bool = False) -> float:
    """θ = cov(Y, W)/var(W) over the pooled units of both arms (A10; gbstats `compute_theta`,
    Deng et al. 2013 eq. 4); 0 (no adjustment) when the pooled var(W) or var(Y) is 0."""
    pooled = CupedSums(
        baseline.n + current.n,
        *(a + b for a, b in zip(baseline[1:], current[1:], strict=True)),
    )
    var_y, var_w, cov = _cuped_moments(pooled, binary)
    if var_w == 0 or var_y == 0:
        return 0.0
    return cov / var_w


def cuped_summary(sums: CupedSums, theta: float, *, binary: bool = False) -> ArmSummary:
    """Adjusted arm (A10): m* = Ȳ − θW̄, s²* = s²_Y + θ²s²_W − 2θ s_YW, n."""
    if sums.n <= 0:
        return ArmSummary(math.nan, 0.0, 0)
    var_y, var_w, cov = _cuped_moments(sums, binary)
    mean = (sums.y_sum - theta * sums.w_sum) / sums.n
    return ArmSummary(mean, var_y + theta**2 * var_w - 2.0 * theta * cov, int(sums.n))


def _adjusted_comparison(
    test: str,
    unadjusted: tuple[float, float],
    arms: tuple[ArmSummary, ArmSummary],
    relative_variance: Callable[[], float],
    *,
    alpha: float,
) -> Comparison:
    """A1 on adjusted arms; relative (m*_B − m*_A)/|unadjusted baseline| with its own variance."""
    (y_a, y_b), (a, b) = unadjusted, arms
    if a.n <= 1 or b.n <= 1 or not a.variance > 0 or not b.variance > 0:
        return Comparison(test, y_a, y_b, None, None, None, None, (ZERO_VARIANCE,))
    se = math.sqrt(a.variance / a.n + b.variance / b.n)
    df = welch_df(a.variance, a.n, b.variance, b.n)
    delta = b.estimate - a.estimate
    statistic = delta / se
    absolute = Interval(delta, se, *_bounds(delta, se, alpha, df))
    relative: Interval | None = None
    relative_p: float | None = None
    warnings: tuple[str, ...] = ()
    variance = relative_variance() if y_a != 0 else math.nan
    if y_a == 0:
        warnings = (BASELINE_ZERO,)
    elif variance > 0:
        rel, rel_se = delta / abs(y_a), math.sqrt(variance)
        relative = Interval(rel, rel_se, *_bounds(rel, rel_se, alpha, df))
        relative_p = _p_value(rel / rel_se, df)
    else:
        warnings = (f"{ZERO_VARIANCE}: no relative CI",)
    return Comparison(
        test,
        y_a,
        y_b,
        absolute,
        relative,
        _p_value(statistic, df),
        df,
        warnings,
        statistic=statistic,
        relative_p_value=relative_p,
    )


def compare_cuped(
    baseline: CupedSums,
    current: CupedSums,
    *,
    binary: bool = False,
    theta: float | None = None,
    alpha: float = 0.05,
) -> Comparison:
    """CUPED-adjusted comparison of a mean (or, `binary`, a proportion) KPI (A10).

    θ = `cuped_theta` (pooled) unless given. Absolute Δ = m*_B − m*_A with SE² = Σ s²*/n and
    Welch df on s²*; the p-value is this absolute test's. Relative (m*_B − m*_A)/|Ȳ_A| with
    gbstats's `frequentist_variance_relative_cuped`: s²*_B/(n_B Ȳ_A²) + [s²_{Y,A}Ȳ_B²/Ȳ_A² −
    2θ s_{YW,A}Ȳ_B/Ȳ_A + θ²s²_{W,A}]/(n_A Ȳ_A²). `baseline`/`current` report the unadjusted
    means Ȳ_A, Ȳ_B. Test name "cuped".
    """
    _check_alpha(alpha)
    if baseline.n <= 0 or current.n <= 0:
        return Comparison("cuped", None, None, None, None, None, None, (NO_UNITS,))
    t = cuped_theta(baseline, current, binary=binary) if theta is None else theta
    a = cuped_summary(baseline, t, binary=binary)
    b = cuped_summary(current, t, binary=binary)
    y_a, y_b = baseline.y_sum / baseline.n, current.y_sum / current.n

    def relative_variance() -> float:
        var_y, var_w, cov = _cuped_moments(baseline, binary)
        control = var_y * y_b**2 / y_a**2 - 2.0 * t * cov * y_b / y_a + t**2 * var_w
        return b.variance / (b.n * y_a**2) + control / (a.n * y_a**2)

    return _adjusted_comparison("cuped", (y_a, y_b), (a, b), relative_variance, alpha=alpha)
