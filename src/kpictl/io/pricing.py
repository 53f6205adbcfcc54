"""Costs you can trust: price rows with tokens and a model from a dated price table.

Each row gets a provenance, `cost_source`: `reported` (the log's own cost), `computed` (tokens ×
the price in force at the row's time) or `unpriced` (tokens but no price: the cost stays null,
never a silent zero). Rows with neither tokens nor a cost have no provenance (null).

A computed row also says which price row priced it (`price_model`) and how its model matched
that row's name (`price_match`): `exact`; `alias` (listed under the row's `aliases:`);
`snapshot` (a dated snapshot of the name: `<name>-YYYY-MM-DD`, `<name>-YYYYMMDD`,
`<name>@YYYYMMDD`); or `genai_prices` (a model the spec does not list, priced by that package).
Exact beats alias beats snapshot, and among snapshots the longest name wins, so
`gpt-4o-mini-2024-07-18` is priced as `gpt-4o-mini`, never as `gpt-4o`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

import polars as pl

from kpictl.errors import InputDataError
from kpictl.io import schema as canonical

COST_SOURCES = ("reported", "computed", "unpriced")
PRICE_MATCHES = ("exact", "alias", "snapshot", "genai_prices")
# what may follow a price row's name in a dated snapshot of it (the whole rest of the model name)
SNAPSHOT_SUFFIX = r"^(?:-20\d\d-[01]\d-[0-3]\d|-20\d\d[01]\d[0-3]\d|@20\d\d-?[01]\d-?[0-3]\d)$"
_PER_TOKEN = 1_000_000.0  # prices are USD per 1M tokens
_NO_TIME = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)  # rows without a time: the latest price


@dataclass(frozen=True)
class ModelPrice:
    """One model's price per 1M tokens, in force from `effective_from` until the next one."""

    model: str
    input: float
    output: float
    cache_read: float | None = None  # None: cached input tokens cost the input price
    cache_write: float | None = None  # None: cache-write tokens cost the input price
    effective_from: dt.datetime | None = None  # None: since always
    aliases: tuple[str, ...] = ()  # other model names this price row prices (`price_match` alias)


@dataclass(frozen=True)
class PricingSpec:
    """The spec's `pricing:` section."""

    prices: tuple[ModelPrice, ...] = ()
    genai_prices: bool = False  # opt-in: models not listed are priced by `genai-prices`

    @property
    def enabled(self) -> bool:
        """True when there is anything to price with."""
        return bool(self.prices) or self.genai_prices


def price_table(prices: Sequence[ModelPrice]) -> pl.DataFrame:
    """The prices as a frame sorted by effective time (for an as-of join by model)."""
    return pl.DataFrame(
        {
            "model": [p.model for p in prices],
            "__from": [p.effective_from or dt.datetime(1, 1, 1, tzinfo=dt.UTC) for p in prices],
            "__in": [p.input for p in prices],
            "__out": [p.output for p in prices],
            "__cache_read": [p.cache_read for p in prices],
            "__cache_write": [p.cache_write for p in prices],
        },
        schema={
            "model": pl.String(),
            "__from": canonical.UTC_TIMESTAMP,
            "__in": pl.Float64(),
            "__out": pl.Float64(),
            "__cache_read": pl.Float64(),
            "__cache_write": pl.Float64(),
        },
    ).sort("__from")


def genai_price_rows(models: Sequence[str]) -> list[ModelPrice]:
    """Prices of `models` from the `genai-prices` package (opt-in; one lookup per model)."""
    try:
        import genai_prices  # type: ignore[import-not-found]
    except ImportError as exc:
        raise InputDataError(
            "pricing.genai_prices: the genai-prices package is not installed; "
            "run `pip install genai-prices` or list the models under pricing.models"
        ) from exc
    found: list[ModelPrice] = []
    for model in models:
        try:
            usage = genai_prices.Usage(input_tokens=1_000_000, output_tokens=0)
            inp = genai_prices.calc_price(usage, model_ref=model)
            usage = genai_prices.Usage(input_tokens=0, output_tokens=1_000_000)
            out = genai_prices.calc_price(usage, model_ref=model)
        except Exception:  # unknown model: stays unpriced, and says so
            continue
        found.append(ModelPrice(model, float(inp.total_price), float(out.total_price)))
    return found


