"""The `kpictl` command line: parse arguments, call the library, render. Nothing else.

This is the only module that imports typer and the only place that turns errors into exit
codes (see `KpictlGroup.invoke`). Heavy modules (polars, rich) are imported inside commands so
`kpictl --version` starts fast.
"""

from __future__ import annotations

import io
import os
import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from kpictl import __version__
from kpictl.commands import DEFAULT_SPEC
from kpictl.errors import ExitCode, KpictlError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from rich.console import Console

    from kpictl.engine.interface import Engine
    from kpictl.io.read import Sources
    from kpictl.spec.model import Spec


class OutputFormat(StrEnum):
    """`--format` choices."""

    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


class EngineName(StrEnum):
    """`--engine` choices."""

    polars = "polars"
    duckdb = "duckdb"
    spark = "spark"


EngineOption = Annotated[
    EngineName | None,
    typer.Option(
        "--engine",
        help="polars, duckdb or spark: the spec compiled to DuckDB or Spark SQL (pip install "
        "'kpictl[duckdb]' or 'kpictl[spark]'); it refuses, with the spec line, what it does "
        "not cover. Default: the spec's defaults.engine (polars).",
        show_default=False,
    ),
]
ApproxOption = Annotated[
    bool,
    typer.Option(
        "--approx-percentiles",
        help="With --engine duckdb or spark: percentile KPIs (MEDIAN, QUANTILE_CONT) by the "
        "engine's approximate aggregate (DuckDB approx_quantile, Spark percentile_approx), "
        "labelled approximate in every output. The polars engine is exact only.",
    ),
]
SparkMasterOption = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        help="With --engine spark: local[*] (the default), local[N], a cluster master "
        "(spark://host:7077, yarn) or a Spark Connect URL (sc://host:15002; default: the "
        "SPARK_REMOTE environment variable).",
    ),
]


class Grain(StrEnum):
    """`--grain` choices."""

    hour = "hour"
    day = "day"
    week = "week"
    month = "month"


class BadRows(StrEnum):
    """`--on-bad-rows` choices."""

    error = "error"
    skip = "skip"


class FailLevel(StrEnum):
    """`--fail-on` choices: spec.model.LEVELS (a test checks they are the same)."""

    warning = "warning"
    critical = "critical"
    catastrophic = "catastrophic"


class Correction(StrEnum):
    """`--correction` choices."""

    holm = "holm"
    bh = "bh"
    none = "none"


class RelativeCi(StrEnum):
    """`--relative-ci` choices."""

    delta = "delta"
    fieller = "fieller"


class ReportFormat(StrEnum):
    """`kpictl report --format` choices."""

    markdown = "markdown"
    html = "html"


class FactsFormat(StrEnum):
    """`kpictl facts --format` choices."""

    csv = "csv"
    json = "json"
    parquet = "parquet"


class SampleFormat(StrEnum):
    """`kpictl sample --format` choices."""

    jsonl = "jsonl"
    parquet = "parquet"


def _stderr(message: str) -> None:
    """One message to stderr; control characters a data value may carry (ESC, BEL, CR) are
    shown as escapes, never sent to the terminal."""
    from kpictl.render.controls import visible_controls

    typer.echo(visible_controls(message, keep="\n"), err=True)


def _is_cli_exception(exc: Exception) -> bool:
    """Exit requests and usage errors of the CLI framework itself, which it renders."""
    module = type(exc).__module__
    return module.startswith(("click", "typer"))


def _closed_pipe() -> NoReturn:
    """stdout's reader went away (`kpictl compute | head -1`): stop quietly, as a Unix tool killed
    by SIGPIPE does (exit 141, nothing on stderr). stdout is pointed at /dev/null first, as
    Python's documentation recommends (signal module, "Note on SIGPIPE"), so that the
    interpreter's final flush does not fail a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(int(ExitCode.CLOSED_PIPE))


def _stdout_console(**options: Any) -> Any:
    """A rich Console on stdout whose closed pipe is `_closed_pipe` (exit 141): rich's own
    handler exits 1, the code of a data error, for a table cut short by `| head -1`."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            _closed_pipe()

    return _Console(file=sys.stdout, **options)


def _buffered_stdout() -> None:
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


class _UncutGroup(TyperGroup):
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


