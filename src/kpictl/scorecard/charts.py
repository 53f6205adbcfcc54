"""Charts: one PNG per KPI, shown under the scorecard's Trends section (`--charts DIR` writes
them next to the Markdown; `--format html` inlines them).

`chart_data` (pure) decides what a chart says: the KPI's plain-language title, the arm as the
spec names it, the value and the units (n) of each time bucket, a confidence band where the KPI
is a share of units, which buckets have too few units to read, the baseline, and the y-range —
a threshold far from the data is named at the chart's edge instead of stretching the axis.
`draw_chart` draws that with matplotlib (imported lazily: `pip install 'kpictl[charts]'`);
`write_charts` is the only function of the scorecard that writes files.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl

from kpictl import stats
from kpictl.engine.shapes import kpi_shape
from kpictl.errors import UsageError
from kpictl.render.text import LAYER_TITLES, format_value, md_text
from kpictl.scorecard.model import ReportData, trend_series
from kpictl.spec.model import KpiSpec

# What `report --format` writes: the Markdown, or that Markdown as one self-contained page.
REPORT_FORMATS = ("markdown", "html")
# A bucket with fewer units than this (or than the KPI's min_sample, when lower) is drawn as a
# hollow marker off the line, without a band: its value moves too much to read a trend from.
MIN_BUCKET_UNITS = 30
# A threshold more than this many data spans beyond the data is named at the edge, not drawn.
FAR_THRESHOLD_SPANS = 1.0


def require_matplotlib(option: str = "--charts") -> None:
    """Raise a UsageError that says how to install matplotlib when it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"{option} needs matplotlib: pip install 'kpictl[charts]'") from exc


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


@dataclass(frozen=True)
class ChartPoint:
    """One time bucket: the KPI's value over its n settled units, and the band around it."""

    bucket: dt.datetime
    value: float | None
    n: int
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class ChartData:
    """Everything one chart shows, in the KPI's own unit (a share is 0–1)."""

    kpi: str
    title: str  # the KPI's label (plain words), else its name
    layer: str
    format: str
    grain: str
    arm: str  # the arm drawn, named as the spec names it
    points: tuple[ChartPoint, ...]
    min_units: int  # buckets below this are drawn as too few units
    band: str | None  # what the band is, or None when the KPI's shape has none per bucket
    baseline: float | None
    baseline_label: str | None
    thresholds: tuple[tuple[str, float], ...]  # drawn as lines
    off_chart: tuple[tuple[str, float, str], ...]  # (threshold, level, "above" | "below")
    y_range: tuple[float, float]

    @property
    def sparse(self) -> tuple[ChartPoint, ...]:
        """Buckets with too few units to read (or no value)."""
        return tuple(p for p in self.points if p.n < self.min_units or p.value is None)


def _arm_name(data: ReportData) -> str:
    where = data.current.where
    return f"{data.current.label} ({where})" if where else data.current.label


def _baseline_name(data: ReportData) -> str | None:
    if data.baseline is None and data.compare is None:
        return None
    name = data.options.baseline or data.spec.defaults.baseline
    side = data.baseline.label if data.baseline is not None else "baseline"
    where = data.baseline.where if data.baseline is not None else None
    text = f"baseline {name}, {side}" if name else side
    return f"{text} ({where})" if where else text


def _band(data: ReportData, kpi: KpiSpec) -> str | None:
    """The band's name when a bucket's interval follows from its value and n alone: a share of
    the report's units (each unit 0 or 1: Wilson score interval); else None."""
    primary = data.spec.primary_table
    if kpi.kind != "ratio" or primary is None or kpi.over != primary.name:
        return None
    shape = kpi_shape(kpi)
    if shape.kind != "ratio" or not shape.counts_rows:
        return None
    return f"{1 - data.options.significance:.0%} Wilson interval".replace("%", " %")


def _y_range(
    points: Sequence[ChartPoint], baseline: float | None, levels: Sequence[tuple[str, float]]
) -> tuple[tuple[float, float], list[tuple[str, float]], list[tuple[str, float, str]]]:
    core = [v for p in points for v in (p.value, p.low, p.high) if v is not None]
    if baseline is not None:
        core.append(baseline)
    if not core:
        core = [level for _, level in levels] or [0.0]
    low, high = min(core), max(core)
    span = high - low or abs(high) * 0.1 or 1.0
    drawn, off = [], []
    for label, level in levels:
        if low - FAR_THRESHOLD_SPANS * span <= level <= high + FAR_THRESHOLD_SPANS * span:
            drawn.append((label, level))
        else:
            off.append((label, level, "above" if level > high else "below"))
    every = [low, high, *(level for _, level in drawn)]
    return (min(every), max(every)), drawn, off


