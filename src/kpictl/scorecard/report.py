"""`report`: the scorecard — one GitHub-flavoured Markdown document a CFO and an auditor trust.

`run_report` runs `compute` (values and daily trends of the current arm) and `compare` (the
baseline, when there is one), reads the facts and the inputs for the ROI, data-quality and
drill-down sections, and hands everything to `render_report`, a pure function from those results
to Markdown text. Nine sections:

1. title, period, as-of, baseline and design, verdict;
2. four tiles, one per layer (current value, change vs baseline, status, owner);
3. the KPI table (baseline, current, Δ and relative Δ with CIs, adjusted p, test, thresholds);
4. trends: a Unicode sparkline per KPI over the grain buckets (PNG charts with `charts_dir`);
5. breakdowns (e.g. escalation reasons) and cohorts that differ significantly from the rest;
6. ROI, only from declared params, with the formula and the assumptions written out;
7. data quality (rows read and skipped, pending, missing values, unpriced or negative costs, …);
8. drill-down: failing conversations per failure type, the first user message redacted;
9. method and provenance (definitions, tests, caveats, input files with sha256, versions).

The body is deterministic (stable order, fixed decimals); the only run-specific lines are those
of the provenance table named in `VOLATILE_PROVENANCE`. `write_charts` is the only function that
writes files; matplotlib is imported lazily (`pip install 'kpictl[charts]'`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import polars as pl

from kpictl import __version__, stats
from kpictl.comparison.run import (
    NOT_TESTABLE,
    UNAVAILABLE,
    CompareOptions,
    CompareResult,
    run_compare,
)
from kpictl.engine.compute import (
    BUCKET,
    MAX_COHORTS,
    UNTIMED_AS_OF,
    ComputeOptions,
    ComputeResult,
    check_cohort_counts,
    names_in,
    resolve_window,
    run_compute,
)
from kpictl.engine.costs import (
    HUMAN_MINUTE_PARAM,
    CostTotals,
    Slice,
    conversation_costs,
    cost_totals,
    human_minutes_unknown,
    slice_facts,
    unit_table,
)
from kpictl.engine.costs import number_param as _number_param
from kpictl.engine.costs import source_rows as _source_rows
from kpictl.engine.costs import with_literals as _with_literals
from kpictl.engine.datacheck import require_columns, unavailable_label
from kpictl.errors import UsageError
from kpictl.io.read import FileReport, Sources
from kpictl.io.schema import CANONICAL_TABLES
from kpictl.projection import ProjectionOptions, ProjectionResult, parse_volume, project_costs
from kpictl.redact import redact_value
from kpictl.render.output import (
    LAYER_TITLES,
    fairness_lines,
    format_change,
    format_p,
    format_relative,
    format_value,
    heterogeneity_lines,
    iso,
    md_cell,
    md_text,
    projection_markdown,
    review_markdown,
    shown_value,
)
from kpictl.review import ReviewScore, score_review
from kpictl.spec.model import LAYERS, OUTCOME_SOURCE, BaselineSpec, KpiSpec, Spec, TableSpec
from kpictl.sql.expr import compile_sql, did_you_mean, strip_literals

LEVELS = ("warning", "critical", "catastrophic")
NOT_JUDGED = "not_judged"
INSUFFICIENT = "insufficient_data"
STATUS_ORDER = (
    "ok",
    "warning",
    "critical",
    "catastrophic",
    INSUFFICIENT,
    UNAVAILABLE,
    NOT_TESTABLE,
    NOT_JUDGED,
)
SPARK = "▁▂▃▄▅▆▇█"
SPARK_GAP = "·"
CAVEAT_MARK = "†"
# Params the ROI section reads (by convention; declare them under `params:` in the spec).
HUMAN_CONVERSATION_PARAM = "human_cost_per_resolved_conversation"
# An ROI above this (saving > 10 × the agent run cost, i.e. above 1,000 %) mostly says that the
# run cost is small: the scorecard then states saving and cost instead of a bold percentage.
ROI_HEADLINE_LIMIT = 10.0
# The KPI whose comparison is the business value the agent arm gained (README "Business
# outcomes"); by convention, as cost_per_successful_task is for the cost per success.
OUTCOME_VALUE_KPI = "value_per_conversation"
# Rows of the provenance table that change from run to run (golden tests mask them).
VOLATILE_PROVENANCE = ("generated at", "command", "kpictl", "polars", "python")
MAX_COHORT_VALUES = 12
# Designs whose arms are conditions on the conversations of one window (randomized or not).
CONDITION_DESIGNS = ("holdout", "conditions")
_COHORT_BASELINE = "__kpictl_rest"
_COUNT_FILTER = re.compile(
    r"^\s*COUNT\s*\(\s*\*\s*\)\s*FILTER\s*\(\s*WHERE\s+(?P<cond>.+)\)\s*$",
    re.IGNORECASE | re.DOTALL,
)
_COUNT_ALL = re.compile(r"^\s*COUNT\s*\(\s*\*\s*\)\s*$", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Where a canonical column is expected to hold a value (SQL over the source's rows); a null
# elsewhere is by design (tokens only on agent messages, csat only on feedback rows, …).
EXPECTED_ON: dict[str, dict[str, str | None]] = {
    "events": {
        "conversation_id": None,
        "ts": None,
        "event": None,
        "role": "event = 'message'",
        "input_tokens": "event = 'message' AND role = 'agent'",
        "output_tokens": "event = 'message' AND role = 'agent'",
        "cost_usd": "event = 'message' AND role = 'agent'",
        "latency_ms": "event = 'message' AND role = 'agent'",
        "model": "event = 'message' AND role = 'agent'",
        "escalation_reason": "event = 'escalation'",
        "csat": "event = 'feedback'",
        "human_minutes": "event = 'message' AND role = 'human'",
        "policy_violation": "event = 'message' AND role = 'agent'",
        "user_id": None,
        "text": "event = 'message'",
    },
    "tool_calls": {
        "conversation_id": None,
        "ts": None,
        "tool": None,
        "status": None,
        "error_type": "status = 'error'",
        "retries": None,
        "latency_ms": None,
        "cost_usd": None,
    },
}
_NON_NEGATIVE = (
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "human_minutes",
    "retries",
)


# ----------------------------------------------------------------------------------------------
# Options and results
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportOptions:
    """What `report` is asked for."""

    baseline: str | None = None  # a baseline of the spec; default: the spec's defaults.baseline
    by: tuple[str, ...] = ()  # cohort columns: cohorts that differ from the rest are listed
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    as_of: dt.datetime | None = None
    title: str | None = None
    charts_dir: Path | None = None  # write one PNG per KPI here (needs matplotlib)
    link_base: Path | None = None  # the folder the Markdown is written to (chart links)
    redact: bool = True  # redact personal data and secrets in every data value shown
    drilldown: int = 3  # conversations shown per failure type
    max_cohorts: int = MAX_COHORTS  # the most values one --by column may have
    alpha: float = 0.05
    command_line: str = ""  # for the provenance appendix
    generated_at: dt.datetime | None = None  # provenance only; default: now (UTC)
    review: tuple[Path, ...] = ()  # labelled review files, one per round (`kpictl review`)
    project: str | None = None  # a target volume (10x, 50000/month): the Cost at scale section


@dataclass(frozen=True)
class Tile:
    """One KPI in its layer's tile: every number is a compute or compare value."""

    kpi: str
    layer: str
    owner: str
    format: str
    value: float | None
    n: int
    delta: float | None = None
    relative: float | None = None
    significant: bool = False
    status: str = NOT_JUDGED
    threshold: str | None = None
    caveats: tuple[str, ...] = ()
    reason: str | None = None  # why the KPI is unavailable (a column missing from the data)
    label: str | None = None  # the spec's `label:` (plain words), shown instead of the name

    @property
    def shown(self) -> str:
        """The value as shown: formatted, or "unavailable (no `x` column)"."""
        return (
            unavailable_label(self.reason) if self.reason else format_value(self.value, self.format)
        )


@dataclass(frozen=True)
class Finding:
    """One data-quality check over one source: `count` of `of` rows."""

    check: str
    source: str
    column: str | None
    count: int
    of: int
    meaning: str