class KpictlGroup(_UncutGroup):
    """The one error boundary: library errors become `kpictl: error: …` and an exit code."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except KpictlError as exc:
            if ctx.meta.get("kpictl.traceback"):
                raise
            _stderr(f"kpictl: error: {exc.message}")
            raise SystemExit(int(exc.exit_code)) from None
        except BrokenPipeError:
            _closed_pipe()
        except KeyboardInterrupt:
            if ctx.meta.get("kpictl.traceback"):
                raise
            raise SystemExit(int(ExitCode.INTERRUPTED)) from None
        except MemoryError:
            if ctx.meta.get("kpictl.traceback"):
                raise
            _stderr(
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
                _stderr(f"kpictl: error: while evaluating the spec on this data: {first}")
                raise SystemExit(int(ExitCode.DATA_OR_SPEC_ERROR)) from None
            _stderr(
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
            _stderr(
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


# ----------------------------------------------------------------------------------------------
# Shared options
# ----------------------------------------------------------------------------------------------

SpecOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="The KPI spec (YAML).", show_default=True),
]
SourceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--source",
        help="NAME=PATH: read source NAME from PATH (file, glob or folder) "
        "instead of the spec's path. Repeatable.",
    ),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", help="K=V: override a param of the spec. Repeatable."),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Window start (inclusive): an ISO-8601 date or time, or counted back from as-of: "
        "7d, 2w, 12h, or today / yesterday (00:00 UTC of that day). Relative to as-of, not "
        "the clock: the same data gives the same window whenever it runs.",
        show_default=False,
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        help="Window end (exclusive), as --since: ISO-8601, 7d / 2w / 12h before as-of, or "
        "today / yesterday (00:00 UTC; --until today leaves out as-of's unfinished day).",
        show_default=False,
    ),
]
AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Evaluate as of this time (ISO-8601; default: the latest "
        "timestamp in the data). Later rows are ignored.",
    ),
]
BadRowsOption = Annotated[
    BadRows,
    typer.Option(
        "--on-bad-rows",
        help="error: stop at the first malformed row; skip: skip "
        "malformed rows and report how many, per file.",
    ),
]
MaxLineBytesOption = Annotated[
    str,
    typer.Option(
        "--max-line-bytes",
        help="A JSONL line longer than this is a bad row (an error, or skipped with "
        "--on-bad-rows skip). Bytes, or with KiB, MiB or GiB.",
    ),
]
CrossOption = Annotated[
    bool,
    typer.Option(
        "--cross",
        help="Cross the --by columns into one table (each combination of their values), as "
        "--by a,b does, instead of one table per column.",
    ),
]
MaxCohortsOption = Annotated[
    int,
    typer.Option(
        "--max-cohorts",
        min=1,
        help="Refuse a --by column with more values than this (one result row per value).",
    ),
]
CacheOption = Annotated[
    bool,
    typer.Option(
        "--cache/--no-cache",
        help="Keep parsed JSONL as Parquet between runs (in $KPICTL_CACHE_DIR, else "
        "~/.cache/kpictl), keyed by each file's path and content; see `kpictl cache info`.",
    ),
]
RepriceOption = Annotated[
    bool,
    typer.Option(
        "--reprice",
        help="Recompute every cost from the spec's `pricing:` table (reported costs ignored), "
        "so periods or datasets compare at constant prices.",
    ),
]
WideOption = Annotated[
    bool,
    typer.Option(
        "--wide",
        help="Table format: every column and confidence interval, however wide the terminal "
        "(by default columns leave by priority to fit it, and a note names them).",
    ),
]
StrictOption = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Exit 2 (after the output) when the data does not fit the spec: a compared "
        "literal matches no row, a KPI is unavailable (a column missing), a cost is unknown. "
        "For CI.",
    ),
]
PathsArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="Event log files, globs or folders (.jsonl, .ndjson, .jsonl.gz, "
        ".parquet); replace the `events` source's path; - reads JSONL from standard input as "
        "the `events` source (or --source NAME=- for another source). Default: the spec's "
        "paths.",
        show_default=False,
    ),
]


def _load(config: Path, params: list[str] | None, paths: list[str] | None = None) -> Spec:
    """The spec of `-c` (or the shipped scorecard the logs call for, with a note)."""
    from kpictl.commands import load_command_spec

    spec, note = load_command_spec(config, params, paths)
    if note is not None:
        _stderr(f"kpictl: note: {note}")
    return spec


def _sources(
    spec: Spec,
    paths: list[str] | None,
    source: list[str] | None,
    on_bad_rows: BadRows,
    cache: bool = True,
    reprice: bool = False,
    max_line_bytes: str = "64MiB",
    columns: Sequence[str] = (),
    engine: Engine | None = None,
    reads_rows: str | None = None,
) -> Sources:
    """The run's sources (`commands.open_sources`) under a spinner."""
    from kpictl.commands import open_sources

    with progress("Reading logs…"):
        return open_sources(
            spec,
            paths,
            source,
            on_bad_rows.value,
            cache,
            reprice,
            max_line_bytes,
            columns,
            engine,
            reads_rows,
        )


def progress(message: str) -> AbstractContextManager[Any]:
    """A spinner on stderr while a long step runs; nothing when stderr is not a terminal."""
    if not sys.stderr.isatty() or os.environ.get("CI"):
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def _emit(
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


OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write to this file instead of stdout."),
]


def _write_text(
    output: Path | None, text: str, inputs: Sequence[str | Path] = (), create_folder: bool = False
) -> None:
    """`text` to stdout, or to `output` through `write_atomically` (an input refused)."""
    if output is None:
        typer.echo(text, nl=False)
        return
    from kpictl.render.files import write_atomically

    write = lambda path: path.write_text(text, encoding="utf-8")  # noqa: E731
    write_atomically(output, write, inputs, create_folder)


def _strict(strict: bool, notes: Sequence[str]) -> None:
    """`--strict`: the data check's notes (already printed) become exit 2."""
    if strict and notes:
        _stderr(
            f"kpictl: error: --strict: the data does not fit the spec ({len(notes)} "
            f"finding{'s' if len(notes) != 1 else ''}, see the notes above)"
        )
        raise typer.Exit(int(ExitCode.USAGE_ERROR))


def _report_inputs(sources: Sources) -> None:
    from kpictl.commands import input_messages

    for message in input_messages(sources):
        _stderr(f"kpictl: {message}")


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------


@app.command(short_help="Compute every KPI, overall, by cohort or by time bucket.")
def compute(
    paths: PathsArgument = None,
    config: SpecOption = DEFAULT_SPEC,
    source: SourceOption = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="Add one row per value of this column (e.g. channel, arm; any column of the "
            "data: one constant within each conversation is rolled up). Repeatable; "
            "--by a,b gives the cross-tab of a and b.",
        ),
    ] = None,
    cross: CrossOption = False,
    max_cohorts: MaxCohortsOption = 10_000,
    grain: Annotated[
        Grain | None,
        typer.Option("--grain", help="Add one row per time bucket of the table's time column."),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    as_of: AsOfOption = None,
    where: Annotated[
        str | None,
        typer.Option(
            "--where", help="A SQL filter on the KPI tables' rows, e.g. \"channel = 'web'\"."
        ),
    ] = None,
    kpi: Annotated[
        list[str] | None, typer.Option("--kpi", help="Compute only this KPI. Repeatable.")
    ] = None,
    param: ParamOption = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table (rich), json, csv or markdown.")
    ] = OutputFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    on_bad_rows: BadRowsOption = BadRows.error,
    max_line_bytes: MaxLineBytesOption = "64MiB",
    cache: CacheOption = True,
    reprice: RepriceOption = False,
    strict: StrictOption = False,
    wide: WideOption = False,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
    approx_percentiles: ApproxOption = False,
) -> None:
    """Compute every KPI of the spec, overall and by cohort or time bucket.

    Examples:

      kpictl compute

      kpictl compute logs/events/ --source tool_calls=logs/tool_calls/ --by channel

      kpictl compute --grain day --kpi task_completion_rate --format json

      kpictl compute --engine duckdb --kpi task_completion_rate

      kpictl compute --engine spark --spark-master local[2] --by channel

      kpictl compute --engine duckdb --approx-percentiles
    """
    from kpictl.commands import choose_engine, compute_options, parse_cohorts, run_inputs
    from kpictl.engine.compute import run_compute
    from kpictl.render.writers import render

    cohorts = parse_cohorts(by, cross)
    spec = _load(config, param, paths)
    grain_name = grain.value if grain else None
    options = compute_options(cohorts, max_cohorts, grain_name, since, until, as_of, where, kpi)
    chosen = choose_engine(
        spec, engine, options, spark_master=spark_master, approx=approx_percentiles
    )
    sources = _sources(
        spec, paths, source, on_bad_rows, cache, reprice, max_line_bytes, cohorts[0], chosen
    )
    with progress("Computing KPIs…"):
        result = run_compute(spec, sources, options, engine=chosen)
    _report_inputs(sources)
    for note in result.notes:
        _stderr(f"kpictl: note: {note}")
    _emit(
        output,
        lambda console: render(result, output_format.value, console, sources.files, wide),
        run_inputs(config, sources),
    )
    _strict(strict, result.check.notes())


