"""kpictl.stats against the test vectors of docs/methods.md ("Test vectors"), plus calibration.

Tolerances (docs/methods.md "Test vectors"): a vector printed to 15+ significant digits is
matched to rel 1e-9; a shorter one to half a unit of its last printed digit (gbstats's 5 d.p. →
abs 5e-6); values marked "≈" or coming from a bootstrap only as a band. Cross-checks against
statsmodels (a test extra) are independent implementations of the same quantity.

The optional modes come last: sequential (A9: G4's two-sided rows, S1) and CUPED (A10: G7).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from decimal import Decimal
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from kpictl import stats
from kpictl.stats import ArmSummary, Comparison, Interval, RatioSums

Z975 = float(scipy_stats.norm.ppf(0.975))


def near(actual: float | None, printed: str) -> bool:
    """True when `actual` matches the printed vector value to its printed precision."""
    assert actual is not None
    expected = Decimal(printed)
    digits = expected.as_tuple()
    significant = len(digits.digits)
    if significant >= 15:
        return math.isclose(actual, float(expected), rel_tol=1e-9, abs_tol=1e-15)
    exponent = int(digits.exponent)  # type: ignore[arg-type]
    return abs(actual - float(expected)) <= 0.5 * 10.0**exponent * 1.0001 + 1e-15


def interval_near(interval: Interval | None, low: str, high: str) -> bool:
    assert interval is not None
    return near(interval.low, low) and near(interval.high, high)


# ----------------------------------------------------------------------------------------------
# G — gbstats vectors
# ----------------------------------------------------------------------------------------------

G1_A = stats.mean_summary(3407, 1396.87, 52377.9767)
G1_B = stats.mean_summary(3461, 2422.7, 134698.29)


def test_g1_mean_two_sided() -> None:
    c = stats.compare_summaries(G1_A, G1_B)
    assert c.test == "welch_t"
    assert c.absolute is not None and c.relative is not None
    assert near(c.relative.estimate, "0.70732") and near(c.relative.se, "0.37879")
    assert interval_near(c.relative, "-0.03526", "1.44989")
    assert near(c.relative_p_value, "0.06191")
    assert near(c.absolute.estimate, "0.29") and near(c.absolute.se, "0.12478")
    assert interval_near(c.absolute, "0.04538", "0.53462")
    assert near(c.p_value, "0.02016") and near(c.p_value, "0.02015840264")
    assert near(c.df, "5841.74203")
    reference = scipy_stats.ttest_ind_from_stats(
        G1_B.estimate,
        math.sqrt(G1_B.variance),
        G1_B.n,
        G1_A.estimate,
        math.sqrt(G1_A.variance),
        G1_A.n,
        equal_var=False,
    )
    assert math.isclose(c.p_value or 0, reference.pvalue, rel_tol=1e-9)


def test_g2_proportion_relative() -> None:
    c = stats.compare_summaries(stats.proportion_summary(14, 28), stats.proportion_summary(16, 30))
    assert c.relative is not None
    assert near(c.relative.estimate, "0.06667") and near(c.relative.se, "0.2717")
    assert interval_near(c.relative, "-0.47767", "0.61101")
    assert near(c.relative_p_value, "0.80707")
    assert near(c.df, "55.70745")
    # kpictl itself switches this table (n_A = 28 < 30) to the exact test
    exact = stats.compare_proportions(14, 28, 16, 30)
    assert exact.test == "boschloo_exact"
    assert exact.relative == c.relative


G3_A = stats.mean_summary(3000, 1396.87, 52377.9767)


G5_A = RatioSums(100, 270, 848.79, 510, 810, -900)
G5_B = RatioSums(120, 300, 869, 500, 800, -905)


def test_g5_ratio_relative() -> None:
    c = stats.compare_ratio(G5_A, G5_B)
    assert c.test == "delta_ratio"
    assert near(c.baseline, "0.529411765") and near(c.current, "0.6")
    assert c.relative is not None
    assert near(c.relative.estimate, "0.133333333") and near(c.relative_p_value, "0.610663339")
    assert near(c.relative.se, "0.261508038") and near(c.df, "217.886815")
    assert interval_near(c.relative, "-0.382075817", "0.648742484")
    # a plain 6-tuple is accepted too (what compare.py passes)
    assert stats.compare_ratio(tuple(G5_A[:6]), tuple(G5_B[:6])) == c


def test_g6_mean_relative() -> None:
    c = stats.compare_summaries(
        stats.mean_summary(100, 270, 848.79), stats.mean_summary(120, 300, 869)
    )
    assert near(c.baseline, "2.7") and near(c.current, "2.5")
    assert c.relative is not None
    assert near(c.relative.estimate, "-0.074074074") and near(c.relative_p_value, "0.145219005")


G10 = {
    "A": (11054, 7.157987489967789, 7.098780136176828, 7.217194843758751),
    "B": (10861, 7.694499927525767, 7.64180598628119, 7.747193868770344),
}


def g10_arm(n: int, estimate: float, lower: float, upper: float) -> stats.QuantileArm:
    """A p90 arm from gbstats's (n, Q̂, X_(L), X_(U)): SE_iid = (X_(U) − X_(L))/(2z)."""
    se = (upper - lower) / (2 * Z975)
    return stats.QuantileArm(0.9, n, n, estimate, se, se, 1.0, lower=lower, upper=upper)


def test_g10_quantile_normal_approximation() -> None:
    arms = {k: g10_arm(*v) for k, v in G10.items()}
    c = stats.compare_quantiles(arms["A"], arms["B"])
    assert c.absolute is not None and c.relative is not None
    assert near(c.absolute.estimate, "0.5365124375579775")
    # kpictl's SE_iid omits gbstats's (n−1)/n factor: equal within 5 d.p. ...
    assert abs(c.absolute.low - 0.4572559589115422) < 5e-6
    assert abs(c.absolute.high - 0.6157689162044128) < 5e-6
    assert near(c.relative.estimate, "0.07495297222736319")  # delta method = prior's mean to 1e-9
    assert abs(c.relative.low - 0.06341005842481906) < 5e-6
    assert abs(c.relative.high - 0.08649588602990732) < 5e-6
    # ... and identical to all digits once the factor is applied (gbstats's G10 value)
    gb = {k: replace(a, se=a.se * math.sqrt((a.n - 1) / a.n)) for k, a in arms.items()}
    g = stats.compare_quantiles(gb["A"], gb["B"])
    assert g.absolute is not None
    assert near(g.absolute.se, "0.0404377220")
    assert near(g.absolute.low, "0.4572559589115422")
    assert near(g.absolute.high, "0.6157689162044128")


def test_g12_multiple_testing() -> None:
    holm = stats.adjust_p_values([0.01, 0.04, 0.03, 0.005, 0.55, 0.6], "holm")
    assert holm == pytest.approx([0.05, 0.12, 0.12, 0.03, 1, 1], rel=1e-12)
    bh_in = [0.898, 0.138, 0.007, 0.964, 0.538, 0.006, 0.138]
    bh = stats.adjust_p_values(bh_in, "bh")
    assert bh == pytest.approx([0.964, 0.2415, 0.0245, 0.964, 0.7532, 0.0245, 0.2415], rel=1e-12)
    assert bh == pytest.approx(list(scipy_stats.false_discovery_control(bh_in)), rel=1e-12)
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    ref = multitest.multipletests([0.01, 0.04, 0.03, 0.005, 0.55, 0.6], method="holm")[1]
    assert holm == pytest.approx(list(ref), rel=1e-12)


def test_adjust_p_values_skips_none_and_none_method() -> None:
    adjusted = stats.adjust_p_values([0.01, None, 0.04, None], "holm")
    assert adjusted == pytest.approx([0.02, None, 0.04, None])
    assert stats.adjust_p_values([0.01, None], "none") == [0.01, None]
    assert stats.adjust_p_values([None, None], "bh") == [None, None]
    with pytest.raises(ValueError, match="unknown p-value adjustment"):
        stats.adjust_p_values([0.1], "bonferroni")  # type: ignore[arg-type]


