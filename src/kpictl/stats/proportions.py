"""Two proportions: Welch's t on p(1−p), and for small cells an exact test (Boschloo or
Fisher) with Newcombe's interval (docs/methods.md "Proportions").

scipy's `boschloo_exact` reads the table's columns as the two binomial samples;
`proportions_exact_test` builds the table that way.
"""

from __future__ import annotations

import math
from typing import Literal

from kpictl.stats.core import (
    BASELINE_ZERO,
    IDENTICAL_ARMS,
    ZERO_VARIANCE,
    ArmSummary,
    Comparison,
    Interval,
    RelativeCI,
    _add_warnings,
    _check_alpha,
    _z,
)
from kpictl.stats.means import _identical_constant_arms, compare_summaries

# Boschloo's test costs ~(n_A+1)(n_B+1) tables × 32 nuisance points: measured with scipy 1.x on
# this project's CI machine, 10,000 tables ≈ 0.05–0.1 s, 40,000 ≈ 0.3 s, 200,000 ≈ 7 s (and
# 1001 × 241 tables, a cohort of ~1,000 units against ~240, took 8.5 s each). Above this bound
# Fisher's exact test (conditional, milliseconds at any size) runs instead.
BOSCHLOO_MAX_TABLES = 10_000


def proportion_summary(successes: float, n: int) -> ArmSummary:
    """Proportion arm: m = x/n, per-unit variance s² = m(1−m) (A2; not n/(n−1)·m(1−m))."""
    if n <= 0:
        return ArmSummary(math.nan, 0.0, 0)
    m = successes / n
    return ArmSummary(m, m * (1.0 - m), int(n))


