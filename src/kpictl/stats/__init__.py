"""Statistics for `kpictl compare`: every scipy call of kpictl lives here.

The specification is `statistics.md` (sections A0–A13); each function cites its section. The
functions are pure: sufficient statistics or numpy arrays in, frozen dataclasses out; they never
print. Degenerate inputs do not raise: they come back as a `Comparison` whose p-value is None
and whose `warnings` say why (wording mirrors gbstats: "zero/negative variance", "baseline is
0: relative change undefined"). Only misuse by the caller (unknown method, α outside (0, 1),
arrays of different lengths) raises `ValueError`.

One engine for every mean-like KPI (A1): each arm is reduced to an `ArmSummary` (estimate m,
per-unit variance s², n) and two arms are compared with Welch's t and Welch–Satterthwaite df.
The p-value is always the one of the absolute-difference test (kpictl rule, A1); the relative
CI is the delta-method one, or Fieller's with `relative_ci="fieller"`, which agrees with that
p-value by construction.

Fields beyond the brief, on `Comparison`:
    statistic          the test statistic (t, z, or the Wilcoxon W), None for exact tests;
    relative_p_value   the delta-method relative test's p-value (gbstats parity only; never the
                       p-value kpictl reports, which is `p_value`).

Other public names: `RatioSums` (per-arm sums of a ratio KPI, A4), `QuantileArm` (one arm of a
percentile KPI, A5), `FiellerInterval`/`fieller_lift_interval` (A4),
`newcombe_interval`/`wilson_interval`/`proportions_exact_test` (A2),
`BootstrapInterval`/`bootstrap_comparison`/`paired_bootstrap_comparison` (A5, formula and
pass^k KPIs), `mde_mean` (A12), `sample_ratio_mismatch` (A7), `adjust_p_values` (A8),
`cochran_q` (heterogeneity), the paired tests `mcnemar_comparison`/`paired_t`/
`wilcoxon_signed_rank` (A13), and the review loop's `cohens_kappa`, `stratified_proportion`,
`stratified_review` and `round_trend`.

Optional modes, each on sufficient statistics:
    A9 sequential   `sequential_rho2`, `sequential_multiplier`, `sequential_halfwidth`,
                    `sequential_p_value`, `sequential_comparison` (a `Comparison` made
                    always-valid, two-sided);
    A10 CUPED       `CupedSums`, `cuped_theta`, `cuped_summary`, `compare_cuped` (means and
                    proportions).

Every test is two-sided: no command asks for a one-sided one.

Conventions pinned here: sample moments use n−1 (ratio and mean KPIs), proportions use
s² = p(1−p) (A2, for gbstats parity); percentile point estimates are the inverted-CDF order
statistic X_(⌈nν⌉) and their tests use z (vector C5). Fieller's set is reported as (−∞, ∞)
with a warning when g ≥ 1 (it is then unbounded, possibly two rays), so only for g < 1 does it
agree with the p-value exactly. scipy's `boschloo_exact` reads the table's columns as the two
binomial samples; `proportions_exact_test` builds the table that way (statistics.md S3 applies
it to rows = arms: its 0.006965 is the p-value of 3/12 vs 7/8, not of 3/10 vs 9/10).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

RelativeCI = Literal["delta", "fieller"]
PAdjust = Literal["holm", "bh", "none"]
FloatArray = npt.NDArray[np.float64]
UnitStatistic = Callable[[FloatArray], FloatArray]

ZERO_VARIANCE = "zero/negative variance"
BASELINE_ZERO = "baseline is 0: relative change undefined"
NO_UNITS = "no units in one of the arms"
G_WARN = 0.05  # denominator-stability threshold for a warning (A4)
# Boschloo's test costs ~(n_A+1)(n_B+1) tables × 32 nuisance points: measured with scipy 1.x on
# this project's CI machine, 10,000 tables ≈ 0.05–0.1 s, 40,000 ≈ 0.3 s, 200,000 ≈ 7 s (and
# 1001 × 241 tables, a cohort of ~1,000 units against ~240, took 8.5 s each). Above this bound
# Fisher's exact test (conditional, milliseconds at any size) runs instead.
BOSCHLOO_MAX_TABLES = 10_000
IDENTICAL_ARMS = "identical_arms"  # the test name when no test is needed (p = 1)
_WALSH_MAX_PAIRS = 5_000  # Hodges–Lehmann needs n(n+1)/2 Walsh averages in memory
_EXACT_WILCOXON_MAX = 50


# ----------------------------------------------------------------------------------------------
# Result types
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmSummary:
    """One arm reduced to (estimate m, per-unit variance s², n units) (A1)."""

    estimate: float
    variance: float
    n: int


@dataclass(frozen=True)
class Interval:
    """An effect with its standard error and confidence interval (±inf for one-sided bounds)."""

    estimate: float
    se: float
    low: float
    high: float


@dataclass(frozen=True)
class BootstrapInterval(Interval):
    """A cluster-bootstrap interval: percentile CI, SE = SD of the resampled effects (A5).

    `dropped` counts resamples whose statistic was not finite (e.g. a ratio whose resampled
    denominator sums to 0); they are left out of the SE and the CI.
    """

    resamples: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class Comparison:
    """What `compare` reports for one KPI × cohort (A1); see the module docstring for fields."""

    test: str
    baseline: float | None
    current: float | None
    absolute: Interval | None
    relative: Interval | None  # None when the baseline is 0
    p_value: float | None  # ALWAYS from the absolute test (kpictl rule, A1)
    df: float | None
    warnings: tuple[str, ...] = ()
    design_effect: float | None = None
    naive_se: float | None = None
    statistic: float | None = None
    relative_p_value: float | None = None


class RatioSums(NamedTuple):
    """Per-arm sufficient statistics of a ratio KPI ΣM/ΣD over n units (A4).

    `event_sq` (optional) is Σ y² over the events when D counts events and M sums an event
    value y (tokens per turn): it gives the naive, events-independent SE and the design effect
    (A6). A plain 6-tuple (n, m_sum, m_sq, d_sum, d_sq, md_sum) is accepted wherever a
    `RatioSums` is.
    """

    n: int
    m_sum: float
    m_sq: float
    d_sum: float
    d_sq: float
    md_sum: float
    event_sq: float | None = None


@dataclass(frozen=True)
class FiellerInterval:
    """Fieller CI for the relative lift (m_B − m_A)/|m_A| and its g = c²·Var(m_A)/m_A² (A4).

    When g ≥ 1 the baseline is not distinguishable from 0 and the set is unbounded: (−inf, inf).
    """

    low: float
    high: float
    g: float


@dataclass(frozen=True)
class QuantileArm:
    """One arm of a percentile KPI (A5).

    n counts the values (events), n_units the clusters (= n without units). lower_rank/upper_rank
    are the outer-CI ranks L, U (1-based) and lower/upper the order statistics X_(L), X_(U).
    se_iid = (X_(U) − X_(L))/(2z); se = se_iid·√design_effect (Yao–Li–Lu cluster adjustment).
    `indicator` holds the sums of S_i = #{values of unit i ≤ Q̂} over N_i values of unit i.
    When the guards fail, se/se_iid are nan and `warnings` says why.
    """

    nu: float
    n: int
    n_units: int
    estimate: float
    se: float
    se_iid: float
    design_effect: float
    lower_rank: int | None = None
    upper_rank: int | None = None
    lower: float | None = None
    upper: float | None = None
    indicator: RatioSums | None = None
    warnings: tuple[str, ...] = ()


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _z(q: float) -> float:
    return float(special.ndtri(q))


def _crit(q: float, df: float | None) -> float:
    """Quantile q of Student's t with df (normal when df is None or infinite)."""
    if df is None or not math.isfinite(df):
        return _z(q)
    return float(special.stdtrit(df, q))


