"""`kpictl review`: the human review loop (README "Human review").

Two steps, one file per review round:

* `draw_review_sample` draws a stratified random sample of conversations from the spec's unit
  table (the first rollup table, one row per conversation), proportional or equal allocation,
  deterministic for a seed, with each conversation's first messages (redacted by
  `kpictl.redact.redact_pii`), the agent's self-reported outcome (a boolean fact, by default
  `completed`) and empty label columns; `write_review_csv` writes it.
* `score_review` reads labelled files (`read_review`) and scores each round: the confusion matrix
  of human label × self-report, Cohen's kappa, the stratum-weighted human and self-reported
  rates and their gap, sensitivity and specificity of the self-report, the label-corrected
  (Rogan–Gladen) completion rate, the hallucination rate (Wilson CI), and the trend of the gap
  over rounds. `review_json` / `summary_rows` / `trend_rows` give a score's numbers;
  `kpictl.render.markdown.review_markdown` renders it (the scorecard shows the latest round).

The statistics live in `kpictl.stats` (`cohens_kappa`, `stratified_review`, `round_trend`,
`wilson_interval`).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kpictl import stats
from kpictl.engine.facts import build_facts
from kpictl.engine.interface import ComputeOptions, TimeBound, Window
from kpictl.engine.window import resolve_window, source_rows
from kpictl.errors import InputDataError, UsageError, did_you_mean
from kpictl.io.read import Sources
from kpictl.redact import redact_pii
from kpictl.spec.model import Spec, TableSpec

ALLOCATIONS = ("proportional", "equal")
# The columns of a review file, in order; the stratify-by columns go after `stratum`.
ID = "conversation_id"
HEAD_COLUMNS = (ID, "sampled_at", "allocation", "stratum")
TAIL_COLUMNS = (
    "stratum_size",  # conversations of the stratum in the population (the weight)
    "stratum_self_reported",  # of those, how many the agent reported a success for
    "self_reported",  # the agent's self-reported outcome, 1/0
    "transcript",  # the first messages, "role: text" per line, redacted
    "human_success",  # to fill: 1/0
    "hallucination",  # to fill: 1/0
    "notes",
)
REQUIRED = (ID, "self_reported", "human_success")
TRUE_WORDS = frozenset({"1", "true", "yes"})
FALSE_WORDS = frozenset({"0", "false", "no"})
ALL = "all"
MISSING = "(missing)"


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Reading a labelled file
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewRound:
    """The rows of one review file (one round)."""

    path: str
    sampled_at: dt.datetime | None
    allocation: str | None
    rows: int
    human: tuple[int, ...]  # labelled rows only, in file order
    self_reported: tuple[int, ...]
    strata: tuple[int, ...]  # code into `stratum_names`
    stratum_names: tuple[str, ...]
    stratum_sizes: tuple[float, ...]  # math.inf when the file has no stratum_size
    stratum_self_reported: tuple[int, ...] | None  # None when not in the file
    hallucination: tuple[int, ...]  # rows with a hallucination label
    hallucination_strata: tuple[int, ...]  # their stratum codes
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The round's name: its sample time, else its file name."""
        return self.sampled_at.isoformat() if self.sampled_at else Path(self.path).name


def _label(text: str, where: str, column: str) -> int | None:
    word = text.strip().lower()
    if not word:
        return None
    if word in TRUE_WORDS:
        return 1
    if word in FALSE_WORDS:
        return 0
    raise InputDataError(
        f"{where}: column {column}: {text.strip()!r} is not a label; expected 1/0, true/false, "
        "yes/no (or empty: not labelled yet)"
    )


