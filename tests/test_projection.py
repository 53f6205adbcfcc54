"""`kpictl project`: cost at another volume, checked against hand arithmetic, a hand numpy
bootstrap with the same seed, a normal approximation and DuckDB SQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import SpecWriter
from kpictl.cli import app
from kpictl.engine.costs import Slice
from kpictl.engine.interface import ComputeOptions
from kpictl.engine.sources import load_sources
from kpictl.engine.window import resolve_window
from kpictl.io.pricing import ModelPrice, PricingSpec, latest_prices
from kpictl.io.read import Sources, load_frames
from kpictl.projection import (
    MONTH_HOURS,
    ProjectionOptions,
    ProjectionResult,
    bootstrap_means,
    parse_volume,
    run_projection,
)
from kpictl.spec import load_spec
from kpictl.spec.model import Spec

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = (
    str(ROOT / "sample_logs" / "events"),
    "--source",
    f"tool_calls={ROOT / 'sample_logs' / 'tool_calls'}",
)
T0 = dt.datetime(2026, 10, 1, 0, 0, tzinfo=dt.UTC)
runner = CliRunner()


class ArrowStream:
    """A polars frame for DuckDB through the Arrow PyCapsule interface (no pyarrow needed)."""

    def __init__(self, df: pl.DataFrame) -> None:
        self._df = df

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._df.__arrow_c_stream__(requested_schema)


EVENT_SCHEMA = {
    "conversation_id": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "event": pl.String,
    "role": pl.String,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "cost_usd": pl.Float64,
    "human_minutes": pl.Float64,
    "model": pl.String,
    "channel": pl.String,
    "intent": pl.String,
    "customer_tier": pl.String,
    "region": pl.String,
    "agent_version": pl.String,
    "arm": pl.String,
    "user_id": pl.String,
}
TOOL_SCHEMA = {
    "conversation_id": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "tool": pl.String,
    "status": pl.String,
    "cost_usd": pl.Float64,
}


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def events(rows: list[dict[str, object]]) -> pl.DataFrame:
    defaults = {k: None for k in EVENT_SCHEMA} | {
        "channel": "web",
        "intent": "billing",
        "customer_tier": "free",
        "region": "na",
        "agent_version": "v1",
        "arm": "treatment",
        "user_id": "u1",
    }
    return pl.DataFrame([{**defaults, **row} for row in rows], schema=EVENT_SCHEMA)


def agent(
    cid: str, hours: float, cost: float | None, tokens: int | None = 100, model: str = "m1"
) -> dict[str, object]:
    return {
        "conversation_id": cid,
        "ts": at(hours),
        "event": "message",
        "role": "agent",
        "input_tokens": tokens,
        "output_tokens": tokens,
        "cost_usd": cost,
        "model": model,
    }


def escalation(cid: str, hours: float, minutes: float) -> list[dict[str, object]]:
    return [
        {"conversation_id": cid, "ts": at(hours), "event": "escalation"},
        {
            "conversation_id": cid,
            "ts": at(hours),
            "event": "message",
            "role": "human",
            "human_minutes": minutes,
        },
    ]


def tool(cid: str, hours: float, cost: float | None) -> dict[str, object]:
    return {
        "conversation_id": cid,
        "ts": at(hours),
        "tool": "search",
        "status": "ok",
        "cost_usd": cost,
    }


def tiny_rows() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Four conversations over clock hours 00:00 – 05:00 (six hours):
    a 00:10 LLM 0.50 + tool 0.20; b 00:40 LLM 1.00, escalated, 4 human minutes;
    c 03:05 LLM 0.30 + tool 0.10; d 05:20 LLM 0.20, escalated, 2 human minutes."""
    ev = [
        agent("a", 10 / 60, 0.5),
        agent("b", 40 / 60, 1.0),
        *escalation("b", 0.75, 4.0),
        agent("c", 3 + 5 / 60, 0.3),
        agent("d", 5 + 20 / 60, 0.2),
        *escalation("d", 5.5, 2.0),
    ]
    tc = [tool("a", 0.2, 0.2), tool("c", 3.1, 0.1)]
    return ev, tc


