"""Charts (optional): one PNG per KPI with its trend, baseline and threshold levels.
`write_charts` is the only function of the scorecard that writes files; matplotlib is imported
lazily (`pip install 'kpictl[charts]'`)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import polars as pl

from kpictl.errors import UsageError
from kpictl.render.output import (
    format_value,
)
from kpictl.scorecard.model import ReportData, trend_series
from kpictl.spec.model import KpiSpec


def require_matplotlib() -> None:
    """Raise a UsageError that says how to install matplotlib when it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise UsageError("--charts needs matplotlib: pip install 'kpictl[charts]'") from exc


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
