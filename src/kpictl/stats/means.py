"""Welch's t on two arm summaries, the relative change (delta method or Fieller) and the
one-sample t against a target (docs/methods.md "Two arms: Welch's t", "Relative change",
"Means", "Target values (one sample)").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kpictl.stats.core import (
    BASELINE_ZERO,
    IDENTICAL_ARMS,
    NO_UNITS,
    ZERO_VARIANCE,
    ArmSummary,
    Comparison,
    Interval,
    RelativeCI,
    _bounds,
    _check_alpha,
    _crit,
    _estimate_or_none,
    _p_value,
    welch_df,
)


@dataclass(frozen=True)
class FiellerInterval:
    """Fieller CI for the relative lift (m_B − m_A)/|m_A| and its g = c²·Var(m_A)/m_A² (A4).

    When g ≥ 1 the baseline is not distinguishable from 0 and the set is unbounded: (−inf, inf).
    """

    low: float
    high: float
    g: float


def mean_summary(n: int, total: float, total_sq: float) -> ArmSummary:
    """Mean arm: m = Σy/n, s² = (Σy² − (Σy)²/n)/(n−1) (A3); s² = 0 when n ≤ 1."""
    if n <= 0:
        return ArmSummary(math.nan, 0.0, 0)
    m = total / n
    variance = (total_sq - total * total / n) / (n - 1) if n > 1 else 0.0
    # equal values cancel to a rounding residue that may be below 0: the variance is 0
    return ArmSummary(m, max(variance, 0.0), int(n))


def fieller_lift_interval(
    m_a: float, var_a: float, m_b: float, var_b: float, crit: float
) -> FiellerInterval:
    """Fieller CI for the lift (m_B − m_A)/|m_A| (A4); var_g = Var(m_g), crit = z or t.

    θ_{lo,hi} = [m_B m_A ∓ c√(v_B m_A² + v_A m_B² − c² v_A v_B)]/(m_A² − c² v_A), lift = θ − 1
    (sign-flipped for a negative baseline). θ = 1 lies inside iff (m_B − m_A)² ≤ c²(v_A + v_B),
    so the interval excludes 0 exactly when the unpooled test at the same c rejects.
    """
    if m_a == 0:
        return FiellerInterval(-math.inf, math.inf, math.inf)
    g = crit * crit * var_a / (m_a * m_a)
    if g >= 1.0:
        return FiellerInterval(-math.inf, math.inf, g)
    root = math.sqrt(var_b * m_a * m_a + var_a * m_b * m_b - crit * crit * var_a * var_b)
    denominator = m_a * m_a - crit * crit * var_a
    theta_lo = (m_b * m_a - crit * root) / denominator
    theta_hi = (m_b * m_a + crit * root) / denominator
    if m_a > 0:
        return FiellerInterval(theta_lo - 1.0, theta_hi - 1.0, g)
    return FiellerInterval(1.0 - theta_hi, 1.0 - theta_lo, g)


def _relative(
    baseline: ArmSummary,
    current: ArmSummary,
    df: float | None,
    *,
    alpha: float,
    relative_ci: RelativeCI,
) -> tuple[Interval | None, float | None, tuple[str, ...]]:
    """Delta-method relative effect (A1) with a delta or Fieller (A4) CI."""
    m_a, m_b = baseline.estimate, current.estimate
    if m_a == 0:
        return None, None, (BASELINE_ZERO,)
    va, vb = baseline.variance / baseline.n, current.variance / current.n
    estimate = (m_b - m_a) / abs(m_a)
    se = math.sqrt(vb / m_a**2 + va * m_b**2 / m_a**4)
    p = _p_value(estimate / se, df) if se > 0 else None
    if relative_ci == "delta":
        return Interval(estimate, se, *_bounds(estimate, se, alpha, df)), p, ()
    if relative_ci != "fieller":
        raise ValueError(f"unknown relative_ci {relative_ci!r}")
    fieller = fieller_lift_interval(m_a, va, m_b, vb, _crit(1.0 - alpha / 2.0, df))
    warnings: tuple[str, ...] = ()
    if fieller.g >= 1.0:
        warnings = (f"Fieller interval unbounded (g = {fieller.g:.3g} ≥ 1): baseline too noisy",)
    return Interval(estimate, se, fieller.low, fieller.high), p, warnings


def _identical_constant_arms(
    a: ArmSummary, b: ArmSummary, described: str
) -> tuple[str, ...] | None:
    """The warning that replaces a test when both arms hold one and the same value in every
    unit (0 % in both arms, say): the difference is exactly 0 with no variance, p = 1."""
    if a.n > 0 and b.n > 0 and a.variance == 0 and b.variance == 0 and a.estimate == b.estimate:
        return (
            f"{described}: the difference is exactly 0 with no variance, so p = 1 without a test",
        )
    return None


def compare_summaries(
    baseline: ArmSummary,
    current: ArmSummary,
    *,
    alpha: float = 0.05,
    relative_ci: RelativeCI = "delta",
    test: str = "welch_t",
) -> Comparison:
    """Welch t on two arm summaries (A1).

    Δ = m_B − m_A, SE² = s²_A/n_A + s²_B/n_B, Welch–Satterthwaite df, p and CI from Student's t;
    relative (m_B − m_A)/|m_A| with the delta-method SE and a delta or Fieller CI. The p-value
    is the absolute test's. The same value in every unit of both arms → no test, p = 1 (test
    `identical_arms`); else n ≤ 1 or s² ≤ 0 in an arm → no test ("zero/negative variance");
    m_A = 0 → no relative effect ("baseline is 0: relative change undefined").
    """
    _check_alpha(alpha)
    m_a, m_b = _estimate_or_none(baseline), _estimate_or_none(current)
    if m_a is None or m_b is None:
        return Comparison(test, m_a, m_b, None, None, None, None, (NO_UNITS,))
    identical = _identical_constant_arms(baseline, current, f"both arms are {m_a:g} in every unit")
    if identical is not None:  # no interval can be estimated from no variance
        return Comparison(IDENTICAL_ARMS, m_a, m_b, None, None, 1.0, None, identical)
    if baseline.n <= 1 or current.n <= 1 or not baseline.variance > 0 or not current.variance > 0:
        return Comparison(test, m_a, m_b, None, None, None, None, (ZERO_VARIANCE,))
    va, vb = baseline.variance / baseline.n, current.variance / current.n
    se = math.sqrt(va + vb)
    if not se > 0:
        return Comparison(test, m_a, m_b, None, None, None, None, (ZERO_VARIANCE,))
    df = welch_df(baseline.variance, baseline.n, current.variance, current.n)
    delta = m_b - m_a
    statistic = delta / se
    absolute = Interval(delta, se, *_bounds(delta, se, alpha, df))
    relative, relative_p, warnings = _relative(
        baseline, current, df, alpha=alpha, relative_ci=relative_ci
    )
    return Comparison(
        test=test,
        baseline=m_a,
        current=m_b,
        absolute=absolute,
        relative=relative,
        p_value=_p_value(statistic, df),
        df=df,
        warnings=warnings,
        statistic=statistic,
        relative_p_value=relative_p,
    )


def one_sample(
    summary: ArmSummary,
    target: float,
    alpha: float = 0.05,
) -> Comparison:
    """One-sample t of the current arm against a constant target (contract values).

    Δ = m − target, SE = √(s²/n), df = n − 1; relative (m − target)/|target| with SE/|target|
    (the target has no sampling error, so the relative CI is the absolute one rescaled).
    """
    _check_alpha(alpha)
    m = _estimate_or_none(summary)
    if m is None:
        return Comparison("one_sample_t", target, None, None, None, None, None, (NO_UNITS,))
    if summary.n <= 1 or not summary.variance > 0:
        return Comparison("one_sample_t", target, m, None, None, None, None, (ZERO_VARIANCE,))
    se = math.sqrt(summary.variance / summary.n)
    df = float(summary.n - 1)
    delta = m - target
    statistic = delta / se
    p = _p_value(statistic, df)
    absolute = Interval(delta, se, *_bounds(delta, se, alpha, df))
    relative: Interval | None = None
    warnings: tuple[str, ...] = ()
    if target == 0:
        warnings = (BASELINE_ZERO,)
    else:
        scale = abs(target)
        relative = Interval(delta / scale, se / scale, absolute.low / scale, absolute.high / scale)
    return Comparison(
        "one_sample_t",
        target,
        m,
        absolute,
        relative,
        p,
        df,
        warnings,
        statistic=statistic,
        relative_p_value=p if relative is not None else None,
    )
