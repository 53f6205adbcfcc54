"""What a command does between its options and its library call, for `cli.py` to use: option
text parsed into library values (times, window bounds, NAME=VALUE pairs, `--by`, sizes), the
spec of `-c` (or the shipped scorecard for chat or OTLP logs), the sources of a run (with
`--source` overrides and standard input), the engine of `--engine` with its up-front refusals,
a dataset baseline, and the messages a run leaves (skipped rows, ignored files, findings).

Library code: it never prints or exits; a message comes back as text and a bad value as a
`UsageError` naming the option. Only the standard library is imported at module level, so
`kpictl --help` stays fast (tests/test_layering.py); the rest is imported where it is used.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kpictl.errors import KpictlError, UsageError

if TYPE_CHECKING:
    import datetime as dt

    import polars as pl

    from kpictl.comparison.model import CompareResult
    from kpictl.engine.interface import ComputeOptions, Engine, TimeBound
    from kpictl.init.detect import LogSample
    from kpictl.init.write import InitProposal
    from kpictl.io.cache import CacheInfo
    from kpictl.io.read import OnBadRows, Sources
    from kpictl.review import ReviewSample
    from kpictl.spec.model import Spec
    from kpictl.sql.dialect import Dialect

DEFAULT_SPEC = Path("kpi_definitions.yaml")
# --max-line-bytes' default as option text: io.inputbytes.MAX_LINE_BYTES (a test checks they agree)
DEFAULT_MAX_LINE_BYTES = "64MiB"
STDIN_NAME = "<stdin>"
KIND_WORDS = {"chat": "chat transcripts", "otlp": "OpenTelemetry traces", "events": "flat logs"}

# ----------------------------------------------------------------------------------------------
# Option values
# ----------------------------------------------------------------------------------------------


def parse_pairs(values: Sequence[str] | None, option: str) -> dict[str, str]:
    """`NAME=VALUE` items (`--param`, `--source`, `--map`) as a dict; the last one wins."""
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {item!r}: expected NAME=VALUE")
        pairs[key.strip()] = value
    return pairs


def parse_time(text: str | None, option: str) -> dt.datetime | None:
    """An ISO-8601 date or time (`--as-of`), in UTC."""
    if text is None:
        return None
    from kpictl.spec.model import parse_timestamp

    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise UsageError(
            f"{option} {text!r}: expected an ISO-8601 date or time such as "
            "2026-10-01 or 2026-10-01T12:00:00Z"
        ) from exc


def parse_bound(text: str | None, option: str) -> TimeBound | None:
    """A window end: an ISO-8601 time, or one counted back from as-of (`7d`, `yesterday`)."""
    if text is None:
        return None
    from kpictl.engine.interface import parse_relative_time
    from kpictl.spec.model import parse_timestamp

    relative = parse_relative_time(text)
    if relative is not None:
        return relative
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise UsageError(
            f"{option} {text!r}: expected an ISO-8601 date or time such as 2026-10-01 or "
            "2026-10-01T12:00:00Z, or a time back from as-of: 7d, 2w, 12h, today, yesterday"
        ) from exc


def parse_cohorts(by: Sequence[str] | None, cross: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`--by` values as (columns, the crossed ones): `--by a,b` (or `--by a --by b --cross`)
    is the cross-tab of a and b, one grouping set; `--by a --by b` two one-way tables."""
    columns: list[str] = []
    crossed: list[tuple[str, ...]] = []
    for item in by or []:
        names = tuple(n.strip() for n in item.split(","))
        if not all(names):
            raise UsageError(f"--by {item!r}: expected a column, or columns joined by commas")
        if len(names) > 1:
            crossed.append(names)
        columns += names
    columns = list(dict.fromkeys(columns))
    if len(crossed) > 1:
        raise UsageError(
            f"--by {','.join(crossed[0])} --by {','.join(crossed[1])}: one cross-tab per run; "
            "join all its columns in one --by (or use --cross)"
        )
    if cross and len(columns) < 2:
        raise UsageError("--cross needs two or more --by columns to cross")
    together = tuple(columns) if cross else tuple(dict.fromkeys(crossed[0])) if crossed else ()
    return tuple(columns), together


def parse_names(text: str | None) -> tuple[str, ...]:
    """Comma-separated names (`--stratify-by intent,channel`), blanks dropped."""
    return tuple(c.strip() for c in (text or "").split(",") if c.strip())


SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "kb": 1 << 10,
    "m": 1 << 20,
    "mib": 1 << 20,
    "mb": 1 << 20,
    "g": 1 << 30,
    "gib": 1 << 30,
    "gb": 1 << 30,
}


