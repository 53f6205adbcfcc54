"""The scorecard's sections: pure functions from `ReportData` to Markdown lines, and
`render_report`, which puts them in order:

1. title, period, as-of, baseline and what is compared;
2. is the agent worth it: the money against the baseline, with the design (`roi.py`);
3. what changed: better, worse, unchanged, not judged — each counted and named;
4. needs action: the KPIs beyond a threshold, with their owners;
5. four tiles, one per layer (current value, change vs baseline, status);
6. the KPI table (baseline, current, Δ and relative Δ with CIs, adjusted p, test, thresholds,
   status, owner);
7. trends: a Unicode sparkline per KPI over the grain buckets (PNG charts with `charts_dir`);
8. breakdowns (e.g. escalation reasons) and cohorts that differ significantly from the rest;
9. ROI (`roi.py`), cost at scale (`--project`) and the human review (`--review`);
10. data quality (rows read and skipped, pending, missing values, unpriced or negative costs, …),
    from `appendix.py`, as the two after it;
11. drill-down: failing conversations per failure type, the first user message redacted;
12. method and provenance (design and test settings, definitions, tests, caveats, input files
    with sha256, versions).

Numbers with units never wrap inside a table cell (non-breaking spaces, `markdown.nowrap`),
times read `2026-03-01 00:17 UTC`, p-values `p = 0.015` or `p < 0.001`.

The body is deterministic (stable order, fixed decimals); the only run-specific lines are those
of the provenance table named in `VOLATILE_PROVENANCE`."""

from __future__ import annotations

import math
import re

import polars as pl

from kpictl import stats
from kpictl.comparison.model import NOT_TESTABLE, UNAVAILABLE
from kpictl.engine.compute import ComputeResult
from kpictl.engine.interface import cohort_sets
from kpictl.engine.window import UNTIMED_AS_OF
from kpictl.render.markdown import projection_markdown, review_markdown
from kpictl.render.text import (
    APPROXIMATE,
    LAYER_TITLES,
    approximate_kpis,
    compared_value,
    fairness_lines,
    format_change,
    format_relative,
    format_value,
    heterogeneity_lines,
    md_text,
    shown_value,
)
from kpictl.scorecard.appendix import (
    arms_text,
    section_drilldown,
    section_method,
    section_quality,
    srm_text,
)
from kpictl.scorecard.charts import chart_lines
from kpictl.scorecard.lineage import proportion_condition
from kpictl.scorecard.markdown import (
    CAVEAT_MARK,
    SPARK_GAP,
    code_span,
    format_day,
    format_int,
    format_interval,
    format_p_cell,
    format_share,
    format_time,
    md_table,
    nowrap,
    redactor,
    sparkline,
    status_text,
)
from kpictl.scorecard.model import (
    INSUFFICIENT,
    NOT_JUDGED,
    ReportData,
    Tile,
    adjust_p_values,
    overall_rows,
    trend_series,
)
from kpictl.scorecard.roi import section_roi, section_worth_it
from kpictl.spec.model import LAYERS, LEVELS, KpiSpec


def _kpi_name(tile: Tile) -> str:
    """The KPI as a reader sees it: its label (escaped), else its name; † when caveated."""
    shown = md_text(tile.label) if tile.label else tile.kpi
    return shown + (f" {CAVEAT_MARK}" if tile.caveats else "")


def _change(tile: Tile) -> str:
    if tile.delta is None:
        return "—"
    text = format_change(tile.delta, tile.format)
    if tile.relative is not None:
        text += f" ({format_relative(tile.relative)})"
    return text + ("" if tile.significant else ", n.s.")


