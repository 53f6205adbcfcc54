"""The auditor's sections at the end of the scorecard: data quality (inputs, pending, checks,
missing values, KPIs built on imperfect data), the drill-down into failing conversations, and
the method and provenance appendix (design and test settings, definitions, columns, tests and
caveats, input files with sha256, versions). Pure functions of `ReportData`, as in
`sections.py`, which puts them in order."""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Mapping
from typing import Any

import polars as pl

from kpictl import __version__
from kpictl.render.text import (
    LAYER_TITLES,
    format_value,
    iso,
    md_cell,
    md_text,
)
from kpictl.scorecard.markdown import (
    CAVEAT_MARK,
    code_span,
    format_int,
    format_p_text,
    format_share,
    format_time,
    md_table,
    nowrap,
    truncate,
)
from kpictl.scorecard.model import (
    CONDITION_DESIGNS,
    ReportData,
    overall_rows,
)
from kpictl.spec.model import KpiSpec


def arms_text(data: ReportData) -> str | None:
    """What is compared with what: the two conditions with their conversations, or the two
    periods; None for another dataset (the baseline line names it)."""
    comparison = data.compare
    if comparison is None:
        return None
    window = data.current.window
    if data.baseline is not None and comparison.design.kind in CONDITION_DESIGNS:
        srm = comparison.srm or {}
        return (
            f"current = {code_span(data.current.where or 'all')} "
            f"({format_int(srm.get('treatment', 0))} conversations), baseline = "
            f"{code_span(data.baseline.where or 'all')} "
            f"({format_int(srm.get('control', 0))} conversations)"
        )
    if comparison.baseline_window is not None:
        base = comparison.baseline_window
        return (
            f"current {format_time(window.since) or 'start'} – "
            f"{format_time(window.until or window.as_of)}, baseline "
            f"{format_time(base.since) or 'start'} – {format_time(base.until or base.as_of)}"
        )
    return None


def _design_details(data: ReportData) -> list[str]:
    """The method appendix's design and test settings (the header says only what is compared)."""
    comparison = data.compare
    if comparison is None:
        return []
    design = comparison.design
    arms = arms_text(data)
    if data.baseline is not None and design.kind in CONDITION_DESIGNS and design.randomized:
        detail = srm_text(comparison.srm or {})
    else:
        detail = design.caveat or ""
    parts = (f"`{design.baseline}`, {design.label}", arms, detail)
    text = "; ".join(part for part in parts if part)
    return [
        "### Design and test settings",
        "",
        f"- Design: {text}.",
        f"- Test settings: unit `{comparison.unit}`, α = {comparison.alpha}, correction "
        f"{comparison.correction}, {round((1 - comparison.alpha) * 100)} % confidence "
        "intervals.",
        "",
    ]


def srm_text(srm: Mapping[str, Any]) -> str:
    if not srm.get("checked"):
        reason = str(srm.get("reason") or "")
        if not reason or reason.startswith("no intended split"):
            reason = "no intended split declared"
        return f"sample ratio not checked ({reason})"
    flag = "**sample ratio mismatch**" if srm.get("mismatch") else "no sample ratio mismatch"
    return (
        f"intended treatment share {srm['expected_treatment_share']}, "
        f"{format_p_text(srm['p_value'])} ({flag})"
    )


