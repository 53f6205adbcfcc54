"""The minimum detectable effect of a comparison (docs/methods.md "Minimum detectable
effect").
"""

from __future__ import annotations

import math

from kpictl.stats.core import _check_alpha, _z


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