def wilson_interval(x: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for one proportion (the per-arm piece of Newcombe's method 10)."""
    z = _z(1.0 - alpha / 2.0)
    p = x / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
    return centre - half, centre + half


def newcombe_interval(
    x_a: float, n_a: int, x_b: float, n_b: int, alpha: float = 0.05
) -> tuple[float, float]:
    """Newcombe hybrid-score CI (method 10) for p_B − p_A from per-arm Wilson intervals (A2)."""
    p_a, p_b = x_a / n_a, x_b / n_b
    l_a, u_a = wilson_interval(x_a, n_a, alpha)
    l_b, u_b = wilson_interval(x_b, n_b, alpha)
    delta = p_b - p_a
    low = delta - math.sqrt((p_b - l_b) ** 2 + (u_a - p_a) ** 2)
    high = delta + math.sqrt((u_b - p_b) ** 2 + (p_a - l_a) ** 2)
    return low, high


def proportions_exact_test(
    x_a: int, n_a: int, x_b: int, n_b: int, *, method: Literal["boschloo", "fisher"] = "boschloo"
) -> float:
    """Two-sided exact p-value for p_A = p_B (A2): Boschloo (unconditional) or Fisher.

    scipy's `boschloo_exact` takes the two binomial samples as the table's COLUMNS, so the
    table passed is [[x_A, x_B], [n_A − x_A, n_B − x_B]] (Fisher is orientation-free).
    """
    from scipy import stats as scipy_stats

    table = [[x_a, x_b], [n_a - x_a, n_b - x_b]]
    if method == "boschloo":
        return float(scipy_stats.boschloo_exact(table, alternative="two-sided").pvalue)
    if method == "fisher":
        return float(scipy_stats.fisher_exact(table, alternative="two-sided").pvalue)
    raise ValueError(f"unknown exact method {method!r}")


def _as_count(x: float) -> int | None:
    rounded = round(x)
    return int(rounded) if abs(x - rounded) < 1e-9 else None


def needs_exact_test(x_a: float, n_a: int, x_b: float, n_b: int) -> bool:
    """Any cell < 10, any expected cell < 5, or any arm with n < 30 (A2)."""
    cells = (x_a, n_a - x_a, x_b, n_b - x_b)
    total, successes = n_a + n_b, x_a + x_b
    expected = (
        n_a * successes / total,
        n_a * (total - successes) / total,
        n_b * successes / total,
        n_b * (total - successes) / total,
    )
    return min(cells) < 10 or min(expected) < 5 or min(n_a, n_b) < 30


def exact_test_for(n_a: int, n_b: int) -> Literal["boschloo", "fisher"]:
    """The exact test chosen by cost: Boschloo (more powerful, unconditional) while its
    (n_A+1)(n_B+1) tables are few enough to be quick, else Fisher."""
    return "boschloo" if (n_a + 1) * (n_b + 1) <= BOSCHLOO_MAX_TABLES else "fisher"


def compare_proportions(
    x_a: float,
    n_a: int,
    x_b: float,
    n_b: int,
    *,
    alpha: float = 0.05,
    relative_ci: RelativeCI = "delta",
) -> Comparison:
    """Two proportions (A2): A1 on s² = p(1−p); small samples switch to an exact test.

    When both arms are 0 % (or both 100 %) no test runs: the difference is exactly 0 with no
    variance, p = 1, test `identical_arms`, the CI is Newcombe's, and a warning says so.
    Otherwise, when `needs_exact_test`: the p-value is Boschloo's where that is quick
    (`exact_test_for`), else Fisher's (also if Boschloo fails); the test name and a warning say
    which ran. The absolute CI is Newcombe's hybrid score interval (its `se` is the unpooled
    Wald SE, for reference), df is None. The relative effect stays the A1 one (delta or
    Fieller).
    """
    _check_alpha(alpha)
    if not (0 <= x_a <= max(n_a, 0) and 0 <= x_b <= max(n_b, 0)):
        raise ValueError(f"successes must lie in [0, n]: got {x_a}/{n_a} and {x_b}/{n_b}")
    a, b = proportion_summary(x_a, n_a), proportion_summary(x_b, n_b)
    base = compare_summaries(a, b, alpha=alpha, relative_ci=relative_ci, test="proportion_t")
    if n_a <= 0 or n_b <= 0:
        return base
    if not needs_exact_test(x_a, n_a, x_b, n_b):
        return base
    c_a, c_b = _as_count(x_a), _as_count(x_b)
    if c_a is None or c_b is None:
        return _add_warnings(base, ("small cells but non-integer counts: no exact test",))
    low, high = newcombe_interval(c_a, n_a, c_b, n_b, alpha)
    delta = b.estimate - a.estimate
    se = math.sqrt(a.variance / n_a + b.variance / n_b)
    identical = _identical_constant_arms(
        a, b, f"both arms are {a.estimate:.0%} ({c_a} of {n_a:,} and {c_b} of {n_b:,})"
    )
    if identical is not None:
        return Comparison(
            IDENTICAL_ARMS,
            a.estimate,
            b.estimate,
            Interval(delta, se, low, high),
            base.relative,
            1.0,
            None,
            identical,
        )
    method = exact_test_for(n_a, n_b)
    try:
        p = proportions_exact_test(c_a, n_a, c_b, n_b, method=method)
    except (ValueError, FloatingPointError, ArithmeticError):
        method = "fisher"
        p = proportions_exact_test(c_a, n_a, c_b, n_b, method=method)
    why = (
        ""
        if method == "boschloo"
        else f" (Boschloo's would weigh {(n_a + 1) * (n_b + 1):,} tables, over the "
        f"{BOSCHLOO_MAX_TABLES:,} that run quickly)"
    )
    label = "Boschloo" if method == "boschloo" else "Fisher"
    warnings = [
        f"small cells (a cell < 10, an expected cell < 5 or n < 30): exact {label} test "
        f"p-value{why} and Newcombe CI"
    ]
    relative = base.relative
    if a.estimate == 0:
        warnings.append(BASELINE_ZERO)
    elif relative is None:
        warnings.append(f"{ZERO_VARIANCE}: no relative CI")
    warnings.extend(w for w in base.warnings if w not in (ZERO_VARIANCE, BASELINE_ZERO))
    return Comparison(
        test=f"{method}_exact",
        baseline=a.estimate,
        current=b.estimate,
        absolute=Interval(delta, se, low, high),
        relative=relative,
        p_value=p,
        df=None,
        warnings=tuple(warnings),
        relative_p_value=base.relative_p_value,
    )