def project(
    spec: Spec, sources: Sources, volume: str = "10x", **options: object
) -> ProjectionResult:
    return run_projection(spec, sources, ProjectionOptions(parse_volume(volume), **options))


def tiny(ev: list[dict[str, object]], tc: list[dict[str, object]]) -> Sources:
    return load_frames({"events": events(ev), "tool_calls": pl.DataFrame(tc, schema=TOOL_SCHEMA)})


# ----------------------------------------------------------------------------------------------
# Monthly projection by hand
# ----------------------------------------------------------------------------------------------


def test_monthly_projection_per_component_by_hand(shipped_spec: Spec) -> None:
    result = project(shipped_spec, tiny(*tiny_rows()))
    # 4 conversations in 6 clock hours: 4 × 730.5 / 6 = 487 per month; 10x = 4,870
    assert result.hours == 6
    assert result.observed_per_month == pytest.approx(487.0)
    assert result.projected_per_month == pytest.approx(4870.0)
    assert (result.status, result.priced, result.conversations) == ("priced", 4, 4)
    monthly = {c.name: c.monthly for c in result.components}
    assert monthly["llm"] == pytest.approx(4870 * (0.5 + 1.0 + 0.3 + 0.2) / 4)  # 2,435
    assert monthly["tools"] == pytest.approx(4870 * (0.2 + 0.1) / 4)  # 365.25
    # human: escalation rate 2/4 × 3 min per escalated conversation × $0.75
    assert (result.escalation_rate, result.minutes_per_escalated) == (0.5, 3.0)
    assert monthly["human"] == pytest.approx(4870 * 0.5 * 3.0 * 0.75)  # 5,478.75
    assert result.total is not None
    assert result.total.monthly == pytest.approx(2435 + 365.25 + 5478.75)
    assert all(
        c.low is not None and c.high is not None and c.low <= c.monthly <= c.high
        for c in (*result.components, result.total)
        if c.monthly is not None
    )
    assert any(
        "escalation rate 50.00% × 3.00 min per escalated conversation × $0.75/min" in a
        for a in result.assumptions
    )


def test_absolute_volume_per_month_and_per_day(shipped_spec: Spec) -> None:
    sources = tiny(*tiny_rows())
    result = project(shipped_spec, sources, "974/month")
    assert result.factor == pytest.approx(2.0)  # 974 / 487
    assert result.total is not None and result.total.monthly == pytest.approx(974 * 1.7)
    per_day = project(shipped_spec, sources, "100/day")
    assert per_day.projected_per_month == pytest.approx(100 * 730.5 / 24)
    assert parse_volume("50,000 / month").per_month == 50000
    assert parse_volume("2.5x").multiple == 2.5


def test_human_cost_unpriced_without_the_param(write_spec: SpecWriter) -> None:
    spec = load_spec(write_spec())  # the minimal spec declares no human_cost_per_minute
    result = project(spec, tiny(*tiny_rows()))
    human = next(c for c in result.components if c.name == "human")
    assert human.monthly is None
    assert human.unavailable == "not priced: the spec declares no params.human_cost_per_minute"
    assert human.basis.startswith("7,305.0 min per month")  # 4,870 × 1.5 min
    assert result.total is not None and result.total.monthly == pytest.approx(4870 * 0.575)
    assert result.total.basis == "LLM + tools"


def test_since_until_is_the_observed_period(shipped_spec: Spec) -> None:
    result = project(shipped_spec, tiny(*tiny_rows()), since=T0, until=at(12))
    # 12 clock hours: 4 × 730.5 / 12 = 243.5 per month; spend [4.7, 0, 0, 0.4, 0, 1.7, 0 × 6]
    # sorted: nine zeros, 0.4, 1.7, 4.7; p95 at rank 0.95 × 11 = 10.45 → 1.7 + 0.45 × 3.0
    assert (result.hours, result.observed_per_month) == (12, pytest.approx(243.5))
    assert result.peak is not None and result.peak.p95 == pytest.approx(3.05)