def _cdf(x: float, df: float | None) -> float:
    if df is None or not math.isfinite(df):
        return float(special.ndtr(x))
    return float(special.stdtr(df, x))


def _p_value(statistic: float, df: float | None) -> float:
    """Two-sided p-value of a t (or z when df is None) statistic (A1)."""
    return 2.0 * _cdf(-abs(statistic), df)


def _bounds(estimate: float, se: float, alpha: float, df: float | None) -> tuple[float, float]:
    """Two-sided CI = Δ ± t_{1−α/2,ν}·SE (A1)."""
    half = _crit(1.0 - alpha / 2.0, df) * se
    return estimate - half, estimate + half


def _estimate_or_none(summary: ArmSummary) -> float | None:
    return summary.estimate if summary.n > 0 and math.isfinite(summary.estimate) else None


def quantile_label(nu: float) -> str:
    """`p95` for ν = 0.95, `p99.9` for ν = 0.999."""
    return f"p{round(nu * 100, 6):g}"


def welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch–Satterthwaite df from per-unit variances s² and sizes n (A1)."""
    va, vb = var_a / n_a, var_b / n_b
    return (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))


# ----------------------------------------------------------------------------------------------
# Arm summaries (A2, A3, A4)
# ----------------------------------------------------------------------------------------------


def proportion_summary(successes: float, n: int) -> ArmSummary:
    """Proportion arm: m = x/n, per-unit variance s² = m(1−m) (A2; not n/(n−1)·m(1−m))."""
    if n <= 0:
        return ArmSummary(math.nan, 0.0, 0)
    m = successes / n
    return ArmSummary(m, m * (1.0 - m), int(n))


def mean_summary(n: int, total: float, total_sq: float) -> ArmSummary:
    """Mean arm: m = Σy/n, s² = (Σy² − (Σy)²/n)/(n−1) (A3); s² = 0 when n ≤ 1."""
    if n <= 0:
        return ArmSummary(math.nan, 0.0, 0)
    m = total / n
    variance = (total_sq - total * total / n) / (n - 1) if n > 1 else 0.0
    # equal values cancel to a rounding residue that may be below 0: the variance is 0
    return ArmSummary(m, max(variance, 0.0), int(n))


def ratio_summary(
    n: int,
    m_sum: float,
    m_sq: float,
    d_sum: float,
    d_sq: float,
    md_sum: float,
) -> ArmSummary:
    """Ratio arm R = ΣM/ΣD with the delta-method per-unit variance (A4).

    s²_R = [s²_M − 2R·s_MD + R²·s²_D]/D̄² with moments divided by n − 1 (with n it would be the
    cluster-robust CR0 variance, A6). ΣD = 0 → estimate nan.
    """
    if n <= 0 or d_sum == 0:
        return ArmSummary(math.nan, 0.0, max(int(n), 0))
    ratio = m_sum / d_sum
    if n <= 1:
        return ArmSummary(ratio, 0.0, int(n))
    var_m = (m_sq - m_sum * m_sum / n) / (n - 1)
    var_d = (d_sq - d_sum * d_sum / n) / (n - 1)
    cov_md = (md_sum - m_sum * d_sum / n) / (n - 1)
    d_mean = d_sum / n
    variance = (var_m - 2.0 * ratio * cov_md + ratio * ratio * var_d) / (d_mean * d_mean)
    return ArmSummary(ratio, max(variance, 0.0), int(n))  # a rounding residue below 0 is 0


def denominator_stability(n: int, d_sum: float, d_sq: float, alpha: float = 0.05) -> float:
    """g = z²·Var(D̄)/D̄² with Var(D̄) = s²_D/n, z = z_{1−α/2} (A4).

    Warn at g > 0.05, refuse the CI at g ≥ 1. inf when ΣD = 0; nan when n ≤ 1.
    """
    _check_alpha(alpha)
    if d_sum == 0:
        return math.inf
    if n <= 1:
        return math.nan
    var_d = (d_sq - d_sum * d_sum / n) / (n - 1)
    d_mean = d_sum / n
    return _z(1.0 - alpha / 2.0) ** 2 * (var_d / n) / (d_mean * d_mean)


# ----------------------------------------------------------------------------------------------
# Two-arm comparison (A1) and Fieller (A4)
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Proportions (A2)
# ----------------------------------------------------------------------------------------------


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


def _add_warnings(comparison: Comparison, extra: Sequence[str]) -> Comparison:
    return replace(comparison, warnings=(*comparison.warnings, *extra))


# ----------------------------------------------------------------------------------------------
# Ratios (A4, A6)
# ----------------------------------------------------------------------------------------------


def _ratio_sums(sums: RatioSums | Sequence[Any]) -> RatioSums:
    return sums if isinstance(sums, RatioSums) else RatioSums(*sums)


def compare_ratio(
    baseline: RatioSums | Sequence[Any],
    current: RatioSums | Sequence[Any],
    *,
    alpha: float = 0.05,
    relative_ci: RelativeCI = "delta",
) -> Comparison:
    """Ratio KPI ΣM/ΣD per arm, delta method with n−1 moments, then A1 (A4).

    Denominator diagnostic g (`denominator_stability`) per arm: warning at g > 0.05; at g ≥ 1
    or ΣD = 0 the CI and p-value are refused (None) with a warning. With `event_sq` in both
    arms, `naive_se` (events treated as independent) and `design_effect` = SE²/naive SE² are
    filled (A6).
    """
    _check_alpha(alpha)
    sums = {"baseline": _ratio_sums(baseline), "current": _ratio_sums(current)}
    summaries = {k: ratio_summary(*v[:6]) for k, v in sums.items()}
    estimates = {k: _estimate_or_none(s) for k, s in summaries.items()}
    refusals: list[str] = []
    warnings: list[str] = []
    for arm, s in sums.items():
        if s.n <= 0:
            refusals.append(f"no units in the {arm}")
            continue
        if s.d_sum == 0:
            refusals.append(f"denominator sum is 0 in the {arm}: ratio undefined")
            continue
        g = denominator_stability(s.n, s.d_sum, s.d_sq, alpha)
        if g >= 1.0:
            refusals.append(f"denominator too unstable in the {arm} (g = {g:.3g} ≥ 1): CI refused")
        elif g > G_WARN:
            warnings.append(
                f"unstable denominator in the {arm} (g = {g:.3g} > {G_WARN}): CI may be unreliable"
            )
    if refusals:
        return Comparison(
            "delta_ratio",
            estimates["baseline"],
            estimates["current"],
            None,
            None,
            None,
            None,
            tuple(refusals + warnings),
        )
    result = compare_summaries(
        summaries["baseline"],
        summaries["current"],
        alpha=alpha,
        relative_ci=relative_ci,
        test="delta_ratio",
    )
    naive = _naive_event_se(sums["baseline"], sums["current"])
    deff = None
    if naive is not None and result.absolute is not None:
        deff = (result.absolute.se / naive) ** 2
    return replace(
        result,
        warnings=(*result.warnings, *warnings),
        naive_se=naive if result.absolute is not None else None,
        design_effect=deff,
    )


def _naive_event_se(a: RatioSums, b: RatioSums) -> float | None:
    """Welch SE treating events as independent (the wrong, naive SE shown for contrast, A6)."""
    total = 0.0
    for s in (a, b):
        if s.event_sq is None or s.d_sum <= 1:
            return None
        variance = (s.event_sq - s.m_sum * s.m_sum / s.d_sum) / (s.d_sum - 1)
        total += variance / s.d_sum
    return math.sqrt(total) if total > 0 else None


# ----------------------------------------------------------------------------------------------
# Percentiles (A5)
# ----------------------------------------------------------------------------------------------


def _not_enough(nu: float, reason: str) -> str:
    return f"not enough data for {quantile_label(nu)}: {reason}"


def _quantile_guard(n: int, nu: float, z: float) -> str | None:
    need = max(z * z * nu / (1.0 - nu), z * z * (1.0 - nu) / nu)
    if n <= need:
        return _not_enough(nu, f"need more than {math.floor(need)} values (have {n})")
    return None


def quantile_arm(
    values: npt.ArrayLike,
    units: npt.ArrayLike | None,
    nu: float,
    alpha: float = 0.05,
) -> QuantileArm:
    """One percentile arm: inverted-CDF estimate, outer CI, cluster-adjusted SE (A5).

    Q̂ = X_(⌈nν⌉); ranks L = ⌊nν − z√(nν(1−ν))⌋, U = ⌈nν + z√(nν(1−ν))⌉; SE_iid =
    (X_(U) − X_(L))/(2z). With `units` (one unit id per value) the Yao–Li–Lu adjustment
    multiplies the variance by deff = σ²_I,c/σ²_I,iid, where σ²_I,c is the A4 delta variance of
    ΣS/ΣN over units divided by K and σ²_I,iid = ν(1−ν)/n (gbstats `QuantileClusteredStatistic`).
    Guards: n > z²ν/(1−ν) (and z²(1−ν)/ν), X_(U) > X_(L), K > 1. Non-finite values are dropped.
    """
    _check_alpha(alpha)
    if not 0.0 < nu < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {nu}")
    x = np.asarray(values, dtype=np.float64).ravel()
    unit_ids = None if units is None else _unit_ids(units)
    if unit_ids is not None and unit_ids.shape != x.shape:
        raise ValueError("values and units must have the same length")
    warnings: list[str] = []
    keep = np.isfinite(x)
    if not keep.all():
        warnings.append(f"dropped {int((~keep).sum())} missing or non-finite values")
        x = x[keep]
        unit_ids = None if unit_ids is None else unit_ids[keep]
    n = int(x.size)
    nan = math.nan
    if n == 0:
        return QuantileArm(
            nu, 0, 0, nan, nan, nan, nan, warnings=(*warnings, _not_enough(nu, "no values"))
        )
    xs = np.sort(x, kind="stable")
    estimate = float(xs[max(1, math.ceil(n * nu)) - 1])
    if unit_ids is None:
        codes = np.arange(n)
        k_units = n
    else:
        _, codes = np.unique(unit_ids, return_inverse=True)
        codes = codes.ravel()
        k_units = int(codes.max()) + 1
    z = _z(1.0 - alpha / 2.0)
    centre, spread = n * nu, z * math.sqrt(n * nu * (1.0 - nu))
    lower_rank, upper_rank = math.floor(centre - spread), math.ceil(centre + spread)
    base = QuantileArm(nu, n, k_units, estimate, nan, nan, nan)
    guard = _quantile_guard(n, nu, z)
    if guard is None and (lower_rank < 1 or upper_rank > n):
        guard = _not_enough(nu, "outer CI ranks outside the data")
    if guard is not None:
        return _replace_arm(base, warnings=(*warnings, guard))
    lower, upper = float(xs[lower_rank - 1]), float(xs[upper_rank - 1])
    base = _replace_arm(
        base, lower_rank=lower_rank, upper_rank=upper_rank, lower=lower, upper=upper
    )
    if not upper > lower:
        return _replace_arm(
            base, warnings=(*warnings, _not_enough(nu, "ties at the quantile (X_(U) = X_(L))"))
        )
    se_iid = (upper - lower) / (2.0 * z)
    if unit_ids is None:
        return _replace_arm(
            base, se=se_iid, se_iid=se_iid, design_effect=1.0, warnings=tuple(warnings)
        )
    below = (x <= estimate).astype(np.float64)
    s = np.bincount(codes, weights=below, minlength=k_units)
    m = np.bincount(codes, minlength=k_units).astype(np.float64)
    indicator = RatioSums(
        k_units,
        float(s.sum()),
        float(s @ s),
        float(m.sum()),
        float(m @ m),
        float(s @ m),
    )
    base = _replace_arm(base, se_iid=se_iid, indicator=indicator)
    if k_units <= 1:
        return _replace_arm(
            base, warnings=(*warnings, _not_enough(nu, "a clustered SE needs more than 1 unit"))
        )
    var_cluster = ratio_summary(*indicator[:6]).variance / k_units
    deff = var_cluster / (nu * (1.0 - nu) / n)
    if not deff > 0:
        return _replace_arm(
            base, warnings=(*warnings, _not_enough(nu, "no variation between units"))
        )
    return _replace_arm(
        base, se=se_iid * math.sqrt(deff), design_effect=deff, warnings=tuple(warnings)
    )


def _unit_ids(units: npt.ArrayLike) -> npt.NDArray[Any]:
    """Unit ids as a sortable 1-d array (object arrays, e.g. strings with None, become str)."""
    ids = np.asarray(units).ravel()
    return ids.astype(str) if ids.dtype == object else ids


def _replace_arm(arm: QuantileArm, **changes: Any) -> QuantileArm:
    return replace(arm, **changes)


def compare_quantiles(
    baseline: QuantileArm, current: QuantileArm, *, alpha: float = 0.05
) -> Comparison:
    """Difference of two percentiles (A5): Δ = Q̂_B − Q̂_A, SE = √(SE_A² + SE_B²), normal CI and
    p (z reproduces vector C5), relative by the A1 delta formula with Var(Q̂_g) = SE_g².
    `naive_se` is the SE without the cluster adjustment, `design_effect` = SE²/naive SE²."""
    _check_alpha(alpha)
    if baseline.nu != current.nu:
        raise ValueError(f"quantile levels differ: {baseline.nu} vs {current.nu}")
    m_a = baseline.estimate if math.isfinite(baseline.estimate) else None
    m_b = current.estimate if math.isfinite(current.estimate) else None
    arm_warnings = tuple(
        f"{arm}: {w}"
        for arm, q in (("baseline", baseline), ("current", current))
        for w in q.warnings
    )
    if m_a is None or m_b is None or not (baseline.se > 0 and current.se > 0):
        return Comparison("quantile_outer_ci", m_a, m_b, None, None, None, None, arm_warnings)
    se = math.hypot(baseline.se, current.se)
    naive = math.hypot(baseline.se_iid, current.se_iid)
    delta = m_b - m_a
    statistic = delta / se
    absolute = Interval(delta, se, *_bounds(delta, se, alpha, None))
    relative, relative_p, warnings = _relative(
        ArmSummary(m_a, baseline.se**2, 1),
        ArmSummary(m_b, current.se**2, 1),
        None,
        alpha=alpha,
        relative_ci="delta",
    )
    return Comparison(
        test="quantile_outer_ci",
        baseline=m_a,
        current=m_b,
        absolute=absolute,
        relative=relative,
        p_value=_p_value(statistic, None),
        df=None,
        warnings=(*arm_warnings, *warnings),
        design_effect=(se / naive) ** 2,
        naive_se=naive,
        statistic=statistic,
        relative_p_value=relative_p,
    )


# ----------------------------------------------------------------------------------------------
# Cluster bootstrap (A5 cross-check; `formula` KPIs)
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Multiple testing (A8), SRM (A7), power (A12)
# ----------------------------------------------------------------------------------------------


def adjust_p_values(p_values: Sequence[float | None], method: PAdjust | None) -> list[float | None]:
    """Holm (FWER) or Benjamini–Hochberg (FDR) adjusted p-values, in input order (A8).

    None entries are not part of the family and stay None; method None or "none" returns the
    p-values unchanged.
    """
    if method is None or method == "none":
        return list(p_values)
    if method not in ("holm", "bh"):
        raise ValueError(f"unknown p-value adjustment {method!r} (holm, bh or none)")
    present = [i for i, p in enumerate(p_values) if p is not None]
    p = np.array([p_values[i] for i in present], dtype=np.float64)
    m = p.size
    adjusted = np.empty(m)
    if m:
        order = np.argsort(p, kind="stable")
        ranked = p[order]
        if method == "holm":
            steps = np.maximum.accumulate((m - np.arange(m)) * ranked)
        else:
            steps = np.minimum.accumulate((m / np.arange(1, m + 1) * ranked)[::-1])[::-1]
        adjusted[order] = np.minimum(steps, 1.0)
    out: list[float | None] = [None] * len(p_values)
    for i, value in zip(present, adjusted, strict=True):
        out[i] = float(value)
    return out


@dataclass(frozen=True)
class CochranQ:
    """Cochran's Q test that k effects (estimates with SEs) share one value (heterogeneity):
    Q = Σ wᵢ(Δᵢ − Δ̄)², wᵢ = 1/SEᵢ², Δ̄ = Σ wᵢΔᵢ/Σ wᵢ, Q ~ χ²(k − 1) under the null; I² = max(0,
    (Q − df)/Q), the share of the spread beyond chance."""

    q: float
    df: int
    p_value: float
    pooled: float
    i2: float


def cochran_q(estimates: Sequence[float], ses: Sequence[float]) -> CochranQ | None:
    """`CochranQ` over the effects with a positive, finite SE; None with fewer than two."""
    est = np.asarray(estimates, dtype=np.float64)
    se = np.asarray(ses, dtype=np.float64)
    usable = np.isfinite(est) & np.isfinite(se) & (se > 0)
    if usable.sum() < 2:
        return None
    weights = 1.0 / se[usable] ** 2
    pooled = float(weights @ est[usable] / weights.sum())
    q = float(weights @ (est[usable] - pooled) ** 2)
    df = int(usable.sum()) - 1
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    return CochranQ(q, df, float(special.chdtrc(df, q)), pooled, i2)


def sample_ratio_mismatch(counts: Sequence[int], weights: Sequence[float]) -> tuple[float, float]:
    """Pearson χ² of unit counts against the expected split, df = k − 1 (A7, gbstats
    `check_srm`): arms with weight ≤ 0 are skipped; (0, 1) when there are no units."""
    if len(counts) != len(weights):
        raise ValueError("counts and weights must have the same length")
    pairs = [(float(c), float(w)) for c, w in zip(counts, weights, strict=True) if w > 0]
    total = sum(c for c, _ in pairs)
    if total <= 0 or len(pairs) < 2:
        return 0.0, 1.0
    weight_sum = sum(w for _, w in pairs)
    chi2 = 0.0
    for c, w in pairs:
        expected = total * w / weight_sum
        chi2 += (c - expected) ** 2 / expected
    return chi2, float(special.chdtrc(len(pairs) - 1, chi2))


def mde_mean(
    variance_a: float,
    variance_b: float,
    n_a: int,
    n_b: int,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Absolute minimum detectable effect of any (m, s², n) comparison, normal approximation
    (A12): (z_{1−α/2} + z_{power})·√(s²_A/n_A + s²_B/n_B)."""
    _check_alpha(alpha)
    if n_a <= 0 or n_b <= 0:
        return math.nan
    multiplier = _z(1.0 - alpha / 2.0) + _z(power)
    return multiplier * math.sqrt(variance_a / n_a + variance_b / n_b)