@app.command("compile", short_help="Print the SQL an engine runs for the spec.")
def compile_command(
    paths: PathsArgument = None,
    config: SpecOption = DEFAULT_SPEC,
    source: SourceOption = None,
    engine: Annotated[
        EngineName,
        typer.Option("--engine", help="duckdb: the engine whose SQL to print."),
    ] = EngineName.duckdb,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="Add the GROUPING SET of this cohort column. Repeatable; --by a,b: the cross-tab.",
        ),
    ] = None,
    grain: Annotated[
        Grain | None,
        typer.Option("--grain", help="Add the GROUPING SETS of each time bucket, as compute's."),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    as_of: AsOfOption = None,
    where: Annotated[
        str | None, typer.Option("--where", help="A SQL filter on the KPI tables' rows.")
    ] = None,
    kpi: Annotated[
        list[str] | None, typer.Option("--kpi", help="Only this KPI. Repeatable.")
    ] = None,
    param: ParamOption = None,
    approx_percentiles: ApproxOption = False,
) -> None:
    """Print the SQL `kpictl compute --engine duckdb` (or spark) runs with the same options,
    for review: the facts of each table (rollup passes and derive entries as CTEs), then each
    KPI's aggregates per grouping set, in the engine's dialect. Params and as-of appear as
    literals (as-of is resolved from the data, as compute does). A construct the engine does
    not cover is refused with its spec line (exit 2).

    Examples:

      kpictl compile --engine duckdb

      kpictl compile --engine spark --kpi task_completion_rate --by channel

      kpictl compile --engine duckdb --grain week --by channel,intent

      kpictl compile --engine spark --approx-percentiles --kpi agent_latency_p95
    """
    from kpictl.commands import choose_engine, compile_sql, compute_options, parse_cohorts

    if engine is EngineName.polars:
        raise UsageError(
            "compile --engine polars: the polars engine runs no SQL; use duckdb or spark"
        )
    spec = _load(config, param, paths)
    grain_name = grain.value if grain else None
    options = compute_options(
        parse_cohorts(by, False), 10_000, grain_name, since, until, as_of, where, kpi
    )
    reader = choose_engine(spec, engine, None)  # reads a remote source's schema (spark)
    sources = _sources(spec, paths, source, BadRows.error, True, False, "64MiB", (), reader)
    typer.echo(compile_sql(spec, sources, options, engine, approx_percentiles), nl=False)