def test_the_python_api_projects() -> None:
    import kpictl

    spec = kpictl.load_spec(ROOT / "kpi_definitions.yaml")
    sources = tiny(*tiny_rows())
    result = kpictl.run_projection(
        spec, sources, kpictl.ProjectionOptions(kpictl.parse_volume("10x"))
    )
    assert result.total is not None and result.total.monthly == pytest.approx(8279.0)


def test_human_minutes_absent_from_the_data_are_unknown_not_zero(shipped_spec: Spec) -> None:
    """No row holds human_minutes (chat transcripts, most agent logs): the human component was
    "$0.0000" and the assumption "escalation rate 50.00% × 0.00 min"; it is unknown, with the
    reason, and the total is LLM + tools."""
    ev, tc = tiny_rows()
    ev = [{**row, "human_minutes": None} for row in ev]
    result = project(shipped_spec, tiny(ev, tc))
    human = next(c for c in result.components if c.name == "human")
    assert (human.per_conversation, human.monthly, human.low, human.high) == (None,) * 4
    assert human.unavailable == (
        "unknown: no `human_minutes` column in source 'events' (no row has a value)"
    )
    assert result.total is not None and result.total.basis == "LLM + tools"
    # 4,870 conversations per month × (0.5 + 1.0 + 0.3 + 0.2 + 0.2 + 0.1) / 4
    assert result.total.monthly == pytest.approx(4870 * 2.3 / 4)
    assert not any(a.startswith("human minutes scale") for a in result.assumptions)


# ----------------------------------------------------------------------------------------------
# The bootstrap interval
# ----------------------------------------------------------------------------------------------


def test_interval_is_a_hand_numpy_bootstrap_with_the_same_seed(shipped_spec: Spec) -> None:
    result = project(shipped_spec, tiny(*tiny_rows()), draws=500, seed=11)
    # conversations a, b, c, d (sorted by id): LLM, tools, human minutes
    values = np.array([[0.5, 0.2, 0.0], [1.0, 0.0, 4.0], [0.3, 0.1, 0.0], [0.2, 0.0, 2.0]])
    rng = np.random.default_rng(11)
    means = values[rng.integers(0, 4, size=(500, 4))].mean(axis=1)
    total = means @ np.array([1.0, 1.0, 0.75])
    low, high = np.percentile(total, [2.5, 97.5])
    assert result.total is not None
    assert (result.total.low, result.total.high) == pytest.approx((4870 * low, 4870 * high))
    llm = next(c for c in result.components if c.name == "llm")
    assert (llm.low, llm.high) == pytest.approx(
        tuple(4870 * np.percentile(means[:, 0], [2.5, 97.5]))
    )


def test_bootstrap_chunks_draw_the_same_indices_as_one_draw() -> None:
    values = np.arange(3000, dtype=float).reshape(1000, 3) ** 0.5
    chunked = bootstrap_means(values, 250, seed=3, chunk_cells=7_000)  # 7 draws per chunk
    index = np.random.default_rng(3).integers(0, 1000, size=(250, 1000))
    np.testing.assert_allclose(chunked, values[index].mean(axis=1))