def _section_header(data: ReportData) -> list[str]:
    """Title, period, as-of, what is compared with what. The design's statistical detail (the
    sample-ratio check, the test settings) is in the method appendix."""
    options, comparison = data.options, data.compare
    window = data.current.window
    title = options.title or "Agent scorecard"
    end = window.until or window.as_of
    if window.as_of == UNTIMED_AS_OF:  # the data hold no time at all (chat transcripts)
        period = "no timestamps in the data (every conversation read is counted)"
        as_of = "none (no timestamps in the data)"
    else:
        period = (
            f"{format_time(data.period_start) or 'start'} – {format_time(end)} "
            "(conversations started in the period)"
        )
        as_of = format_time(window.as_of) or ""
    lines = [
        f"# {title}",
        "",
        f"- **Period:** {period}",
        f"- **As of:** {as_of}",
        *_empty_lines(data),
    ]
    if options.where:
        lines.append(
            f"- **Filter:** {code_span(options.where)} (`--where`): the KPIs' values are over "
            "the rows it keeps of the tables that have its columns; costs, drill-down and "
            "cohorts are over every conversation"
        )
    if comparison is None:
        lines += [
            "- **Baseline:** none — the spec declares no default baseline and none was "
            "given (`--baseline NAME|PATH`): values are descriptive; only absolute bounds "
            "are judged"
        ]
    else:
        design = comparison.design
        lines.append(f"- **Baseline:** `{design.baseline}` — {design.label}")
        arms = arms_text(data)
        if arms:
            lines.append(f"- **Compared:** {arms}")
    return [*lines, ""]


# How a KPI moved against the baseline, in the order "What changed" lists them.
CHANGE_KINDS = ("better", "worse", "unchanged", "not judged")


def change_kind(tile: Tile, direction: str) -> str:
    """better / worse: a change significant after the correction, for the better or the worse
    by the KPI's direction; unchanged: tested, not significant; not judged: too little data,
    a missing column or no test."""
    if tile.status in (INSUFFICIENT, UNAVAILABLE, NOT_TESTABLE, NOT_JUDGED) or tile.delta is None:
        return "not judged"
    if not tile.significant:
        return "unchanged"
    return "better" if (tile.delta > 0) == (direction == "higher") else "worse"


def _section_changes(data: ReportData) -> list[str]:
    """What got better, what got worse, what is unchanged: each counted and named."""
    lines = ["## What changed", ""]
    tiles = data.tiles
    if data.compare is None:
        beyond = sum(t.status in LEVELS for t in tiles)
        within = sum(t.status == "ok" for t in tiles)
        return [
            *lines,
            f"Nothing is compared: there is no baseline. Of the {len(tiles)} KPIs, {within} "
            f"are within their bounds, {beyond} beyond a bound (see Needs action) and "
            f"{len(tiles) - within - beyond} not judged (no bound, too little data or "
            "unavailable).",
            "",
        ]
    groups: dict[str, list[Tile]] = {kind: [] for kind in CHANGE_KINDS}
    for tile in tiles:
        groups[change_kind(tile, data.spec.kpis[tile.kpi].direction)].append(tile)
    lines += [
        f"Against the baseline, {len(tiles)} KPIs: "
        + ", ".join(f"{len(groups[kind])} {kind}" for kind in CHANGE_KINDS)
        + f". A change counts when it is significant at α = {data.compare.alpha} after "
        f"{data.compare.correction} correction over the KPI tests.",
        "",
    ]
    for kind in CHANGE_KINDS:
        found = groups[kind]
        if kind in ("better", "worse"):
            items = [f"{_kpi_name(t)} {nowrap(_change(t))}" for t in found]
        elif kind == "unchanged":
            items = [_kpi_name(t) for t in found]
        else:  # grouped by why: "insufficient data: A; B. unavailable (no `x` column): C"
            why: dict[str, list[str]] = {}
            for t in found:
                reason = t.shown if t.reason else status_text(t.status).strip("*")
                why.setdefault(reason, []).append(_kpi_name(t))
            items = [". ".join(f"{reason}: {'; '.join(names)}" for reason, names in why.items())]
        lines.append(f"- **{kind.capitalize()} ({len(found)}):** {'; '.join(items) or 'none'}.")
    return [*lines, ""]