def match_prices(models: pl.LazyFrame, prices: Sequence[ModelPrice]) -> pl.LazyFrame:
    """For each distinct `model`: the price row name that prices it (`__price_model`) and the
    rule that matched (`price_match`, see the module doc); models no row matches are absent.
    Vectorised over distinct models × price names (both small)."""
    names = pl.LazyFrame(
        {"__price_model": sorted({p.model for p in prices})}, schema={"__price_model": pl.String}
    )
    aliases = sorted({(a, p.model) for p in prices for a in p.aliases})
    alias_table = pl.LazyFrame(
        {"model": [a for a, _ in aliases], "__price_model": [m for _, m in aliases]},
        schema={"model": pl.String, "__price_model": pl.String},
    )
    distinct = models.select(pl.col("model").cast(pl.String)).drop_nulls().unique()
    name = pl.col("__price_model")
    rest = pl.col("model").str.slice(name.str.len_chars())
    by_name = (
        distinct.join(names, how="cross")
        .with_columns(
            pl.when(pl.col("model") == name)
            .then(pl.lit("exact"))
            .when(pl.col("model").str.starts_with(name) & rest.str.contains(SNAPSHOT_SUFFIX))
            .then(pl.lit("snapshot"))
            .alias("price_match")
        )
        .filter(pl.col("price_match").is_not_null())
    )
    by_alias = distinct.join(alias_table, on="model").with_columns(
        pl.lit("alias").alias("price_match")
    )
    rank = pl.col("price_match").replace_strict(
        {"exact": 0, "alias": 1, "snapshot": 2}, return_dtype=pl.Int8
    )
    return (
        pl.concat([by_name, by_alias], how="vertical_relaxed")
        .sort(rank, name.str.len_chars(), name, descending=[False, True, False])
        .unique("model", keep="first", maintain_order=True)
    )


def _tokens(frame: pl.LazyFrame, name: str) -> pl.Expr:
    schema = frame.collect_schema()
    if name in schema:
        return pl.col(name).cast(pl.Float64)
    return pl.lit(None, dtype=pl.Float64)


