"""Rendering KPI results: rich tables, JSON, CSV and Markdown. Output is deterministic."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kpictl import __version__
from kpictl.engine.compute import BUCKET, UNTIMED_AS_OF, ComputeResult
from kpictl.engine.datacheck import CheckReport, unavailable_label
from kpictl.errors import OutputError, UsageError
from kpictl.io.read import FileReport
from kpictl.render.controls import visible_controls
from kpictl.spec.model import LAYERS

if TYPE_CHECKING:  # their modules import scipy: loaded only by the functions that render them
    from kpictl.projection import ProjectionResult
    from kpictl.review import ReviewScore

LAYER_TITLES = {
    "business_outcomes": "Business outcomes",
    "quality_adoption": "Quality and adoption",
    "run_cost": "Run cost",
    "risk_compliance": "Risk and compliance",
}
FORMATS = ("table", "json", "csv", "markdown")


# ----------------------------------------------------------------------------------------------
# Escaping: every value from the data (log text is attacker-controlled) passes the function of
# the place it lands in, defined once here (control characters: `render/controls.py`, which the
# CLI's stderr messages use too). README "Bad input and output safety" lists them.
# ----------------------------------------------------------------------------------------------

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


def shown_value(row: dict[str, Any]) -> str:
    """A result row's value as shown: formatted, or "unavailable (no `x` column)"."""
    reason = row.get("reason")
    return unavailable_label(reason) if reason else format_value(row["value"], row["format"])


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


def result_records(result: ComputeResult) -> list[dict[str, Any]]:
    """Result rows as plain JSON-ready objects, in the result's (stable) order."""
    records = []
    for row in result.table.iter_rows(named=True):
        record: dict[str, Any] = {
            "kpi": row["kpi"],
            "label": row.get("label"),
            "cohort": cohort_of(row),
        }
        if row["breakdown"] is not None:
            record["breakdown"] = {row["breakdown"]: row["breakdown_value"]}
        value = row["value"]
        record["value"] = None if value is None or math.isnan(value) else value
        record["reason"] = row.get("reason")  # why value is null (a missing column), else null
        record["n"] = row["n"]
        record["pending"] = row["pending"]
        record.update({k: row[k] for k in ("layer", "format", "direction", "owner")})
        records.append(record)
    return records


def input_records(files: Sequence[FileReport]) -> list[dict[str, Any]]:
    """What was read, per file: rows kept and skipped (with the first reasons)."""
    return [
        {
            "source": f.source,
            "path": f.path,
            "format": f.format,
            "rows": f.rows,
            "skipped": f.skipped,
            **({"skipped_reasons": list(f.skipped_reasons)} if f.skipped else {}),
        }
        for f in files
    ]


def to_json(result: ComputeResult, files: Sequence[FileReport] = ()) -> str:
    """The `--format json` document."""
    document = {
        "kpictl_version": __version__,
        "as_of": iso(result.window.as_of),
        "window": {"since": iso(result.window.since), "until": iso(result.window.until)},
        "results": result_records(result),
        "inputs": input_records(files),
        "notes": list(result.notes),
    }
    return json_text(document)


def _flat_rows(result: ComputeResult) -> tuple[list[str], list[list[Any]]]:
    dims = [*result.dimensions, *([BUCKET] if BUCKET in result.table.columns else [])]
    header = [
        "kpi",
        "cohort",
        *dims,
        "breakdown",
        "breakdown_value",
        "value",
        "reason",
        "n",
        "pending",
        "layer",
        "format",
        "direction",
        "owner",
    ]
    rows = []
    for row in result.table.iter_rows(named=True):
        dim_values = [iso(row[d]) if d == BUCKET else row[d] for d in dims]
        value = row["value"]
        rows.append(
            [
                row["kpi"],
                cohort_label(row),
                *dim_values,
                row["breakdown"],
                row["breakdown_value"],
                None if value is None or math.isnan(value) else repr(value),
                row.get("reason"),
                row["n"],
                row["pending"],
                row["layer"],
                row["format"],
                row["direction"],
                row["owner"],
            ]
        )
    return header, rows