def section_quality(data: ReportData) -> list[str]:
    lines = ["## Data quality", "", "### Inputs", ""]
    lines += md_table(
        ["source", "file", "format", "rows", "skipped", "first skip reason"],
        [
            [
                f.source,
                md_text(f.path),
                f.format,
                format_int(f.rows),
                format_int(f.skipped),
                md_text(f.skipped_reasons[0]) if f.skipped_reasons else "—",
            ]
            for f in data.files
        ],
        "lllrrl",
    )
    lines += ["### Pending", ""]
    pending = _pending_rows(data)
    if pending:
        header = ["KPI", "pending (current)"] + (
            ["pending (baseline)"] if data.compare is not None else []
        )
        lines += [
            "Conversations whose outcome window was still open at as-of: left out of the "
            "KPI, not counted as failures.",
            "",
        ]
        lines += md_table(header, pending, "lrr")
    else:
        lines += ["No KPI left out units whose outcome window is still open.", ""]
    lines += ["### Checks", "", "Over every row read (all arms, all dates).", ""]
    lines += md_table(
        ["check", "source", "column", "found", "of", "share", "meaning"],
        [
            [
                f.check,
                f.source,
                f.column or "—",
                format_int(f.count),
                format_int(f.of),
                format_share(f.count, f.of),
                f.meaning,
            ]
            for f in data.findings
        ],
        "lllrrrl",
    )
    lines += [
        "### Missing values",
        "",
        "Null share of each canonical column, overall and where the column is expected to "
        "hold a value (nulls elsewhere are by design).",
        "",
    ]
    absent = [c for c in data.columns if c.expected_on is None and c.rows and c.nulls == c.rows]
    lines += md_table(
        ["source", "column", "null (all rows)", "expected on", "null there"],
        [
            [
                c.source,
                c.column,
                format_share(c.nulls, c.rows),
                code_span(c.expected_on) if c.expected_on else "all rows",
                f"{format_int(c.expected_nulls)} of {format_int(c.expected_rows)} "
                f"({format_share(c.expected_nulls, c.expected_rows)})",
            ]
            for c in data.columns
            if c not in absent
        ],
        "llrll",
    )
    if absent:
        by_source: dict[str, list[str]] = {}
        for c in absent:
            by_source.setdefault(c.source, []).append(f"`{c.column}`")
        lines += [
            "Optional columns absent from the inputs (null in every row): "
            + "; ".join(f"{source}: {', '.join(cols)}" for source, cols in by_source.items())
            + ".",
            "",
        ]
    flagged = [t for t in data.tiles if t.caveats]
    lines += ["### KPIs built on imperfect data", ""]
    if flagged:
        for tile in flagged:
            lines.append(f"- **{tile.kpi}** {CAVEAT_MARK}: " + "; ".join(tile.caveats))
        lines.append("")
    else:
        lines += ["None: no check found a problem in the inputs any KPI reads.", ""]
    return lines


def _pending_rows(data: ReportData) -> list[list[str]]:
    rows = []
    if data.compare is not None:
        for row in data.compare.table.filter(pl.col("grouping").list.len() == 0).iter_rows(
            named=True
        ):
            if row["pending_current"] or row["pending_baseline"]:
                rows.append(
                    [
                        row["kpi"],
                        format_int(row["pending_current"]),
                        format_int(row["pending_baseline"]),
                    ]
                )
        return rows
    for row in overall_rows(data.trend.table).iter_rows(named=True):
        if row["pending"]:
            rows.append([row["kpi"], format_int(row["pending"])])
    return rows


def section_drilldown(data: ReportData) -> list[str]:
    lines = ["## Drill-down", ""]
    key = data.spec.require_primary_table().key or "conversation_id"
    time = data.spec.require_primary_table().time
    redaction = (
        "e-mail addresses, phone numbers, card numbers, IBANs, US social security numbers, IP "
        "addresses and secrets redacted in every value shown"
        if data.options.redact
        else "**not redacted** (--no-redact)"
    )
    lines += [
        f"Up to {data.options.drilldown} failing conversations per failure type (most "
        f"recent first; each conversation listed once), {data.current.label}, only "
        "the conversations each KPI counts (settled, where it declares `mature`). Failure = the "
        "row condition of a "
        "share-of-conversations KPI"
        + (
            f"; first user message shown; {redaction}."
            if data.has_text
            else f"; no `text` column in the events, so no message is shown; {redaction}."
        ),
        "",
    ]
    if not data.drilldown:
        return [*lines, "No share-of-conversations KPI in the spec.", ""]
    for group in data.drilldown:
        part = ""
        if group["part"] is not None:
            column, value = group["part"]
            part = f", {column} = {md_text(value)}" if value is not None else f", {column} is null"
        lines += [
            f"### {group['kpi']}: {group['label']}{part}",
            "",
            f"{format_int(group['count'])} of the {format_int(group['of'])} conversations the "
            "KPI counts.",
            "",
        ]
        if not group["rows"]:
            continue
        header = [key, "started", "cohort", "cost"]
        if data.has_text:
            header.append("first user message")
        rows = []
        for row in group["rows"]:
            cells = [
                md_text(row[key]),
                nowrap((format_time(row.get(time)) if time else None) or "—"),
                md_text(row["__cohort"]) if row["__cohort"] else "—",
                format_value(row["__cost"], "usd"),
            ]
            if data.has_text:
                text = row["__text"]
                cells.append(md_text(truncate(text)) if text else "—")
            rows.append(cells)
        lines += md_table(header, rows, "lllr" + ("l" if data.has_text else ""))
    return lines


