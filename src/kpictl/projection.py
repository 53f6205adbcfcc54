"""Cost at scale (`kpictl project`): what the agent would cost per month at another volume.

From the observed per-conversation costs (`kpictl.engine.costs`, the numbers the scorecard's
ROI uses):

- **monthly cost** at the target volume, split into LLM, tools and human minutes: the projected
  conversations per month × the mean cost per conversation of each component. Human minutes
  scale with escalations: escalation rate × minutes per escalated conversation (+ the minutes of
  conversations that were not escalated, if any), priced at `params.human_cost_per_minute`.
- an **interval** for each: a percentile bootstrap over conversations (seeded; resampled
  per-conversation cost vectors, vectorised with numpy), times the projected count. It carries
  the sampling error of the mean cost per conversation; the volume is taken as given.
- **peak exposure**: spend per clock hour by conversation start hour (hours without traffic are
  zero), its 95th percentile (linear interpolation) and maximum, scaled by the volume factor.

Unknown costs are never zero: a conversation with a row whose cost is unknown
(`costs.unpriced_rows`) is left out and the projection is "partially priced (k of n)"; with no
priced conversation the cost projection is unavailable, with the reason. With a `pricing:`
section every row with tokens is repriced at its model's latest price. README: "Cost at scale".
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from kpictl.engine.costs import (
    HUMAN_MINUTE_PARAM,
    Slice,
    conversation_costs,
    human_minutes_unknown,
    number_param,
    slice_facts,
    unpriced_rows,
)
from kpictl.engine.interface import ComputeOptions, TimeBound
from kpictl.engine.window import resolve_window
from kpictl.errors import UsageError
from kpictl.io import schema as canonical
from kpictl.io.pricing import PricingSpec, apply_prices, effective_dates, latest_prices
from kpictl.io.read import Sources
from kpictl.spec.model import Spec

MONTH_HOURS = 365.25 * 24 / 12  # 730.5: an average month
PERIOD_HOURS = {"hour": 1.0, "day": 24.0, "week": 168.0, "month": MONTH_HOURS}
BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 7
CONFIDENCE = 0.95
PEAK_QUANTILE = 0.95
ESCALATED = "escalated"  # the unit table's boolean column that human minutes scale with
_BOOTSTRAP_CELLS = 4_000_000  # resampled indices held at once (draws per chunk × conversations)
_MULTIPLE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*[x×]\s*$", re.IGNORECASE)
_ABSOLUTE = re.compile(
    r"^\s*(?P<n>\d[\d_,]*(?:\.\d+)?)\s*/\s*(?P<per>hour|day|week|month)\s*$", re.IGNORECASE
)
COMPONENTS = (("llm", "LLM"), ("tools", "tools"), ("human", "human minutes"))


@dataclass(frozen=True)
class Volume:
    """A target volume: a multiple of the observed one (`10x`) or conversations per month."""

    text: str
    multiple: float | None = None
    per_month: float | None = None


def parse_volume(text: str, option: str = "--volume") -> Volume:
    """`10x` (ten times the observed conversations per month) or `50000/month` (also per hour,
    day or week); `option` names the option in the error."""
    multiple = _MULTIPLE.match(text)
    absolute = _ABSOLUTE.match(text)
    value: float | None = None
    if multiple:
        value = float(multiple.group("n"))
    elif absolute:
        value = float(absolute.group("n").replace(",", "").replace("_", ""))
    if value is None or not math.isfinite(value) or value <= 0:
        raise UsageError(
            f"{option} {text!r}: expected a multiple of the observed volume such as 10x, or "
            "conversations per period such as 50000/month (per hour, day, week or month), "
            "above 0"
        )
    if multiple:
        return Volume(text.strip(), multiple=value)
    assert absolute is not None
    per = absolute.group("per").lower()
    return Volume(text.strip(), per_month=value * MONTH_HOURS / PERIOD_HOURS[per])


@dataclass(frozen=True)
class ProjectionOptions:
    """What `project` is asked for."""

    volume: Volume
    since: TimeBound | None = None
    until: TimeBound | None = None
    as_of: dt.datetime | None = None
    draws: int = BOOTSTRAP_DRAWS
    seed: int = BOOTSTRAP_SEED
    confidence: float = CONFIDENCE


@dataclass(frozen=True)
class Component:
    """One projected monthly cost (llm, tools, human or total) with its bootstrap interval."""

    name: str
    label: str
    per_conversation: float | None  # observed mean over the priced conversations
    monthly: float | None
    low: float | None
    high: float | None
    basis: str  # how it is computed
    unavailable: str | None = None  # why there is no number


@dataclass(frozen=True)
class PeakExposure:
    """Spend per clock hour by conversation start hour, observed and at the target volume."""

    hours: int  # clock hours in the observed period (with or without traffic)
    active_hours: int  # hours in which some conversation started
    p95: float
    max: float
    max_hour: dt.datetime
    factor: float

    @property
    def p95_projected(self) -> float:
        return self.p95 * self.factor

    @property
    def max_projected(self) -> float:
        return self.max * self.factor


@dataclass(frozen=True)
class ProjectionResult:
    """Everything `project` found; rendered by `kpictl.render.writers` (table, JSON, Markdown)."""

    volume: Volume
    conversations: int  # observed, in the slice
    hours: int  # clock hours of the observed period
    period_start: dt.datetime | None
    period_end: dt.datetime | None  # exclusive
    observed_per_month: float | None
    projected_per_month: float | None
    factor: float | None
    priced: int  # conversations whose every cost is known
    status: str  # priced | partially_priced | unavailable
    reason: str | None  # why the cost projection is unavailable
    components: tuple[Component, ...]
    total: Component | None
    escalation_rate: float | None
    minutes_per_escalated: float | None
    minutes_per_other: float | None
    human_rate: float | None
    peak: PeakExposure | None
    assumptions: tuple[str, ...]
    draws: int
    seed: int
    confidence: float

    @property
    def headline(self) -> str:
        """`priced`, `partially priced (k of n)` or `unavailable: reason`."""
        if self.status == "partially_priced":
            return f"partially priced ({self.priced:,} of {self.conversations:,} conversations)"
        if self.status == "unavailable":
            return f"unavailable: {self.reason}"
        return f"priced ({self.priced:,} of {self.conversations:,} conversations)"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document."""

        def component(c: Component) -> dict[str, Any]:
            return {
                "name": c.name,
                "per_conversation_usd": c.per_conversation,
                "monthly_usd": c.monthly,
                "ci_low_usd": c.low,
                "ci_high_usd": c.high,
                "basis": c.basis,
                "unavailable": c.unavailable,
            }

        peak = self.peak
        return {
            "volume": self.volume.text,
            "status": self.status,
            "headline": self.headline,
            "reason": self.reason,
            "observed": {
                "conversations": self.conversations,
                "priced_conversations": self.priced,
                "clock_hours": self.hours,
                "period_start": _iso(self.period_start),
                "period_end": _iso(self.period_end),
                "conversations_per_month": self.observed_per_month,
            },
            "projected_conversations_per_month": self.projected_per_month,
            "volume_factor": self.factor,
            "components": [component(c) for c in self.components],
            "total": component(self.total) if self.total is not None else None,
            "human_minutes": {
                "escalation_rate": self.escalation_rate,
                "minutes_per_escalated_conversation": self.minutes_per_escalated,
                "minutes_per_other_conversation": self.minutes_per_other,
                "usd_per_minute": self.human_rate,
            },
            "peak_exposure": None
            if peak is None
            else {
                "clock_hours": peak.hours,
                "hours_with_traffic": peak.active_hours,
                "observed_p95_usd_per_hour": peak.p95,
                "observed_max_usd_per_hour": peak.max,
                "busiest_hour": _iso(peak.max_hour),
                "projected_p95_usd_per_hour": peak.p95_projected,
                "projected_max_usd_per_hour": peak.max_projected,
            },
            "interval": {
                "method": "percentile bootstrap over conversations",
                "confidence": self.confidence,
                "draws": self.draws,
                "seed": self.seed,
            },
            "assumptions": list(self.assumptions),
        }


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# ----------------------------------------------------------------------------------------------
# Prices
# ----------------------------------------------------------------------------------------------