@dataclass(frozen=True)
class ColumnQuality:
    """Missing values of one canonical column, overall and where a value is expected."""

    source: str
    column: str
    rows: int
    nulls: int
    expected_on: str | None
    expected_rows: int
    expected_nulls: int


@dataclass(frozen=True)
class ReportData:
    """Everything `render_report` needs; built by `run_report`."""

    spec: Spec
    options: ReportOptions
    current: Slice
    baseline: Slice | None
    compare: CompareResult | None
    trend: ComputeResult
    baseline_compute: ComputeResult | None
    tiles: tuple[Tile, ...]
    period_start: dt.datetime | None
    cohorts: tuple[dict[str, Any], ...]
    cohort_notes: tuple[str, ...]
    cohort_tests: int
    costs: CostTotals | None
    baseline_costs: CostTotals | None
    agent_alone: tuple[int, str] | None  # (conversations, how counted) for the human-only ROI
    files: tuple[FileReport, ...]
    file_hashes: Mapping[str, str]
    findings: tuple[Finding, ...]
    columns: tuple[ColumnQuality, ...]
    drilldown: tuple[dict[str, Any], ...]
    has_text: bool
    charts: Mapping[str, str]  # kpi → relative link
    notes: tuple[str, ...]
    used_columns: tuple[tuple[str, str, str], ...]  # (table.column, definition, source)
    review: ReviewScore | None = None  # the scored review rounds, when files were given
    projection: ProjectionResult | None = None  # `project`: the current arm at a volume


