"""The choices and shared options of the commands (typer declarations and their help)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass


class OutputFormat(StrEnum):
    """`--format` choices."""

    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


class SummaryFormat(StrEnum):
    """`kpictl project` and `kpictl review score --format` choices."""

    table = "table"
    json = "json"
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


OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write to this file instead of stdout."),
]


OutputFormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="table (rich), json, csv or markdown.")
]


SummaryFormatOption = Annotated[
    SummaryFormat, typer.Option("--format", "-f", help="table (rich), json or markdown.")
]


BaselineSourceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--baseline-source", help="NAME=PATH: a source of the baseline dataset. Repeatable."
    ),
]


class CheckFormat(StrEnum):
    """`kpictl check` and `kpictl validate --format` choices."""

    table = "table"
    json = "json"


class InitKind(StrEnum):
    """`kpictl init --kind` choices."""

    events = "events"
    chat = "chat"
    otlp = "otlp"


class Allocation(StrEnum):
    """`kpictl review sample --allocation` choices."""

    proportional = "proportional"
    equal = "equal"