def test_g13_frequentist_variance() -> None:
    c = stats.compare_summaries(ArmSummary(7, 2, 4), ArmSummary(5, 0.5, 15))
    assert c.absolute is not None and c.relative is not None
    assert near(c.absolute.se**2, "0.53333") and near(c.relative.se**2, "0.00589")


# ----------------------------------------------------------------------------------------------
# S — scipy / statsmodels reference values
# ----------------------------------------------------------------------------------------------


def test_s2_two_proportions() -> None:
    c = stats.compare_proportions(120, 1000, 150, 1000)
    assert c.test == "proportion_t" and c.absolute is not None and c.relative is not None
    # unpooled Wald: the statistic and SE are the A1 ones; its z p-value from the same statistic
    assert near(c.statistic, "1.964943729729648") and near(c.absolute.se, "0.015267612779999369")
    assert near(2 * scipy_stats.norm.sf(c.statistic or 0), "0.04942075065958091")
    # gbstats absolute (t, df 1980.518) and relative
    assert near(c.df, "1980.518")
    assert near(c.p_value, "0.049560341609169445")
    assert interval_near(c.absolute, "5.773023448911105e-05", "0.05994226976551088")
    assert near(c.relative.estimate, "0.25") and near(c.relative.se, "0.14252192813739226")
    assert near(c.relative_p_value, "0.07956527699947769")
    assert interval_near(c.relative, "-0.029508661981584028", "0.5295086619815841")
    # Newcombe hybrid score
    low, high = stats.newcombe_interval(120, 1000, 150, 1000)
    assert near(low, "1.37824e-05") and near(high, "0.06000826")
    # Fieller lift CI (z) and its g; it excludes 0, like the unpooled absolute test
    f = stats.fieller_lift_interval(0.12, 0.12 * 0.88 / 1000, 0.15, 0.15 * 0.85 / 1000, Z975)
    assert near(f.low, "0.00056926") and near(f.high, "0.57189897") and near(f.g, "0.028171")
    fieller = stats.compare_proportions(120, 1000, 150, 1000, relative_ci="fieller")
    assert fieller.relative is not None and fieller.relative.low > 0  # t-Fieller agrees with p


def test_s2_cross_check_statsmodels() -> None:
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    low, high = proportion.confint_proportions_2indep(150, 1000, 120, 1000, method="newcomb")
    ours = stats.newcombe_interval(120, 1000, 150, 1000)
    assert ours == pytest.approx((low, high), rel=1e-9)
    for x_a, n_a, x_b, n_b in [(3, 10, 9, 10), (0, 25, 4, 31), (17, 40, 17, 40), (5, 7, 1, 9)]:
        low, high = proportion.confint_proportions_2indep(x_b, n_b, x_a, n_a, method="newcomb")
        assert stats.newcombe_interval(x_a, n_a, x_b, n_b) == pytest.approx((low, high))


def test_s3_fisher_and_boschloo() -> None:
    # [[3, 7], [9, 1]], rows = arms (3/10 vs 9/10)
    assert near(stats.proportions_exact_test(3, 10, 9, 10, method="fisher"), "0.019766611097880443")
    # scipy's boschloo_exact reads the COLUMNS as the binomial samples: the printed 0.006965…
    # is the p-value of [[3, 7], [9, 1]] read that way (3/12 vs 7/8) ...
    assert near(stats.proportions_exact_test(3, 12, 7, 8), "0.006965032539344869")
    # ... while the arms 3/10 vs 9/10 get boschloo_exact([[3, 9], [7, 1]]) = 0.007955551…
    c = stats.compare_proportions(3, 10, 9, 10)
    expected = scipy_stats.boschloo_exact([[3, 9], [7, 1]]).pvalue
    assert c.test == "boschloo_exact" and math.isclose(c.p_value or 0, expected, rel_tol=1e-9)
    assert any("exact Boschloo" in w for w in c.warnings)
    assert c.df is None and c.absolute is not None
    assert (c.absolute.low, c.absolute.high) == stats.newcombe_interval(3, 10, 9, 10)
    assert c.absolute.estimate == pytest.approx(0.6)


def test_exact_path_falls_back_to_fisher_for_large_tables() -> None:
    c = stats.compare_proportions(3, 5000, 9, 5000)
    assert c.test == "fisher_exact"
    fisher = scipy_stats.fisher_exact([[3, 9], [4997, 4991]]).pvalue
    assert math.isclose(c.p_value or 0, fisher, rel_tol=1e-12)


def test_zero_in_both_arms_needs_no_test() -> None:
    """0 of 1,000 against 0 of 240 (a KPI that never happens, in a cohort against the rest): the
    difference is exactly 0 with no variance; p = 1 is stated, no exact test runs (Boschloo
    took 8.5 s on this table). Fisher and Boschloo agree that p = 1; the CI is Newcombe's."""
    for x_a, n_a, x_b, n_b, shown in ((0, 1000, 0, 240, "0%"), (30, 30, 12, 12, "100%")):
        c = stats.compare_proportions(x_a, n_a, x_b, n_b)
        assert (c.test, c.p_value, c.baseline, c.current) == (
            "identical_arms",
            1.0,
            x_a / n_a,
            x_b / n_b,
        )
        assert c.warnings[0] == (
            f"both arms are {shown} ({x_a} of {n_a:,} and {x_b} of {n_b:,}): the difference is "
            "exactly 0 with no variance, so p = 1 without a test"
        )
        fisher = scipy_stats.fisher_exact([[x_a, x_b], [n_a - x_a, n_b - x_b]]).pvalue
        assert fisher == pytest.approx(1.0)
        assert c.absolute is not None and c.absolute.estimate == 0.0
        assert (c.absolute.low, c.absolute.high) == stats.newcombe_interval(x_a, n_a, x_b, n_b)
    boschloo = scipy_stats.boschloo_exact([[30, 12], [0, 0]]).pvalue
    assert boschloo == pytest.approx(1.0)
    # means: the same value in every unit of both arms
    same = stats.compare_summaries(ArmSummary(0.0, 0.0, 500), ArmSummary(0.0, 0.0, 80))
    assert (same.test, same.p_value, same.absolute) == ("identical_arms", 1.0, None)
    assert same.warnings == (
        "both arms are 0 in every unit: the difference is exactly 0 with no variance, so "
        "p = 1 without a test",
    )
    # a different constant per arm is not "no difference": still no test can be run
    other = stats.compare_summaries(ArmSummary(0.0, 0.0, 500), ArmSummary(1.0, 0.0, 80))
    assert other.p_value is None and other.warnings == (stats.ZERO_VARIANCE,)


def test_the_exact_test_is_chosen_by_cost() -> None:
    """Boschloo while (n_A+1)(n_B+1) ≤ 10,000 tables (≤ ~0.1 s), Fisher above; the test name
    and the warning say which ran, and each p-value is scipy's."""
    assert stats.BOSCHLOO_MAX_TABLES == 10_000
    assert stats.exact_test_for(99, 99) == "boschloo"  # 100 × 100 = 10,000
    assert stats.exact_test_for(100, 99) == "fisher"  # 101 × 100 = 10,100
    small = stats.compare_proportions(2, 60, 7, 70)
    assert small.test == "boschloo_exact"
    assert small.p_value == pytest.approx(
        scipy_stats.boschloo_exact([[2, 7], [58, 63]]).pvalue, rel=1e-12
    )
    assert small.warnings[0] == (
        "small cells (a cell < 10, an expected cell < 5 or n < 30): exact Boschloo test "
        "p-value and Newcombe CI"
    )
    large = stats.compare_proportions(3, 1000, 1, 240)
    assert large.test == "fisher_exact"
    assert large.p_value == pytest.approx(
        scipy_stats.fisher_exact([[3, 1], [997, 239]]).pvalue, rel=1e-12
    )
    assert large.warnings[0] == (
        "small cells (a cell < 10, an expected cell < 5 or n < 30): exact Fisher test "
        "p-value (Boschloo's would weigh 241,241 tables, over the 10,000 that run quickly) "
        "and Newcombe CI"
    )


