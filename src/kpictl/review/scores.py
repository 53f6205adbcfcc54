"""Scoring review rounds: `score_round` (confusion matrix, kappa, weighted rates and their gap,
sensitivity, specificity, the label-corrected rate, the hallucination rate) and `score_review`
(every round, in time order, and the trend of the gap).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kpictl import stats
from kpictl.errors import InputDataError, UsageError
from kpictl.review.labels import ReviewRound, read_review


@dataclass(frozen=True)
class HallucinationRate:
    """Rows labelled hallucination = 1 of the rows with that label (unweighted), Wilson CI;
    and, when those rows span several strata, the stratum-weighted rate (normal CI)."""

    count: int
    n: int
    rate: float
    low: float
    high: float
    weighted: stats.Interval | None = None


@dataclass(frozen=True)
class RoundScore:
    """One scored round."""

    round: ReviewRound
    confusion: tuple[tuple[int, int], tuple[int, int]]  # rows human 1/0, columns agent 1/0
    kappa: stats.KappaEstimate
    estimates: stats.ReviewEstimates
    hallucination: HallucinationRate | None
    notes: tuple[str, ...] = ()

    @property
    def labelled(self) -> int:
        """Rows with a human_success label."""
        return len(self.round.human)


@dataclass(frozen=True)
class ReviewScore:
    """Every round, oldest first, and the trend of the self-report gap over them."""

    rounds: tuple[RoundScore, ...]
    trend: stats.TrendEstimate | None
    alpha: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def latest(self) -> RoundScore:
        """The most recent round."""
        return self.rounds[-1]

    @property
    def trend_verdict(self) -> str:
        """Whether the gap between self-reported and human-labelled success widens."""
        if len(self.rounds) < 2:
            return "one round: no trend yet"
        if self.trend is None:
            return (
                "no trend test: a round has no disagreement at all, so its gap has no "
                "standard error"
            )
        slope = self.trend.slope.estimate
        level = f"p = {self.trend.p_value:.3f}"
        per_round = f"{slope * 100:+.1f} pp per round"
        if self.trend.p_value < self.alpha:
            word = "widens" if slope > 0 else "narrows"
            return f"the gap {word} ({per_round}, {level})"
        return f"no clear trend in the gap ({per_round}, {level})"


def score_round(review: ReviewRound, alpha: float = 0.05) -> RoundScore:
    """Agreement and the weighted rates of one round (see module docstring)."""
    if not review.human:
        raise InputDataError(
            f"{review.path}: no row has a human_success label yet; label rows 1/0 (or yes/no) "
            "and score again"
        )
    h = np.asarray(review.human)
    s = np.asarray(review.self_reported)
    tp = int(np.sum((h == 1) & (s == 1)))
    fn = int(np.sum((h == 1) & (s == 0)))
    fp = int(np.sum((h == 0) & (s == 1)))
    tn = int(np.sum((h == 0) & (s == 0)))
    kappa = stats.cohens_kappa([[tp, fn], [fp, tn]], alpha)
    logged = None
    notes = list(review.notes)
    if review.stratum_self_reported is not None and not math.isinf(review.stratum_sizes[0]):
        present = sorted(set(review.strata))
        logged = sum(review.stratum_self_reported[i] for i in present) / sum(
            review.stratum_sizes[i] for i in present
        )
    else:
        notes.append(
            "no stratum_self_reported column: the logged rate is estimated from the rows, and "
            "its sampling error enters the corrected rate's CI"
        )
    estimates = stats.stratified_review(
        h, s, review.strata, review.stratum_sizes, logged_rate=logged, alpha=alpha
    )
    halluc = None
    if review.hallucination:
        count, n = sum(review.hallucination), len(review.hallucination)
        low, high = stats.wilson_interval(count, n, alpha)
        weighted = None
        if len(set(review.hallucination_strata)) > 1:
            weighted = stats.stratified_proportion(
                review.hallucination, review.hallucination_strata, review.stratum_sizes, alpha
            )
        halluc = HallucinationRate(count, n, count / n, low, high, weighted)
    return RoundScore(
        review,
        ((tp, fn), (fp, tn)),
        kappa,
        estimates,
        halluc,
        tuple(notes + list(estimates.warnings)),
    )


def score_review(paths: Sequence[str | Path], alpha: float = 0.05) -> ReviewScore:
    """Score every review file (one per round), oldest first, and the gap's trend."""
    if not paths:
        raise UsageError("no review file: pass one CSV per review round")
    rounds = [read_review(p) for p in paths]
    notes: list[str] = []
    if all(r.sampled_at is not None for r in rounds):
        rounds.sort(key=lambda r: _utc(r.sampled_at))
    elif len(rounds) > 1:
        notes.append("rounds ordered as given: not every file has a sampled_at column")
    scores = [score_round(r, alpha) for r in rounds]
    trend = stats.round_trend(
        [s.estimates.gap.estimate for s in scores], [s.estimates.gap.se for s in scores], alpha
    )
    return ReviewScore(tuple(scores), trend, alpha, tuple(notes))


def _utc(value: dt.datetime | None) -> dt.datetime:
    assert value is not None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