def test_interval_agrees_with_a_normal_approximation_on_the_sample(shipped_spec: Spec) -> None:
    sources = load_sources(shipped_spec)
    result = project(shipped_spec, sources)
    window = resolve_window(shipped_spec, sources, ComputeOptions())
    from kpictl.engine.costs import conversation_costs, slice_facts, unpriced_rows

    piece = Slice("all", sources, window)
    keys = slice_facts(shipped_spec, piece).select("conversation_id")
    costs = conversation_costs(shipped_spec, piece, keys).join(
        unpriced_rows(piece, keys), on="conversation_id", how="anti"
    )
    total = costs["total_cost"].to_numpy()
    assert result.total is not None and result.projected_per_month is not None
    assert result.total.monthly == pytest.approx(result.projected_per_month * total.mean())
    half = 1.959964 * total.std(ddof=1) / np.sqrt(total.size) * result.projected_per_month
    assert result.total.high - result.total.low == pytest.approx(2 * half, rel=0.08)


# ----------------------------------------------------------------------------------------------
# Peak exposure
# ----------------------------------------------------------------------------------------------


def test_peak_hourly_spend_by_hand(shipped_spec: Spec) -> None:
    result = project(shipped_spec, tiny(*tiny_rows()))
    peak = result.peak
    assert peak is not None
    # hours 0..5: a+b = 0.7 + 1.0 + 4 × 0.75 = 4.7; c = 0.4 at 03:00; d = 0.2 + 1.5 at 05:00
    # sorted [0, 0, 0, 0.4, 1.7, 4.7]: p95 at rank 4.75 = 1.7 + 0.75 × 3.0 = 3.95
    assert (peak.hours, peak.active_hours) == (6, 3)
    assert peak.max == pytest.approx(4.7)
    assert peak.max_hour == T0
    assert peak.p95 == pytest.approx(3.95)
    assert (peak.p95_projected, peak.max_projected) == pytest.approx((39.5, 47.0))


def test_peak_on_the_sample_equals_duckdb(shipped_spec: Spec) -> None:
    sources = load_sources(shipped_spec)
    peak = project(shipped_spec, sources).peak
    assert peak is not None
    con = duckdb.connect()
    for name in ("events", "tool_calls"):
        con.register(name, ArrowStream(sources[name].collect()))
    # conversations with an unknown cost: tokens or an agent message without cost_usd, or a
    # tool call without cost_usd (the sample has no pricing: section)
    p95, top, hours, unknown = con.execute("""
        WITH conv AS (
          SELECT conversation_id, MIN(ts) AS started,
                 SUM(cost_usd) AS llm, SUM(human_minutes) AS minutes,
                 COUNT(*) FILTER (WHERE cost_usd IS NULL AND (input_tokens IS NOT NULL
                   OR output_tokens IS NOT NULL OR (event = 'message' AND role = 'agent')))
                   AS unknown
          FROM events GROUP BY conversation_id),
        tools AS (SELECT conversation_id, SUM(cost_usd) AS tools,
                         COUNT(*) FILTER (WHERE cost_usd IS NULL) AS unknown
                  FROM tool_calls GROUP BY conversation_id),
        priced AS (
          SELECT date_trunc('hour', started) AS hour,
                 COALESCE(llm, 0) + COALESCE(tools, 0) + COALESCE(minutes, 0) * 0.75 AS cost
          FROM conv LEFT JOIN tools USING (conversation_id)
          WHERE conv.unknown = 0 AND COALESCE(tools.unknown, 0) = 0),
        n AS (SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE unknown > 0) AS k FROM conv),
        span AS (SELECT MIN(date_trunc('hour', started)) AS h0,
                        MAX(date_trunc('hour', started)) AS h1 FROM conv),
        grid AS (SELECT UNNEST(generate_series(h0, h1, INTERVAL 1 HOUR)) AS hour FROM span),
        hourly AS (SELECT grid.hour, COALESCE(SUM(cost), 0) * (SELECT n / (n - k) FROM n)
                            AS spend
                   FROM grid LEFT JOIN priced USING (hour) GROUP BY grid.hour)
        SELECT quantile_cont(spend, 0.95), MAX(spend), COUNT(*), (SELECT k FROM n) FROM hourly
    """).fetchone()
    assert unknown == 18
    assert peak.hours == hours
    assert peak.p95 == pytest.approx(p95, rel=1e-9)
    assert peak.max == pytest.approx(top, rel=1e-9)