@app.command(short_help="Compare every KPI against a baseline: tests, CIs, verdicts.")
def compare(
    paths: PathsArgument = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            "-b",
            help="A baseline declared in the spec (holdout, prior_4w, …) or a "
            "path to another dataset's events (then --baseline-source for its other sources). "
            "Default: the spec's defaults.baseline.",
        ),
    ] = None,
    baseline_source: Annotated[
        list[str] | None,
        typer.Option(
            "--baseline-source", help="NAME=PATH: a source of the baseline dataset. Repeatable."
        ),
    ] = None,
    config: SpecOption = DEFAULT_SPEC,
    source: SourceOption = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="Also compare within each value of this column (any column of the data). "
            "Repeatable; --by a,b compares within each combination (the cross-tab).",
        ),
    ] = None,
    cross: CrossOption = False,
    max_cohorts: MaxCohortsOption = 10_000,
    kpi: Annotated[
        list[str] | None, typer.Option("--kpi", help="Compare only this KPI. Repeatable.")
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    as_of: AsOfOption = None,
    where: Annotated[
        str | None,
        typer.Option("--where", help="A SQL filter on the KPI tables' rows of both arms."),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            "--alpha",
            help="Significance level (two-sided). Default: 1 − the spec's defaults.confidence "
            "(0.05).",
        ),
    ] = None,
    correction: Annotated[
        Correction | None,
        typer.Option(
            "--correction",
            help="Multiple-testing correction over all KPI × cohort tests "
            "(default: the spec's, holm).",
        ),
    ] = None,
    unit: Annotated[
        str | None,
        typer.Option(
            "--unit",
            help="The unit of assignment (default: the conversation); e.g. user_id when "
            "users were randomized. Row-level KPIs become ratios over units.",
        ),
    ] = None,
    relative_ci: Annotated[
        RelativeCi,
        typer.Option(
            "--relative-ci",
            help="delta (the platforms' default) or fieller (always agrees with the p-value).",
        ),
    ] = RelativeCi.delta,
    paired: Annotated[
        bool | None,
        typer.Option(
            "--paired/--unpaired",
            help="Pair units by id across a dataset baseline (an evaluation "
            "suite run twice): McNemar exact, paired t, Wilcoxon. Default: paired when both runs "
            "have the same --unit ids (other than the conversation id).",
            show_default=False,
        ),
    ] = None,
    cuped: Annotated[
        str | None,
        typer.Option(
            "--cuped",
            help="A pre-period covariate column of the unit table (e.g. the user's "
            "previous-period value): CUPED-adjusts per-unit means and proportions.",
        ),
    ] = None,
    heterogeneity: Annotated[
        bool,
        typer.Option(
            "--heterogeneity",
            help="With --by: test whether the effect differs across the "
            "groups (Cochran's Q; Holm over the groups) and flag groups where the agent is worse "
            "while better overall.",
        ),
    ] = False,
    sequential: Annotated[
        bool,
        typer.Option(
            "--sequential",
            help="Always-valid CIs and p-values (confidence sequences): valid "
            "however often you look, e.g. every day, at the price of wider intervals.",
        ),
    ] = False,
    n_star: Annotated[
        float,
        typer.Option(
            "--n-star",
            help="With --sequential: the planned number of units (both arms) at "
            "which the interval is tightest.",
        ),
    ] = 5000.0,
    fail_on: Annotated[
        FailLevel | None,
        typer.Option(
            "--fail-on", help="Exit 3 when any KPI is at or above this level (gate a deploy)."
        ),
    ] = None,
    param: ParamOption = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table (rich), json, csv or markdown.")
    ] = OutputFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    on_bad_rows: BadRowsOption = BadRows.error,
    max_line_bytes: MaxLineBytesOption = "64MiB",
    cache: CacheOption = True,
    reprice: RepriceOption = False,
    strict: StrictOption = False,
    wide: WideOption = False,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
    approx_percentiles: ApproxOption = False,
) -> None:
    """Compare every KPI against a baseline with the right test, CIs and corrections.

    Proportions: two-sample test on unit-level values (exact test when cells are small);
    means: Welch; ratios: delta method; percentiles: cluster-adjusted outer CI; formulas:
    cluster bootstrap. The p-value comes from the absolute difference; Holm (or BH) adjusts
    over all KPI × cohort tests. A threshold fires when the deterioration crosses it and is
    significant; an absolute bound ("> 1%") fires whenever the value is beyond it.

    Examples:

      kpictl compare --baseline holdout

      kpictl compare --baseline prior_4w --by channel --fail-on critical

      kpictl compare logs/this_week/ --baseline logs/last_week/ --format json

      kpictl compare --baseline holdout --engine duckdb --kpi task_completion_rate
    """
    from kpictl.commands import (
        choose_engine,
        compare_breaches,
        is_dataset_baseline,
        parse_bound,
        parse_cohorts,
        parse_time,
        run_inputs,
    )
    from kpictl.comparison.run import CompareOptions, run_compare
    from kpictl.engine.interface import ComputeOptions
    from kpictl.render.writers import render

    cohorts = parse_cohorts(by, cross)
    spec = _load(config, param, paths)
    options = CompareOptions(
        baseline=None,
        by=cohorts[0],
        cross=cohorts[1],
        max_cohorts=max_cohorts,
        since=parse_bound(since, "--since"),
        until=parse_bound(until, "--until"),
        as_of=parse_time(as_of, "--as-of"),
        where=where,
        kpis=tuple(kpi or ()),
        alpha=alpha,
        correction=correction.value if correction else None,
        unit=unit,
        relative_ci=relative_ci.value,
        paired=paired,
        sequential=sequential,
        cuped=cuped,
        heterogeneity=heterogeneity,
        sequential_n_star=n_star,
    )
    chosen = choose_engine(
        spec,
        engine,
        ComputeOptions(by=options.by, cross=options.cross, where=where, kpis=options.kpis),
        spark_master=spark_master,
        approx=approx_percentiles,
    )
    sources = _sources(
        spec, paths, source, on_bad_rows, cache, reprice, max_line_bytes, cohorts[0], chosen
    )
    baseline_sources = None
    if is_dataset_baseline(spec, baseline, baseline_source):
        assert baseline is not None
        baseline_sources = _sources(
            spec,
            [baseline],
            baseline_source,
            on_bad_rows,
            cache,
            reprice,
            max_line_bytes,
            cohorts[0],
            chosen,
        )
    else:
        options = replace(options, baseline=baseline)
    with progress("Comparing KPIs…"):
        result = run_compare(
            spec,
            sources,
            options,
            baseline_sources=baseline_sources,
            baseline_label=baseline,
            engine=chosen,
        )
    _report_inputs(sources)
    if baseline_sources is not None:
        _report_inputs(baseline_sources)
    for note in result.notes:
        _stderr(f"kpictl: note: {note}")
    _emit(
        output,
        lambda console: render(result, output_format.value, console, wide=wide),
        run_inputs(config, sources, baseline_sources),
    )
    _strict(strict, result.check.notes())
    if fail_on is not None:
        count, names = compare_breaches(result, fail_on.value)
        if count:
            _stderr(
                f"kpictl: {count} KPI result(s) at or above {fail_on.value}: {', '.join(names)}"
            )
            raise typer.Exit(int(ExitCode.THRESHOLD_BREACHED))


REPORT_READS_ROWS = (
    "kpictl report reads the rows of every source itself (its data-quality checks, "
    "per-conversation costs and drill-down)"
)