def test_exact_path_with_a_zero_arm() -> None:
    c = stats.compare_proportions(0, 20, 5, 20)
    assert c.test == "boschloo_exact" and c.p_value is not None and c.absolute is not None
    assert c.relative is None and stats.BASELINE_ZERO in c.warnings


S4_A = np.array([12.0, 15.5, 9.8, 22.1, 14.3, 11.0, 18.7, 13.2])
S4_B = np.array([16.4, 21.0, 19.8, 25.3, 17.7, 23.9, 20.5])


def _mean_of(x: np.ndarray) -> ArmSummary:
    return stats.mean_summary(x.size, float(x.sum()), float(x @ x))


def test_s4_welch() -> None:
    c = stats.compare_summaries(_mean_of(S4_A), _mean_of(S4_B))
    assert near(c.statistic, "3.2310647490508044") and near(c.p_value, "0.006671221253382126")
    assert near(c.df, "12.81677800552169")
    assert interval_near(c.absolute, "2.0095563660281313", "10.154729348257575")


@pytest.mark.parametrize(
    ("counts", "weights", "chi2", "p"),
    [
        ([1000, 1200], [0.5, 0.5], "18.181818181818183", "2.007865612426481e-05"),
        ([5050, 4950], [0.5, 0.5], "1.0", "0.31731050786291115"),
        ([3310, 3420, 3270], [1, 1, 1], "3.62", "0.16365413680270405"),
        ([9100, 900], [0.9, 0.1], "11.11111111111111", "0.0008581206663936758"),
    ],
)
def test_s5_srm(counts: list[int], weights: list[float], chi2: str, p: str) -> None:
    got_chi2, got_p = stats.sample_ratio_mismatch(counts, weights)
    assert near(got_chi2, chi2) and near(got_p, p)
    reference = scipy_stats.chisquare(counts, np.sum(counts) * np.array(weights) / sum(weights))
    assert math.isclose(got_p, reference.pvalue, rel_tol=1e-9)


def test_srm_edge_cases() -> None:
    assert stats.sample_ratio_mismatch([0, 0], [0.5, 0.5]) == (0.0, 1.0)
    # an arm with weight 0 is skipped (gbstats check_srm)
    assert stats.sample_ratio_mismatch([500, 500, 7], [0.5, 0.5, 0]) == (0.0, 1.0)


def test_s6_mde() -> None:
    """The MDE of a proportion near p = 0.10 at 5,000 units per arm: s² = p(1−p) per arm."""
    variance = 0.10 * 0.90
    assert near(stats.mde_mean(variance, variance, 5000, 5000), "0.01680951130867781")


S7_BASE = np.array([812, 640, 1503, 990, 702, 1210, 880, 455, 1333, 760, 1021, 598], float)
S7_TRT = np.array([790, 610, 1320, 1004, 655, 1100, 842, 470, 1202, 731, 960, 585], float)


def test_s7_mcnemar() -> None:
    assert near(stats.mcnemar_exact(3, 9), "0.14599609375")
    assert stats.mcnemar_exact(9, 3) == stats.mcnemar_exact(3, 9)
    assert stats.mcnemar_exact(0, 0) == 1.0
    # table [[22, 3], [9, 6]]: rows baseline success/fail, columns treatment success/fail
    base = np.array([1] * 25 + [0] * 15, float)
    trt = np.array([1] * 22 + [0] * 3 + [1] * 9 + [0] * 6, float)
    c = stats.mcnemar_comparison(base, trt)
    assert c.test == "mcnemar_exact" and near(c.p_value, "0.14599609375")
    assert c.absolute is not None and c.absolute.estimate == pytest.approx(6 / 40)
    contingency = pytest.importorskip("statsmodels.stats.contingency_tables")
    assert math.isclose(
        c.p_value or 0, contingency.mcnemar([[22, 3], [9, 6]], exact=True).pvalue, rel_tol=1e-12
    )


def test_s7_paired_t() -> None:
    c = stats.paired_t(S7_BASE, S7_TRT)
    assert c.absolute is not None and c.df == 11
    assert near(c.statistic, "-3.065344478913263") and near(c.p_value, "0.010748892614105148")
    assert near(c.absolute.estimate, "-52.91666666666667")
    assert near(c.absolute.se * math.sqrt(12), "59.80036231774298")
    reference = scipy_stats.ttest_rel(S7_TRT, S7_BASE).confidence_interval()
    assert (c.absolute.low, c.absolute.high) == pytest.approx(tuple(reference), rel=1e-12)
    assert c.relative is not None and c.relative.estimate == pytest.approx(
        -52.91666666666667 / S7_BASE.mean()
    )


def test_s7_wilcoxon() -> None:
    c = stats.wilcoxon_signed_rank(S7_BASE, S7_TRT)
    assert near(c.statistic, "5.0") and near(c.p_value, "0.0048828125")
    d = S7_TRT - S7_BASE
    walsh = [(d[i] + d[j]) / 2 for i in range(d.size) for j in range(i, d.size)]
    assert c.absolute is not None and c.absolute.estimate == pytest.approx(np.median(walsh))
    # the Walsh-average CI is the set of shifts the exact signed-rank test does not reject
    eps = 1e-6
    for shift, rejected in [
        (c.absolute.low - eps, True),
        (c.absolute.low + eps, False),
        (c.absolute.high - eps, False),
        (c.absolute.high + eps, True),
    ]:
        p = scipy_stats.wilcoxon(d - shift, method="exact").pvalue
        assert bool(p < 0.05) is rejected, (shift, p)


# ----------------------------------------------------------------------------------------------
# C — clustered AI-agent dataset (docs/methods.md "Test vectors"; the generator is below)
# ----------------------------------------------------------------------------------------------


class LCG:
    """x_{k+1} = (1103515245 x_k + 12345) mod 2^31, u = x / 2^31."""

    def __init__(self, seed: int) -> None:
        self.x = seed

    def u(self) -> float:
        self.x = (1103515245 * self.x + 12345) % 2**31
        return self.x / 2**31


def make_arm(seed: int, K: int, lat_mult: float, p_success: float) -> tuple[np.ndarray, ...]:
    g = LCG(seed)
    turns = []
    convs = []
    for i in range(K):
        m = 0.5 + 1.5 * g.u()
        N = 1 + int(8 * g.u())
        succ = 1 if g.u() < p_success else 0
        tok_sum = 0
        for j in range(N):
            lat = lat_mult * m * (-np.log(1.0 - g.u())) * 1000.0
            tok = int(round(200 + 800 * g.u() * m))  # noqa: RUF046 - verbatim from the spec
            turns.append((i, j, lat, tok))
            tok_sum += tok
        convs.append((i, N, tok_sum, succ, round(tok_sum * 1e-5, 5)))
    return np.array(turns, float), np.array(convs, float)


@cache
def dataset() -> dict[str, tuple[np.ndarray, ...]]:
    return {
        "A": make_arm(seed=12345, K=200, lat_mult=1.0, p_success=0.60),
        "B": make_arm(seed=67890, K=200, lat_mult=0.9, p_success=0.66),
    }


def test_c_checksums() -> None:
    for arm, turns_n, tokens, successes, cost, latency in [
        ("A", 908, 620680, 107, 6.20680, 1123636.390693),
        ("B", 869, 575739, 121, 5.75739, 948743.277903),
    ]:
        turns, convs = dataset()[arm]
        assert len(convs) == 200 and len(turns) == turns_n
        assert convs[:, 2].sum() == tokens and convs[:, 3].sum() == successes
        assert convs[:, 4].sum() == pytest.approx(cost, abs=1e-9)
        assert turns[:, 2].sum() == pytest.approx(latency, abs=5e-7)


def ratio_sums(m: np.ndarray, d: np.ndarray, event_sq: float | None = None) -> RatioSums:
    return RatioSums(m.size, m.sum(), m @ m, d.sum(), d @ d, m @ d, event_sq)


def c1_sums(arm: str) -> RatioSums:
    turns, convs = dataset()[arm]
    tokens = turns[:, 3]
    return ratio_sums(convs[:, 2], convs[:, 1], float(tokens @ tokens))


