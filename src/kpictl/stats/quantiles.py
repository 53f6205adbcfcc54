"""Percentiles: the inverted-CDF estimate, the outer order-statistic interval and its cluster
adjustment (docs/methods.md "Percentiles").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from kpictl.stats.core import ArmSummary, Comparison, Interval, _bounds, _check_alpha, _p_value, _z
from kpictl.stats.means import _relative
from kpictl.stats.ratios import RatioSums, ratio_summary


@dataclass(frozen=True)
class QuantileArm:
    """One arm of a percentile KPI (A5).

    n counts the values (events), n_units the clusters (= n without units). lower_rank/upper_rank
    are the outer-CI ranks L, U (1-based) and lower/upper the order statistics X_(L), X_(U).
    se_iid = (X_(U) − X_(L))/(2z); se = se_iid·√design_effect (Yao–Li–Lu cluster adjustment).
    `indicator` holds the sums of S_i = #{values of unit i ≤ Q̂} over N_i values of unit i.
    When the guards fail, se/se_iid are nan and `warnings` says why.
    """

    nu: float
    n: int
    n_units: int
    estimate: float
    se: float
    se_iid: float
    design_effect: float
    lower_rank: int | None = None
    upper_rank: int | None = None
    lower: float | None = None
    upper: float | None = None
    indicator: RatioSums | None = None
    warnings: tuple[str, ...] = ()


def quantile_label(nu: float) -> str:
    """`p95` for ν = 0.95, `p99.9` for ν = 0.999."""
    return f"p{round(nu * 100, 6):g}"


def _not_enough(nu: float, reason: str) -> str:
    return f"not enough data for {quantile_label(nu)}: {reason}"


def _quantile_guard(n: int, nu: float, z: float) -> str | None:
    need = max(z * z * nu / (1.0 - nu), z * z * (1.0 - nu) / nu)
    if n <= need:
        return _not_enough(nu, f"need more than {math.floor(need)} values (have {n})")
    return None


def quantile_arm(
    values: npt.ArrayLike,
    units: npt.ArrayLike | None,
    nu: float,
    alpha: float = 0.05,
    *,
    linear: bool = False,
    presorted: bool = False,
    coded_units: int | None = None,
) -> QuantileArm:
    """One percentile arm: inverted-CDF estimate, outer CI, cluster-adjusted SE (A5).

    `linear`: `estimate` is instead the linearly interpolated quantile, `np.quantile(values,
    nu)` to the bit (compare's point estimate, as `compute` reports it), its two order
    statistics taken in the partition that finds the others; the CI, SE and indicator still
    use the inverted-CDF Q̂.

    Q̂ = X_(⌈nν⌉); ranks L = ⌊nν − z√(nν(1−ν))⌋, U = ⌈nν + z√(nν(1−ν))⌉; SE_iid =
    (X_(U) − X_(L))/(2z). With `units` (one unit id per value) the Yao–Li–Lu adjustment
    multiplies the variance by deff = σ²_I,c/σ²_I,iid, where σ²_I,c is the A4 delta variance of
    ΣS/ΣN over units divided by K and σ²_I,iid = ν(1−ν)/n (gbstats `QuantileClusteredStatistic`).
    Guards: n > z²ν/(1−ν) (and z²(1−ν)/ν), X_(U) > X_(L), K > 1. Non-finite values are dropped.

    `presorted`: `values` are in ascending order (the order statistics are read, not found),
    with no signed zero (−0.0: which zero lands at a rank depends on the values' own order,
    which a sort has lost — ValueError); `coded_units`: `units` are codes in [0, coded_units)
    (`unit_codes` of a larger sample, of which these values are a part). Both give the same
    numbers, for many arms of one sample.
    """
    _check_alpha(alpha)
    if not 0.0 < nu < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {nu}")
    x = np.asarray(values, dtype=np.float64).ravel()
    if coded_units is not None:
        unit_ids = None if units is None else np.asarray(units, dtype=np.intp).ravel()
    else:
        unit_ids = None if units is None else _unit_ids(units)
    if unit_ids is not None and unit_ids.shape != x.shape:
        raise ValueError("values and units must have the same length")
    warnings: list[str] = []
    keep = np.isfinite(x)
    kept = x  # the values as given, for np.quantile when some are dropped
    if not keep.all():
        warnings.append(f"dropped {int((~keep).sum())} missing or non-finite values")
        x = x[keep]
        unit_ids = None if unit_ids is None else unit_ids[keep]
    n = int(x.size)
    nan = math.nan
    if n == 0:
        point = float(np.quantile(kept, nu)) if linear and len(kept) else nan
        return QuantileArm(
            nu, 0, 0, point, nan, nan, nan, warnings=(*warnings, _not_enough(nu, "no values"))
        )
    z = _z(1.0 - alpha / 2.0)
    centre, spread = n * nu, z * math.sqrt(n * nu * (1.0 - nu))
    lower_rank, upper_rank = math.floor(centre - spread), math.ceil(centre + spread)
    rank = max(1, math.ceil(n * nu))
    ranks = [r for r in (rank, lower_rank, upper_rank) if 1 <= r <= n]
    exact = linear and kept is x and not _signed_zero(x)
    if exact:  # the linear quantile's two neighbours (1-based), as np.quantile finds them
        virtual, below_linear, above_linear = _linear_ranks(n, nu)
        ranks += [below_linear, above_linear]
    if presorted and _signed_zero(x):
        raise ValueError("presorted values hold a signed zero (-0.0): pass them in their order")
    xs = x if presorted else _order_statistics(x, ranks)
    estimate = float(xs[rank - 1])
    if not linear:
        point = estimate
    elif exact:
        point = _lerp(float(xs[below_linear - 1]), float(xs[above_linear - 1]), virtual)
    else:  # non-finite values or a signed zero: numpy's own result
        point = float(np.quantile(kept, nu))
    counts = None  # values per unit
    if unit_ids is None:
        codes = np.arange(n)
        k_units = n
    elif coded_units is not None:
        codes = unit_ids
        counts = np.bincount(codes, minlength=coded_units)
        k_units = int(np.count_nonzero(counts))
    else:
        codes, k_units = _unit_codes(unit_ids)
    base = QuantileArm(nu, n, k_units, point, nan, nan, nan)
    guard = _quantile_guard(n, nu, z)
    if guard is None and (lower_rank < 1 or upper_rank > n):
        guard = _not_enough(nu, "outer CI ranks outside the data")
    if guard is not None:
        return _replace_arm(base, warnings=(*warnings, guard))
    lower, upper = float(xs[lower_rank - 1]), float(xs[upper_rank - 1])
    base = _replace_arm(
        base, lower_rank=lower_rank, upper_rank=upper_rank, lower=lower, upper=upper
    )
    if not upper > lower:
        return _replace_arm(
            base, warnings=(*warnings, _not_enough(nu, "ties at the quantile (X_(U) = X_(L))"))
        )
    se_iid = (upper - lower) / (2.0 * z)
    if unit_ids is None:
        return _replace_arm(
            base, se=se_iid, se_iid=se_iid, design_effect=1.0, warnings=tuple(warnings)
        )
    if counts is None:
        below = (x <= estimate).astype(np.float64)
        s = np.bincount(codes, weights=below, minlength=k_units)
        m = np.bincount(codes, minlength=k_units).astype(np.float64)
    else:  # coded units (zero for a unit of the larger sample not here: the sums are the same)
        assert coded_units is not None
        if presorted:  # the values ≤ Q̂ are a prefix
            r = int(np.searchsorted(x, estimate, side="right"))
            s = np.bincount(codes[:r], minlength=coded_units).astype(np.float64)
        else:
            s = np.bincount(codes[x <= estimate], minlength=coded_units).astype(np.float64)
        m = counts.astype(np.float64)
    indicator = RatioSums(
        k_units,
        float(s.sum()),
        float(s @ s),
        float(m.sum()),
        float(m @ m),
        float(s @ m),
    )
    base = _replace_arm(base, se_iid=se_iid, indicator=indicator)
    if k_units <= 1:
        return _replace_arm(
            base, warnings=(*warnings, _not_enough(nu, "a clustered SE needs more than 1 unit"))
        )
    var_cluster = ratio_summary(*indicator[:6]).variance / k_units
    deff = var_cluster / (nu * (1.0 - nu) / n)
    if not deff > 0:
        return _replace_arm(
            base, warnings=(*warnings, _not_enough(nu, "no variation between units"))
        )
    return _replace_arm(
        base, se=se_iid * math.sqrt(deff), design_effect=deff, warnings=tuple(warnings)
    )


def _linear_ranks(n: int, nu: float) -> tuple[float, int, int]:
    """numpy's linear method (Hyndman–Fan 7): the virtual index (n − 1)ν and the 1-based ranks
    of its two neighbours, both the largest value when the index reaches n − 1."""
    virtual = (n - 1) * nu
    if virtual >= n - 1:
        return virtual, n, n
    below = math.floor(virtual)
    return virtual, below + 1, below + 2


def _lerp(a: float, b: float, virtual: float) -> float:
    """numpy's `_lerp` for one value: a + (b − a)·γ, from b's side when γ ≥ 0.5, with γ the
    virtual index's fraction (a = b at the top, where γ does not matter)."""
    gamma = virtual - math.floor(virtual)
    diff = b - a
    return b - diff * (1.0 - gamma) if gamma >= 0.5 else a + diff * gamma


def _signed_zero(x: npt.NDArray[np.float64]) -> bool:
    zeros = x == 0.0
    return bool(zeros.any() and np.signbit(x[zeros]).any())


def _order_statistics(x: npt.NDArray[np.float64], ranks: list[int]) -> npt.NDArray[np.float64]:
    """`x` with the values of the given 1-based ranks in their sorted places (the others in no
    particular order): a partition, O(n), where a sort is O(n log n). A signed zero sorts equal
    to 0.0 and which one lands at a rank is the sort's to say, so with one the sort is kept."""
    if _signed_zero(x):
        return np.sort(x, kind="stable")
    return np.partition(x, sorted({r - 1 for r in ranks})) if ranks else x


def unit_codes(units: npt.ArrayLike) -> tuple[npt.NDArray[np.intp], int]:
    """Each value's unit as 0..K−1 (in the order of the sorted unit ids), and K: the codes
    `quantile_arm(…, coded_units=K)` takes for any part of these values."""
    return _unit_codes(_unit_ids(units))


def _unit_codes(unit_ids: npt.NDArray[Any]) -> tuple[npt.NDArray[np.intp], int]:
    """Each value's unit as 0..K−1 in the order of the sorted unit ids (`np.unique`'s inverse),
    and K (0 without values). Integer ids in a range not much wider than their count
    (compare's dense ranks) are coded by counting, O(n), instead of by sorting."""
    if not unit_ids.size:
        return np.zeros(0, dtype=np.intp), 0
    if unit_ids.dtype.kind in "iu" and unit_ids.size:
        low, high = int(unit_ids.min()), int(unit_ids.max())
        if high - low < 4 * unit_ids.size:
            offsets = unit_ids.astype(np.int64) - low
            present = np.zeros(high - low + 1, dtype=bool)
            present[offsets] = True
            order = np.cumsum(present) - 1
            return order[offsets].astype(np.intp), int(order[-1]) + 1
    _, codes = np.unique(unit_ids, return_inverse=True)
    codes = codes.ravel()
    return codes, int(codes.max()) + 1


def _unit_ids(units: npt.ArrayLike) -> npt.NDArray[Any]:
    """Unit ids as a sortable 1-d array (object arrays, e.g. strings with None, become str)."""
    ids = np.asarray(units).ravel()
    return ids.astype(str) if ids.dtype == object else ids


def _replace_arm(arm: QuantileArm, **changes: Any) -> QuantileArm:
    return replace(arm, **changes)


def compare_quantiles(
    baseline: QuantileArm, current: QuantileArm, *, alpha: float = 0.05
) -> Comparison:
    """Difference of two percentiles (A5): Δ = Q̂_B − Q̂_A, SE = √(SE_A² + SE_B²), normal CI and
    p (z reproduces vector C5), relative by the A1 delta formula with Var(Q̂_g) = SE_g².
    `naive_se` is the SE without the cluster adjustment, `design_effect` = SE²/naive SE²."""
    _check_alpha(alpha)
    if baseline.nu != current.nu:
        raise ValueError(f"quantile levels differ: {baseline.nu} vs {current.nu}")
    m_a = baseline.estimate if math.isfinite(baseline.estimate) else None
    m_b = current.estimate if math.isfinite(current.estimate) else None
    arm_warnings = tuple(
        f"{arm}: {w}"
        for arm, q in (("baseline", baseline), ("current", current))
        for w in q.warnings
    )
    if m_a is None or m_b is None or not (baseline.se > 0 and current.se > 0):
        return Comparison("quantile_outer_ci", m_a, m_b, None, None, None, None, arm_warnings)
    se = math.hypot(baseline.se, current.se)
    naive = math.hypot(baseline.se_iid, current.se_iid)
    delta = m_b - m_a
    statistic = delta / se
    absolute = Interval(delta, se, *_bounds(delta, se, alpha, None))
    relative, relative_p, warnings = _relative(
        ArmSummary(m_a, baseline.se**2, 1),
        ArmSummary(m_b, current.se**2, 1),
        None,
        alpha=alpha,
        relative_ci="delta",
    )
    return Comparison(
        test="quantile_outer_ci",
        baseline=m_a,
        current=m_b,
        absolute=absolute,
        relative=relative,
        p_value=_p_value(statistic, None),
        df=None,
        warnings=(*arm_warnings, *warnings),
        design_effect=(se / naive) ** 2,
        naive_se=naive,
        statistic=statistic,
        relative_p_value=relative_p,
    )