def parse_byte_size(text: str, option: str) -> int:
    """`64MiB`, `512KiB`, `1048576` → bytes (K, M and G are powers of 1,024)."""
    match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in SIZE_UNITS or int(match.group(1)) < 1:
        raise UsageError(f"{option} {text!r}: expected a size such as 64MiB, 512KiB or 1048576")
    return int(match.group(1)) * SIZE_UNITS[unit]


def parse_bad_rows(text: str) -> OnBadRows:
    """`--on-bad-rows`: error or skip (a `cli.options.BadRows` choice is such a text)."""
    if text == "error":
        return "error"
    if text == "skip":
        return "skip"
    raise UsageError(f"--on-bad-rows {text!r}: expected error or skip")


def compute_options(
    cohorts: tuple[tuple[str, ...], tuple[str, ...]],
    max_cohorts: int,
    grain: str | None,
    since: str | None,
    until: str | None,
    as_of: str | None,
    where: str | None,
    kpis: Sequence[str] | None,
) -> ComputeOptions:
    """`compute`'s (and `compile`'s) options as the engine's `ComputeOptions`; `cohorts`:
    `parse_cohorts`' answer."""
    from kpictl.engine.interface import ComputeOptions

    return ComputeOptions(
        by=cohorts[0],
        cross=cohorts[1],
        max_cohorts=max_cohorts,
        grain=grain,
        since=parse_bound(since, "--since"),
        until=parse_bound(until, "--until"),
        as_of=parse_time(as_of, "--as-of"),
        where=where,
        kpis=tuple(kpis or ()),
    )


# ----------------------------------------------------------------------------------------------
# The spec, the engine and the sources of a run
# ----------------------------------------------------------------------------------------------


def load_command_spec(
    config: Path, params: Sequence[str] | None, paths: Sequence[str] | None = None
) -> tuple[Spec, str | None]:
    """The spec of `-c`, and a note when it is not that file: with log paths and no
    kpi_definitions.yaml here, the shipped scorecard for chat transcripts or OTLP traces (told
    from the files' content)."""
    from kpictl.spec import load_spec

    if not config.exists() and config == DEFAULT_SPEC:
        if paths:
            from kpictl.init.write import shipped_scorecard, spec_from_text

            shipped = shipped_scorecard(list(paths))
            if shipped is not None:
                note = (
                    f"no {DEFAULT_SPEC} here: {paths[0]} holds "
                    f"{KIND_WORDS[shipped.kind]}, computed with the shipped {shipped.kind} "
                    f"scorecard (`kpictl init {paths[0]}` writes it out for editing)"
                )
                spec = spec_from_text(
                    shipped.text, f"<shipped {shipped.kind} scorecard>", Path.cwd()
                )
                return (spec.with_params(parse_pairs(params, "--param")) if params else spec), note
            raise UsageError(
                f"no {DEFAULT_SPEC} in {Path.cwd()}: pass the spec with -c PATH, or write one "
                f"for these logs with `kpictl init {paths[0]}`"
            )
        raise UsageError(f"no {DEFAULT_SPEC} in {Path.cwd()}: pass the spec with -c PATH")
    return load_spec(config, params=parse_pairs(params, "--param")), None


def only_kpis(spec: Spec, names: Sequence[str] | None) -> Spec:
    """The spec with only the KPIs of `--kpi` (and the KPIs their formulas use)."""
    if not names:
        return spec
    from kpictl.engine.selection import selected_kpis

    kept, _ = selected_kpis(spec, list(names))
    wanted = {k.name for k in kept}
    return replace(
        spec,
        kpis={n: k for n, k in spec.kpis.items() if n in wanted},
        fairness=tuple(f for f in spec.fairness if f.kpi in wanted),
    )


def sql_dialect(name: str) -> Dialect:
    """The SQL dialect of a SQL engine."""
    return "spark" if name == "spark" else "duckdb"


