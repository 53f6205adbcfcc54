"""compare --sequential / --cuped / --heterogeneity and pass^k in compare (issue 15, part 4).

Every number is checked against an independent computation (numpy, scipy, statsmodels) or a
simulation whose figures are stated next to the assertion.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from typer.testing import CliRunner

from kpictl import stats
from kpictl.cli import app
from kpictl.comparison import (
    Cell,
    CompareOptions,
    heterogeneity_notes,
    heterogeneity_tests,
    run_compare,
)
from kpictl.engine.compute import facts
from kpictl.engine.sources import load_sources
from kpictl.errors import SpecError
from kpictl.io.read import Sources
from kpictl.sample import write_sample
from kpictl.spec import load_spec
from kpictl.spec.model import Spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"
ALPHA = 0.05
runner = CliRunner()


def row(table: pl.DataFrame, kpi: str, **cohort: str) -> dict[str, Any]:
    rows = [
        r
        for r in table.iter_rows(named=True)
        if r["kpi"] == kpi
        and sorted(r["grouping"]) == sorted(cohort)
        and all(r[k] == v for k, v in cohort.items())
    ]
    assert len(rows) == 1, (kpi, cohort, len(rows))
    return rows[0]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Spec, Sources, pl.DataFrame]:
    folder = tmp_path_factory.mktemp("experiments")
    write_sample(folder, conversations=1500, seed=7, fmt="parquet")
    spec = load_spec(SPEC)
    sources = load_sources(
        spec, {"events": [folder / "events"], "tool_calls": [folder / "tool_calls"]}
    )
    events = pl.read_parquet(folder / "events" / "events.parquet")
    return spec, sources, events


# ----------------------------------------------------------------------------------------------
# --sequential
# ----------------------------------------------------------------------------------------------


def mixture_multiplier(n: float, n_star: float = 5000.0, alpha: float = ALPHA) -> float:
    """Half-width / SE of the normal-mixture confidence sequence (docs/methods.md A9), by hand."""
    rho2 = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / n_star
    x = n * rho2
    return math.sqrt((x + 1) / x * math.log((x + 1) / alpha**2))


def mixture_p(z: float, n: float, n_star: float = 5000.0, alpha: float = ALPHA) -> float:
    rho2 = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / n_star
    x = n * rho2
    return min(1.0, math.sqrt(1 + x) * math.exp(-x / (2 * (x + 1)) * z * z))


def test_sequential_tokens_per_task_by_hand(sample: tuple[Spec, Sources, pl.DataFrame]) -> None:
    spec, sources, events = sample
    result = run_compare(
        spec,
        sources,
        CompareOptions(baseline="holdout", sequential=True, kpis=("tokens_per_task",)),
    )
    per_conv = events.group_by("conversation_id").agg(
        (pl.col("input_tokens").fill_null(0).sum() + pl.col("output_tokens").fill_null(0).sum())
        .cast(pl.Float64)
        .alias("tokens"),
        pl.col("arm").drop_nulls().first(),
    )
    base = per_conv.filter(pl.col("arm") == "holdout")["tokens"].to_numpy()
    cur = per_conv.filter(pl.col("arm") == "treatment")["tokens"].to_numpy()
    delta = cur.mean() - base.mean()
    se = math.sqrt(cur.var(ddof=1) / cur.size + base.var(ddof=1) / base.size)
    n = cur.size + base.size
    half = se * mixture_multiplier(n)
    r = row(result.table, "tokens_per_task")
    assert r["test"] == "welch_t+sequential"
    assert r["delta"] == pytest.approx(delta, rel=1e-9)
    assert (r["delta_low"], r["delta_high"]) == (
        pytest.approx(delta - half, rel=1e-9),
        pytest.approx(delta + half, rel=1e-9),
    )
    assert r["p_value"] == pytest.approx(mixture_p(delta / se, n), rel=1e-9)
    # wider than the fixed-horizon Welch CI
    fixed = sps.ttest_ind(cur, base, equal_var=False).confidence_interval(0.95)
    assert r["delta_high"] - r["delta_low"] > fixed.high - fixed.low
    assert result.design.label == (
        "randomized holdout (concurrent control); sequential: "
        "always-valid CIs and p-values (N* = 5000), valid at every look"
    )


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
                stats.mean_summary(k, float(xb.sum()), float(xb @ xb)),
            )
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


BUNDLED = [
    str(ROOT / "sample_logs" / "events"),
    "--source",
    f"tool_calls={ROOT / 'sample_logs' / 'tool_calls'}",
    "-c",
    str(SPEC),
    "--baseline",
    "holdout",
]


def test_cli_sequential_markdown_header_and_bad_n_star() -> None:
    code, out, err = cli(
        *BUNDLED,
        "--sequential",
        "--n-star",
        "2000",
        "--kpi",
        "task_completion_rate",
        "--format",
        "markdown",
    )
    assert code == 0, err
    assert out.startswith(
        "# Comparison: randomized holdout (concurrent control); sequential: "
        "always-valid CIs and p-values (N* = 2000), valid at every look\n"
    )
    assert "+sequential" in out
    code, _, err = cli(*BUNDLED, "--sequential", "--n-star", "0")
    assert code == 2
    assert "--n-star 0: expected the planned number of units, e.g. 5000" in err


# ----------------------------------------------------------------------------------------------
# --cuped
# ----------------------------------------------------------------------------------------------


def cuped_sums(y: np.ndarray, w: np.ndarray) -> stats.CupedSums:
    return stats.CupedSums(
        y.size, float(y.sum()), float(y @ y), float(w.sum()), float(w @ w), float(y @ w)
    )


def test_cuped_is_ancova_on_a_tiny_dataset() -> None:
    """With the same covariate mean in both arms, pooled θ is the OLS slope of y ~ treat + w,
    Δ is the OLS treatment coefficient, and the CUPED (Welch) SE² is the OLS SE² times
    (2n − 3)/(2(n − 1)) for n units per arm (OLS pools the residual variance over 2n − 3 df)."""
    import statsmodels.api as sm

    w_a = np.array([3.0, 5.0, 2.0, 8.0, 6.0, 4.0])
    w_b = np.array([6.0, 2.0, 8.0, 4.0, 3.0, 5.0])  # a permutation: the same mean
    y_a = np.array([10.0, 14.0, 7.0, 21.0, 15.0, 12.0])
    y_b = np.array([17.0, 9.0, 22.0, 13.0, 11.0, 16.0])
    comparison = stats.compare_cuped(cuped_sums(y_a, w_a), cuped_sums(y_b, w_b))
    design = np.column_stack([np.ones(12), np.r_[np.zeros(6), np.ones(6)], np.r_[w_a, w_b]])
    ols = sm.OLS(np.r_[y_a, y_b], design).fit()
    assert comparison.test == "cuped" and comparison.absolute is not None
    assert stats.cuped_theta(cuped_sums(y_a, w_a), cuped_sums(y_b, w_b)) == pytest.approx(
        ols.params[2], rel=1e-12
    )
    assert comparison.absolute.estimate == pytest.approx(ols.params[1], rel=1e-12)
    n = 6
    assert comparison.absolute.se == pytest.approx(
        ols.bse[1] * math.sqrt((2 * n - 3) / (2 * (n - 1))), rel=1e-12
    )


def test_cuped_coverage_and_variance_reduction_by_simulation() -> None:
    """300 experiments, 200 units per arm, y = 0.8·w + noise (corr ≈ 0.8), true effect 0.5:
    the CUPED 95 % CI covers the effect in 0.94–0.96 of runs (measured 0.953) and removes
    ρ² ≈ 64 % of the variance of Δ (measured mean 0.64)."""
    rng = np.random.default_rng(15)
    reps, n, effect = 300, 200, 0.5
    covered, removed = 0, []
    for _ in range(reps):
        w_a, w_b = rng.normal(10, 1, n), rng.normal(10, 1, n)
        y_a = 0.8 * w_a + rng.normal(0, 0.6, n)
        y_b = 0.8 * w_b + rng.normal(0, 0.6, n) + effect
        a, b = cuped_sums(y_a, w_a), cuped_sums(y_b, w_b)
        comparison = stats.compare_cuped(a, b)
        assert comparison.absolute is not None
        covered += comparison.absolute.low <= effect <= comparison.absolute.high
        plain = y_a.var(ddof=1) / n + y_b.var(ddof=1) / n
        removed.append(1 - comparison.absolute.se**2 / plain)
    slack = 2.5 * math.sqrt(0.95 * 0.05 / reps)  # 0.032
    assert abs(covered / reps - 0.95) <= slack
    assert float(np.mean(removed)) == pytest.approx(0.64, abs=0.03)


CUPED_ATTRIBUTE = (
    "attributes: [channel, intent, customer_tier, region, agent_version, arm, user_id]"
)


@pytest.fixture(scope="module")
def cuped_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Spec, Sources, pl.DataFrame]:
    """The sample with its `pre_tokens` replaced by one generated here (not `kpictl sample`'s):
    0.7 × its tokens + noise, missing for every 10th conversation, declared an attribute."""
    folder = tmp_path_factory.mktemp("cuped")
    write_sample(folder, conversations=1500, seed=7, fmt="parquet")
    events = pl.read_parquet(folder / "events" / "events.parquet")
    per_conv = (
        events.group_by("conversation_id")
        .agg(
            (pl.col("input_tokens").fill_null(0).sum() + pl.col("output_tokens").fill_null(0).sum())
            .cast(pl.Float64)
            .alias("tokens"),
            pl.col("arm").drop_nulls().first(),
        )
        .sort("conversation_id")
    )
    rng = np.random.default_rng(3)
    pre = 0.7 * per_conv["tokens"].to_numpy() + rng.normal(0, 300, per_conv.height)
    pre[::10] = np.nan
    per_conv = per_conv.with_columns(pl.Series("pre_tokens", pre).fill_nan(None))
    events.drop("pre_tokens").join(
        per_conv.select("conversation_id", "pre_tokens"), on="conversation_id", how="left"
    ).write_parquet(folder / "events" / "events.parquet")
    text = SPEC.read_text().replace(CUPED_ATTRIBUTE, CUPED_ATTRIBUTE[:-1] + ", pre_tokens]")
    spec_path = folder / "spec.yaml"
    spec_path.write_text(text)
    spec = load_spec(spec_path)
    sources = load_sources(
        spec, {"events": [folder / "events"], "tool_calls": [folder / "tool_calls"]}
    )
    return spec, sources, per_conv


def test_cuped_tokens_per_task_against_numpy(
    cuped_sample: tuple[Spec, Sources, pl.DataFrame],
) -> None:
    spec, sources, per_conv = cuped_sample
    plain = run_compare(
        spec, sources, CompareOptions(baseline="holdout", kpis=("tokens_per_task",))
    )
    result = run_compare(
        spec,
        sources,
        CompareOptions(baseline="holdout", cuped="pre_tokens", kpis=("tokens_per_task",)),
    )
    w_all = per_conv["pre_tokens"].to_numpy().astype(float)
    fill = np.nanmean(w_all)
    arms = {}
    for label in ("holdout", "treatment"):
        part = per_conv.filter(pl.col("arm") == label)
        w = part["pre_tokens"].fill_null(fill).to_numpy()
        arms[label] = (part["tokens"].to_numpy(), w)
    y = np.r_[arms["holdout"][0], arms["treatment"][0]]
    w = np.r_[arms["holdout"][1], arms["treatment"][1]]
    theta = np.cov(y, w, ddof=1)[0, 1] / w.var(ddof=1)
    adj = {k: v[0] - theta * v[1] for k, v in arms.items()}
    delta = adj["treatment"].mean() - adj["holdout"].mean()
    ref = sps.ttest_ind(adj["treatment"], adj["holdout"], equal_var=False)
    ci = ref.confidence_interval(0.95)
    r = row(result.table, "tokens_per_task")
    p = row(plain.table, "tokens_per_task")
    assert r["test"] == "cuped_welch_t"
    assert r["cuped_theta"] == pytest.approx(theta, rel=1e-9)
    assert r["delta"] == pytest.approx(delta, rel=1e-9)
    assert (r["delta_low"], r["delta_high"]) == (
        pytest.approx(ci.low, rel=1e-8),
        pytest.approx(ci.high, rel=1e-8),
    )
    assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-7)
    plain_var = (
        arms["treatment"][0].var(ddof=1) / arms["treatment"][0].size
        + arms["holdout"][0].var(ddof=1) / arms["holdout"][0].size
    )
    cuped_var = (
        adj["treatment"].var(ddof=1) / adj["treatment"].size
        + adj["holdout"].var(ddof=1) / adj["holdout"].size
    )
    removed = 1 - cuped_var / plain_var
    assert r["variance_reduction"] == pytest.approx(removed, rel=1e-9)
    assert removed > 0.3
    assert r["delta_high"] - r["delta_low"] < p["delta_high"] - p["delta_low"]
    missing = int(per_conv["pre_tokens"].is_null().sum())
    assert (
        f"{missing} units without pre_tokens: set to the pooled mean {fill:.4g} (kept, not "
        "adjusted)" in r["warnings"]
    )
    assert (
        f"CUPED on pre_tokens: θ = {theta:.4g}, {100 * removed:.1f} % of the variance "
        f"removed (CI {100 * (1 - math.sqrt(1 - removed)):.1f} % narrower)"
    ) in r["warnings"]
    assert result.notes[-1] == (
        "--cuped pre_tokens: per-unit means and proportions are "
        "adjusted (test cuped_…); ratio, percentile and formula KPIs "
        "are not"
    )


def test_cli_cuped_unknown_column() -> None:
    code, _, err = cli(*BUNDLED, "--cuped", "pre_tokenz")
    assert code == 2
    assert (
        "kpictl: error: --cuped pre_tokenz: not a column of the unit table 'conversations' "
        "(did you mean 'tokens'?); declare the "
        "pre-period value as an attribute (or derive) there"
    ) in err


# ----------------------------------------------------------------------------------------------
# --heterogeneity
# ----------------------------------------------------------------------------------------------


def test_heterogeneity_q_on_tokens_by_tier_against_hand_and_scipy(
    sample: tuple[Spec, Sources, pl.DataFrame],
) -> None:
    spec, sources, events = sample
    result = run_compare(
        spec,
        sources,
        CompareOptions(
            baseline="holdout", by=("customer_tier",), heterogeneity=True, kpis=("tokens_per_task",)
        ),
    )
    per_conv = events.group_by("conversation_id").agg(
        (pl.col("input_tokens").fill_null(0).sum() + pl.col("output_tokens").fill_null(0).sum())
        .cast(pl.Float64)
        .alias("tokens"),
        pl.col("arm").drop_nulls().first(),
        pl.col("customer_tier").drop_nulls().first(),
    )
    deltas, ses, ps = [], [], []
    tiers = sorted(per_conv["customer_tier"].unique().to_list())
    for tier in tiers:
        part = per_conv.filter(pl.col("customer_tier") == tier)
        a = part.filter(pl.col("arm") == "holdout")["tokens"].to_numpy()
        b = part.filter(pl.col("arm") == "treatment")["tokens"].to_numpy()
        deltas.append(b.mean() - a.mean())
        ses.append(math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))
        ps.append(sps.ttest_ind(b, a, equal_var=False).pvalue)
    w = 1 / np.array(ses) ** 2
    pooled = (w * deltas).sum() / w.sum()
    q = float((w * (np.array(deltas) - pooled) ** 2).sum())
    (test,) = result.heterogeneity
    assert (test.kpi, test.dimension) == ("tokens_per_task", "customer_tier")
    assert test.test is not None
    assert test.test.q == pytest.approx(q, rel=1e-9)
    assert test.test.df == len(tiers) - 1
    assert test.test.p_value == pytest.approx(sps.chi2.sf(q, len(tiers) - 1), rel=1e-9)
    assert [g.group for g in test.groups] == tiers
    assert [g.delta for g in test.groups] == pytest.approx(deltas, rel=1e-9)
    holm = multipletests(ps, method="holm")[1]
    assert [g.p_holm for g in test.groups] == pytest.approx(list(holm), rel=1e-7)


def test_heterogeneity_flags_a_group_worse_while_better_overall() -> None:
    """Hand-made effects: overall +5 pp (p = 0.001); tier a +8 pp (SE 1 pp), b −3 pp (SE 2 pp),
    c +6 pp (SE 3 pp). Q by hand: pooled Δ̄ = (8·1 − 3·0.25 + 6/9)/(1 + 0.25 + 1/9)."""
    spec = load_spec(SPEC)
    kpi = spec.kpis["task_completion_rate"]

    def cell(cohort: dict[str, str | None], delta: float, se: float, p: float) -> Cell:
        interval = stats.Interval(delta, se, delta - 1.96 * se, delta + 1.96 * se)
        comparison = stats.Comparison("proportion_t", 0.5, 0.5 + delta, interval, None, p, None)
        return Cell(kpi, cohort, tuple(cohort), comparison, 500, 500, 0, 0)

    cells = [
        cell({}, 0.05, 0.015, 0.001),
        cell({"tier": "a"}, 0.08, 0.01, 1e-6),
        cell({"tier": "b"}, -0.03, 0.02, 0.13),
        cell({"tier": "c"}, 0.06, 0.03, 0.046),
    ]
    (test,) = heterogeneity_tests(cells, CompareOptions(by=("tier",), heterogeneity=True))
    w = np.array([1 / 0.01**2, 1 / 0.02**2, 1 / 0.03**2])
    d = np.array([0.08, -0.03, 0.06])
    pooled = (w @ d) / w.sum()
    q = float(w @ (d - pooled) ** 2)
    assert test.test is not None and test.test.q == pytest.approx(q, rel=1e-12)
    assert test.test.p_value == pytest.approx(sps.chi2.sf(q, 2), rel=1e-12)
    assert test.better_overall
    assert [g.worse for g in test.groups] == [False, True, False]
    assert [g.p_holm for g in test.groups] == pytest.approx([3e-6, 0.13, 0.092])
    assert heterogeneity_notes(test, ALPHA) == [
        f"task_completion_rate: the effect differs across tier (Cochran's Q = {q:.4g}, df = 2, "
        f"p = {sps.chi2.sf(q, 2):.4g})",
        "task_completion_rate: worse than the baseline for tier=b (Δ -0.03, Holm p = 0.13) "
        "while better overall (Δ +0.05)",
    ]
    # not better overall when the overall effect is not significant: nothing flagged
    cells[0] = cell({}, 0.05, 0.03, 0.09)
    (test,) = heterogeneity_tests(cells, CompareOptions(by=("tier",), heterogeneity=True))
    assert not test.better_overall and not any(g.worse for g in test.groups)


def test_cli_heterogeneity_needs_by() -> None:
    code, _, err = cli(*BUNDLED, "--heterogeneity")
    assert code == 2
    assert err == "kpictl: error: --heterogeneity needs --by COLUMN (the groups to compare)\n"


def test_cli_heterogeneity_json_and_table() -> None:
    code, out, err = cli(
        *BUNDLED,
        "--by",
        "customer_tier",
        "--heterogeneity",
        "--kpi",
        "escalation_rate",
        "--format",
        "json",
    )
    assert code == 0, err
    document = json.loads(out)
    (test,) = document["heterogeneity"]
    assert test["kpi"] == "escalation_rate" and test["test"] == "cochran_q"
    assert [g["group"] for g in test["groups"]] == ["enterprise", "free", "pro"]
    code, out, err = cli(
        *BUNDLED, "--by", "customer_tier", "--heterogeneity", "--kpi", "escalation_rate"
    )
    assert code == 0, err
    assert (
        f"Heterogeneity: escalation_rate across customer_tier: Cochran's Q = "
        f"{test['q']:.4g}, df = 2, p = "
    ) in out


# ----------------------------------------------------------------------------------------------
# fairness: in the spec
# ----------------------------------------------------------------------------------------------


def spec_with(tmp_path: Path, fairness: str) -> Path:
    path = tmp_path / "spec.yaml"
    text = SPEC.read_text().replace("path: sample_logs/", f"path: {ROOT}/sample_logs/")
    path.write_text(text + fairness)
    return path


def test_fairness_section_problems_are_located(tmp_path: Path) -> None:
    lines = len(SPEC.read_text().splitlines())
    path = spec_with(
        tmp_path,
        "fairness:\n"
        "  customer_tier:\n"
        "    task_completion_rate: {max_gap: 10%}\n"
        "    completion_rate: {max_gap: 5pp}\n"
        "    escalation_rate: {gap: 5pp}\n"
        "  tierz:\n"
        "    task_completion_rate: {max_gap: 5pp}\n",
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{lines + 3}: fairness.customer_tier.task_completion_rate.max_gap: '10%': a gap "
        "is a difference between groups: write pp (5pp) or an absolute amount",
        f"{path}:{lines + 4}: fairness.customer_tier.completion_rate: no KPI named "
        "'completion_rate' (did you mean 'task_completion_rate' or 'escalation_rate' or "
        "'policy_violation_rate'?)",
        f"{path}:{lines + 5}: fairness.customer_tier.escalation_rate: expected {{max_gap: 5pp}} "
        "(or an absolute amount)",
        f"{path}:{lines + 6}: fairness.tierz: not a column of the unit table",
    ]


def test_fairness_gap_against_hand_computation(tmp_path: Path) -> None:
    """Current-arm task completion by customer tier, tiers with ≥ min_sample (200) units; the
    gap is highest − lowest, a finding when above max_gap."""
    path = spec_with(
        tmp_path, "fairness:\n  customer_tier:\n    task_completion_rate: {max_gap: 3pp}\n"
    )
    spec = load_spec(path)
    sources = load_sources(spec, {})
    result = run_compare(
        spec, sources, CompareOptions(baseline="holdout", kpis=("task_completion_rate",))
    )
    conversations = facts(spec, sources).filter(pl.col("settled") & (pl.col("arm") == "treatment"))
    rates = (
        conversations.group_by("customer_tier")
        .agg(pl.col("completed").mean().alias("rate"), pl.len().alias("n"))
        .filter(pl.col("n") >= 200)
        .sort("rate")
    )
    low, high = rates.row(0, named=True), rates.row(-1, named=True)
    gap = high["rate"] - low["rate"]
    assert gap > 0.03
    (finding,) = result.fairness
    assert finding.breached and finding.gap == pytest.approx(gap, rel=1e-12)
    assert finding.low == (low["customer_tier"], pytest.approx(low["rate"], rel=1e-12))
    assert finding.high == (high["customer_tier"], pytest.approx(high["rate"], rel=1e-12))
    note = (
        f"fairness: task_completion_rate gap across customer_tier is {100 * gap:.1f} pp "
        f"({low['customer_tier']} {100 * low['rate']:.1f} % vs {high['customer_tier']} "
        f"{100 * high['rate']:.1f} %), ABOVE max_gap 3pp"
    )
    assert note in result.notes
    # the groups are compared without --by, but stay out of the table and the Holm family
    plain = run_compare(
        spec, sources, CompareOptions(baseline="holdout", kpis=("task_completion_rate",))
    )
    assert result.table.height == 1
    assert result.table["p_adjusted"].to_list() == plain.table["p_adjusted"].to_list()
    (interaction,) = result.heterogeneity  # and get the interaction test
    assert (interaction.kpi, interaction.dimension) == ("task_completion_rate", "customer_tier")
    code, out, err = cli(
        "-c",
        str(path),
        "--baseline",
        "holdout",
        "--kpi",
        "task_completion_rate",
        "--format",
        "markdown",
    )
    assert code == 0, err
    assert f"## Fairness\n\n- {note}\n" in out


def test_report_has_a_fairness_section(tmp_path: Path) -> None:
    path = spec_with(
        tmp_path, "fairness:\n  customer_tier:\n    task_completion_rate: {max_gap: 3pp}\n"
    )
    out = tmp_path / "report.md"
    result = runner.invoke(
        app, ["report", "-c", str(path), "--baseline", "holdout", "-o", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    text = out.read_text()
    section = text[text.index("## Fairness across groups") : text.index("## ROI")]
    assert "ABOVE max_gap 3pp" in section
    assert "task_completion_rate across customer_tier: Cochran's Q = " in section


# ----------------------------------------------------------------------------------------------
# pass^k / pass@k in compare
# ----------------------------------------------------------------------------------------------

PASS_SPEC = """\
version: 1
defaults: {min_sample: 2}
sources:
  events:
    path: events/
    columns:
      ts: {from: ts, type: timestamp}
      task_id: {from: task_id, type: str}
      reward: {from: reward, type: float}
tables:
  trials:
    key: conversation_id
    time: started_at
    attributes: [task_id]
    rollup:
      events:
        started_at: MIN(ts)
        final_reward: FIRST(reward)
    derive:
      solved: final_reward >= 1
kpis:
  pass_hat_2:
    over: trials
    pass_k: {k: 2, task: task_id, success: solved}
  pass_at_2:
    over: trials
    pass_at_k: {k: 2, task: task_id, success: solved}
"""


def write_trials(folder: Path, outcomes: dict[str, list[int]]) -> Sources:
    """One conversation per trial: task id, reward 1 (solved) or 0, a minute apart."""
    rows = []
    minute = 0
    for task, rewards in outcomes.items():
        for trial, reward in enumerate(rewards):
            minute += 1
            rows.append(
                {
                    "conversation_id": f"{folder.name}-{task}-{trial}",
                    "task_id": task,
                    "ts": f"2026-01-01T{minute // 60:02d}:{minute % 60:02d}:00Z",
                    "event": "message",
                    "reward": reward,
                }
            )
    (folder / "events").mkdir(parents=True)
    (folder / "events" / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "spec.yaml").write_text(PASS_SPEC)
    return load_sources(load_spec(folder / "spec.yaml"), {"events": [folder / "events"]})


BASE_TRIALS = {"t1": [1, 1, 0], "t2": [0, 0, 1], "t3": [1, 1, 1, 1], "t4": [0, 1]}
CUR_TRIALS = {"t1": [1, 1, 1], "t2": [1, 0, 1], "t3": [1, 1, 1, 0], "t4": [1, 1]}
# pass^2 = C(c,2)/C(n,2) by hand, per task t1..t4
BASE_HAT = [1 / 3, 0.0, 1.0, 0.0]
CUR_HAT = [1.0, 1 / 3, 0.5, 1.0]


def test_pass_k_paired_bootstrap_against_hand_numpy(tmp_path: Path) -> None:
    base = write_trials(tmp_path / "base", BASE_TRIALS)
    cur = write_trials(tmp_path / "cur", CUR_TRIALS)
    spec = load_spec(tmp_path / "cur" / "spec.yaml")
    result = run_compare(spec, cur, CompareOptions(kpis=("pass_hat_2",)), baseline_sources=base)
    r = row(result.table, "pass_hat_2")
    assert r["test"] == "pass_k_paired_bootstrap"
    assert (r["baseline_n"], r["current_n"]) == (4, 4)
    assert r["baseline_value"] == pytest.approx(np.mean(BASE_HAT), rel=1e-12)
    assert r["current_value"] == pytest.approx(np.mean(CUR_HAT), rel=1e-12)
    # the same bootstrap by hand: 1,000 multinomial resamples of the 4 tasks, seed 20261122
    d = np.array(CUR_HAT) - np.array(BASE_HAT)
    rng = np.random.default_rng(CompareOptions().seed)
    w = rng.multinomial(4, [0.25] * 4, size=1000)
    draws = w @ d / 4
    low, high = np.quantile(draws, [0.025, 0.975])
    assert r["delta"] == pytest.approx(d.mean(), rel=1e-12)
    assert (r["delta_low"], r["delta_high"]) == (
        pytest.approx(low, rel=1e-12),
        pytest.approx(high, rel=1e-12),
    )
    tail = min((draws <= 0).sum(), (draws >= 0).sum())
    assert r["p_value"] == pytest.approx(min(1.0, 2 * (tail + 1) / 1001), rel=1e-12)


def test_paired_bootstrap_se_matches_the_exact_bootstrap_distribution() -> None:
    """3 paired tasks: the bootstrap distribution is exactly the 27 equally likely ordered
    draws, SD = √(Σ(dᵢ − d̄)²/3 / 3); 40,000 resamples land within 2 %."""
    a, b = np.array([0.2, 0.5, 0.9]), np.array([0.6, 0.5, 1.0])
    d = b - a
    exact = np.array(
        [(d[i] + d[j] + d[k]) / 3 for i in range(3) for j in range(3) for k in range(3)]
    )
    assert exact.std() == pytest.approx(math.sqrt(d.var() / 3), rel=1e-12)
    comparison = stats.paired_bootstrap_comparison(a, b, resamples=40_000, seed=1)
    assert comparison.absolute is not None
    assert comparison.absolute.se == pytest.approx(exact.std(), rel=0.02)
    assert comparison.absolute.estimate == pytest.approx(d.mean(), rel=1e-12)
    # every draw is one of the 27 exact values
    assert comparison.absolute.low >= exact.min() - 1e-12
    assert comparison.absolute.high <= exact.max() + 1e-12


def test_pass_at_k_unpaired_when_tasks_differ(tmp_path: Path) -> None:
    base = write_trials(tmp_path / "base", BASE_TRIALS)
    cur = write_trials(tmp_path / "cur", {**CUR_TRIALS, "t5": [0, 0, 1]})
    spec = load_spec(tmp_path / "cur" / "spec.yaml")
    result = run_compare(spec, cur, CompareOptions(kpis=("pass_at_2",)), baseline_sources=base)
    r = row(result.table, "pass_at_2")
    # pass@2 = 1 − C(n−c,2)/C(n,2)
    base_at = np.array([1.0, 2 / 3, 1.0, 1.0])
    cur_at = np.array([1.0, 1.0, 1.0, 1.0, 2 / 3])
    assert r["test"] == "pass_k_bootstrap"
    assert r["baseline_value"] == pytest.approx(base_at.mean(), rel=1e-12)
    assert r["current_value"] == pytest.approx(cur_at.mean(), rel=1e-12)
    rng = np.random.default_rng(CompareOptions().seed)
    w_a = rng.multinomial(4, [0.25] * 4, size=1000)
    w_b = rng.multinomial(5, [0.2] * 5, size=1000)
    draws = w_b @ cur_at / 5 - w_a @ base_at / 4
    low, high = np.quantile(draws, [0.025, 0.975])
    assert (r["delta_low"], r["delta_high"]) == (
        pytest.approx(low, rel=1e-12),
        pytest.approx(high, rel=1e-12),
    )
    assert (
        "the arms ran different tasks (4 shared): unpaired bootstrap over each arm's tasks"
        in r["warnings"]
    )