def _section_action(data: ReportData) -> list[str]:
    """What needs action: the KPIs beyond a threshold, worst first, with their owners; a sample
    ratio mismatch, which puts every change of a randomized comparison in doubt."""
    lines = ["## Needs action", ""]
    breached = sorted(
        (t for t in data.tiles if t.status in LEVELS), key=lambda t: -LEVELS.index(t.status)
    )
    srm = data.compare.srm if data.compare is not None else None
    if srm and srm.get("checked") and srm.get("mismatch"):
        lines += [
            "- **Sample ratio mismatch:** the arms are not split as intended "
            f"({srm_text(srm)}): the randomization may be broken, so every change above "
            "is in doubt.",
            "",
        ]
    if not breached:
        return [*lines, "No KPI is beyond a threshold.", ""]
    lines += md_table(
        ["KPI", "current", "threshold breached", "owner"],
        [[_kpi_name(t), t.shown, status_text(t.status, t.threshold), t.owner] for t in breached],
        "lrll",
    )
    return lines


def _empty_lines(data: ReportData) -> list[str]:
    """The header's word on an empty period or arm: every KPI there is n = 0, so nothing in
    the scorecard is an estimate (a table of dashes alone does not say why)."""
    empty = [
        f"`{name}`" for name, loaded in data.current.sources.by_name.items() if loaded.rows == 0
    ]
    why = (
        f" (source {empty[0]} holds no rows)"
        if len(empty) == 1
        else f" (sources {', '.join(empty)} hold no rows)"
        if empty
        else ""
    )
    units = data.spec.require_primary_table().name
    current_empty = data.costs is not None and data.costs.conversations == 0
    base = data.baseline
    base_empty = data.baseline_costs is not None and data.baseline_costs.conversations == 0
    if current_empty and (base is None or base_empty):
        place = (
            "the window" if base is None or base.window == data.current.window else "either period"
        )
        return [
            f"- **No data:** no {units} in {place}{why}: every KPI is n = 0 with "
            "a null value; nothing below is an estimate"
        ]
    if current_empty:
        return [
            f"- **No data:** no {units} in the {data.current.label}{why}: every KPI "
            "is n = 0 with a null value and every change is insufficient data"
        ]
    if base is not None and base_empty:
        return [f"- **No data:** no {units} in the {base.label}: every change is insufficient data"]
    return []


def _section_tiles(data: ReportData) -> list[str]:
    lines = ["## At a glance", ""]
    by_layer: dict[str, list[Tile]] = {}
    for tile in data.tiles:
        by_layer.setdefault(tile.layer, []).append(tile)
    header = ["KPI", "current", "change vs baseline", "status"]
    for layer in [*LAYERS, *sorted(set(by_layer) - set(LAYERS))]:
        tiles = by_layer.get(layer)
        if not tiles:
            continue
        lines += [f"### {LAYER_TITLES.get(layer, layer)}", ""]
        lines += md_table(
            header,
            [
                [
                    _kpi_name(t),
                    t.shown,
                    _change(t),
                    status_text(t.status, t.threshold),
                ]
                for t in tiles
            ],
            "lrrl",
        )
    if any(t.caveats for t in data.tiles):
        lines += [
            f"{CAVEAT_MARK} built on inputs with data-quality findings (see "
            "[Data quality](#data-quality)).",
            "",
        ]
    if data.compare is not None:
        lines += [
            "Change = current − baseline (relative change in brackets); n.s. = not "
            f"significant at α = {data.compare.alpha} after correction.",
            "",
        ]
    return lines


def _thresholds_text(kpi: KpiSpec) -> str:
    by_level = {t.level: t.text for t in kpi.thresholds}
    if not by_level:
        return "—"
    return " / ".join(by_level.get(level, "—") for level in LEVELS)