def choose_engine(
    spec: Spec,
    name: str | None,
    options: ComputeOptions | None,
    tables: Sequence[str] = (),
    spark_master: str | None = None,
    approx: bool = False,
) -> Engine | None:
    """The engine of `--engine`, else of the spec's `defaults.engine` (None: polars); a SQL
    engine refuses up front, with the spec lines, every KPI of `options` it does not cover
    (compare: with its formulas' components; report: every KPI of the scorecard; facts: None)
    and each of `tables` whose facts it cannot build (facts: the table exported; report: the
    unit table). `approx`: --approx-percentiles (a SQL engine's; refused on polars)."""
    chosen = name or spec.defaults.engine
    if chosen == "polars":
        if approx:
            raise UsageError(
                "--approx-percentiles: the polars engine computes percentiles exactly only; "
                "add --engine duckdb or --engine spark for approximate percentiles, or leave "
                "the option out"
            )
        return None
    from kpictl.engine.duck import require_table
    from kpictl.engine.selection import selected_kpis
    from kpictl.engine.sqlplan import require_covered

    for table in tables:
        require_table(spec, table, sql_dialect(chosen))
    if options is not None:
        require_covered(spec, selected_kpis(spec, options.kpis)[0], options, sql_dialect(chosen))
    from kpictl.engine.duck import DuckDBEngine

    engine = DuckDBEngine()
    if chosen == "spark":
        from kpictl.engine.spark import SparkEngine

        engine = SparkEngine(spark_master)
    engine.approx_percentiles = approx
    return engine


def open_sources(
    spec: Spec,
    paths: Sequence[str] | None,
    source: Sequence[str] | None,
    on_bad_rows: str,
    cache: bool = True,
    reprice: bool = False,
    max_line_bytes: str = DEFAULT_MAX_LINE_BYTES,
    columns: Sequence[str] = (),
    engine: Engine | None = None,
    reads_rows: str | None = None,
) -> Sources:
    """The run's sources: the spec's paths, `paths` for the `events` source, `--source
    NAME=PATH` for others, `-` for standard input (read once; shown as `<stdin>`); `engine`
    reads a remote one (`table:`, `s3a://…`) itself, unless `reads_rows` says what of the
    command reads every source's rows (then it is refused)."""
    from kpictl.engine.sources import load_sources

    overrides: dict[str, list[str]] = {}
    for name, path in parse_pairs(source, "--source").items():
        overrides.setdefault(name, []).append(path)
    if paths:
        overrides["events"] = list(paths)
    piped = _stdin_file(overrides)
    try:
        loaded = load_sources(
            spec,
            overrides,
            on_bad_rows=parse_bad_rows(on_bad_rows),
            cache=cache and piped is None,  # a pipe is read once: nothing to keep
            reprice=reprice,
            max_line_bytes=parse_byte_size(max_line_bytes, "--max-line-bytes"),
            columns=columns,
            engine=engine,
            reads_rows=reads_rows,
        )
    except KpictlError as exc:
        if piped is not None:
            exc.message = exc.message.replace(str(piped), STDIN_NAME)
        raise
    return loaded if piped is None else _named_stdin(loaded, piped)


def _stdin_file(overrides: dict[str, list[str]]) -> Path | None:
    """`-` as a path: standard input, read once as JSONL into a temporary file (removed at
    exit) that takes its place; None when no path is `-`. One source may read it."""
    named = [name for name, paths in overrides.items() if "-" in paths]
    if not named:
        return None
    if len(named) > 1 or overrides[named[0]].count("-") > 1:
        raise UsageError("`-` (standard input) may be given once: it can be read only once")
    import atexit
    import shutil
    import tempfile

    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(
            "`-` reads JSONL from standard input, but it is a terminal: pipe the logs in "
            "(cat events.jsonl | kpictl compute -)"
        )
    folder = Path(tempfile.mkdtemp(prefix="kpictl-stdin-"))
    atexit.register(shutil.rmtree, folder, True)
    target = folder / "stdin.jsonl"
    with target.open("wb") as handle:
        shutil.copyfileobj(getattr(sys.stdin, "buffer", sys.stdin), handle)
    overrides[named[0]] = [str(target) if p == "-" else p for p in overrides[named[0]]]
    return target


def _named_stdin(sources: Sources, piped: Path) -> Sources:
    """The sources with the temporary file of standard input shown as `<stdin>`."""
    from kpictl.io.read import Sources as SourcesType

    by_name = {}
    for name, loaded in sources.by_name.items():
        files = tuple(
            replace(
                f,
                path=f.path.replace(str(piped), STDIN_NAME),
                skipped_reasons=tuple(r.replace(str(piped), STDIN_NAME) for r in f.skipped_reasons),
            )
            for f in loaded.files
        )
        by_name[name] = replace(loaded, files=files)
    return SourcesType(by_name)


def is_dataset_baseline(spec: Spec, baseline: str | None, baseline_source: object) -> bool:
    """Whether `--baseline` names another dataset (a path) rather than a baseline of the spec;
    a UsageError when it is neither, or when `--baseline-source` comes without a dataset."""
    if baseline is not None and baseline not in spec.baselines:
        if not Path(baseline).exists():
            from kpictl.errors import did_you_mean

            raise UsageError(
                f"--baseline {baseline}: neither a baseline of the spec"
                f"{did_you_mean(baseline, spec.baselines)} (declared: "
                f"{', '.join(spec.baselines) or 'none'}) nor an existing path"
            )
        return True
    if baseline_source:
        raise UsageError("--baseline-source needs --baseline PATH (a dataset)")
    return False


