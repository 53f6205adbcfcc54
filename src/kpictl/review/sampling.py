"""`kpictl review sample`: a stratified random sample of conversations from the spec's unit
table (proportional or equal allocation, deterministic for a seed), each with its first messages
redacted, the agent's self-reported outcome and empty label columns; `write_review_csv`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from kpictl.engine.facts import build_facts
from kpictl.engine.interface import ComputeOptions, TimeBound, Window
from kpictl.engine.window import resolve_window, source_rows
from kpictl.errors import UsageError, did_you_mean
from kpictl.io.read import Sources
from kpictl.redact import redact_pii
from kpictl.review.columns import ALL, ALLOCATIONS, HEAD_COLUMNS, ID, MISSING, TAIL_COLUMNS
from kpictl.spec.model import Spec, TableSpec


@dataclass(frozen=True)
class SampleOptions:
    """What `kpictl review sample` is asked for."""

    size: int = 200
    stratify_by: tuple[str, ...] = ()
    allocation: str = "proportional"
    seed: int = 0
    self_reported: str = "completed"
    messages: int = 6
    since: TimeBound | None = None
    until: TimeBound | None = None
    as_of: dt.datetime | None = None


@dataclass(frozen=True)
class ReviewSample:
    """A drawn sample: the rows of the review file and what was drawn from what."""

    frame: pl.DataFrame
    population: int
    strata: int
    allocation: str
    seed: int
    notes: tuple[str, ...] = ()


def allocate(sizes: Sequence[int], total: int, allocation: str) -> list[int]:
    """Rows per stratum for a sample of `total` from strata of `sizes` (total ≤ Σ sizes).

    proportional: total·N_h/N rounded by largest remainder (Hamilton; ties to the earlier
    stratum). equal: total/H each, a stratum smaller than its share taken whole and the rest
    shared again among the others; a remainder goes one row each to the earlier strata."""
    if allocation not in ALLOCATIONS:
        raise UsageError(f"--allocation {allocation}: expected one of {', '.join(ALLOCATIONS)}")
    population = sum(sizes)
    if total > population:
        raise ValueError("total exceeds the population")
    if allocation == "proportional":
        quotas = [total * n / population for n in sizes]
        counts = [math.floor(q) for q in quotas]
        order = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - counts[i]), i))
        for i in order[: total - sum(counts)]:
            counts[i] += 1
        return counts
    counts = [0] * len(sizes)
    left = total
    while left > 0:
        open_ = [i for i, n in enumerate(sizes) if counts[i] < n]
        share = left // len(open_)
        if share == 0:
            for i in open_[:left]:
                counts[i] += 1
            break
        for i in open_:
            take = min(share, sizes[i] - counts[i])
            counts[i] += take
            left -= take
    return counts


def _check_columns(options: SampleOptions, facts: pl.DataFrame, table: TableSpec) -> None:
    known = facts.columns
    for option, name in [("--self-reported", options.self_reported)] + [
        ("--stratify-by", c) for c in options.stratify_by
    ]:
        if name not in known:
            raise UsageError(
                f"{option} {name}: not a column of table {table.name!r}{did_you_mean(name, known)}"
            )
    for name in options.stratify_by:
        if name in HEAD_COLUMNS or name in TAIL_COLUMNS:
            raise UsageError(
                f"--stratify-by {name}: the review file has a column of that name already"
            )
    column = facts.get_column(options.self_reported)
    if column.null_count():
        raise UsageError(
            f"--self-reported {options.self_reported}: {column.null_count()} conversation(s) "
            "have no value; name a column with a value for every conversation"
        )
    if column.dtype != pl.Boolean:
        bad = (
            column.filter(~column.cast(pl.Float64).is_in([0.0, 1.0]))
            if column.dtype.is_numeric()
            else column
        )
        if bad.len():
            raise UsageError(
                f"--self-reported {options.self_reported}: expected a true/false (or 1/0) "
                f"column, found {bad[0]!r}"
            )


def _stratum_labels(facts: pl.DataFrame, by: Sequence[str]) -> pl.Expr:
    if not by:
        return pl.lit(ALL)
    return pl.concat_str(
        [pl.lit(f"{c}=") + pl.col(c).cast(pl.String).fill_null(MISSING) for c in by],
        separator="; ",
    )


def _transcripts(
    sources: Sources, key: str, ids: Sequence[str], messages: int, window: Window
) -> tuple[dict[str, str], str | None]:
    if "events" not in sources:
        return {}, "no `events` source: transcripts are empty"
    rows = source_rows(sources, "events", window)  # up to as-of, as compute reads them
    schema = rows.collect_schema()
    if "text" not in schema or key not in schema:
        return {}, f"the events have no `text` (or `{key}`) column: transcripts are empty"
    rows = rows.filter(pl.col(key).is_in(list(ids)) & pl.col("text").is_not_null())
    if "event" in schema:
        rows = rows.filter(pl.col("event") == "message")
    order = [key]
    if "ts" in schema:
        order.append("ts")
    role = pl.col("role").cast(pl.String).fill_null("?") if "role" in schema else pl.lit("?")
    lines = (
        rows.sort(order, maintain_order=True, nulls_last=True)
        .group_by(key, maintain_order=True)
        .head(messages)
        .select(pl.col(key), (role + pl.lit(": ") + pl.col("text").cast(pl.String)).alias("line"))
        .group_by(key, maintain_order=True)
        .agg(pl.col("line").str.join("\n"))
        .collect()
    )
    return {
        str(k): redact_pii(v)
        for k, v in zip(lines[key].to_list(), lines["line"].to_list(), strict=True)
    }, None


def draw_review_sample(spec: Spec, sources: Sources, options: SampleOptions) -> ReviewSample:
    """A stratified random sample of the unit table's conversations to label (see module)."""
    if options.allocation not in ALLOCATIONS:
        raise UsageError(
            f"--allocation {options.allocation}: expected one of {', '.join(ALLOCATIONS)}"
        )
    if options.size < 1:
        raise UsageError(f"--size {options.size}: expected a positive number of conversations")
    if options.messages < 1:
        raise UsageError(f"--messages {options.messages}: expected a positive number")
    table = spec.require_primary_table()
    key = table.key or ID
    window = resolve_window(
        spec, sources, ComputeOptions(since=options.since, until=options.until, as_of=options.as_of)
    )
    facts = build_facts(spec, sources, window, [table.name])[table.name]
    if table.time is not None and window.since is not None:
        facts = facts.filter(pl.col(table.time) >= window.since)
    if table.time is not None and window.until is not None:
        facts = facts.filter(pl.col(table.time) < window.until)
    frame = facts.collect()
    _check_columns(options, frame, table)
    population = frame.height
    if options.size > population:
        raise UsageError(
            f"--size {options.size}: table {table.name!r} holds {population} conversation(s) in "
            f"the window; ask for at most {population}"
        )
    frame = frame.select(
        pl.col(key).cast(pl.String).alias(ID),
        _stratum_labels(frame, options.stratify_by).alias("stratum"),
        *[pl.col(c).cast(pl.String) for c in options.stratify_by],
        pl.col(options.self_reported).cast(pl.Int64).alias("self_reported"),
    ).sort(["stratum", ID])
    strata = frame.group_by("stratum", maintain_order=True).agg(
        pl.len().alias("stratum_size"), pl.col("self_reported").sum().alias("stratum_self_reported")
    )
    sizes = strata.get_column("stratum_size").to_list()
    counts = allocate(sizes, options.size, options.allocation)
    rng = np.random.default_rng(options.seed)
    chosen: list[int] = []
    start = 0
    for size, count in zip(sizes, counts, strict=True):
        picks: list[int] = (
            np.sort(rng.choice(size, size=count, replace=False)).tolist() if count else []
        )
        chosen.extend(start + i for i in picks)
        start += size
    sample = frame[chosen].join(strata, on="stratum", how="left", maintain_order="left")
    ids = sample.get_column(ID).to_list()
    texts, note = _transcripts(sources, key, ids, options.messages, window)
    sample = sample.with_columns(
        pl.lit(window.as_of.isoformat()).alias("sampled_at"),
        pl.lit(options.allocation).alias("allocation"),
        pl.Series("transcript", [texts.get(i, "") for i in ids], dtype=pl.String),
        *[
            pl.lit(None, dtype=pl.String).alias(c)
            for c in ("human_success", "hallucination", "notes")
        ],
    ).select([*HEAD_COLUMNS, *options.stratify_by, *TAIL_COLUMNS])
    notes = [
        f"{options.allocation} allocation: {options.size} of {population} conversations in "
        f"{len(sizes)} stratum/strata, seed {options.seed}; stratum_size weights the scores"
    ]
    empty = [n for n, c in zip(sizes, counts, strict=True) if c == 0]
    if empty:
        notes.append(
            f"{len(empty)} stratum/strata ({sum(empty)} conversations) got no row: "
            "the scores will not cover them"
        )
    if note:
        notes.append(note)
    return ReviewSample(
        sample, population, len(sizes), options.allocation, options.seed, tuple(notes)
    )


def write_review_csv(sample: ReviewSample, path: Path) -> None:
    """The review file: plain CSV, one header row, one row per sampled conversation."""
    sample.frame.write_csv(path)