@app.command(short_help="Write the scorecard: one document a reader takes in at once.")
def report(
    paths: PathsArgument = None,
    config: SpecOption = DEFAULT_SPEC,
    source: SourceOption = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            "-b",
            help="A baseline declared in the spec or a path to another "
            "dataset's events. Default: the spec's defaults.baseline; none: descriptive only.",
        ),
    ] = None,
    baseline_source: Annotated[
        list[str] | None,
        typer.Option(
            "--baseline-source", help="NAME=PATH: a source of the baseline dataset. Repeatable."
        ),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    as_of: AsOfOption = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="List the cohorts of this column whose KPIs differ significantly from "
            "the rest. Repeatable; --by a,b takes each combination of a and b.",
        ),
    ] = None,
    cross: CrossOption = False,
    max_cohorts: MaxCohortsOption = 10_000,
    title: Annotated[str | None, typer.Option("--title", help="The scorecard's title.")] = None,
    charts: Annotated[
        Path | None,
        typer.Option(
            "--charts",
            help="Write one PNG per KPI into this folder and show them under Trends, with "
            "paths relative to the output (needs pip install 'kpictl[charts]').",
        ),
    ] = None,
    output_format: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            "-f",
            help="markdown, or html: one self-contained page (charts inline, readable on a "
            "phone, printable to PDF; needs pip install 'kpictl[charts]').",
        ),
    ] = ReportFormat.markdown,
    redact: Annotated[
        bool,
        typer.Option(
            "--redact/--no-redact",
            help="Redact e-mail addresses, phone numbers and card numbers "
            "in the drill-down's messages.",
        ),
    ] = True,
    review: Annotated[
        list[Path] | None,
        typer.Option(
            "--review",
            help="A labelled review file (kpictl review sample); repeat for several rounds. "
            "Adds a Human review section: the latest round and the trend.",
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            help="A target volume (10x, 50000/month): adds a Cost at scale section, the "
            "current arm's monthly cost and peak hourly spend at that volume (kpictl project).",
        ),
    ] = None,
    fail_on: Annotated[
        FailLevel | None,
        typer.Option(
            "--fail-on",
            help="Exit 3 when any KPI is at or above this level (the report is written first).",
        ),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            "--where",
            help="A SQL filter on the KPI tables' rows (of both arms), as compare's: the "
            "tiles equal kpictl compare --where.",
        ),
    ] = None,
    kpi: Annotated[
        list[str] | None,
        typer.Option(
            "--kpi", help="Only this KPI (and a formula's inputs) in the scorecard. Repeatable."
        ),
    ] = None,
    param: ParamOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the scorecard to this file instead of stdout."),
    ] = None,
    on_bad_rows: BadRowsOption = BadRows.error,
    max_line_bytes: MaxLineBytesOption = "64MiB",
    cache: CacheOption = True,
    reprice: RepriceOption = False,
    strict: StrictOption = False,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
    approx_percentiles: ApproxOption = False,
) -> None:
    """Write the scorecard: one Markdown document (or HTML page) with tiles, KPIs, trends, ROI,
    data quality, drill-down and provenance. Only the scorecard goes to stdout.

    Examples:

      kpictl report > scorecard.md

      kpictl report --by channel --charts charts/ --output scorecard.md

      kpictl report --format html --output scorecard.html

      kpictl report --baseline prior_4w --fail-on critical

      kpictl report --engine duckdb --kpi task_completion_rate --kpi csat_mean
    """
    import shlex

    from kpictl.commands import (
        choose_engine,
        is_dataset_baseline,
        only_kpis,
        parse_bound,
        parse_cohorts,
        parse_time,
        report_findings,
        run_inputs,
    )
    from kpictl.engine.interface import ComputeOptions
    from kpictl.scorecard.report import ReportOptions, run_report

    cohorts = parse_cohorts(by, cross)
    spec = only_kpis(_load(config, param, paths), kpi)
    # the scorecard's KPIs (their tables' facts, compare's arms, the trend's overall values)
    chosen = choose_engine(
        spec,
        engine,
        ComputeOptions(where=where),
        [spec.require_primary_table().name],
        spark_master,
        approx_percentiles,
    )
    # the report's data checks, costs and drill-down read every row: no remote source
    reads = REPORT_READS_ROWS
    sources = _sources(
        spec, paths, source, on_bad_rows, cache, reprice, max_line_bytes, cohorts[0], chosen, reads
    )
    baseline_sources = None
    if is_dataset_baseline(spec, baseline, baseline_source):
        assert baseline is not None
        baseline_sources = _sources(
            spec,
            [baseline],
            baseline_source,
            on_bad_rows,
            cache,
            reprice,
            max_line_bytes,
            cohorts[0],
            chosen,
            reads,
        )
    options = ReportOptions(
        baseline=baseline if baseline_sources is None else None,
        by=cohorts[0],
        cross=cohorts[1],
        max_cohorts=max_cohorts,
        since=parse_bound(since, "--since"),
        until=parse_bound(until, "--until"),
        as_of=parse_time(as_of, "--as-of"),
        where=where,
        title=title,
        charts_dir=charts,
        link_base=output.parent if output is not None else Path.cwd(),
        redact=redact,
        command_line=shlex.join(["kpictl", *sys.argv[1:]]),
        review=tuple(review or ()),
        project=project,
        format=output_format.value,
    )
    with progress("Building the scorecard…"):
        result = run_report(
            spec,
            sources,
            options,
            baseline_sources=baseline_sources,
            baseline_label=baseline,
            engine=chosen,
        )
    _report_inputs(sources)
    if baseline_sources is not None:
        _report_inputs(baseline_sources)
    for note in result.notes:
        _stderr(f"kpictl: note: {note}")
    text = result.html if result.html is not None else result.markdown
    inputs = [*run_inputs(config, sources, baseline_sources), *(review or ())]
    _write_text(output, text, inputs, create_folder=True)
    if output is not None:
        _stderr(
            f"kpictl: wrote {output}"
            + (f" and {len(result.charts)} chart(s) to {charts}" if result.charts else "")
        )
    _strict(strict, report_findings(result))
    if fail_on is not None:
        breached = result.at_or_above(fail_on.value)
        if breached:
            _stderr(
                f"kpictl: {len(breached)} KPI(s) at or above {fail_on.value}: {', '.join(breached)}"
            )
            raise typer.Exit(int(ExitCode.THRESHOLD_BREACHED))


class ProjectFormat(StrEnum):
    """`kpictl project --format` choices."""

    table = "table"
    json = "json"
    markdown = "markdown"