def _section_table(data: ReportData) -> list[str]:
    lines = ["## KPIs", ""]
    spec = data.spec
    tiles = {t.kpi: t for t in data.tiles}
    if data.compare is None:
        header = [
            "KPI",
            "layer",
            "current",
            "n",
            "pending",
            "thresholds (w / c / x)",
            "status",
            "owner",
        ]
        rows = []
        for row in overall_rows(data.trend.table).iter_rows(named=True):
            tile = tiles[row["kpi"]]
            rows.append(
                [
                    _kpi_name(tile),
                    LAYER_TITLES.get(row["layer"], row["layer"]),
                    shown_value(row, approximate_kpis(data.trend)),
                    format_int(row["n"]),
                    format_int(row["pending"]),
                    _thresholds_text(spec.kpis[row["kpi"]]),
                    status_text(tile.status, tile.threshold),
                    row["owner"],
                ]
            )
        lines += md_table(header, rows, "llrrrlll")
    else:
        header = [
            "KPI",
            "baseline",
            "current",
            "Δ [CI]",
            "relative Δ [CI]",
            "p adj.",
            "test",
            "thresholds (w / c / x)",
            "status",
            "owner",
        ]
        rows = []
        for row in data.compare.table.filter(pl.col("grouping").list.len() == 0).iter_rows(
            named=True
        ):
            fmt = row["format"]
            tile = tiles[row["kpi"]]
            rows.append(
                [
                    _kpi_name(tile),
                    f"{compared_value(row, 'baseline')} (n={format_int(row['baseline_n'])})",
                    f"{tile.shown if tile.reason else compared_value(row, 'current')}"
                    f" (n={format_int(row['current_n'])})",
                    format_change(row["delta"], fmt)
                    + format_interval(
                        row["delta_low"], row["delta_high"], lambda v, f=fmt: format_change(v, f)
                    ),
                    format_relative(row["relative_delta"])
                    + format_interval(row["relative_low"], row["relative_high"], format_relative),
                    format_p_cell(row["p_adjusted"]),
                    row["test"] or "—",
                    _thresholds_text(spec.kpis[row["kpi"]]),
                    status_text(row["status"], row["threshold"]),
                    row["owner"],
                ]
            )
        lines += md_table(header, rows, "lrrrrrllll")
        warnings = [
            (row["kpi"], w)
            for row in data.compare.table.filter(pl.col("grouping").list.len() == 0).iter_rows(
                named=True
            )
            for w in row["warnings"]
        ]
        if warnings:
            lines += ["Warnings of the tests:", ""]
            lines += [f"- {kpi}: {md_text(w)}" for kpi, w in warnings]
            lines.append("")
    lines += [
        "Thresholds: warning / critical / catastrophic. `pp`, `%` and plain numbers are "
        "deteriorations against the baseline that must also be significant; a bound such "
        "as `> 1%` fires whenever the value is beyond it.",
        "",
    ]
    return lines


def _section_trends(data: ReportData) -> list[str]:
    grain = data.spec.defaults.grain
    lines = ["## Trends", ""]
    series = trend_series(data.trend)
    if not series:
        return [*lines, "No trend: no KPI could be split by time.", ""]
    buckets = sorted({p[0] for points in series.values() for p in points})
    lines += [
        f"Per {grain} of the conversations' start, {data.current.label}, "
        f"{format_day(buckets[0])} → {format_day(buckets[-1])} ({len(buckets)} buckets; "
        f"{SPARK_GAP} = no settled units in the bucket). Each sparkline spans its own "
        "min–max.",
        "",
    ]
    header = ["KPI", "trend", "first", "last", "min", "max"]
    approximate = approximate_kpis(data.trend)
    rows = []
    for name in data.spec.kpis:
        if name not in series:
            continue
        fmt = data.spec.kpis[name].format
        by_bucket = {p[0]: p[1] for p in series[name]}
        values = [by_bucket.get(b) for b in buckets]
        present = [v for v in values if v is not None and not math.isnan(v)]
        mark = f"{APPROXIMATE} " if name in approximate else ""  # --approx-percentiles
        rows.append(
            [
                name,
                sparkline(values),
                *(
                    mark + format_value(v, fmt) if v is not None else format_value(None, fmt)
                    for v in (
                        present[0] if present else None,
                        present[-1] if present else None,
                        min(present) if present else None,
                        max(present) if present else None,
                    )
                ),
            ]
        )
    lines += md_table(header, rows, "llrrrr")
    # with --charts (or --format html): each KPI's chart under its layer's heading
    return [*lines, "", *chart_lines(data)]


