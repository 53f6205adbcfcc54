"""What every writer shares: each data value escaped for the place it lands (terminal,
Markdown, CSV, JSON) and each number formatted with its unit; the rows of a result as the
writers show them; the shape of a writer (`Write`, `RenderOptions`).

Log text is attacker-controlled: every value from the data passes the function of the place it
lands in, defined once here (control characters: `render/controls.py`, which the CLI's stderr
messages use too). README "Bad input and output safety" lists them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import polars as pl
from rich.text import Text

from kpictl.engine.findings import unavailable_label
from kpictl.engine.window import BUCKET, UNTIMED_AS_OF
from kpictl.io.read import FileReport
from kpictl.render.controls import visible_controls
from kpictl.spec.model import LAYERS

if TYPE_CHECKING:  # their modules import scipy: loaded only by the functions that render them
    from rich.console import Console

    from kpictl.projection import ProjectionResult


@dataclass(frozen=True)
class RenderOptions:
    """What a writer may need besides the result: the files read (compute's JSON lists them)
    and `wide` (a table with every column and interval, however wide the terminal)."""

    files: Sequence[FileReport] = ()
    wide: bool = False


# A writer of one result kind in one format: the result, the console whose file it writes to.
Write: TypeAlias = "Callable[[Any, Console, RenderOptions], None]"


def text_writer(to_text: Callable[[Any], str]) -> Write:
    """A `Write` of a format that is text: `to_text(result)` written to the console's file."""

    def write(result: Any, console: Console, options: RenderOptions) -> None:
        console.file.write(to_text(result))

    return write


LAYER_TITLES = {
    "business_outcomes": "Business outcomes",
    "quality_adoption": "Quality and adoption",
    "run_cost": "Run cost",
    "risk_compliance": "Risk and compliance",
}


STATUS_STYLES = {
    "ok": "green",
    "warning": "yellow",
    "critical": "red",
    "catastrophic": "bold red",
    "insufficient_data": "dim",
    "not_testable": "dim",
}


# Characters that start Markdown or GFM syntax anywhere in a line: escapes, code, emphasis,
# links and images, raw HTML and autolinks, tables, strikethrough, entities, headings and issue
# references, math, mentions. A `_` inside a word (customer_tier) never delimits emphasis.
_MD_SYNTAX = re.compile(r"[\\`*\[\]<>!|~&#$@]|_(?![^\W_])|(?<![^\W_])_")


# What turns plain text into an autolink: a scheme's `://`, a `//` host, a `name.tld` host.
_MD_LINK = re.compile(r":(?=//)|/(?=/)|(?<=[^\W_])\.(?=[^\W\d_])")


# A `|` that a table would read as a column break: not escaped by an odd run of backslashes.
_MD_PIPE = re.compile(r"(?<!\\)((?:\\\\)*)\|")


# A spreadsheet evaluates a text cell starting with = + - @ tab or CR as a formula (OWASP
# "CSV injection"); such a cell gets a leading single quote.
_CSV_FORMULA = "^[=+@\t\r-]"


def term_text(value: object) -> Text:
    """A data value for the terminal: a rich Text (never parsed as markup or emoji), with
    control characters shown as escapes so no ANSI sequence from the data reaches the screen."""
    return Text(visible_controls(str(value)))


def md_text(value: object) -> str:
    """A data value as inert Markdown inline text, safe in a table cell, a heading or a list
    item: one line, and no heading, link, image, HTML, autolink, code or emphasis."""
    text = visible_controls(" ".join(str(value).split()))
    return _MD_LINK.sub(r"\\\g<0>", _MD_SYNTAX.sub(r"\\\g<0>", text))


def csv_safe(frame: pl.DataFrame, numeric: Sequence[str] = ()) -> pl.DataFrame:
    """Text cells a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first)
    prefixed with `'`. Only text columns, and not those named in `numeric` (numbers written as
    text): a negative number stays a number. Write the result with polars' `write_csv`, which
    quotes a cell holding a comma, a quote, a line feed or a bare CR."""
    text = [
        name
        for name, dtype in frame.schema.items()
        if name not in numeric and dtype in (pl.String, pl.Categorical, pl.Enum)
    ]
    return frame.with_columns(
        pl.when(pl.col(name).cast(pl.String).str.contains(_CSV_FORMULA))
        .then(pl.lit("'") + pl.col(name).cast(pl.String))
        .otherwise(pl.col(name).cast(pl.String))
        .alias(name)
        for name in text
    )


def json_text(document: dict[str, Any]) -> str:
    """A JSON document as text. NaN and ±Infinity are not JSON (strict parsers reject the
    tokens): each becomes null, and the document's `notes` say where."""
    found: list[str] = []

    def finite(value: Any, path: str) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            name = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
            found.append(f"{path} ({name})")
            return None
        if isinstance(value, dict):
            return {k: finite(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [finite(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    cleaned = finite(document, "")
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        cleaned["notes"] = [
            *cleaned.get("notes", []),
            f"{len(found)} value(s) not finite, written as null: {shown}",
        ]
    return json.dumps(cleaned, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n"


def md_cell(text: str) -> str:
    """Markdown (kpictl's own, with data already through `md_text`) as one table cell: on one
    line, with every `|` that is not escaped yet escaped."""
    return _MD_PIPE.sub(r"\1\\|", " ".join(text.splitlines()))


def iso(value: dt.datetime | None) -> str | None:
    """ISO-8601 UTC text with a Z, or None (also for the as-of of data without timestamps)."""
    if value is None or value == UNTIMED_AS_OF:
        return None
    text = value.astimezone(dt.UTC).isoformat()
    return text.replace("+00:00", "Z")


def as_of_text(value: dt.datetime) -> str:
    """An as-of for a heading: ISO text, or why there is none (no row has a timestamp)."""
    return iso(value) or "— (no timestamps in the data)"


def format_value(value: float | None, fmt: str) -> str:
    """A KPI value with its unit: 67.89 %, $1.3122, 144.0 s, 4,080 ms, 4,099.27."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if fmt == "percent":
        return f"{value * 100:.2f} %"
    if fmt == "usd":
        return f"${value:,.4f}" if abs(value) < 10 else f"${value:,.2f}"
    if fmt == "duration":
        return f"{value:,.1f} s"
    if fmt == "ms":
        return f"{value:,.0f} ms"
    if fmt == "count":
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def format_change(value: float | None, fmt: str) -> str:
    """A signed change in the KPI's unit: +2.10 pp, -$0.0312, +12.0 s."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    sign = "+" if value >= 0 else "-"
    magnitude = abs(value)
    if fmt == "percent":
        return f"{sign}{magnitude * 100:.2f} pp"
    return sign + format_value(magnitude, fmt)


def format_relative(value: float | None) -> str:
    """A signed relative change: +4.2 %."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value * 100:+.1f} %"


def interval_text(low: float | None, high: float | None, formatter: Any) -> str:
    if low is None or high is None:
        return ""
    return f"[{formatter(low)}, {formatter(high)}]"


def format_p(value: float | None) -> str:
    """p-values: 4 significant digits, '<0.0001' below."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def shown_value(row: dict[str, Any], approximate: Collection[str] = ()) -> str:
    """A result row's value as shown: formatted (≈ before an approximate one: its KPI is in
    `approximate`), or "unavailable (no `x` column)"."""
    reason = row.get("reason")
    if reason:
        return unavailable_label(reason)
    shown = format_value(row["value"], row["format"])
    return f"{APPROXIMATE} {shown}" if row["kpi"] in approximate and shown != "—" else shown


APPROXIMATE = "≈"
"""The mark of an approximate value (`--approx-percentiles`) in tables and Markdown."""


def approximate_kpis(result: Any) -> frozenset[str]:
    """The KPIs whose values a compute or compare result holds approximately (none: exact)."""
    approximation = getattr(result, "approximation", None)
    return frozenset(approximation.kpis) if approximation is not None else frozenset()


def approximate_legend(result: Any) -> str:
    """The line under a compute table saying what ≈ marks (a result with an `approximation`)."""
    approximation = result.approximation
    return f"{APPROXIMATE} approximate percentile (--approx-percentiles: {approximation.method})"


def compared_value(row: dict[str, Any], arm: str) -> str:
    """An arm's value in a compare row, ≈ before an approximate one (`--approx-percentiles`)."""
    shown = format_value(row[f"{arm}_value"], row["format"])
    return f"{APPROXIMATE} {shown}" if row.get("approximate") and shown != "—" else shown


def compare_legend(result: Any) -> str:
    """What ≈ marks in a compare table (a result with an `approximation`)."""
    return (
        f"{APPROXIMATE} approximate percentile (--approx-percentiles: "
        f"{result.approximation.method}); Δ, its CI and p are exact"
    )


def cohort_of(row: dict[str, Any]) -> dict[str, str | None]:
    """The cohort object of a result row: dimension → value (bucket as ISO text)."""
    cohort: dict[str, str | None] = {}
    for dim in row["grouping"]:
        value = row.get(dim)
        cohort[dim] = iso(value) if dim == BUCKET else value
    return cohort


def cohort_label(row: dict[str, Any]) -> str:
    """`channel=web, bucket=2026-10-01` or `all`."""
    cohort = cohort_of(row)
    if not cohort:
        return "all"
    return ", ".join(f"{k}={_short_bucket(v) if k == BUCKET else v}" for k, v in cohort.items())


def _short_bucket(value: str | None) -> str:
    if value is None:
        return "null"
    return value.replace("T00:00:00Z", "") if value.endswith("T00:00:00Z") else value


def kpi_title(row: dict[str, Any], escape: Callable[[object], Any]) -> Any:
    """A result row's KPI as a reader sees it: its spec `label:` through `escape`, else its
    name (JSON and CSV keep the name in `kpi`)."""
    label = row.get("label")
    return escape(label) if label else str(row["kpi"])


def kpi_label(row: dict[str, Any], escape: Callable[[object], Any]) -> Any:
    """The KPI's label or name, or `└ column=value` for a breakdown row (the value through
    `escape`)."""
    if row["breakdown"] is not None:
        value = escape(row["breakdown_value"])
        prefix = f"  └ {row['breakdown']}="
        return Text(prefix) + value if isinstance(value, Text) else prefix + value
    return kpi_title(row, escape)


def by_layer(table: pl.DataFrame) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in table.iter_rows(named=True):
        groups.setdefault(row["layer"], []).append(row)
    order = {layer: i for i, layer in enumerate(LAYERS)}
    return sorted(groups.items(), key=lambda item: order.get(item[0], len(order)))


def status_counts(table: pl.DataFrame) -> dict[str, int]:
    """How many KPI × cohort cells are at each status."""
    counts = dict.fromkeys(STATUS_STYLES, 0)
    for status in table.get_column("status").to_list():
        counts[status] = counts.get(status, 0) + 1
    return counts


def heterogeneity_lines(result: Any) -> list[str]:
    """One line per heterogeneity test: Q, df, p and the groups flagged."""
    lines = []
    for test in result.heterogeneity:
        q = test.test
        stat = (
            "fewer than two groups with a standard error"
            if q is None
            else f"Cochran's Q = {q.q:.4g}, df = {q.df}, p = {format_p(q.p_value)}, "
            f"I² = {100 * q.i2:.0f} %"
        )
        worse = [str(g.group) for g in test.groups if g.worse]
        flag = (
            f"; worse than the baseline while better overall: {', '.join(worse)}" if worse else ""
        )
        lines.append(f"{test.kpi} across {test.dimension}: {stat}{flag}")
    return lines


def fairness_lines(result: Any) -> list[str]:
    """Every `fairness:` check of the run, breached or not."""
    from kpictl.comparison.fairness import fairness_note

    return [fairness_note(f) for f in result.fairness]


def _usd(value: float | None) -> str:
    return format_value(value, "usd")


def projection_rows(result: ProjectionResult) -> list[list[str]]:
    """component, per conversation, per month, interval — for the table and the Markdown."""
    level = f"{result.confidence:.0%}".replace("%", " %")
    rows = []
    for c in (*result.components, *([result.total] if result.total is not None else [])):
        if c.unavailable is not None:
            rows.append([c.label, "—", "—", c.unavailable])
            continue
        rows.append(
            [
                c.label,
                _usd(c.per_conversation),
                _usd(c.monthly),
                f"[{_usd(c.low)}, {_usd(c.high)}] ({level} CI)",
            ]
        )
    return rows


def projection_lead(result: ProjectionResult) -> list[str]:
    lines = []
    if result.status != "priced":
        lines.append(f"Cost projection {result.headline}.")
    if result.projected_per_month is not None and result.observed_per_month is not None:
        lines.append(
            f"Projected {result.projected_per_month:,.0f} conversations per month "
            f"({result.factor:,.4g} × the observed {result.observed_per_month:,.0f} per month: "
            f"{result.conversations:,} conversations in {result.hours:,} clock hours)."
        )
    return lines


def peak_rows(result: ProjectionResult) -> list[list[str]]:
    peak = result.peak
    if peak is None:
        return []
    return [
        ["p95 hour", _usd(peak.p95), _usd(peak.p95_projected)],
        [f"busiest hour ({iso(peak.max_hour)})", _usd(peak.max), _usd(peak.max_projected)],
    ]