def at_latest_prices(sources: Sources, pricing: PricingSpec) -> Sources:
    """Every canonical row with tokens repriced at its model's latest price (`--reprice` with
    `pricing.latest_prices`). A row with a reported cost but no tokens cannot be repriced: its
    cost becomes unknown (`cost_source = 'unpriced'`), never a silent zero."""
    latest = latest_prices(pricing)
    loaded = {}
    for name, item in sources.by_name.items():
        frame = item.frame
        schema = frame.collect_schema()
        if name in canonical.CANONICAL_TABLES and (
            "input_tokens" in schema or "output_tokens" in schema
        ):
            tokens = pl.lit(False)
            for column in ("input_tokens", "output_tokens"):
                if column in schema:
                    tokens = tokens | pl.col(column).is_not_null()
            had_cost = pl.col("cost_usd").is_not_null() if "cost_usd" in schema else pl.lit(False)
            frame = frame.with_columns((had_cost & ~tokens).alias("__cost_without_tokens"))
            frame = frame.drop(
                [
                    c
                    for c in canonical.COST_COLUMNS
                    if c in schema and c.startswith(("cost_source", "price_"))
                ]
            )
            frame = (
                apply_prices(frame, latest, reprice=True)
                .with_columns(
                    pl.when(pl.col("__cost_without_tokens"))
                    .then(pl.lit("unpriced"))
                    .otherwise(pl.col("cost_source"))
                    .alias("cost_source")
                )
                .drop("__cost_without_tokens")
            )
        loaded[name] = replace(item, frame=frame)
    return Sources(loaded)