# ----------------------------------------------------------------------------------------------
# Unknown costs are never zero
# ----------------------------------------------------------------------------------------------


def test_partially_priced_projects_from_the_priced_conversations(shipped_spec: Spec) -> None:
    ev, tc = tiny_rows()
    ev.append(agent("e", 1.5, None))  # tokens, no cost: unknown
    result = project(shipped_spec, tiny(ev, tc))
    assert (result.status, result.priced, result.conversations) == ("partially_priced", 4, 5)
    assert result.headline == "partially priced (4 of 5 conversations)"
    # 5 conversations in 6 hours → 608.75 per month, 10x → 6,087.5 × the 4 priced ones' mean
    assert result.total is not None
    assert result.total.monthly == pytest.approx(6087.5 * 1.7)
    assert result.peak is not None and result.peak.max == pytest.approx(4.7 * 5 / 4)
    assert any(
        a.startswith("partially priced (4 of 5 conversations): 1 conversations")
        for a in result.assumptions
    )


def test_no_priced_conversation_means_no_cost_projection(shipped_spec: Spec) -> None:
    ev = [agent("a", 0.1, None), agent("b", 2.0, 0.4), tool("b", 2.1, None)]
    sources = load_frames(
        {
            "events": events([e for e in ev if "event" in e]),
            "tool_calls": pl.DataFrame([ev[2]], schema=TOOL_SCHEMA),
        }
    )
    result = project(shipped_spec, sources)
    assert result.status == "unavailable"
    assert result.reason == (
        "no conversation is fully priced (2 of 2 have a cost that is unknown: 2 rows with "
        "tokens or an agent message or a tool call but no cost_usd; add `pricing:` to the spec)"
    )
    assert (result.components, result.total, result.peak) == ((), None, None)
    assert result.to_dict()["headline"] == f"unavailable: {result.reason}"


# ----------------------------------------------------------------------------------------------
# Latest prices
# ----------------------------------------------------------------------------------------------