def test_c1_tokens_per_turn() -> None:
    a, b = c1_sums("A"), c1_sums("B")
    assert a[:6] == (200, 620680, 2639414032, 908, 5186, 3548729)
    assert b[:6] == (200, 575739, 2247928767, 869, 4749, 3115441)
    c = stats.compare_ratio(a, b)
    assert near(c.baseline, "683.5682819") and near(c.current, "662.5304948")
    assert c.absolute is not None and c.relative is not None
    assert near(c.absolute.estimate, "-21.03778712") and near(c.absolute.se, "23.0049052")
    assert near(c.df, "397.694") and near(c.p_value, "0.361012826")
    assert interval_near(c.absolute, "-66.26420989", "24.18863566")
    assert near(c.relative.estimate, "-0.03077642376") and near(c.relative.se, "0.03315466259")
    assert near(c.relative_p_value, "0.3538314294")
    assert interval_near(c.relative, "-0.09595673093", "0.0344038834")
    # the naive turn-level SE (wrong) and the design effect (A6)
    assert near(c.naive_se, "16.30767731")
    assert c.design_effect is not None and near(math.sqrt(c.design_effect), "1.4107")
    assert c.warnings == ()


def test_c1_delta_method_is_cr0_up_to_n_over_n_minus_1() -> None:
    """The delta-method SE with n−1 moments is the cluster-robust CR0 SE × √(n/(n−1)) per arm
    (200 conversations in each arm here), so a turn-level KPI is analysed cluster-robustly."""
    a, b = (stats.ratio_summary(*c1_sums(k)[:6]) for k in "AB")
    cr0 = math.sqrt((a.variance / a.n + b.variance / b.n) * 199 / 200)
    assert near(cr0, "22.94732087")
    sm = pytest.importorskip("statsmodels.api")
    turns = np.concatenate([dataset()["A"][0], dataset()["B"][0]])
    treated = np.r_[np.zeros(908), np.ones(869)]
    groups = np.r_[dataset()["A"][0][:, 0], 1000 + dataset()["B"][0][:, 0]]
    fit = sm.OLS(turns[:, 3], sm.add_constant(treated)).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False}
    )
    assert math.isclose(fit.bse[1], cr0, rel_tol=1e-9)
    assert near(fit.params[1], "-21.03778712")


def c2_sums(arm: str) -> RatioSums:
    _, convs = dataset()[arm]
    return ratio_sums(convs[:, 4], convs[:, 3])


def test_c2_cost_per_successful_task() -> None:
    a, b = c2_sums("A"), c2_sums("B")
    c = stats.compare_ratio(a, b)
    assert near(c.baseline, "0.05800747664") and near(c.current, "0.04758173554")
    assert c.absolute is not None and c.relative is not None
    assert near(c.absolute.estimate, "-0.0104257411") and near(c.absolute.se, "0.005620663566")
    assert near(c.df, "362.086") and near(c.p_value, "0.0644238929")
    assert near(c.relative.estimate, "-0.1797309882") and near(c.relative.se, "0.08584435756")
    assert near(c.relative_p_value, "0.03698318692")
    assert interval_near(c.relative, "-0.3485471139", "-0.01091486244")
    # delta relative CI with z excludes 0 ...
    assert near(c.relative.estimate - Z975 * c.relative.se, "-0.34798284")
    assert near(c.relative.estimate + Z975 * c.relative.se, "-0.01147914")
    # ... Fieller (z) does not, consistent with the absolute p-value
    s_a, s_b = stats.ratio_summary(*a[:6]), stats.ratio_summary(*b[:6])
    f = stats.fieller_lift_interval(
        s_a.estimate, s_a.variance / s_a.n, s_b.estimate, s_b.variance / s_b.n, Z975
    )
    assert near(f.low, "-0.33125232") and near(f.high, "0.01163653") and near(f.g, "0.023713")
    fieller = stats.compare_ratio(a, b, relative_ci="fieller")
    assert fieller.relative is not None and fieller.relative.low < 0 < fieller.relative.high
    # the denominator diagnostic g = z²·Var(D̄)/D̄² per arm: below the 0.05 warning line
    for sums, successes in ((a, dataset()["A"][1][:, 3]), (b, dataset()["B"][1][:, 3])):
        g = stats.denominator_stability(sums.n, sums.d_sum, sums.d_sq)
        expected = Z975**2 * successes.var(ddof=1) / successes.size / successes.mean() ** 2
        assert math.isclose(g, expected, rel_tol=1e-12) and g < stats.G_WARN
    assert c.warnings == ()


def test_c3_task_success_rate() -> None:
    c = stats.compare_proportions(107, 200, 121, 200)
    assert c.test == "proportion_t" and c.absolute is not None and c.relative is not None
    assert near(c.absolute.estimate, "0.07") and near(c.absolute.se, "0.04938370176")
    assert near(c.p_value, "0.1571277454")
    assert near(c.relative.estimate, "0.1308411215") and near(c.relative.se, "0.09865094732")
    assert near(c.relative_p_value, "0.1854999872")
    fisher = stats.proportions_exact_test(107, 200, 121, 200, method="fisher")
    assert near(fisher, "0.18913603455331693")


def test_c4_turns_per_conversation() -> None:
    a, b = (_mean_of(dataset()[k][1][:, 1]) for k in "AB")
    c = stats.compare_summaries(a, b)
    assert near(c.baseline, "4.54") and near(c.current, "4.345")
    assert near(c.statistic, "-0.8619735876388868") and near(c.p_value, "0.38922211965343945")
    assert near(c.df, "397.2161169253755")


C5_ARMS = {
    "A": dict(
        n=908,
        q="3996.207832",
        ranks=(849, 876),
        bounds=("3508.686139", "4519.728723"),
        se_iid="257.923766",
        deff="1.103871",
        se="270.988298",
        sums=(863, 4715, 908, 5186, 4920),
    ),
    "B": dict(
        n=869,
        q="3439.267226",
        ranks=(812, 839),
        bounds=("3118.570880", "3686.820402"),
        se_iid="144.964277",
        deff="1.089738",
        se="151.328932",
        sums=(826, 4362, 869, 4749, 4528),
    ),
}


def c5_arm(arm: str, clustered: bool = True) -> stats.QuantileArm:
    turns, _ = dataset()[arm]
    return stats.quantile_arm(turns[:, 2], turns[:, 0] if clustered else None, 0.95)


@pytest.mark.parametrize("arm", ["A", "B"])
def test_c5_quantile_arm(arm: str) -> None:
    q = c5_arm(arm)
    want = C5_ARMS[arm]
    latency = dataset()[arm][0][:, 2]
    assert q.n == want["n"] and q.n_units == 200
    assert near(q.estimate, want["q"])  # type: ignore[arg-type]
    assert q.estimate == np.quantile(latency, 0.95, method="inverted_cdf")
    assert (q.lower_rank, q.upper_rank) == want["ranks"]
    assert near(q.lower, want["bounds"][0]) and near(q.upper, want["bounds"][1])  # type: ignore[index]
    assert near(q.se_iid, want["se_iid"]) and near(q.design_effect, want["deff"])  # type: ignore[arg-type]
    assert near(q.se, want["se"])  # type: ignore[arg-type]
    assert q.indicator is not None
    indicator = q.indicator
    assert (indicator.m_sum, indicator.m_sq, indicator.d_sum, indicator.d_sq, indicator.md_sum) == (
        want["sums"]
    )
    assert q.warnings == ()