@dataclass(frozen=True)
class ReportResult:
    """The scorecard text and the results it was built from."""

    markdown: str
    tiles: tuple[Tile, ...]
    trend: ComputeResult
    compare: CompareResult | None
    charts: tuple[Path, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def at_or_above(self, level: str) -> list[str]:
        """KPIs whose tile status is at or above `level` (warning, critical, catastrophic)."""
        if level not in LEVELS:
            raise UsageError(f"--fail-on {level}: expected one of {', '.join(LEVELS)}")
        wanted = LEVELS[LEVELS.index(level) :]
        return [t.kpi for t in self.tiles if t.status in wanted]


# ----------------------------------------------------------------------------------------------
# Markdown helpers
# ----------------------------------------------------------------------------------------------


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> list[str]:
    """A GitHub-flavoured table; `align` has one letter per column (l or r). Cells are kpictl's
    Markdown: every value from the data in them has been through `md_text` already."""
    marks = ["---:" if (align[i : i + 1] == "r") else "---" for i in range(len(header))]
    lines = [
        "| " + " | ".join(md_cell(str(h)) for h in header) + " |",
        "| " + " | ".join(marks) + " |",
    ]
    for row in rows:
        assert len(row) == len(header), (header, row)
        lines.append("| " + " | ".join(md_cell(str(c)) for c in row) + " |")
    return [*lines, ""]


def _code(text: str) -> str:
    text = " ".join(text.split())
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _int(value: int) -> str:
    return f"{value:,}"


def _share(count: float, total: float) -> str:
    return "—" if not total else f"{100.0 * count / total:.2f} %"


def _money(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def _status_text(status: str, threshold: str | None = None) -> str:
    label = {
        INSUFFICIENT: "insufficient data",
        NOT_JUDGED: "not judged",
        NOT_TESTABLE: "not testable",
    }.get(status, status)
    label += f" ({threshold})" if threshold else ""
    return label if status in ("ok", NOT_JUDGED) else f"**{label}**"


def _day(value: dt.datetime | None) -> str:
    text = iso(value)
    if text is None:
        return "—"
    return text.removesuffix("T00:00:00Z")


# ----------------------------------------------------------------------------------------------
# Spec helpers
# ----------------------------------------------------------------------------------------------


def _kpi_tables(spec: Spec, kpi: KpiSpec) -> set[str]:
    if kpi.kind == "formula":
        return {t for name in kpi.formula_kpis for t in _kpi_tables(spec, spec.kpis[name])}
    return {kpi.over}


def _kpi_sqls(spec: Spec, kpi: KpiSpec) -> list[str | None]:
    if kpi.kind == "formula":
        return [s for name in kpi.formula_kpis for s in _kpi_sqls(spec, spec.kpis[name])]
    return [kpi.where, kpi.mature, kpi.value, kpi.numerator, kpi.denominator]


def adjust_p_values(p_values: Sequence[float | None], method: str) -> list[float | None]:
    """`stats.adjust_p_values` with the spec's correction name (holm, bh or none)."""
    return stats.adjust_p_values(p_values, cast(Any, method))


def _sql_words(sql: str) -> set[str]:
    return set(_WORD.findall(strip_literals(sql)))


def kpi_inputs(
    spec: Spec, kpi: KpiSpec, source_columns: Mapping[str, set[str]]
) -> tuple[set[tuple[str, str]], list[tuple[str, str, str]]]:
    """The (source, column) pairs a KPI reads, traced through derive and rollup entries, and
    the entries it uses as (table.column, SQL, source)."""
    inputs: set[tuple[str, str]] = set()
    entries: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()

    def visit(table: TableSpec, names: Iterable[str]) -> None:
        for name in names:
            if (table.name, name) in seen:
                continue
            seen.add((table.name, name))
            derive = next((d for d in table.derive if d.name == name), None)
            rollup = next((r for r in table.rollup if r.name == name), None)
            if derive is not None:
                entries.append((f"{table.name}.{name}", derive.sql, "derive"))
                visit(table, _sql_words(derive.sql))
            elif rollup is not None:
                entries.append((f"{table.name}.{name}", rollup.sql, rollup.source))
                columns = source_columns.get(rollup.source, set())
                words = _sql_words(rollup.sql)
                inputs.update((rollup.source, w) for w in words if w in columns)
                visit(table, [w for w in words if w not in columns])
            elif table.is_rollup and name in table.attributes and table.rollup_sources():
                inputs.add((table.rollup_sources()[0], name))
            elif not table.is_rollup:
                parent = spec.tables[table.lookup] if table.lookup else None
                assert table.from_source is not None
                if parent is not None and (
                    name in parent.attributes
                    or name == parent.time
                    or any(e.name == name for e in parent.derive)
                    or any(e.name == name for e in parent.rollup)
                ):
                    visit(parent, [name])
                elif name in source_columns.get(table.from_source, set()):
                    inputs.add((table.from_source, name))

    for name in _kpi_tables(spec, kpi):
        table = spec.tables[name]
        words: set[str] = set()
        for sql in [*_kpi_sqls(spec, kpi), table.where]:
            if sql:
                words |= _sql_words(sql)
        visit(table, sorted(words))
    return inputs, entries


def _proportion_condition(spec: Spec, kpi: KpiSpec) -> str | None:
    """`cond` of a `COUNT(*) FILTER (WHERE cond) / COUNT(*)` KPI over the unit table."""
    if kpi.kind != "ratio" or kpi.over != unit_table(spec).name:
        return None
    match = _COUNT_FILTER.match(kpi.numerator or "")
    if match is None or not _COUNT_ALL.match(kpi.denominator or ""):
        return None
    return match.group("cond").strip()


# ----------------------------------------------------------------------------------------------
# Gathering the data
# ----------------------------------------------------------------------------------------------


def _agent_alone(facts: pl.DataFrame) -> tuple[int, str] | None:
    needed = ("completed", "contained")
    if not all(c in facts.columns for c in needed):
        return None
    condition = pl.col("completed").fill_null(False) & pl.col("contained").fill_null(False)
    how = "`completed AND contained`"
    if "settled" in facts.columns:
        condition = condition & pl.col("settled").fill_null(False)
        how += " AND `settled`"
    return int(facts.filter(condition).height), how


def data_quality(
    spec: Spec, sources: Sources, as_of: dt.datetime
) -> tuple[list[Finding], list[ColumnQuality]]:
    """Checks over every row read (not only the report's window)."""
    findings: list[Finding] = []
    columns: list[ColumnQuality] = []
    for name, loaded in sources.by_name.items():
        read = loaded.rows + loaded.skipped
        findings.append(
            Finding(
                "bad rows skipped",
                name,
                None,
                loaded.skipped,
                read,
                "malformed rows left out (--on-bad-rows skip)",
            )
        )
        frame = loaded.frame.collect()
        schema = frame.schema
        canonical = [c for c in CANONICAL_TABLES.get(name, {}) if c in schema]
        expected = EXPECTED_ON.get(name, {})
        for column in canonical:
            scope = expected.get(column)
            nulls = frame.get_column(column).null_count()
            scope_rows, scope_nulls = frame.height, nulls
            if scope is not None and all(w in schema for w in _sql_words(scope) - {"AND"}):
                inside = frame.filter(compile_sql(scope).fill_null(False))
                scope_rows, scope_nulls = inside.height, inside.get_column(column).null_count()
            else:
                scope = None
            columns.append(
                ColumnQuality(name, column, frame.height, nulls, scope, scope_rows, scope_nulls)
            )
        if name == "events" and {"cost_usd", "event", "role"} <= set(schema):
            agent = frame.filter((pl.col("event") == "message") & (pl.col("role") == "agent"))
            findings.append(
                Finding(
                    "unpriced agent messages",
                    name,
                    "cost_usd",
                    agent.get_column("cost_usd").null_count(),
                    agent.height,
                    "agent messages with no cost_usd: counted as $0",
                )
            )
        if name == "tool_calls" and "cost_usd" in schema:
            findings.append(
                Finding(
                    "unpriced tool calls",
                    name,
                    "cost_usd",
                    frame.get_column("cost_usd").null_count(),
                    frame.height,
                    "tool calls with no cost_usd: counted as $0",
                )
            )
        for column in _NON_NEGATIVE:
            if column in canonical and schema[column].is_numeric():
                negative = int(frame.select((pl.col(column) < 0).sum()).item() or 0)
                findings.append(
                    Finding(
                        f"negative {column}",
                        name,
                        column,
                        negative,
                        frame.height,
                        "impossible values, summed as they are",
                    )
                )
        if name == "events" and "csat" in schema and schema["csat"].is_numeric():
            outside = int(
                frame.select(((pl.col("csat") < 1) | (pl.col("csat") > 5)).sum()).item() or 0
            )
            findings.append(
                Finding(
                    "csat outside 1-5",
                    name,
                    "csat",
                    outside,
                    frame.height,
                    "satisfaction scores outside the scale",
                )
            )
        if "ts" in schema:
            later = int(frame.select((pl.col("ts") > as_of).sum()).item() or 0)
            findings.append(
                Finding(
                    "rows after as-of",
                    name,
                    None,
                    later,
                    frame.height,
                    "ignored by every KPI of this report",
                )
            )
        visible = [c for c in frame.columns if not c.startswith("__")]
        duplicates = frame.height - frame.select(visible).unique().height
        findings.append(
            Finding(
                "duplicate rows",
                name,
                None,
                duplicates,
                frame.height,
                "identical rows: each is counted",
            )
        )
    if "events" in sources and "tool_calls" in sources:
        findings += _tool_call_timing(sources)
    return findings, columns


def _tool_call_timing(sources: Sources) -> list[Finding]:
    starts = (
        sources["events"]
        .group_by("conversation_id")
        .agg(pl.col("ts").min().alias("__start"), pl.len().alias("__events"))
    )
    calls = (
        sources["tool_calls"]
        .select("conversation_id", "ts")
        .join(starts, on="conversation_id", how="left")
        .collect()
    )
    before = int(calls.select((pl.col("ts") < pl.col("__start")).sum()).item() or 0)
    # a conversation is known when it has events, timed or not (chat transcripts may have no
    # times: their first event's time is null, the conversation still exists)
    orphans = calls.get_column("__events").null_count()
    return [
        Finding(
            "tool calls before their conversation started",
            "tool_calls",
            "ts",
            before,
            calls.height,
            "a call earlier than the conversation's first event",
        ),
        Finding(
            "tool calls of unknown conversations",
            "tool_calls",
            "conversation_id",
            orphans,
            calls.height,
            "no event has this conversation_id",
        ),
    ]


def kpi_caveats(
    spec: Spec,
    kpi: KpiSpec,
    sources: Sources,
    findings: Sequence[Finding],
    columns: Sequence[ColumnQuality],
) -> tuple[str, ...]:
    """Data-quality findings on the inputs a KPI reads, as short sentences."""
    source_columns = _source_columns(sources)
    inputs, _ = kpi_inputs(spec, kpi, source_columns)
    used_sources = {s for s, _ in inputs}
    caveats: list[str] = []
    for finding in findings:
        if finding.count == 0 or finding.check == "rows after as-of":
            continue
        if (
            (finding.column is None and finding.source in used_sources)
            or ((finding.source, finding.column) in inputs)
            or (
                finding.source == "tool_calls"
                and "tool_calls" in used_sources
                and finding.check.startswith("tool calls")
            )
        ):
            caveats.append(
                f"{finding.source}: {finding.check}: {_int(finding.count)} of "
                f"{_int(finding.of)} ({_share(finding.count, finding.of)})"
            )
    reported = {(f.source, f.column) for f in findings if f.count}
    for quality in columns:
        if (
            quality.expected_on
            and quality.expected_nulls
            and ((quality.source, quality.column) in inputs)
            and ((quality.source, quality.column) not in reported)
        ):
            caveats.append(
                f"{quality.source}.{quality.column} missing where expected: "
                f"{_int(quality.expected_nulls)} of {_int(quality.expected_rows)} "
                f"({_share(quality.expected_nulls, quality.expected_rows)})"
            )
    return tuple(dict.fromkeys(caveats))


def _source_columns(sources: Sources) -> dict[str, set[str]]:
    return {
        name: set(loaded.frame.collect_schema().names()) for name, loaded in sources.by_name.items()
    }


def _bound_status(kpi: KpiSpec, value: float | None, n: int) -> tuple[str, str | None]:
    """Without a baseline only absolute bounds ("> 1%") can be judged."""
    if value is None:
        return INSUFFICIENT, None
    if n < kpi.min_sample:
        return INSUFFICIENT, None
    fired = None
    for threshold in kpi.thresholds:
        if threshold.kind != "bound":
            continue
        beyond = value > threshold.amount if threshold.operator == ">" else value < threshold.amount
        if beyond and (fired is None or LEVELS.index(threshold.level) > LEVELS.index(fired.level)):
            fired = threshold
    if fired is not None:
        return fired.level, fired.text
    if kpi.thresholds and all(t.kind == "bound" for t in kpi.thresholds):
        return "ok", None
    return NOT_JUDGED, None


def _overall_rows(table: pl.DataFrame) -> pl.DataFrame:
    return table.filter((pl.col("grouping").list.len() == 0) & pl.col("breakdown").is_null())


def build_tiles(
    spec: Spec,
    trend: ComputeResult,
    comparison: CompareResult | None,
    caveats: Mapping[str, tuple[str, ...]],
) -> tuple[Tile, ...]:
    """One tile row per KPI: the compare row (overall) when there is a baseline, else the
    compute value with only absolute bounds judged."""
    tiles: list[Tile] = []
    if comparison is not None:
        rows = comparison.table.filter(pl.col("grouping").list.len() == 0)
        for row in rows.iter_rows(named=True):
            tiles.append(
                Tile(
                    row["kpi"],
                    row["layer"],
                    row["owner"],
                    row["format"],
                    row["current_value"],
                    row["current_n"],
                    row["delta"],
                    row["relative_delta"],
                    bool(row["significant"]),
                    row["status"],
                    row["threshold"],
                    caveats.get(row["kpi"], ()),
                    trend.check.reason(row["kpi"]),
                    row["label"],
                )
            )
        return tuple(tiles)
    for row in _overall_rows(trend.table).iter_rows(named=True):
        kpi = spec.kpis[row["kpi"]]
        status, fired = _bound_status(kpi, row["value"], row["n"])
        reason = trend.check.reason(kpi.name)
        if reason is not None:
            status, fired = UNAVAILABLE, None
        tiles.append(
            Tile(
                row["kpi"],
                row["layer"],
                row["owner"],
                row["format"],
                row["value"],
                row["n"],
                status=status,
                threshold=fired,
                caveats=caveats.get(row["kpi"], ()),
                reason=reason,
                label=kpi.label,
            )
        )
    return tuple(tiles)


def _slices(
    spec: Spec,
    sources: Sources,
    options: ReportOptions,
    comparison: CompareResult | None,
    base: BaselineSpec | None,
    baseline_sources: Sources | None,
) -> tuple[Slice, Slice | None]:
    if comparison is None:
        window = resolve_window(
            spec,
            sources,
            ComputeOptions(since=options.since, until=options.until, as_of=options.as_of),
        )
        return Slice("all conversations", sources, window), None
    window = comparison.current_window
    design = comparison.design
    if design.kind in CONDITION_DESIGNS and base is not None:
        return (
            Slice("treatment arm", sources, window, base.treatment),
            Slice("control arm", sources, window, base.control),
        )
    if comparison.baseline_window is None:
        return Slice("current period", sources, window), None
    if baseline_sources is not None:
        return (
            Slice("current dataset", sources, window),
            Slice("baseline dataset", baseline_sources, comparison.baseline_window),
        )
    return (
        Slice("current period", sources, window),
        Slice("baseline period", sources, comparison.baseline_window),
    )


def _eligible(spec: Spec, where: str | None) -> tuple[list[str], list[str]]:
    """KPIs whose tables can evaluate `where` (an arm condition), and the others."""
    if not where:
        return list(spec.kpis), []
    names = set(names_in([where]))
    ok: list[str] = []
    not_ok: list[str] = []
    for kpi in spec.kpis.values():
        tables = _kpi_tables(spec, kpi)
        (ok if all(names <= set(spec.table_schema(t)) for t in tables) else not_ok).append(kpi.name)
    return ok, not_ok


def _compute_slice(
    spec: Spec, piece: Slice, kpis: Sequence[str], grain: str | None
) -> ComputeResult:
    return run_compute(
        spec,
        piece.sources,
        ComputeOptions(
            grain=grain,
            since=piece.window.since,
            until=piece.window.until,
            as_of=piece.window.as_of,
            where=piece.where,
            kpis=tuple(kpis),
        ),
    )


def _quote_identifier(name: str) -> str:
    return name if _IDENTIFIER.match(name) else '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def cohort_comparisons(
    spec: Spec, piece: Slice, facts: pl.DataFrame, by: Sequence[str], options: ReportOptions
) -> tuple[list[dict[str, Any]], list[str], int]:
    """Each cohort value against the rest of the current arm, for every KPI; p-values adjusted
    (the spec's correction) over all these tests. Returns (significant rows, notes, tests)."""
    cells: list[dict[str, Any]] = []
    notes: list[str] = []
    correction = spec.defaults.correction
    for dim in by:
        column = _quote_identifier(dim)
        values = facts.get_column(dim).cast(pl.String).unique().to_list()
        ordered = sorted(v for v in values if v is not None) + ([None] if None in values else [])
        if len(ordered) > MAX_COHORT_VALUES:
            notes.append(
                f"--by {dim}: {len(ordered)} values; only the first "
                f"{MAX_COHORT_VALUES} (in order) are compared with the rest"
            )
            ordered = ordered[:MAX_COHORT_VALUES]
        for value in ordered:
            if value is None:
                inside, outside = f"{column} IS NULL", f"{column} IS NOT NULL"
            else:
                inside = f"CAST({column} AS VARCHAR) = {_quote_literal(value)}"
                outside = f"COALESCE(CAST({column} AS VARCHAR) <> {_quote_literal(value)}, TRUE)"
            if piece.where:
                inside, outside = f"({piece.where}) AND {inside}", f"({piece.where}) AND {outside}"
            rest = BaselineSpec(_COHORT_BASELINE, "holdout", control=outside, treatment=inside)
            variant = replace(spec, baselines={**spec.baselines, _COHORT_BASELINE: rest})
            result = run_compare(
                variant,
                piece.sources,
                CompareOptions(
                    baseline=_COHORT_BASELINE,
                    since=piece.window.since,
                    until=piece.window.until,
                    as_of=piece.window.as_of,
                    alpha=options.alpha,
                    correction="none",
                ),
            )
            for row in result.table.filter(pl.col("grouping").list.len() == 0).iter_rows(
                named=True
            ):
                if row["status"] == INSUFFICIENT or row["p_value"] is None:
                    continue
                shown = redact_value(value) if options.redact else value
                cells.append({**row, "dimension": dim, "value": shown})
    adjusted = adjust_p_values([c["p_value"] for c in cells], correction)
    significant = []
    for cell, p_adj in zip(cells, adjusted, strict=True):
        if p_adj is not None and p_adj < options.alpha:
            significant.append({**cell, "p_adjusted": p_adj})
    order = {name: i for i, name in enumerate(spec.kpis)}
    significant.sort(
        key=lambda c: (order[c["kpi"]], c["dimension"], c["value"] is None, str(c["value"]))
    )
    return significant, notes, len(cells)


def _failure_types(spec: Spec) -> list[tuple[KpiSpec, str, str]]:
    """(KPI, failing-row condition, label) for every share-of-conversations KPI."""
    types = []
    for kpi in spec.kpis.values():
        condition = _proportion_condition(spec, kpi)
        if condition is None:
            continue
        if kpi.direction == "higher":
            types.append((kpi, f"NOT COALESCE(({condition}), FALSE)", f"not {_code(condition)}"))
        else:
            types.append((kpi, f"COALESCE(({condition}), FALSE)", _code(condition)))
    return types


def _as_is(value: Any) -> Any:
    return value


def drilldown(
    spec: Spec,
    piece: Slice,
    facts: pl.DataFrame,
    costs: pl.DataFrame | None,
    options: ReportOptions,
    skip: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], bool]:
    """A few failing conversations per failure type (most recent first), with cohort values,
    cost and the first user message. Unless options.redact is False, every value shown (ids,
    cohort and breakdown values, the message) is redacted (kpictl.redact)."""
    table = unit_table(spec)
    key = table.key or "conversation_id"
    cohort_dims = [
        d for d in dict.fromkeys([*spec.defaults.cohorts, *options.by]) if d in facts.columns
    ]
    shown = redact_value if options.redact else _as_is
    groups: list[dict[str, Any]] = []
    wanted: set[str] = set()
    for kpi, condition, label in _failure_types(spec):
        if kpi.name in skip:
            continue
        frame, names = _with_literals(
            spec, facts.lazy(), piece.window, [kpi.where, kpi.mature, condition]
        )
        for sql in (kpi.where, kpi.mature):  # the rows the KPI counts
            if sql:
                frame = frame.filter(compile_sql(sql).fill_null(False))
        counted = frame.collect()
        failing = counted.filter(compile_sql(condition)).drop(names)
        settled = counted.drop(names)
        # (breakdown column, value), None for the whole failing set
        parts: list[tuple[tuple[str, object] | None, pl.DataFrame]] = [(None, failing)]
        if kpi.breakdown and kpi.breakdown in failing.columns:
            values = failing.get_column(kpi.breakdown).cast(pl.String)
            keys = sorted({v for v in values.to_list() if v is not None})
            parts = [((kpi.breakdown, shown(v)), failing.filter(values == v)) for v in keys]
            if values.null_count():
                parts.append(((kpi.breakdown, None), failing.filter(values.is_null())))
        for which, part in parts:
            order = [c for c in (table.time, key) if c and c in part.columns]
            fresh = part.filter(~pl.col(key).is_in(sorted(wanted)))  # each conversation once
            chosen = fresh.sort(order, descending=[True, False][: len(order)]).head(
                options.drilldown
            )
            wanted.update(chosen.get_column(key).to_list())
            groups.append(
                {
                    "kpi": kpi.name,
                    "label": label,
                    "part": which,
                    "count": part.height,
                    "of": settled.height,
                    "rows": chosen.select(
                        [key, *([table.time] if table.time else []), *cohort_dims]
                    ).to_dicts(),
                }
            )
    texts, has_text = _first_user_messages(piece, key, sorted(wanted))
    cost_of = {}
    if costs is not None:
        cost_of = dict(
            zip(
                costs.get_column(key).to_list(),
                costs.get_column("total_cost").to_list(),
                strict=True,
            )
        )
    for group in groups:
        for row in group["rows"]:
            row["__cohort"] = " · ".join(f"{d}={shown(row[d])}" for d in cohort_dims)
            row["__cost"] = cost_of.get(row[key])
            row["__text"] = shown(texts.get(row[key]))
            row[key] = shown(row[key])  # an id may be an e-mail address or a phone number
    return groups, has_text


