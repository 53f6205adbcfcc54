"""Per-conversation costs: what each conversation of a slice cost, and which costs are unknown.

Shared by the scorecard's ROI and drill-down and by `kpictl project` (docs/architecture.md), so
both read the same numbers: LLM cost (Σ events.cost_usd), tool cost (Σ tool_calls.cost_usd) and
human minutes (Σ events.human_minutes, priced at `params.human_cost_per_minute` when declared).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

import polars as pl

from kpictl.engine.facts import usable
from kpictl.engine.interface import FactSet, Window
from kpictl.engine.polarsengine import default_engine
from kpictl.engine.window import literal_columns, names_in
from kpictl.engine.window import source_rows as engine_source_rows
from kpictl.io.read import Sources
from kpictl.spec.model import RollupEntry, Spec
from kpictl.sql.expr import compile_sql

HUMAN_MINUTE_PARAM = "human_cost_per_minute"
AGENT_MESSAGE = (pl.col("event") == "message") & (pl.col("role") == "agent")


@dataclass(frozen=True)
class Slice:
    """One arm of the report: conversations of `sources` in `window` meeting `where`."""

    label: str
    sources: Sources
    window: Window
    where: str | None = None  # a condition on the conversations (the holdout's arms)
    facts: FactSet | None = None  # the run's facts, when built once for every section


@dataclass(frozen=True)
class CostTotals:
    """Costs of one slice's conversations, from the canonical columns."""

    conversations: int
    llm: float
    tools: float
    human_minutes: float
    human_rate: float | None
    total_sum: float  # Σ per-conversation total cost (human minutes priced when a rate exists)
    total_sq: float
    # why the human minutes are unknown (no row of events holds human_minutes), else None:
    # then human_minutes is 0 only because nothing was logged, and the total is LLM + tools
    human_unknown: str | None = None

    @property
    def run_cost(self) -> float:
        """LLM + tool cost: what running the agent cost."""
        return self.llm + self.tools

    @property
    def human_cost(self) -> float | None:
        """Human minutes × the declared rate, or None when no rate is declared or the minutes
        are unknown."""
        if self.human_rate is None or self.human_unknown is not None:
            return None
        return self.human_minutes * self.human_rate


def with_literals(
    spec: Spec, frame: pl.LazyFrame, window: Window, sqls: Sequence[str | None]
) -> tuple[pl.LazyFrame, list[str]]:
    """`frame` with the params and built-ins `sqls` read as literal columns, and their names."""
    literals = literal_columns(spec, window, names_in(sqls))
    present = set(frame.collect_schema().names())
    literals = [e for e in literals if e.meta.output_name() not in present]
    names = [e.meta.output_name() for e in literals]
    return (frame.with_columns(literals) if literals else frame), names


def number_param(spec: Spec, name: str) -> float | None:
    """A numeric param of the spec, or None when it is not declared as a number."""
    value = spec.params.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def slice_facts(
    spec: Spec,
    piece: Slice,
    columns: Collection[str] | None = None,
    keep: Collection[str] | None = None,
) -> pl.DataFrame:
    """The unit table's facts of one slice: its window and its condition applied. `columns`:
    those the caller reads (None: every column), which the slice's facts must have been built
    with, else they are built here. `keep`: only these of its columns are collected (None:
    every one)."""
    table = spec.require_primary_table()
    facts = piece.facts
    if facts is None or not usable(spec, facts, piece.window, [table.name], {table.name: columns}):
        facts = default_engine().build_facts(spec, piece.sources, piece.window, [table.name])
    frame = facts.tables[table.name]
    time = table.time
    if time is not None and piece.window.since is not None:
        frame = frame.filter(pl.col(time) >= piece.window.since)
    if time is not None and piece.window.until is not None:
        frame = frame.filter(pl.col(time) < piece.window.until)
    if piece.where:
        frame, names = with_literals(spec, frame, piece.window, [piece.where])
        frame = frame.filter(compile_sql(piece.where).fill_null(False)).drop(names)
    if keep is not None:
        frame = frame.select(c for c in frame.collect_schema().names() if c in keep)
    return frame.collect()


def source_rows(piece: Slice, name: str) -> pl.LazyFrame | None:
    """The slice's rows of a source, as the engine reads them (`engine.source_rows`), or None
    without that source."""
    if name not in piece.sources:
        return None
    return engine_source_rows(piece.sources, name, piece.window)


