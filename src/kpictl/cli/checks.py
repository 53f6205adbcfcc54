"""`kpictl validate`, `schema`, `check`, `facts`, `sample` and `init`."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kpictl.cli.app import (
    app,
    load_spec_of,
    progress,
    read_sources,
    report_inputs,
    stderr_line,
    write_text,
)
from kpictl.cli.options import (
    AsOfOption,
    BadRows,
    BadRowsOption,
    CacheOption,
    CheckFormat,
    EngineName,
    EngineOption,
    FactsFormat,
    InitKind,
    MaxLineBytesOption,
    OutputOption,
    ParamOption,
    PathsArgument,
    RepriceOption,
    SampleFormat,
    SourceOption,
    SparkMasterOption,
    SpecOption,
)
from kpictl.commands import DEFAULT_MAX_LINE_BYTES, DEFAULT_SPEC
from kpictl.errors import ExitCode, UsageError

if TYPE_CHECKING:
    pass


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
        spec = load_spec_of(config, param)
    except SpecError as exc:
        if not as_json:
            raise
        write_text(output, validate_json(config, None, exc.problems), [config])
        count = len(exc.problems)
        stderr_line(f"kpictl: error: {count} problem{'s' if count != 1 else ''} in the KPI spec")
        raise typer.Exit(int(exc.exit_code)) from None
    if engine is not EngineName.polars:
        require_engine_covers(spec, engine)
    text = validate_json(config, spec) if as_json else validate_text(config, spec)
    write_text(output, text, [config])


@app.command(short_help="Print a JSON Schema of the spec file, for editors.")
def schema(output: OutputOption = None) -> None:
    """Print a JSON Schema (draft 2020-12) of the spec file, for editors (kpictl.schema.json)."""
    import json

    from kpictl.spec import spec_json_schema

    write_text(output, json.dumps(spec_json_schema(), indent=2, ensure_ascii=False) + "\n")


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
    from kpictl.engine.checksources import check_sources
    from kpictl.render.writers import render_text

    spec = load_spec_of(config, param, paths)
    sources = read_sources(spec, paths, source, on_bad_rows, cache)
    with progress("Checking the data…"):
        report = check_sources(spec, sources)
    report_inputs(sources)
    write_text(output, render_text(report, output_format.value), run_inputs(config, sources))
    if report.flagged:
        stderr_line(
            f"kpictl: check: {findings(len(report.flagged))}: the data does not fit the spec"
        )
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
    max_line_bytes: MaxLineBytesOption = DEFAULT_MAX_LINE_BYTES,
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
    spec = load_spec_of(config, param, paths)
    name = table or spec.require_primary_table().name  # an unknown one: facts() says so
    chosen = choose_engine(spec, engine, None, [name] if name in spec.tables else [], spark_master)
    sources = read_sources(
        spec, paths, source, on_bad_rows, cache, reprice, max_line_bytes, (), chosen
    )
    frame = build_facts(spec, sources, table, parse_time(as_of, "--as-of"), engine=chosen)
    report_inputs(sources)
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
    stderr_line(f"kpictl: wrote {frame.height:,} rows × {frame.width} columns to {output}")


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
        stderr_line(f"kpictl: wrote {path}")


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
    from kpictl.engine.checksources import check_sources
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
    sources = read_sources(spec, None, None, BadRows.error)
    report = check_sources(spec, sources)
    typer.echo(render_text(report, "table"), nl=False)
    if report.flagged:
        stderr_line(
            f"kpictl: init: the check found {findings(len(report.flagged))}: edit {target}, "
            f"then kpictl check -c {target}"
        )
    else:
        typer.echo(f"next: kpictl compute -c {target}")
