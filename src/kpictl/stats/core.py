"""Result types, messages and the distribution helpers every test shares (docs/methods.md
"Two arms: Welch's t").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

RelativeCI = Literal["delta", "fieller"]
FloatArray = npt.NDArray[np.float64]
UnitStatistic = Callable[[FloatArray], FloatArray]
ZERO_VARIANCE = "zero/negative variance"
BASELINE_ZERO = "baseline is 0: relative change undefined"
NO_UNITS = "no units in one of the arms"
IDENTICAL_ARMS = "identical_arms"  # the test name when no test is needed (p = 1)


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


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


# scipy.special (0.2 s of import) is imported by the functions that call it: a command that
# imports the stats package without testing anything (`kpictl review sample`) does not load it.


def _z(q: float) -> float:
    from scipy import special

    return float(special.ndtri(q))


def _crit(q: float, df: float | None) -> float:
    """Quantile q of Student's t with df (normal when df is None or infinite)."""
    if df is None or not math.isfinite(df):
        return _z(q)
    from scipy import special

    return float(special.stdtrit(df, q))


def _cdf(x: float, df: float | None) -> float:
    from scipy import special

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


def welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch–Satterthwaite df from per-unit variances s² and sizes n (A1)."""
    va, vb = var_a / n_a, var_b / n_b
    return (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))


def _add_warnings(comparison: Comparison, extra: Sequence[str]) -> Comparison:
    return replace(comparison, warnings=(*comparison.warnings, *extra))


def normal_interval(estimate: float, se: float, alpha: float = 0.05) -> tuple[float, float]:
    """estimate ± z_{1−α/2}·se."""
    _check_alpha(alpha)
    z = _z(1.0 - alpha / 2.0)
    return estimate - z * se, estimate + z * se
