"""The money: the scorecard's first answer (is the agent worth it?) and the ROI section (the run
cost of the period, the saving against the baseline, the business value against the baseline
and the saving against a human-only process) — only from declared params, with the formula and
the assumptions written out. Both read the one saving estimate, `baseline_saving`."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from kpictl import stats
from kpictl.comparison.model import NOT_TESTABLE, UNAVAILABLE
from kpictl.engine.costs import HUMAN_MINUTE_PARAM
from kpictl.engine.costs import number_param as _number_param
from kpictl.render.text import (
    format_change,
    format_relative,
    format_value,
    md_text,
)
from kpictl.scorecard.markdown import (
    format_int,
    format_money,
    format_p_text,
    md_table,
    nowrap,
    status_text,
)
from kpictl.scorecard.model import INSUFFICIENT, ReportData
from kpictl.spec.model import OUTCOME_SOURCE

# Params the ROI section reads (by convention; declare them under `params:` in the spec).
HUMAN_CONVERSATION_PARAM = "human_cost_per_resolved_conversation"
# An ROI above this (saving > 10 × the agent run cost, i.e. above 1,000 %) mostly says that the
# run cost is small: the scorecard then states saving and cost instead of a bold percentage.
ROI_HEADLINE_LIMIT = 10.0
# The KPI whose comparison is the business value the agent arm gained (README "Business
# outcomes"); by convention, as cost_per_successful_task is for the cost per success.
OUTCOME_VALUE_KPI = "value_per_conversation"
# The KPI of the cost per successful task (by convention, as above).
COST_PER_SUCCESS_KPI = "cost_per_successful_task"


@dataclass(frozen=True)
class BaselineSaving:
    """The saving against the baseline arm: −Δ(cost per conversation) × the current arm's
    conversations, with the interval of Δ (a Welch test of the two arms' costs)."""

    comparison: stats.Comparison
    delta: stats.Interval  # current − baseline cost per conversation
    conversations: int  # of the current arm
    baseline_conversations: int
    saving: float
    low: float
    high: float
    priced: str  # what the cost per conversation counts
    human_unknown: str | None  # why human minutes are unknown, when they are


def baseline_saving(data: ReportData) -> BaselineSaving | str:
    """The saving against the baseline, or why it cannot be estimated."""
    costs, base = data.costs, data.baseline_costs
    if data.compare is None or base is None or costs is None:
        return "there is no baseline arm to compare costs with."
    if not costs.conversations or not base.conversations:
        return "an arm has no conversations."
    comparison = stats.compare_summaries(
        stats.mean_summary(base.conversations, base.total_sum, base.total_sq),
        stats.mean_summary(costs.conversations, costs.total_sum, costs.total_sq),
        alpha=data.options.significance,
    )
    if comparison.absolute is None or comparison.current is None or comparison.baseline is None:
        return "; ".join(comparison.warnings)
    delta = comparison.absolute
    n = costs.conversations
    human_unknown = costs.human_unknown or base.human_unknown
    if human_unknown is not None:
        priced = f"LLM + tools only: human minutes unknown, {human_unknown}"
    elif costs.human_rate is not None:
        priced = f"LLM + tools + human minutes × {HUMAN_MINUTE_PARAM}"
    else:
        priced = "LLM + tools only (human minutes are not priced)"
    return BaselineSaving(
        comparison,
        delta,
        n,
        base.conversations,
        -delta.estimate * n,
        -delta.high * n,
        -delta.low * n,
        priced,
        human_unknown,
    )


def section_worth_it(data: ReportData) -> list[str]:
    """The scorecard's first question, answered with money: the saving against the baseline and
    the cost per successful task against the baseline, with the design that says whether the
    difference is causal. Formulas and assumptions: the ROI section."""
    lines = ["## Is the agent worth it?", ""]
    costs = data.costs
    success = next((t for t in data.tiles if t.kpi == COST_PER_SUCCESS_KPI), None)
    if data.compare is None:
        lines.append(
            "- **Not answered:** there is no baseline to compare with, so no saving is "
            "estimated (declare `defaults.baseline` in the spec or pass "
            "`--baseline NAME|PATH`)."
        )
        if costs is not None:
            lines.append(
                f"- **Run cost of the period:** {nowrap(format_money(costs.run_cost))} (LLM + "
                f"tools) for {format_int(costs.conversations)} conversations."
            )
        if success is not None:
            name = md_text(success.label) if success.label else success.kpi
            lines.append(f"- **{name}:** {nowrap(success.shown)}.")
        return [*lines, "", "How each figure is computed: [ROI](#roi).", ""]
    estimate = baseline_saving(data)
    if isinstance(estimate, str):
        lines.append(f"- **Saving:** not estimated: {md_text(estimate)}")
    else:
        lines.append(_saving_headline(data, estimate))
    found = data.compare.table.filter(
        (pl.col("kpi") == COST_PER_SUCCESS_KPI) & (pl.col("grouping").list.len() == 0)
    )
    if found.height and success is not None:
        lines.append(_success_line(data, found.row(0, named=True), success.shown))
    lines.append(_design_line(data, "saving", "**Design:**"))
    return [*lines, "", "How each figure is computed, and what it assumes: [ROI](#roi).", ""]


def _saving_headline(data: ReportData, estimate: BaselineSaving) -> str:
    comparison, delta = estimate.comparison, estimate.delta
    level = round((1 - data.options.significance) * 100)
    current = data.current.label
    baseline = data.baseline.label if data.baseline is not None else "baseline"
    per = (
        f"{nowrap(format_value(comparison.current, 'usd'))} per conversation against "
        f"{nowrap(format_value(comparison.baseline, 'usd'))} in the {baseline} "
        f"({md_text(estimate.priced)})"
    )
    if delta.low <= 0 <= delta.high:
        return (
            f"- **Saving:** none can be claimed: the {current} cost {per}; the {level} % "
            f"interval of the difference, {nowrap(format_change(delta.estimate, 'usd'))} "
            f"[{nowrap(format_change(delta.low, 'usd'))}, "
            f"{nowrap(format_change(delta.high, 'usd'))}], includes 0."
        )
    if delta.estimate > 0:
        return (
            f"- **Saving:** none, the {current} costs more: {per}; extra cost "
            f"{nowrap(format_money(-estimate.saving))} [{nowrap(format_money(-estimate.high))}, "
            f"{nowrap(format_money(-estimate.low))}] for its "
            f"{format_int(estimate.conversations)} conversations."
        )
    text = (
        f"- **Saving:** **{nowrap(format_money(estimate.saving))}** "
        f"[{nowrap(format_money(estimate.low))}, {nowrap(format_money(estimate.high))}] "
        f"({level} % CI) over the {format_int(estimate.conversations)} conversations of the "
        f"{current}, which cost {per}; {format_p_text(comparison.p_value)}."
    )
    same = _same_kpi_row(data, comparison)
    if same is not None and not same["significant"]:
        text += (
            f" Indicative, not established: as the KPI `{same['kpi']}`, the same difference is "
            f"not significant after {data.compare.correction if data.compare else ''} "
            f"correction over the KPI tests ({format_p_text(same['p_adjusted'], 'p adj.')})."
        )
    return text


def _success_line(data: ReportData, row: dict[str, Any], shown: str) -> str:
    """The cost per successful task against the baseline (the compare row of the KPI)."""
    name = md_text(row["label"]) if row["label"] else row["kpi"]
    fmt = row["format"]
    baseline = data.baseline.label if data.baseline is not None else "baseline"
    text = f"- **{name}:** {nowrap(shown)} against "
    text += f"{nowrap(format_value(row['baseline_value'], fmt))} in the {baseline}"
    if row["delta"] is None:
        return text + f"; no change tested ({md_text(row['status'] or 'no value on a side')})."
    change = format_change(row["delta"], fmt)
    if row["relative_delta"] is not None:
        change += f" ({format_relative(row['relative_delta'])})"
    verdict = "significant" if row["significant"] else "not significant"
    if row["status"] in (INSUFFICIENT, UNAVAILABLE, NOT_TESTABLE):
        verdict = f"not judged ({status_text(row['status']).strip('*')}), {verdict}"
    return (
        f"{text}: {nowrap(change)}, {verdict} after the correction "
        f"({format_p_text(row['p_adjusted'], 'p adj.')})."
    )


def section_roi(data: ReportData) -> list[str]:
    lines = ["## ROI", ""]
    costs = data.costs
    if costs is None:
        return [*lines, "No cost data.", ""]
    rate = costs.human_rate
    lines += [
        f"Run cost of the period, {data.current.label}: {format_int(costs.conversations)} "
        "conversations started in the period; costs of their events up to as-of.",
        "",
    ]
    rows: list[list[str]] = [
        ["LLM cost", format_money(costs.llm), "Σ events.cost_usd"],
        ["tool cost", format_money(costs.tools), "Σ tool_calls.cost_usd"],
        ["agent run cost", format_money(costs.run_cost), "LLM cost + tool cost"],
    ]
    if costs.human_unknown is not None:
        # an absent column sums to 0: that is "not logged", never "no human time" (issue 10)
        rows += [
            ["human minutes", "unknown", md_text(costs.human_unknown)],
            ["human cost", "—", "not priced: the human minutes are unknown"],
        ]
    else:
        rows.append(["human minutes", f"{costs.human_minutes:,.1f} min", "Σ events.human_minutes"])
    if rate is not None and costs.human_unknown is None:
        rows.append(
            [
                "human cost",
                format_money(costs.human_cost),
                f"human minutes × {HUMAN_MINUTE_PARAM} (${rate:,.2f}/min, a declared "
                "param: an assumption)",
            ]
        )
        rows.append(
            [
                "total cost",
                format_money(costs.run_cost + (costs.human_cost or 0.0)),
                "agent run cost + human cost",
            ]
        )
    elif costs.human_unknown is None:
        rows.append(
            ["human cost", "—", f"not priced: the spec declares no params.{HUMAN_MINUTE_PARAM}"]
        )
    if costs.conversations:
        rows.append(
            [
                "cost per conversation",
                format_value(costs.total_sum / costs.conversations, "usd"),
                "total cost ÷ conversations"
                if costs.human_unknown is None
                else "agent run cost ÷ conversations (human minutes unknown)",
            ]
        )
    success = next((t for t in data.tiles if t.kpi == COST_PER_SUCCESS_KPI), None)
    if success is not None:
        rows.append(
            [
                "cost per successful task",
                format_value(success.value, success.format),
                "KPI cost_per_successful_task (settled conversations' cost ÷ completed "
                "ones, as the spec defines it)",
            ]
        )
    lines += md_table(["item", "amount", "formula and inputs"], rows, "lrl")
    unpriced = [
        f
        for f in data.findings
        if f.check.startswith("unpriced") and f.count and not f.source.startswith("baseline")
    ]
    if unpriced:
        lines += [
            "Unpriced rows count as $0: "
            + "; ".join(
                f"{format_int(f.count)} {f.check.removeprefix('unpriced ')}" for f in unpriced
            )
            + " (see Data quality).",
            "",
        ]
    lines += _roi_against_baseline(data)
    lines += _roi_outcome_value(data)
    lines += _roi_against_humans(data)
    return lines


def _roi_against_baseline(data: ReportData) -> list[str]:
    costs = data.costs
    lines = ["### Saving against the baseline", ""]
    estimate = baseline_saving(data)
    if isinstance(estimate, str):
        return [*lines, f"Not estimated: {estimate}", ""]
    assert costs is not None
    comparison, delta, n = estimate.comparison, estimate.delta, estimate.conversations
    saving, low, high = estimate.saving, estimate.low, estimate.high
    level = round((1 - data.options.significance) * 100)
    priced, human_unknown = estimate.priced, estimate.human_unknown
    lines += [
        f"- Cost per conversation ({priced}): baseline "
        f"{format_value(comparison.baseline, 'usd')} "
        f"(n={format_int(estimate.baseline_conversations)}), current "
        f"{format_value(comparison.current, 'usd')} (n={format_int(n)}); Δ = "
        f"{format_change(delta.estimate, 'usd')} [{format_change(delta.low, 'usd')}, "
        f"{format_change(delta.high, 'usd')}] ({comparison.test}, {level} % CI, "
        f"{format_p_text(comparison.p_value)}).",
    ]
    formula = (
        f"−Δ × current conversations = {format_change(-delta.estimate, 'usd')} × {format_int(n)} = "
    )
    if delta.low <= 0 <= delta.high:
        lines.append(
            f"- **No saving can be claimed:** the {level} % interval of Δ includes 0 (point "
            f"estimate {formula}{format_money(saving)} [{format_money(low)}, "
            f"{format_money(high)}], for context only)."
        )
    elif delta.estimate > 0:
        lines.append(
            f"- **No saving:** the current side costs more per conversation; extra cost = "
            f"Δ × current conversations = {format_money(-saving)} [{format_money(-high)}, "
            f"{format_money(-low)}]."
        )
    else:
        lines.append(
            f"- Estimated saving = {formula}**{format_money(saving)}** "
            f"[{format_money(low)}, {format_money(high)}]."
        )
        if costs.run_cost > 0:
            lines.append(_roi_line(saving, costs.run_cost, (low, high)))
    lines += _same_as_kpi(data, comparison)
    lines.append(_design_line(data, "saving"))
    assumptions = (
        [f"`{HUMAN_MINUTE_PARAM}` = {costs.human_rate} (declared, not measured)"]
        if costs.human_rate is not None and human_unknown is None
        else []
    )
    assumptions.append("logged cost_usd values are complete and correct")
    lines += [f"- Assumptions: {'; '.join(assumptions)}.", ""]
    return lines


def _design_line(data: ReportData, what: str, label: str = "Design:") -> str:
    """The comparison's design, said once the same way for every money estimate."""
    assert data.compare is not None
    if data.compare.design.randomized:
        return (
            f"- {label} randomized holdout, so the difference is a causal estimate for "
            "this period's traffic."
        )
    return (
        f"- {label} observational — "
        + (data.compare.design.caveat or "the arms differ in more than the agent")
        + f"; this is not a causal {what}."
    )


def _roi_outcome_value(data: ReportData) -> list[str]:
    """Business value attributed to the current arm against the baseline: the comparison's
    `value_per_conversation` KPI (README "Business outcomes"), when the spec defines it."""
    if data.compare is None:
        return []
    found = data.compare.table.filter(
        (pl.col("kpi") == OUTCOME_VALUE_KPI) & (pl.col("grouping").list.len() == 0)
    )
    if found.height == 0:
        return []
    row = found.row(0, named=True)
    lines = ["### Business value against the baseline", ""]
    delta, low, high = row["delta"], row["delta_low"], row["delta_high"]
    n = row["current_n"] or 0
    if delta is None or low is None or high is None or not n:
        return [
            *lines,
            f"Not estimated: `{OUTCOME_VALUE_KPI}` has no comparison "
            f"({md_text(row['status'] or 'no value on a side')}).",
            "",
        ]
    level = round((1 - data.options.significance) * 100)
    source = data.spec.sources.get(OUTCOME_SOURCE)
    rule = source.attribution if source is not None else None
    lines.append(
        f"- Attributed business value per conversation (KPI `{OUTCOME_VALUE_KPI}`): baseline "
        f"{format_value(row['baseline_value'], 'usd')} (n={format_int(row['baseline_n'] or 0)}), "
        f"current {format_value(row['current_value'], 'usd')} (n={format_int(n)}); Δ = "
        f"{format_change(delta, 'usd')} [{format_change(low, 'usd')}, "
        f"{format_change(high, 'usd')}] ({row['test']}, {level} % CI, "
        f"{format_p_text(row['p_value'])}, {format_p_text(row['p_adjusted'], 'p adj.')} after "
        f"{data.compare.correction} correction over the KPI tests)."
    )
    added = f"Δ × current conversations = {format_change(delta, 'usd')} × {format_int(n)} = "
    if low <= 0 <= high:
        lines.append(
            f"- **No added value can be claimed:** the {level} % interval of Δ includes 0 "
            f"(point estimate {added}{format_money(delta * n)} [{format_money(low * n)}, "
            f"{format_money(high * n)}], for context only)."
        )
    elif delta < 0:
        lines.append(
            f"- **Less value:** the current side is credited with less per conversation; "
            f"{added}{format_money(delta * n)} [{format_money(low * n)}, {format_money(high * n)}]."
        )
    else:
        lines.append(
            f"- Value added = {added}**{format_money(delta * n)}** [{format_money(low * n)}, "
            f"{format_money(high * n)}]."
        )
        if not row["significant"]:
            lines.append(
                "- Not significant after the correction over the KPI tests: treat "
                "it as indicative, not established."
            )
    lines.append(_design_line(data, "value"))
    window = (
        f"credited by the spec's attribution (within {_days(rule.within)} after the "
        f"conversation's {rule.after}, rule {rule.rule})"
        if rule is not None
        else "credited as the spec's rollup defines it"
    )
    pending = (row["pending_current"] or 0) + (row["pending_baseline"] or 0)
    lines += [
        f"- Assumptions: business events are {window}; events attributed to no conversation "
        f"count for neither side; {format_int(pending)} conversations whose window is still open "
        "are left out (pending).",
        "",
    ]
    return lines


def _days(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds // 3600}h"


def _same_kpi_row(data: ReportData, comparison: stats.Comparison) -> dict[str, Any] | None:
    """The compare row of the KPI that measures the same difference as `comparison`, if any."""
    assert data.compare is not None
    overall = data.compare.table.filter(pl.col("grouping").list.len() == 0)
    for row in overall.iter_rows(named=True):
        b, c = row["baseline_value"], row["current_value"]
        if b is None or c is None or comparison.baseline is None or comparison.current is None:
            continue
        if math.isclose(b, comparison.baseline, rel_tol=1e-9, abs_tol=1e-12) and math.isclose(
            c, comparison.current, rel_tol=1e-9, abs_tol=1e-12
        ):
            return row
    return None


def _same_as_kpi(data: ReportData, comparison: stats.Comparison) -> list[str]:
    """When a KPI of the comparison measures the same difference, say how it fared there
    (its p-value is corrected over every KPI; the ROI test stands alone)."""
    assert data.compare is not None
    row = _same_kpi_row(data, comparison)
    if row is None:
        return []
    verdict = "significant" if row["significant"] else "**not significant**"
    tests = data.compare.table.filter(pl.col("grouping").list.len() == 0).height
    line = (
        f"- The same difference is the KPI `{row['kpi']}`: "
        f"{format_p_text(row['p_adjusted'], 'p adj.')} after {data.compare.correction} "
        f"correction over the {tests} KPI tests, {verdict} there"
    )
    if not row["significant"]:
        line += "; treat any saving as indicative, not established"
    return [line + "."]


def _roi_line(saving: float, run_cost: float, interval: tuple[float, float] | None = None) -> str:
    """ROI = saving ÷ agent run cost as a bold figure, unless the run cost is tiny next to the
    saving (ROI above ROI_HEADLINE_LIMIT): then the ratio says more about how cheap the agent
    is to run than about the change, and it is shown with its inputs and a plain statement."""
    roi = saving / run_cost
    if roi > ROI_HEADLINE_LIMIT:
        share = run_cost / saving * 100
        return (
            "- ROI is not a useful headline here: saving ÷ agent run cost = "
            f"{format_money(saving)} ÷ {format_money(run_cost)} = {roi * 100:,.0f} %, because the "
            "run cost is only "
            f"{f'{share:.1f}' if share >= 0.1 else '< 0.1'} % of the saving. Judge the change "
            "by the saving and its interval, not by this ratio."
        )
    text = (
        f"- ROI = saving ÷ agent run cost = {format_money(saving)} ÷ {format_money(run_cost)} = "
        f"**{roi * 100:,.0f} %**"
    )
    if interval is not None:
        low, high = interval
        text += (
            f" [{low / run_cost * 100:,.0f} %, {high / run_cost * 100:,.0f} %]"
            " (the run cost is taken as known)"
        )
    return text + "."


def _roi_against_humans(data: ReportData) -> list[str]:
    costs = data.costs
    assert costs is not None
    lines = ["### Saving against a human-only process", ""]
    value = _number_param(data.spec, HUMAN_CONVERSATION_PARAM)
    if value is None:
        return [
            *lines,
            f"Not estimated: the spec declares no `params.{HUMAN_CONVERSATION_PARAM}`"
            " (the fully loaded cost of a human resolving one conversation). With it: saving "
            "= conversations the agent resolved alone × that cost − agent run cost; "
            "ROI = saving ÷ agent run cost.",
            "",
        ]
    if data.agent_alone is None:
        return [
            *lines,
            "Not estimated: the conversations table has no `completed` and "
            "`contained` columns to count the conversations the agent resolved alone.",
            "",
        ]
    count, how = data.agent_alone
    avoided = count * value
    saving = avoided - costs.run_cost
    lines += [
        f"- Conversations the agent resolved alone: {format_int(count)} ({how}).",
        f"- Human cost avoided = {format_int(count)} × {HUMAN_CONVERSATION_PARAM} "
        f"(${value:,.2f}) = {format_money(avoided)}.",
        f"- Saving = human cost avoided − agent run cost = {format_money(avoided)} − "
        f"{format_money(costs.run_cost)} = **{format_money(saving)}**.",
    ]
    if costs.run_cost > 0:
        lines.append(_roi_line(saving, costs.run_cost))
    lines += [
        f"- Assumptions: `{HUMAN_CONVERSATION_PARAM}` = {value} (declared, not measured); "
        "each conversation the agent resolved alone would otherwise have needed a human; "
        "conversations it did not resolve cost their human minutes either way (not "
        "counted); pending conversations are not counted.",
        "",
    ]
    return lines