@app.command(short_help="Project the monthly cost and peak spend at another volume.")
def project(
    paths: PathsArgument = None,
    volume: Annotated[
        str,
        typer.Option(
            "--volume",
            help="The target volume: a multiple of the observed conversations per month "
            "(10x) or conversations per period (50000/month; also /week, /day, /hour).",
        ),
    ] = "10x",
    config: SpecOption = DEFAULT_SPEC,
    source: SourceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    as_of: AsOfOption = None,
    draws: Annotated[
        int,
        typer.Option("--draws", help="Bootstrap resamples of the conversations (at least 100)."),
    ] = 2000,
    seed: Annotated[
        int, typer.Option("--seed", help="Bootstrap seed (same seed, same interval).")
    ] = 7,
    param: ParamOption = None,
    output_format: Annotated[
        ProjectFormat, typer.Option("--format", "-f", help="table (rich), json or markdown.")
    ] = ProjectFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    on_bad_rows: BadRowsOption = BadRows.error,
    cache: CacheOption = True,
) -> None:
    """Project the monthly cost at another volume (LLM, tools, human minutes, with a bootstrap
    interval) and the peak hourly spend; every assumption is stated.

    With a `pricing:` section every row with tokens is repriced at its model's latest price.
    Conversations with an unknown cost are left out and the projection says "partially priced".

    Examples:

      kpictl project --volume 10x

      kpictl project --volume 50000/month --format markdown -o projection.md
    """
    from kpictl.commands import parse_bound, parse_time, run_inputs
    from kpictl.projection import ProjectionOptions, parse_volume, run_projection
    from kpictl.render.writers import render

    options = ProjectionOptions(
        parse_volume(volume),
        since=parse_bound(since, "--since"),
        until=parse_bound(until, "--until"),
        as_of=parse_time(as_of, "--as-of"),
        draws=draws,
        seed=seed,
    )
    spec = _load(config, param)
    sources = _sources(spec, paths, source, on_bad_rows, cache)
    with progress("Projecting costs…"):
        result = run_projection(spec, sources, options)
    _report_inputs(sources)
    if result.status != "priced":
        _stderr(f"kpictl: note: cost projection {result.headline}")
    _emit(
        output,
        lambda console: render(result, output_format.value, console),
        run_inputs(config, sources),
    )


class CheckFormat(StrEnum):
    """`kpictl check` and `kpictl validate --format` choices."""

    table = "table"
    json = "json"


@app.command(short_help="Check the KPI spec without reading any data.")
def validate(
    config: SpecOption = DEFAULT_SPEC,
    param: ParamOption = None,
    output_format: Annotated[
        CheckFormat,
        typer.Option(
            "--format",
            "-f",
            help="table (one line, or the problems on stderr) or json (on stdout: valid, the "
            "counts, and every problem with file, line, path and message).",
        ),
    ] = CheckFormat.table,
    output: OutputOption = None,
    engine: Annotated[
        EngineName,
        typer.Option(
            "--engine",
            help="Also check that a SQL engine (duckdb, spark) compiles every KPI: exit 2 "
            "naming each one it does not cover, with its spec line.",
        ),
    ] = EngineName.polars,
) -> None:
    """Check the KPI spec without reading any data; report every problem at once (exit 1).

    Examples:

      kpictl validate

      kpictl validate -c my_spec.yaml --format json

      kpictl validate --engine spark
    """
    from kpictl.commands import require_engine_covers, validate_json, validate_text
    from kpictl.errors import SpecError

    as_json = output_format is CheckFormat.json
    try:
        spec = _load(config, param)
    except SpecError as exc:
        if not as_json:
            raise
        _write_text(output, validate_json(config, None, exc.problems), [config])
        count = len(exc.problems)
        _stderr(f"kpictl: error: {count} problem{'s' if count != 1 else ''} in the KPI spec")
        raise typer.Exit(int(exc.exit_code)) from None
    if engine is not EngineName.polars:
        require_engine_covers(spec, engine)
    text = validate_json(config, spec) if as_json else validate_text(config, spec)
    _write_text(output, text, [config])


@app.command(short_help="Print a JSON Schema of the spec file, for editors.")
def schema(output: OutputOption = None) -> None:
    """Print a JSON Schema (draft 2020-12) of the spec file, for editors (kpictl.schema.json)."""
    import json

    from kpictl.spec import spec_json_schema

    _write_text(output, json.dumps(spec_json_schema(), indent=2, ensure_ascii=False) + "\n")


@app.command(short_help="Check that the data fits the spec (exit 2 when it does not).")
def check(
    paths: PathsArgument = None,
    config: SpecOption = DEFAULT_SPEC,
    source: SourceOption = None,
    param: ParamOption = None,
    output_format: Annotated[
        CheckFormat, typer.Option("--format", "-f", help="table (text) or json.")
    ] = CheckFormat.table,
    output: OutputOption = None,
    on_bad_rows: BadRowsOption = BadRows.error,
    cache: CacheOption = True,
) -> None:
    """Check that the data fits the spec: per source rows, time range, columns mapped,
    unmapped and empty, duplicate rows and orphan keys; every compared literal's matching rows;
    every KPI computable or why not. Exit 0 when all is fine, 2 when something is flagged.

    Examples:

      kpictl check

      kpictl check logs/events/ --source tool_calls=logs/tool_calls/ --format json
    """
    from kpictl.commands import findings, run_inputs
    from kpictl.engine.datacheck import check_sources
    from kpictl.render.writers import render_text

    spec = _load(config, param, paths)
    sources = _sources(spec, paths, source, on_bad_rows, cache)
    with progress("Checking the data…"):
        report = check_sources(spec, sources)
    _report_inputs(sources)
    _write_text(output, render_text(report, output_format.value), run_inputs(config, sources))
    if report.flagged:
        _stderr(f"kpictl: check: {findings(len(report.flagged))}: the data does not fit the spec")
        raise typer.Exit(int(ExitCode.USAGE_ERROR))


