"""`report`: the scorecard — one GitHub-flavoured Markdown document a CFO and an auditor trust.

`run_report` gathers (`gather.py`: compute, compare, facts, data checks), writes the charts when
asked (`charts.py`) and renders the sections (`sections.py`, a pure function of the gathered
data). `report` is the same as Markdown text for the Python API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from kpictl.engine.interface import Engine
from kpictl.io.read import Sources
from kpictl.scorecard.charts import chart_link, draw_charts, write_charts
from kpictl.scorecard.gather import gather_report
from kpictl.scorecard.model import ReportOptions, ReportResult
from kpictl.scorecard.sections import render_report
from kpictl.spec.model import Spec

__all__ = ["ReportOptions", "ReportResult", "report", "run_report"]


def run_report(
    spec: Spec,
    sources: Sources,
    options: ReportOptions | None = None,
    *,
    baseline_sources: Sources | None = None,
    baseline_label: str | None = None,
    engine: Engine | None = None,
) -> ReportResult:
    """Build the scorecard: run compute and compare, check the data, render Markdown.
    `engine` builds the run's facts and aggregates them (default: polars)."""
    data = gather_report(
        spec,
        sources,
        options,
        baseline_sources=baseline_sources,
        baseline_label=baseline_label,
        engine=engine,
    )
    options = data.options
    written: list[Path] = []
    images: dict[str, bytes] = {}  # link in the Markdown → PNG, inlined by the HTML page
    if options.charts_dir is not None or options.format == "html":
        drawn = draw_charts(data)
        if options.charts_dir is not None:
            links, written = write_charts(
                drawn, options.charts_dir, options.link_base or Path.cwd()
            )
        else:  # only inlined: the targets name the images, no file is written
            links = {name: chart_link(f"charts/{name}.png") for name in drawn}
        data = replace(data, charts=links)
        images = {links[name]: image for name, image in drawn.items()}
    markdown = render_report(data)
    html: str | None = None
    if options.format == "html":
        from kpictl.render.html import markdown_to_html  # markdown-it: the HTML page's alone

        html = markdown_to_html(markdown, images=images)
    return ReportResult(
        markdown, data.tiles, data.trend, data.compare, tuple(written), data.notes, html
    )


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
    format: str = "markdown",
    engine: Engine | None = None,
) -> str:
    """The scorecard as Markdown text, or with `format="html"` as one self-contained HTML page
    (see `run_report` for the results behind it); `engine` builds and aggregates the facts
    (default: polars; e.g. kpictl.engine.duck.DuckDBEngine())."""
    options = ReportOptions(
        baseline=baseline,
        by=tuple(by or ()),
        since=since,
        until=until,
        as_of=as_of,
        title=title,
        charts_dir=Path(charts_dir) if charts_dir is not None else None,
        redact=redact,
        format=format,
    )
    result = run_report(spec, sources, options, baseline_sources=baseline_sources, engine=engine)
    return result.html if result.html is not None else result.markdown