def test_c5_compare_quantiles() -> None:
    c = stats.compare_quantiles(c5_arm("A"), c5_arm("B"))
    assert c.test == "quantile_outer_ci" and c.df is None
    assert c.absolute is not None and c.relative is not None
    assert near(c.absolute.estimate, "-556.940607") and near(c.absolute.se, "310.378967")
    assert interval_near(c.absolute, "-1165.272204", "51.390990")
    assert near(c.p_value, "0.0727511")
    assert near(c.naive_se, "295.870429")
    assert c.design_effect == pytest.approx((310.378967 / 295.870429) ** 2, rel=1e-7)
    assert near(c.relative.estimate, "-0.139367") and near(c.relative.se, "0.069570")
    assert interval_near(c.relative, "-0.275722", "-0.003013")
    iid = stats.compare_quantiles(c5_arm("A", False), c5_arm("B", False))
    assert iid.absolute is not None and near(iid.absolute.se, "295.870429")
    assert interval_near(iid.absolute, "-1136.835991", "22.954777")
    assert near(iid.p_value, "0.0597844") and iid.design_effect == pytest.approx(1.0)


def test_c5_gbstats_parity() -> None:
    """gbstats's QuantileClusteredStatistic: per-unit variance (n−1)·SE², Welch t."""
    a, b = (ArmSummary(q.estimate, (q.n - 1) * q.se**2, q.n) for q in (c5_arm("A"), c5_arm("B")))
    c = stats.compare_summaries(a, b)
    assert c.absolute is not None and c.relative is not None
    assert near(c.absolute.se, "310.2061821") and near(c.p_value, "0.07280485329")
    assert interval_near(c.absolute, "-1165.453359", "51.57214558")
    assert near(c.relative.estimate, "-0.1393672777") and near(c.relative.se, "0.06953102171")
    assert near(c.relative_p_value, "0.04521831391")


def test_c5_small_sample_point_estimate() -> None:
    q = stats.quantile_arm(dataset()["A"][0][:100, 2], None, 0.95)
    assert near(q.estimate, "3452.868066874987")


# ----------------------------------------------------------------------------------------------
# Behaviour on degenerate input and invariants
# ----------------------------------------------------------------------------------------------


def test_zero_variance_and_zero_baseline() -> None:
    c = stats.compare_summaries(ArmSummary(1.0, 0.0, 50), ArmSummary(2.0, 1.0, 50))
    assert c.p_value is None and c.absolute is None and c.warnings == (stats.ZERO_VARIANCE,)
    c = stats.compare_summaries(ArmSummary(1.0, 1.0, 1), ArmSummary(2.0, 1.0, 50))
    assert c.p_value is None and c.warnings == (stats.ZERO_VARIANCE,)
    c = stats.compare_summaries(ArmSummary(0.0, 1.0, 50), ArmSummary(0.5, 1.0, 50))
    assert c.p_value is not None and c.absolute is not None
    assert c.relative is None and c.warnings == (stats.BASELINE_ZERO,)
    empty = stats.compare_summaries(stats.mean_summary(0, 0, 0), stats.mean_summary(5, 5, 7))
    assert empty.baseline is None and empty.p_value is None


def test_negative_baseline_relative_sign() -> None:
    """(m_B − m_A)/|m_A| keeps the sign meaningful: −10 → −5 is +50 % (gbstats utils)."""
    for m_b, lift in ((-5.0, 0.5), (-15.0, -0.5), (3.0, 1.3)):
        a, b = ArmSummary(-10.0, 4.0, 100), ArmSummary(m_b, 4.0, 100)
        for method in ("delta", "fieller"):
            c = stats.compare_summaries(a, b, relative_ci=method)  # type: ignore[arg-type]
            assert c.relative is not None and c.relative.estimate == pytest.approx(lift)
            assert c.relative.low < lift < c.relative.high


@settings(max_examples=200, deadline=None)
@given(
    m_a=st.floats(-50, 50).filter(lambda v: abs(v) > 0.5),
    m_b=st.floats(-50, 50),
    s_a=st.floats(0.1, 100),
    s_b=st.floats(0.1, 100),
    n_a=st.integers(3, 500),
    n_b=st.integers(3, 500),
)
def test_fieller_ci_agrees_with_the_absolute_p_value(
    m_a: float, m_b: float, s_a: float, s_b: float, n_a: int, n_b: int
) -> None:
    c = stats.compare_summaries(
        ArmSummary(m_a, s_a, n_a), ArmSummary(m_b, s_b, n_b), relative_ci="fieller"
    )
    assert c.relative is not None and c.p_value is not None
    if abs(c.p_value - 0.05) < 1e-9:
        return
    if math.isinf(c.relative.low):  # g ≥ 1: Fieller's set is unbounded, reported as (−∞, ∞)
        assert any("Fieller interval unbounded" in w for w in c.warnings)
        return
    assert (c.relative.low > 0 or c.relative.high < 0) == (c.p_value < 0.05)


def test_ratio_denominator_diagnostic() -> None:
    # 4 successes in 300 units: g ≈ 0.96 → warning, not refusal
    d = np.r_[np.ones(4), np.zeros(296)]
    m = np.linspace(0.01, 0.2, 300)
    few = ratio_sums(m, d)
    g = stats.denominator_stability(few.n, few.d_sum, few.d_sq)
    assert stats.G_WARN < g < 1
    c = stats.compare_ratio(few, few)
    assert c.p_value is not None and any(
        "unstable denominator in the baseline" in w for w in c.warnings
    )
    # 3 successes: g ≥ 1 → CI refused
    d3 = np.r_[np.ones(3), np.zeros(297)]
    refused = stats.compare_ratio(ratio_sums(m, d3), few)
    assert refused.p_value is None and refused.absolute is None and refused.relative is None
    assert any("CI refused" in w for w in refused.warnings)
    # ΣD = 0: ratio undefined
    none = stats.compare_ratio(ratio_sums(m, np.zeros(300)), few)
    assert none.baseline is None and none.p_value is None
    assert any("denominator sum is 0 in the baseline" in w for w in none.warnings)


def test_quantile_guards() -> None:
    q = stats.quantile_arm(np.arange(50.0), None, 0.95)  # needs n > 73 for p95
    assert math.isnan(q.se) and "not enough data for p95" in q.warnings[0]
    ties = stats.quantile_arm(np.r_[np.zeros(10), np.ones(200)], None, 0.95)
    assert math.isnan(ties.se) and "ties" in ties.warnings[0]
    c = stats.compare_quantiles(q, c5_arm("A"))
    assert c.p_value is None and c.warnings[0].startswith("baseline: not enough data for p95")
    one_unit = stats.quantile_arm(np.arange(200.0), np.zeros(200), 0.95)
    assert math.isnan(one_unit.se) and one_unit.n_units == 1


def test_bootstrap_comparison_for_a_ratio() -> None:
    a, b = (dataset()[k][1] for k in "AB")

    def ratio(convs: np.ndarray) -> stats.UnitStatistic:  # one arm's per-unit sums
        return lambda w: (w @ convs[:, 2]) / (w @ convs[:, 1])

    c = stats.bootstrap_comparison(
        ratio(a), ratio(b), 200, 200, 620680 / 908, 575739 / 869, resamples=2000, seed=1
    )
    assert c.test == "bootstrap" and c.absolute is not None and c.relative is not None
    assert c.absolute.estimate == pytest.approx(-21.03778712, abs=1e-7)
    assert abs(c.absolute.se / 23.0049052 - 1) < 0.06  # bootstrap ≈ delta method (C1)
    assert c.p_value is not None and 0.25 < c.p_value < 0.5  # delta method: 0.361


def test_one_sample() -> None:
    x = S4_B
    c = stats.one_sample(_mean_of(x), 18.0)
    ref = scipy_stats.ttest_1samp(x, 18.0)
    assert c.test == "one_sample_t" and c.baseline == 18.0
    assert math.isclose(c.p_value or 0, ref.pvalue, rel_tol=1e-9) and c.df == x.size - 1
    assert c.absolute is not None and c.relative is not None
    low, high = ref.confidence_interval()
    assert (c.absolute.low + 18, c.absolute.high + 18) == pytest.approx((low, high), rel=1e-12)
    assert c.relative.estimate == pytest.approx((x.mean() - 18) / 18)
    assert stats.one_sample(_mean_of(x), 0.0).relative is None


def test_errors_on_misuse() -> None:
    with pytest.raises(ValueError, match="alpha"):
        stats.compare_summaries(G1_A, G1_B, alpha=1.5)
    with pytest.raises(ValueError, match="paired arrays differ"):
        stats.paired_t(np.ones(3), np.ones(4))
    assert isinstance(stats.compare_summaries(G1_A, G1_B), Comparison)