# (source, column, the per-conversation sum's name): what a conversation cost
_COST_SUMS = (
    ("events", "cost_usd", "llm_cost"),
    ("tool_calls", "cost_usd", "tool_cost"),
    ("events", "human_minutes", "human_minutes"),
)


def cost_sums(piece: Slice, key: str, events_extra: Sequence[pl.Expr] = ()) -> pl.DataFrame | None:
    """Per conversation with rows in the slice's sources (up to as-of, every conversation: the
    slice's condition and window are not applied) the sums `conversation_costs` reads
    (llm_cost, tool_cost, human_minutes; null where a conversation has no rows of that
    source; a column absent when its source or column is), or None when no source has one:
    one group-by per source, joined once, for every slice of the same sources and as-of (the
    report's arms share them). `events_extra`: more aggregates of the events per conversation,
    taken in the same group-by (the report's data checks read the first time and the rows)."""
    sums: pl.LazyFrame | None = None
    for source in dict.fromkeys(s for s, _, _ in _COST_SUMS):
        rows = source_rows(piece, source)
        if rows is None:
            continue
        schema = rows.collect_schema()
        aggs = [
            pl.col(column).cast(pl.Float64).sum().alias(alias)
            for name, column, alias in _COST_SUMS
            if name == source and column in schema
        ]
        if source == "events":
            aggs += events_extra
        if aggs and key in schema:
            grouped = rows.group_by(key).agg(aggs)
            sums = (
                grouped if sums is None else sums.join(grouped, on=key, how="full", coalesce=True)
            )
    return None if sums is None else sums.collect()


