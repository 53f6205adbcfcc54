"""The scorecard's data: what `report` is asked for (`ReportOptions`), what it gathers
(`ReportData`: tiles, data-quality findings, …) and what it returns (`ReportResult`), with the
status vocabulary and the few readers of compute results the other modules share."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import polars as pl

from kpictl import stats
from kpictl.comparison.model import (
    CompareResult,
)
from kpictl.engine.compute import ComputeResult
from kpictl.engine.costs import (
    CostTotals,
    Slice,
)
from kpictl.engine.findings import unavailable_label
from kpictl.engine.interface import MAX_COHORTS, TimeBound
from kpictl.engine.window import BUCKET
from kpictl.errors import UsageError
from kpictl.io.read import FileReport
from kpictl.projection import ProjectionResult
from kpictl.render.text import (
    APPROXIMATE,
    format_value,
)
from kpictl.review import ReviewScore
from kpictl.spec.model import LEVELS, Defaults, Spec, levels_at_or_above

NOT_JUDGED = "not_judged"


INSUFFICIENT = "insufficient_data"


# Rows of the provenance table that change from run to run (golden tests mask them).
VOLATILE_PROVENANCE = ("generated at", "command", "kpictl", "polars", "python")


# Designs whose arms are conditions on the conversations of one window (randomized or not).
CONDITION_DESIGNS = ("holdout", "conditions")


@dataclass(frozen=True)
class ReportOptions:
    """What `report` is asked for."""

    baseline: str | None = None  # a baseline of the spec; default: the spec's defaults.baseline
    by: tuple[str, ...] = ()  # cohort columns: cohorts that differ from the rest are listed
    cross: tuple[str, ...] = ()  # `by` columns taken together: each combination of values
    since: TimeBound | None = None
    until: TimeBound | None = None
    as_of: dt.datetime | None = None
    where: str | None = None  # --where: a SQL filter on the KPI tables' rows (as compare's)
    title: str | None = None
    charts_dir: Path | None = None  # write one PNG per KPI here (needs matplotlib)
    format: str = "markdown"  # or "html": one self-contained page, charts inline
    link_base: Path | None = None  # the folder the Markdown is written to (chart links)
    redact: bool = True  # redact personal data and secrets in every data value shown
    drilldown: int = 3  # conversations shown per failure type
    max_cohorts: int = MAX_COHORTS  # the most values one --by column may have
    alpha: float | None = None  # None: 1 − the spec's defaults.confidence
    command_line: str = ""  # for the provenance appendix
    generated_at: dt.datetime | None = None  # provenance only; default: now (UTC)
    review: tuple[Path, ...] = ()  # labelled review files, one per round (`kpictl review`)
    project: str | None = None  # a target volume (10x, 50000/month): the Cost at scale section

    @property
    def significance(self) -> float:
        """alpha; None (not filled in from a spec's defaults.confidence): the default level."""
        return self.alpha if self.alpha is not None else Defaults().alpha


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
    approximate: bool = False  # --approx-percentiles: the value is an approximate percentile

    @property
    def shown(self) -> str:
        """The value as shown: formatted (≈ before an approximate one), or "unavailable (no
        `x` column)"."""
        if self.reason:
            return unavailable_label(self.reason)
        shown = format_value(self.value, self.format)
        return f"{APPROXIMATE} {shown}" if self.approximate and shown != "—" else shown


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
    """Everything `render_report` needs; built by `gather_report`."""

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
    html: str | None = None  # the page (`format="html"`): the Markdown rendered, charts inline

    def at_or_above(self, level: str) -> list[str]:
        """KPIs whose tile status is at or above `level` (warning, critical, catastrophic)."""
        if level not in LEVELS:
            raise UsageError(f"--fail-on {level}: expected one of {', '.join(LEVELS)}")
        wanted = levels_at_or_above(level)
        return [t.kpi for t in self.tiles if t.status in wanted]


def adjust_p_values(p_values: Sequence[float | None], method: str) -> list[float | None]:
    """`stats.adjust_p_values` with the spec's correction name (holm, bh or none)."""
    return stats.adjust_p_values(p_values, cast(Any, method))


def overall_rows(table: pl.DataFrame) -> pl.DataFrame:
    return table.filter((pl.col("grouping").list.len() == 0) & pl.col("breakdown").is_null())


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