# ----------------------------------------------------------------------------------------------
# Paired designs (A13)
# ----------------------------------------------------------------------------------------------


def _paired_arrays(baseline: npt.ArrayLike, current: npt.ArrayLike) -> tuple[FloatArray, ...]:
    a = np.asarray(baseline, dtype=np.float64).ravel()
    b = np.asarray(current, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in length: {a.size} vs {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def mcnemar_exact(b: int, c: int) -> float:
    """Exact McNemar p-value from the discordant pairs b, c (A13) = binomtest(b, b + c, ½)."""
    if b + c == 0:
        return 1.0
    from scipy import stats as scipy_stats

    return float(scipy_stats.binomtest(int(b), int(b + c), 0.5).pvalue)


def mcnemar_comparison(
    baseline: npt.ArrayLike, current: npt.ArrayLike, alpha: float = 0.05
) -> Comparison:
    """Paired binary outcomes (A13): exact McNemar p-value on the discordant pairs; the effect
    is the difference of success rates with the paired-t SE and CI of the 0/±1 differences."""
    _check_alpha(alpha)
    a, b = _paired_arrays(baseline, current)
    n = int(a.size)
    if n == 0:
        return Comparison("mcnemar_exact", None, None, None, None, None, None, (NO_UNITS,))
    if not (np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()):
        raise ValueError("McNemar needs 0/1 outcomes")
    worse = int(((a == 1) & (b == 0)).sum())  # baseline success, current failure
    better = int(((a == 0) & (b == 1)).sum())
    p = mcnemar_exact(worse, better)
    comparison = paired_t(a, b, alpha)
    return replace(comparison, test="mcnemar_exact", p_value=p, df=None, statistic=None)


def paired_t(baseline: npt.ArrayLike, current: npt.ArrayLike, alpha: float = 0.05) -> Comparison:
    """Paired t on the per-unit differences current − baseline, df = n − 1 (A13).

    Relative: Σcurrent/Σbaseline − 1 (over |mean baseline|) with the A4 delta-method SE on the
    pairs (the covariance between arms is kept) and a t_{n−1} CI.
    """
    _check_alpha(alpha)
    a, b = _paired_arrays(baseline, current)
    n = int(a.size)
    if n == 0:
        return Comparison("paired_t", None, None, None, None, None, None, (NO_UNITS,))
    m_a, m_b = float(a.mean()), float(b.mean())
    d = b - a
    if n <= 1 or not float(d.var(ddof=1)) > 0:
        return Comparison("paired_t", m_a, m_b, None, None, None, None, (ZERO_VARIANCE,))
    se = math.sqrt(float(d.var(ddof=1)) / n)
    df = float(n - 1)
    delta = float(d.mean())
    statistic = delta / se
    absolute = Interval(delta, se, *_bounds(delta, se, alpha, df))
    relative: Interval | None = None
    relative_p: float | None = None
    warnings: tuple[str, ...] = ()
    if m_a == 0:
        warnings = (BASELINE_ZERO,)
    else:
        ratio = ratio_summary(
            n, float(b.sum()), float(b @ b), float(a.sum()), float(a @ a), float(a @ b)
        )
        rel_se = math.sqrt(max(ratio.variance, 0.0) / n)
        rel = delta / abs(m_a)
        if rel_se > 0:
            relative = Interval(rel, rel_se, *_bounds(rel, rel_se, alpha, df))
            relative_p = _p_value(rel / rel_se, df)
    return Comparison(
        "paired_t",
        m_a,
        m_b,
        absolute,
        relative,
        _p_value(statistic, df),
        df,
        warnings,
        statistic=statistic,
        relative_p_value=relative_p,
    )


def _signed_rank_cdf(n: int) -> FloatArray:
    """Exact null CDF of the Wilcoxon signed-rank statistic T⁺ for n pairs (no ties)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for i in range(1, n + 1):
        counts[i:] = counts[i:] + counts[:-i].copy()
    return np.cumsum(counts) / 2.0**n


def wilcoxon_signed_rank(
    baseline: npt.ArrayLike, current: npt.ArrayLike, alpha: float = 0.05
) -> Comparison:
    """Wilcoxon signed-rank test of current − baseline (A13), `scipy.stats.wilcoxon` defaults
    (zero differences dropped; exact for small n without ties). The effect is the
    Hodges–Lehmann estimate (median of Walsh averages) with the Tukey/Walsh-average CI (exact
    signed-rank quantiles for n ≤ 50, normal otherwise); its `se` is (high − low)/(2z), an
    approximation for display. `statistic` is scipy's W."""
    _check_alpha(alpha)
    from scipy import stats as scipy_stats

    a, b = _paired_arrays(baseline, current)
    n = int(a.size)
    if n == 0:
        return Comparison("wilcoxon", None, None, None, None, None, None, (NO_UNITS,))
    m_a, m_b = float(a.mean()), float(b.mean())
    d = b - a
    if not np.any(d != 0):
        return Comparison("wilcoxon", m_a, m_b, None, None, None, None, (ZERO_VARIANCE,))
    result = scipy_stats.wilcoxon(b, a)
    warnings: list[str] = []
    absolute: Interval | None = None
    if n > _WALSH_MAX_PAIRS:
        warnings.append(f"Hodges–Lehmann CI skipped for more than {_WALSH_MAX_PAIRS} pairs")
    else:
        i, j = np.triu_indices(n)
        walsh = np.sort((d[i] + d[j]) / 2.0)
        total = walsh.size
        if n <= _EXACT_WILCOXON_MAX:
            cdf = _signed_rank_cdf(n)
            k = int(np.searchsorted(cdf, alpha / 2.0, side="right"))  # P(T⁺ ≤ k − 1) ≤ α/2
        else:
            spread = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
            k = math.floor(total / 2.0 - _z(1.0 - alpha / 2.0) * spread)
        if k < 1:
            warnings.append("too few pairs for a Hodges–Lehmann CI at this α")
            k = 1
        low, high = float(walsh[k - 1]), float(walsh[total - k])
        se = (high - low) / (2.0 * _z(1.0 - alpha / 2.0))
        absolute = Interval(float(np.median(walsh)), se, low, high)
    return Comparison(
        "wilcoxon",
        m_a,
        m_b,
        absolute,
        None,
        float(result.pvalue),
        None,
        tuple(warnings),
        statistic=float(result.statistic),
    )


# ----------------------------------------------------------------------------------------------
# Sequential, always-valid inference (A9)
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# CUPED / regression adjustment (A10)
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Human review: agreement, stratified rates, the label-corrected rate (README "Human review")
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KappaEstimate:
    """Cohen's kappa of two raters with its large-sample SE and normal CI (None: undefined)."""

    kappa: float | None
    se: float | None
    low: float | None
    high: float | None
    observed: float  # observed agreement (share of the diagonal)
    expected: float  # agreement expected by chance from the margins
    warning: str | None = None


def cohens_kappa(table: Sequence[Sequence[float]], alpha: float = 0.05) -> KappaEstimate:
    """Unweighted Cohen's kappa of a k×k table of counts (rows: one rater, columns: the other).

    SE: the large-sample variance of Fleiss, Cohen & Everitt (1969), not assuming kappa = 0
    (the variance `statsmodels.stats.inter_rater.cohens_kappa` reports as `std_kappa`); the CI
    is kappa ± z·SE. Undefined (None, with a warning) when there are no counts or both raters
    put every item in one category (expected agreement 1).
    """
    _check_alpha(alpha)
    counts = np.asarray(table, dtype=np.float64)
    n = float(counts.sum())
    if n <= 0:
        return KappaEstimate(None, None, None, None, math.nan, math.nan, "no rated items")
    freqs = counts / n
    rows = freqs.sum(axis=1)
    cols = freqs.sum(axis=0)
    observed = float(np.trace(freqs))
    expected = float(np.dot(rows, cols))
    if expected >= 1.0:
        return KappaEstimate(
            None,
            None,
            None,
            None,
            observed,
            expected,
            "kappa undefined: both raters gave every item the same label",
        )
    kappa = (observed - expected) / (1.0 - expected)
    term_a = float(np.sum(np.diag(freqs) * (1.0 - (rows + cols) * (1.0 - kappa)) ** 2))
    off = freqs * (cols[:, None] + rows[None, :]) ** 2  # cell (i, j): p_.i + p_j.
    np.fill_diagonal(off, 0.0)
    term_b = (1.0 - kappa) ** 2 * float(off.sum())
    term_c = (kappa - expected * (1.0 - kappa)) ** 2
    variance = max((term_a + term_b - term_c) / ((1.0 - expected) ** 2 * n), 0.0)
    se = math.sqrt(variance)
    z = _z(1.0 - alpha / 2.0)
    return KappaEstimate(kappa, se, kappa - z * se, kappa + z * se, observed, expected)


def normal_interval(estimate: float, se: float, alpha: float = 0.05) -> tuple[float, float]:
    """estimate ± z_{1−α/2}·se."""
    _check_alpha(alpha)
    z = _z(1.0 - alpha / 2.0)
    return estimate - z * se, estimate + z * se


@dataclass(frozen=True)
class ReviewEstimates:
    """Stratified estimates of one review round (see `stratified_review`)."""

    human: Interval  # human-labelled success rate
    self_reported: Interval  # the agent's self-reported rate on the same rows
    gap: Interval  # self_reported − human (positive: the agent claims more than it achieves)
    sensitivity: Interval | None  # P(self-reported success | human success); None: no such row
    specificity: Interval | None  # P(self-reported failure | human failure)
    logged_rate: float  # p_obs, the rate the Rogan–Gladen correction starts from
    logged_rate_known: bool  # True: the population's logged rate; False: estimated from rows
    corrected: Interval | None  # Rogan–Gladen, estimate and CI clipped to [0, 1]
    corrected_unclipped: float | None
    warnings: tuple[str, ...] = ()


def _stratified_variance(
    z: FloatArray, codes: npt.NDArray[np.int64], weights: FloatArray, fpc: FloatArray
) -> float:
    """Var of Σ_h W_h·mean_h(z): Σ_h W_h² (1 − n_h/N_h) s²_h(z) / n_h (s² with n_h − 1)."""
    total = 0.0
    for h, weight in enumerate(weights):
        values = z[codes == h]
        if values.size > 1:
            total += weight * weight * fpc[h] * float(values.var(ddof=1)) / values.size
    return total


def _strata_weights(
    codes: npt.NDArray[np.int64], sizes: Sequence[float]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(W_h, 1 − n_h/N_h, n_h) per stratum code; W_h = N_h / Σ N_h over the strata with rows.
    Sizes math.inf (unknown) are allowed for one stratum only (then W = 1, no FPC)."""
    population = np.asarray(sizes, dtype=np.float64)
    counts = np.bincount(codes, minlength=population.size).astype(np.float64)
    present = counts > 0
    if np.all(np.isinf(population[present])):
        if present.sum() > 1:
            raise ValueError("several strata need their sizes")
        return present.astype(np.float64), np.ones_like(counts), counts
    weights = np.where(present, population, 0.0)
    fpc = np.where(present, np.clip(1.0 - counts / population, 0.0, 1.0), 1.0)
    return weights / weights.sum(), fpc, counts


def stratified_proportion(
    values: npt.ArrayLike, strata: npt.ArrayLike, sizes: Sequence[float], alpha: float = 0.05
) -> Interval:
    """Σ_h W_h·mean_h(y) of 0/1 values with SE √(Σ_h W_h² (1 − n_h/N_h) s²_h/n_h) and a normal
    CI clipped to [0, 1] (weights and conventions as `stratified_review`)."""
    _check_alpha(alpha)
    y = np.asarray(values, dtype=np.float64)
    codes = np.asarray(strata, dtype=np.int64)
    if y.shape != codes.shape or y.size == 0:
        raise ValueError("values and strata must be non-empty and of one length")
    weights, fpc, counts = _strata_weights(codes, sizes)
    estimate = float(sum(weights[k] * y[codes == k].mean() for k in np.flatnonzero(counts)))
    se = math.sqrt(_stratified_variance(y, codes, weights, fpc))
    low, high = normal_interval(estimate, se, alpha)
    return Interval(estimate, se, max(low, 0.0), min(high, 1.0))


def stratified_review(
    human: npt.ArrayLike,
    self_reported: npt.ArrayLike,
    strata: npt.ArrayLike,
    sizes: Sequence[float],
    *,
    logged_rate: float | None = None,
    alpha: float = 0.05,
) -> ReviewEstimates:
    """Rates of a stratified review sample, each stratum weighted by its population size.

    `human`, `self_reported`: 0/1 per labelled row; `strata`: the row's stratum code 0…H−1;
    `sizes`: N_h per code (math.inf when unknown: no finite-population correction).
    Weights W_h = N_h / Σ N_h over the strata present. Every estimate is a stratified mean
    (rates) or a ratio of two (sensitivity Se, specificity Sp); SEs by Taylor linearisation:
    Var = Σ_h W_h² (1 − n_h/N_h) s²_h(z)/n_h of each row's influence value z.

    The label-corrected rate is Rogan–Gladen: θ = (p_obs + Sp − 1)/(Se + Sp − 1), clipped to
    [0, 1]. p_obs is `logged_rate` (the population's logged rate, exact) or, when None, the
    weighted self-reported rate of the rows (its sampling error then enters too). Its SE is the
    delta method over the rows: z_i = [−θ·u_i + (1 − θ)·v_i (+ (s_i − p_obs))] / (Se + Sp − 1),
    u_i, v_i the influence values of Se and Sp; CI θ ± z·SE, clipped to [0, 1].
    """
    _check_alpha(alpha)
    h = np.asarray(human, dtype=np.float64)
    s = np.asarray(self_reported, dtype=np.float64)
    codes = np.asarray(strata, dtype=np.int64)
    if not (h.shape == s.shape == codes.shape) or h.size == 0:
        raise ValueError("human, self_reported and strata must be non-empty and of one length")
    weights, fpc, counts = _strata_weights(codes, sizes)
    present = counts > 0
    warnings: list[str] = []
    singles = int(np.sum(counts == 1))
    if singles:
        warnings.append(
            f"{singles} stratum/strata with one labelled row add no variance: SEs are understated"
        )

    def mean(values: FloatArray) -> float:
        return float(sum(weights[k] * values[codes == k].mean() for k in np.flatnonzero(present)))

    def interval(estimate: float, z: FloatArray, low: float, high: float) -> Interval:
        se = math.sqrt(_stratified_variance(z, codes, weights, fpc))
        lo, hi = normal_interval(estimate, se, alpha)
        return Interval(estimate, se, max(lo, low), min(hi, high))

    human_rate = mean(h)
    self_rate = mean(s)
    d = s - h
    gap = mean(d)
    both = s * h
    neither = (1.0 - s) * (1.0 - h)
    positives = mean(h)
    negatives = 1.0 - positives
    sens = spec = None
    u = v = np.zeros_like(h)
    if positives > 0:
        se_value = mean(both) / positives
        u = (both - se_value * h) / positives
        sens = interval(se_value, u, 0.0, 1.0)
    else:
        warnings.append("no row labelled a success: sensitivity and the corrected rate undefined")
    if negatives > 0:
        sp_value = mean(neither) / negatives
        v = (neither - sp_value * (1.0 - h)) / negatives
        spec = interval(sp_value, v, 0.0, 1.0)
    else:
        warnings.append("no row labelled a failure: specificity and the corrected rate undefined")
    known = logged_rate is not None
    p_obs = float(logged_rate) if logged_rate is not None else self_rate
    corrected = None
    unclipped = None
    if sens is not None and spec is not None:
        youden = sens.estimate + spec.estimate - 1.0
        if youden <= 0:
            warnings.append(
                f"sensitivity + specificity = {sens.estimate + spec.estimate:.3f} <= 1: the "
                "self-reports carry no information on success; no corrected rate"
            )
        else:
            theta = (p_obs + spec.estimate - 1.0) / youden
            unclipped = theta
            z = -theta * u + (1.0 - theta) * v
            if not known:
                z = z + (s - p_obs)
            se = math.sqrt(_stratified_variance(z / youden, codes, weights, fpc))
            lo, hi = normal_interval(theta, se, alpha)
            if not 0.0 <= theta <= 1.0:
                warnings.append(
                    f"the corrected rate {theta:.4f} fell outside [0, 1] and is shown clipped"
                )
            corrected = Interval(
                min(max(theta, 0.0), 1.0), se, min(max(lo, 0.0), 1.0), min(max(hi, 0.0), 1.0)
            )
    return ReviewEstimates(
        human=interval(human_rate, h, 0.0, 1.0),
        self_reported=interval(self_rate, s, 0.0, 1.0),
        gap=interval(gap, d, -1.0, 1.0),
        sensitivity=sens,
        specificity=spec,
        logged_rate=p_obs,
        logged_rate_known=known,
        corrected=corrected,
        corrected_unclipped=unclipped,
        warnings=tuple(warnings),
    )


@dataclass(frozen=True)
class TrendEstimate:
    """A straight-line trend of a quantity over review rounds (per round)."""

    slope: Interval
    p_value: float
    rounds: int


def round_trend(
    values: Sequence[float], ses: Sequence[float], alpha: float = 0.05
) -> TrendEstimate | None:
    """Inverse-variance weighted least-squares slope of `values` over rounds 0, 1, …, with its
    SE 1/√(Σ w (t − t̄)²) and a two-sided normal p-value. With two rounds the slope is their
    difference and its SE √(se₁² + se₂²). None with fewer than two rounds or a zero SE."""
    y = np.asarray(values, dtype=np.float64)
    se = np.asarray(ses, dtype=np.float64)
    if y.size < 2 or np.any(se <= 0) or not np.all(np.isfinite(se)):
        return None
    w = 1.0 / se**2
    t = np.arange(y.size, dtype=np.float64)
    t_bar = float(np.sum(w * t) / w.sum())
    y_bar = float(np.sum(w * y) / w.sum())
    sxx = float(np.sum(w * (t - t_bar) ** 2))
    slope = float(np.sum(w * (t - t_bar) * (y - y_bar))) / sxx
    slope_se = 1.0 / math.sqrt(sxx)
    low, high = normal_interval(slope, slope_se, alpha)
    return TrendEstimate(
        Interval(slope, slope_se, low, high),
        _p_value(slope / slope_se, None),
        int(y.size),
    )
