"""`kpictl compute` and `kpictl compile`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from kpictl.cli.app import (
    app,
    emit,
    exit_if_strict,
    load_spec_of,
    progress,
    read_sources,
    report_inputs,
    stderr_line,
)
from kpictl.cli.options import (
    ApproxOption,
    AsOfOption,
    BadRows,
    BadRowsOption,
    CacheOption,
    CrossOption,
    EngineName,
    EngineOption,
    Grain,
    MaxCohortsOption,
    MaxLineBytesOption,
    OutputFormat,
    OutputFormatOption,
    OutputOption,
    ParamOption,
    PathsArgument,
    RepriceOption,
    SinceOption,
    SourceOption,
    SparkMasterOption,
    SpecOption,
    StrictOption,
    UntilOption,
    WideOption,
)
from kpictl.commands import DEFAULT_MAX_LINE_BYTES, DEFAULT_SPEC
from kpictl.errors import UsageError

if TYPE_CHECKING:
    pass


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
    output_format: OutputFormatOption = OutputFormat.table,
    output: OutputOption = None,
    on_bad_rows: BadRowsOption = BadRows.error,
    max_line_bytes: MaxLineBytesOption = DEFAULT_MAX_LINE_BYTES,
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
    spec = load_spec_of(config, param, paths)
    grain_name = grain.value if grain else None
    options = compute_options(cohorts, max_cohorts, grain_name, since, until, as_of, where, kpi)
    chosen = choose_engine(
        spec, engine, options, spark_master=spark_master, approx=approx_percentiles
    )
    sources = read_sources(
        spec, paths, source, on_bad_rows, cache, reprice, max_line_bytes, cohorts[0], chosen
    )
    with progress("Computing KPIs…"):
        result = run_compute(spec, sources, options, engine=chosen)
    report_inputs(sources)
    for note in result.notes:
        stderr_line(f"kpictl: note: {note}")
    emit(
        output,
        lambda console: render(result, output_format.value, console, sources.files, wide),
        run_inputs(config, sources),
    )
    exit_if_strict(strict, result.check.notes())


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
    spec = load_spec_of(config, param, paths)
    grain_name = grain.value if grain else None
    options = compute_options(
        parse_cohorts(by, False), 10_000, grain_name, since, until, as_of, where, kpi
    )
    reader = choose_engine(spec, engine, None)  # reads a remote source's schema (spark)
    sources = read_sources(spec, paths, source, BadRows.error, engine=reader)
    typer.echo(compile_sql(spec, sources, options, engine, approx_percentiles), nl=False)
