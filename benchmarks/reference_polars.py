"""A hand-written polars implementation of kpictl's default scorecard (overall only).

It is the speed (and correctness) yardstick for `kpictl compute`: written from the KPI
definitions, not from kpictl's engine or its YAML, and tuned by hand:

* the streaming engine (Parquet scanned lazily; JSONL parsed once, only the columns used, the
  timestamps with one fixed ISO format and a general parse only if that fails);
* the per-conversation pass is one `group_by` of plain `min`/`max`/`sum`/`any`/`count`/`first`
  reductions, every conditional input (`when(cond).then(x)`) computed row-wise before it (no
  `filter` inside `agg`), and the tool calls' per-conversation totals joined to it;
* the 24 h reopen window is a second pass over the reopen rows only (joined to `resolved_at` of
  the conversations that have a reopen); the first escalation's reason comes from the
  escalation rows only;
* repeat contacts: per (user, intent), the time-ordered list of starts; each start's next
  strictly later start (ties skipped) by a shift and a backward fill — no window function;
* one query collected at a time where collect_all would double the peak memory.

Usage: python benchmarks/reference_polars.py EVENTS_PATH TOOL_CALLS_PATH [--as-of ISO]

Paths are files or folders (searched recursively) of .parquet/.pq or .jsonl/.ndjson(.gz)
files. Prints JSON: {"as_of": ..., "results": [...]} where `results` has the shape of
`kpictl compute --format json`'s results (kpi, cohort {}, value, n, pending, and `breakdown` on
breakdown rows).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl

HUMAN_COST_PER_MINUTE = 0.75
GOOD_CSAT = 4.0
DAY_US = 86_400_000_000
UTC_US = pl.Datetime("us", "UTC")

EVENT_COLUMNS: dict[str, pl.DataType] = {
    "conversation_id": pl.String(),
    "ts": UTC_US,
    "event": pl.String(),
    "role": pl.String(),
    "input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "cost_usd": pl.Float64(),
    "latency_ms": pl.Float64(),
    "escalation_reason": pl.String(),
    "csat": pl.Float64(),
    "human_minutes": pl.Float64(),
    "policy_violation": pl.Boolean(),
    "user_id": pl.String(),
    "intent": pl.String(),
}
TOOL_CALL_COLUMNS: dict[str, pl.DataType] = {
    "conversation_id": pl.String(),
    "ts": UTC_US,
    "status": pl.String(),
    "cost_usd": pl.Float64(),
}

# The order of `kpictl compute`'s output for the default spec.
KPI_ORDER = (
    "task_completion_rate",
    "containment_rate",
    "containment_with_quality",
    "time_to_resolution_p50",
    "time_to_resolution_p95",
    "escalation_rate",
    "csat_mean",
    "repeat_contact_rate_7d",
    "tool_call_success_rate",
    "agent_latency_p95",
    "cost_per_successful_task",
    "cost_per_task",
    "tokens_per_task",
    "tool_calls_per_task",
    "human_minutes_per_task",
    "policy_violation_rate",
)

_PARQUET = (".parquet", ".pq")
_JSONL = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_FAST_ISO = "%Y-%m-%dT%H:%M:%SZ"
_ISO_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d",
)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _files(path: str | Path) -> tuple[list[Path], str]:
    """The log files under `path` and their format ('parquet' or 'jsonl')."""
    root = Path(path)
    candidates = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    parquet = [p for p in candidates if p.name.lower().endswith(_PARQUET)]
    jsonl = [p for p in candidates if p.name.lower().endswith(_JSONL)]
    if parquet and jsonl:
        raise SystemExit(f"{path}: mixes Parquet and JSONL files")
    if not parquet and not jsonl:
        raise SystemExit(f"{path}: no .parquet or .jsonl files")
    return (parquet, "parquet") if parquet else (jsonl, "jsonl")


def _timestamps(raw: pl.Series) -> pl.Series:
    """ISO-8601 text → UTC timestamps: one fixed format first, the general formats if needed."""
    fast = raw.str.to_datetime(_FAST_ISO, strict=False, time_zone="UTC", time_unit="us")
    if fast.null_count() == raw.null_count():
        return fast
    text = raw.str.strip_chars()
    tries = [
        text.str.to_datetime(f, strict=False, time_zone="UTC", time_unit="us") for f in _ISO_FORMATS
    ]
    parsed = pl.select(pl.coalesce([pl.lit(fast), *[pl.lit(t) for t in tries]])).to_series()
    if parsed.null_count() != raw.null_count():
        bad = raw.filter(parsed.is_null() & raw.is_not_null())[0]
        raise SystemExit(f"cannot parse timestamp {bad!r}")
    return parsed


def _canonical(frame: pl.LazyFrame, columns: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Select `columns` (missing ones as nulls), integers widened, timestamps in UTC."""
    schema = frame.collect_schema()
    exprs = []
    for name, dtype in columns.items():
        if name not in schema:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
            continue
        have = schema[name]
        if have == dtype:
            exprs.append(pl.col(name))
        elif name == "ts" and isinstance(have, pl.Datetime):
            zoned = pl.col(name) if have.time_zone else pl.col(name).dt.replace_time_zone("UTC")
            exprs.append(zoned.dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
        else:
            exprs.append(pl.col(name).cast(dtype))
    return frame.select(exprs)


def read_source(path: str | Path, columns: dict[str, pl.DataType]) -> tuple[pl.LazyFrame, str]:
    """A source as a LazyFrame of `columns`: a Parquet scan, or JSONL parsed once in memory."""
    files, fmt = _files(path)
    if fmt == "parquet":
        return _canonical(pl.scan_parquet(files), columns), fmt
    text_schema = {n: (pl.String() if n == "ts" else d) for n, d in columns.items()}
    parts = []
    for file in files:
        if file.name.lower().endswith(".gz"):
            import gzip
            import io

            source: Any = io.BytesIO(gzip.decompress(file.read_bytes()))
        else:
            source = file
        parts.append(pl.read_ndjson(source, schema=text_schema))
    frame = pl.concat(parts) if len(parts) > 1 else parts[0]
    frame = frame.with_columns(_timestamps(frame.get_column("ts")).alias("ts"))
    return frame.lazy(), fmt


# ---------------------------------------------------------------------------------------------
# KPIs
# ---------------------------------------------------------------------------------------------


FAR_FUTURE = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
_TIMING = bool(os.environ.get("REFERENCE_TIMING"))


class _Clock:
    """Stage timings on stderr when REFERENCE_TIMING is set."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        if _TIMING:
            print(f"reference: {stage:<28} {now - self.last:7.3f} s", file=sys.stderr)
        self.last = now


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if not den or num is None else num / den


def compute(
    events_path: str | Path, tool_calls_path: str | Path, as_of: dt.datetime | None = None
) -> tuple[dt.datetime, list[dict[str, Any]]]:
    """(as_of, result rows) for the default scorecard, overall."""
    clock = _Clock()
    ev, _ = read_source(events_path, EVENT_COLUMNS)
    tc, _ = read_source(tool_calls_path, TOOL_CALL_COLUMNS)
    clock.lap("read (JSONL only)")
    if as_of is not None:
        as_of = as_of.astimezone(dt.UTC)
        ev = ev.filter(pl.col("ts") <= as_of)
        tc = tc.filter(pl.col("ts") <= as_of)

    cid = "conversation_id"
    ts = pl.col("ts")
    event = pl.col("event")

    # Pass 1 (all rows): one row per conversation. Every conditional input is computed
    # row-wise first, so that the group-by runs plain min/max/sum/any/count reductions.
    rows = ev.select(
        cid,
        "ts",
        "cost_usd",
        "human_minutes",
        "user_id",
        "intent",
        (pl.col("input_tokens").fill_null(0) + pl.col("output_tokens").fill_null(0)).alias(
            "tokens"
        ),
        pl.col("policy_violation").fill_null(False),
        pl.when(event == "resolution").then(ts).alias("resolution_ts"),
        (event == "escalation").alias("is_escalation"),
        (event == "reopen").alias("is_reopen"),
        pl.when(event == "feedback").then(pl.col("csat")).alias("feedback_csat"),
    )
    conversations = rows.group_by(cid).agg(
        ts.min().alias("started_at"),
        ts.max().alias("last_ts"),
        pl.col("resolution_ts").min().alias("resolved_at"),
        pl.col("is_escalation").any().alias("escalated"),
        pl.col("is_reopen").any().alias("has_reopen"),
        pl.col("tokens").sum(),
        pl.col("cost_usd").sum().alias("event_cost"),
        pl.col("human_minutes").sum(),
        pl.col("policy_violation").any().alias("violation"),
        pl.col("feedback_csat").sum().alias("csat_sum"),
        pl.col("feedback_csat").count().alias("csat_count"),
        pl.col("user_id").drop_nulls().first(),  # constant per conversation
        pl.col("intent").drop_nulls().first(),
    )
    tools = tc.group_by(cid).agg(
        pl.len().alias("tool_calls"),
        pl.col("cost_usd").sum().alias("tool_cost"),
        ts.max().alias("tool_last_ts"),
    )
    facts_q = conversations.join(tools, on=cid, how="left")
    # Tool calls of conversations without events still count for the tool success rate.
    tools_q = tc.select(
        pl.len().alias("calls"),
        (pl.col("status") == "ok").sum().alias("ok"),
        ts.max().alias("last_ts"),
    )
    latency_q = ev.filter((event == "message") & (pl.col("role") == "agent")).select(
        pl.len().alias("turns"),
        pl.col("latency_ms").quantile(0.95, "linear").alias("p95"),
    )
    # The reason of each conversation's earliest escalation (file order on ties), counted.
    reasons_q = ev.filter(event == "escalation").select(cid, "ts", "escalation_reason")
    reopen_q = ev.filter(event == "reopen").select(cid, "ts")
    # One query at a time: collect_all would run them together (twice the peak memory).
    facts = facts_q.collect(engine="streaming")
    tool_totals, latency, escalation_rows, reopens = pl.collect_all(
        [tools_q, latency_q, reasons_q, reopen_q], engine="streaming"
    )
    clock.lap("pass 1: per conversation")

    if as_of is None:
        candidates = [facts.get_column("last_ts").max(), tool_totals.item(0, "last_ts")]
        as_of = max(v for v in candidates if v is not None)  # type: ignore[type-var]
    assert isinstance(as_of, dt.datetime)
    cutoff_24h = as_of - dt.timedelta(hours=24)
    cutoff_7d = as_of - dt.timedelta(days=7)

    # Pass 2 (reopen rows only): reopened within 24 h of the first resolution.
    reopened = (
        reopens.lazy()
        .join(
            facts.lazy().filter(pl.col("has_reopen")).select(cid, "resolved_at"),
            on=cid,
            how="inner",
        )
        .filter(
            (ts > pl.col("resolved_at")) & (ts <= pl.col("resolved_at") + pl.duration(hours=24))
        )
        .select(pl.col(cid).unique())
        .collect()
        .get_column(cid)
    )
    reasons = (
        escalation_rows.lazy()
        .group_by(cid)
        .agg(pl.col("escalation_reason").get(ts.arg_min()).alias("reason"))
        .group_by("reason")
        .agg(pl.len().alias("count"))
        .sort("reason", nulls_last=False)
        .collect()
    )
    clock.lap("pass 2: reopens, reasons")

    started = pl.col("started_at")
    completed = pl.col("resolved_at").is_not_null() & ~pl.col(cid).is_in(reopened.implode())
    settled = pl.coalesce("resolved_at", "started_at") <= cutoff_24h
    cost = (
        pl.col("event_cost")
        + pl.col("tool_cost").fill_null(0.0)
        + pl.col("human_minutes") * HUMAN_COST_PER_MINUTE
    )
    csat = pl.col("csat_sum") / pl.col("csat_count")
    contained = ~pl.col("escalated") & (pl.col("human_minutes") == 0)
    ttr = (pl.col("resolved_at") - started).dt.total_microseconds() / 1e6
    flags = facts.lazy().select(
        settled.alias("settled"),
        completed.alias("completed"),
        contained.alias("contained"),
        pl.when(pl.col("csat_count") > 0).then(csat).alias("csat"),
        cost.alias("cost"),
        ttr.alias("ttr_s"),
        "escalated",
        "violation",
        "tokens",
        pl.col("tool_calls").fill_null(0),
        "human_minutes",
    )
    s, c = pl.col("settled"), pl.col("completed")
    quality = (
        s & pl.col("contained") & c & (pl.col("csat").is_null() | (pl.col("csat") >= GOOD_CSAT))
    )
    kpis_q = flags.select(
        pl.len().alias("all"),
        s.sum().alias("settled"),
        (s & c).sum().alias("completed"),
        (s & pl.col("contained")).sum().alias("contained"),
        quality.sum().alias("quality"),
        pl.when(s).then(pl.col("cost")).sum().alias("cost_settled"),
        pl.col("escalated").sum().alias("escalated"),
        pl.col("violation").sum().alias("violations"),
        pl.col("cost").mean().alias("mean_cost"),
        pl.col("tokens").cast(pl.Float64).mean().alias("mean_tokens"),
        pl.col("tool_calls").cast(pl.Float64).mean().alias("mean_tool_calls"),
        pl.col("human_minutes").mean().alias("mean_human_minutes"),
        pl.col("ttr_s").count().alias("resolved"),
        pl.col("ttr_s").quantile(0.5, "linear").alias("ttr_p50"),
        pl.col("ttr_s").quantile(0.95, "linear").alias("ttr_p95"),
        pl.col("csat").count().alias("with_csat"),
        pl.col("csat").mean().alias("csat_mean"),
    )
    # Repeat contacts: per (user, intent), starts in time order (presorted; a group-by keeps
    # the row order within each group); each start's next STRICTLY later start, ties skipped.
    with_user = facts.lazy().filter(pl.col("user_id").is_not_null())
    g = pl.col("g")
    later = started.shift(-1)
    repeat_q = (
        with_user.filter(pl.col("intent").is_not_null())
        .select("user_id", "intent", "started_at")
        .sort("started_at")
        .group_by("user_id", "intent")
        .agg(started)
        .select("started_at")
        .with_row_index("g")
        .explode("started_at")
        .select(
            started,
            pl.when(g != g.shift(-1))
            .then(pl.lit(FAR_FUTURE, dtype=UTC_US))
            .when(later > started)
            .then(later)
            .otherwise(None)
            .backward_fill()
            .alias("next_start"),
        )
        .select(
            ((started <= cutoff_7d) & (pl.col("next_start") <= started + pl.duration(days=7)))
            .sum()
            .alias("repeated")
        )
    )
    mature_q = with_user.select(
        (started <= cutoff_7d).sum().alias("mature"),
        (started > cutoff_7d).sum().alias("immature"),
    )
    k, repeat, mature = pl.collect_all([kpis_q, repeat_q, mature_q])
    clock.lap("KPIs, repeat contacts")

    c_ = k.row(0, named=True)
    t_ = tool_totals.row(0, named=True)
    lat = latency.row(0, named=True)
    n_all, n_settled = c_["all"], c_["settled"]
    unsettled = n_all - n_settled
    n_mature, n_immature = mature.item(0, "mature"), mature.item(0, "immature")
    values: dict[str, tuple[float | None, int, int]] = {
        "task_completion_rate": (_ratio(c_["completed"], n_settled), n_settled, unsettled),
        "containment_rate": (_ratio(c_["contained"], n_settled), n_settled, unsettled),
        "containment_with_quality": (_ratio(c_["quality"], n_settled), n_settled, unsettled),
        "time_to_resolution_p50": (c_["ttr_p50"], c_["resolved"], 0),
        "time_to_resolution_p95": (c_["ttr_p95"], c_["resolved"], 0),
        "escalation_rate": (_ratio(c_["escalated"], n_all), n_all, 0),
        "csat_mean": (c_["csat_mean"], c_["with_csat"], 0),
        "repeat_contact_rate_7d": (
            _ratio(repeat.item(0, "repeated"), n_mature),
            n_mature,
            n_immature,
        ),
        "tool_call_success_rate": (_ratio(t_["ok"], t_["calls"]), t_["calls"], 0),
        "agent_latency_p95": (lat["p95"], lat["turns"], 0),
        "cost_per_successful_task": (
            _ratio(c_["cost_settled"], c_["completed"]),
            n_settled,
            unsettled,
        ),
        "cost_per_task": (c_["mean_cost"], n_all, 0),
        "tokens_per_task": (c_["mean_tokens"], n_all, 0),
        "tool_calls_per_task": (c_["mean_tool_calls"], n_all, 0),
        "human_minutes_per_task": (c_["mean_human_minutes"], n_all, 0),
        "policy_violation_rate": (_ratio(c_["violations"], n_all), n_all, 0),
    }
    results: list[dict[str, Any]] = []
    for kpi in KPI_ORDER:
        value, n, pending = values[kpi]
        if value is not None and math.isnan(value):
            value = None
        results.append({"kpi": kpi, "cohort": {}, "value": value, "n": n, "pending": pending})
        if kpi == "escalation_rate":
            for reason, count in reasons.iter_rows():
                results.append(
                    {
                        "kpi": kpi,
                        "cohort": {},
                        "breakdown": {"escalation_reason": reason},
                        "value": _ratio(count, n_all),
                        "n": n_all,
                        "pending": 0,
                    }
                )
    clock.lap("output")
    return as_of, results


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: print the results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("events", help="events file or folder (.parquet or .jsonl)")
    parser.add_argument("tool_calls", help="tool_calls file or folder (.parquet or .jsonl)")
    parser.add_argument("--as-of", help="ISO-8601 timestamp (default: the latest in the data)")
    args = parser.parse_args(argv)
    as_of = None
    if args.as_of:
        as_of = dt.datetime.fromisoformat(args.as_of.replace("Z", "+00:00"))
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=dt.UTC)
    horizon, results = compute(args.events, args.tool_calls, as_of)
    json.dump({"as_of": _iso(horizon), "results": results}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
