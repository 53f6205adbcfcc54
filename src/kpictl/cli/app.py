"""The `kpictl` app: the one error boundary (`KpictlGroup.invoke`: library errors become `kpictl:
error: …` and an exit code), stdout and stderr, `-o FILE`, and what every data command does
around its library call (the spec, the sources, the input messages, `--strict`)."""

from __future__ import annotations

import functools
import io
import os
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Concatenate,
    NoReturn,
    ParamSpec,
    TypeAlias,
    TypeVar,
)

import typer
from typer.core import TyperGroup

from kpictl import __version__
from kpictl.commands import is_dataset_baseline, open_sources
from kpictl.errors import ExitCode, KpictlError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from rich.console import Console

    from kpictl.io.read import Sources
    from kpictl.spec.model import Spec

    Paths: TypeAlias = Sequence[str] | None  # `paths`, `--source`, `--baseline-source`
    Datasets: TypeAlias = tuple[Sources, Sources | None]  # the current one, a dataset baseline

P = ParamSpec("P")
R = TypeVar("R")


def stderr_line(message: str) -> None:
    """One message to stderr; control characters a data value may carry (ESC, BEL, CR) are
    shown as escapes, never sent to the terminal."""
    from kpictl.render.controls import visible_controls

    typer.echo(visible_controls(message, keep="\n"), err=True)


def _is_cli_exception(exc: Exception) -> bool:
    """Exit requests and usage errors of the CLI framework itself, which it renders."""
    module = type(exc).__module__
    return module.startswith(("click", "typer"))


def closed_pipe() -> NoReturn:
    """stdout's reader went away (`kpictl compute | head -1`): stop quietly, as a Unix tool killed
    by SIGPIPE does (exit 141, nothing on stderr). stdout is pointed at /dev/null first, as
    Python's documentation recommends (signal module, "Note on SIGPIPE"), so that the
    interpreter's final flush does not fail a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(int(ExitCode.CLOSED_PIPE))


def _stdout_console(**options: Any) -> Any:
    """A rich Console on stdout whose closed pipe is `closed_pipe` (exit 141): rich's own
    handler exits 1, the code of a data error, for a table cut short by `| head -1`."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            closed_pipe()

    return _Console(file=sys.stdout, **options)


def buffered_stdout() -> None:
    """Under PYTHONUNBUFFERED=1 or `python -u` (common in containers) stdout writes straight to
    the file descriptor, and a write that the reader cuts short (`| head -1`) returns a short
    count that Python's text layer ignores: the rest of the output was dropped with exit 0. A
    buffered writer writes the rest and so meets the closed pipe (exit 141); `main` flushes
    it at the end."""
    stream = sys.stdout
    raw = getattr(stream, "buffer", None)
    if isinstance(stream, io.TextIOWrapper) and isinstance(raw, io.RawIOBase):
        sys.stdout = io.TextIOWrapper(
            io.BufferedWriter(raw),
            encoding=stream.encoding,
            errors=stream.errors,
            line_buffering=stream.line_buffering,
        )