@app.command(short_help="Export a facts table: one row per conversation.")
def facts(
    paths: PathsArgument = None,
    config: SpecOption = DEFAULT_SPEC,
    source: SourceOption = None,
    table: Annotated[
        str | None,
        typer.Option(
            "--table", help="Which table (default: the first rollup table, e.g. conversations)."
        ),
    ] = None,
    as_of: AsOfOption = None,
    param: ParamOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (.parquet, .csv or .json; the suffix gives the format "
            "unless --format does). Default: facts.parquet, or stdout when --format is given.",
            show_default=False,
        ),
    ] = None,
    output_format: Annotated[
        FactsFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="csv, json (an array of row objects) or parquet; without -o to stdout "
            "(Parquet only into a pipe or file, never a terminal).",
        ),
    ] = None,
    on_bad_rows: BadRowsOption = BadRows.error,
    max_line_bytes: MaxLineBytesOption = "64MiB",
    cache: CacheOption = True,
    reprice: RepriceOption = False,
    engine: EngineOption = None,
    spark_master: SparkMasterOption = None,
) -> None:
    """Export a facts table (one row per conversation with every rollup and derive column).

    Examples:

      kpictl facts -o facts.parquet

      kpictl facts --format csv | head

      kpictl facts --table tool_calls --format json -o tool_calls.json

      kpictl facts --engine duckdb -o facts.parquet
    """
    from kpictl.commands import choose_engine, facts_format, facts_writer, parse_time, run_inputs
    from kpictl.engine.compute import facts as build_facts
    from kpictl.render.files import write_atomically

    fmt_name = output_format.value if output_format else None
    output, fmt = facts_format(output, fmt_name, sys.stdout.isatty())
    spec = _load(config, param, paths)
    name = table or spec.require_primary_table().name  # an unknown one: facts() says so
    chosen = choose_engine(spec, engine, None, [name] if name in spec.tables else [], spark_master)
    sources = _sources(spec, paths, source, on_bad_rows, cache, reprice, max_line_bytes, (), chosen)
    frame = build_facts(spec, sources, table, parse_time(as_of, "--as-of"), engine=chosen)
    _report_inputs(sources)
    write = facts_writer(frame, fmt)
    if output is None:
        if fmt == "parquet":
            sys.stdout.flush()
            write(sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            buffer = io.StringIO()
            write(buffer)
            text = buffer.getvalue()
            typer.echo(text if fmt == "csv" else text + "\n", nl=False)
        return
    write_atomically(output, write, run_inputs(config, sources))
    _stderr(f"kpictl: wrote {frame.height:,} rows × {frame.width} columns to {output}")


@app.command(short_help="Write deterministic synthetic agent logs.")
def sample(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Folder to write events/ and tool_calls/ into.  [default: sample_logs]",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", hidden=True, help="The old spelling of --output.")
    ] = None,
    conversations: Annotated[
        int, typer.Option("--conversations", "-n", min=1, help="How many conversations.")
    ] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same files).")] = 7,
    days: Annotated[int, typer.Option("--days", min=1, help="Days the data spans.")] = 30,
    output_format: Annotated[
        SampleFormat, typer.Option("--format", help="jsonl or parquet.")
    ] = SampleFormat.jsonl,
) -> None:
    """Write deterministic synthetic agent logs in the canonical schema."""
    from kpictl.sample import write_sample

    if output is not None and out is not None and output != out:
        raise UsageError(f"--output {output} and --out {out}: give the folder once (--output)")
    folder = output or out or Path("sample_logs")
    try:
        written = write_sample(
            folder, conversations=conversations, seed=seed, days=days, fmt=output_format.value
        )
    except ValueError as exc:
        raise UsageError(f"kpictl sample: {exc}") from exc
    for path in written:
        _stderr(f"kpictl: wrote {path}")


class InitKind(StrEnum):
    """`kpictl init --kind` choices."""

    events = "events"
    chat = "chat"
    otlp = "otlp"


@app.command()
def init(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Log files, globs or folders to read a sample of (JSONL, JSON, Parquet; chat "
            "transcripts and OTLP traces are told from their content). A second flat path "
            "holding tool names and statuses becomes the tool_calls source.",
            show_default=False,
        ),
    ] = None,
    kind: Annotated[
        InitKind | None,
        typer.Option(
            "--kind",
            help="Read the logs as this kind; without paths, write the shipped chat or otlp "
            "scorecard (every block on) for editing.",
        ),
    ] = None,
    mapped: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="COLUMN=FIELD: take kpictl's COLUMN (ts, conversation_id, event, …) from "
            "FIELD instead of guessing. Repeatable.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the spec (default: kpi_definitions.yaml next to the data).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing spec.")] = False,
) -> None:
    """Write a commented kpi_definitions.yaml for your own logs, then check it on them.

    Reads a sample, proposes the column mapping (by name, type and values), keeps the
    scorecard to the KPIs the logs can support, says what it could not decide, and ends with
    `kpictl check` on what it wrote.

    Examples:

      kpictl init logs/events.jsonl

      kpictl init logs/events/ logs/tool_calls/ --map ts=created_ms -o kpi.yaml

      kpictl init traces.otlp.jsonl

      kpictl init --kind chat -o chat.yaml
    """
    from kpictl.commands import KIND_WORDS, findings, init_summary, parse_pairs, propose_init
    from kpictl.engine.datacheck import check_sources
    from kpictl.init import default_spec_path
    from kpictl.render.files import write_atomically
    from kpictl.render.writers import render_text
    from kpictl.spec import load_spec

    if not paths and (kind is None or kind is InitKind.events):
        raise UsageError(
            "kpictl init: give the log paths (kpictl init logs/), or --kind chat or --kind otlp "
            "to write that shipped scorecard"
        )
    target = output or (default_spec_path(paths[0]) if paths else DEFAULT_SPEC)
    if target.exists() and not force:
        raise UsageError(f"{target} exists: --force overwrites it, or write elsewhere with -o")
    fixed = parse_pairs(mapped, "--map")
    with progress("Reading a sample of the logs…"):
        samples, proposal = propose_init(paths, kind.value if kind else None, target, fixed)
    if fixed and proposal.kind != "events":
        raise UsageError(f"--map: {KIND_WORDS[proposal.kind]} need no column mapping")
    summary = init_summary(samples, proposal)
    if summary:
        typer.echo("\n".join(summary))
    log_files = [f for s in samples for f in s.files]
    write_atomically(target, lambda p: p.write_text(proposal.text, encoding="utf-8"), log_files)
    spec = load_spec(target)
    typer.echo(f"wrote {target} ({len(spec.kpis)} KPIs)")
    if not paths:
        typer.echo(f"next: set sources.events.path in {target}, then kpictl check -c {target}")
        return
    typer.echo(f"\nkpictl check -c {target}:")
    sources = _sources(spec, None, None, BadRows.error)
    report = check_sources(spec, sources)
    typer.echo(render_text(report, "table"), nl=False)
    if report.flagged:
        _stderr(
            f"kpictl: init: the check found {findings(len(report.flagged))}: edit {target}, "
            f"then kpictl check -c {target}"
        )
    else:
        typer.echo(f"next: kpictl compute -c {target}")


