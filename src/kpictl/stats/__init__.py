"""Statistics for `compare`, `report` and `review`: every scipy call of kpictl lives here.

The rest of kpictl imports this package and calls its functions by name
(`from kpictl import stats; stats.compare_summaries(...)`); the modules hold one method family
each. docs/methods.md describes every method with its formulas, assumptions and references; its
sections carry the codes A0–A13 that the docstrings cite (A1 = "Two arms: Welch's t", …).

The functions are pure: sufficient statistics or numpy arrays in, frozen dataclasses out; they
never print. Degenerate inputs do not raise: they come back as a `Comparison` whose p-value is
None and whose `warnings` say why ("zero/negative variance", "baseline is 0: relative change
undefined"). Only misuse by the caller (unknown method, α outside (0, 1), arrays of different
lengths) raises `ValueError`. Every test is two-sided.

One engine for every mean-like KPI (A1): each arm is reduced to an `ArmSummary` (estimate m,
per-unit variance s², n) and two arms are compared with Welch's t and Welch–Satterthwaite df.
The p-value is always the one of the absolute-difference test (A1); the relative CI is the
delta-method one, or Fieller's with `relative_ci="fieller"`, which agrees with that p-value by
construction. `Comparison.statistic` is the test statistic (t, z, or the Wilcoxon W; None for
exact tests); `Comparison.relative_p_value` is the delta-method relative test's p-value (kept
for parity with the platforms' test vectors; never the p-value kpictl reports).

Modules, in import order:
    core           result types (`ArmSummary`, `Interval`, `Comparison`), messages, t/z helpers
    means          `compare_summaries` (Welch), relative change (delta, Fieller), `one_sample`
    ratios         `RatioSums`, `ratio_summary`, `compare_ratio` (delta method, A4, A6)
    proportions    `compare_proportions` with the small-sample exact tests (A2)
    quantiles      `QuantileArm`, `quantile_arm`, `compare_quantiles`, `unit_codes` (A5)
    paired         `mcnemar_comparison`, `paired_t`, `wilcoxon_signed_rank` (A13)
    bootstrap      `bootstrap_comparison`, `paired_bootstrap_comparison` (formula, pass^k)
    corrections    `adjust_p_values` (Holm, BH; A8)
    srm            `sample_ratio_mismatch` (A7)
    heterogeneity  `cochran_q` (Cochran's Q, I²)
    power          `mde_mean` (A12)
    sequential     always-valid intervals and p-values (A9)
    cuped          `compare_cuped` and its pieces (A10)
    agreement      `cohens_kappa`
    stratified     `stratified_proportion`, `stratified_review` (review rounds)
    trend          `round_trend`

Conventions pinned here: sample moments use n−1 (ratio and mean KPIs), proportions use
s² = p(1−p) (A2); percentile point estimates are the inverted-CDF order statistic X_(⌈nν⌉) and
their tests use z. Fieller's set is reported as (−∞, ∞) with a warning when g ≥ 1 (it is then
unbounded, possibly two rays), so only for g < 1 does it agree with the p-value exactly.

A new statistical test is a function in the module of its family (or a new module placed in
tests/test_layering.py's WITHIN["stats"]), re-exported here, and checked in
tests/test_stats.py against scipy, statsmodels or a hand value.
"""

from __future__ import annotations

from kpictl.stats.agreement import KappaEstimate, cohens_kappa
from kpictl.stats.bootstrap import (
    BootstrapInterval,
    bootstrap_comparison,
    paired_bootstrap_comparison,
)
from kpictl.stats.core import (
    BASELINE_ZERO,
    IDENTICAL_ARMS,
    NO_UNITS,
    ZERO_VARIANCE,
    ArmSummary,
    Comparison,
    FloatArray,
    Interval,
    RelativeCI,
    UnitStatistic,
    normal_interval,
    welch_df,
)
from kpictl.stats.corrections import PAdjust, adjust_p_values
from kpictl.stats.cuped import CupedSums, compare_cuped, cuped_summary, cuped_theta
from kpictl.stats.heterogeneity import CochranQ, cochran_q
from kpictl.stats.means import (
    FiellerInterval,
    compare_summaries,
    fieller_lift_interval,
    mean_summary,
    one_sample,
)
from kpictl.stats.paired import mcnemar_comparison, mcnemar_exact, paired_t, wilcoxon_signed_rank
from kpictl.stats.power import mde_mean
from kpictl.stats.proportions import (
    BOSCHLOO_MAX_TABLES,
    compare_proportions,
    exact_test_for,
    needs_exact_test,
    newcombe_interval,
    proportion_summary,
    proportions_exact_test,
    wilson_interval,
)
from kpictl.stats.quantiles import (
    QuantileArm,
    compare_quantiles,
    quantile_arm,
    quantile_label,
    unit_codes,
)
from kpictl.stats.ratios import (
    G_WARN,
    RatioSums,
    compare_ratio,
    denominator_stability,
    ratio_summary,
)
from kpictl.stats.sequential import (
    SEQUENTIAL_N_STAR,
    sequential_comparison,
    sequential_halfwidth,
    sequential_multiplier,
    sequential_p_value,
    sequential_rho2,
)
from kpictl.stats.srm import sample_ratio_mismatch
from kpictl.stats.stratified import ReviewEstimates, stratified_proportion, stratified_review
from kpictl.stats.trend import TrendEstimate, round_trend

__all__ = [
    "BASELINE_ZERO",
    "BOSCHLOO_MAX_TABLES",
    "G_WARN",
    "IDENTICAL_ARMS",
    "NO_UNITS",
    "SEQUENTIAL_N_STAR",
    "ZERO_VARIANCE",
    "ArmSummary",
    "BootstrapInterval",
    "CochranQ",
    "Comparison",
    "CupedSums",
    "FiellerInterval",
    "FloatArray",
    "Interval",
    "KappaEstimate",
    "PAdjust",
    "QuantileArm",
    "RatioSums",
    "RelativeCI",
    "ReviewEstimates",
    "TrendEstimate",
    "UnitStatistic",
    "adjust_p_values",
    "bootstrap_comparison",
    "cochran_q",
    "cohens_kappa",
    "compare_cuped",
    "compare_proportions",
    "compare_quantiles",
    "compare_ratio",
    "compare_summaries",
    "cuped_summary",
    "cuped_theta",
    "denominator_stability",
    "exact_test_for",
    "fieller_lift_interval",
    "mcnemar_comparison",
    "mcnemar_exact",
    "mde_mean",
    "mean_summary",
    "needs_exact_test",
    "newcombe_interval",
    "normal_interval",
    "one_sample",
    "paired_bootstrap_comparison",
    "paired_t",
    "proportion_summary",
    "proportions_exact_test",
    "quantile_arm",
    "quantile_label",
    "ratio_summary",
    "round_trend",
    "sample_ratio_mismatch",
    "sequential_comparison",
    "sequential_halfwidth",
    "sequential_multiplier",
    "sequential_p_value",
    "sequential_rho2",
    "stratified_proportion",
    "stratified_review",
    "unit_codes",
    "welch_df",
    "wilcoxon_signed_rank",
    "wilson_interval",
]
