"""Paired designs: McNemar's exact test, the paired t and Wilcoxon's signed-rank test with the
Hodges–Lehmann interval (docs/methods.md "Paired designs").
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from kpictl.stats.core import (
    BASELINE_ZERO,
    NO_UNITS,
    ZERO_VARIANCE,
    Comparison,
    FloatArray,
    Interval,
    _bounds,
    _check_alpha,
    _p_value,
    _z,
)
from kpictl.stats.ratios import ratio_summary

_WALSH_MAX_PAIRS = 5_000  # Hodges–Lehmann needs n(n+1)/2 Walsh averages in memory
_EXACT_WILCOXON_MAX = 50


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