def chart_data(data: ReportData) -> list[ChartData]:
    """One chart per KPI with a time trend, in the spec's KPI order (pure)."""
    baselines: dict[str, float | None] = {}
    if data.compare is not None:
        overall = data.compare.table.filter(pl.col("grouping").list.len() == 0)
        for row in overall.iter_rows(named=True):
            baselines[row["kpi"]] = row["baseline_value"]
    series = trend_series(data.trend)
    charts = []
    for name, kpi in data.spec.kpis.items():
        if name not in series:
            continue
        band = _band(data, kpi)
        min_units = min(MIN_BUCKET_UNITS, kpi.min_sample) if kpi.min_sample else MIN_BUCKET_UNITS
        points = []
        for bucket, value, n in series[name]:
            low = high = None
            # a share of n units: value × n is a whole count (else no band for the bucket)
            if band is not None and value is not None and n >= min_units:
                count = value * n
                if abs(count - round(count)) < 1e-6:
                    low, high = stats.wilson_interval(round(count), n, data.options.significance)
            points.append(ChartPoint(bucket, value, n, low, high))
        baseline = baselines.get(name)
        y_range, drawn, off = _y_range(points, baseline, threshold_lines(kpi, baseline))
        charts.append(
            ChartData(
                kpi=name,
                title=kpi.title,
                layer=kpi.layer,
                format=kpi.format,
                grain=data.spec.defaults.grain,
                arm=_arm_name(data),
                points=tuple(points),
                min_units=min_units,
                band=band,
                baseline=baseline,
                baseline_label=_baseline_name(data) if baseline is not None else None,
                thresholds=tuple(drawn),
                off_chart=tuple(off),
                y_range=y_range,
            )
        )
    return charts


def _plot_scale(fmt: str) -> tuple[float, str]:
    return {
        "percent": (100.0, "%"),
        "usd": (1.0, "USD"),
        "duration": (1.0, "seconds"),
        "ms": (1.0, "ms"),
    }.get(fmt, (1.0, ""))


def _plain(text: str) -> str:
    # a `$` would start matplotlib's mathtext: every label is plain text
    return text.replace("$", r"\$")


_LEVEL_STYLES = {
    "warning": ("#d97706", ":"),
    "critical": ("#dc2626", "-."),
    "catastrophic": ("#7f1d1d", "-"),
}