def _first_user_messages(piece: Slice, key: str, ids: Sequence[str]) -> tuple[dict[str, str], bool]:
    rows = _source_rows(piece, "events")
    if rows is None:
        return {}, False
    schema = rows.collect_schema()
    if "text" not in schema or key not in schema or "role" not in schema:
        return {}, False
    has_text = bool(rows.select(pl.col("text").is_not_null().any()).collect().item())
    if not ids:
        return {}, has_text
    users = rows.filter((pl.col("role") == "user") & pl.col("text").is_not_null())
    if "event" in schema:
        users = users.filter(pl.col("event") == "message")
    first = (
        users.filter(pl.col(key).is_in(list(ids)))
        .sort([key, "ts"])
        .group_by(key, maintain_order=True)
        .agg(pl.col("text").first())
        .collect()
    )
    return dict(
        zip(first.get_column(key).to_list(), first.get_column("text").to_list(), strict=True)
    ), has_text


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return "(not readable)"
    return digest.hexdigest()


def run_report(
    spec: Spec,
    sources: Sources,
    options: ReportOptions | None = None,
    *,
    baseline_sources: Sources | None = None,
    baseline_label: str | None = None,
) -> ReportResult:
    """Build the scorecard: run compute and compare, check the data, render Markdown."""
    options = options or ReportOptions()
    if not 0 < options.alpha < 0.5:
        raise UsageError(f"--alpha {options.alpha}: expected a level such as 0.05")
    table = unit_table(spec)
    for dim in options.by:
        known = spec.column_types[table.name]
        if dim == table.key:
            raise UsageError(
                f"--by {dim}: the key of table {table.name!r} (one cohort per row): the "
                "scorecard compares groups of rows with the rest; use a column that groups "
                f"them (e.g. {', '.join(table.attributes[:3]) or 'an attribute'}), or see "
                f"each row's values with kpictl compute --by {dim}"
            )
        if dim not in known:
            raise UsageError(
                f"--by {dim}: not a column of table {table.name!r}"
                f"{did_you_mean(dim, known)}; e.g. "
                f"{', '.join(table.attributes) or ', '.join(sorted(known))}"
            )
        require_columns(spec, sources, table, [dim], f"--by {dim}")
    if options.charts_dir is not None:
        require_matplotlib()
    review = score_review(options.review, options.alpha) if options.review else None
    volume = parse_volume(options.project, "--project") if options.project else None
    baseline_name = options.baseline or spec.defaults.baseline
    comparison: CompareResult | None = None
    base: BaselineSpec | None = None
    if baseline_sources is not None or baseline_name is not None:
        comparison = run_compare(
            spec,
            sources,
            CompareOptions(
                baseline=None if baseline_sources is not None else baseline_name,
                since=options.since,
                until=options.until,
                as_of=options.as_of,
                alpha=options.alpha,
            ),
            baseline_sources=baseline_sources,
            baseline_label=baseline_label,
        )
        if baseline_sources is None and baseline_name is not None:
            base = spec.baselines[baseline_name]
    current, baseline = _slices(spec, sources, options, comparison, base, baseline_sources)
    projection = project_costs(spec, current, ProjectionOptions(volume)) if volume else None
    notes: list[str] = []
    eligible, skipped = _eligible(spec, current.where)
    if skipped:
        notes.append(
            f"no trend for {', '.join(skipped)}: their tables cannot evaluate the "
            f"arm condition {current.where}"
        )
    grain = spec.defaults.grain
    trend = _compute_slice(spec, current, eligible, grain)
    notes += list(trend.notes)
    breakdown_kpis = [k.name for k in spec.kpis.values() if k.breakdown and k.name in eligible]
    baseline_compute = None
    if baseline is not None and breakdown_kpis:
        base_eligible, _ = _eligible(spec, baseline.where)
        names = [k for k in breakdown_kpis if k in base_eligible]
        if names:
            baseline_compute = _compute_slice(spec, baseline, names, None)

    facts = slice_facts(spec, current)
    key = table.key or "conversation_id"
    costs_frame = conversation_costs(spec, current, facts.select(key))
    costs = cost_totals(spec, costs_frame, human_minutes_unknown(current.sources))
    baseline_costs = None
    if baseline is not None:
        base_facts = slice_facts(spec, baseline)
        baseline_costs = cost_totals(
            spec,
            conversation_costs(spec, baseline, base_facts.select(key)),
            human_minutes_unknown(baseline.sources),
        )
    as_of = current.window.as_of
    findings, columns = data_quality(spec, sources, as_of)
    files = list(sources.files)
    if baseline_sources is not None:
        more, more_columns = data_quality(
            spec, baseline_sources, baseline.window.as_of if baseline else as_of
        )
        findings += [replace(f, source=f"baseline {f.source}") for f in more]
        columns += [replace(c, source=f"baseline {c.source}") for c in more_columns]
        files += list(baseline_sources.files)
    caveats = {k.name: kpi_caveats(spec, k, sources, findings, columns) for k in spec.kpis.values()}
    tiles = build_tiles(spec, trend, comparison, caveats)
    cohorts: list[dict[str, Any]] = []
    cohort_notes: list[str] = []
    tests = 0
    if options.by:
        check_cohort_counts({"facts": facts}, options.by, options.max_cohorts)
        cohorts, cohort_notes, tests = cohort_comparisons(spec, current, facts, options.by, options)
    # no drill-down of an unavailable KPI: its failures would be counted over nulls
    groups, has_text = drilldown(
        spec, current, facts, costs_frame, options, skip=trend.check.unavailable
    )
    time = table.time
    period_start = current.window.since
    if period_start is None and time is not None and facts.height:
        period_start = facts.get_column(time).min()  # type: ignore[assignment]
    source_columns = _source_columns(sources)
    used: dict[str, tuple[str, str, str]] = {}
    for kpi in spec.kpis.values():
        for entry in kpi_inputs(spec, kpi, source_columns)[1]:
            used.setdefault(entry[0], entry)
    data = ReportData(
        spec=spec,
        options=options,
        current=current,
        baseline=baseline,
        compare=comparison,
        trend=trend,
        baseline_compute=baseline_compute,
        tiles=tiles,
        period_start=period_start,
        cohorts=tuple(cohorts),
        cohort_notes=tuple(cohort_notes),
        cohort_tests=tests,
        costs=costs,
        baseline_costs=baseline_costs,
        agent_alone=_agent_alone(facts),
        files=tuple(files),
        file_hashes={f.path: _sha256(f.path) for f in files},
        findings=tuple(findings),
        columns=tuple(columns),
        drilldown=tuple(groups),
        has_text=has_text,
        charts={},
        notes=tuple(notes),
        used_columns=tuple(sorted(used.values(), key=_entry_order(spec))),
        review=review,
        projection=projection,
    )
    written: list[Path] = []
    if options.charts_dir is not None:
        links, written = write_charts(data, options.charts_dir, options.link_base or Path.cwd())
        data = replace(data, charts=links)
    return ReportResult(render_report(data), tiles, trend, comparison, tuple(written), tuple(notes))