# ----------------------------------------------------------------------------------------------
# Calibration: false-positive rate on A/A splits, CI coverage on A/B with a known effect
# ----------------------------------------------------------------------------------------------

EXPERIMENTS = 2000
SEED = 20260517


def _sizes(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(300, 501, size=EXPERIMENTS)


def _by_experiment(sizes: np.ndarray, *weights: np.ndarray) -> list[np.ndarray]:
    owner = np.repeat(np.arange(EXPERIMENTS), sizes)
    return [np.bincount(owner, w, minlength=EXPERIMENTS) for w in weights]


def _clustered_units(
    rng: np.random.Generator, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Units of 1–8 turns with a unit-level multiplier (intra-cluster correlation)."""
    units = int(sizes.sum())
    turns = rng.integers(1, 9, size=units)
    multiplier = rng.uniform(0.5, 2.0, size=units)
    turn_unit = np.repeat(np.arange(units), turns)
    return turns, multiplier, turn_unit


Runs = tuple[list[Comparison], float, float]  # comparisons, true absolute and relative effect


def _proportion_runs(effect: float) -> Runs:
    rng = np.random.default_rng(SEED)
    n_a, n_b = _sizes(rng), _sizes(rng)
    x_a, x_b = rng.binomial(n_a, 0.30), rng.binomial(n_b, 0.30 + effect)
    runs = [
        stats.compare_proportions(int(xa), int(na), int(xb), int(nb))
        for xa, na, xb, nb in zip(x_a, n_a, x_b, n_b, strict=True)
    ]
    return runs, effect, effect / 0.30


def _mean_runs(scale: float) -> Runs:
    rng = np.random.default_rng(SEED + 1)
    n_a, n_b = _sizes(rng), _sizes(rng)
    y_a = rng.lognormal(0.0, 1.0, size=n_a.sum())
    y_b = scale * rng.lognormal(0.0, 1.0, size=n_b.sum())
    s_a, q_a = _by_experiment(n_a, y_a, y_a * y_a)
    s_b, q_b = _by_experiment(n_b, y_b, y_b * y_b)
    runs = [
        stats.compare_summaries(
            stats.mean_summary(int(na), sa, qa), stats.mean_summary(int(nb), sb, qb)
        )
        for na, sa, qa, nb, sb, qb in zip(n_a, s_a, q_a, n_b, s_b, q_b, strict=True)
    ]
    return runs, (scale - 1.0) * math.exp(0.5), scale - 1.0


def _ratio_arm(rng: np.random.Generator, sizes: np.ndarray, scale: float) -> list[RatioSums]:
    turns, multiplier, turn_unit = _clustered_units(rng, sizes)
    tokens = 200 + 800 * scale * rng.random(turn_unit.size) * multiplier[turn_unit]
    m = np.bincount(turn_unit, tokens, minlength=turns.size)
    d = turns.astype(float)
    sums = _by_experiment(sizes, m, m * m, d, d * d, m * d)
    return [RatioSums(int(n), *row) for n, *row in zip(sizes, *sums, strict=True)]


def _ratio_runs(scale: float) -> Runs:
    rng = np.random.default_rng(SEED + 2)
    n_a, n_b = _sizes(rng), _sizes(rng)
    a, b = _ratio_arm(rng, n_a, 1.0), _ratio_arm(rng, n_b, scale)
    runs = [stats.compare_ratio(x, y) for x, y in zip(a, b, strict=True)]
    # E[tokens per turn] = 200 + 800·E[u]·E[multiplier] = 200 + 800·½·1.25 = 700 (turns are
    # independent of the multiplier); the treatment scales the variable part
    delta = 800 * 0.5 * 1.25 * (scale - 1.0)
    return runs, delta, delta / 700.0


def _quantile_arms(
    rng: np.random.Generator, sizes: np.ndarray, shift: float
) -> list[stats.QuantileArm]:
    turns, multiplier, turn_unit = _clustered_units(rng, sizes)
    latency = multiplier[turn_unit] * rng.exponential(1000.0, size=turn_unit.size) + shift
    per_experiment = np.bincount(np.repeat(np.arange(EXPERIMENTS), sizes), turns)
    bounds = np.r_[0, np.cumsum(per_experiment)].astype(int)
    return [
        stats.quantile_arm(latency[lo:hi], turn_unit[lo:hi], 0.95)
        for lo, hi in itertools.pairwise(bounds)
    ]


@cache
def _true_p95() -> float:
    """p95 of turn latency m·Exp(1000) pooled over turns, m ~ U(0.5, 2) ⟂ turns per unit."""
    from scipy import integrate, optimize

    def cdf(x: float) -> float:
        tail, _ = integrate.quad(lambda m: math.exp(-x / (1000.0 * m)), 0.5, 2.0)
        return 1.0 - tail / 1.5

    return float(optimize.brentq(lambda x: cdf(x) - 0.95, 100.0, 50_000.0, xtol=1e-9))


def _quantile_runs(shift: float) -> Runs:
    rng = np.random.default_rng(SEED + 3)
    n_a, n_b = _sizes(rng), _sizes(rng)
    a, b = _quantile_arms(rng, n_a, 0.0), _quantile_arms(rng, n_b, shift)
    runs = [stats.compare_quantiles(x, y) for x, y in zip(a, b, strict=True)]
    return runs, shift, shift / _true_p95()


CALIBRATION = {
    "proportion": (_proportion_runs, 0.0, 0.05),
    "mean (lognormal)": (_mean_runs, 1.0, 1.15),
    "ratio (clustered turns)": (_ratio_runs, 1.0, 1.08),
    "p95 (clustered turns)": (_quantile_runs, 0.0, 400.0),
}


def _rates(runs: list[Comparison], absolute: float, relative: float) -> tuple[float, ...]:
    """(share of p < 0.05, share of absolute CIs covering the truth, same for relative CIs)."""
    assert all(r.absolute is not None and r.relative is not None for r in runs)
    rejected = np.mean([(r.p_value if r.p_value is not None else 1.0) < 0.05 for r in runs])
    covered = np.mean([r.absolute.low <= absolute <= r.absolute.high for r in runs if r.absolute])
    covered_rel = np.mean(
        [r.relative.low <= relative <= r.relative.high for r in runs if r.relative]
    )
    return float(rejected), float(covered), float(covered_rel)


@pytest.mark.parametrize("kpi", list(CALIBRATION))
def test_calibration(kpi: str) -> None:
    """A/A: false-positive rate at α = 0.05 in [0.03, 0.07]; A/B: 95 % CI coverage of the true
    absolute and relative effect in [0.93, 0.97]. 2000 experiments (binomial SD ≈ 0.5 pp on
    5 %), n = 300–500 units per arm, fixed seeds."""
    simulate, null, effect = CALIBRATION[kpi]
    fpr, coverage_aa, _ = _rates(*simulate(null))
    assert 0.03 <= fpr <= 0.07, f"{kpi}: false-positive rate {fpr:.4f}"
    assert 0.93 <= coverage_aa <= 0.97
    _, coverage, coverage_rel = _rates(*simulate(effect))
    assert 0.93 <= coverage <= 0.97, f"{kpi}: coverage {coverage:.4f}"
    assert 0.93 <= coverage_rel <= 0.97, f"{kpi}: relative coverage {coverage_rel:.4f}"


def test_calibration_small_sample_proportions_exactly() -> None:
    """n = 15 per arm, p = 0.3 (every table goes to the exact path): summing over all 256
    outcomes, the Boschloo test's size is ≤ α and the Newcombe CI covers 0 93–97 % of the time."""
    n = 15
    pmf = scipy_stats.binom.pmf(np.arange(n + 1), n, 0.3)
    size = coverage = 0.0
    for x_a in range(n + 1):
        for x_b in range(n + 1):
            c = stats.compare_proportions(x_a, n, x_b, n)
            constant = x_a == x_b and x_a in (0, n)  # 0 % vs 0 % or 100 % vs 100 %: no test
            assert c.test == ("identical_arms" if constant else "boschloo_exact")
            assert c.p_value is not None and c.absolute
            weight = pmf[x_a] * pmf[x_b]
            size += weight * (c.p_value < 0.05)
            coverage += weight * (c.absolute.low <= 0 <= c.absolute.high)
    assert size <= 0.05 and 0.93 <= coverage <= 0.97


def test_paired_edge_cases() -> None:
    assert stats.paired_t([1.0, 2.0], [1.0, 2.0]).warnings == (stats.ZERO_VARIANCE,)
    assert stats.wilcoxon_signed_rank([1.0, 2.0], [1.0, 2.0]).p_value is None
    tiny = stats.wilcoxon_signed_rank([1.0, 2.0, 3.0], [2.0, 4.0, 6.5])
    assert tiny.p_value is not None and any("too few pairs" in w for w in tiny.warnings)
    concordant = stats.mcnemar_comparison([1, 0, 1], [1, 0, 1])
    assert concordant.p_value == 1.0
    assert stats.paired_t([], []).warnings == (stats.NO_UNITS,)


def test_proportion_counts_are_validated() -> None:
    with pytest.raises(ValueError, match="successes"):
        stats.compare_proportions(12, 10, 3, 10)


# ----------------------------------------------------------------------------------------------
# A9 — sequential (always-valid) intervals and p-values: G4, S1
# ----------------------------------------------------------------------------------------------

N_G3 = 3000 + 3461  # total units of the G3 data


def test_g4_sequential_two_sided_mean() -> None:
    c = stats.sequential_comparison(stats.compare_summaries(G3_A, G1_B), N_G3, n_star=1000)
    assert c.test == "welch_t+sequential" and c.df is None
    assert c.relative is not None and c.absolute is not None
    assert near(c.relative.estimate, "0.50336") and near(c.relative.se, "0.33341")
    assert interval_near(c.relative, "-0.55844", "1.56516")
    assert c.relative_p_value == 1.0
    assert c.p_value == 1.0  # absolute: the same evidence, still min(1, ·)


def test_g4_sequential_two_sided_proportion() -> None:
    fixed = stats.compare_summaries(
        stats.proportion_summary(1396, 3000), stats.proportion_summary(2422, 3461)
    )
    c = stats.sequential_comparison(fixed, N_G3)  # N* = 5000, the default
    assert c.relative is not None
    assert near(c.relative.estimate, "0.50386") and near(c.relative.se, "0.03386")
    assert interval_near(c.relative, "0.40098", "0.60675")
    assert c.relative_p_value is not None and c.relative_p_value < 5e-6  # printed 0.0
    assert c.p_value is not None and c.p_value < 5e-6


def test_s1_sequential_multipliers() -> None:
    for n_star, multiplier in [
        (1000, "3.1846511446"),
        (5000, "3.0385174934"),
        (10_000, "3.0538966330"),
    ]:
        assert near(stats.sequential_multiplier(6461, n_star=n_star), multiplier)
        se = 0.3334122146400735
        half = stats.sequential_halfwidth(se, 6461, n_star=n_star)
        assert half == pytest.approx(float(multiplier) * se, rel=1e-10)
    assert near(Z975, "1.959964")
    # ρ² written out (A9): the mixing variance τ² = nρ²·SE² of the mSPRT is constant in n
    rho2 = (-2 * math.log(0.05) + math.log(1 - 2 * math.log(0.05))) / 1000
    assert stats.sequential_rho2(0.05, 1000) == pytest.approx(rho2, rel=1e-15)


@settings(max_examples=200, deadline=None)
@given(
    estimate=st.floats(-5, 5),
    se=st.floats(0.01, 3),
    n=st.integers(10, 100_000),
    n_star=st.floats(100, 50_000),
)
def test_sequential_p_value_agrees_with_the_confidence_sequence(
    estimate: float, se: float, n: int, n_star: float
) -> None:
    """p < α exactly when the always-valid CI at level α excludes 0 (A9)."""
    p = stats.sequential_p_value(estimate, se, n, n_star=n_star)
    half = stats.sequential_halfwidth(se, n, n_star=n_star)
    excludes = abs(estimate) > half
    if abs(abs(estimate) - half) < 1e-9 * half:
        return
    assert 0.0 <= p <= 1.0
    assert (p < 0.05) == excludes


def test_sequential_peeking_keeps_the_false_positive_rate() -> None:
    """A/A with 20 looks each: an always-valid p-value below α at any look (its running
    minimum) happens in at most α of 2000 experiments, while peeking at the fixed-horizon
    p-value does not."""
    rng = np.random.default_rng(SEED + 10)
    looks, step = 20, 100  # units per arm added between looks
    y = rng.normal(size=(EXPERIMENTS, 2, looks * step))
    cum = np.cumsum(y, axis=2)[:, :, step - 1 :: step]
    cum_sq = np.cumsum(y * y, axis=2)[:, :, step - 1 :: step]
    n = step * np.arange(1, looks + 1)
    var = (cum_sq - cum**2 / n) / (n - 1)
    delta = cum[:, 1] / n - cum[:, 0] / n
    se = np.sqrt((var[:, 0] + var[:, 1]) / n)
    sequential = fixed = 0
    for e in range(EXPERIMENTS):
        ps = [
            stats.sequential_p_value(float(d), float(s), 2 * int(k))
            for d, s, k in zip(delta[e], se[e], n, strict=True)
        ]
        sequential += min(ps) < 0.05
        fixed += bool(np.any(np.abs(delta[e] / se[e]) > Z975))
    assert sequential / EXPERIMENTS <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / EXPERIMENTS)
    assert fixed / EXPERIMENTS > 0.15  # peeking 20 times at a 5 % test


def test_sequential_edge_cases() -> None:
    assert math.isnan(stats.sequential_p_value(1.0, 0.0, 100))
    with pytest.raises(ValueError, match=r"N\*"):
        stats.sequential_rho2(0.05, 0)
    degenerate = stats.compare_summaries(ArmSummary(1.0, 0.0, 50), ArmSummary(2.0, 1.0, 50))
    assert stats.sequential_comparison(degenerate, 100) is degenerate


# ----------------------------------------------------------------------------------------------
# A10 — CUPED / regression adjustment: G7
# ----------------------------------------------------------------------------------------------

G7_A = stats.CupedSums(3001, 300, 600, 210, 415, -20)
G7_B = stats.CupedSums(3000, 222, 555, 120, 405, -10)


def test_g7a_cuped_count_metric() -> None:
    theta = stats.cuped_theta(G7_A, G7_B)
    assert near(theta, "-0.07321194")
    c = stats.compare_cuped(G7_A, G7_B)
    assert c.test == "cuped" and c.absolute is not None and c.relative is not None
    assert near(c.baseline, "0.099966678") and near(c.current, "0.074")  # unadjusted means
    assert near(c.relative.estimate, "-0.281707154") and near(c.relative.se, "0.097104876")
    assert near(c.relative_p_value, "0.003732549") and near(c.df, "5995.2404")
    assert near(c.absolute.estimate, "-0.028161328") and near(c.absolute.se, "0.011075983")
    assert near(c.p_value, "0.011029369")  # the p-value kpictl reports (absolute, A1 rule)
    assert stats.compare_cuped(G7_A, G7_B, theta=theta) == c


def test_g7b_cuped_binomial() -> None:
    assert near(stats.cuped_theta(G7_A, G7_B, binary=True), "-0.188246421")
    c = stats.compare_cuped(G7_A, G7_B, binary=True)
    assert c.relative is not None
    assert near(c.relative.estimate, "-0.31620216") and near(c.relative.se, "0.062015549")
    assert near(c.relative_p_value, "0.000000353")


def test_cuped_with_theta_zero_is_the_plain_comparison() -> None:
    c = stats.compare_cuped(G7_A, G7_B, theta=0.0)
    plain = stats.compare_summaries(
        stats.mean_summary(3001, 300, 600), stats.mean_summary(3000, 222, 555)
    )
    assert c.absolute is not None and plain.absolute is not None
    assert c.relative is not None and plain.relative is not None
    for ours, theirs in ((c.absolute, plain.absolute), (c.relative, plain.relative)):
        assert (ours.estimate, ours.se, ours.low, ours.high) == pytest.approx(
            (theirs.estimate, theirs.se, theirs.low, theirs.high), rel=1e-12
        )
    assert c.p_value == pytest.approx(plain.p_value, rel=1e-12)
    # a constant covariate carries no information: θ = 0
    flat = stats.CupedSums(100, 50, 70, 100, 100, 50)
    assert stats.cuped_theta(flat, flat) == 0.0


def test_cuped_degenerate_input() -> None:
    empty = stats.compare_cuped(stats.CupedSums(0, 0, 0, 0, 0, 0), G7_B)
    assert empty.p_value is None and empty.warnings == (stats.NO_UNITS,)
    zero = stats.compare_cuped(stats.CupedSums(100, 0, 0, 30, 40, 0), G7_B, theta=0.0)
    assert zero.p_value is None and zero.warnings == (stats.ZERO_VARIANCE,)
    base0 = stats.compare_cuped(stats.CupedSums(100, 0, 50, 30, 40, 5), G7_B)
    assert base0.p_value is not None and base0.relative is None
    assert base0.warnings == (stats.BASELINE_ZERO,)


def test_equal_values_have_zero_variance_not_a_negative_rounding_residue() -> None:
    """Σy² − (Σy)²/n of 200 equal costs of 0.02 is −1.9e-18 in floating point: compare's MDE
    took its square root and exited 70 ('math domain error'). The variance of equal values is
    0, for means and for ratios."""
    ys = [0.02] * 200
    total, total_sq = sum(ys), sum(y * y for y in ys)
    assert (total_sq - total * total / 200) / 199 < 0  # the residue this guards against
    assert stats.mean_summary(200, total, total_sq).variance == 0.0
    ratio = stats.ratio_summary(200, total, total_sq, 200.0, 200.0, total)
    assert ratio.estimate == pytest.approx(0.02, rel=1e-12) and ratio.variance >= 0.0
    assert stats.mde_mean(0.0, 0.0, 200, 200) == 0.0


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(
        st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0.0, -0.0, 1.0, 2.0]),
        min_size=1,
        max_size=400,
    ),
    data=st.data(),
)
def test_quantile_arm_order_statistics_and_unit_sums_by_hand(
    values: list[float], data: st.DataObject
) -> None:
    """The percentile arm's order statistics are those of the sorted values and its indicator
    sums are counted by hand per unit, whatever the units are: dense integer codes (counted),
    sparse integers or text (sorted) — the partition and the counted codes change no number."""
    unit = data.draw(
        st.sampled_from([st.integers(0, 40), st.integers(0, 10**9), st.text("abc", max_size=3)])
    )
    units = data.draw(st.lists(unit, min_size=len(values), max_size=len(values)))
    nu = data.draw(st.sampled_from([0.5, 0.9, 0.95]))
    arm = stats.quantile_arm(values, units, nu)
    ordered, n = sorted(values), len(values)
    assert arm.estimate == ordered[max(1, math.ceil(n * nu)) - 1]
    if arm.lower_rank is not None and arm.upper_rank is not None:
        assert (arm.lower, arm.upper) == (ordered[arm.lower_rank - 1], ordered[arm.upper_rank - 1])
    assert arm.n_units == len(set(units))
    if arm.indicator is not None:
        below = {u: 0 for u in units}
        rows = {u: 0 for u in units}
        for v, u in zip(values, units, strict=True):
            below[u] += v <= arm.estimate
            rows[u] += 1
        s, m = list(below.values()), list(rows.values())
        assert tuple(arm.indicator)[:6] == (
            len(rows),
            sum(s),
            sum(x * x for x in s),
            sum(m),
            sum(x * x for x in m),
            sum(a * b for a, b in zip(s, m, strict=True)),
        )