def run_inputs(config: Path, *sources: Sources | None) -> list[str | Path]:
    """The files a run reads: `-o` must not name one of them."""
    return [config, *(f.path for s in sources if s is not None for f in s.files)]


def compile_sql(
    spec: Spec,
    sources: Sources,
    options: ComputeOptions,
    engine: str,
    approx_percentiles: bool = False,
) -> str:
    """`kpictl compile`: the SQL the engine runs for `options` (as-of resolved from the data;
    `approx_percentiles`: as `--approx-percentiles` runs it)."""
    from kpictl.engine.selection import selected_kpis
    from kpictl.engine.sqlplan import compile_text
    from kpictl.engine.window import resolve_window

    kpis = selected_kpis(spec, options.kpis)[0]
    window = resolve_window(spec, sources, options)
    dialect = sql_dialect(engine)
    return compile_text(spec, sources, window, options, kpis, dialect, approx_percentiles)


# ----------------------------------------------------------------------------------------------
# What a run leaves: messages and findings
# ----------------------------------------------------------------------------------------------


def input_messages(sources: Sources) -> list[str]:
    """`warning: …` per file with skipped rows, `note: …` per source with ignored files and
    per cache note."""
    messages = []
    for loaded in sources.by_name.values():
        for report in loaded.files:
            if report.skipped:
                messages.append(
                    f"warning: {report.path}: skipped {report.skipped} bad row(s); "
                    f"first: {report.skipped_reasons[0] if report.skipped_reasons else '?'}"
                )
        if loaded.ignored:
            messages.append(
                f"note: source {loaded.name!r}: ignored {len(loaded.ignored)} "
                f"file(s) that are not logs, e.g. {loaded.ignored[0]}"
            )
    messages += [f"note: {note}" for note in sources.cache_notes]
    return messages


def findings(count: int) -> str:
    """`1 finding`, `3 findings`."""
    return f"{count} finding{'s' if count != 1 else ''}"


def compare_breaches(result: CompareResult, level: str) -> tuple[int, list[str]]:
    """`compare --fail-on`: how many KPI × cohort results are at or above `level`, and which
    KPIs (sorted)."""
    from kpictl.spec.model import levels_at_or_above

    breached = result.table.filter(result.table["status"].is_in(levels_at_or_above(level)))
    return breached.height, sorted(set(breached["kpi"].to_list()))


def report_findings(result: Any) -> list[str]:
    """`report --strict`: the data check's notes of the trend and of the comparison, once."""
    notes = [
        *result.trend.check.notes(),
        *(result.compare.check.notes() if result.compare is not None else ()),
    ]
    return list(dict.fromkeys(notes))


# ----------------------------------------------------------------------------------------------
# validate, facts, init, cache, review sample
# ----------------------------------------------------------------------------------------------


def spec_counts(spec: Spec) -> dict[str, int]:
    """What `validate` counts: KPIs, tables, sources and baselines."""
    return {
        "kpis": len(spec.kpis),
        "tables": len(spec.tables),
        "sources": len(spec.sources),
        "baselines": len(spec.baselines),
    }


def validate_json(config: Path, spec: Spec | None, problems: Iterable[Any] = ()) -> str:
    """`validate --format json`: valid with the counts, or every problem with file, line,
    path and message."""
    import json

    if spec is None:
        found = [
            {"file": p.file, "line": p.line, "path": p.path, "message": p.message} for p in problems
        ]
        document: dict[str, Any] = {"spec": str(config), "valid": False, "problems": found}
    else:
        document = {"spec": str(config), "valid": True, **spec_counts(spec), "problems": []}
    return json.dumps(document, indent=2) + "\n"


def validate_text(config: Path, spec: Spec) -> str:
    """`validate`'s line for a valid spec."""
    return (
        f"{config}: ok — {len(spec.kpis)} KPIs, {len(spec.tables)} tables, "
        f"{len(spec.sources)} sources, {len(spec.baselines)} baselines\n"
    )


def require_engine_covers(spec: Spec, engine: str) -> None:
    """`validate --engine`: a UsageError naming each KPI the SQL engine does not cover."""
    from kpictl.engine.interface import ComputeOptions
    from kpictl.engine.sqlplan import require_covered

    require_covered(spec, list(spec.kpis.values()), ComputeOptions(), sql_dialect(engine))


