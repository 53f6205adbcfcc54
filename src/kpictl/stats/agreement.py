"""Cohen's kappa between two raters (docs/methods.md "Human review")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kpictl.stats.core import _check_alpha, _z


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