def test_quantile_arm_linear_estimate_is_numpys_to_the_bit() -> None:
    """`linear=True` takes the interpolated quantile's neighbours in the arm's own partition:
    its estimate must be `np.quantile(values, ν)` bit for bit (ties, n = 1 and 2, extreme ν,
    values with inf or a signed zero), and every other field the inverted-CDF arm's."""
    rng = np.random.default_rng(11)
    cases: list[np.ndarray] = [np.array([3.5]), np.array([2.0, -1.0]), np.array([-0.0, 0.0, 1.0])]
    cases += [np.array([1.0, np.inf, 2.0, 3.0]), np.array([np.nan, np.inf])]
    for n in (3, 7, 50, 101, 1000, 4099):
        cases.append(rng.lognormal(3.0, 1.2, n))
        cases.append(rng.integers(0, 5, n).astype(np.float64))  # heavy ties
        cases.append(rng.normal(0.0, 1e6, n) * 1e-3)
    for values in cases:
        units = np.arange(len(values)) // 3
        for nu in (1e-9, 0.1, 0.5, 0.9, 0.95, 0.975, 0.999, 1 - 1e-12):
            with np.errstate(invalid="ignore"):  # inf − inf in numpy's own interpolation
                arm = stats.quantile_arm(values, units, nu, linear=True)
                expected = np.float64(np.quantile(values, nu))
            plain = stats.quantile_arm(values, units, nu)
            assert np.array_equal(
                np.float64(arm.estimate).view(np.int64), expected.view(np.int64)
            ) or (np.isnan(arm.estimate) and np.isnan(expected)), (values[:5], nu)
            assert replace(arm, estimate=plain.estimate) == plain


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.integers(-5, 40).map(float),  # ties
            st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
            st.sampled_from([math.inf, -math.inf, 0.0]),
        ),
        min_size=1,
        max_size=120,
    ),
    seed=st.integers(0, 2**16),
    nu=st.sampled_from([0.5, 0.9, 0.95, 0.99, 0.1]),
    groups=st.integers(1, 4),
)
def test_a_quantile_arm_of_sorted_values_and_coded_units_is_the_arm_itself(
    values: list[float], seed: int, nu: float, groups: int
) -> None:
    """`presorted` + `coded_units` (compare's parts of one sample, comparison/partition.py):
    the same QuantileArm, field for field, as the part's values in their own order with their
    own unit ids — for every part (a group, the rest). (No −0.0: see the next test.)"""
    rng = np.random.default_rng(seed)
    x = np.abs(np.array(values)) * np.sign(np.array(values))  # -0.0 -> 0.0
    x[x == 0] = 0.0
    unit_ids = rng.integers(0, max(1, len(x) // 3 + 1), len(x)) * 7 + 1000  # sparse ids
    group = rng.integers(0, groups, len(x))
    codes, k = stats.quantiles.unit_codes(unit_ids)
    order = np.argsort(x, kind="stable")
    for chosen in [{0}, set(range(1, groups))]:
        mine = np.isin(group, sorted(chosen))
        kept = mine[order]
        with np.errstate(invalid="ignore"):  # np.quantile over infinities
            expected = stats.quantile_arm(x[mine], unit_ids[mine], nu, linear=True)
            got = stats.quantile_arm(
                x[order][kept], codes[order][kept], nu, linear=True, presorted=True, coded_units=k
            )
        assert repr(got) == repr(expected)


def test_presorted_values_with_a_signed_zero_are_refused() -> None:
    """Which of −0.0 and 0.0 lands at a rank (np.quantile's point) depends on the values'
    own order, which a sort loses: the caller must pass them in their order."""
    x = np.array([-0.0, 0.0, 0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="signed zero"):
        stats.quantile_arm(x, None, 0.5, presorted=True)
    assert stats.quantile_arm(x, None, 0.5, linear=True).n == 5


def test_unit_codes_of_no_values() -> None:
    codes, count = stats.unit_codes(np.array([], dtype=np.int64))
    assert (codes.size, count) == (0, 0)
    assert stats.quantile_arm([], codes, 0.5, coded_units=count, presorted=True).n == 0
