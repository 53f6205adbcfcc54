"""Cochran's Q and I² over the groups' effects (docs/methods.md "Heterogeneity and
fairness").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
    from scipy import special  # in the call: see stats/core.py

    return CochranQ(q, df, float(special.chdtrc(df, q)), pooled, i2)
