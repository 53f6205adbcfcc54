"""The sample-ratio-mismatch check of a randomized split (docs/methods.md "Sample ratio
mismatch").
"""

from __future__ import annotations

from collections.abc import Sequence


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
    from scipy import special  # in the call: see stats/core.py

    return chi2, float(special.chdtrc(len(pairs) - 1, chi2))