def conversation_costs(
    spec: Spec,
    piece: Slice,
    keys: pl.DataFrame,
    sums: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per conversation of `keys`: llm_cost (Σ events.cost_usd), tool_cost (Σ
    tool_calls.cost_usd), human_minutes (Σ events.human_minutes) and total_cost (human minutes
    priced at params.human_cost_per_minute when declared). `sums`: `cost_sums` of the slice's
    sources and as-of, when the caller shares them between slices."""
    key = keys.columns[0]
    if sums is None:
        sums = cost_sums(piece, key)
    aliases = [alias for _, _, alias in _COST_SUMS]
    present = [a for a in aliases if sums is not None and a in sums.columns]
    result = keys.lazy()
    if sums is not None and present:
        result = result.join(sums.lazy().select(key, *present), on=key, how="left")
    return _priced(spec, result, key, present)


def _priced(spec: Spec, sums: pl.LazyFrame, key: str, present: Sequence[str]) -> pl.DataFrame:
    """`sums` (the key and the `_COST_SUMS` aliases in `present`, null where a conversation has
    no rows) with every alias (0 where absent or null) and total_cost."""
    aliases = [alias for _, _, alias in _COST_SUMS]
    result = sums.with_columns(
        pl.col(a).fill_null(0.0) if a in present else pl.lit(0.0).alias(a) for a in aliases
    )
    rate = number_param(spec, HUMAN_MINUTE_PARAM)
    human = pl.col("human_minutes") * rate if rate is not None else pl.lit(0.0)
    total = (pl.col("llm_cost") + pl.col("tool_cost") + human).alias("total_cost")
    return result.select(key, *aliases, total).collect()


COST_ENTRY_PREFIX = "__kpictl_cost_"


def cost_entries(spec: Spec, sources: Sources) -> tuple[RollupEntry, ...]:
    """`cost_sums` as rollup entries of the unit table (`TOTAL(column)` per source of
    `_COST_SUMS` that has the column and the key; `COST_ENTRY_PREFIX` + the alias), so the
    facts' own group-by of each source takes them: the same rows (those up to as-of, every
    unit), the same sums (0 where a unit has none, as `conversation_costs` fills them).
    `with_rollup_entries` adds them; `facts_costs` reads them back."""
    key = spec.require_primary_table().key
    entries = []
    for source, column, alias in _COST_SUMS:
        if source not in sources:
            continue
        schema = sources[source].collect_schema()
        if column in schema and key in schema:
            entries.append(RollupEntry(COST_ENTRY_PREFIX + alias, source, f"TOTAL({column})", ()))
    return tuple(entries)


def with_rollup_entries(spec: Spec, entries: Sequence[tuple[RollupEntry, pl.DataType]]) -> Spec:
    """`spec` with `entries` (each with its column's type) appended to its unit table's
    rollup: columns for the caller only, which no KPI reads."""
    if not entries:
        return spec
    table = spec.require_primary_table()
    types = {**spec.column_types.get(table.name, {}), **{e.name: t for e, t in entries}}
    wider = replace(table, rollup=(*table.rollup, *(e for e, _ in entries)))
    return replace(
        spec,
        tables={**spec.tables, table.name: wider},
        column_types={**spec.column_types, table.name: types},
    )


def facts_costs(
    spec: Spec, facts: pl.DataFrame, entries: Sequence[RollupEntry]
) -> pl.DataFrame | None:
    """`conversation_costs` of the units of `facts` (a unit table built with `cost_entries`'
    `entries`) from the sums it carries: no group-by of the sources, no join. None when the
    facts do not carry them (built without the entries)."""
    key = spec.require_primary_table().key
    assert key is not None
    if not all(e.name in facts.columns for e in entries):
        return None
    present = [e.name.removeprefix(COST_ENTRY_PREFIX) for e in entries]
    sums = facts.lazy().select(
        key, *[pl.col(e.name).alias(e.name.removeprefix(COST_ENTRY_PREFIX)) for e in entries]
    )
    return _priced(spec, sums, key, present)


def human_minutes_unknown(sources: Sources) -> str | None:
    """Why human minutes are unknown — no row of `events` holds `human_minutes` (the column is
    absent from the data), so its sum of 0 means "not logged", not "no human time" — else None
    (see README, "When the data does not fit the spec")."""
    if "events" not in sources:
        return "no `events` source"
    rows = sources["events"]
    if (
        "human_minutes" in rows.collect_schema().names()
        and rows.select(pl.col("human_minutes").is_not_null().any()).collect().item()
    ):
        return None
    return "no `human_minutes` column in source 'events' (no row has a value)"


def cost_totals(spec: Spec, costs: pl.DataFrame, human_unknown: str | None = None) -> CostTotals:
    """Sums of `conversation_costs` (and Σ, Σ² of the total per conversation for a t-test);
    `human_unknown` (from `human_minutes_unknown`) marks the human minutes as not in the data."""
    sums = costs.select(
        pl.col("llm_cost").sum(),
        pl.col("tool_cost").sum(),
        pl.col("human_minutes").sum(),
        pl.col("total_cost").sum().alias("s"),
        (pl.col("total_cost") ** 2).sum().alias("sq"),
    ).row(0, named=True)
    return CostTotals(
        costs.height,
        float(sums["llm_cost"] or 0.0),
        float(sums["tool_cost"] or 0.0),
        float(sums["human_minutes"] or 0.0),
        number_param(spec, HUMAN_MINUTE_PARAM),
        float(sums["s"] or 0.0),
        float(sums["sq"] or 0.0),
        human_unknown,
    )


def unpriced_rows(piece: Slice, keys: pl.DataFrame) -> pl.DataFrame:
    """Per conversation of `keys` with a cost that is unknown: `unpriced_rows`, the rows with no
    known cost where one is due — a row marked `cost_source = 'unpriced'` (tokens but no price),
    an events row with tokens but no cost_usd, an agent message without cost_usd, or a tool call
    without cost_usd. Conversations whose every cost is known are absent."""
    key = keys.columns[0]
    found: list[pl.LazyFrame] = []
    for source in ("events", "tool_calls"):
        rows = source_rows(piece, source)
        if rows is None:
            continue
        schema = rows.collect_schema()
        if key not in schema or "cost_usd" not in schema:
            continue
        missing = pl.col("cost_usd").is_null()
        due = pl.lit(source == "tool_calls")
        if "cost_source" in schema:
            due = due | (pl.col("cost_source") == "unpriced")
        for tokens in ("input_tokens", "output_tokens"):
            if tokens in schema:
                due = due | pl.col(tokens).is_not_null()
        if {"event", "role"} <= set(schema):
            due = due | AGENT_MESSAGE.fill_null(False)
        found.append(
            rows.join(keys.lazy(), on=key, how="semi")
            .filter(missing & due.fill_null(False))
            .group_by(key)
            .agg(pl.len().alias("unpriced_rows"))
        )
    if not found:
        return keys.head(0).with_columns(pl.lit(0, dtype=pl.UInt32).alias("unpriced_rows"))
    return pl.concat(found).group_by(key).agg(pl.col("unpriced_rows").sum()).sort(key).collect()