def _count(text: str, where: str, column: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise InputDataError(f"{where}: column {column}: expected a count, found {text!r}")
    return value


def read_review(path: str | Path) -> ReviewRound:
    """Parse a review file; a malformed value is an error at file:line with its column."""
    name = str(path)
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as exc:
        raise InputDataError(f"{name}: cannot read the review file: {exc.strerror}") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise InputDataError(f"{name}: empty file; expected a review file") from None
        except csv.Error as exc:
            raise InputDataError(f"{name}:1: not CSV: {exc}") from None
        header = [h.strip() for h in header]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise InputDataError(
                f"{name}: no column {', '.join(missing)}; a review file (from `kpictl review "
                f"sample`) has {', '.join(REQUIRED)}"
            )
        col = {c: header.index(c) for c in header}
        human: list[int] = []
        selfs: list[int] = []
        codes: list[int] = []
        halluc: list[int] = []
        halluc_codes: list[int] = []
        names: dict[str, int] = {}
        sizes: dict[str, tuple[int, str]] = {}
        self_counts: dict[str, tuple[int, str]] = {}
        seen: dict[str, str] = {}
        sampled: tuple[str, str] | None = None
        allocation: str | None = None
        rows = 0
        labelled_strata: set[str] = set()
        while True:
            line = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise InputDataError(f"{name}:{line}: not CSV: {exc}") from None
            if not any(cell.strip() for cell in record):
                continue
            where = f"{name}:{line}"
            if len(record) != len(header):
                raise InputDataError(
                    f"{where}: {len(record)} field(s), the header has {len(header)}"
                )
            rows += 1

            def cell(column: str, record: list[str] = record) -> str | None:
                return record[col[column]] if column in col else None

            ident = (cell(ID) or "").strip()
            if not ident:
                raise InputDataError(f"{where}: column {ID}: empty")
            if ident in seen:
                raise InputDataError(
                    f"{where}: column {ID}: {ident!r} again (first at line {seen[ident]})"
                )
            seen[ident] = str(line)
            stratum = (cell("stratum") or "").strip() or ALL
            code = names.setdefault(stratum, len(names))
            size_text = cell("stratum_size")
            if size_text is not None:
                size = _count(size_text, where, "stratum_size")
                if size < 1:
                    raise InputDataError(f"{where}: column stratum_size: expected at least 1")
                first = sizes.setdefault(stratum, (size, where))
                if first[0] != size:
                    raise InputDataError(
                        f"{where}: column stratum_size: {size} for stratum {stratum!r}, "
                        f"{first[0]} at {first[1]}"
                    )
            count_text = cell("stratum_self_reported")
            if count_text is not None and count_text.strip():
                count = _count(count_text, where, "stratum_self_reported")
                first = self_counts.setdefault(stratum, (count, where))
                if first[0] != count:
                    raise InputDataError(
                        f"{where}: column stratum_self_reported: {count} for stratum "
                        f"{stratum!r}, {first[0]} at {first[1]}"
                    )
            when = (cell("sampled_at") or "").strip()
            if when:
                if sampled is None:
                    sampled = (when, where)
                elif sampled[0] != when:
                    raise InputDataError(
                        f"{where}: column sampled_at: {when!r}, {sampled[0]!r} at {sampled[1]}; "
                        "one file is one review round"
                    )
            allocation = allocation or (cell("allocation") or "").strip() or None
            reported = _label(cell("self_reported") or "", where, "self_reported")
            if reported is None:
                raise InputDataError(f"{where}: column self_reported: empty; expected 1/0")
            label = _label(cell("human_success") or "", where, "human_success")
            if "hallucination" in col:
                flag = _label(cell("hallucination") or "", where, "hallucination")
                if flag is not None:
                    halluc.append(flag)
                    halluc_codes.append(code)
            if label is None:
                continue
            labelled_strata.add(stratum)
            human.append(label)
            selfs.append(reported)
            codes.append(code)
    if rows == 0:
        raise InputDataError(f"{name}: no rows; expected one row per sampled conversation")
    order = sorted(names, key=names.__getitem__)
    if sizes and len(sizes) != len(names):
        lacking = next(s for s in order if s not in sizes)
        raise InputDataError(f"{name}: stratum {lacking!r} has no stratum_size")
    if not sizes and len(names) > 1:
        raise InputDataError(
            f"{name}: {len(names)} strata but no stratum_size column to weight them by"
        )
    for stratum, (count, where) in self_counts.items():
        if sizes and count > sizes[stratum][0]:
            raise InputDataError(
                f"{where}: column stratum_self_reported: {count} is more than the stratum's "
                f"{sizes[stratum][0]} conversations"
            )
    notes: list[str] = []
    unlabelled = rows - len(human)
    if unlabelled:
        notes.append(f"{unlabelled} of {rows} row(s) have no human_success label: left out")
    dropped = [s for s in order if s not in labelled_strata]
    if dropped and len(dropped) < len(order):
        weight = sum(sizes[s][0] for s in dropped) if sizes else 0
        notes.append(
            f"{len(dropped)} stratum/strata have no labelled row ({weight} conversations): "
            "the weighted estimates cover the other strata only"
        )
    when_value = None
    if sampled is not None:
        try:
            when_value = dt.datetime.fromisoformat(sampled[0])
        except ValueError:
            raise InputDataError(
                f"{sampled[1]}: column sampled_at: {sampled[0]!r} is not an ISO-8601 time"
            ) from None
    return ReviewRound(
        path=name,
        sampled_at=when_value,
        allocation=allocation,
        rows=rows,
        human=tuple(human),
        self_reported=tuple(selfs),
        strata=tuple(codes),
        stratum_names=tuple(order),
        stratum_sizes=tuple(float(sizes[s][0]) if sizes else math.inf for s in order),
        stratum_self_reported=(
            tuple(self_counts[s][0] for s in order) if len(self_counts) == len(order) else None
        ),
        hallucination=tuple(halluc),
        hallucination_strata=tuple(halluc_codes),
        notes=tuple(notes),
    )


# ----------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HallucinationRate:
    """Rows labelled hallucination = 1 of the rows with that label (unweighted), Wilson CI;
    and, when those rows span several strata, the stratum-weighted rate (normal CI)."""

    count: int
    n: int
    rate: float
    low: float
    high: float
    weighted: stats.Interval | None = None


@dataclass(frozen=True)
class RoundScore:
    """One scored round."""

    round: ReviewRound
    confusion: tuple[tuple[int, int], tuple[int, int]]  # rows human 1/0, columns agent 1/0
    kappa: stats.KappaEstimate
    estimates: stats.ReviewEstimates
    hallucination: HallucinationRate | None
    notes: tuple[str, ...] = ()

    @property
    def labelled(self) -> int:
        """Rows with a human_success label."""
        return len(self.round.human)


@dataclass(frozen=True)
class ReviewScore:
    """Every round, oldest first, and the trend of the self-report gap over them."""

    rounds: tuple[RoundScore, ...]
    trend: stats.TrendEstimate | None
    alpha: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def latest(self) -> RoundScore:
        """The most recent round."""
        return self.rounds[-1]

    @property
    def trend_verdict(self) -> str:
        """Whether the gap between self-reported and human-labelled success widens."""
        if len(self.rounds) < 2:
            return "one round: no trend yet"
        if self.trend is None:
            return (
                "no trend test: a round has no disagreement at all, so its gap has no "
                "standard error"
            )
        slope = self.trend.slope.estimate
        level = f"p = {self.trend.p_value:.3f}"
        per_round = f"{slope * 100:+.1f} pp per round"
        if self.trend.p_value < self.alpha:
            word = "widens" if slope > 0 else "narrows"
            return f"the gap {word} ({per_round}, {level})"
        return f"no clear trend in the gap ({per_round}, {level})"


def score_round(review: ReviewRound, alpha: float = 0.05) -> RoundScore:
    """Agreement and the weighted rates of one round (see module docstring)."""
    if not review.human:
        raise InputDataError(
            f"{review.path}: no row has a human_success label yet; label rows 1/0 (or yes/no) "
            "and score again"
        )
    h = np.asarray(review.human)
    s = np.asarray(review.self_reported)
    tp = int(np.sum((h == 1) & (s == 1)))
    fn = int(np.sum((h == 1) & (s == 0)))
    fp = int(np.sum((h == 0) & (s == 1)))
    tn = int(np.sum((h == 0) & (s == 0)))
    kappa = stats.cohens_kappa([[tp, fn], [fp, tn]], alpha)
    logged = None
    notes = list(review.notes)
    if review.stratum_self_reported is not None and not math.isinf(review.stratum_sizes[0]):
        present = sorted(set(review.strata))
        logged = sum(review.stratum_self_reported[i] for i in present) / sum(
            review.stratum_sizes[i] for i in present
        )
    else:
        notes.append(
            "no stratum_self_reported column: the logged rate is estimated from the rows, and "
            "its sampling error enters the corrected rate's CI"
        )
    estimates = stats.stratified_review(
        h, s, review.strata, review.stratum_sizes, logged_rate=logged, alpha=alpha
    )
    halluc = None
    if review.hallucination:
        count, n = sum(review.hallucination), len(review.hallucination)
        low, high = stats.wilson_interval(count, n, alpha)
        weighted = None
        if len(set(review.hallucination_strata)) > 1:
            weighted = stats.stratified_proportion(
                review.hallucination, review.hallucination_strata, review.stratum_sizes, alpha
            )
        halluc = HallucinationRate(count, n, count / n, low, high, weighted)
    return RoundScore(
        review,
        ((tp, fn), (fp, tn)),
        kappa,
        estimates,
        halluc,
        tuple(notes + list(estimates.warnings)),
    )


def score_review(paths: Sequence[str | Path], alpha: float = 0.05) -> ReviewScore:
    """Score every review file (one per round), oldest first, and the gap's trend."""
    if not paths:
        raise UsageError("no review file: pass one CSV per review round")
    rounds = [read_review(p) for p in paths]
    notes: list[str] = []
    if all(r.sampled_at is not None for r in rounds):
        rounds.sort(key=lambda r: _utc(r.sampled_at))
    elif len(rounds) > 1:
        notes.append("rounds ordered as given: not every file has a sampled_at column")
    scores = [score_round(r, alpha) for r in rounds]
    trend = stats.round_trend(
        [s.estimates.gap.estimate for s in scores], [s.estimates.gap.se for s in scores], alpha
    )
    return ReviewScore(tuple(scores), trend, alpha, tuple(notes))


def _utc(value: dt.datetime | None) -> dt.datetime:
    assert value is not None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


# ----------------------------------------------------------------------------------------------
# Rendering (pure: text and dicts; the rich table is kpictl.render.table's)
# ----------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _pp(value: float) -> str:
    return f"{value * 100:+.1f} pp"


def _estimate(interval: stats.Interval | None) -> float | None:
    return None if interval is None else interval.estimate


def _ci(interval: stats.Interval | None, fmt: Any = _pct) -> str:
    if interval is None:
        return "—"
    return f"{fmt(interval.low)} to {fmt(interval.high)}"


def summary_rows(score: RoundScore) -> list[tuple[str, str, str]]:
    """(measure, value, CI) rows of one round, in the order every format shows them."""
    e = score.estimates
    k = score.kappa
    logged = "population" if e.logged_rate_known else "labelled rows, weighted"
    rows = [
        ("labelled conversations", f"{score.labelled} of {score.round.rows}", ""),
        (
            "self-reported success (labelled rows)",
            _pct(e.self_reported.estimate),
            _ci(e.self_reported),
        ),
        ("human-labelled success", _pct(e.human.estimate), _ci(e.human)),
        ("gap (self-reported − human)", _pp(e.gap.estimate), _ci(e.gap, _pp)),
        ("sensitivity of the self-report", _pct(_estimate(e.sensitivity)), _ci(e.sensitivity)),
        ("specificity of the self-report", _pct(_estimate(e.specificity)), _ci(e.specificity)),
        (
            "Cohen's kappa (human vs self-report)",
            "—" if k.kappa is None else f"{k.kappa:.3f}",
            "—" if k.low is None else f"{k.low:.3f} to {k.high:.3f}",
        ),
        (f"logged completion rate ({logged})", _pct(e.logged_rate), ""),
        (
            "label-corrected completion rate (Rogan–Gladen)",
            _pct(_estimate(e.corrected)),
            _ci(e.corrected),
        ),
    ]
    if score.hallucination is not None:
        hr = score.hallucination
        rows.append(
            (
                f"hallucination rate ({hr.count} of {hr.n} labelled, unweighted)",
                _pct(hr.rate),
                f"{_pct(hr.low)} to {_pct(hr.high)}",
            )
        )
        if hr.weighted is not None:
            rows.append(
                (
                    "hallucination rate, stratum-weighted",
                    _pct(hr.weighted.estimate),
                    _ci(hr.weighted),
                )
            )
    return rows


def trend_rows(score: ReviewScore) -> list[tuple[str, str, str, str, str, str]]:
    """(round, labelled, self-reported, human, gap, gap CI) per round, oldest first."""
    return [
        (
            s.round.label,
            str(s.labelled),
            _pct(s.estimates.self_reported.estimate),
            _pct(s.estimates.human.estimate),
            _pp(s.estimates.gap.estimate),
            _ci(s.estimates.gap, _pp),
        )
        for s in score.rounds
    ]


def method_note(score: ReviewScore) -> str:
    """How the numbers were made, in one paragraph."""
    level = f"{(1 - score.alpha) * 100:g}%"
    return (
        f"{level} CIs. Rates are stratum-weighted (weights stratum_size, finite-population "
        "correction); SEs by Taylor linearisation over strata. Corrected rate: Rogan–Gladen "
        "(p_obs + Sp − 1)/(Se + Sp − 1) clipped to [0, 1], CI by the delta method carrying the "
        "sampling error of Se and Sp. Kappa: unweighted, on the labelled rows, Fleiss–Cohen–"
        "Everitt SE. Hallucination: Wilson interval on the labelled rows, and the "
        "stratum-weighted rate when they span several strata. Trend: inverse-variance weighted "
        "slope of the gap over rounds."
    )


def _interval_json(interval: stats.Interval | None) -> dict[str, float] | None:
    if interval is None:
        return None
    return {
        "estimate": interval.estimate,
        "se": interval.se,
        "low": interval.low,
        "high": interval.high,
    }


def review_json(score: ReviewScore) -> dict[str, Any]:
    """Every round's numbers as plain JSON values."""
    rounds = []
    for s in score.rounds:
        e = s.estimates
        (tp, fn), (fp, tn) = s.confusion
        rounds.append(
            {
                "round": s.round.label,
                "file": s.round.path,
                "sampled_at": s.round.sampled_at.isoformat() if s.round.sampled_at else None,
                "allocation": s.round.allocation,
                "rows": s.round.rows,
                "labelled": s.labelled,
                "confusion": {
                    "human_success_agent_success": tp,
                    "human_success_agent_failure": fn,
                    "human_failure_agent_success": fp,
                    "human_failure_agent_failure": tn,
                },
                "kappa": {
                    "estimate": s.kappa.kappa,
                    "se": s.kappa.se,
                    "low": s.kappa.low,
                    "high": s.kappa.high,
                    "observed_agreement": s.kappa.observed,
                    "expected_agreement": s.kappa.expected,
                },
                "self_reported": _interval_json(e.self_reported),
                "human": _interval_json(e.human),
                "gap": _interval_json(e.gap),
                "sensitivity": _interval_json(e.sensitivity),
                "specificity": _interval_json(e.specificity),
                "logged_rate": e.logged_rate,
                "logged_rate_source": "population" if e.logged_rate_known else "sample",
                "corrected": _interval_json(e.corrected),
                "corrected_unclipped": e.corrected_unclipped,
                "corrected_method": "rogan_gladen_delta",
                "hallucination": None
                if s.hallucination is None
                else {
                    "count": s.hallucination.count,
                    "n": s.hallucination.n,
                    "rate": s.hallucination.rate,
                    "low": s.hallucination.low,
                    "high": s.hallucination.high,
                    "method": "wilson",
                    "weighted": _interval_json(s.hallucination.weighted),
                },
                "notes": list(s.notes),
            }
        )
    trend = score.trend
    return {
        "alpha": score.alpha,
        "rounds": rounds,
        "trend": None
        if trend is None
        else {
            "slope_per_round": _interval_json(trend.slope),
            "p_value": trend.p_value,
            "rounds": trend.rounds,
        },
        "trend_verdict": score.trend_verdict,
        "notes": list(score.notes),
    }