def to_csv(result: ComputeResult) -> str:
    """The `--format csv` document: one row per result, full-precision values."""
    header, rows = _flat_rows(result)
    # by position: a --by column may share a name with a fixed column (the last one)
    value, n, pending = (
        max(i for i, h in enumerate(header) if h == k) for k in ("value", "n", "pending")
    )
    names = [f"c{i}" for i in range(len(header))]
    frame = pl.DataFrame(
        [
            [v if v is None or i in (n, pending) else str(v) for v in column]
            for i, column in enumerate(zip(*rows, strict=True))
        ]
        if rows
        else None,
        schema={c: pl.Int64 if i in (n, pending) else pl.String for i, c in enumerate(names)},
        orient="col",
    )
    head = pl.DataFrame([header], schema=names, orient="row")
    body = csv_safe(frame, numeric=(names[value],))
    return head.write_csv(include_header=False) + body.write_csv(include_header=False)


def to_markdown(result: ComputeResult) -> str:
    """The `--format markdown` document: one GitHub-flavoured table per layer."""
    window = result.window
    lines = [f"# KPIs as of {as_of_text(window.as_of)}", ""]
    if window.since or window.until:
        lines += [f"Window: {iso(window.since) or 'start'} – {iso(window.until) or 'as-of'}", ""]
    for layer, rows in _by_layer(result.table):
        lines += [
            f"## {LAYER_TITLES.get(layer, layer)}",
            "",
            "| KPI | cohort | value | n | pending | owner |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        for row in rows:
            lines.append(
                "| "
                + " | ".join(
                    md_cell(c)
                    for c in (
                        _kpi_label(row, md_text),
                        md_text(cohort_label(row)),
                        shown_value(row),
                        str(row["n"]),
                        str(row["pending"]),
                        row["owner"],
                    )
                )
                + " |"
            )
        lines.append("")
    if result.notes:
        lines += ["Notes:", "", *[f"- {md_text(n)}" for n in result.notes], ""]
    return "\n".join(lines)


def kpi_title(row: dict[str, Any], escape: Callable[[object], Any]) -> Any:
    """A result row's KPI as a reader sees it: its spec `label:` through `escape`, else its
    name (JSON and CSV keep the name in `kpi`)."""
    label = row.get("label")
    return escape(label) if label else str(row["kpi"])


def _kpi_label(row: dict[str, Any], escape: Callable[[object], Any]) -> Any:
    """The KPI's label or name, or `└ column=value` for a breakdown row (the value through
    `escape`)."""
    if row["breakdown"] is not None:
        value = escape(row["breakdown_value"])
        prefix = f"  └ {row['breakdown']}="
        return Text(prefix) + value if isinstance(value, Text) else prefix + value
    return kpi_title(row, escape)


def _by_layer(table: pl.DataFrame) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in table.iter_rows(named=True):
        groups.setdefault(row["layer"], []).append(row)
    order = {layer: i for i, layer in enumerate(LAYERS)}
    return sorted(groups.items(), key=lambda item: order.get(item[0], len(order)))


# ----------------------------------------------------------------------------------------------
# Fitting a table to the terminal: numbers are never cut. Columns leave by priority, headers get
# shorter, intervals move to a second line of their cell or leave, and a note says what `--wide`
# would add. Only text (KPI names, cohorts, owners) may wrap, folded, never ellipsised.
# ----------------------------------------------------------------------------------------------


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
    for layer, layer_rows in _by_layer(result.table):
        rows.append((True, {"kpi": Text(LAYER_TITLES.get(layer, layer), style="bold")}))
        for row in layer_rows:
            rows.append(
                (
                    False,
                    {
                        "kpi": _kpi_label(row, term_text),
                        "cohort": term_text(cohort_label(row)),
                        "value": shown_value(row),
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


def render(
    result: ComputeResult,
    fmt: str,
    console: Console,
    files: Sequence[FileReport] = (),
    wide: bool = False,
) -> None:
    """Write the result in `fmt` to the console's file (`wide`: every table column)."""
    if fmt == "table":
        render_table(result, console, wide)
        return
    text = {
        "json": lambda: to_json(result, files),
        "csv": lambda: to_csv(result),
        "markdown": lambda: to_markdown(result),
    }[fmt]()
    console.file.write(text)


# ----------------------------------------------------------------------------------------------
# Writing an output file (`-o FILE` of every command)
# ----------------------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def write_atomically(
    path: Path,
    write: Callable[[Path], object],
    inputs: Iterable[str | Path] = (),
    create_folder: bool = False,
) -> None:
    """Run `write(temporary)` on a new file next to `path`, then rename it onto `path`: a
    failure (of rendering, or of the disk) leaves an existing file as it was, never empty or
    half-written. `path` naming one of `inputs` (the spec, a log file) is a UsageError; a
    folder, a missing folder (unless `create_folder`), no permission or a full disk an
    OutputError. A path that is not a regular file (`/dev/stdout`, a pipe) is written in
    place."""
    path = Path(path)
    for item in inputs:
        if _same_file(path, Path(item)) or path.resolve() == Path(item).resolve():
            raise UsageError(f"--output {path}: is an input of this run; write somewhere else")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; name a file")
    folder = path.parent
    if create_folder and not folder.exists():
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise OutputError(f"cannot write {path}: {folder} {what}")
    if path.exists() and not path.is_file():
        try:
            write(path)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc} in {folder}") from exc
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        with temporary.open("rb+") as written:
            os.fsync(written.fileno())
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
        temporary.chmod(mode)
        os.replace(temporary, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------------------------
# compare
# ----------------------------------------------------------------------------------------------

STATUS_STYLES = {
    "ok": "green",
    "warning": "yellow",
    "critical": "red",
    "catastrophic": "bold red",
    "insufficient_data": "dim",
    "not_testable": "dim",
}


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


def _interval(low: float | None, high: float | None, formatter: Any) -> str:
    if low is None or high is None:
        return ""
    return f"[{formatter(low)}, {formatter(high)}]"


def format_p(value: float | None) -> str:
    """p-values: 4 significant digits, '<0.0001' below."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _float(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def compare_records(result: Any) -> list[dict[str, Any]]:
    """Compare rows as JSON-ready objects."""
    records = []
    for row in result.table.iter_rows(named=True):
        cohort = {d: row[d] for d in row["grouping"]}
        records.append(
            {
                "kpi": row["kpi"],
                "label": row.get("label"),
                "cohort": cohort,
                "baseline": {
                    "value": _float(row["baseline_value"]),
                    "n": row["baseline_n"],
                    "units": row["baseline_units"],
                },
                "current": {
                    "value": _float(row["current_value"]),
                    "n": row["current_n"],
                    "units": row["current_units"],
                },
                "delta": _float(row["delta"]),
                "delta_ci": None
                if row["delta_low"] is None
                else [row["delta_low"], row["delta_high"]],
                "relative_delta": _float(row["relative_delta"]),
                "relative_ci": None
                if row["relative_low"] is None
                else [row["relative_low"], row["relative_high"]],
                "p_value": _float(row["p_value"]),
                "p_adjusted": _float(row["p_adjusted"]),
                "test": row["test"],
                "significant": row["significant"],
                "mde": _float(row["mde"]),
                "status": row["status"],
                "threshold": row["threshold"],
                "pending": {"baseline": row["pending_baseline"], "current": row["pending_current"]},
                "design_effect": _float(row["design_effect"]),
                **(
                    {
                        "cuped": {
                            "theta": row["cuped_theta"],
                            "variance_reduction": row["variance_reduction"],
                        }
                    }
                    if row.get("cuped_theta") is not None
                    else {}
                ),
                "warnings": list(row["warnings"]),
                **{k: row[k] for k in ("layer", "format", "direction", "owner")},
            }
        )
    return records


def heterogeneity_record(test: Any) -> dict[str, Any]:
    """One heterogeneity test (compare --heterogeneity) as a JSON-ready object."""
    q = test.test
    return {
        "kpi": test.kpi,
        "dimension": test.dimension,
        "overall_delta": test.overall_delta,
        "better_overall": test.better_overall,
        "test": "cochran_q",
        "q": None if q is None else q.q,
        "df": None if q is None else q.df,
        "p_value": None if q is None else q.p_value,
        "i2": None if q is None else q.i2,
        "groups": [
            {
                "group": g.group,
                "delta": g.delta,
                "se": g.se,
                "p_value": g.p_value,
                "p_holm": g.p_holm,
                "worse_while_better_overall": g.worse,
            }
            for g in test.groups
        ],
    }


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


def fairness_record(finding: Any) -> dict[str, Any]:
    """One `fairness:` check (compare) as a JSON-ready object."""
    return {
        "kpi": finding.kpi,
        "column": finding.column,
        "gap": finding.gap,
        "max_gap": finding.max_gap,
        "max_gap_text": finding.max_gap_text,
        "breached": finding.breached,
        "baseline_gap": finding.baseline_gap,
        "lowest": None
        if finding.low is None
        else {"group": finding.low[0], "value": finding.low[1]},
        "highest": None
        if finding.high is None
        else {"group": finding.high[0], "value": finding.high[1]},
        "groups_excluded": finding.excluded,
    }


def fairness_lines(result: Any) -> list[str]:
    """Every `fairness:` check of the run, breached or not."""
    from kpictl.comparison.run import fairness_note

    return [fairness_note(f) for f in result.fairness]


def _window_record(window: Any) -> dict[str, str | None] | None:
    if window is None:
        return None
    return {"since": iso(window.since), "until": iso(window.until), "as_of": iso(window.as_of)}


def compare_to_json(result: Any) -> str:
    """The `compare --format json` document."""
    design = result.design
    document = {
        "kpictl_version": __version__,
        "design": {
            "kind": design.kind,
            "label": design.label,
            "randomized": design.randomized,
            "paired": design.paired,
            "caveat": design.caveat or None,
        },
        "baseline": {"name": design.baseline, "window": _window_record(result.baseline_window)},
        "current": {"window": _window_record(result.current_window)},
        "unit": result.unit,
        "alpha": result.alpha,
        "correction": result.correction,
        "srm": result.srm,
        "results": compare_records(result),
        "summary": status_counts(result.table),
        "heterogeneity": [heterogeneity_record(h) for h in result.heterogeneity],
        "fairness": [fairness_record(f) for f in result.fairness],
        "notes": list(result.notes),
    }
    return json_text(document)


def status_counts(table: pl.DataFrame) -> dict[str, int]:
    """How many KPI × cohort cells are at each status."""
    counts = dict.fromkeys(STATUS_STYLES, 0)
    for status in table.get_column("status").to_list():
        counts[status] = counts.get(status, 0) + 1
    return counts


def compare_to_csv(result: Any) -> str:
    """One row per KPI × cohort, full precision."""
    table = result.table.with_columns(
        pl.col("grouping").list.join(";"),
        pl.col("warnings").list.join(" | "),
    )
    return csv_safe(table).write_csv()


def _compare_cells(row: dict[str, Any], escape: Callable[[object], Any]) -> list[Any]:
    """The cells of one compare row; `escape` makes the data values (the cohort) safe for
    the target (`md_text` or `term_text`)."""
    fmt = row["format"]
    delta = format_change(row["delta"], fmt)
    delta_ci = _interval(row["delta_low"], row["delta_high"], lambda v: format_change(v, fmt))
    rel = format_relative(row["relative_delta"])
    rel_ci = _interval(row["relative_low"], row["relative_high"], format_relative)
    return [
        kpi_title(row, escape),
        escape(", ".join(f"{d}={row[d]}" for d in row["grouping"]) or "all"),
        f"{format_value(row['baseline_value'], fmt)} (n={row['baseline_n']:,})",
        f"{format_value(row['current_value'], fmt)} (n={row['current_n']:,})",
        f"{delta} {delta_ci}".strip(),
        f"{rel} {rel_ci}".strip(),
        format_p(row["p_adjusted"]),
        row["test"] or "—",
        row["status"] + (f" ({row['threshold']})" if row["threshold"] else ""),
    ]


def _is_good(row: dict[str, Any]) -> bool | None:
    delta = row["delta"]
    if delta is None or not row["significant"]:
        return None
    return (delta > 0) == (row["direction"] == "higher")


def compare_to_markdown(result: Any) -> str:
    """GitHub-flavoured Markdown: design line, then one table per layer."""
    design = result.design
    counts = status_counts(result.table)
    lines = [
        f"# Comparison: {design.label}",
        "",
        f"Baseline: `{design.baseline}` · unit: `{result.unit}` · α = {result.alpha} · "
        f"correction: {result.correction}",
        "",
        "Verdict: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v),
        "",
    ]
    if design.caveat:
        lines += [f"> {design.caveat}", ""]
    if result.srm and result.srm.get("checked"):
        flag = "**SRM detected**" if result.srm["mismatch"] else "no SRM"
        lines += [
            f"Sample ratio: {result.srm['treatment']:,} treatment / "
            f"{result.srm['control']:,} control, p = {format_p(result.srm['p_value'])} "
            f"({flag})",
            "",
        ]
    header = [
        "KPI",
        "cohort",
        "baseline",
        "current",
        "Δ [CI]",
        "relative Δ [CI]",
        "p (adj.)",
        "test",
        "status",
    ]
    for layer, rows in _by_layer(result.table):
        lines += [
            f"## {LAYER_TITLES.get(layer, layer)}",
            "",
            "| " + " | ".join(header) + " |",
            "| " + " | ".join(["---"] * len(header)) + " |",
        ]
        lines += [
            "| " + " | ".join(md_cell(c) for c in _compare_cells(r, md_text)) + " |" for r in rows
        ]
        lines.append("")
    if result.heterogeneity:
        lines += [
            "## Heterogeneity across groups",
            "",
            *[f"- {md_text(line)}" for line in heterogeneity_lines(result)],
            "",
        ]
    if result.fairness:
        lines += ["## Fairness", "", *[f"- {md_text(line)}" for line in fairness_lines(result)], ""]
    return "\n".join(lines)


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


def _compare_row(row: dict[str, Any], layout: TableLayout) -> dict[str, str | Text]:
    """The terminal cells of one compare row in `layout`; data values through `term_text`."""
    fmt = row["format"]
    inline = layout.intervals == "inline"
    joint = " " if inline else "\n"

    def with_interval(value: str, low: Any, high: Any, formatter: Any) -> str:
        interval = _interval(low, high, formatter) if layout.intervals != "none" else ""
        return f"{value}{joint}{interval}" if interval else value

    good = _is_good(row)
    change_style = "" if good is None else "green" if good else "red"
    threshold = f"({row['threshold']})" if row["threshold"] else ""
    return {
        "kpi": kpi_title(row, term_text),
        "cohort": term_text(", ".join(f"{d}={row[d]}" for d in row["grouping"]) or "all"),
        "baseline": f"{format_value(row['baseline_value'], fmt)}{joint}"
        f"{'(' if inline else ''}n={row['baseline_n']:,}{')' if inline else ''}",
        "current": f"{format_value(row['current_value'], fmt)}{joint}"
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
    groups = _by_layer(result.table)

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


def render_compare(result: Any, fmt: str, console: Console, wide: bool = False) -> None:
    """Write a compare result in `fmt` to the console's file (`wide`: every table column)."""
    if fmt == "table":
        render_compare_table(result, console, wide)
        return
    text = {
        "json": lambda: compare_to_json(result),
        "csv": lambda: compare_to_csv(result),
        "markdown": lambda: compare_to_markdown(result),
    }[fmt]()
    console.file.write(text)


# ----------------------------------------------------------------------------------------------
# review score
# ----------------------------------------------------------------------------------------------


def _md_review_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
    return lines


def review_markdown(score: ReviewScore, heading: str = "##") -> list[str]:
    """The latest round, its confusion matrix, the trend over rounds and the notes."""
    from kpictl.review import method_note, summary_rows, trend_rows

    latest = score.latest
    allocation = f", {latest.round.allocation} allocation" if latest.round.allocation else ""
    (tp, fn), (fp, tn) = latest.confusion
    lines = [
        f"{heading} Human review",
        "",
        f"Latest round: {md_text(latest.round.label)} ({md_text(latest.round.path)}{allocation}).",
        "",
        *_md_review_table(["measure", "value", "CI"], summary_rows(latest)),
        "",
        *_md_review_table(
            ["", "agent: success", "agent: failure"],
            [("human: success", str(tp), str(fn)), ("human: failure", str(fp), str(tn))],
        ),
        "",
        f"Trend over {len(score.rounds)} round(s): {score.trend_verdict}.",
        "",
    ]
    if len(score.rounds) > 1:
        header = ["round", "labelled", "self-reported", "human", "gap", "gap CI"]
        lines += [*_md_review_table(header, trend_rows(score)), ""]
    for note in [*score.notes, *latest.notes]:
        lines.append(f"- {md_text(note)}")
    if score.notes or latest.notes:
        lines.append("")
    lines += [method_note(score), ""]
    return lines


def render_review(score: ReviewScore, fmt: str, console: Console) -> None:
    """`kpictl review score` in `fmt` (table, json or markdown) to the console's file."""
    from kpictl.review import method_note, review_json, summary_rows, trend_rows

    if fmt == "json":
        console.file.write(json_text(review_json(score)))
        return
    if fmt == "markdown":
        console.file.write("\n".join(review_markdown(score)))
        return
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


def check_records(report: CheckReport) -> dict[str, Any]:
    """The `kpictl check --format json` document."""
    return {
        "kpictl_version": __version__,
        "sources": [
            {
                "name": s.name,
                "rows": s.rows,
                "first": iso(s.first),
                "last": iso(s.last),
                "columns": {
                    "mapped": list(s.mapped),
                    "unmapped": list(s.unmapped),
                    "empty": list(s.empty),
                },
                "duplicates": s.duplicates,
                "orphans": s.orphans,
                "info": list(s.info),
            }
            for s in report.sources
        ],
        "literals": [
            {
                "where": m.use.location,
                "path": m.use.path,
                "source": m.use.source,
                "column": m.use.source_column,
                "literal": m.use.literal,
                "rows": m.rows,
                **({"seen": dict(m.seen)} if m in report.check.unmatched else {}),
            }
            for m in report.check.literals
        ],
        "kpis": [
            {
                "kpi": kpi,
                "computable": report.check.reason(kpi) is None,
                "reason": report.check.reason(kpi),
            }
            for kpi in report.kpis
        ],
        "findings": report.flagged,
    }


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
    return "\n".join(lines) + "\n"


def check_to_json(report: CheckReport) -> str:
    """The `kpictl check --format json` document, as text."""
    return json_text(check_records(report))


# ----------------------------------------------------------------------------------------------
# project (cost at scale)
# ----------------------------------------------------------------------------------------------

PROJECT_FORMATS = ("table", "json", "markdown")


def _usd(value: float | None) -> str:
    return format_value(value, "usd")


def _projection_rows(result: ProjectionResult) -> list[list[str]]:
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


def _projection_lead(result: ProjectionResult) -> list[str]:
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


def _peak_rows(result: ProjectionResult) -> list[list[str]]:
    peak = result.peak
    if peak is None:
        return []
    return [
        ["p95 hour", _usd(peak.p95), _usd(peak.p95_projected)],
        [f"busiest hour ({iso(peak.max_hour)})", _usd(peak.max), _usd(peak.max_projected)],
    ]


def projection_markdown(result: ProjectionResult, level: int = 1) -> list[str]:
    """The projection as Markdown lines; `level` is the heading level of its title. The
    volume as typed is data (escaped); the rest is kpictl's own text and numbers."""
    hashes = "#" * level
    lines = [f"{hashes} Cost at {md_text(result.volume.text)} volume", ""]
    lead = _projection_lead(result)
    if lead:
        lines += [md_cell(" ".join(lead)), ""]
    rows = _projection_rows(result)
    if rows:
        lines += [
            "| component | per conversation | per month | interval |",
            "| --- | ---: | ---: | --- |",
        ]
        lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
        lines.append("")
    peak = _peak_rows(result)
    if peak:
        lines += [
            "Peak exposure (spend per clock hour, by conversation start hour):",
            "",
            f"| hour | observed | at {md_text(result.volume.text)} |",
            "| --- | ---: | ---: |",
        ]
        lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in peak]
        lines.append("")
    lines += ["Assumptions:", "", *[f"- {md_cell(a)}" for a in result.assumptions], ""]
    return lines


def render_projection_table(result: ProjectionResult, console: Console) -> None:
    """Rich tables of the projection, then its assumptions."""
    from rich.markup import escape

    console.print(f"Cost at {escape(result.volume.text)} volume", style="bold", markup=False)
    for line in _projection_lead(result):
        console.print(line, markup=False, highlight=False)
    rows = _projection_rows(result)
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
    peak = _peak_rows(result)
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


def render_projection(result: ProjectionResult, fmt: str, console: Console) -> None:
    """Write the projection in `fmt` (table, json or markdown) to the console's file."""
    if fmt == "table":
        render_projection_table(result, console)
        return
    if fmt == "json":
        document = {"kpictl_version": __version__, **result.to_dict()}
        console.file.write(json_text(document))
        return
    console.file.write("\n".join(projection_markdown(result)))
