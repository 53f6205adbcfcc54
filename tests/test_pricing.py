"""Costs from a dated price table, with provenance; --reprice at constant prices."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from kpictl.engine.compute import run_compute
from kpictl.engine.sources import load_sources
from kpictl.errors import SpecError, UsageError
from kpictl.io.pricing import ModelPrice, PricingSpec, apply_prices
from kpictl.render.text import shown_value
from kpictl.spec import load_spec
from test_formats import CHAT_COST_NOTES

UTC = dt.UTC
CHAT_SPEC = Path(__file__).resolve().parent / "fixtures" / "chat" / "spec.yaml"


def frame() -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "ts": [
                dt.datetime(2025, 6, 1, tzinfo=UTC),
                dt.datetime(2026, 6, 1, tzinfo=UTC),
                None,
                dt.datetime(2026, 6, 1, tzinfo=UTC),
                dt.datetime(2026, 6, 1, tzinfo=UTC),
                dt.datetime(2026, 6, 1, tzinfo=UTC),
            ],
            "model": ["m", "m", "m", "other", "m", None],
            "input_tokens": [1_000_000, 1_000_000, 1_000_000, 10, 2_000_000, None],
            "output_tokens": [0, 0, 0, 10, 1_000_000, None],
            "cost_usd": [None, None, None, None, 9.99, None],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )


PRICES = PricingSpec(
    (
        ModelPrice("m", 1.0, 4.0, effective_from=dt.datetime(2025, 1, 1, tzinfo=UTC)),
        ModelPrice("m", 2.0, 8.0, effective_from=dt.datetime(2026, 1, 1, tzinfo=UTC)),
    )
)


def test_price_in_force_at_the_row_time_and_provenance() -> None:
    rows = apply_prices(frame(), PRICES).collect().select("cost_usd", "cost_source").rows()
    assert rows == [
        (1.0, "computed"),  # 1M input at the 2025 price
        (2.0, "computed"),  # the 2026 price
        (2.0, "computed"),  # no time: the latest price
        (None, "unpriced"),  # a model without a price: null, never 0
        (9.99, "reported"),  # the log's own cost is kept
        (None, None),  # nothing to price
    ]


def test_reprice_recomputes_reported_costs() -> None:
    rows = apply_prices(frame(), PRICES, reprice=True).collect()
    assert rows.get_column("cost_usd").to_list()[4] == pytest.approx(2 * 2.0 + 1 * 8.0)
    assert rows.get_column("cost_source").to_list()[4] == "computed"


def test_reprice_marks_a_reported_cost_without_tokens_unpriced() -> None:
    # --reprice drops every reported cost; one without tokens cannot be recomputed: it is
    # unknown (cost_source unpriced, counted in compute's notes), not a silent null (was: None)
    rows = pl.LazyFrame(
        {"model": ["m"], "input_tokens": [None], "output_tokens": [None], "cost_usd": [0.5]},
        schema_overrides={"input_tokens": pl.Int64, "output_tokens": pl.Int64},
    )
    repriced = apply_prices(rows, PRICES, reprice=True).collect()
    assert repriced.select("cost_usd", "cost_source").rows() == [(None, "unpriced")]
    kept = apply_prices(rows, PRICES).collect()
    assert kept.select("cost_usd", "cost_source").rows() == [(0.5, "reported")]


def test_unpriced_rows_are_reported_by_compute(tmp_path: Path) -> None:
    text = CHAT_SPEC.read_text().replace("    gpt-4o:\n", "    gpt-4o-mini:\n")
    (tmp_path / "spec.yaml").write_text(text)
    (tmp_path / "runs.jsonl").write_bytes((CHAT_SPEC.parent / "runs.jsonl").read_bytes())
    spec = load_spec(tmp_path / "spec.yaml")
    result = run_compute(spec, load_sources(spec, cache=False))
    # no row has a known cost: cost_per_trial is unavailable, not $0
    reason = (
        "cost unknown: no row of source 'events' has a cost (2 unpriced (tokens but no "
        "price), 3 agent messages without usage (no tokens, no cost))"
    )
    assert result.notes == (
        f"{reason}: unavailable (value null, not $0): cost_per_trial",
        "cost: 2 events rows in 2 conversations are unpriced (tokens but no cost and no price; "
        "models: gpt-4o): their cost_usd is null, so cost totals leave them out — add the "
        "models to `pricing:`",
    )
    row = result.table.filter(kpi="cost_per_trial").row(0, named=True)
    assert (row["value"], row["reason"]) == (None, reason)
    assert shown_value(row) == "unavailable (cost unknown)"


def test_reprice_needs_a_price_table(shipped_spec_path: Path) -> None:
    with pytest.raises(UsageError, match="--reprice needs a `pricing:` section"):
        load_sources(load_spec(shipped_spec_path), reprice=True)


def test_bad_prices_are_spec_errors(tmp_path: Path) -> None:
    text = CHAT_SPEC.read_text().replace("input: 2.5", "input: cheap")
    (tmp_path / "spec.yaml").write_text(text)
    with pytest.raises(SpecError, match=r"pricing\.models\.gpt-4o\.input: expected a price"):
        load_spec(tmp_path / "spec.yaml")


def test_genai_prices_opt_in_matches_the_package_on_another_usage() -> None:
    """Per-1M-token prices taken from genai-prices price any other usage like the package."""
    genai_prices = pytest.importorskip("genai_prices")
    from kpictl.io.pricing import genai_price_rows

    rows = genai_price_rows(["gpt-4o", "no-such-model-xyz"])
    assert [r.model for r in rows] == ["gpt-4o"]  # unknown models stay unpriced
    price = rows[0]
    usage = genai_prices.Usage(input_tokens=1234, output_tokens=567)
    expected = float(genai_prices.calc_price(usage, model_ref="gpt-4o").total_price)
    assert (1234 * price.input + 567 * price.output) / 1e6 == pytest.approx(expected, rel=1e-12)


def test_a_price_row_prices_its_dated_snapshots_and_aliases_never_a_longer_name() -> None:
    """Spans report dated snapshots (`gpt-4o-mini-2024-07-18`): a row `gpt-4o-mini` prices
    them (it priced nothing). Exact beats alias beats snapshot; `gpt-4o` never prices a
    `gpt-4o-mini…` or `gpt-4o-realtime-…` model."""
    models = [
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "gpt-4o-mini-2024-07-18",
        "claude-3-5-sonnet-20241022",
        "claude-3-5-sonnet@20241022",
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "gpt-4o-2024-05-13",
        "gpt-4o-mini-tts",
        "gpt-4o-realtime-preview-2024-12-17",
    ]
    rows = pl.LazyFrame(
        {"model": models, "input_tokens": [1_000_000] * len(models), "output_tokens": [0] * 9}
    )
    pricing = PricingSpec(
        (
            ModelPrice("gpt-4o", 2.5, 10.0),
            ModelPrice("gpt-4o-mini", 0.15, 0.6),
            ModelPrice(
                "claude-3-5-sonnet",
                3.0,
                15.0,
                aliases=("anthropic.claude-3-5-sonnet-20241022-v2:0",),
            ),
            ModelPrice("gpt-4o-launch", 5.0, 15.0, aliases=("gpt-4o-2024-05-13",)),
        )
    )
    priced = apply_prices(rows, pricing).collect()
    assert priced.select("cost_usd", "cost_source", "price_model", "price_match").rows() == [
        (2.5, "computed", "gpt-4o", "exact"),
        (2.5, "computed", "gpt-4o", "snapshot"),
        (0.15, "computed", "gpt-4o-mini", "snapshot"),
        (3.0, "computed", "claude-3-5-sonnet", "snapshot"),
        (3.0, "computed", "claude-3-5-sonnet", "snapshot"),
        (3.0, "computed", "claude-3-5-sonnet", "alias"),
        (5.0, "computed", "gpt-4o-launch", "alias"),  # the alias wins over gpt-4o's snapshot
        (None, "unpriced", None, None),
        (None, "unpriced", None, None),
    ]


def test_chat_costs_of_a_dated_snapshot_by_hand(tmp_path: Path) -> None:
    """The chat fixture with `gpt-4o-2024-08-06` as its model is priced by the `gpt-4o` row:
    the same cost per trial as with `gpt-4o` (was: every row unpriced, cost null)."""
    data = (CHAT_SPEC.parent / "runs.jsonl").read_text()
    (tmp_path / "runs.jsonl").write_text(data.replace('"gpt-4o"', '"gpt-4o-2024-08-06"'))
    (tmp_path / "spec.yaml").write_text(CHAT_SPEC.read_text())
    spec = load_spec(tmp_path / "spec.yaml")
    sources = load_sources(spec, cache=False)
    events = sources["events"].collect().filter(pl.col("cost_source").is_not_null())
    assert events.select("model", "cost_source", "price_model", "price_match").unique().rows() == [
        ("gpt-4o-2024-08-06", "computed", "gpt-4o", "snapshot")
    ]
    result = run_compute(spec, sources)
    cost = result.table.filter(kpi="cost_per_trial").row(0, named=True)["value"]
    # 1000 in + 200 out and 500 in + 100 out at $2.5 / $10 per 1M, over 3 trials
    assert cost == pytest.approx((0.0025 + 0.002 + 0.00125 + 0.001) / 3)
    assert result.notes == CHAT_COST_NOTES  # 3 assistant messages without usage


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        ("gpt-4o-old", "expected a list of model names such as [gpt-4o-latest], got 'gpt-4o-old'"),
        (
            "[gpt-4o-mini]",
            "'gpt-4o-mini' is a model of its own under pricing.models; an alias "
            "names a model that is not listed",
        ),
        ("[my-mini]", "'my-mini' is already an alias of 'gpt-4o-mini'; a model name has one price"),
    ],
)
def test_bad_aliases_are_spec_errors_with_their_line(
    tmp_path: Path, aliases: str, message: str
) -> None:
    text = CHAT_SPEC.read_text().replace(
        "    gpt-4o:\n      - {effective_from: 2026-01-01, input: 2.5, output: 10.0}\n",
        "    gpt-4o-mini: {input: 0.15, output: 0.6, aliases: [my-mini]}\n"
        "    gpt-4o:\n      - {effective_from: 2026-01-01, input: 2.5, output: 10.0,\n"
        f"         aliases: {aliases}}}\n",
    )
    (tmp_path / "spec.yaml").write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "spec.yaml")
    assert f"spec.yaml:7: pricing.models.gpt-4o.aliases: {message}" in str(caught.value)