def _definition(kpi: KpiSpec) -> list[str]:
    parts = [f"over `{kpi.over}`"] if kpi.kind != "formula" else []
    for label, sql in (
        ("value", kpi.value),
        ("numerator", kpi.numerator),
        ("denominator", kpi.denominator),
        ("formula", kpi.formula),
        ("where", kpi.where),
        ("mature", kpi.mature),
        ("breakdown", kpi.breakdown),
    ):
        if sql:
            parts.append(f"{label} {code_span(sql)}")
    return parts


def section_method(data: ReportData) -> list[str]:
    spec, comparison = data.spec, data.compare
    lines = ["## Method and provenance", "", *_design_details(data), "### Definitions", ""]
    tests = {}
    if comparison is not None:
        for row in comparison.table.filter(pl.col("grouping").list.len() == 0).iter_rows(
            named=True
        ):
            tests[row["kpi"]] = row["test"] or "no test"
    for kpi in spec.kpis.values():
        lines.append(
            f"- **{kpi.name}** ({LAYER_TITLES.get(kpi.layer, kpi.layer)}; "
            f"{kpi.direction} is better; owner {kpi.owner}) — "
            f"{md_cell(kpi.description) or 'no description'}"
        )
        detail = _definition(kpi)
        if kpi.thresholds:
            detail.append("thresholds " + ", ".join(f"{t.level} {t.text}" for t in kpi.thresholds))
        if kpi.name in tests:
            detail.append(f"test {tests[kpi.name]}")
        lines.append("  - " + "; ".join(detail))
    lines.append("")
    if data.used_columns:
        lines += [
            "### Columns the KPIs use",
            "",
            "Rollup entries aggregate a source per conversation; derive entries are "
            "row-level over the rollup. Params: "
            + (", ".join(f"`{k}` = {v}" for k, v in spec.params.items()) or "none")
            + ".",
            "",
        ]
        lines += md_table(
            ["column", "definition", "from"],
            [[name, code_span(sql), source] for name, sql, source in data.used_columns],
            "lll",
        )
    lines += ["### Tests and caveats", ""]
    caveats = []
    if comparison is not None:
        level = round((1 - comparison.alpha) * 100)
        caveats += [
            f"Every KPI is reduced to per-unit sufficient statistics (unit "
            f"`{comparison.unit}`); {level} % confidence intervals; the p-value comes from the "
            "absolute difference; "
            f"{comparison.correction} correction over all KPI tests of the comparison.",
            "Tests: proportions → two-proportion test (exact when cells are small); means → "
            "Welch t; ratios → delta method; percentiles → cluster-adjusted outer CI; "
            "formulas → cluster bootstrap.",
        ]
        if comparison.design.caveat:
            caveats.append(f"Observational comparison: {comparison.design.caveat}.")
        elif comparison.design.randomized:
            caveats.append(
                "Randomized holdout: differences are causal estimates for this "
                "period's traffic; a sample-ratio check guards the randomization."
            )
    else:
        caveats.append("No baseline: no change is tested; only absolute bounds are judged.")
    caveats += [
        "Percentiles (MEDIAN, QUANTILE_CONT) use linear interpolation.",
        "Conversations whose outcome window is open at as-of are left out of the KPIs that "
        "declare `mature` and counted as pending.",
        f"A KPI needs at least `min_sample` = {spec.defaults.min_sample} units (default) in "
        "each arm for a verdict.",
        "Cohort-vs-rest comparisons and breakdown changes are observational and exploratory.",
        "Trend buckets hold few conversations each: read the sparklines as shape, not as "
        "tested changes.",
    ]
    lines += [f"- {c}" for c in caveats]
    lines += [""]
    lines += ["### Inputs", ""]
    lines += md_table(
        ["source", "file", "bytes", "rows", "sha256"],
        [
            [
                f.source,
                md_text(f.path),
                format_int(f.size_bytes),
                format_int(f.rows),
                f"`{data.file_hashes.get(f.path, '')}`",
            ]
            for f in data.files
        ],
        "llrrl",
    )
    generated = data.options.generated_at or dt.datetime.now(dt.UTC)
    lines += ["### Provenance", ""]
    lines += md_table(
        ["item", "value"],
        [
            ["spec", md_text(spec.path)],
            ["spec sha256", f"`{spec.sha256}`"],
            ["kpictl", __version__],
            ["polars", pl.__version__],
            ["python", platform.python_version()],
            ["generated at", iso(generated.replace(microsecond=0)) or ""],
            ["command", code_span(data.options.command_line) if data.options.command_line else "—"],
        ],
        "ll",
    )
    return lines