def apply_prices(
    frame: pl.LazyFrame, pricing: PricingSpec, *, reprice: bool = False
) -> pl.LazyFrame:
    """`cost_usd` and `cost_source` for every row (see the module doc).

    A reported cost is kept unless `reprice`, which recomputes every row with tokens and a model
    from the one price table (rows it cannot price become `unpriced`, their cost null), so two
    periods can be compared at constant prices.
    """
    schema = frame.collect_schema()
    if "input_tokens" not in schema and "output_tokens" not in schema:
        return frame
    prices = list(pricing.prices)
    from_package: list[str] = []
    if pricing.genai_prices and "model" in schema:
        listed = match_prices(frame.select("model"), prices).select("model")
        distinct = frame.select(pl.col("model").cast(pl.String)).drop_nulls().unique()
        unmatched = distinct.join(listed, on="model", how="anti").sort("model").collect()
        found = genai_price_rows(unmatched.get_column("model").to_list())
        prices += found
        from_package = [p.model for p in found]
    inp = _tokens(frame, "input_tokens")
    out = _tokens(frame, "output_tokens")
    cache_read = _tokens(frame, "cache_read_tokens").fill_null(0.0)
    cache_write = _tokens(frame, "cache_write_tokens").fill_null(0.0)
    has_tokens = inp.is_not_null() | out.is_not_null()
    reported = pl.col("cost_usd").is_not_null() if "cost_usd" in schema else pl.lit(False)
    prior = pl.col("cost_source") if "cost_source" in schema else pl.lit(None, dtype=pl.String)
    if "cost_usd" not in schema:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("cost_usd"))
    if prices and "model" in schema:
        time = pl.col("ts") if "ts" in schema else pl.lit(None, dtype=canonical.UTC_TIMESTAMP)
        keyed = frame.with_row_index("__price_row").with_columns(
            time.fill_null(pl.lit(_NO_TIME, dtype=canonical.UTC_TIMESTAMP)).alias("__at"),
            pl.col("model").cast(pl.String),
        )
        keyed = keyed.join(
            match_prices(keyed.select("model"), prices), on="model", how="left"
        ).with_columns(
            pl.when(pl.col("__price_model").is_in(from_package))
            .then(pl.lit("genai_prices"))
            .otherwise(pl.col("price_match"))
            .alias("price_match")
        )
        joined = (
            keyed.sort("__at")
            .join_asof(
                price_table(prices).rename({"model": "__price_model"}).lazy(),
                left_on="__at",
                right_on="__from",
                by="__price_model",
                strategy="backward",
                check_sortedness=False,
            )
            .sort("__price_row")
        )
        uncached = (inp.fill_null(0.0) - cache_read - cache_write).clip(lower_bound=0.0)
        computed = (
            uncached * pl.col("__in")
            + cache_read * pl.coalesce("__cache_read", "__in")
            + cache_write * pl.coalesce("__cache_write", "__in")
            + out.fill_null(0.0) * pl.col("__out")
        ) / _PER_TOKEN
        priced = pl.col("__in").is_not_null() & has_tokens
        frame = joined.drop("__price_row", "__at", "__from")
    else:
        computed = pl.lit(None, dtype=pl.Float64)
        priced = pl.lit(False)
    keep_reported = reported & pl.lit(not reprice)
    cost = (
        pl.when(keep_reported)
        .then(pl.col("cost_usd"))
        .when(priced)
        .then(computed)
        .otherwise(pl.lit(None, dtype=pl.Float64))
    )
    source = (
        pl.when(keep_reported)
        .then(pl.coalesce(prior, pl.lit("reported")))
        .when(priced)
        .then(pl.lit("computed"))
        # tokens but no price; or (reprice) a reported cost it cannot recompute without tokens
        .when(has_tokens | (reported & pl.lit(reprice)))
        .then(pl.lit("unpriced"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    computed_here = ~keep_reported & priced
    has_match = "__price_model" in frame.collect_schema()
    frame = frame.with_columns(
        cost.alias("cost_usd"),
        source.alias("cost_source"),
        *(
            pl.when(computed_here).then(pl.col(name)).alias(column)
            if has_match
            else pl.lit(None, dtype=pl.String).alias(column)
            for name, column in (("__price_model", "price_model"), ("price_match", "price_match"))
        ),
    )
    return frame.drop(
        [
            c
            for c in ("__in", "__out", "__cache_read", "__cache_write", "__price_model")
            if c in frame.collect_schema()
        ]
    )


def mark_reported(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Provenance without a price table: a row's own cost is `reported`; rows with tokens and no
    cost are `unpriced`."""
    schema = frame.collect_schema()
    has_cost = pl.col("cost_usd").is_not_null() if "cost_usd" in schema else pl.lit(False)
    has_tokens = pl.lit(False)
    for name in ("input_tokens", "output_tokens"):
        if name in schema:
            has_tokens = has_tokens | pl.col(name).is_not_null()
    prior = pl.col("cost_source") if "cost_source" in schema else pl.lit(None, dtype=pl.String)
    source = (
        pl.when(has_cost)
        .then(pl.coalesce(prior, pl.lit("reported")))
        .when(has_tokens)
        .then(pl.lit("unpriced"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    return frame.with_columns(
        source.alias("cost_source"),
        pl.lit(None, dtype=pl.String).alias("price_model"),
        pl.lit(None, dtype=pl.String).alias("price_match"),
    )


def latest_prices(pricing: PricingSpec) -> PricingSpec:
    """Each listed model at its latest price, in force since always (its aliases, from any of
    its dated rows, kept): with `apply_prices(..., reprice=True)` every row is costed as if it
    ran today — the assumption of a cost projection (`kpictl project`)."""
    latest: dict[str, ModelPrice] = {}
    aliases: dict[str, set[str]] = {}
    oldest = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    for price in pricing.prices:
        aliases.setdefault(price.model, set()).update(price.aliases)
        kept = latest.get(price.model)
        if kept is None or (price.effective_from or oldest) >= (kept.effective_from or oldest):
            latest[price.model] = price
    return PricingSpec(
        prices=tuple(
            replace(p, effective_from=None, aliases=tuple(sorted(aliases[m])))
            for m, p in latest.items()
        ),
        genai_prices=pricing.genai_prices,
    )


def effective_dates(pricing: PricingSpec) -> dict[str, dt.datetime | None]:
    """Each listed model's latest `effective_from` (None: one undated price)."""
    dates: dict[str, dt.datetime | None] = {}
    for price in pricing.prices:
        kept = dates.get(price.model)
        if price.model not in dates or (
            price.effective_from is not None and (kept is None or price.effective_from > kept)
        ):
            dates[price.model] = price.effective_from
    return dates
