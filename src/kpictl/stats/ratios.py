"""Ratios of sums by the delta method, the denominator-stability diagnostic and the design
effect (docs/methods.md "Ratios of sums", "Clustered data and the design effect").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from kpictl.stats.core import (
    ArmSummary,
    Comparison,
    RelativeCI,
    _check_alpha,
    _estimate_or_none,
    _z,
)
from kpictl.stats.means import compare_summaries

G_WARN = 0.05  # denominator-stability threshold for a warning (A4)


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