def report(
    spec: Spec,
    sources: Sources,
    *,
    baseline: str | None = None,
    baseline_sources: Sources | None = None,
    by: Sequence[str] | None = (),
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    as_of: dt.datetime | None = None,
    title: str | None = None,
    charts_dir: str | Path | None = None,
    redact: bool = True,
) -> str:
    """The scorecard as Markdown text (see `run_report` for the results behind it)."""
    options = ReportOptions(
        baseline=baseline,
        by=tuple(by or ()),
        since=since,
        until=until,
        as_of=as_of,
        title=title,
        charts_dir=Path(charts_dir) if charts_dir is not None else None,
        redact=redact,
    )
    return run_report(spec, sources, options, baseline_sources=baseline_sources).markdown


def _entry_order(spec: Spec) -> Any:
    order: dict[str, int] = {}
    for table in spec.tables.values():
        for name in [*(e.name for e in table.rollup), *(e.name for e in table.derive)]:
            order[f"{table.name}.{name}"] = len(order)
    return lambda entry: order.get(entry[0], len(order))


# ----------------------------------------------------------------------------------------------
# Charts (optional; matplotlib is imported lazily)
# ----------------------------------------------------------------------------------------------


def require_matplotlib() -> None:
    """Raise a UsageError that says how to install matplotlib when it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise UsageError("--charts needs matplotlib: pip install 'kpictl[charts]'") from exc


def trend_series(trend: ComputeResult) -> dict[str, list[tuple[dt.datetime, float | None, int]]]:
    """Per KPI: (bucket, value, n) of the overall (not cohort, not breakdown) bucket rows."""
    if BUCKET not in trend.table.columns:
        return {}
    rows = trend.table.filter(
        (pl.col("grouping").list.join(",") == BUCKET) & pl.col("breakdown").is_null()
    ).sort(["kpi", BUCKET], maintain_order=True)
    series: dict[str, list[tuple[dt.datetime, float | None, int]]] = {}
    for row in rows.iter_rows(named=True):
        series.setdefault(row["kpi"], []).append((row[BUCKET], row["value"], row["n"]))
    return series


def threshold_lines(kpi: KpiSpec, baseline: float | None) -> list[tuple[str, float]]:
    """Where each threshold level lies in the KPI's unit: bounds as they are; changes (pp, %,
    absolute) from the baseline in the direction of deterioration."""
    lines = []
    sign = -1.0 if kpi.direction == "higher" else 1.0
    for threshold in kpi.thresholds:
        if threshold.kind == "bound":
            lines.append((f"{threshold.level} ({threshold.text})", threshold.amount))
        elif baseline is not None:
            if threshold.kind == "relative":
                level = baseline * (1 + sign * threshold.amount)
            else:
                level = baseline + sign * threshold.amount
            lines.append((f"{threshold.level} ({threshold.text})", level))
    return lines


def _plot_scale(fmt: str) -> tuple[float, str]:
    return {
        "percent": (100.0, "%"),
        "usd": (1.0, "USD"),
        "duration": (1.0, "seconds"),
        "ms": (1.0, "ms"),
    }.get(fmt, (1.0, ""))


def write_charts(
    data: ReportData, charts_dir: Path, link_base: Path
) -> tuple[dict[str, str], list[Path]]:
    """One PNG per KPI (trend, baseline and thresholds); returns links relative to link_base."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    charts_dir.mkdir(parents=True, exist_ok=True)
    baselines = {}
    if data.compare is not None:
        for row in data.compare.table.filter(pl.col("grouping").list.len() == 0).iter_rows(
            named=True
        ):
            baselines[row["kpi"]] = row["baseline_value"]
    links: dict[str, str] = {}
    written: list[Path] = []
    for name, points in trend_series(data.trend).items():
        kpi = data.spec.kpis[name]
        scale, unit = _plot_scale(kpi.format)
        xs: Any = [p[0] for p in points]
        ys = [math.nan if p[1] is None else p[1] * scale for p in points]
        figure, axes = plt.subplots(figsize=(9, 3), dpi=100)
        axes.plot(
            xs,
            ys,
            marker="o",
            markersize=3,
            linewidth=1.5,
            label=f"{data.current.label}, per {data.spec.defaults.grain}",
        )
        baseline = baselines.get(name)
        if baseline is not None:
            axes.axhline(
                baseline * scale,
                color="grey",
                linestyle="--",
                linewidth=1,
                label=f"baseline {format_value(baseline, kpi.format)}",
            )
        styles = {
            "warning": ("orange", ":"),
            "critical": ("red", "-."),
            "catastrophic": ("darkred", "-"),
        }
        for label, level in threshold_lines(kpi, baseline):
            colour, style = styles.get(label.split(" ")[0], ("black", ":"))
            axes.axhline(level * scale, color=colour, linestyle=style, linewidth=1, label=label)
        # a `$` would start matplotlib's mathtext: the title is plain text
        title = f"{kpi.title} ({data.current.label})".replace("$", r"\$")
        axes.set_title(title, fontsize=10)
        axes.set_ylabel(unit)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        figure.autofmt_xdate()
        figure.tight_layout()
        path = charts_dir / f"{name}.png"
        figure.savefig(path, format="png", metadata={"Software": None})
        plt.close(figure)
        written.append(path)
        links[name] = Path(os.path.relpath(path.resolve(), link_base.resolve())).as_posix()
    return links, written


