"""The trend of an estimate over review rounds (docs/methods.md "Human review")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kpictl.stats.core import Interval, _p_value, normal_interval


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
