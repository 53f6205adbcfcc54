"""Markdown writing for the scorecard: tables, code spans, number formats, sparklines, and the
redaction of data values (`redactor`). Every value from the data is escaped (`md_text`,
`md_cell` of `kpictl.render.text`) and, unless `--no-redact`, redacted before it lands."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kpictl.comparison.model import (
    NOT_TESTABLE,
)
from kpictl.engine.window import UNTIMED_AS_OF
from kpictl.redact import redact_value
from kpictl.render.text import (
    iso,
    md_cell,
)
from kpictl.scorecard.model import INSUFFICIENT, NOT_JUDGED

SPARK = "▁▂▃▄▅▆▇█"
SPARK_GAP = "·"
CAVEAT_MARK = "†"
# A space that never breaks: a number, its unit and its interval stay on one line of a cell.
NBSP = "\u00a0"


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> list[str]:
    """A GitHub-flavoured table; `align` has one letter per column (l or r). Cells are kpictl's
    Markdown: every value from the data in them has been through `md_text` already. The
    right-aligned columns hold numbers: their spaces are non-breaking (`nowrap`), so a narrow
    column never wraps `+9.63 pp [+3.86 pp, +15.41 pp]` into five lines."""
    right = [align[i : i + 1] == "r" for i in range(len(header))]
    marks = ["---:" if r else "---" for r in right]
    lines = [
        "| " + " | ".join(md_cell(str(h)) for h in header) + " |",
        "| " + " | ".join(marks) + " |",
    ]
    for row in rows:
        assert len(row) == len(header), (header, row)
        cells = (nowrap(str(c)) if r else str(c) for c, r in zip(row, right, strict=True))
        lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    return [*lines, ""]


def nowrap(text: str) -> str:
    """`text` with every space non-breaking: a number with its unit (`1.39 %`, `$0.84`), a
    change with its interval, a time. Apply it after `md_text` (whose whitespace folding would
    undo it)."""
    return text.replace(" ", NBSP)


def format_time(value: dt.datetime | None) -> str | None:
    """A point in time as the scorecard shows it, `2026-03-01 00:17 UTC` (to the minute), or
    None (also for the as-of of data without timestamps)."""
    if value is None or value == UNTIMED_AS_OF:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_p_cell(value: float | None) -> str:
    """A p-value in a table column headed `p` or `p adj.`: `0.015`, `< 0.001`, `—`."""
    if value is None or math.isnan(value):
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def format_p_text(value: float | None, name: str = "p") -> str:
    """A p-value in a sentence: `p = 0.015`, `p < 0.001`, `p adj. = 1.000` (with `name`)."""
    cell = format_p_cell(value)
    return f"{name} {cell}" if cell.startswith("<") else f"{name} = {cell}"


def code_span(text: str) -> str:
    text = " ".join(text.split())
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def format_int(value: int) -> str:
    return f"{value:,}"


def format_share(count: float, total: float) -> str:
    return "—" if not total else f"{100.0 * count / total:.2f} %"


def format_money(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def status_text(status: str, threshold: str | None = None) -> str:
    label = {
        INSUFFICIENT: "insufficient data",
        NOT_JUDGED: "not judged",
        NOT_TESTABLE: "not testable",
    }.get(status, status)
    label += f" ({threshold})" if threshold else ""
    return label if status in ("ok", NOT_JUDGED) else f"**{label}**"


def format_day(value: dt.datetime | None) -> str:
    text = iso(value)
    if text is None:
        return "—"
    return text.removesuffix("T00:00:00Z")


def as_is(value: Any) -> Any:
    return value


def redactor(redact: bool) -> Callable[[Any], Any]:
    """How a data value is shown: `redact_value` (personal data and secrets masked) unless the
    report is asked not to redact (`--no-redact`)."""
    return redact_value if redact else as_is


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


def format_interval(low: float | None, high: float | None, formatter: Any) -> str:
    if low is None or high is None:
        return ""
    return f" [{formatter(low)}, {formatter(high)}]"


def truncate(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
