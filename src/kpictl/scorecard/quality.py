"""Data-quality checks over every row read (skipped rows, unpriced calls, negative or
out-of-scale values, duplicates, missing values where a value is expected) and the caveats they
put on the KPIs that read those inputs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from kpictl.io.read import Sources
from kpictl.io.schema import CANONICAL_TABLES
from kpictl.scorecard.lineage import kpi_inputs, source_column_names, sql_names
from kpictl.scorecard.markdown import format_int, format_share
from kpictl.scorecard.model import ColumnQuality, Finding
from kpictl.spec.model import KpiSpec, RollupEntry, Spec
from kpictl.sql.expr import compile_sql

# Where a canonical column is expected to hold a value (SQL over the source's rows); a null
# elsewhere is by design (tokens only on agent messages, csat only on feedback rows, …).
EXPECTED_ON: dict[str, dict[str, str | None]] = {
    "events": {
        "conversation_id": None,
        "ts": None,
        "event": None,
        "role": "event = 'message'",
        "input_tokens": "event = 'message' AND role = 'agent'",
        "output_tokens": "event = 'message' AND role = 'agent'",
        "cost_usd": "event = 'message' AND role = 'agent'",
        "latency_ms": "event = 'message' AND role = 'agent'",
        "model": "event = 'message' AND role = 'agent'",
        "escalation_reason": "event = 'escalation'",
        "csat": "event = 'feedback'",
        "human_minutes": "event = 'message' AND role = 'human'",
        "policy_violation": "event = 'message' AND role = 'agent'",
        "user_id": None,
        "text": "event = 'message'",
    },
    "tool_calls": {
        "conversation_id": None,
        "ts": None,
        "tool": None,
        "status": None,
        "error_type": "status = 'error'",
        "retries": None,
        "latency_ms": None,
        "cost_usd": None,
    },
}


_NON_NEGATIVE = (
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "human_minutes",
    "retries",
)


def data_quality(
    spec: Spec,
    sources: Sources,
    as_of: dt.datetime,
    starts: pl.DataFrame | None = None,
    *,
    timing: bool = True,
) -> tuple[list[Finding], list[ColumnQuality]]:
    """Checks over every row read (not only the report's window): per source one pass of
    counts over its rows (never the whole source in memory: it held 10M events, all columns,
    and their distinct rows), and exact duplicates among the rows whose hashes repeat.
    `starts`: `conversation_id`, `__start` and `__events` (`STARTS` per conversation over
    every row of the events), when the caller has them. `timing=False`: without the tool
    calls' timing check, which the caller runs (`tool_call_timing`) once it has the starts;
    its findings come last."""
    findings: list[Finding] = []
    columns: list[ColumnQuality] = []
    for name, loaded in sources.by_name.items():
        read = loaded.rows + loaded.skipped
        findings.append(
            Finding(
                "bad rows skipped",
                name,
                None,
                loaded.skipped,
                read,
                "malformed rows left out (--on-bad-rows skip)",
            )
        )
        frame = loaded.frame
        schema = frame.collect_schema()
        canonical = [c for c in CANONICAL_TABLES.get(name, {}) if c in schema]
        expected = EXPECTED_ON.get(name, {})
        counts: list[pl.Expr] = [pl.len().alias("rows")]
        scopes: dict[str, str | None] = {}
        # each scope's rows as one boolean column, computed once per row and counted with
        # sums: a filter inside the aggregation per column cost twice as much at 10M rows
        masks: dict[str, pl.Expr] = {}
        for column in canonical:
            scope = expected.get(column)
            counts.append(pl.col(column).null_count().alias(f"nulls:{column}"))
            if scope is not None and all(n in schema for n in sql_names(scope)):
                inside = _mask(masks, compile_sql(scope), scope)
                counts += [
                    inside.sum().alias(f"scope:{column}"),
                    (pl.col(column).is_null() & inside).sum().alias(f"scope_nulls:{column}"),
                ]
            else:
                scope = None
            scopes[column] = scope
        agent_costs = name == "events" and {"cost_usd", "event", "role"} <= set(schema)
        if agent_costs:
            agent = _mask(
                masks, (pl.col("event") == "message") & (pl.col("role") == "agent"), "agent"
            )
            counts += [
                agent.sum().alias("agent"),
                (pl.col("cost_usd").is_null() & agent).sum().alias("agent_nulls"),
            ]
        negatives = [c for c in _NON_NEGATIVE if c in canonical and schema[c].is_numeric()]
        counts += [(pl.col(c) < 0).sum().alias(f"negative:{c}") for c in negatives]
        csat = name == "events" and "csat" in schema and schema["csat"].is_numeric()
        if csat:
            counts.append(((pl.col("csat") < 1) | (pl.col("csat") > 5)).sum().alias("csat"))
        if "ts" in schema:
            counts.append((pl.col("ts") > as_of).sum().alias("later"))
        visible = [c for c in schema.names() if not c.startswith("__")]
        counted, candidates = _duplicate_candidates(frame, visible, counts, list(masks.values()))
        row = counted.row(0, named=True)
        height = int(row["rows"])
        for column in canonical:
            nulls = int(row[f"nulls:{column}"])
            scope = scopes[column]
            scope_rows, scope_nulls = height, nulls
            if scope is not None:
                scope_rows = int(row[f"scope:{column}"] or 0)
                scope_nulls = int(row[f"scope_nulls:{column}"])
            columns.append(
                ColumnQuality(name, column, height, nulls, scope, scope_rows, scope_nulls)
            )
        if agent_costs:
            findings.append(
                Finding(
                    "unpriced agent messages",
                    name,
                    "cost_usd",
                    int(row["agent_nulls"]),
                    int(row["agent"] or 0),
                    "agent messages with no cost_usd: counted as $0",
                )
            )
        if name == "tool_calls" and "cost_usd" in schema:
            findings.append(
                Finding(
                    "unpriced tool calls",
                    name,
                    "cost_usd",
                    int(row["nulls:cost_usd"])
                    if "cost_usd" in canonical
                    else frame.select(pl.col("cost_usd").null_count()).collect().item(),
                    height,
                    "tool calls with no cost_usd: counted as $0",
                )
            )
        for column in negatives:
            findings.append(
                Finding(
                    f"negative {column}",
                    name,
                    column,
                    int(row[f"negative:{column}"] or 0),
                    height,
                    "impossible values, summed as they are",
                )
            )
        if csat:
            findings.append(
                Finding(
                    "csat outside 1-5",
                    name,
                    "csat",
                    int(row["csat"] or 0),
                    height,
                    "satisfaction scores outside the scale",
                )
            )
        if "ts" in schema:
            findings.append(
                Finding(
                    "rows after as-of",
                    name,
                    None,
                    int(row["later"] or 0),
                    height,
                    "ignored by every KPI of this report",
                )
            )
        duplicates = candidates.height - candidates.unique().height
        findings.append(
            Finding(
                "duplicate rows",
                name,
                None,
                duplicates,
                height,
                "identical rows: each is counted",
            )
        )
    if timing:
        findings += tool_call_timing(sources, starts)
    return findings, columns


def _mask(masks: dict[str, pl.Expr], condition: pl.Expr, name: str) -> pl.Expr:
    """A column of `condition` (null as false), added to `masks` under `name` once."""
    if name not in masks:
        masks[name] = condition.fill_null(False).alias(f"__kpictl_scope_{len(masks)}")
    return pl.col(masks[name].meta.output_name())


# equal rows agree on these columns: hashing them first (cheap: no message text, 3 columns
# instead of 20) narrows the rows whose whole-row hash is worth taking
_NARROW = ("conversation_id", "ts", "event")


def _repeated(frame: pl.LazyFrame, row_hash: pl.Expr) -> pl.LazyFrame:
    """The hashes that more than one row of `frame` has."""
    return (
        frame.select(row_hash.alias("hash"))
        .group_by("hash")
        .agg(pl.len().alias("rows"))
        .filter(pl.col("rows") > 1)
        .select("hash")
    )


def _duplicate_candidates(
    frame: pl.LazyFrame,
    visible: Sequence[str],
    counts: Sequence[pl.Expr],
    columns: Sequence[pl.Expr] = (),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(`counts` over `frame` with `columns` added, the rows that may be exact duplicates:
    every copy of every row that occurs more than once, and maybe a few others). Equal rows
    have equal hashes, of the whole row and of any of its columns: when the hashes of a few
    columns are all distinct (counted with `counts`, one pass) no row repeats; else only rows
    whose hash of those columns repeats are hashed whole, and only those whose whole-row hash
    repeats are kept, so their `height - unique()` counts the duplicates exactly. Streamed:
    the rows are never all in memory (the narrow hashes are: 8 bytes a row, sorted)."""
    narrow = [c for c in _NARROW if c in visible] or list(visible)
    narrow_hash = pl.struct(narrow).hash()
    # the highest run id of the sorted hashes is the number of distinct hashes - 1 (null
    # without rows): a sort of 8-byte hashes costs half of `n_unique`'s hash set at 10M rows
    last_run = "__kpictl_last_run"
    counted = (
        frame.with_columns(columns)
        .select(*counts, narrow_hash.sort().rle_id().max().alias(last_run))
        .collect(engine="streaming")
    )
    empty = frame.head(0).select(visible).collect()
    distinct = counted.item(0, last_run)
    if (0 if distinct is None else distinct + 1) == counted.item(0, "rows"):
        return counted.drop(last_run), empty
    counted = counted.drop(last_run)
    hashes = _repeated(frame, narrow_hash).collect(engine="streaming")
    if not hashes.height:
        return counted, empty
    suspects = frame.filter(narrow_hash.is_in(hashes.get_column("hash").implode()))
    row_hash = pl.struct(list(visible)).hash()
    if len(narrow) < len(visible):
        hashes = _repeated(suspects, row_hash).collect(engine="streaming")
        if not hashes.height:
            return counted, empty
    candidates = (
        suspects.filter(row_hash.is_in(hashes.get_column("hash").implode()))
        .select(visible)
        .collect(engine="streaming")
    )
    return counted, candidates


STARTS = (pl.col("ts").min().alias("__start"), pl.len().alias("__events"))
"""Per conversation of the events: its first time and its rows (what the tool calls' timing
check reads)."""

STARTS_ENTRIES = (
    RollupEntry("__kpictl_start", "events", "MIN(ts)", ()),
    RollupEntry("__kpictl_events", "events", "COUNT(*)", ()),
)
"""`STARTS` as rollup entries of the unit table: the report takes them in the facts' own
group-by of the events when that reads every row."""


def tool_call_timing(sources: Sources, starts: pl.DataFrame | None = None) -> list[Finding]:
    """Tool calls before their conversation's first event, and of conversations without
    events (none without both sources). `starts`: as `data_quality`'s."""
    if "events" not in sources or "tool_calls" not in sources:
        return []
    first = (
        sources["events"].group_by("conversation_id").agg(STARTS)
        if starts is None
        else starts.lazy().select("conversation_id", "__start", "__events")
    )
    calls = (
        sources["tool_calls"]
        .select("conversation_id", "ts")
        .join(first, on="conversation_id", how="left")
        .collect()
    )
    before = int(calls.select((pl.col("ts") < pl.col("__start")).sum()).item() or 0)
    # a conversation is known when it has events, timed or not (chat transcripts may have no
    # times: their first event's time is null, the conversation still exists)
    orphans = calls.get_column("__events").null_count()
    return [
        Finding(
            "tool calls before their conversation started",
            "tool_calls",
            "ts",
            before,
            calls.height,
            "a call earlier than the conversation's first event",
        ),
        Finding(
            "tool calls of unknown conversations",
            "tool_calls",
            "conversation_id",
            orphans,
            calls.height,
            "no event has this conversation_id",
        ),
    ]


def kpi_caveats(
    spec: Spec,
    kpi: KpiSpec,
    sources: Sources,
    findings: Sequence[Finding],
    columns: Sequence[ColumnQuality],
) -> tuple[str, ...]:
    """Data-quality findings on the inputs a KPI reads, as short sentences."""
    source_columns = source_column_names(sources)
    inputs, _ = kpi_inputs(spec, kpi, source_columns)
    used_sources = {s for s, _ in inputs}
    caveats: list[str] = []
    for finding in findings:
        if finding.count == 0 or finding.check == "rows after as-of":
            continue
        if (
            (finding.column is None and finding.source in used_sources)
            or ((finding.source, finding.column) in inputs)
            or (
                finding.source == "tool_calls"
                and "tool_calls" in used_sources
                and finding.check.startswith("tool calls")
            )
        ):
            caveats.append(
                f"{finding.source}: {finding.check}: {format_int(finding.count)} of "
                f"{format_int(finding.of)} ({format_share(finding.count, finding.of)})"
            )
    reported = {(f.source, f.column) for f in findings if f.count}
    for quality in columns:
        if (
            quality.expected_on
            and quality.expected_nulls
            and ((quality.source, quality.column) in inputs)
            and ((quality.source, quality.column) not in reported)
        ):
            caveats.append(
                f"{quality.source}.{quality.column} missing where expected: "
                f"{format_int(quality.expected_nulls)} of {format_int(quality.expected_rows)} "
                f"({format_share(quality.expected_nulls, quality.expected_rows)})"
            )
    return tuple(dict.fromkeys(caveats))