# ----------------------------------------------------------------------------------------------
# Rendering (pure: ReportData → Markdown)
# ----------------------------------------------------------------------------------------------


def sparkline(values: Sequence[float | None]) -> str:
    """▁▂▃▄▅▆▇█ over the values' own range; · where a bucket has no value."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return SPARK_GAP * len(values)
    low, high = min(present), max(present)
    chars = []
    for value in values:
        if value is None or math.isnan(value):
            chars.append(SPARK_GAP)
        elif high == low:
            chars.append(SPARK[3])
        else:
            chars.append(SPARK[round((value - low) / (high - low) * (len(SPARK) - 1))])
    return "".join(chars)


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


def _verdict(tiles: Sequence[Tile]) -> str:
    counts: dict[str, int] = {}
    for tile in tiles:
        counts[tile.status] = counts.get(tile.status, 0) + 1
    parts = [f"{counts[s]} {_status_text(s).strip('*')}" for s in STATUS_ORDER if counts.get(s)]
    worst = [t for t in tiles if t.status in LEVELS]
    text = ", ".join(parts)
    if worst:
        worst.sort(key=lambda t: -LEVELS.index(t.status))
        text += " — " + "; ".join(
            f"{t.kpi} is {t.status}" + (f" ({t.threshold})" if t.threshold else "") for t in worst
        )
    return text


def _section_header(data: ReportData) -> list[str]:
    options, comparison = data.options, data.compare
    window = data.current.window
    title = options.title or "Agent scorecard"
    end = window.until or window.as_of
    if window.as_of == UNTIMED_AS_OF:  # the data hold no time at all (chat transcripts)
        period = "no timestamps in the data (every conversation read is counted)"
        as_of = "none (no timestamps in the data)"
    else:
        period = (
            f"{iso(data.period_start) or 'start'} – {iso(end)} "
            "(conversations started in the period)"
        )
        as_of = iso(window.as_of) or ""
    lines = [
        f"# {title}",
        "",
        f"- **Period:** {period}",
        f"- **As of:** {as_of}",
        *_empty_lines(data),
    ]
    if comparison is None:
        lines += [
            "- **Baseline:** none — the spec declares no default baseline and none was "
            "given (`--baseline NAME|PATH`): values are descriptive; only absolute bounds "
            "are judged"
        ]
    else:
        design = comparison.design
        lines.append(f"- **Baseline:** `{design.baseline}` — {design.label}")
        if data.baseline is not None and design.kind in CONDITION_DESIGNS:
            srm = comparison.srm or {}
            lines.append(
                f"- **Design:** current = {_code(data.current.where or 'all')} "
                f"({_int(srm.get('treatment', 0))} conversations), baseline = "
                f"{_code(data.baseline.where or 'all')} "
                f"({_int(srm.get('control', 0))} conversations); "
                + (_srm_text(srm) if design.randomized else design.caveat)
            )
        elif comparison.baseline_window is not None:
            base = comparison.baseline_window
            lines.append(
                f"- **Design:** current {iso(window.since) or 'start'} – {iso(end)}, "
                f"baseline {iso(base.since) or 'start'} – "
                f"{iso(base.until or base.as_of)}; {design.caveat or ''}".rstrip("; ")
            )
        else:
            lines.append(f"- **Design:** {design.caveat}")
        lines.append(
            f"- **Test settings:** unit `{comparison.unit}`, α = {comparison.alpha}, "
            f"correction {comparison.correction}, "
            f"{round((1 - comparison.alpha) * 100)} % confidence intervals"
        )
    lines += [f"- **Verdict:** {_verdict(data.tiles)}", ""]
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
    units = unit_table(data.spec).name
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


def _srm_text(srm: Mapping[str, Any]) -> str:
    if not srm.get("checked"):
        reason = str(srm.get("reason") or "")
        if not reason or reason.startswith("no intended split"):
            reason = "no intended split declared"
        return f"sample ratio not checked ({reason})"
    flag = "**sample ratio mismatch**" if srm.get("mismatch") else "no sample ratio mismatch"
    return (
        f"intended treatment share {srm['expected_treatment_share']}, "
        f"p = {format_p(srm['p_value'])} ({flag})"
    )


def _section_tiles(data: ReportData) -> list[str]:
    lines = ["## At a glance", ""]
    by_layer: dict[str, list[Tile]] = {}
    for tile in data.tiles:
        by_layer.setdefault(tile.layer, []).append(tile)
    header = ["KPI", "current", "change vs baseline", "status", "owner"]
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
                    _status_text(t.status, t.threshold),
                    t.owner,
                ]
                for t in tiles
            ],
            "lrrll",
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


def _interval(low: float | None, high: float | None, formatter: Any) -> str:
    if low is None or high is None:
        return ""
    return f" [{formatter(low)}, {formatter(high)}]"


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
        for row in _overall_rows(data.trend.table).iter_rows(named=True):
            tile = tiles[row["kpi"]]
            rows.append(
                [
                    _kpi_name(tile),
                    LAYER_TITLES.get(row["layer"], row["layer"]),
                    shown_value(row),
                    _int(row["n"]),
                    _int(row["pending"]),
                    _thresholds_text(spec.kpis[row["kpi"]]),
                    _status_text(tile.status, tile.threshold),
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
                    f"{format_value(row['baseline_value'], fmt)} (n={_int(row['baseline_n'])})",
                    f"{tile.shown if tile.reason else format_value(row['current_value'], fmt)}"
                    f" (n={_int(row['current_n'])})",
                    format_change(row["delta"], fmt)
                    + _interval(
                        row["delta_low"], row["delta_high"], lambda v, f=fmt: format_change(v, f)
                    ),
                    format_relative(row["relative_delta"])
                    + _interval(row["relative_low"], row["relative_high"], format_relative),
                    format_p(row["p_adjusted"]),
                    row["test"] or "—",
                    _thresholds_text(spec.kpis[row["kpi"]]),
                    _status_text(row["status"], row["threshold"]),
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
        f"{_day(buckets[0])} → {_day(buckets[-1])} ({len(buckets)} buckets; "
        f"{SPARK_GAP} = no settled units in the bucket). Each sparkline spans its own "
        "min–max.",
        "",
    ]
    header = ["KPI", "trend", "first", "last", "min", "max"]
    with_charts = bool(data.charts)
    if with_charts:
        header.append("chart")
    rows = []
    for name in data.spec.kpis:
        if name not in series:
            continue
        fmt = data.spec.kpis[name].format
        by_bucket = {p[0]: p[1] for p in series[name]}
        values = [by_bucket.get(b) for b in buckets]
        present = [v for v in values if v is not None and not math.isnan(v)]
        row = [
            name,
            sparkline(values),
            format_value(present[0] if present else None, fmt),
            format_value(present[-1] if present else None, fmt),
            format_value(min(present) if present else None, fmt),
            format_value(max(present) if present else None, fmt),
        ]
        if with_charts:
            link = data.charts.get(name)
            row.append(f"[{name}.png]({link})" if link else "—")
        rows.append(row)
    lines += md_table(header, rows, "llrrrrl")
    return lines


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
    countable = _proportion_condition(data.spec, kpi) is not None
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
                stats.compare_proportions(x_b, base_n, x_c, cur_n, alpha=data.options.alpha)
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
        shown = redact_value(value) if data.options.redact else value
        row = [md_text(shown) if shown is not None else "(none)"]
        if countable:
            row += [_int(count), _share(count, all_count)]
        row.append(format_value(cur[0] if cur else 0.0, fmt))
        if data.baseline_compute is not None:
            row.append(format_value(base[0] if base else 0.0, fmt))
            if comparison is not None and comparison.absolute is not None:
                interval = comparison.absolute
                row += [
                    format_change(interval.estimate, fmt)
                    + _interval(interval.low, interval.high, lambda v: format_change(v, fmt)),
                    format_p(p_adj),
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
        f"Each value of {', '.join(f'`{d}`' for d in data.options.by)} against the rest of "
        f"{data.current.label}, every KPI: {data.cohort_tests} tests, "
        f"{data.spec.defaults.correction}-adjusted together; "
        f"{len(data.cohorts)} significant at α = {data.options.alpha}. Observational: "
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
                    f"{format_value(cell['current_value'], fmt)} (n={_int(cell['current_n'])})",
                    f"{format_value(cell['baseline_value'], fmt)} (n={_int(cell['baseline_n'])})",
                    format_change(cell["delta"], fmt)
                    + _interval(
                        cell["delta_low"], cell["delta_high"], lambda v, f=fmt: format_change(v, f)
                    ),
                    format_p(cell["p_adjusted"]),
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


def _section_roi(data: ReportData) -> list[str]:
    lines = ["## ROI", ""]
    costs = data.costs
    if costs is None:
        return [*lines, "No cost data.", ""]
    rate = costs.human_rate
    lines += [
        f"Run cost of the period, {data.current.label}: {_int(costs.conversations)} "
        "conversations started in the period; costs of their events up to as-of.",
        "",
    ]
    rows: list[list[str]] = [
        ["LLM cost", _money(costs.llm), "Σ events.cost_usd"],
        ["tool cost", _money(costs.tools), "Σ tool_calls.cost_usd"],
        ["agent run cost", _money(costs.run_cost), "LLM cost + tool cost"],
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
                _money(costs.human_cost),
                f"human minutes × {HUMAN_MINUTE_PARAM} (${rate:,.2f}/min, a declared "
                "param: an assumption)",
            ]
        )
        rows.append(
            [
                "total cost",
                _money(costs.run_cost + (costs.human_cost or 0.0)),
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
    success = next((t for t in data.tiles if t.kpi == "cost_per_successful_task"), None)
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
            + "; ".join(f"{_int(f.count)} {f.check.removeprefix('unpriced ')}" for f in unpriced)
            + " (see Data quality).",
            "",
        ]
    lines += _roi_against_baseline(data)
    lines += _roi_outcome_value(data)
    lines += _roi_against_humans(data)
    return lines


def _roi_against_baseline(data: ReportData) -> list[str]:
    costs, base = data.costs, data.baseline_costs
    lines = ["### Saving against the baseline", ""]
    if data.compare is None or base is None or costs is None:
        return [*lines, "Not estimated: there is no baseline arm to compare costs with.", ""]
    if not costs.conversations or not base.conversations:
        return [*lines, "Not estimated: an arm has no conversations.", ""]
    comparison = stats.compare_summaries(
        stats.mean_summary(base.conversations, base.total_sum, base.total_sq),
        stats.mean_summary(costs.conversations, costs.total_sum, costs.total_sq),
        alpha=data.options.alpha,
    )
    if comparison.absolute is None or comparison.current is None or comparison.baseline is None:
        return [*lines, "Not estimated: " + "; ".join(comparison.warnings), ""]
    delta = comparison.absolute
    n = costs.conversations
    saving, low, high = -delta.estimate * n, -delta.high * n, -delta.low * n
    level = round((1 - data.options.alpha) * 100)
    human_unknown = costs.human_unknown or base.human_unknown
    if human_unknown is not None:
        priced = f"LLM + tools only: human minutes unknown, {human_unknown}"
    elif costs.human_rate is not None:
        priced = f"LLM + tools + human minutes × {HUMAN_MINUTE_PARAM}"
    else:
        priced = "LLM + tools only (human minutes are not priced)"
    lines += [
        f"- Cost per conversation ({priced}): baseline "
        f"{format_value(comparison.baseline, 'usd')} (n={_int(base.conversations)}), current "
        f"{format_value(comparison.current, 'usd')} (n={_int(n)}); Δ = "
        f"{format_change(delta.estimate, 'usd')} [{format_change(delta.low, 'usd')}, "
        f"{format_change(delta.high, 'usd')}] ({comparison.test}, {level} % CI, "
        f"p = {format_p(comparison.p_value)}).",
    ]
    estimate = (
        f"−Δ × current conversations = {format_change(-delta.estimate, 'usd')} × {_int(n)} = "
    )
    if delta.low <= 0 <= delta.high:
        lines.append(
            f"- **No saving can be claimed:** the {level} % interval of Δ includes 0 (point "
            f"estimate {estimate}{_money(saving)} [{_money(low)}, {_money(high)}], for context "
            "only)."
        )
    elif delta.estimate > 0:
        lines.append(
            f"- **No saving:** the current side costs more per conversation; extra cost = "
            f"Δ × current conversations = {_money(-saving)} [{_money(-high)}, {_money(-low)}]."
        )
    else:
        lines.append(
            f"- Estimated saving = {estimate}**{_money(saving)}** [{_money(low)}, {_money(high)}]."
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


def _design_line(data: ReportData, what: str) -> str:
    """The comparison's design, said once the same way for every ROI estimate."""
    assert data.compare is not None
    if data.compare.design.randomized:
        return (
            "- Design: randomized holdout, so the difference is a causal estimate for "
            "this period's traffic."
        )
    return (
        "- Design: observational — "
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
    level = round((1 - data.options.alpha) * 100)
    source = data.spec.sources.get(OUTCOME_SOURCE)
    rule = source.attribution if source is not None else None
    lines.append(
        f"- Attributed business value per conversation (KPI `{OUTCOME_VALUE_KPI}`): baseline "
        f"{format_value(row['baseline_value'], 'usd')} (n={_int(row['baseline_n'] or 0)}), "
        f"current {format_value(row['current_value'], 'usd')} (n={_int(n)}); Δ = "
        f"{format_change(delta, 'usd')} [{format_change(low, 'usd')}, "
        f"{format_change(high, 'usd')}] ({row['test']}, {level} % CI, p = "
        f"{format_p(row['p_value'])}, p adj. = {format_p(row['p_adjusted'])} after "
        f"{data.compare.correction} correction over the KPI tests)."
    )
    added = f"Δ × current conversations = {format_change(delta, 'usd')} × {_int(n)} = "
    if low <= 0 <= high:
        lines.append(
            f"- **No added value can be claimed:** the {level} % interval of Δ includes 0 "
            f"(point estimate {added}{_money(delta * n)} [{_money(low * n)}, "
            f"{_money(high * n)}], for context only)."
        )
    elif delta < 0:
        lines.append(
            f"- **Less value:** the current side is credited with less per conversation; "
            f"{added}{_money(delta * n)} [{_money(low * n)}, {_money(high * n)}]."
        )
    else:
        lines.append(
            f"- Value added = {added}**{_money(delta * n)}** [{_money(low * n)}, "
            f"{_money(high * n)}]."
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
        f"count for neither side; {_int(pending)} conversations whose window is still open "
        "are left out (pending).",
        "",
    ]
    return lines


def _days(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds // 3600}h"


def _same_as_kpi(data: ReportData, comparison: stats.Comparison) -> list[str]:
    """When a KPI of the comparison measures the same difference, say how it fared there
    (its p-value is corrected over every KPI; the ROI test stands alone)."""
    assert data.compare is not None
    overall = data.compare.table.filter(pl.col("grouping").list.len() == 0)
    for row in overall.iter_rows(named=True):
        b, c = row["baseline_value"], row["current_value"]
        if b is None or c is None or comparison.baseline is None or comparison.current is None:
            continue
        if math.isclose(b, comparison.baseline, rel_tol=1e-9, abs_tol=1e-12) and math.isclose(
            c, comparison.current, rel_tol=1e-9, abs_tol=1e-12
        ):
            verdict = "significant" if row["significant"] else "**not significant**"
            tests = overall.height
            line = (
                f"- The same difference is the KPI `{row['kpi']}`: p adj. = "
                f"{format_p(row['p_adjusted'])} after {data.compare.correction} correction "
                f"over the {tests} KPI tests, {verdict} there"
            )
            if not row["significant"]:
                line += "; treat any saving as indicative, not established"
            return [line + "."]
    return []


def _roi_line(saving: float, run_cost: float, interval: tuple[float, float] | None = None) -> str:
    """ROI = saving ÷ agent run cost as a bold figure, unless the run cost is tiny next to the
    saving (ROI above ROI_HEADLINE_LIMIT): then the ratio says more about how cheap the agent
    is to run than about the change, and it is shown with its inputs and a plain statement."""
    roi = saving / run_cost
    if roi > ROI_HEADLINE_LIMIT:
        share = run_cost / saving * 100
        return (
            f"- ROI is not a useful headline here: saving ÷ agent run cost = {_money(saving)} "
            f"÷ {_money(run_cost)} = {roi * 100:,.0f} %, because the run cost is only "
            f"{f'{share:.1f}' if share >= 0.1 else '< 0.1'} % of the saving. Judge the change "
            "by the saving and its interval, not by this ratio."
        )
    text = (
        f"- ROI = saving ÷ agent run cost = {_money(saving)} ÷ {_money(run_cost)} = "
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
        f"- Conversations the agent resolved alone: {_int(count)} ({how}).",
        f"- Human cost avoided = {_int(count)} × {HUMAN_CONVERSATION_PARAM} "
        f"(${value:,.2f}) = {_money(avoided)}.",
        f"- Saving = human cost avoided − agent run cost = {_money(avoided)} − "
        f"{_money(costs.run_cost)} = **{_money(saving)}**.",
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


def _section_quality(data: ReportData) -> list[str]:
    lines = ["## Data quality", "", "### Inputs", ""]
    lines += md_table(
        ["source", "file", "format", "rows", "skipped", "first skip reason"],
        [
            [
                f.source,
                md_text(f.path),
                f.format,
                _int(f.rows),
                _int(f.skipped),
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
                _int(f.count),
                _int(f.of),
                _share(f.count, f.of),
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
                _share(c.nulls, c.rows),
                _code(c.expected_on) if c.expected_on else "all rows",
                f"{_int(c.expected_nulls)} of {_int(c.expected_rows)} "
                f"({_share(c.expected_nulls, c.expected_rows)})",
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
                    [row["kpi"], _int(row["pending_current"]), _int(row["pending_baseline"])]
                )
        return rows
    for row in _overall_rows(data.trend.table).iter_rows(named=True):
        if row["pending"]:
            rows.append([row["kpi"], _int(row["pending"])])
    return rows


def _section_drilldown(data: ReportData) -> list[str]:
    lines = ["## Drill-down", ""]
    key = unit_table(data.spec).key or "conversation_id"
    time = unit_table(data.spec).time
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
            f"{_int(group['count'])} of the {_int(group['of'])} conversations the KPI counts.",
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
                (iso(row.get(time)) if time else None) or "—",
                md_text(row["__cohort"]) if row["__cohort"] else "—",
                format_value(row["__cost"], "usd"),
            ]
            if data.has_text:
                text = row["__text"]
                cells.append(md_text(_truncate(text)) if text else "—")
            rows.append(cells)
        lines += md_table(header, rows, "lllr" + ("l" if data.has_text else ""))
    return lines


def _truncate(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


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
            parts.append(f"{label} {_code(sql)}")
    return parts


def _section_method(data: ReportData) -> list[str]:
    spec, comparison = data.spec, data.compare
    lines = ["## Method and provenance", "", "### Definitions", ""]
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
            [[name, _code(sql), source] for name, sql, source in data.used_columns],
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
                _int(f.size_bytes),
                _int(f.rows),
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
            ["command", _code(data.options.command_line) if data.options.command_line else "—"],
        ],
        "ll",
    )
    return lines


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
        _section_tiles,
        _section_table,
        _section_trends,
        _section_breakdowns,
        _section_fairness,
        _section_roi,
        _section_projection,
        _section_review,
        _section_quality,
        _section_drilldown,
        _section_method,
    ]
    lines: list[str] = []
    for section in sections:
        lines += section(data)
    text = "\n".join(lines).rstrip("\n") + "\n"
    return re.sub(r"\n{3,}", "\n\n", text)