def _price_text(pricing: PricingSpec) -> str:
    dates = effective_dates(pricing)
    parts = []
    for price in latest_prices(pricing).prices:
        since = dates.get(price.model)
        when = f" since {since.date().isoformat()}" if since is not None else ""
        parts.append(f"{price.model}{when}: ${price.input:g} in / ${price.output:g} out")
    listed = "; ".join(parts) + " per 1M tokens" if parts else "none listed"
    extra = " (models not listed: genai-prices' current price)" if pricing.genai_prices else ""
    return listed + extra


# ----------------------------------------------------------------------------------------------
# The projection
# ----------------------------------------------------------------------------------------------


def bootstrap_means(
    values: np.ndarray, draws: int, seed: int, chunk_cells: int = _BOOTSTRAP_CELLS
) -> np.ndarray:
    """Column means of `draws` resamples (with replacement) of the rows of `values` (n × k):
    a draws × k array. Indices come from `numpy.random.default_rng(seed).integers(0, n,
    size=(draws, n))`, drawn in row chunks that consume the generator in the same order."""
    n = values.shape[0]
    rng = np.random.default_rng(seed)
    per_chunk = max(1, chunk_cells // max(n, 1))
    out = np.empty((draws, values.shape[1]))
    for start in range(0, draws, per_chunk):
        rows = min(per_chunk, draws - start)
        index = rng.integers(0, n, size=(rows, n))
        out[start : start + rows] = values[index].mean(axis=1)
    return out


def _percentile_interval(draws: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(draws, [tail, 100.0 - tail], axis=0)
    return low, high


def _observed_hours(
    starts: pl.Series, since: dt.datetime | None, until: dt.datetime | None
) -> tuple[dt.datetime, dt.datetime, int]:
    """The observed period as whole clock hours [start, end): the window when both ends are
    given, else the first to the last conversation start hour."""
    if since is not None and until is not None:
        first = since.replace(minute=0, second=0, microsecond=0)
        hours = max(1, math.ceil((until - first).total_seconds() / 3600.0))
    else:
        low, high = starts.min(), starts.max()
        assert isinstance(low, dt.datetime) and isinstance(high, dt.datetime)
        first = low.replace(minute=0, second=0, microsecond=0)
        last = high.replace(minute=0, second=0, microsecond=0)
        hours = int((last - first).total_seconds() // 3600) + 1
    return first, first + dt.timedelta(hours=hours), hours


def hourly_spend(starts: pl.Series, costs: pl.Series, first: dt.datetime, hours: int) -> np.ndarray:
    """Σ cost per clock hour of `hours` hours from `first`, by start time (zeros where nothing
    started)."""
    frame = pl.DataFrame({"start": starts, "cost": costs}).drop_nulls()
    origin = int(first.timestamp() * 1_000_000)
    offsets = ((frame.get_column("start").dt.epoch("us") - origin) // 3_600_000_000).to_numpy()
    spend = np.zeros(hours)
    inside = (offsets >= 0) & (offsets < hours)
    np.add.at(spend, offsets[inside], frame.get_column("cost").to_numpy()[inside])
    return spend


def project_costs(spec: Spec, piece: Slice, options: ProjectionOptions) -> ProjectionResult:
    """The projection of one slice (see the module doc); `piece.sources` are repriced at the
    latest prices when the spec has `pricing:`."""
    if options.draws < 100:
        raise UsageError(f"--draws {options.draws}: expected at least 100 bootstrap resamples")
    if not 0.5 <= options.confidence < 1.0:
        raise UsageError(f"--confidence {options.confidence}: expected a level such as 0.95")
    assumptions: list[str] = []
    if spec.pricing.prices:
        piece = replace(piece, sources=at_latest_prices(piece.sources, spec.pricing))
        assumptions.append(
            "prices fixed at each model's latest effective price in `pricing:` (every row with "
            f"tokens repriced, reported costs ignored): {_price_text(spec.pricing)}"
        )
    else:
        assumptions.append(
            "prices as logged (the spec has no `pricing:`): each row's cost_usd, at the prices "
            "of its time"
        )
    table = spec.require_primary_table()
    key = table.key or "conversation_id"
    columns = spec.column_types[table.name]
    reads = [c for c in (key, table.time, ESCALATED) if c is not None and c in columns]
    facts = slice_facts(spec, piece, reads)
    rate = number_param(spec, HUMAN_MINUTE_PARAM)
    n = facts.height
    base: dict[str, Any] = dict(
        volume=options.volume,
        conversations=n,
        priced=0,
        components=(),
        total=None,
        escalation_rate=None,
        minutes_per_escalated=None,
        minutes_per_other=None,
        human_rate=rate,
        peak=None,
        draws=options.draws,
        seed=options.seed,
        confidence=options.confidence,
    )
    time = table.time
    if n == 0 or time is None:
        reason = (
            f"no conversations in the window ({piece.label})"
            if n == 0
            else f"table {table.name!r} has no time column: conversations per month cannot be "
            "observed"
        )
        return ProjectionResult(
            **base,
            hours=0,
            period_start=None,
            period_end=None,
            observed_per_month=None,
            projected_per_month=None,
            factor=None,
            status="unavailable",
            reason=reason,
            assumptions=tuple(assumptions),
        )
    timed = facts.filter(pl.col(time).is_not_null())
    if timed.height == 0:
        return ProjectionResult(
            **base,
            hours=0,
            period_start=None,
            period_end=None,
            observed_per_month=None,
            projected_per_month=None,
            factor=None,
            status="unavailable",
            reason=f"no conversation has a {time}: conversations per month cannot be observed",
            assumptions=tuple(assumptions),
        )
    first, end, hours = _observed_hours(
        timed.get_column(time), piece.window.since, piece.window.until
    )
    observed = n * MONTH_HOURS / hours
    volume = options.volume
    projected = observed * volume.multiple if volume.multiple is not None else volume.per_month
    assert projected is not None
    factor = projected / observed
    assumptions.append(
        f"volume {volume.text}: {n:,} conversations observed in {hours:,} clock hours "
        f"({_iso(first)} – {_iso(end)}) = {observed:,.1f} per month (a month is "
        f"{MONTH_HOURS} hours, 365.25 days ÷ 12); projected {projected:,.1f} conversations per "
        f"month, {factor:,.4g} × the observed volume"
    )
    assumptions.append(
        "mix unchanged: channels, intents, conversation lengths, tool use and escalation rate "
        "as observed — each projected conversation costs what an observed one did"
    )
    costs = conversation_costs(spec, piece, facts.select(key))
    unknown = unpriced_rows(piece, facts.select(key))
    priced = costs.join(unknown, on=key, how="anti")
    escalated = (
        facts.select(key, pl.col(ESCALATED).cast(pl.Boolean).fill_null(False))
        if ESCALATED in facts.columns and facts.schema[ESCALATED] == pl.Boolean
        else None
    )
    if escalated is not None:
        priced = priced.join(escalated, on=key, how="left")
    else:
        priced = priced.with_columns(pl.lit(None, dtype=pl.Boolean).alias(ESCALATED))
    # sorted by key: joins do not keep row order, and the bootstrap resamples rows by position
    priced = priced.join(facts.select(key, time), on=key, how="left").sort(key)
    k = priced.height
    common: dict[str, Any] = dict(
        base,
        hours=hours,
        period_start=first,
        period_end=end,
        observed_per_month=observed,
        projected_per_month=projected,
        factor=factor,
        priced=k,
    )
    if k == 0:
        rows = int(unknown.get_column("unpriced_rows").sum())
        reason = (
            f"no conversation is fully priced ({n:,} of {n:,} have a cost that is unknown: "
            f"{rows:,} rows with tokens or an agent message or a tool call but no cost_usd"
            + (" or price" if spec.pricing.enabled else "; add `pricing:` to the spec")
            + ")"
        )
        return ProjectionResult(
            **common, status="unavailable", reason=reason, assumptions=tuple(assumptions)
        )
    status = "priced" if k == n else "partially_priced"
    if k < n:
        assumptions.append(
            f"partially priced ({k:,} of {n:,} conversations): {n - k:,} conversations have a "
            "row whose cost is unknown (tokens or an agent message or a tool call without "
            "cost_usd); they are left out of the means and assumed to cost what priced ones "
            "cost on average"
        )
    values = (
        priced.select(pl.col("llm_cost"), pl.col("tool_cost"), pl.col("human_minutes"))
        .to_numpy()
        .astype(float)
    )
    means = values.mean(axis=0)
    draws = bootstrap_means(values, options.draws, options.seed)
    low, high = _percentile_interval(draws, options.confidence)
    has_tools = (
        "tool_calls" in piece.sources and "cost_usd" in piece.sources["tool_calls"].collect_schema()
    )
    esc_rate = minutes_esc = minutes_other = None
    if escalated is not None:
        flags = priced.get_column(ESCALATED).to_numpy().astype(bool)
        minutes = priced.get_column("human_minutes").to_numpy()
        esc_rate = float(flags.mean())
        minutes_esc = float(minutes[flags].mean()) if flags.any() else 0.0
        minutes_other = float(minutes[~flags].mean()) if (~flags).any() else 0.0
        scaling = (
            f"escalation rate {esc_rate:.2%} × {minutes_esc:,.2f} min per escalated "
            "conversation"
            + (
                f" + {1 - esc_rate:.2%} × {minutes_other:,.2f} min per other conversation"
                if minutes_other
                else ""
            )
        )
    else:
        scaling = (
            f"mean human minutes per conversation (the unit table has no boolean "
            f"`{ESCALATED}` column to scale them with escalations)"
        )
    price = (
        f" × ${rate:,.2f}/min (params.{HUMAN_MINUTE_PARAM}, a declared assumption)"
        if (rate is not None)
        else ""
    )
    # no row holds human_minutes: their sum of 0 is "not logged", never "no human time"
    human_unknown = human_minutes_unknown(piece.sources)
    if human_unknown is None:
        assumptions.append(f"human minutes scale with escalations: {scaling}{price}")
    components = [
        Component(
            "llm",
            "LLM",
            float(means[0]),
            projected * float(means[0]),
            projected * float(low[0]),
            projected * float(high[0]),
            "conversations per month × mean Σ events.cost_usd per conversation",
        ),
        Component(
            "tools",
            "tools",
            float(means[1]),
            projected * float(means[1]),
            projected * float(low[1]),
            projected * float(high[1]),
            "conversations per month × mean Σ tool_calls.cost_usd per conversation",
            None if has_tools else "no tool_calls source with cost_usd: tool cost not projected",
        ),
    ]
    if human_unknown is not None:
        components.append(
            Component(
                "human",
                "human minutes",
                None,
                None,
                None,
                None,
                "Σ events.human_minutes",
                f"unknown: {human_unknown}",
            )
        )
    elif rate is not None:
        components.append(
            Component(
                "human",
                "human minutes",
                float(means[2]) * rate,
                projected * float(means[2]) * rate,
                projected * float(low[2]) * rate,
                projected * float(high[2]) * rate,
                f"conversations per month × ({scaling}) × ${rate:,.2f}/min",
            )
        )
    else:
        components.append(
            Component(
                "human",
                "human minutes",
                None,
                None,
                None,
                None,
                f"{projected * float(means[2]):,.1f} min per month ({scaling})",
                f"not priced: the spec declares no params.{HUMAN_MINUTE_PARAM}",
            )
        )
    human_weight = (rate or 0.0) if human_unknown is None else 0.0
    weights = np.array([1.0, 1.0 if has_tools else 0.0, human_weight])
    total_draws = draws @ weights
    total_low, total_high = _percentile_interval(total_draws, options.confidence)
    parts = [c.label for c in components if c.unavailable is None]
    total_mean = float(means @ weights)
    total = Component(
        "total",
        "total",
        total_mean,
        projected * total_mean,
        projected * float(total_low),
        projected * float(total_high),
        " + ".join(parts),
    )
    tail = (1.0 - options.confidence) / 2.0
    assumptions.append(
        f"interval: {options.confidence:.0%} percentile bootstrap over conversations "
        f"({options.draws:,} resamples of the {k:,} priced conversations, seed {options.seed}; "
        f"the {tail * 100:g}th and {100 - tail * 100:g}th percentiles, linear interpolation) "
        "× the projected count: the sampling error of the mean cost per conversation; the "
        "volume itself is taken as given"
    )
    per_conversation = (
        priced.get_column("llm_cost") * 1.0
        + (priced.get_column("tool_cost") if has_tools else 0.0)
        + priced.get_column("human_minutes") * human_weight
    )
    spend = hourly_spend(priced.get_column(time), per_conversation, first, hours) * (n / k)
    peak_hour = int(np.argmax(spend))
    peak = PeakExposure(
        hours,
        int((spend > 0).sum()),
        float(np.percentile(spend, PEAK_QUANTILE * 100)),
        float(spend[peak_hour]),
        first + dt.timedelta(hours=peak_hour),
        factor,
    )
    assumptions.append(
        f"peak exposure: each conversation's whole cost ({total.basis}) counted at its start "
        f"hour; all {hours:,} clock hours, those without traffic as $0; p95 is the linear-"
        "interpolated 95th percentile of hourly spend"
        + (
            f"; hourly spend × {n:,}/{k:,} for the conversations whose cost is unknown"
            if k < n
            else ""
        )
        + f"; traffic scales evenly (every hour × {factor:,.4g}), so real spikes may be larger"
    )
    found: dict[str, Any] = dict(
        status=status,
        reason=None,
        components=tuple(components),
        total=total,
        escalation_rate=esc_rate,
        minutes_per_escalated=minutes_esc,
        minutes_per_other=minutes_other,
        peak=peak,
        assumptions=tuple(assumptions),
    )
    return ProjectionResult(**{**common, **found})


def run_projection(spec: Spec, sources: Sources, options: ProjectionOptions) -> ProjectionResult:
    """`kpictl project`: every conversation of the window (`options.since`/`until`/`as_of`, as
    for `compute`), projected at `options.volume`."""
    window = resolve_window(
        spec, sources, ComputeOptions(since=options.since, until=options.until, as_of=options.as_of)
    )
    return project_costs(spec, Slice("all conversations", sources, window), options)
