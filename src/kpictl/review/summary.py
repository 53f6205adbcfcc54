"""A review score's numbers for the renderers (pure: text rows and dicts; the rich table is
`kpictl.render.table`'s): `summary_rows`, `trend_rows`, `method_note`, `review_json`.
"""

from __future__ import annotations

from typing import Any

from kpictl import stats
from kpictl.review.scores import ReviewScore, RoundScore


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _pp(value: float) -> str:
    return f"{value * 100:+.1f} pp"


def _estimate(interval: stats.Interval | None) -> float | None:
    return None if interval is None else interval.estimate


def _ci(interval: stats.Interval | None, fmt: Any = _pct) -> str:
    if interval is None:
        return "—"
    return f"{fmt(interval.low)} to {fmt(interval.high)}"


def summary_rows(score: RoundScore) -> list[tuple[str, str, str]]:
    """(measure, value, CI) rows of one round, in the order every format shows them."""
    e = score.estimates
    k = score.kappa
    logged = "population" if e.logged_rate_known else "labelled rows, weighted"
    rows = [
        ("labelled conversations", f"{score.labelled} of {score.round.rows}", ""),
        (
            "self-reported success (labelled rows)",
            _pct(e.self_reported.estimate),
            _ci(e.self_reported),
        ),
        ("human-labelled success", _pct(e.human.estimate), _ci(e.human)),
        ("gap (self-reported − human)", _pp(e.gap.estimate), _ci(e.gap, _pp)),
        ("sensitivity of the self-report", _pct(_estimate(e.sensitivity)), _ci(e.sensitivity)),
        ("specificity of the self-report", _pct(_estimate(e.specificity)), _ci(e.specificity)),
        (
            "Cohen's kappa (human vs self-report)",
            "—" if k.kappa is None else f"{k.kappa:.3f}",
            "—" if k.low is None else f"{k.low:.3f} to {k.high:.3f}",
        ),
        (f"logged completion rate ({logged})", _pct(e.logged_rate), ""),
        (
            "label-corrected completion rate (Rogan–Gladen)",
            _pct(_estimate(e.corrected)),
            _ci(e.corrected),
        ),
    ]
    if score.hallucination is not None:
        hr = score.hallucination
        rows.append(
            (
                f"hallucination rate ({hr.count} of {hr.n} labelled, unweighted)",
                _pct(hr.rate),
                f"{_pct(hr.low)} to {_pct(hr.high)}",
            )
        )
        if hr.weighted is not None:
            rows.append(
                (
                    "hallucination rate, stratum-weighted",
                    _pct(hr.weighted.estimate),
                    _ci(hr.weighted),
                )
            )
    return rows


def trend_rows(score: ReviewScore) -> list[tuple[str, str, str, str, str, str]]:
    """(round, labelled, self-reported, human, gap, gap CI) per round, oldest first."""
    return [
        (
            s.round.label,
            str(s.labelled),
            _pct(s.estimates.self_reported.estimate),
            _pct(s.estimates.human.estimate),
            _pp(s.estimates.gap.estimate),
            _ci(s.estimates.gap, _pp),
        )
        for s in score.rounds
    ]


def method_note(score: ReviewScore) -> str:
    """How the numbers were made, in one paragraph."""
    level = f"{(1 - score.alpha) * 100:g}%"
    return (
        f"{level} CIs. Rates are stratum-weighted (weights stratum_size, finite-population "
        "correction); SEs by Taylor linearisation over strata. Corrected rate: Rogan–Gladen "
        "(p_obs + Sp − 1)/(Se + Sp − 1) clipped to [0, 1], CI by the delta method carrying the "
        "sampling error of Se and Sp. Kappa: unweighted, on the labelled rows, Fleiss–Cohen–"
        "Everitt SE. Hallucination: Wilson interval on the labelled rows, and the "
        "stratum-weighted rate when they span several strata. Trend: inverse-variance weighted "
        "slope of the gap over rounds."
    )


def _interval_json(interval: stats.Interval | None) -> dict[str, float] | None:
    if interval is None:
        return None
    return {
        "estimate": interval.estimate,
        "se": interval.se,
        "low": interval.low,
        "high": interval.high,
    }


def review_json(score: ReviewScore) -> dict[str, Any]:
    """Every round's numbers as plain JSON values."""
    rounds = []
    for s in score.rounds:
        e = s.estimates
        (tp, fn), (fp, tn) = s.confusion
        rounds.append(
            {
                "round": s.round.label,
                "file": s.round.path,
                "sampled_at": s.round.sampled_at.isoformat() if s.round.sampled_at else None,
                "allocation": s.round.allocation,
                "rows": s.round.rows,
                "labelled": s.labelled,
                "confusion": {
                    "human_success_agent_success": tp,
                    "human_success_agent_failure": fn,
                    "human_failure_agent_success": fp,
                    "human_failure_agent_failure": tn,
                },
                "kappa": {
                    "estimate": s.kappa.kappa,
                    "se": s.kappa.se,
                    "low": s.kappa.low,
                    "high": s.kappa.high,
                    "observed_agreement": s.kappa.observed,
                    "expected_agreement": s.kappa.expected,
                },
                "self_reported": _interval_json(e.self_reported),
                "human": _interval_json(e.human),
                "gap": _interval_json(e.gap),
                "sensitivity": _interval_json(e.sensitivity),
                "specificity": _interval_json(e.specificity),
                "logged_rate": e.logged_rate,
                "logged_rate_source": "population" if e.logged_rate_known else "sample",
                "corrected": _interval_json(e.corrected),
                "corrected_unclipped": e.corrected_unclipped,
                "corrected_method": "rogan_gladen_delta",
                "hallucination": None
                if s.hallucination is None
                else {
                    "count": s.hallucination.count,
                    "n": s.hallucination.n,
                    "rate": s.hallucination.rate,
                    "low": s.hallucination.low,
                    "high": s.hallucination.high,
                    "method": "wilson",
                    "weighted": _interval_json(s.hallucination.weighted),
                },
                "notes": list(s.notes),
            }
        )
    trend = score.trend
    return {
        "alpha": score.alpha,
        "rounds": rounds,
        "trend": None
        if trend is None
        else {
            "slope_per_round": _interval_json(trend.slope),
            "p_value": trend.p_value,
            "rounds": trend.rounds,
        },
        "trend_verdict": score.trend_verdict,
        "notes": list(score.notes),
    }