def _breakdown_rows(data: ReportData, kpi: KpiSpec) -> tuple[list[list[str]], str]:
    def parts(
        result: ComputeResult | None,
    ) -> tuple[dict[str | None, tuple[float, int]], tuple[float, int] | None]:
        if result is None:
            return {}, None
        table = result.table.filter(
            (pl.col("kpi") == kpi.name) & (pl.col("grouping").list.len() == 0)
        )
        found: dict[str | None, tuple[float, int]] = {}
        total = None
        for row in table.iter_rows(named=True):
            if row["breakdown"] is None:
                total = (row["value"], row["n"])
            else:
                found[row["breakdown_value"]] = (row["value"], row["n"])
        return found, total

    current, total = parts(data.trend)
    baseline, _ = parts(data.baseline_compute)
    countable = proportion_condition(data.spec, kpi) is not None
    fmt = kpi.format
    keys = sorted(set(current) | set(baseline), key=lambda v: (v is None, str(v)))
    comparisons: list[stats.Comparison | None] = []
    for value in keys:
        cur, base = current.get(value), baseline.get(value)
        if countable and data.baseline_compute is not None:
            cur_n = cur[1] if cur else (total[1] if total else 0)
            base_n = base[1] if base else _base_n(data, kpi)
            x_c = round((cur[0] or 0.0) * cur_n) if cur else 0
            x_b = round((base[0] or 0.0) * base_n) if base else 0
            comparisons.append(
                stats.compare_proportions(x_b, base_n, x_c, cur_n, alpha=data.options.significance)
                if base_n and cur_n
                else None
            )
        else:
            comparisons.append(None)
    adjusted = adjust_p_values(
        [c.p_value if c else None for c in comparisons], data.spec.defaults.correction
    )
    all_count = round(total[0] * total[1]) if total and total[0] is not None else 0
    rows = []
    for value, comparison, p_adj in zip(keys, comparisons, adjusted, strict=True):
        cur, base = current.get(value), baseline.get(value)
        count = round(cur[0] * cur[1]) if cur and cur[0] is not None else 0
        shown = redactor(data.options.redact)(value)
        row = [md_text(shown) if shown is not None else "(none)"]
        if countable:
            row += [format_int(count), format_share(count, all_count)]
        row.append(format_value(cur[0] if cur else 0.0, fmt))
        if data.baseline_compute is not None:
            row.append(format_value(base[0] if base else 0.0, fmt))
            if comparison is not None and comparison.absolute is not None:
                interval = comparison.absolute
                row += [
                    format_change(interval.estimate, fmt)
                    + format_interval(interval.low, interval.high, lambda v: format_change(v, fmt)),
                    format_p_cell(p_adj),
                ]
            else:
                delta = (cur[0] if cur else 0.0) - (base[0] if base else 0.0)
                row += [format_change(delta, fmt) + " (not tested)", "—"]
        rows.append(row)
    return rows, "countable" if countable else ""


def _base_n(data: ReportData, kpi: KpiSpec) -> int:
    if data.baseline_compute is None:
        return 0
    table = data.baseline_compute.table.filter(
        (pl.col("kpi") == kpi.name)
        & (pl.col("grouping").list.len() == 0)
        & pl.col("breakdown").is_null()
    )
    return int(table.get_column("n").item()) if table.height else 0


