"""Always-valid confidence sequences and p-values (docs/methods.md "Sequential testing")."""

from __future__ import annotations

import math
from dataclasses import replace

from kpictl.stats.core import Comparison, Interval, _check_alpha

SEQUENTIAL_N_STAR = 5000.0  # GrowthBook's default tuning parameter N* (Eppo: 10 000)


def sequential_rho2(alpha: float = 0.05, n_star: float = SEQUENTIAL_N_STAR) -> float:
    """Mixing parameter ρ² = (−2 ln α + ln(1 − 2 ln α))/N* (A9; gbstats `sequential_rho`
    squared, Waudby-Smith et al. eq. 161). N* is the planned total number of units (both arms)
    at which the confidence sequence is tightest."""
    _check_alpha(alpha)
    if not n_star > 0:
        raise ValueError(f"the sequential tuning parameter N* must be positive, got {n_star}")
    log_a = math.log(alpha)
    return (-2.0 * log_a + math.log(1.0 - 2.0 * log_a)) / n_star


def sequential_multiplier(
    n: float, *, n_star: float = SEQUENTIAL_N_STAR, alpha: float = 0.05
) -> float:
    """Half-width of the confidence sequence in units of the SE after n units in total (A9):
    √((nρ²+1)/(nρ²)·ln((nρ²+1)/α²)) (gbstats `sequential_interval_halfwidth`, Waudby-Smith et
    al. eq. 9). This is the fixed-horizon z it replaces (vector S1: 3.0385 at N* = 5000 vs 1.96).
    """
    _check_alpha(alpha)
    if not n > 0:
        raise ValueError(f"the sequential multiplier needs n > 0 units, got {n}")
    x = n * sequential_rho2(alpha, n_star)
    return math.sqrt((x + 1.0) / x * (math.log1p(x) - 2.0 * math.log(alpha)))


def sequential_halfwidth(
    se: float, n: float, *, n_star: float = SEQUENTIAL_N_STAR, alpha: float = 0.05
) -> float:
    """Half-width SE·`sequential_multiplier` of the always-valid CI after n units (A9)."""
    return se * sequential_multiplier(n, n_star=n_star, alpha=alpha)


def sequential_p_value(
    estimate: float,
    se: float,
    n: float,
    *,
    n_star: float = SEQUENTIAL_N_STAR,
    alpha: float = 0.05,
) -> float:
    """Always-valid two-sided p-value of Δ̂ with standard error SE after n units in total (A9):
    min(1, √(nρ²+1)·exp(−nρ²/(2(nρ²+1))·(Δ̂/SE)²)) = 1/e-value (gbstats
    `SequentialTwoSidedTTest.p_value`; the mSPRT of Johari et al.). It is < α exactly when the
    confidence sequence excludes 0. nan when SE ≤ 0."""
    _check_alpha(alpha)
    if not se > 0 or not math.isfinite(estimate):
        return math.nan
    z = estimate / se
    x = n * sequential_rho2(alpha, n_star)
    log_p = 0.5 * math.log1p(x) - x / (2.0 * (x + 1.0)) * z * z
    return math.exp(min(0.0, log_p))


def _sequential_interval(interval: Interval, n: float, *, n_star: float, alpha: float) -> Interval:
    half = sequential_halfwidth(interval.se, n, n_star=n_star, alpha=alpha)
    return Interval(
        interval.estimate, interval.se, interval.estimate - half, interval.estimate + half
    )


def sequential_comparison(
    comparison: Comparison,
    n: float,
    *,
    n_star: float = SEQUENTIAL_N_STAR,
    alpha: float = 0.05,
) -> Comparison:
    """Turn a fixed-horizon `Comparison` into an always-valid one (A9).

    n = n_A + n_B units. The absolute and relative CIs become confidence sequences Δ̂ ±
    SE·`sequential_multiplier` (the relative one around the delta-method estimate and SE, even
    when the fixed-horizon CI was Fieller's); `p_value` (absolute, kpictl rule) and
    `relative_p_value` become `sequential_p_value`s; df becomes None (normal theory), the test
    name gets "+sequential". Comparisons without an absolute effect (degenerate input) come
    back unchanged.
    """
    _check_alpha(alpha)
    if comparison.absolute is None or not comparison.absolute.se > 0:
        return comparison

    def p_of(interval: Interval) -> float:
        return sequential_p_value(interval.estimate, interval.se, n, n_star=n_star, alpha=alpha)

    absolute = _sequential_interval(comparison.absolute, n, n_star=n_star, alpha=alpha)
    relative = comparison.relative
    relative_p: float | None = None
    if relative is not None and relative.se > 0:
        relative = _sequential_interval(relative, n, n_star=n_star, alpha=alpha)
        relative_p = p_of(relative)
    return replace(
        comparison,
        test=f"{comparison.test}+sequential",
        absolute=absolute,
        relative=relative,
        p_value=p_of(absolute),
        df=None,
        relative_p_value=relative_p,
    )
