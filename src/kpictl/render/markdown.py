"""The Markdown writer (`--format markdown`): GitHub-flavoured tables, every data value through
`text.md_text` and every cell through `text.md_cell`. The scorecard reuses the review and
projection sections (`review_markdown`, `projection_markdown`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kpictl.engine.compute import ComputeResult
from kpictl.render.text import (
    LAYER_TITLES,
    Write,
    approximate_kpis,
    as_of_text,
    by_layer,
    cohort_label,
    compare_legend,
    compared_value,
    fairness_lines,
    format_change,
    format_p,
    format_relative,
    heterogeneity_lines,
    interval_text,
    iso,
    kpi_label,
    kpi_title,
    md_cell,
    md_text,
    peak_rows,
    projection_lead,
    projection_rows,
    shown_value,
    status_counts,
    text_writer,
)

if TYPE_CHECKING:  # their modules import scipy: loaded only by the functions that render them
    from kpictl.projection import ProjectionResult
    from kpictl.review import ReviewScore


def to_markdown(result: ComputeResult) -> str:
    """The `--format markdown` document: one GitHub-flavoured table per layer."""
    window = result.window
    lines = [f"# KPIs as of {as_of_text(window.as_of)}", ""]
    approximate = approximate_kpis(result)
    if window.since or window.until:
        lines += [f"Window: {iso(window.since) or 'start'} – {iso(window.until) or 'as-of'}", ""]
    for layer, rows in by_layer(result.table):
        lines += [
            f"## {LAYER_TITLES.get(layer, layer)}",
            "",
            "| KPI | cohort | value | n | pending | owner |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        for row in rows:
            lines.append(
                "| "
                + " | ".join(
                    md_cell(c)
                    for c in (
                        kpi_label(row, md_text),
                        md_text(cohort_label(row)),
                        shown_value(row, approximate),
                        str(row["n"]),
                        str(row["pending"]),
                        row["owner"],
                    )
                )
                + " |"
            )
        lines.append("")
    if result.notes:
        lines += ["Notes:", "", *[f"- {md_text(n)}" for n in result.notes], ""]
    return "\n".join(lines)


def _compare_cells(row: dict[str, Any], escape: Callable[[object], Any]) -> list[Any]:
    """The cells of one compare row; `escape` makes the data values (the cohort) safe for
    the target (`md_text` or `term_text`)."""
    fmt = row["format"]
    delta = format_change(row["delta"], fmt)
    delta_ci = interval_text(row["delta_low"], row["delta_high"], lambda v: format_change(v, fmt))
    rel = format_relative(row["relative_delta"])
    rel_ci = interval_text(row["relative_low"], row["relative_high"], format_relative)
    return [
        kpi_title(row, escape),
        escape(", ".join(f"{d}={row[d]}" for d in row["grouping"]) or "all"),
        f"{compared_value(row, 'baseline')} (n={row['baseline_n']:,})",
        f"{compared_value(row, 'current')} (n={row['current_n']:,})",
        f"{delta} {delta_ci}".strip(),
        f"{rel} {rel_ci}".strip(),
        format_p(row["p_adjusted"]),
        row["test"] or "—",
        row["status"] + (f" ({row['threshold']})" if row["threshold"] else ""),
    ]


def compare_to_markdown(result: Any) -> str:
    """GitHub-flavoured Markdown: design line, then one table per layer."""
    design = result.design
    counts = status_counts(result.table)
    lines = [
        f"# Comparison: {design.label}",
        "",
        f"Baseline: `{design.baseline}` · unit: `{result.unit}` · α = {result.alpha} · "
        f"correction: {result.correction}",
        "",
        "Verdict: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v),
        "",
    ]
    if design.caveat:
        lines += [f"> {design.caveat}", ""]
    if result.srm and result.srm.get("checked"):
        flag = "**SRM detected**" if result.srm["mismatch"] else "no SRM"
        lines += [
            f"Sample ratio: {result.srm['treatment']:,} treatment / "
            f"{result.srm['control']:,} control, p = {format_p(result.srm['p_value'])} "
            f"({flag})",
            "",
        ]
    header = [
        "KPI",
        "cohort",
        "baseline",
        "current",
        "Δ [CI]",
        "relative Δ [CI]",
        "p (adj.)",
        "test",
        "status",
    ]
    for layer, rows in by_layer(result.table):
        lines += [
            f"## {LAYER_TITLES.get(layer, layer)}",
            "",
            "| " + " | ".join(header) + " |",
            "| " + " | ".join(["---"] * len(header)) + " |",
        ]
        lines += [
            "| " + " | ".join(md_cell(c) for c in _compare_cells(r, md_text)) + " |" for r in rows
        ]
        lines.append("")
    if result.heterogeneity:
        lines += [
            "## Heterogeneity across groups",
            "",
            *[f"- {md_text(line)}" for line in heterogeneity_lines(result)],
            "",
        ]
    if result.fairness:
        lines += ["## Fairness", "", *[f"- {md_text(line)}" for line in fairness_lines(result)], ""]
    if result.approximation is not None:
        lines += [md_text(compare_legend(result)), ""]
    return "\n".join(lines)


def _md_review_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
    return lines


def review_markdown(score: ReviewScore, heading: str = "##") -> list[str]:
    """The latest round, its confusion matrix, the trend over rounds and the notes."""
    from kpictl.review import method_note, summary_rows, trend_rows

    latest = score.latest
    allocation = f", {latest.round.allocation} allocation" if latest.round.allocation else ""
    (tp, fn), (fp, tn) = latest.confusion
    lines = [
        f"{heading} Human review",
        "",
        f"Latest round: {md_text(latest.round.label)} ({md_text(latest.round.path)}{allocation}).",
        "",
        *_md_review_table(["measure", "value", "CI"], summary_rows(latest)),
        "",
        *_md_review_table(
            ["", "agent: success", "agent: failure"],
            [("human: success", str(tp), str(fn)), ("human: failure", str(fp), str(tn))],
        ),
        "",
        f"Trend over {len(score.rounds)} round(s): {score.trend_verdict}.",
        "",
    ]
    if len(score.rounds) > 1:
        header = ["round", "labelled", "self-reported", "human", "gap", "gap CI"]
        lines += [*_md_review_table(header, trend_rows(score)), ""]
    for note in [*score.notes, *latest.notes]:
        lines.append(f"- {md_text(note)}")
    if score.notes or latest.notes:
        lines.append("")
    lines += [method_note(score), ""]
    return lines


def projection_markdown(result: ProjectionResult, level: int = 1) -> list[str]:
    """The projection as Markdown lines; `level` is the heading level of its title. The
    volume as typed is data (escaped); the rest is kpictl's own text and numbers."""
    hashes = "#" * level
    lines = [f"{hashes} Cost at {md_text(result.volume.text)} volume", ""]
    lead = projection_lead(result)
    if lead:
        lines += [md_cell(" ".join(lead)), ""]
    rows = projection_rows(result)
    if rows:
        lines += [
            "| component | per conversation | per month | interval |",
            "| --- | ---: | ---: | --- |",
        ]
        lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
        lines.append("")
    peak = peak_rows(result)
    if peak:
        lines += [
            "Peak exposure (spend per clock hour, by conversation start hour):",
            "",
            f"| hour | observed | at {md_text(result.volume.text)} |",
            "| --- | ---: | ---: |",
        ]
        lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in peak]
        lines.append("")
    lines += ["Assumptions:", "", *[f"- {md_cell(a)}" for a in result.assumptions], ""]
    return lines


def review_to_markdown(score: ReviewScore) -> str:
    """The `review score --format markdown` document."""
    return "\n".join(review_markdown(score))


def projection_to_markdown(result: ProjectionResult) -> str:
    """The `project --format markdown` document."""
    return "\n".join(projection_markdown(result))


WRITES: dict[str, Write] = {
    "compute": text_writer(to_markdown),
    "compare": text_writer(compare_to_markdown),
    "review": text_writer(review_to_markdown),
    "projection": text_writer(projection_to_markdown),
}