def test_prices_are_fixed_at_the_latest_effective_price(shipped_spec: Spec) -> None:
    pricing = PricingSpec(
        prices=(
            ModelPrice("m1", 10.0, 10.0, effective_from=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
            ModelPrice(
                "m1",
                2.0,
                3.0,
                effective_from=dt.datetime(2026, 9, 1, tzinfo=dt.UTC),
                aliases=("m1-alias",),
            ),
        )
    )
    assert latest_prices(pricing).prices == (ModelPrice("m1", 2.0, 3.0, aliases=("m1-alias",)),)
    spec = dataclasses.replace(shipped_spec, pricing=pricing)
    # 1,000 tokens in and out each at $2 + $3 per 1M = $0.005, whatever the log reported
    ev = [agent("a", 0.1, 99.0, tokens=1000), agent("b", 1.2, None, tokens=1000)]
    result = project(spec, tiny(ev, []))
    llm = next(c for c in result.components if c.name == "llm")
    assert llm.per_conversation == pytest.approx(0.005)
    assert result.status == "priced"
    assert result.assumptions[0] == (
        "prices fixed at each model's latest effective price in `pricing:` (every row with "
        "tokens repriced, reported costs ignored): m1 since 2026-09-01: $2 in / $3 out per 1M "
        "tokens"
    )
    # a reported cost without tokens cannot be repriced: unknown, not zero
    ev.append(agent("c", 2.5, 1.0, tokens=None))
    partial = project(spec, tiny(ev, []))
    assert (partial.status, partial.priced) == ("partially_priced", 2)


# ----------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------


def test_cli_project_table_json_markdown_and_output(tmp_path: Path) -> None:
    table = runner.invoke(app, ["project", *SAMPLE, "-c", str(ROOT / "kpi_definitions.yaml")])
    assert table.exit_code == 0, table.output
    assert "Cost at 10x volume" in table.stdout
    assert "Cost projection partially priced (1,982 of 2,000 conversations)." in table.stdout
    assert table.stderr == (
        "kpictl: note: cost projection partially priced (1,982 of 2,000 conversations)\n"
    )
    out = tmp_path / "p.json"
    js = runner.invoke(
        app,
        [
            "project",
            *SAMPLE,
            "-c",
            str(ROOT / "kpi_definitions.yaml"),
            "--volume",
            "50000/month",
            "-f",
            "json",
            "-o",
            str(out),
        ],
    )
    assert js.exit_code == 0 and js.stdout == ""
    document = json.loads(out.read_text())
    assert document["projected_conversations_per_month"] == pytest.approx(50000)
    assert document["observed"]["conversations_per_month"] == pytest.approx(
        2000 * MONTH_HOURS / 718
    )
    assert [c["name"] for c in document["components"]] == ["llm", "tools", "human"]
    md = runner.invoke(
        app, ["project", *SAMPLE, "-c", str(ROOT / "kpi_definitions.yaml"), "-f", "markdown"]
    )
    assert md.exit_code == 0
    assert md.stdout.startswith("# Cost at 10x volume\n")
    assert "| component | per conversation | per month | interval |" in md.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--volume", "10"],
            "kpictl: error: --volume '10': expected a multiple of the observed "
            "volume such as 10x, or conversations per period such as 50000/month (per hour, day, "
            "week or month), above 0\n",
        ),
        (
            ["--volume", "0x"],
            "kpictl: error: --volume '0x': expected a multiple of the observed "
            "volume such as 10x, or conversations per period such as 50000/month (per hour, day, "
            "week or month), above 0\n",
        ),
        (
            ["--draws", "50"],
            "kpictl: error: --draws 50: expected at least 100 bootstrap resamples\n",
        ),
    ],
)
def test_cli_project_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(
        app, ["project", *SAMPLE, "-c", str(ROOT / "kpi_definitions.yaml"), *args]
    )
    assert result.exit_code == 2
    assert result.stderr == message


def test_cli_project_unavailable_says_why(tmp_path: Path, shipped_spec_path: Path) -> None:
    logs = tmp_path / "events.jsonl"
    logs.write_text(
        json.dumps(
            {
                "conversation_id": "a",
                "ts": "2026-10-01T00:00:00Z",
                "event": "message",
                "role": "agent",
                "input_tokens": 5,
            }
        )
        + "\n"
    )
    calls = tmp_path / "calls.jsonl"
    calls.write_text(
        json.dumps(
            {
                "conversation_id": "a",
                "ts": "2026-10-01T00:00:01Z",
                "tool": "t",
                "status": "ok",
                "cost_usd": 0.1,
            }
        )
        + "\n"
    )
    result = runner.invoke(
        app,
        [
            "project",
            str(logs),
            "--source",
            f"tool_calls={calls}",
            "-c",
            str(shipped_spec_path),
            "-f",
            "markdown",
        ],
    )
    assert result.exit_code == 0, result.output
    reason = (
        "no conversation is fully priced (1 of 1 have a cost that is unknown: 1 rows with "
        "tokens or an agent message or a tool call but no cost_usd; add `pricing:` to the "
        "spec)"
    )
    assert f"Cost projection unavailable: {reason}." in result.stdout
    assert result.stderr == f"kpictl: note: cost projection unavailable: {reason}\n"


# ----------------------------------------------------------------------------------------------
# The scorecard's Cost at scale section (report --project)
# ----------------------------------------------------------------------------------------------


