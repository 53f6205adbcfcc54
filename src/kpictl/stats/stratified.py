"""Stratified estimates of a review round: rates, sensitivity, specificity and the
label-corrected (Rogan–Gladen) rate (docs/methods.md "Human review").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kpictl.stats.core import FloatArray, Interval, _check_alpha, normal_interval


@dataclass(frozen=True)
class ReviewEstimates:
    """Stratified estimates of one review round (see `stratified_review`)."""

    human: Interval  # human-labelled success rate
    self_reported: Interval  # the agent's self-reported rate on the same rows
    gap: Interval  # self_reported − human (positive: the agent claims more than it achieves)
    sensitivity: Interval | None  # P(self-reported success | human success); None: no such row
    specificity: Interval | None  # P(self-reported failure | human failure)
    logged_rate: float  # p_obs, the rate the Rogan–Gladen correction starts from
    logged_rate_known: bool  # True: the population's logged rate; False: estimated from rows
    corrected: Interval | None  # Rogan–Gladen, estimate and CI clipped to [0, 1]
    corrected_unclipped: float | None
    warnings: tuple[str, ...] = ()


def _stratified_variance(
    z: FloatArray, codes: npt.NDArray[np.int64], weights: FloatArray, fpc: FloatArray
) -> float:
    """Var of Σ_h W_h·mean_h(z): Σ_h W_h² (1 − n_h/N_h) s²_h(z) / n_h (s² with n_h − 1)."""
    total = 0.0
    for h, weight in enumerate(weights):
        values = z[codes == h]
        if values.size > 1:
            total += weight * weight * fpc[h] * float(values.var(ddof=1)) / values.size
    return total


def _strata_weights(
    codes: npt.NDArray[np.int64], sizes: Sequence[float]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(W_h, 1 − n_h/N_h, n_h) per stratum code; W_h = N_h / Σ N_h over the strata with rows.
    Sizes math.inf (unknown) are allowed for one stratum only (then W = 1, no FPC)."""
    population = np.asarray(sizes, dtype=np.float64)
    counts = np.bincount(codes, minlength=population.size).astype(np.float64)
    present = counts > 0
    if np.all(np.isinf(population[present])):
        if present.sum() > 1:
            raise ValueError("several strata need their sizes")
        return present.astype(np.float64), np.ones_like(counts), counts
    weights = np.where(present, population, 0.0)
    fpc = np.where(present, np.clip(1.0 - counts / population, 0.0, 1.0), 1.0)
    return weights / weights.sum(), fpc, counts


def stratified_proportion(
    values: npt.ArrayLike, strata: npt.ArrayLike, sizes: Sequence[float], alpha: float = 0.05
) -> Interval:
    """Σ_h W_h·mean_h(y) of 0/1 values with SE √(Σ_h W_h² (1 − n_h/N_h) s²_h/n_h) and a normal
    CI clipped to [0, 1] (weights and conventions as `stratified_review`)."""
    _check_alpha(alpha)
    y = np.asarray(values, dtype=np.float64)
    codes = np.asarray(strata, dtype=np.int64)
    if y.shape != codes.shape or y.size == 0:
        raise ValueError("values and strata must be non-empty and of one length")
    weights, fpc, counts = _strata_weights(codes, sizes)
    estimate = float(sum(weights[k] * y[codes == k].mean() for k in np.flatnonzero(counts)))
    se = math.sqrt(_stratified_variance(y, codes, weights, fpc))
    low, high = normal_interval(estimate, se, alpha)
    return Interval(estimate, se, max(low, 0.0), min(high, 1.0))


