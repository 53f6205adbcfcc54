"""One dispatch for every output: `render(result, fmt, console)` finds the writer of the
result's kind in the format's module.

A new output format is one new module beside `table`, `json`, `csv` and `markdown` with a
`WRITES` dict (result kind → `text.Write`) and one line in `FORMATS` below (then its name in
the CLI's format choices). A format need not write every kind: `check` has no CSV.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kpictl.errors import UsageError
from kpictl.io.read import FileReport
from kpictl.render import csv, json, markdown, table
from kpictl.render.text import RenderOptions, Write

if TYPE_CHECKING:
    from rich.console import Console

# format name → its writers by result kind
FORMATS: Mapping[str, Mapping[str, Write]] = {
    "table": table.WRITES,
    "json": json.WRITES,
    "csv": csv.WRITES,
    "markdown": markdown.WRITES,
}

# result class → result kind, by name: the classes of compare, review and projection live in
# modules that import scipy, which `compute` never loads (tests/test_layering.py)
RESULT_KINDS = {
    "ComputeResult": "compute",
    "CompareResult": "compare",
    "ReviewScore": "review",
    "CheckReport": "check",
    "ProjectionResult": "projection",
}


def result_kind(result: Any) -> str:
    """`compute`, `compare`, `review`, `check` or `projection`: what `result` is."""
    for cls in type(result).__mro__:
        if cls.__name__ in RESULT_KINDS:
            return RESULT_KINDS[cls.__name__]
    raise TypeError(f"no writer renders a {type(result).__name__}")


def render(
    result: Any,
    fmt: str,
    console: Console,
    files: Sequence[FileReport] = (),
    wide: bool = False,
) -> None:
    """Write `result` (a compute, compare, review, check or projection result) in `fmt` to the
    console's file. `files`: the files read (compute's JSON lists them); `wide`: a table with
    every column and interval."""
    kind = result_kind(result)
    writers = FORMATS.get(fmt)
    if writers is None:
        raise UsageError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    write = writers.get(kind)
    if write is None:
        shown = ", ".join(f for f, w in FORMATS.items() if kind in w)
        raise UsageError(f"--format {fmt}: {kind} writes {shown}")
    write(result, console, RenderOptions(files, wide))


def render_text(result: Any, fmt: str, files: Sequence[FileReport] = (), wide: bool = False) -> str:
    """`render` to a string: the text a 240-column console without colour receives (as an
    `-o FILE` gets it)."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=240, no_color=True, force_terminal=False)
    render(result, fmt, console, files, wide)
    return buffer.getvalue()