def _section_breakdowns(data: ReportData) -> list[str]:
    lines = ["## Breakdowns", ""]
    for kpi in data.spec.kpis.values():
        if not kpi.breakdown:
            continue
        rows, countable = _breakdown_rows(data, kpi)
        lines += [f"### {md_text(kpi.title)} by {kpi.breakdown}", ""]
        if not rows:
            lines += ["No rows in the current arm.", ""]
            continue
        header = [kpi.breakdown]
        if countable:
            header += ["conversations", "share"]
        header.append("rate")
        if data.baseline_compute is not None:
            header += ["baseline rate", "Δ rate [CI]", "p adj."]
        lines += md_table(header, rows, "l" + "r" * (len(header) - 1))
        if countable:
            lines += [
                f"Share = of the conversations counted in {kpi.name}'s numerator; the "
                "rates add up to the KPI."
                + (
                    f" Δ: two-proportion test per value, {data.spec.defaults.correction}"
                    "-adjusted over the values."
                    if data.baseline_compute is not None
                    else ""
                ),
                "",
            ]
    lines += ["### Cohorts that differ from the rest", ""]
    if not data.options.by:
        cohorts = ", ".join(data.spec.defaults.cohorts)
        lines += [
            "No cohort analysis: pass `--by DIM` (e.g. "
            f"{cohorts or 'channel'}) to compare each cohort with the rest.",
            "",
        ]
        return lines
    lines += [
        f"Each value of {', '.join(f'`{g}`' for g in _cohort_groups(data))} against the rest of "
        f"{data.current.label}, every KPI: {data.cohort_tests} tests, "
        f"{data.spec.defaults.correction}-adjusted together; "
        f"{len(data.cohorts)} significant at α = {data.options.significance}. Observational: "
        "cohorts differ in more than this column.",
        "",
    ]
    lines += [f"- {md_text(n)}" for n in data.cohort_notes]
    if data.cohort_notes:
        lines.append("")
    if data.cohorts:
        rows = []
        for cell in data.cohorts:
            fmt = cell["format"]
            value = cell["value"]
            cohort = md_text(f"{cell['dimension']}={value if value is not None else 'null'}")
            rows.append(
                [
                    cell["kpi"],
                    cohort,
                    f"{compared_value(cell, 'current')} (n={format_int(cell['current_n'])})",
                    f"{compared_value(cell, 'baseline')} (n={format_int(cell['baseline_n'])})",
                    format_change(cell["delta"], fmt)
                    + format_interval(
                        cell["delta_low"], cell["delta_high"], lambda v, f=fmt: format_change(v, f)
                    ),
                    format_p_cell(cell["p_adjusted"]),
                    cell["test"] or "—",
                ]
            )
        lines += md_table(
            ["KPI", "cohort", "in cohort", "rest", "Δ [CI]", "p adj.", "test"], rows, "llrrrrl"
        )
    return lines


def _section_fairness(data: ReportData) -> list[str]:
    """The spec's `fairness:` checks and the interaction tests of their groups (compare)."""
    comparison = data.compare
    if comparison is None or not (comparison.fairness or comparison.heterogeneity):
        return []
    lines = ["## Fairness across groups", ""]
    lines += [f"- {md_text(line)}" for line in fairness_lines(comparison)]
    lines += [f"- {md_text(line)}" for line in heterogeneity_lines(comparison)]
    worse = [note for note in comparison.notes if "while better overall" in note]
    lines += [f"- **{md_text(note)}**" for note in worse]
    return [*lines, ""]


def _section_review(data: ReportData) -> list[str]:
    """The latest human review round (`--review`), with the trend over the rounds given."""
    return review_markdown(data.review) if data.review is not None else []


def _section_projection(data: ReportData) -> list[str]:
    """Cost at scale (`--project`): the current arm's costs at the target volume."""
    if data.projection is None:
        return []
    heading, _, *rest = projection_markdown(data.projection, level=2)
    scope = (
        f"Projected from the {data.current.label}: the conversations started in the "
        "period and their costs up to as-of (`kpictl project` on the same data)."
    )
    return [heading, "", scope, "", *rest]


def render_report(data: ReportData) -> str:
    """The scorecard's Markdown: a pure function of `data`."""
    sections = [
        _section_header,
        section_worth_it,
        _section_changes,
        _section_action,
        _section_tiles,
        _section_table,
        _section_trends,
        _section_breakdowns,
        _section_fairness,
        section_roi,
        _section_projection,
        _section_review,
        section_quality,
        section_drilldown,
        section_method,
    ]
    lines: list[str] = []
    for section in sections:
        lines += section(data)
    text = "\n".join(lines).rstrip("\n") + "\n"
    return re.sub(r"\n{3,}", "\n\n", text)


def _cohort_groups(data: ReportData) -> list[str]:
    """The --by columns as the cohort section names them: a cross-tab as `a × b`."""
    return [" × ".join(g) for g in cohort_sets(data.options.by, data.options.cross)[1:]]
