"""`kpictl compare`, `kpictl report` and `kpictl project`."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kpictl.cli.app import (
    app,
    emit,
    exit_if_strict,
    load_spec_of,
    progress,
    read_datasets,
    read_sources,
    report_inputs,
    stderr_line,
    write_text,
)
from kpictl.cli.options import (
    ApproxOption,
    AsOfOption,
    BadRows,
    BadRowsOption,
    BaselineSourceOption,
    CacheOption,
    Correction,
    CrossOption,
    EngineOption,
    FailLevel,
    MaxCohortsOption,
    MaxLineBytesOption,
    OutputFormat,
    OutputFormatOption,
    OutputOption,
    ParamOption,
    PathsArgument,
    RelativeCi,
    ReportFormat,
    RepriceOption,
    SinceOption,
    SourceOption,
    SparkMasterOption,
    SpecOption,
    StrictOption,
    SummaryFormat,
    SummaryFormatOption,
    UntilOption,
    WideOption,
)
from kpictl.commands import DEFAULT_MAX_LINE_BYTES, DEFAULT_SPEC
from kpictl.errors import ExitCode

if TYPE_CHECKING:
    pass


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
    baseline_source: BaselineSourceOption = None,
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
        parse_bound,
        parse_cohorts,
        parse_time,
        run_inputs,
    )
    from kpictl.comparison.model import CompareOptions
    from kpictl.comparison.run import run_compare
    from kpictl.engine.interface import ComputeOptions
    from kpictl.render.writers import render

    cohorts = parse_cohorts(by, cross)
    spec = load_spec_of(config, param, paths)
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
    sources, baseline_sources = read_datasets(
        spec,
        paths,
        source,
        baseline,
        baseline_source,
        on_bad_rows,
        cache,
        reprice,
        max_line_bytes,
        cohorts[0],
        chosen,
    )
    if baseline_sources is None:
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
    report_inputs(sources)
    if baseline_sources is not None:
        report_inputs(baseline_sources)
    for note in result.notes:
        stderr_line(f"kpictl: note: {note}")
    emit(
        output,
        lambda console: render(result, output_format.value, console, wide=wide),
        run_inputs(config, sources, baseline_sources),
    )
    exit_if_strict(strict, result.check.notes())
    if fail_on is not None:
        count, names = compare_breaches(result, fail_on.value)
        if count:
            stderr_line(
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
    baseline_source: BaselineSourceOption = None,
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
    max_line_bytes: MaxLineBytesOption = DEFAULT_MAX_LINE_BYTES,
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
    spec = only_kpis(load_spec_of(config, param, paths), kpi)
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
    sources, baseline_sources = read_datasets(
        spec,
        paths,
        source,
        baseline,
        baseline_source,
        on_bad_rows,
        cache,
        reprice,
        max_line_bytes,
        cohorts[0],
        chosen,
        REPORT_READS_ROWS,
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
    report_inputs(sources)
    if baseline_sources is not None:
        report_inputs(baseline_sources)
    for note in result.notes:
        stderr_line(f"kpictl: note: {note}")
    text = result.html if result.html is not None else result.markdown
    inputs = [*run_inputs(config, sources, baseline_sources), *(review or ())]
    write_text(output, text, inputs, create_folder=True)
    if output is not None:
        stderr_line(
            f"kpictl: wrote {output}"
            + (f" and {len(result.charts)} chart(s) to {charts}" if result.charts else "")
        )
    exit_if_strict(strict, report_findings(result))
    if fail_on is not None:
        breached = result.at_or_above(fail_on.value)
        if breached:
            stderr_line(
                f"kpictl: {len(breached)} KPI(s) at or above {fail_on.value}: {', '.join(breached)}"
            )
            raise typer.Exit(int(ExitCode.THRESHOLD_BREACHED))


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
    output_format: SummaryFormatOption = SummaryFormat.table,
    output: OutputOption = None,
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
    spec = load_spec_of(config, param)
    sources = read_sources(spec, paths, source, on_bad_rows, cache)
    with progress("Projecting costs…"):
        result = run_projection(spec, sources, options)
    report_inputs(sources)
    if result.status != "priced":
        stderr_line(f"kpictl: note: cost projection {result.headline}")
    emit(
        output,
        lambda console: render(result, output_format.value, console),
        run_inputs(config, sources),
    )