def test_report_project_section_is_the_projection_of_the_current_arm(shipped_spec: Spec) -> None:
    from kpictl.comparison import CompareOptions, run_compare
    from kpictl.projection import project_costs
    from kpictl.render.markdown import projection_markdown
    from kpictl.scorecard.report import ReportOptions, run_report

    sources = load_sources(shipped_spec)
    markdown = run_report(shipped_spec, sources, ReportOptions(project="10x")).markdown
    window = run_compare(shipped_spec, sources, CompareOptions(baseline="holdout")).current_window
    arm = Slice("treatment arm", sources, window, "arm = 'treatment'")
    expected = projection_markdown(
        project_costs(shipped_spec, arm, ProjectionOptions(parse_volume("10x"))), level=2
    )
    section = markdown[markdown.index("## Cost at 10x volume") : markdown.index("## Data quality")]
    assert section.splitlines()[2] == (
        "Projected from the treatment arm: the conversations started in the period and their "
        "costs up to as-of (`kpictl project` on the same data)."
    )
    assert "\n".join(expected[2:]).strip() in section
    assert "| total | $0.8355 | $14,068.06 |" in section
    assert "Cost projection partially priced (1,638 of 1,655 conversations)." in section
    plain = run_report(shipped_spec, sources, ReportOptions()).markdown
    assert "## Cost at" not in plain


def test_report_project_bad_volume_is_a_usage_error() -> None:
    result = runner.invoke(
        app, ["report", *SAMPLE, "-c", str(ROOT / "kpi_definitions.yaml"), "--project", "ten"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "kpictl: error: --project 'ten': expected a multiple of the observed volume such as 10x, "
        "or conversations per period such as 50000/month (per hour, day, week or month), "
        "above 0\n"
    )


def test_a_sources_rows_are_read_alike_by_compute_and_costs(shipped_spec: Spec) -> None:
    """One definition of a source's rows (engine.compute.source_rows: the rows up to as-of and
    those without a time): at an as-of inside the data, the costs of each conversation that
    project and report sum equal compute's rollup (llm_cost, tool_cost, human_minutes) and
    DuckDB's sums over the rows with ts <= as-of."""
    from kpictl.engine.compute import facts
    from kpictl.engine.costs import conversation_costs

    sources = load_sources(shipped_spec)
    as_of = dt.datetime(2026, 10, 15, 12, tzinfo=dt.UTC)
    window = resolve_window(shipped_spec, sources, ComputeOptions(as_of=as_of))
    rollup = facts(shipped_spec, sources, as_of=as_of).sort("conversation_id")
    keys = rollup.select("conversation_id")
    costs = conversation_costs(shipped_spec, Slice("all", sources, window), keys)
    costs = costs.sort("conversation_id")
    for column in ("llm_cost", "tool_cost", "human_minutes"):
        np.testing.assert_allclose(costs[column], rollup[column].cast(pl.Float64), rtol=1e-12)
    con = duckdb.connect()
    for name in ("events", "tool_calls"):
        con.register(name, ArrowStream(sources[name].collect()))
    rows = con.execute(
        """
        SELECT conversation_id,
               COALESCE((SELECT SUM(cost_usd) FROM events e WHERE e.conversation_id = k.id
                         AND (e.ts IS NULL OR e.ts <= $as_of)), 0) AS llm_cost,
               COALESCE((SELECT SUM(cost_usd) FROM tool_calls t WHERE t.conversation_id = k.id
                         AND (t.ts IS NULL OR t.ts <= $as_of)), 0) AS tool_cost
        FROM (SELECT DISTINCT conversation_id, conversation_id AS id FROM events
              WHERE ts <= $as_of) k ORDER BY conversation_id
        """,
        {"as_of": as_of},
    ).fetchall()
    assert [r[0] for r in rows] == costs["conversation_id"].to_list()
    np.testing.assert_allclose(costs["llm_cost"], [float(r[1]) for r in rows], rtol=1e-9)
    np.testing.assert_allclose(costs["tool_cost"], [float(r[2]) for r in rows], rtol=1e-9)
    later = pl.col("ts") > as_of
    assert sources["events"].filter(later).select(pl.len()).collect().item() > 0