def draw_chart(chart: ChartData) -> bytes:
    """The chart as PNG bytes: the trend with its band, too-few-unit buckets hollow and off the
    line, the baseline and thresholds, and the units per bucket in a panel below. The PNG's
    Description names n per bucket (as `compute --grain` counts them)."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.dates
    import matplotlib.pyplot as plt

    scale, unit = _plot_scale(chart.format)
    xs: Any = [p.bucket for p in chart.points]
    readable = [p.value is not None and p.n >= chart.min_units for p in chart.points]
    ys = [
        p.value * scale if ok and p.value is not None else math.nan
        for p, ok in zip(chart.points, readable, strict=True)
    ]
    # 8 × 5 in: the legend sits under the chart, so the plot keeps its width on a phone
    figure, (axes, counts) = plt.subplots(
        2,
        1,
        figsize=(8, 5),
        dpi=144,
        sharex=True,
        layout="constrained",
        gridspec_kw={"height_ratios": [3, 1]},
    )
    colour = "#1f6feb"
    if chart.band is not None:
        lows = [p.low * scale if p.low is not None else math.nan for p in chart.points]
        highs = [p.high * scale if p.high is not None else math.nan for p in chart.points]
        axes.fill_between(
            xs, lows, highs, color=colour, alpha=0.15, linewidth=0, label=_plain(chart.band)
        )
    axes.plot(
        xs,
        ys,
        marker="o",
        markersize=3,
        linewidth=1.5,
        color=colour,
        label=_plain(f"{chart.arm}, per {chart.grain}"),
    )
    sparse = [
        p for p, ok in zip(chart.points, readable, strict=True) if not ok and p.value is not None
    ]
    if sparse:
        axes.plot(
            [p.bucket for p in sparse],
            [p.value * scale for p in sparse if p.value is not None],
            linestyle="none",
            marker="o",
            markersize=5,
            markerfacecolor="white",
            markeredgecolor="#8c959f",
            label=f"fewer than {chart.min_units} units (not read)",
        )
    if chart.baseline is not None and chart.baseline_label is not None:
        axes.axhline(
            chart.baseline * scale,
            color="#59636e",
            linestyle="--",
            linewidth=1,
            label=_plain(f"{chart.baseline_label}: {format_value(chart.baseline, chart.format)}"),
        )
    for label, level in chart.thresholds:
        line_colour, style = _LEVEL_STYLES.get(label.split(" ")[0], ("black", ":"))
        axes.axhline(
            level * scale, color=line_colour, linestyle=style, linewidth=1, label=_plain(label)
        )
    low, high = chart.y_range
    pad = (high - low) * 0.08 or abs(high) * 0.05 or 1.0
    axes.set_ylim((low - pad) * scale, (high + pad) * scale)
    if chart.off_chart:
        notes = "; ".join(
            f"{'↑' if side == 'above' else '↓'} {label} at {format_value(level, chart.format)}"
            for label, level, side in chart.off_chart
        )
        axes.text(
            1.0,
            1.02,
            _plain(f"off the chart: {notes}"),
            transform=axes.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            color="#59636e",
        )
    axes.set_title(_plain(chart.title), fontsize=11, loc="left")
    axes.set_ylabel(unit)
    axes.grid(alpha=0.3)
    ns = [p.n for p in chart.points]
    bar_colours = [colour if ok else "#d0d7de" for ok in readable]
    # bars 80 % of the closest buckets' distance (in days, matplotlib's date unit)
    buckets = [p.bucket for p in chart.points]
    gaps = [(b - a).total_seconds() for a, b in pairwise(buckets)]
    counts.bar(xs, ns, color=bar_colours, width=0.8 * (min(gaps) / 86400 if gaps else 1.0))
    counts.axhline(
        chart.min_units,
        color="#8c959f",
        linestyle=":",
        linewidth=1,
        label=f"{chart.min_units} units (grey bars: fewer)",
    )
    counts.set_ylabel(f"units per\n{chart.grain}", fontsize=8)
    counts.grid(alpha=0.3, axis="y")
    locator = matplotlib.dates.AutoDateLocator()
    counts.xaxis.set_major_locator(locator)
    counts.xaxis.set_major_formatter(matplotlib.dates.ConciseDateFormatter(locator))
    handles, labels = axes.get_legend_handles_labels()
    more, more_labels = counts.get_legend_handles_labels()
    figure.legend(
        handles + more,
        labels + more_labels,
        loc="outside lower center",
        ncol=2,
        fontsize=8,
        frameon=False,
    )
    buffer = io.BytesIO()
    description = json.dumps(
        {"kpi": chart.kpi, "n": {p.bucket.isoformat(): p.n for p in chart.points}}
    )
    figure.savefig(
        buffer,
        format="png",
        metadata={"Software": None, "Title": chart.title, "Description": description},
    )
    plt.close(figure)
    return buffer.getvalue()


def chart_link(path: str) -> str:
    """A chart's path as a Markdown image target (spaces and brackets percent-encoded)."""
    return quote(path, safe="/._-~")


def draw_charts(data: ReportData) -> dict[str, bytes]:
    """Each KPI's chart as PNG bytes, in the spec's KPI order."""
    return {chart.kpi: draw_chart(chart) for chart in chart_data(data)}


def write_charts(
    images: Mapping[str, bytes], charts_dir: Path, link_base: Path
) -> tuple[dict[str, str], list[Path]]:
    """Write each KPI's PNG into charts_dir; returns links relative to link_base, and the files."""
    charts_dir.mkdir(parents=True, exist_ok=True)
    links: dict[str, str] = {}
    written: list[Path] = []
    for name, image in images.items():
        path = charts_dir / f"{name}.png"
        path.write_bytes(image)
        written.append(path)
        links[name] = chart_link(
            Path(os.path.relpath(path.resolve(), link_base.resolve())).as_posix()
        )
    return links, written


def _caption(chart: ChartData) -> str:
    ns = [p.n for p in chart.points]
    grain = chart.grain
    parts = [f"n per {grain}: {min(ns):,}–{max(ns):,} units" if ns else f"no {grain} has units"]
    sparse = len(chart.sparse)
    if sparse:
        parts.append(
            f"{sparse} of {len(ns)} {grain}s under {chart.min_units} units (hollow, not read)"
        )
    parts.append(f"band: {chart.band}" if chart.band else "no band (not a share of units)")
    for label, level, side in chart.off_chart:
        parts.append(f"{label} at {format_value(level, chart.format)} is {side} the chart")
    return md_text("; ".join(parts) + ".")


def chart_lines(data: ReportData) -> list[str]:
    """The charts as Markdown images under the Trends section, one subsection per layer."""
    if not data.charts:
        return []
    lines: list[str] = []
    charts = [c for c in chart_data(data) if c.kpi in data.charts]
    for layer, title in LAYER_TITLES.items():
        mine = [c for c in charts if c.layer == layer]
        if not mine:
            continue
        lines += [f"### {title}", ""]
        for chart in mine:
            alt = md_text(f"{chart.title}: {chart.arm}, per {chart.grain}")
            lines += [f"![{alt}]({data.charts[chart.kpi]})", "", _caption(chart), ""]
    return lines