FACTS_FORMATS = ("csv", "json", "parquet")


def facts_format(
    output: Path | None, fmt: str | None, to_terminal: bool
) -> tuple[Path | None, str]:
    """`facts`' output file and format: `--format`, else the suffix of `-o` (default
    facts.parquet); Parquet never to a terminal."""
    if output is None and fmt is None:
        output = Path("facts.parquet")
    if fmt is None:
        assert output is not None
        fmt = output.suffix.lower().lstrip(".")
        if fmt not in FACTS_FORMATS:
            raise UsageError(
                f"--output {output}: expected a .parquet, .csv or .json file name "
                "(or name the format with --format)"
            )
    if output is None and fmt == "parquet" and to_terminal:
        raise UsageError(
            "--format parquet: Parquet is binary, not for a terminal; pipe it or name a file "
            "with -o F.parquet"
        )
    return output, fmt


def facts_writer(frame: pl.DataFrame, fmt: str) -> Callable[[Any], None]:
    """Write `frame` in `fmt` to a path or a file object (CSV cells made inert for
    spreadsheets)."""
    from kpictl.render.text import csv_safe

    def write(target: Any) -> None:
        if fmt == "parquet":
            frame.write_parquet(target)
        elif fmt == "csv":
            csv_safe(frame).write_csv(target)
        else:
            frame.write_json(target)

    return write


def propose_init(
    paths: Sequence[str] | None, kind: str | None, target: Path, fixed: dict[str, str]
) -> tuple[list[LogSample], InitProposal]:
    """`init`: a sample of each path and the spec proposed for them; without paths, the
    shipped scorecard of `kind` (chat or otlp)."""
    from kpictl.init import propose_format_spec, propose_spec, sample_logs

    if not paths:
        assert kind is not None
        return [], propose_format_spec(None, kind)
    samples = [sample_logs(p, kind=kind) for p in paths]
    return samples, propose_spec(samples, target, fixed)


def init_summary(samples: Sequence[LogSample], proposal: InitProposal) -> list[str]:
    """What `init` read (each path: its kind, the source it becomes, files and rows sampled)
    and decided (proposed, undecided, left out)."""
    roles = dict(proposal.roles)
    lines = []
    for sample in samples:
        files = len(sample.files)
        what = f"source {roles[sample.path]}" if sample.path in roles else "source events"
        unit = {"events": "rows", "chat": "records", "otlp": "spans"}[sample.kind]
        lines.append(
            f"{sample.path}: {KIND_WORDS[sample.kind]}{' (Parquet)' if sample.parquet else ''}"
            f" → {what}; {files:,} file{'s' if files > 1 else ''}, "
            f"{sample.frame.height:,} {unit} sampled"
        )
    sections = (
        ("proposed:", proposal.chosen),
        ("could not decide (look at these lines of the spec):", proposal.undecided),
        ("left out (the logs lack what they need):", proposal.left_out),
    )
    for title, items in sections:
        if items:
            lines.append(title)
            lines += [f"  - {item}" for item in items]
    return lines


def size_text(count: int) -> str:
    """`1,234 bytes`, or `5,242,880 bytes (5.0 MiB)`."""
    value, unit = float(count), "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{count:,} bytes" if unit == "bytes" else f"{count:,} bytes ({value:.1f} {unit})"


def cache_info_lines(info: CacheInfo) -> list[str]:
    """`cache info`: where, on or off (and why), entries, size, limit, temporary files."""
    state = (
        "on"
        if info.enabled and info.limit_bytes
        else "off (KPICTL_NO_CACHE is set)"
        if not info.enabled
        else "off (KPICTL_CACHE_MAX_BYTES is 0)"
    )
    lines = [
        f"location: {info.directory}",
        f"state: {state}",
        f"entries: {info.entries}",
        f"size: {size_text(info.total_bytes)}",
        f"limit: {size_text(info.limit_bytes)}; set KPICTL_CACHE_MAX_BYTES to change it",
    ]
    if info.temporary_files:
        lines.append(
            f"temporary files: {info.temporary_files} (writes under way, or left by "
            "runs that were killed; removed after an hour)"
        )
    return lines


def write_review_sample(drawn: ReviewSample, output: Path, inputs: Sequence[str | Path]) -> None:
    """The review CSV, atomically; transcript cells a spreadsheet would run as a formula made
    inert."""
    from kpictl.render.files import write_atomically
    from kpictl.render.text import csv_safe
    from kpictl.review import write_review_csv

    safe = replace(drawn, frame=csv_safe(drawn.frame))
    write_atomically(output, lambda path: write_review_csv(safe, path), inputs, create_folder=True)