class UncutGroup(TyperGroup):
    """A command group whose help lists each command with its whole one-line summary (the
    docstring's first sentence), wrapped to the terminal, never cut to "…" (click cuts a summary
    to what fits beside the longest command name)."""

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:  # type: ignore[override]
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class KpictlGroup(UncutGroup):
    """The one error boundary: library errors become `kpictl: error: …` and an exit code."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except KpictlError as exc:
            if ctx.meta.get("kpictl.traceback"):
                raise
            stderr_line(f"kpictl: error: {exc.message}")
            raise SystemExit(int(exc.exit_code)) from None
        except BrokenPipeError:
            closed_pipe()
        except KeyboardInterrupt:
            if ctx.meta.get("kpictl.traceback"):
                raise
            raise SystemExit(int(ExitCode.INTERRUPTED)) from None
        except MemoryError:
            if ctx.meta.get("kpictl.traceback"):
                raise
            stderr_line(
                "kpictl: error: out of memory. Ask for less at once: fewer KPIs (--kpi), a "
                "shorter window (--since/--until), fewer or smaller --by columns; Parquet logs "
                "are read column by column and need far less memory than JSONL"
            )
            raise SystemExit(int(ExitCode.DATA_OR_SPEC_ERROR)) from None
        except Exception as exc:
            if ctx.meta.get("kpictl.traceback") or _is_cli_exception(exc):
                raise
            if type(exc).__module__.startswith("polars"):
                first = str(exc).strip().split("\n", 1)[0]
                stderr_line(f"kpictl: error: while evaluating the spec on this data: {first}")
                raise SystemExit(int(ExitCode.DATA_OR_SPEC_ERROR)) from None
            stderr_line(
                f"kpictl: internal error: {type(exc).__name__}: {exc} "
                "(please report it; rerun with --traceback for details)"
            )
            raise SystemExit(int(ExitCode.INTERNAL_ERROR)) from None
        except BaseException as exc:  # pyo3's PanicException (polars panicked) is no Exception
            if ctx.meta.get("kpictl.traceback") or isinstance(
                exc, KeyboardInterrupt | SystemExit | GeneratorExit
            ):
                raise
            what = (
                "polars panicked"
                if type(exc).__name__ == "PanicException"
                else (type(exc).__name__)
            )
            first = str(exc).strip().split("\n", 1)[0] or "no message"
            stderr_line(
                f"kpictl: internal error: {what}: {first} (a bug: please report it with the "
                "command line; rerun with --traceback for details)"
            )
            raise SystemExit(int(ExitCode.INTERNAL_ERROR)) from None


app = typer.Typer(
    cls=KpictlGroup,
    name="kpictl",
    help="Prove what your AI agent is worth: verified-outcome KPIs from agent logs.\n\n"
    "KPIs are declared in kpi_definitions.yaml (filters and formulas are SQL expressions). "
    "Exit codes: 0 ok, 1 data or spec error, 2 usage error, 3 a KPI at or above --fail-on, "
    "70 internal error (a bug), 130 interrupted (Ctrl-C), 141 stdout closed early (e.g. piped "
    "into head).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kpictl {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Show the Python stack on errors.")
    ] = False,
) -> None:
    """kpictl: verified-outcome KPIs for AI agents."""
    ctx.meta["kpictl.traceback"] = traceback


def load_spec_of(config: Path, params: list[str] | None, paths: list[str] | None = None) -> Spec:
    """The spec of `-c` (or the shipped scorecard the logs call for, with a note)."""
    from kpictl.commands import load_command_spec

    spec, note = load_command_spec(config, params, paths)
    if note is not None:
        stderr_line(f"kpictl: note: {note}")
    return spec


def progress(message: str) -> AbstractContextManager[Any]:
    """A spinner on stderr while a long step runs; nothing when stderr is not a terminal."""
    if not sys.stderr.isatty() or os.environ.get("CI"):
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def with_progress(message: str, function: Callable[P, R]) -> Callable[P, R]:
    """`function` under `progress(message)`: the same arguments, the same result."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with progress(message):
            return function(*args, **kwargs)

    return run


# The run's sources (`commands.open_sources`, its arguments and result) under a spinner.
read_sources = with_progress("Reading logs…", open_sources)


def with_dataset_baseline(
    read: Callable[Concatenate[Spec, Paths, Paths, P], Sources],
) -> Callable[Concatenate[Spec, Paths, Paths, str | None, Paths, P], Datasets]:
    """`read` (spec, paths, `--source`, its other arguments) for the current dataset and, when
    `--baseline` names another dataset (`commands.is_dataset_baseline`), for that one too, with
    `--baseline-source` and the same other arguments: (current, baseline or None)."""

    def read_both(
        spec: Spec,
        paths: Paths,
        source: Paths,
        baseline: str | None,
        baseline_source: Paths,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Datasets:
        sources = read(spec, paths, source, *args, **kwargs)
        if not is_dataset_baseline(spec, baseline, baseline_source):
            return sources, None
        assert baseline is not None
        return sources, read(spec, [baseline], baseline_source, *args, **kwargs)

    return read_both


# compare's and report's datasets: `read_sources` for the current one and a dataset baseline
read_datasets = with_dataset_baseline(read_sources)


def emit(
    output: Path | None, render: Callable[[Console], None], inputs: Sequence[str | Path] = ()
) -> None:
    """`render` to stdout, or to `output` through `write_atomically` (never a half-written
    file; the inputs are refused as output)."""
    from rich.console import Console

    from kpictl.render.files import write_atomically

    if output is None:
        # a terminal's width, or COLUMNS when set (rich reads it); a pipe gets 240 columns
        sized = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
        render(_stdout_console(width=None if sized else 240, soft_wrap=False))
        return

    def write(path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as handle:
            render(Console(file=handle, width=240, no_color=True, force_terminal=False))

    write_atomically(output, write, inputs)


def write_text(
    output: Path | None, text: str, inputs: Sequence[str | Path] = (), create_folder: bool = False
) -> None:
    """`text` to stdout, or to `output` through `write_atomically` (an input refused)."""
    if output is None:
        typer.echo(text, nl=False)
        return
    from kpictl.render.files import write_atomically

    write = lambda path: path.write_text(text, encoding="utf-8")  # noqa: E731
    write_atomically(output, write, inputs, create_folder)


def exit_if_strict(strict: bool, notes: Sequence[str]) -> None:
    """`--strict`: the data check's notes (already printed) become exit 2."""
    if strict and notes:
        stderr_line(
            f"kpictl: error: --strict: the data does not fit the spec ({len(notes)} "
            f"finding{'s' if len(notes) != 1 else ''}, see the notes above)"
        )
        raise typer.Exit(int(ExitCode.USAGE_ERROR))


def report_inputs(sources: Sources) -> None:
    from kpictl.commands import input_messages

    for message in input_messages(sources):
        stderr_line(f"kpictl: {message}")
