"""Costs from a dated price table, with provenance; --reprice at constant prices."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from kpictl.engine import run_compute
from kpictl.errors import SpecError, UsageError
from kpictl.pricing import ModelPrice, PricingSpec, apply_prices
from kpictl.sources import load_sources
from kpictl.spec import load_spec

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


def test_unpriced_rows_are_reported_by_compute(tmp_path: Path) -> None:
    text = CHAT_SPEC.read_text().replace("    gpt-4o:\n", "    gpt-4o-mini:\n")
    (tmp_path / "spec.yaml").write_text(text)
    (tmp_path / "runs.jsonl").write_bytes((CHAT_SPEC.parent / "runs.jsonl").read_bytes())
    spec = load_spec(tmp_path / "spec.yaml")
    result = run_compute(spec, load_sources(spec, cache=False))
    assert result.notes[0] == (
        "cost: 2 events rows in 2 conversations are unpriced (tokens but no cost and no price; "
        "models: gpt-4o): their cost_usd is null, so cost totals leave them out — add the "
        "models to `pricing:`"
    )
    assert "cost_per_trial: excludes the cost of 2 unpriced rows" in result.notes


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
    from kpictl.pricing import genai_price_rows

    rows = genai_price_rows(["gpt-4o", "no-such-model-xyz"])
    assert [r.model for r in rows] == ["gpt-4o"]  # unknown models stay unpriced
    price = rows[0]
    usage = genai_prices.Usage(input_tokens=1234, output_tokens=567)
    expected = float(genai_prices.calc_price(usage, model_ref="gpt-4o").total_price)
    assert (1234 * price.input + 567 * price.output) / 1e6 == pytest.approx(expected, rel=1e-12)
