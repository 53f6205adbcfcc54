"""The table writer (`--format table`, the default): rich tables fitted to the terminal, and
`kpictl check`'s plain text.

Fitting a table to the terminal: numbers are never cut. Columns leave by priority, headers get
shorter, intervals move to a second line of their cell or leave, and a note says what `--wide`
would add. Only text (KPI names, cohorts, owners) may wrap, folded, never ellipsised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kpictl.engine.checksources import CheckReport
from kpictl.engine.compute import ComputeResult
from kpictl.engine.findings import unavailable_label
from kpictl.render.controls import visible_controls
from kpictl.render.text import (
    LAYER_TITLES,
    STATUS_STYLES,
    RenderOptions,
    Write,
    approximate_kpis,
    approximate_legend,
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
    peak_rows,
    projection_lead,
    projection_rows,
    shown_value,
    status_counts,
    term_text,
    text_writer,
)

if TYPE_CHECKING:  # their modules import scipy: loaded only by the functions that render them
    from kpictl.projection import ProjectionResult
    from kpictl.review import ReviewScore


@dataclass(frozen=True)
class TableColumn:
    """One column of a fitted table. `floor` > 0: text that may fold down to that many cells;
    0: a number or a status, shown whole on each line of its cell."""

    key: str
    header: str
    short: str
    justify: str = "left"
    floor: int = 0


@dataclass(frozen=True)
class TableLayout:
    """One way to draw a table: columns left out, short headers, where intervals go
    (`inline`, `below` on a second line of the cell, or `none`)."""

    dropped: tuple[str, ...] = ()
    short: bool = False
    intervals: str = "inline"


TableRow = tuple[bool, dict[str, str | Text]]


def _plain(cell: str | Text) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _cell_width(cell: str | Text) -> int:
    return max((cell_len(line) for line in _plain(cell).split("\n")), default=0)


def fit_widths(
    columns: Sequence[TableColumn],
    headers: Sequence[str],
    cells: Sequence[Sequence[str | Text]],
    width: int,
) -> list[int] | None:
    """Column widths (without padding) that fit `width` cells of a boxed table, or None. Every
    column gets its widest line except folding text, which gets what is left (at least its
    floor): first up to its longest word (so text wraps at spaces rather than folding a word),
    then up to its widest line, in column order."""
    natural = [
        max([cell_len(h), *(_cell_width(row[i]) for row in cells)]) for i, h in enumerate(headers)
    ]
    budget = width - (3 * len(columns) + 1)  # a space either side of each cell, the rules
    least = [
        min(n, max(c.floor, cell_len(h))) if c.floor else n
        for c, h, n in zip(columns, headers, natural, strict=True)
    ]
    if sum(least) > budget:
        return None
    spare = budget - sum(least)
    widths = list(least)
    words = [
        min(n, max((cell_len(w) for row in cells for w in _plain(row[i]).split()), default=0))
        for i, n in enumerate(natural)
    ]
    for goal in (words, natural):
        for i, column in enumerate(columns):
            if column.floor:
                grant = max(0, min(goal[i] - widths[i], spare))
                spare -= grant
                widths[i] += grant
    return widths


def _fitted_table(
    title: str | Text,
    build: Callable[[TableLayout], tuple[Sequence[TableColumn], Sequence[TableRow]]],
    layouts: Sequence[TableLayout],
    width: int,
    wide: bool,
) -> tuple[Table, TableLayout, int]:
    """The first of `layouts` that fits `width` (the last one when none does; the first with
    `wide`), as a rich Table, with the layout used and the table's width. `build(layout)`
    gives the columns and the rows: (starts a section, cells by column key)."""
    chosen: tuple[TableLayout, list[TableColumn], list[int], Sequence[TableRow]] | None = None
    for layout in layouts[:1] if wide else layouts:
        columns, rows = build(layout)
        kept = [c for c in columns if c.key not in layout.dropped]
        headers = [c.short if layout.short else c.header for c in kept]
        cells = [[row.get(c.key, "") for c in kept] for _, row in rows]
        widths = fit_widths(kept, headers, cells, 10**6 if wide else width)
        if widths is not None or layout == layouts[-1]:
            if widths is None:  # nothing fits: the narrowest layout, text at its floors
                widths = [
                    max(cell_len(h), c.floor)
                    if c.floor
                    else max([cell_len(h), *(_cell_width(r[i]) for r in cells)])
                    for i, (c, h) in enumerate(zip(kept, headers, strict=True))
                ]
            chosen = (layout, kept, widths, rows)
            break
    assert chosen is not None
    layout, kept, widths, rows = chosen
    table = Table(title=title, title_justify="left", header_style="bold")
    for column, column_width in zip(kept, widths, strict=True):
        table.add_column(
            column.short if layout.short else column.header,
            justify=column.justify,  # type: ignore[arg-type]
            width=column_width,
            no_wrap=not column.floor,
            overflow="fold",
        )
    for section, row in rows:
        if section and table.row_count:
            table.add_section()
        table.add_row(*(row.get(c.key, "") for c in kept))
    return table, layout, sum(widths) + 3 * len(kept) + 1


def _left_out_note(columns: Sequence[TableColumn], layout: TableLayout, width: int) -> Text | None:
    """`Left out to fit 80 columns: owner, pending; --wide shows them.`, or None."""
    names = [c.header for c in columns if c.key in layout.dropped]
    if layout.intervals == "none":
        names.append("confidence intervals")
    if not names:
        return None
    return Text(f"Left out to fit {width} columns: {', '.join(names)}; --wide shows them.")


def _print_fitted(console: Console, table: Table, table_width: int, wide: bool) -> None:
    """Print `table`; with `wide`, on a console as wide as the table (the terminal wraps)."""
    if not wide or table_width <= console.width:
        console.print(table)
        return
    previous = console.width
    console.width = table_width
    try:
        console.print(table)
    finally:
        console.width = previous


COMPUTE_COLUMNS = (
    TableColumn("kpi", "KPI", "KPI", floor=14),
    TableColumn("cohort", "cohort", "cohort", floor=8),
    TableColumn("value", "value", "value", "right"),
    TableColumn("n", "n", "n", "right"),
    TableColumn("pending", "pending", "pend.", "right"),
    TableColumn("owner", "owner", "owner"),
)


# Narrower and narrower: owner leaves first, then pending; value and n always stay.
COMPUTE_LAYOUTS = (
    TableLayout(),
    TableLayout(short=True),
    TableLayout(dropped=("owner",), short=True),
    TableLayout(dropped=("owner", "pending"), short=True),
)


def render_table(result: ComputeResult, console: Console, wide: bool = False) -> None:
    """A rich table grouped by layer, with units and n, fitted to the console's width (or every
    column with `wide`); a note names the columns left out."""
    window = result.window
    title = f"KPIs as of {as_of_text(window.as_of)}"
    if window.since or window.until:
        title += f" · window {iso(window.since) or 'start'} – {iso(window.until) or 'as-of'}"
    rows: list[TableRow] = []
    approximate = approximate_kpis(result)
    for layer, layer_rows in by_layer(result.table):
        rows.append((True, {"kpi": Text(LAYER_TITLES.get(layer, layer), style="bold")}))
        for row in layer_rows:
            rows.append(
                (
                    False,
                    {
                        "kpi": kpi_label(row, term_text),
                        "cohort": term_text(cohort_label(row)),
                        "value": shown_value(row, approximate),
                        "n": f"{row['n']:,}",
                        "pending": f"{row['pending']:,}" if row["pending"] else "",
                        "owner": term_text(row["owner"]),
                    },
                )
            )
    table, layout, table_width = _fitted_table(
        title, lambda _: (COMPUTE_COLUMNS, rows), COMPUTE_LAYOUTS, console.width, wide
    )
    _print_fitted(console, table, table_width, wide)
    note = _left_out_note(COMPUTE_COLUMNS, layout, console.width)
    if note is not None:
        console.print(note)
    if approximate:
        console.print(term_text(approximate_legend(result)))


def _compare_columns(layout: TableLayout) -> tuple[TableColumn, ...]:
    ci = " [CI]" if layout.intervals != "none" else ""
    return (
        TableColumn("kpi", "KPI", "KPI", floor=14),
        TableColumn("cohort", "cohort", "cohort", floor=8),
        TableColumn("baseline", "baseline", "base", "right"),
        TableColumn("current", "current", "current", "right"),
        TableColumn("delta", f"Δ{ci}", f"Δ{ci}", "right"),
        TableColumn("relative", f"relative Δ{ci}", f"rel. Δ{ci}", "right"),
        TableColumn("p", "p adj.", "p adj.", "right"),
        TableColumn("test", "test", "test"),
        TableColumn("status", "status", "status"),
    )


# Narrower and narrower: intervals and n move under their value, headers shorten, then the
# statistical detail leaves (test, relative Δ, the intervals, p), then the baseline. KPI,
# cohort, current, Δ and status always stay.
COMPARE_LAYOUTS = (
    TableLayout(),
    TableLayout(intervals="below"),
    TableLayout(intervals="below", short=True),
    TableLayout(dropped=("test",), intervals="below", short=True),
    TableLayout(dropped=("test", "relative"), intervals="below", short=True),
    TableLayout(dropped=("test", "relative"), intervals="none", short=True),
    TableLayout(dropped=("test", "relative", "p"), intervals="none", short=True),
    TableLayout(dropped=("test", "relative", "p", "baseline"), intervals="none", short=True),
)


def _is_good(row: dict[str, Any]) -> bool | None:
    delta = row["delta"]
    if delta is None or not row["significant"]:
        return None
    return (delta > 0) == (row["direction"] == "higher")


def _compare_row(row: dict[str, Any], layout: TableLayout) -> dict[str, str | Text]:
    """The terminal cells of one compare row in `layout`; data values through `term_text`."""
    fmt = row["format"]
    inline = layout.intervals == "inline"
    joint = " " if inline else "\n"

    def with_interval(value: str, low: Any, high: Any, formatter: Any) -> str:
        interval = interval_text(low, high, formatter) if layout.intervals != "none" else ""
        return f"{value}{joint}{interval}" if interval else value

    good = _is_good(row)
    change_style = "" if good is None else "green" if good else "red"
    threshold = f"({row['threshold']})" if row["threshold"] else ""
    return {
        "kpi": kpi_title(row, term_text),
        "cohort": term_text(", ".join(f"{d}={row[d]}" for d in row["grouping"]) or "all"),
        "baseline": f"{compared_value(row, 'baseline')}{joint}"
        f"{'(' if inline else ''}n={row['baseline_n']:,}{')' if inline else ''}",
        "current": f"{compared_value(row, 'current')}{joint}"
        f"{'(' if inline else ''}n={row['current_n']:,}{')' if inline else ''}",
        "delta": Text(
            with_interval(
                format_change(row["delta"], fmt),
                row["delta_low"],
                row["delta_high"],
                lambda v: format_change(v, fmt),
            ),
            style=change_style,
        ),
        "relative": Text(
            with_interval(
                format_relative(row["relative_delta"]),
                row["relative_low"],
                row["relative_high"],
                format_relative,
            ),
            style=change_style,
        ),
        "p": format_p(row["p_adjusted"]),
        "test": row["test"] or "—",
        "status": Text(
            row["status"] + (joint + threshold if threshold else ""),
            style=STATUS_STYLES.get(row["status"], ""),
        ),
    }


def render_compare_table(result: Any, console: Console, wide: bool = False) -> None:
    """A rich table grouped by layer, fitted to the console's width (every column and interval
    with `wide`); changes coloured by whether they are good for the KPI; a note names what was
    left out."""
    design = result.design
    counts = status_counts(result.table)
    title = (
        f"{design.label} · baseline {design.baseline} · unit {result.unit} · "
        f"α {result.alpha} ({result.correction})"
    )
    groups = by_layer(result.table)

    def build(layout: TableLayout) -> tuple[Sequence[TableColumn], list[TableRow]]:
        rows: list[TableRow] = []
        for layer, layer_rows in groups:
            rows.append((True, {"kpi": Text(LAYER_TITLES.get(layer, layer), style="bold")}))
            rows += [(False, _compare_row(row, layout)) for row in layer_rows]
        return _compare_columns(layout), rows

    table, layout, table_width = _fitted_table(
        term_text(title), build, COMPARE_LAYOUTS, console.width, wide
    )
    _print_fitted(console, table, table_width, wide)
    note = _left_out_note(_compare_columns(layout), layout, console.width)
    if note is not None:
        console.print(note)
    if result.approximation is not None:
        console.print(term_text(compare_legend(result)))
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    console.print(f"Verdict: {summary}")
    if design.caveat:
        console.print(Text("Note: ") + term_text(design.caveat))
    for line in heterogeneity_lines(result):
        console.print(Text("Heterogeneity: ") + term_text(line))
    for line in fairness_lines(result):
        console.print(term_text(line[0].upper() + line[1:]))
    if result.srm and result.srm.get("checked"):
        flag = "SRM DETECTED" if result.srm["mismatch"] else "no SRM"
        console.print(
            f"Sample ratio: {result.srm['treatment']:,} treatment / "
            f"{result.srm['control']:,} control, p = {format_p(result.srm['p_value'])}"
            f" ({flag})"
        )


def render_review_table(score: ReviewScore, console: Console) -> None:
    """`kpictl review score`: rich tables of the latest round, its confusion matrix and the
    rounds, then the trend and the notes."""
    from kpictl.review import method_note, summary_rows, trend_rows

    latest = score.latest
    title = term_text(f"Human review, latest round {latest.round.label} ({latest.round.path})")
    table = Table(title=title, title_justify="left")
    for name in ("measure", "value", "CI"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    for row in summary_rows(latest):
        table.add_row(*(term_text(cell) for cell in row))
    console.print(table)
    (tp, fn), (fp, tn) = latest.confusion
    matrix = Table(title="Confusion matrix (labelled rows)", title_justify="left")
    for name in ("", "agent: success", "agent: failure"):
        matrix.add_column(name, justify="right" if name else "left")
    matrix.add_row("human: success", str(tp), str(fn))
    matrix.add_row("human: failure", str(fp), str(tn))
    console.print(matrix)
    if len(score.rounds) > 1:
        trend = Table(title="Rounds", title_justify="left")
        for name in ("round", "labelled", "self-reported", "human", "gap", "gap CI"):
            trend.add_column(name, justify="left" if name == "round" else "right")
        for cells in trend_rows(score):
            trend.add_row(*(term_text(cell) for cell in cells))
        console.print(trend)
    console.print(term_text(f"Trend over {len(score.rounds)} round(s): {score.trend_verdict}."))
    for note in latest.notes:
        console.print(term_text(f"note: {note}"))
    console.print(term_text(method_note(score)))


def check_to_text(report: CheckReport) -> str:
    """`kpictl check`: plain text, one block per source, then literals and KPIs."""
    lines: list[str] = []
    for s in report.sources:
        span = f", {iso(s.first)} – {iso(s.last)}" if s.first is not None else ", no timestamps"
        lines.append(f"source {s.name}: {s.rows:,} rows{span}")
        lines.append(f"  columns mapped by the spec: {', '.join(s.mapped) or '—'}")
        lines.append(f"  columns neither mapped nor read: {', '.join(s.unmapped) or '—'}")
        lines.append(f"  columns with no value: {', '.join(s.empty) or '—'}")
        if s.duplicates is not None:
            lines.append(f"  rows repeating a ({report.key}, ts, event): {s.duplicates:,}")
        if s.orphans is not None:
            lines.append(f"  rows whose {report.key} is not in the primary source: {s.orphans:,}")
        lines += [f"  {line}" for line in s.info]
    lines += ["", "literals compared with a column:"]
    for m in report.check.literals:
        use = m.use
        lines.append(
            f"  {use.location}: {use.path}: {use.source_column} = {use.literal!r}: "
            f"{m.rows:,} rows of {use.source}"
            + ("  <- matches nothing" if m in report.check.unmatched else "")
        )
    if not report.check.literals:
        lines.append("  —")
    lines += ["", "KPIs:"]
    for kpi in report.kpis:
        reason = report.check.reason(kpi)
        lines.append(
            f"  {kpi}: "
            + ("computable" if reason is None else f"{unavailable_label(reason)}: {reason}")
        )
    flagged = report.flagged
    lines += [
        "",
        f"{len(flagged)} finding{'s' if len(flagged) != 1 else ''}" + (":" if flagged else ""),
        *[f"  - {f}" for f in flagged],
    ]
    # names and values come from the data: no control character of theirs reaches the screen
    return "\n".join(visible_controls(line) for line in lines) + "\n"


def render_projection_table(result: ProjectionResult, console: Console) -> None:
    """Rich tables of the projection, then its assumptions."""
    from rich.markup import escape

    console.print(f"Cost at {escape(result.volume.text)} volume", style="bold", markup=False)
    for line in projection_lead(result):
        console.print(line, markup=False, highlight=False)
    rows = projection_rows(result)
    if rows:
        table = Table(header_style="bold")
        for name, justify in (
            ("component", "left"),
            ("per conversation", "right"),
            ("per month", "right"),
            ("interval", "left"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for row in rows:
            table.add_row(*(escape(c) for c in row))
        console.print(table)
    peak = peak_rows(result)
    if peak:
        console.print(
            "Peak exposure (spend per clock hour, by conversation start hour):",
            markup=False,
            highlight=False,
        )
        table = Table(header_style="bold")
        table.add_column("hour")
        table.add_column("observed", justify="right")
        table.add_column(f"at {escape(result.volume.text)}", justify="right")
        for row in peak:
            table.add_row(*(escape(c) for c in row))
        console.print(table)
    console.print("Assumptions:", markup=False)
    for assumption in result.assumptions:
        console.print(f"- {assumption}", markup=False, highlight=False)


def _compute(result: ComputeResult, console: Console, options: RenderOptions) -> None:
    render_table(result, console, options.wide)


def _compare(result: Any, console: Console, options: RenderOptions) -> None:
    render_compare_table(result, console, options.wide)


WRITES: dict[str, Write] = {
    "compute": _compute,
    "compare": _compare,
    "review": lambda score, console, _: render_review_table(score, console),
    "check": text_writer(check_to_text),
    "projection": lambda result, console, _: render_projection_table(result, console),
}