cache_app = typer.Typer(
    help="Show or empty the JSONL cache: each parsed JSONL file kept as Parquet between runs "
    "($KPICTL_CACHE_DIR, else $XDG_CACHE_HOME/kpictl, else ~/.cache/kpictl; bounded by "
    "$KPICTL_CACHE_MAX_BYTES, default 2G).",
    short_help="Show or empty the JSONL cache of parsed logs.",
    cls=_UncutGroup,
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


@cache_app.command("info")
def cache_info() -> None:
    """Show where the cache is, whether it is on, its entries, total size and size limit."""
    from kpictl.commands import cache_info_lines
    from kpictl.io.cache import cache_info as read_info

    typer.echo("\n".join(cache_info_lines(read_info())))


@cache_app.command("clear")
def cache_clear() -> None:
    """Remove every entry of the cache (the next run on each JSONL file parses it again)."""
    from kpictl.commands import size_text
    from kpictl.io.cache import clear_cache

    removed = clear_cache()
    _stderr(
        f"kpictl: removed {removed.entries} entries ({size_text(removed.total_bytes)}) "
        f"from {removed.directory}"
    )


# ----------------------------------------------------------------------------------------------
# kpictl review: the human review loop
# ----------------------------------------------------------------------------------------------

review_app = typer.Typer(
    help="The human review loop: sample conversations to label, then score the labels "
    "against the agent's self-reported success.",
    short_help="The human review loop: sample conversations to label, then score.",
    cls=_UncutGroup,
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(review_app, name="review")


class Allocation(StrEnum):
    """`kpictl review sample --allocation` choices."""

    proportional = "proportional"
    equal = "equal"


class ReviewFormat(StrEnum):
    """`kpictl review score --format` choices."""

    table = "table"
    json = "json"
    markdown = "markdown"


@review_app.command("sample")
def review_sample(
    paths: PathsArgument = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The review file to write (CSV).")
    ] = Path("review.csv"),
    size: Annotated[int, typer.Option("--size", help="Conversations to sample.")] = 200,
    stratify_by: Annotated[
        str | None,
        typer.Option(
            "--stratify-by",
            help="Comma-separated columns of the conversations table, e.g. intent,channel: "
            "one stratum per combination of values.",
        ),
    ] = None,
    allocation: Annotated[
        Allocation,
        typer.Option(
            "--allocation",
            help="proportional: each stratum by its share of conversations; equal: the same "
            "number from each stratum (scores are weighted back by stratum size).",
        ),
    ] = Allocation.proportional,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Random seed (same seed and data, same sample). Default: a "
            "fresh seed, printed so the sample can be drawn again.",
        ),
    ] = None,
    self_reported: Annotated[
        str,
        typer.Option(
            "--self-reported",
            help="The true/false column of the conversations table that holds the agent's "
            "self-reported success.",
        ),
    ] = "completed",
    messages: Annotated[
        int, typer.Option("--messages", help="Messages of each transcript to include.")
    ] = 6,
    since: SinceOption = None,
    until: UntilOption = None,
    as_of: AsOfOption = None,
    config: SpecOption = DEFAULT_SPEC,
    source: SourceOption = None,
    param: ParamOption = None,
    on_bad_rows: BadRowsOption = BadRows.error,
    max_line_bytes: MaxLineBytesOption = "64MiB",
    cache: CacheOption = True,
) -> None:
    """Draw a stratified random sample of conversations into a CSV to label by hand.

    Each row has the conversation's first messages (personal data and secrets redacted), the
    agent's self-reported outcome and empty columns human_success, hallucination (1/0) and
    notes.

    Examples:

      kpictl review sample --size 200 --stratify-by intent,channel --seed 1 -o review.csv
    """
    import secrets

    from kpictl.commands import (
        parse_bound,
        parse_names,
        parse_time,
        run_inputs,
        write_review_sample,
    )
    from kpictl.review import SampleOptions, draw_review_sample

    if seed is None:
        seed = secrets.randbelow(2**31)
    columns = parse_names(stratify_by)
    spec = _load(config, param)
    sources = _sources(spec, paths, source, on_bad_rows, cache, max_line_bytes=max_line_bytes)
    options = SampleOptions(
        size=size,
        stratify_by=columns,
        allocation=allocation.value,
        seed=seed,
        self_reported=self_reported,
        messages=messages,
        since=parse_bound(since, "--since"),
        until=parse_bound(until, "--until"),
        as_of=parse_time(as_of, "--as-of"),
    )
    drawn = draw_review_sample(spec, sources, options)
    _report_inputs(sources)
    write_review_sample(drawn, output, run_inputs(config, sources))
    for note in drawn.notes:
        _stderr(f"kpictl: note: {note}")
    _stderr(f"kpictl: wrote {drawn.frame.height} conversations to {output} (seed {seed})")


@review_app.command("score")
def review_score(
    files: Annotated[
        list[Path],
        typer.Argument(help="Labelled review files, one per review round.", show_default=False),
    ],
    output_format: Annotated[
        ReviewFormat, typer.Option("--format", "-f", help="table (rich), json or markdown.")
    ] = ReviewFormat.table,
    alpha: Annotated[
        float, typer.Option("--alpha", help="1 − confidence level of the intervals.")
    ] = 0.05,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Score labelled review files: agreement of human labels with the agent's self-reports
    (confusion matrix, Cohen's kappa), the label-corrected completion rate, the hallucination
    rate, and the trend of the gap across rounds.

    Examples:

      kpictl review score review.csv

      kpictl review score week1.csv week2.csv week3.csv --format markdown
    """
    from kpictl.render.writers import render
    from kpictl.review import score_review

    if not 0 < alpha < 0.5:
        raise UsageError(f"--alpha {alpha}: expected a level such as 0.05")
    score = score_review([str(f) for f in files], alpha)
    for note in score.notes:
        _stderr(f"kpictl: note: {note}")
    _emit(output, lambda console: render(score, output_format.value, console), files)


def main() -> None:
    """Console-script entry point."""
    _buffered_stdout()
    try:
        app()
    finally:
        try:  # what is still buffered goes out here: the reader may have gone by now
            sys.stdout.flush()
        except BrokenPipeError:
            _closed_pipe()


if __name__ == "__main__":  # pragma: no cover
    main()