def stratified_review(
    human: npt.ArrayLike,
    self_reported: npt.ArrayLike,
    strata: npt.ArrayLike,
    sizes: Sequence[float],
    *,
    logged_rate: float | None = None,
    alpha: float = 0.05,
) -> ReviewEstimates:
    """Rates of a stratified review sample, each stratum weighted by its population size.

    `human`, `self_reported`: 0/1 per labelled row; `strata`: the row's stratum code 0…H−1;
    `sizes`: N_h per code (math.inf when unknown: no finite-population correction).
    Weights W_h = N_h / Σ N_h over the strata present. Every estimate is a stratified mean
    (rates) or a ratio of two (sensitivity Se, specificity Sp); SEs by Taylor linearisation:
    Var = Σ_h W_h² (1 − n_h/N_h) s²_h(z)/n_h of each row's influence value z.

    The label-corrected rate is Rogan–Gladen: θ = (p_obs + Sp − 1)/(Se + Sp − 1), clipped to
    [0, 1]. p_obs is `logged_rate` (the population's logged rate, exact) or, when None, the
    weighted self-reported rate of the rows (its sampling error then enters too). Its SE is the
    delta method over the rows: z_i = [−θ·u_i + (1 − θ)·v_i (+ (s_i − p_obs))] / (Se + Sp − 1),
    u_i, v_i the influence values of Se and Sp; CI θ ± z·SE, clipped to [0, 1].
    """
    _check_alpha(alpha)
    h = np.asarray(human, dtype=np.float64)
    s = np.asarray(self_reported, dtype=np.float64)
    codes = np.asarray(strata, dtype=np.int64)
    if not (h.shape == s.shape == codes.shape) or h.size == 0:
        raise ValueError("human, self_reported and strata must be non-empty and of one length")
    weights, fpc, counts = _strata_weights(codes, sizes)
    present = counts > 0
    warnings: list[str] = []
    singles = int(np.sum(counts == 1))
    if singles:
        warnings.append(
            f"{singles} stratum/strata with one labelled row add no variance: SEs are understated"
        )

    def mean(values: FloatArray) -> float:
        return float(sum(weights[k] * values[codes == k].mean() for k in np.flatnonzero(present)))

    def interval(estimate: float, z: FloatArray, low: float, high: float) -> Interval:
        se = math.sqrt(_stratified_variance(z, codes, weights, fpc))
        lo, hi = normal_interval(estimate, se, alpha)
        return Interval(estimate, se, max(lo, low), min(hi, high))

    human_rate = mean(h)
    self_rate = mean(s)
    d = s - h
    gap = mean(d)
    both = s * h
    neither = (1.0 - s) * (1.0 - h)
    positives = mean(h)
    negatives = 1.0 - positives
    sens = spec = None
    u = v = np.zeros_like(h)
    if positives > 0:
        se_value = mean(both) / positives
        u = (both - se_value * h) / positives
        sens = interval(se_value, u, 0.0, 1.0)
    else:
        warnings.append("no row labelled a success: sensitivity and the corrected rate undefined")
    if negatives > 0:
        sp_value = mean(neither) / negatives
        v = (neither - sp_value * (1.0 - h)) / negatives
        spec = interval(sp_value, v, 0.0, 1.0)
    else:
        warnings.append("no row labelled a failure: specificity and the corrected rate undefined")
    known = logged_rate is not None
    p_obs = float(logged_rate) if logged_rate is not None else self_rate
    corrected = None
    unclipped = None
    if sens is not None and spec is not None:
        youden = sens.estimate + spec.estimate - 1.0
        if youden <= 0:
            warnings.append(
                f"sensitivity + specificity = {sens.estimate + spec.estimate:.3f} <= 1: the "
                "self-reports carry no information on success; no corrected rate"
            )
        else:
            theta = (p_obs + spec.estimate - 1.0) / youden
            unclipped = theta
            z = -theta * u + (1.0 - theta) * v
            if not known:
                z = z + (s - p_obs)
            se = math.sqrt(_stratified_variance(z / youden, codes, weights, fpc))
            lo, hi = normal_interval(theta, se, alpha)
            if not 0.0 <= theta <= 1.0:
                warnings.append(
                    f"the corrected rate {theta:.4f} fell outside [0, 1] and is shown clipped"
                )
            corrected = Interval(
                min(max(theta, 0.0), 1.0), se, min(max(lo, 0.0), 1.0), min(max(hi, 0.0), 1.0)
            )
    return ReviewEstimates(
        human=interval(human_rate, h, 0.0, 1.0),
        self_reported=interval(self_rate, s, 0.0, 1.0),
        gap=interval(gap, d, -1.0, 1.0),
        sensitivity=sens,
        specificity=spec,
        logged_rate=p_obs,
        logged_rate_known=known,
        corrected=corrected,
        corrected_unclipped=unclipped,
        warnings=tuple(warnings),
    )
