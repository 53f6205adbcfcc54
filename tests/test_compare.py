"""`kpictl compare`: the plumbing from logs to tests, checked against independent computations.

Every expected number here is computed in the test from per-unit arrays extracted with plain
polars (raw parquet/JSONL rows, or `kpictl.engine.compute.facts` for derived conversation columns
such
as `settled` and `completed`) and then numpy / scipy / statsmodels directly, following
docs/methods.md (A1–A8, A12, A13). `kpictl.stats` itself is tested in tests/test_stats.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from dataclasses import dataclass, replace
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
from kpictl.comparison import CompareOptions, CompareResult, run_compare, verdict
from kpictl.engine.compute import facts, run_compute
from kpictl.engine.interface import ComputeOptions
from kpictl.engine.sources import load_sources
from kpictl.io.read import Sources
from kpictl.sample import write_sample
from kpictl.spec import load_spec
from kpictl.spec.model import KpiSpec, Spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"
UTC = dt.UTC
ALPHA = 0.05
runner = CliRunner()


# ----------------------------------------------------------------------------------------------
# Independent reference computations (numpy / scipy only)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Welch:
    delta: float
    se: float
    df: float
    low: float
    high: float
    p: float


def welch(m_a: float, s2_a: float, n_a: int, m_b: float, s2_b: float, n_b: int) -> Welch:
    """A1: Δ = m_B − m_A, SE² = s²_A/n_A + s²_B/n_B, Welch–Satterthwaite df, t CI and p."""
    va, vb = s2_a / n_a, s2_b / n_b
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    delta = m_b - m_a
    half = sps.t.ppf(1 - ALPHA / 2, df) * se
    return Welch(delta, se, df, delta - half, delta + half, 2 * sps.t.sf(abs(delta / se), df))


def relative_delta(
    m_a: float, s2_a: float, n_a: int, m_b: float, s2_b: float, n_b: int, df: float
) -> tuple[float, float, float]:
    """A1 relative lift (m_B − m_A)/|m_A| with its delta-method CI at the Welch df."""
    rel = (m_b - m_a) / abs(m_a)
    se = math.sqrt(s2_b / (m_a**2 * n_b) + s2_a * m_b**2 / (m_a**4 * n_a))
    half = sps.t.ppf(1 - ALPHA / 2, df) * se
    return rel, rel - half, rel + half


def delta_ratio(m: np.ndarray, d: np.ndarray) -> tuple[float, float, int]:
    """A4: R = ΣM/ΣD and s²_R = [s²_M − 2R·s_MD + R²·s²_D]/D̄² (n − 1 moments), n units."""
    m, d = np.asarray(m, dtype=float), np.asarray(d, dtype=float)
    ratio = m.sum() / d.sum()
    cov = np.cov(m, d, ddof=1)
    s2 = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / d.mean() ** 2
    return float(ratio), float(s2), int(m.size)


def outer_ci_se(values: np.ndarray, units: np.ndarray, nu: float) -> float:
    """A5: Deng–Knoblich–Yu outer-CI SE with the Yao–Li–Lu cluster adjustment."""
    z = sps.norm.ppf(1 - ALPHA / 2)
    n = values.size
    xs = np.sort(values)
    q_hat = np.quantile(values, nu, method="inverted_cdf")
    spread = z * math.sqrt(n * nu * (1 - nu))
    lower, upper = math.floor(n * nu - spread), math.ceil(n * nu + spread)
    se_iid = (xs[upper - 1] - xs[lower - 1]) / (2 * z)
    per_unit = (
        pl.DataFrame({"u": units, "below": (values <= q_hat).astype(float)})
        .group_by("u")
        .agg(pl.col("below").sum().alias("s"), pl.len().cast(pl.Float64).alias("n"))
    )
    _, s2, k = delta_ratio(per_unit["s"].to_numpy(), per_unit["n"].to_numpy())
    deff = (s2 / k) / (nu * (1 - nu) / n)
    return float(se_iid * math.sqrt(deff))


def row(table: pl.DataFrame, kpi: str, **cohort: str) -> dict[str, Any]:
    """The one result row of `kpi` (overall, or the cohort given as column=value)."""
    grouping = sorted(cohort)
    rows = [
        r
        for r in table.iter_rows(named=True)
        if r["kpi"] == kpi
        and sorted(r["grouping"]) == grouping
        and all(r[k] == v for k, v in cohort.items())
    ]
    assert len(rows) == 1, (kpi, cohort, len(rows))
    return rows[0]


def approx(value: float, rel: float = 1e-9, abs_: float = 1e-12) -> Any:
    return pytest.approx(value, rel=rel, abs=abs_)


# ----------------------------------------------------------------------------------------------
# A generated holdout sample
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    spec: Spec
    sources: Sources
    facts: pl.DataFrame  # one row per conversation (kpictl's rollup + derive)
    events: pl.DataFrame  # raw parquet rows
    tool_calls: pl.DataFrame  # raw parquet rows


def arm_of(frame: pl.DataFrame, arm: str) -> pl.DataFrame:
    return frame.filter(pl.col("arm") == arm)


def sample_paths(folder: Path) -> dict[str, list[Path]]:
    names = ("events", "tool_calls", "business_events")
    return {name: [folder / name] for name in names if (folder / name).exists()}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    folder = tmp_path_factory.mktemp("holdout")
    write_sample(folder, conversations=3000, seed=11, fmt="parquet")
    spec = load_spec(SPEC)
    sources = load_sources(spec, sample_paths(folder))
    return Sample(
        spec,
        sources,
        facts(spec, sources),
        pl.read_parquet(folder / "events" / "events.parquet"),
        pl.read_parquet(folder / "tool_calls" / "tool_calls.parquet"),
    )


@pytest.fixture(scope="module")
def holdout(sample: Sample) -> CompareResult:
    return run_compare(sample.spec, sample.sources, CompareOptions(baseline="holdout"))


def test_holdout_design_and_srm(sample: Sample, holdout: CompareResult) -> None:
    assert holdout.design.kind == "holdout" and holdout.design.randomized
    assert not holdout.design.paired
    counts = sample.events.group_by("arm").agg(pl.col("conversation_id").n_unique())
    by_arm = dict(counts.iter_rows())
    treat, control = by_arm["treatment"], by_arm["holdout"]
    assert treat + control == 3000
    expected = sps.chisquare(
        [treat, control], f_exp=[(treat + control) * 0.85, (treat + control) * 0.15]
    )
    srm = holdout.srm
    assert srm is not None and srm["checked"]
    assert (srm["treatment"], srm["control"]) == (treat, control)
    assert srm["chi2"] == approx(expected.statistic)
    assert srm["p_value"] == approx(expected.pvalue)
    assert srm["mismatch"] == (expected.pvalue < 0.001)


def test_holdout_proportion_task_completion(sample: Sample, holdout: CompareResult) -> None:
    settled = sample.facts.filter(pl.col("settled"))
    arms = {}
    for label, arm in (("baseline", "holdout"), ("current", "treatment")):
        part = arm_of(settled, arm)
        x, n = int(part["completed"].sum()), part.height
        arms[label] = (x / n, (x / n) * (1 - x / n), n)
    (pa, va, na), (pb, vb, nb) = arms["baseline"], arms["current"]
    ref = welch(pa, va, na, pb, vb, nb)
    r = row(holdout.table, "task_completion_rate")
    assert r["test"] == "proportion_t"
    assert (r["baseline_n"], r["current_n"]) == (na, nb)
    assert r["baseline_value"] == approx(pa) and r["current_value"] == approx(pb)
    assert r["delta"] == approx(ref.delta)
    assert (r["delta_low"], r["delta_high"]) == (approx(ref.low), approx(ref.high))
    assert r["p_value"] == approx(ref.p, rel=1e-7)
    rel, rel_low, rel_high = relative_delta(pa, va, na, pb, vb, nb, ref.df)
    assert r["relative_delta"] == approx(rel)
    assert (r["relative_low"], r["relative_high"]) == (approx(rel_low), approx(rel_high))
    # A12: MDE at the current n, α = 0.05, 80 % power
    mde = (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * math.sqrt(va / na + vb / nb)
    assert r["mde"] == approx(mde)
    # pending: conversations whose 24 h window has not closed, per arm
    open_ = sample.facts.filter(~pl.col("settled"))
    assert r["pending_baseline"] == arm_of(open_, "holdout").height
    assert r["pending_current"] == arm_of(open_, "treatment").height
    assert r["pending_current"] > 0


def test_holdout_mean_tokens_per_task_is_welch(sample: Sample, holdout: CompareResult) -> None:
    per_conv = sample.events.group_by("conversation_id").agg(
        (pl.col("input_tokens").fill_null(0).sum() + pl.col("output_tokens").fill_null(0).sum())
        .cast(pl.Float64)
        .alias("tokens"),
        pl.col("arm").drop_nulls().first(),
    )
    base = arm_of(per_conv, "holdout")["tokens"].to_numpy()
    cur = arm_of(per_conv, "treatment")["tokens"].to_numpy()
    result = sps.ttest_ind(cur, base, equal_var=False)
    ci = result.confidence_interval(0.95)
    r = row(holdout.table, "tokens_per_task")
    assert r["test"] == "welch_t"
    assert (r["baseline_n"], r["current_n"]) == (base.size, cur.size)
    assert r["baseline_value"] == approx(base.mean()) and r["current_value"] == approx(cur.mean())
    assert r["delta"] == approx(cur.mean() - base.mean())
    assert r["p_value"] == approx(result.pvalue, rel=1e-7)
    assert (r["delta_low"], r["delta_high"]) == (approx(ci.low, 1e-8), approx(ci.high, 1e-8))


def test_holdout_ratio_cost_per_successful_task(sample: Sample, holdout: CompareResult) -> None:
    settled = sample.facts.filter(pl.col("settled"))
    summaries = {}
    for label, arm in (("baseline", "holdout"), ("current", "treatment")):
        part = arm_of(settled, arm)
        summaries[label] = delta_ratio(
            part["cost_usd"].to_numpy(), part["completed"].cast(pl.Float64).to_numpy()
        )
    (ra, sa, na), (rb, sb, nb) = summaries["baseline"], summaries["current"]
    ref = welch(ra, sa, na, rb, sb, nb)
    r = row(holdout.table, "cost_per_successful_task")
    assert r["test"] == "delta_ratio"
    assert (r["baseline_n"], r["current_n"]) == (na, nb)
    assert r["baseline_value"] == approx(ra) and r["current_value"] == approx(rb)
    assert r["delta"] == approx(ref.delta)
    assert (r["delta_low"], r["delta_high"]) == (approx(ref.low, 1e-8), approx(ref.high, 1e-8))
    assert r["p_value"] == approx(ref.p, rel=1e-6)
    rel, rel_low, rel_high = relative_delta(ra, sa, na, rb, sb, nb, ref.df)
    assert r["relative_delta"] == approx(rel)
    assert (r["relative_low"], r["relative_high"]) == (
        approx(rel_low, 1e-8),
        approx(rel_high, 1e-8),
    )
    open_ = sample.facts.filter(~pl.col("settled"))
    assert (r["pending_baseline"], r["pending_current"]) == (
        arm_of(open_, "holdout").height,
        arm_of(open_, "treatment").height,
    )


def test_holdout_row_level_tool_call_success_is_a_cluster_ratio(
    sample: Sample, holdout: CompareResult
) -> None:
    arms_by_conv = sample.facts.select("conversation_id", "arm")
    per_conv = (
        sample.tool_calls.group_by("conversation_id")
        .agg(
            (pl.col("status") == "ok").sum().cast(pl.Float64).alias("ok"),
            pl.len().cast(pl.Float64).alias("calls"),
        )
        .join(arms_by_conv, on="conversation_id", how="left")
    )
    summaries, naive_var = {}, 0.0
    for label, arm in (("baseline", "holdout"), ("current", "treatment")):
        part = arm_of(per_conv, arm)
        summaries[label] = delta_ratio(part["ok"].to_numpy(), part["calls"].to_numpy())
        p, calls = summaries[label][0], float(part["calls"].to_numpy().sum())
        naive_var += p * (1 - p) / calls  # calls treated as independent (A6)
    (ra, sa, na), (rb, sb, nb) = summaries["baseline"], summaries["current"]
    ref = welch(ra, sa, na, rb, sb, nb)
    r = row(holdout.table, "tool_call_success_rate")
    assert r["test"] == "delta_ratio"
    assert (r["baseline_units"], r["current_units"]) == (na, nb)  # the test's units
    calls = [int(arm_of(per_conv, a)["calls"].sum()) for a in ("holdout", "treatment")]
    assert [r["baseline_n"], r["current_n"]] == calls  # n as compute counts it: tool calls
    assert r["baseline_value"] == approx(ra) and r["current_value"] == approx(rb)
    assert r["delta"] == approx(ref.delta)
    assert (r["delta_low"], r["delta_high"]) == (approx(ref.low, 1e-8), approx(ref.high, 1e-8))
    assert r["p_value"] == approx(ref.p, rel=1e-6)
    assert r["design_effect"] == approx((ref.se / math.sqrt(naive_var)) ** 2, rel=1e-8)


def test_holdout_percentile_agent_latency(sample: Sample, holdout: CompareResult) -> None:
    turns = (
        sample.events.drop("arm")
        .filter(
            (pl.col("event") == "message")
            & (pl.col("role") == "agent")
            & pl.col("latency_ms").is_not_null()
        )
        .join(sample.facts.select("conversation_id", "arm"), on="conversation_id")
    )
    arms = {}
    for label, arm in (("baseline", "holdout"), ("current", "treatment")):
        part = arm_of(turns, arm)
        arms[label] = (part["latency_ms"].to_numpy(), part["conversation_id"].to_numpy())
    r = row(holdout.table, "agent_latency_p95")
    assert r["test"] == "quantile_outer_ci"
    assert (r["baseline_n"], r["current_n"]) == (arms["baseline"][0].size, arms["current"][0].size)
    q_a = float(np.quantile(arms["baseline"][0], 0.95))  # the KPI's own linear estimate
    q_b = float(np.quantile(arms["current"][0], 0.95))
    assert r["baseline_value"] == approx(q_a) and r["current_value"] == approx(q_b)
    se = math.hypot(outer_ci_se(*arms["baseline"], 0.95), outer_ci_se(*arms["current"], 0.95))
    z = sps.norm.ppf(0.975)
    assert r["delta"] == approx(q_b - q_a)
    assert (r["delta_low"], r["delta_high"]) == (
        approx(q_b - q_a - z * se, 1e-8),
        approx(q_b - q_a + z * se, 1e-8),
    )
    assert r["p_value"] == approx(2 * sps.norm.sf(abs(q_b - q_a) / se), rel=1e-7)


def test_holdout_multiple_testing_and_verdicts(sample: Sample, holdout: CompareResult) -> None:
    table = holdout.table
    assert table.height == len(sample.spec.kpis)
    present = table.filter(pl.col("p_value").is_not_null())
    assert present.height >= 14
    _, holm, _, _ = multipletests(present["p_value"].to_numpy(), method="holm")
    np.testing.assert_allclose(present["p_adjusted"].to_numpy(), holm, rtol=1e-12)
    assert table.filter(pl.col("p_value").is_null())["p_adjusted"].null_count() == (
        table.height - present.height
    )
    assert (table["significant"] == (table["p_adjusted"] < ALPHA).fill_null(False)).all()
    for r in table.iter_rows(named=True):
        if r["kpi"] == "agent_latency_p95":
            continue  # n counts turns there; min_sample counts units (test_unit_user_id)
        min_sample = sample.spec.kpis[r["kpi"]].min_sample
        small = min(r["baseline_n"], r["current_n"]) < min_sample
        assert (r["status"] == "insufficient_data") == small, r["kpi"]
    # csat: 154 holdout conversations with feedback < min_sample 200
    assert row(table, "csat_mean")["status"] == "insufficient_data"
    # policy_violation_rate is above its "> 1%" bound: catastrophic although not significant
    violations = row(table, "policy_violation_rate")
    assert violations["current_value"] > 0.01 and not violations["significant"]
    assert (violations["status"], violations["threshold"]) == ("catastrophic", "> 1%")


def test_bh_correction(sample: Sample) -> None:
    result = run_compare(
        sample.spec, sample.sources, CompareOptions(baseline="holdout", correction="bh")
    )
    assert result.correction == "bh"
    present = result.table.filter(pl.col("p_value").is_not_null())
    _, bh, _, _ = multipletests(present["p_value"].to_numpy(), method="fdr_bh")
    np.testing.assert_allclose(present["p_adjusted"].to_numpy(), bh, rtol=1e-12)


def test_by_channel_cells(sample: Sample) -> None:
    result = run_compare(
        sample.spec, sample.sources, CompareOptions(baseline="holdout", by=("channel",))
    )
    table = result.table
    settled = sample.facts.filter(pl.col("settled") & (pl.col("channel") == "web"))
    arms = []
    for arm in ("holdout", "treatment"):
        part = arm_of(settled, arm)
        p = part["completed"].mean()
        assert isinstance(p, float)
        arms.append((p, p * (1 - p), part.height))
    ref = welch(*arms[0], *arms[1])
    r = row(table, "task_completion_rate", channel="web")
    assert r["test"] == "proportion_t"
    assert (r["baseline_n"], r["current_n"]) == (arms[0][2], arms[1][2])
    assert r["delta"] == approx(ref.delta)
    assert (r["delta_low"], r["delta_high"]) == (approx(ref.low), approx(ref.high))
    assert r["p_value"] == approx(ref.p, rel=1e-7)
    # every channel has a cell
    channels = set(sample.facts["channel"].unique().to_list())
    cells = table.filter(pl.col("kpi") == "task_completion_rate")
    assert set(cells["channel"].drop_nulls().to_list()) == channels
    # the family is every KPI × cohort test of the run
    present = table.filter(pl.col("p_value").is_not_null())
    _, holm, _, _ = multipletests(present["p_value"].to_numpy(), method="holm")
    np.testing.assert_allclose(present["p_adjusted"].to_numpy(), holm, rtol=1e-12)


def test_unit_user_id(sample: Sample) -> None:
    """--unit user_id: conversation KPIs become ratios over users (A6); SRM counts users;
    min_sample counts users, also for a percentile over turns."""
    result = run_compare(
        sample.spec, sample.sources, CompareOptions(baseline="holdout", unit="user_id")
    )
    assert result.unit == "user_id"
    settled = sample.facts.filter(pl.col("settled"))
    summaries = {}
    for label, arm in (("baseline", "holdout"), ("current", "treatment")):
        per_user = (
            arm_of(settled, arm)
            .group_by("user_id")
            .agg(
                pl.col("completed").sum().cast(pl.Float64).alias("m"),
                pl.len().cast(pl.Float64).alias("d"),
            )
        )
        summaries[label] = delta_ratio(per_user["m"].to_numpy(), per_user["d"].to_numpy())
    (ra, sa, na), (rb, sb, nb) = summaries["baseline"], summaries["current"]
    ref = welch(ra, sa, na, rb, sb, nb)
    r = row(result.table, "task_completion_rate")
    assert r["test"] == "delta_ratio"
    assert (r["baseline_units"], r["current_units"]) == (na, nb)  # users
    conversations = [arm_of(settled, a).height for a in ("holdout", "treatment")]
    assert [r["baseline_n"], r["current_n"]] == conversations  # n as compute counts it
    assert r["baseline_value"] == approx(ra) and r["current_value"] == approx(rb)
    assert (r["delta_low"], r["delta_high"]) == (approx(ref.low, 1e-8), approx(ref.high, 1e-8))
    assert r["p_value"] == approx(ref.p, rel=1e-6)
    users = {
        arm: arm_of(sample.facts, arm)["user_id"].n_unique() for arm in ("holdout", "treatment")
    }
    assert result.srm is not None
    assert (result.srm["treatment"], result.srm["control"]) == (
        users["treatment"],
        users["holdout"],
    )
    latency = row(result.table, "agent_latency_p95")
    assert latency["baseline_n"] >= 200 > users["holdout"]  # enough turns, too few users
    assert latency["status"] == "insufficient_data"


# ----------------------------------------------------------------------------------------------
# Verdicts on hand-made comparisons
# ----------------------------------------------------------------------------------------------


def comparison(baseline: float, current: float, relative: float | None = None) -> stats.Comparison:
    delta = current - baseline
    rel = delta / abs(baseline) if relative is None else relative
    return stats.Comparison(
        "hand",
        baseline,
        current,
        stats.Interval(delta, 0.001, delta - 0.002, delta + 0.002),
        stats.Interval(rel, 0.001, rel - 0.002, rel + 0.002),
        0.001,
        100.0,
    )


@pytest.fixture(scope="module")
def kpis() -> dict[str, KpiSpec]:
    return dict(load_spec(SPEC).kpis)


def status(
    kpi: KpiSpec,
    comp: stats.Comparison | None,
    significant: bool = True,
    insufficient: bool = False,
) -> str:
    return verdict(kpi, comp, significant, insufficient)[0]


def test_verdict_percentage_points_higher_is_better(kpis: dict[str, KpiSpec]) -> None:
    kpi = kpis["task_completion_rate"]  # warning 2pp, critical 5pp, catastrophic 10pp
    assert status(kpi, comparison(0.70, 0.69)) == "ok"  # 1 pp worse: below every threshold
    assert status(kpi, comparison(0.70, 0.67)) == "warning"
    assert verdict(kpi, comparison(0.70, 0.67), True, False) == ("warning", "2pp")
    assert status(kpi, comparison(0.70, 0.68)) == "warning"  # exactly 2 pp crosses it
    assert status(kpi, comparison(0.70, 0.67), significant=False) == "ok"
    assert status(kpi, comparison(0.70, 0.64)) == "critical"
    assert status(kpi, comparison(0.70, 0.55)) == "catastrophic"  # the highest level wins
    assert status(kpi, comparison(0.70, 0.95)) == "ok"  # a large improvement never fires


def test_verdict_percentage_points_lower_is_better(kpis: dict[str, KpiSpec]) -> None:
    kpi = kpis["escalation_rate"]  # lower is better: 2pp, 5pp, 10pp
    assert status(kpi, comparison(0.20, 0.23)) == "warning"
    assert status(kpi, comparison(0.20, 0.26)) == "critical"
    assert status(kpi, comparison(0.20, 0.05)) == "ok"  # improvement
    assert status(kpi, comparison(0.20, 0.35), significant=False) == "ok"


def test_verdict_relative_and_absolute_change(kpis: dict[str, KpiSpec]) -> None:
    tokens = kpis["tokens_per_task"]  # lower is better: 15 %, 30 %, 100 %
    assert status(tokens, comparison(4000, 4400)) == "ok"  # +10 %
    assert status(tokens, comparison(4000, 4800)) == "warning"  # +20 %
    assert status(tokens, comparison(4000, 5600)) == "critical"  # +40 %
    assert status(tokens, comparison(4000, 8400)) == "catastrophic"  # +110 %
    assert status(tokens, comparison(4000, 2000)) == "ok"  # −50 %: improvement
    assert status(tokens, comparison(4000, 5600), significant=False) == "ok"
    # the relative estimate (not the absolute one) drives relative thresholds
    assert status(tokens, comparison(4000, 4001, relative=0.2)) == "warning"
    csat = kpis["csat_mean"]  # higher is better, absolute 0.1 / 0.25 / 0.5
    assert status(csat, comparison(4.0, 3.85)) == "warning"
    assert status(csat, comparison(4.0, 3.7)) == "critical"
    assert status(csat, comparison(4.0, 4.6)) == "ok"


def test_verdict_absolute_bound_fires_without_significance(kpis: dict[str, KpiSpec]) -> None:
    kpi = kpis["policy_violation_rate"]  # lower: 0.2pp, 0.5pp, catastrophic "> 1%"
    assert status(kpi, comparison(0.02, 0.012), significant=False) == "catastrophic"
    assert verdict(kpi, comparison(0.02, 0.012), False, False) == ("catastrophic", "> 1%")
    assert status(kpi, comparison(0.002, 0.009)) == "critical"  # +0.7 pp, below the bound
    assert status(kpi, comparison(0.002, 0.009), significant=False) == "ok"
    assert status(kpi, comparison(0.002, 0.010)) == "critical"  # "> 1%" is strict
    assert status(kpi, comparison(0.002, 0.015)) == "catastrophic"  # highest level wins
    latency = kpis["agent_latency_p95"]  # lower: 15 %, 30 %, catastrophic "> 10000"
    assert status(latency, comparison(9000, 10500), significant=False) == "catastrophic"
    assert status(latency, comparison(4000, 4800)) == "warning"


def test_verdict_insufficient_data(kpis: dict[str, KpiSpec]) -> None:
    kpi = kpis["policy_violation_rate"]
    assert status(kpi, comparison(0.02, 0.5), insufficient=True) == "insufficient_data"
    assert verdict(kpi, None, True, False) == ("insufficient_data", None)


# ----------------------------------------------------------------------------------------------
# Other baselines: previous, between, values, another dataset
# ----------------------------------------------------------------------------------------------

EXTRA_BASELINES = """\
  prior_4w: {previous: 28d}
  prior_7d: {previous: 7d}
  pinned: {between: ["2026-10-01", "2026-10-08"]}
  targets: {values: {task_completion_rate: 0.73, tokens_per_task: 4000}}
"""


@pytest.fixture(scope="module")
def custom_spec(tmp_path_factory: pytest.TempPathFactory) -> Spec:
    text = SPEC.read_text(encoding="utf-8")
    assert "  prior_4w: {previous: 28d}\n" in text
    path = tmp_path_factory.mktemp("spec") / "kpis.yaml"
    path.write_text(
        text.replace("  prior_4w: {previous: 28d}\n", EXTRA_BASELINES), encoding="utf-8"
    )
    return load_spec(path)


def started_in(frame: pl.DataFrame, since: dt.datetime, until: dt.datetime | None) -> pl.DataFrame:
    keep = pl.col("started_at") >= since
    if until is not None:
        keep &= pl.col("started_at") < until
    return frame.filter(keep)


def check_period_arm(result: CompareResult, frame: pl.DataFrame, side: str) -> None:
    """n of a period arm = the conversations started in its window (pending for mature KPIs)."""
    tokens = row(result.table, "tokens_per_task")
    completion = row(result.table, "task_completion_rate")
    assert tokens[f"{side}_n"] == frame.height
    settled = frame.filter(pl.col("settled")).height
    assert completion[f"{side}_n"] == settled
    assert completion[f"pending_{side}"] == frame.height - settled


def test_previous_baseline_window(sample: Sample, custom_spec: Spec) -> None:
    since, until = dt.datetime(2026, 10, 15, tzinfo=UTC), dt.datetime(2026, 10, 22, tzinfo=UTC)
    sources = sample.sources
    result = run_compare(
        custom_spec, sources, CompareOptions(baseline="prior_7d", since=since, until=until)
    )
    assert result.design.kind == "previous" and not result.design.randomized
    assert "time-confounded" in result.design.label and result.notes
    assert result.srm is None
    assert result.baseline_window is not None
    assert (result.baseline_window.since, result.baseline_window.until) == (
        since - dt.timedelta(days=7),
        since,
    )
    assert (result.current_window.since, result.current_window.until) == (since, until)
    base = started_in(sample.facts, since - dt.timedelta(days=7), since)
    cur = started_in(sample.facts, since, until)
    assert base.height > 300 and cur.height > 300
    check_period_arm(result, base, "baseline")
    check_period_arm(result, cur, "current")
    ref = sps.ttest_ind(
        cur["tokens"].cast(pl.Float64).to_numpy(),
        base["tokens"].cast(pl.Float64).to_numpy(),
        equal_var=False,
    )
    assert row(result.table, "tokens_per_task")["p_value"] == approx(ref.pvalue, rel=1e-7)


def test_previous_baseline_ends_at_until(sample: Sample, custom_spec: Spec) -> None:
    """Only --until: the current period is the declared length ending there."""
    until = dt.datetime(2026, 10, 15, tzinfo=UTC)
    result = run_compare(
        custom_spec, sample.sources, CompareOptions(baseline="prior_7d", until=until)
    )
    week = dt.timedelta(days=7)
    assert (result.current_window.since, result.current_window.until) == (until - week, until)
    assert result.baseline_window is not None
    assert (result.baseline_window.since, result.baseline_window.until) == (
        until - 2 * week,
        until - week,
    )
    check_period_arm(result, started_in(sample.facts, until - 2 * week, until - week), "baseline")
    check_period_arm(result, started_in(sample.facts, until - week, until), "current")


def test_between_baseline_window(sample: Sample, custom_spec: Spec) -> None:
    since = dt.datetime(2026, 10, 15, tzinfo=UTC)
    result = run_compare(
        custom_spec, sample.sources, CompareOptions(baseline="pinned", since=since)
    )
    assert result.design.kind == "between" and result.srm is None
    pinned = (dt.datetime(2026, 10, 1, tzinfo=UTC), dt.datetime(2026, 10, 8, tzinfo=UTC))
    assert result.baseline_window is not None
    assert (result.baseline_window.since, result.baseline_window.until) == pinned
    check_period_arm(result, started_in(sample.facts, *pinned), "baseline")
    check_period_arm(result, started_in(sample.facts, since, None), "current")


def test_values_baseline_is_a_one_sample_test(sample: Sample, custom_spec: Spec) -> None:
    result = run_compare(custom_spec, sample.sources, CompareOptions(baseline="targets"))
    assert result.design.kind == "values" and result.srm is None
    assert result.baseline_window is None
    assert set(result.table["kpi"]) == {"task_completion_rate", "tokens_per_task"}
    # proportion vs a target: t on the A2 per-unit variance p(1−p), df = n − 1
    settled = sample.facts.filter(pl.col("settled"))
    n = settled.height
    p = int(settled["completed"].sum()) / n
    se = math.sqrt(p * (1 - p) / n)
    t_stat = (p - 0.73) / se
    half = sps.t.ppf(0.975, n - 1) * se
    r = row(result.table, "task_completion_rate")
    assert r["test"] == "one_sample_t"
    assert (r["baseline_value"], r["current_value"], r["current_n"]) == (0.73, approx(p), n)
    assert r["delta"] == approx(p - 0.73)
    assert (r["delta_low"], r["delta_high"]) == (approx(p - 0.73 - half), approx(p - 0.73 + half))
    assert r["p_value"] == approx(2 * sps.t.sf(abs(t_stat), n - 1), rel=1e-7)
    assert r["relative_delta"] == approx((p - 0.73) / 0.73)
    # a target has no baseline arm: n of the current arm alone decides sufficiency
    assert -0.05 < p - 0.73 < -0.02 and r["significant"]
    assert r["status"] == "warning"
    # mean vs a target: exactly scipy's one-sample t
    tokens = sample.facts["tokens"].cast(pl.Float64).to_numpy()
    ref = sps.ttest_1samp(tokens, 4000.0)
    ci = ref.confidence_interval(0.95)
    r = row(result.table, "tokens_per_task")
    assert r["current_n"] == tokens.size and r["current_value"] == approx(tokens.mean())
    assert r["p_value"] == approx(ref.pvalue, rel=1e-7)
    assert (r["delta_low"], r["delta_high"]) == (approx(ci.low - 4000.0), approx(ci.high - 4000.0))
    assert r["status"] != "insufficient_data"


def test_dataset_baseline_is_observational(
    sample: Sample, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("other")
    # a different count too: the generator numbers conversations c000001… in every sample
    write_sample(folder, conversations=2000, seed=29, fmt="parquet")
    other = load_sources(sample.spec, sample_paths(folder))
    result = run_compare(
        sample.spec,
        sample.sources,
        CompareOptions(),
        baseline_sources=other,
        baseline_label=str(folder),
    )
    design = result.design
    assert (design.kind, design.randomized, design.paired) == ("dataset", False, False)
    assert "observational" in design.label and design.caveat
    assert result.srm is None
    other_facts = facts(sample.spec, other)
    r = row(result.table, "tokens_per_task")
    assert (r["baseline_n"], r["current_n"]) == (2000, 3000)
    ref = sps.ttest_ind(
        sample.facts["tokens"].cast(pl.Float64).to_numpy(),
        other_facts["tokens"].cast(pl.Float64).to_numpy(),
        equal_var=False,
    )
    assert r["test"] == "welch_t" and r["p_value"] == approx(ref.pvalue, rel=1e-7)
    completion = row(result.table, "task_completion_rate")
    assert completion["baseline_n"] == other_facts.filter(pl.col("settled")).height
    assert completion["current_n"] == sample.facts.filter(pl.col("settled")).height


# ----------------------------------------------------------------------------------------------
# Paired designs (A13): an evaluation suite of 40 tasks run by both agents
# ----------------------------------------------------------------------------------------------

T0 = dt.datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
TASKS = [f"task{i:02d}" for i in range(1, 41)]


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# the other columns the shipped spec reads (the suite's logs carry them as constants / nulls)
EVENT_DEFAULTS: dict[str, Any] = {
    "cost_usd": 0.0,
    "latency_ms": None,
    "escalation_reason": None,
    "csat": None,
    "human_minutes": 0.0,
    "policy_violation": False,
    "user_id": "eval",
    "channel": "eval",
    "intent": "eval",
    "customer_tier": "eval",
    "region": "eval",
    "agent_version": "eval",
    "arm": "eval",
}


def write_suite(
    folder: Path,
    ids: list[str],
    tokens: list[int] | None = None,
    resolved: list[bool] | None = None,
) -> Sources:
    """One conversation per task id: a user and an agent message, maybe a resolution, and one
    ok tool call; a late message of the first task puts as-of 3 days later (all settled)."""
    events: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for index, task in enumerate(ids):
        start = T0 + dt.timedelta(minutes=index)
        total = tokens[index] if tokens is not None else 1000
        events += [
            {
                "conversation_id": task,
                "ts": iso(start),
                "event": "message",
                "role": "user",
                "input_tokens": None,
                "output_tokens": None,
            },
            {
                "conversation_id": task,
                "ts": iso(start + dt.timedelta(seconds=20)),
                "event": "message",
                "role": "agent",
                "input_tokens": total - total // 4,
                "output_tokens": total // 4,
            },
        ]
        if resolved is not None and resolved[index]:
            events.append(
                {
                    "conversation_id": task,
                    "ts": iso(start + dt.timedelta(seconds=40)),
                    "event": "resolution",
                    "role": None,
                    "input_tokens": None,
                    "output_tokens": None,
                }
            )
        calls.append(
            {
                "conversation_id": task,
                "ts": iso(start + dt.timedelta(seconds=10)),
                "tool": "search",
                "status": "ok",
                "cost_usd": 0.0,
            }
        )
    events.append(
        {
            "conversation_id": ids[0],
            "ts": iso(T0 + dt.timedelta(days=3)),
            "event": "message",
            "role": "user",
            "input_tokens": None,
            "output_tokens": None,
        }
    )
    events = [{**EVENT_DEFAULTS, **e} for e in events]
    for name, rows in (("events", events), ("tool_calls", calls)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / f"{name}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
        )
    return load_sources(load_spec(SPEC), sample_paths(folder))


@pytest.fixture(scope="module")
def suite_tokens() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    base = rng.integers(1_000, 40_000, size=len(TASKS))  # large between-task variance
    cur = np.round(base - 250 + rng.normal(0, 80, size=len(TASKS))).astype(int)  # −250 each
    assert sps.ttest_ind(cur, base, equal_var=False).pvalue > 0.5
    assert sps.ttest_rel(cur, base).pvalue < 1e-6
    return base, cur


def test_paired_suite_uses_paired_t(
    tmp_path: Path, suite_tokens: tuple[np.ndarray, np.ndarray]
) -> None:
    base, cur = suite_tokens
    spec = load_spec(SPEC)
    base_sources = write_suite(tmp_path / "v1", TASKS, base.tolist())
    cur_sources = write_suite(tmp_path / "v2", TASKS, cur.tolist())
    options = CompareOptions(kpis=("tokens_per_task",), paired=True)
    result = run_compare(
        spec, cur_sources, options, baseline_sources=base_sources, baseline_label="v1"
    )
    assert result.design.paired and result.design.kind == "paired"
    r = row(result.table, "tokens_per_task")
    ref = sps.ttest_rel(cur.astype(float), base.astype(float))
    ci = ref.confidence_interval(0.95)
    assert r["test"] == "paired_t"
    assert (r["baseline_n"], r["current_n"]) == (40, 40)
    assert r["baseline_value"] == approx(base.mean()) and r["current_value"] == approx(cur.mean())
    assert r["delta"] == approx((cur - base).mean())
    assert r["p_value"] == approx(ref.pvalue, rel=1e-6)
    assert (r["delta_low"], r["delta_high"]) == (approx(ci.low, 1e-8), approx(ci.high, 1e-8))
    assert r["significant"]
    wilcoxon = sps.wilcoxon(cur, base).pvalue
    assert f"Wilcoxon signed-rank p = {wilcoxon:.4g}" in r["warnings"]
    # 40 tasks < min_sample 200: a paired test is still reported, without a verdict
    assert r["status"] == "insufficient_data"

    # the same runs under other ids (no overlap): unpaired Welch, not significant
    rng = np.random.default_rng(7)
    renamed = [f"run-{task}" for task in rng.permutation(TASKS)]
    unpaired_sources = write_suite(tmp_path / "v2-renamed", renamed, cur.tolist())
    options = CompareOptions(kpis=("tokens_per_task",))
    result = run_compare(spec, unpaired_sources, options, baseline_sources=base_sources)
    assert not result.design.paired and result.design.kind == "dataset"
    r = row(result.table, "tokens_per_task")
    assert r["test"] == "welch_t"
    welch_ref = sps.ttest_ind(cur.astype(float), base.astype(float), equal_var=False)
    assert r["p_value"] == approx(welch_ref.pvalue, rel=1e-7)
    assert not r["significant"]


def test_paired_suite_pairs_by_task_id(
    tmp_path: Path, suite_tokens: tuple[np.ndarray, np.ndarray]
) -> None:
    """Same ids, but the current results attached to other tasks: pairs follow the ids."""
    base, cur = suite_tokens
    order = np.random.default_rng(3).permutation(len(TASKS))
    spec = load_spec(SPEC)
    base_sources = write_suite(tmp_path / "v1", TASKS, base.tolist())
    cur_sources = write_suite(tmp_path / "v2", [TASKS[i] for i in order], cur.tolist())
    result = run_compare(
        spec,
        cur_sources,
        CompareOptions(kpis=("tokens_per_task",), paired=True),
        baseline_sources=base_sources,
    )
    assert result.design.paired
    matched = np.empty_like(cur)
    matched[order] = cur  # current value of task i
    r = row(result.table, "tokens_per_task")
    assert r["test"] == "paired_t"
    assert r["p_value"] == approx(sps.ttest_rel(matched, base).pvalue, rel=1e-6)
    assert not r["significant"]


def test_paired_binary_outcome_is_mcnemar_exact(tmp_path: Path) -> None:
    # 15 both resolved, 10 neither, 3 only the baseline (b), 12 only the current (c)
    base_ok = [True] * 15 + [False] * 10 + [True] * 3 + [False] * 12
    cur_ok = [True] * 15 + [False] * 10 + [False] * 3 + [True] * 12
    spec = load_spec(SPEC)
    base_sources = write_suite(tmp_path / "v1", TASKS, resolved=base_ok)
    cur_sources = write_suite(tmp_path / "v2", TASKS, resolved=cur_ok)
    result = run_compare(
        spec,
        cur_sources,
        CompareOptions(kpis=("task_completion_rate",), paired=True),
        baseline_sources=base_sources,
    )
    assert result.design.paired
    r = row(result.table, "task_completion_rate")
    assert r["test"] == "mcnemar_exact"
    assert (r["baseline_n"], r["current_n"]) == (40, 40)
    assert (r["pending_baseline"], r["pending_current"]) == (0, 0)
    assert r["baseline_value"] == approx(18 / 40) and r["current_value"] == approx(27 / 40)
    assert r["delta"] == approx(9 / 40)
    assert r["p_value"] == approx(sps.binomtest(3, 15, 0.5).pvalue, rel=1e-12)


# ----------------------------------------------------------------------------------------------
# CLI on the bundled sample_logs/
# ----------------------------------------------------------------------------------------------


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["compare", *args])
    return result.exit_code, result.stdout, result.stderr


BUNDLED = [
    str(ROOT / "sample_logs" / "events"),
    "--source",
    f"tool_calls={ROOT / 'sample_logs' / 'tool_calls'}",
    "-c",
    str(SPEC),
]


@pytest.fixture(scope="module")
def bundled_json() -> dict[str, Any]:
    code, out, err = cli(*BUNDLED, "--baseline", "holdout", "--format", "json")
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    return document


def test_cli_table_from_the_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, err = cli("--baseline", "holdout", "-c", "kpi_definitions.yaml")
    assert code == 0, err
    assert "randomized holdout" in out and "Task completion (not reopened in 24 h)" in out
    assert "Verdict:" in out and "Sample ratio:" in out


def test_cli_json_document(bundled_json: dict[str, Any]) -> None:
    assert {"kpictl_version", "design", "baseline", "srm", "results"} <= set(bundled_json)
    assert bundled_json["design"]["kind"] == "holdout"
    assert bundled_json["srm"]["checked"] is True
    results = bundled_json["results"]
    assert len(results) == len(load_spec(SPEC).kpis)
    keys = {
        "kpi",
        "cohort",
        "baseline",
        "current",
        "delta",
        "delta_ci",
        "relative_delta",
        "relative_ci",
        "p_value",
        "p_adjusted",
        "test",
        "significant",
        "mde",
        "status",
        "pending",
        "warnings",
    }
    for result in results:
        assert keys <= set(result), keys - set(result)
        assert set(result["baseline"]) == {"value", "n", "units"} == set(result["current"])
        assert isinstance(result["warnings"], list)
        if result["delta_ci"] is not None:
            low, high = result["delta_ci"]
            assert low <= result["delta"] <= high
    statuses = {r["kpi"]: r["status"] for r in results}
    assert statuses["policy_violation_rate"] == "catastrophic"


def test_cli_fail_on() -> None:
    code, _, err = cli(
        *BUNDLED, "--baseline", "holdout", "--fail-on", "catastrophic", "--format", "csv"
    )
    assert code == 3
    assert "policy_violation_rate" in err
    code, _, err = cli(*BUNDLED, "--baseline", "holdout", "--format", "csv")
    assert code == 0, err


def test_cli_unknown_baseline_suggests() -> None:
    code, _, err = cli(*BUNDLED, "--baseline", "holdot")
    assert code == 2
    assert "did you mean 'holdout'" in err


def test_cli_markdown_and_csv(bundled_json: dict[str, Any]) -> None:
    code, out, err = cli(*BUNDLED, "--baseline", "holdout", "--format", "markdown")
    assert code == 0, err
    assert out.startswith("# Comparison: randomized holdout")
    assert "| Task completion (not reopened in 24 h) |" in out and "Sample ratio:" in out
    code, out, err = cli(*BUNDLED, "--baseline", "holdout", "--format", "csv")
    assert code == 0, err
    records = list(csv.DictReader(io.StringIO(out)))
    assert [r["kpi"] for r in records] == [r["kpi"] for r in bundled_json["results"]]
    assert [r["label"] for r in records] == [r["label"] for r in bundled_json["results"]]
    by_kpi = {r["kpi"]: r for r in records}
    expected = {r["kpi"]: r for r in bundled_json["results"]}
    for name, record in by_kpi.items():
        assert record["status"] == expected[name]["status"]
        if expected[name]["p_adjusted"] is not None:
            assert float(record["p_adjusted"]) == pytest.approx(expected[name]["p_adjusted"])


def test_same_conversation_ids_are_not_paired_unless_asked(
    tmp_path: Path, suite_tokens: tuple[np.ndarray, np.ndarray]
) -> None:
    """Two unrelated runs may number conversations alike: pairing is never guessed from the
    conversation key; it needs --paired or a --unit (such as a task id) both runs share."""
    base, cur = suite_tokens
    spec = load_spec(SPEC)
    base_sources = write_suite(tmp_path / "v1", TASKS, base.tolist())
    cur_sources = write_suite(tmp_path / "v2", TASKS, cur.tolist())
    result = run_compare(
        spec, cur_sources, CompareOptions(kpis=("tokens_per_task",)), baseline_sources=base_sources
    )
    assert not result.design.paired
    assert row(result.table, "tokens_per_task")["test"] == "welch_t"


def test_formula_kpi_is_cluster_bootstrapped(sample: Sample, tmp_path: Path) -> None:
    """contained_quality_share = containment_with_quality / containment_rate, per arm from the
    facts by hand; the bootstrap CI is seeded (same run, same numbers) and brackets Δ."""
    text = SPEC.read_text().replace(
        "kpis:\n",
        "kpis:\n  contained_quality_share:\n"
        "    formula: containment_with_quality / containment_rate\n"
        "    format: percent\n    min_sample: 100\n",
        1,
    )
    path = tmp_path / "formula.yaml"
    path.write_text(text)
    spec = load_spec(path)
    sources = load_sources(
        spec,
        {
            n: list(p)
            for n, p in sample_paths(
                Path(sample.sources.by_name["events"].files[0].path).parents[1]
            ).items()
        },
    )
    options = CompareOptions(baseline="holdout", kpis=("contained_quality_share",))
    first = row(run_compare(spec, sources, options).table, "contained_quality_share")
    again = row(run_compare(spec, sources, options).table, "contained_quality_share")
    assert first == again
    settled = sample.facts.filter(pl.col("settled"))

    def share(arm: str) -> float:
        part = arm_of(settled, arm)
        return part["contained_well"].sum() / part["contained"].sum()

    assert first["test"] == "bootstrap"
    assert first["baseline_value"] == approx(share("holdout"))
    assert first["current_value"] == approx(share("treatment"))
    assert first["delta"] == approx(share("treatment") - share("holdout"))
    assert first["delta_low"] < first["delta"] < first["delta_high"]
    assert 0 <= first["p_value"] <= 1


@pytest.mark.parametrize(
    "options",
    [
        CompareOptions(baseline="holdout"),
        CompareOptions(
            baseline="holdout",
            by=("channel",),
            kpis=("tool_call_success_rate", "agent_latency_p95"),
        ),
        CompareOptions(
            baseline="prior_4w",
            kpis=("task_completion_rate", "agent_latency_p95", "tool_call_success_rate"),
        ),
        CompareOptions(
            baseline="holdout", unit="user_id", kpis=("tokens_per_task", "tool_call_success_rate")
        ),
        CompareOptions(
            baseline="holdout",
            where="channel = 'web'",
            kpis=("escalation_rate", "agent_latency_p95"),
        ),
    ],
    ids=["holdout", "by-channel", "previous-period", "unit-user", "where"],
)
def test_reading_only_used_columns_changes_no_comparison(
    sample: Sample, options: CompareOptions
) -> None:
    """compare rolls up and looks up only the columns it reads; over facts with every column
    rolled up and looked up (`fact_set`, used as they are: no build of its own) the table is
    the same."""
    from polars.testing import assert_frame_equal

    from kpictl.engine.compute import fact_set
    from kpictl.engine.interface import watch_fact_builds

    pruned = run_compare(sample.spec, sample.sources, options).table
    facts = fact_set(
        sample.spec, sample.sources, since=options.since, until=options.until, as_of=options.as_of
    )
    assert all(columns is None for columns in facts.reads.values())
    with watch_fact_builds() as builds:
        everything = run_compare(sample.spec, sample.sources, options, facts=facts).table
    assert builds == []
    assert pruned.height > 0
    assert_frame_equal(pruned, everything, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)


# ----------------------------------------------------------------------------------------------
# Design: only a declared randomized assignment is read causally
# ----------------------------------------------------------------------------------------------

OBSERVATIONAL_LABEL = "observational comparison of two concurrent conditions (not randomized)"
OBSERVATIONAL_CAVEAT = (
    "not randomized (the baseline does not declare `design: randomized`): traffic mix and time "
    "differ between the arms, so differences are associations, not causal effects"
)


@pytest.fixture(scope="module")
def versions_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped spec plus `v2_vs_v1`: agent versions rolled out gradually, not randomized."""
    text = SPEC.read_text(encoding="utf-8")
    assert "  prior_4w: {previous: 28d}\n" in text
    text = text.replace(
        "  prior_4w: {previous: 28d}\n",
        "  prior_4w: {previous: 28d}\n"
        "  v2_vs_v1: {control: \"agent_version = 'v1'\", treatment: \"agent_version = 'v2'\"}\n",
    )
    path = tmp_path_factory.mktemp("versions") / "kpis.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_arms_split_by_agent_version_are_observational_in_every_format(
    versions_spec: Path,
) -> None:
    args = [*BUNDLED[:-1], str(versions_spec), "--baseline", "v2_vs_v1", "--kpi", "escalation_rate"]
    events = pl.read_ndjson(ROOT / "sample_logs" / "events" / "events.jsonl")
    per_version = dict(
        events.group_by("agent_version").agg(pl.col("conversation_id").n_unique()).iter_rows()
    )
    code, out, err = cli(*args, "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert document["design"] == {
        "kind": "conditions",
        "label": OBSERVATIONAL_LABEL,
        "randomized": False,
        "paired": False,
        "caveat": OBSERVATIONAL_CAVEAT,
    }
    # counts for the reader, but no sample-ratio test: nothing was assigned at random
    assert document["srm"] == {
        "checked": False,
        "reason": "observational design: the arms were not randomized",
        "treatment": per_version["v2"],
        "control": per_version["v1"],
    }
    code, out, err = cli(*args, "--format", "markdown")
    assert code == 0, err
    assert out.startswith(f"# Comparison: {OBSERVATIONAL_LABEL}\n")
    assert f"\n> {OBSERVATIONAL_CAVEAT}\n" in out
    assert "randomized holdout" not in out and "Sample ratio" not in out
    code, out, err = cli(*args)
    assert code == 0, err
    flat = " ".join(out.split())
    assert flat.startswith(f"{OBSERVATIONAL_LABEL} · baseline v2_vs_v1 ·")
    assert f"Note: {OBSERVATIONAL_CAVEAT}" in flat
    assert "randomized holdout" not in flat and "Sample ratio" not in flat


def test_declared_randomized_arms_get_the_srm_check(versions_spec: Path, tmp_path: Path) -> None:
    text = versions_spec.read_text(encoding="utf-8").replace(
        "treatment: \"agent_version = 'v2'\"}",
        "treatment: \"agent_version = 'v2'\", design: randomized, split: 0.5}",
    )
    spec = tmp_path / "kpis.yaml"
    spec.write_text(text, encoding="utf-8")
    code, out, err = cli(
        *BUNDLED[:-1],
        str(spec),
        "--baseline",
        "v2_vs_v1",
        "--kpi",
        "escalation_rate",
        "--format",
        "json",
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["design"]["label"] == "randomized holdout (concurrent control)"
    srm = document["srm"]
    expected = sps.chisquare([srm["treatment"], srm["control"]])
    assert srm["checked"] is True and srm["p_value"] == approx(expected.pvalue)


# ----------------------------------------------------------------------------------------------
# compare agrees with compute: the same value and n on the same slice
# ----------------------------------------------------------------------------------------------

# KPI shapes that look additive to a text scan and are not (or are, behind a disguise):
# COUNT(DISTINCT …) computed 0.352 while compare reported 1.0 vs 1.0 (fisher_exact).
ADVERSARIAL_KPIS = """
  distinct_user_share:
    over: conversations
    numerator: COUNT(DISTINCT user_id)
    denominator: COUNT(*)
  tokens_less_peak:
    over: conversations
    numerator: SUM(tokens) - MAX(tokens)
    denominator: COUNT(*)
  peak_tokens:
    over: conversations
    value: MAX(tokens)
  least_tokens:
    over: conversations
    value: MIN(tokens)
  distinct_tools_per_call:
    over: tool_calls
    numerator: COUNT(DISTINCT tool)
    denominator: COUNT(*)
  chat_csat:
    over: conversations
    value: AVG(csat) FILTER (WHERE channel = 'chat')
  csat_of_all:
    over: conversations
    value: AVG(csat)
  completion_of_resolved:
    over: conversations
    numerator: COUNT(*) FILTER (WHERE completed)
    denominator: COUNT(*) FILTER (WHERE resolved_at IS NOT NULL)
    mature: settled
  weighted_escalations:
    over: conversations
    numerator: >-
      SUM(CASE WHEN escalated THEN CASE WHEN channel = 'voice' THEN 2 ELSE 1 END
      ELSE 0 END)
    denominator: COUNT(*)
  completed_off_web:
    over: conversations
    numerator: |-
      COUNT(*) FILTER (WHERE completed
      AND channel <> 'web')
    denominator: COUNT(*)
    mature: settled
  quoted_tokens:
    over: conversations
    numerator: SUM("tokens")
    denominator: COUNT("conversation_id")
  literal_like_sql:
    over: conversations
    numerator: COUNT(*) FILTER (WHERE channel = 'x) FILTER (WHERE y' OR escalated)
    denominator: COUNT(*)
  cost_per_completion:
    over: conversations
    value: SUM(cost_usd) / COUNT(*) FILTER (WHERE completed)
    mature: settled
  chat_ttr_median:
    over: conversations
    where: resolved_at IS NOT NULL
    value: MEDIAN(ttr_s) FILTER (WHERE channel = 'chat')
  escalation_share:
    formula: escalation_rate / (escalation_rate + task_completion_rate)
  twice_distinct_users:
    formula: distinct_user_share * 2
"""
NOT_TESTABLE = {
    "distinct_user_share": "numerator: COUNT(DISTINCT …) is not a per-unit sum",
    "tokens_less_peak": "numerator: MAX(…) is not a per-unit sum",
    "peak_tokens": "MAX(…) is not a per-unit sum",
    "least_tokens": "MIN(…) is not a per-unit sum",
    "distinct_tools_per_call": "numerator: COUNT(DISTINCT …) is not a per-unit sum",
    "twice_distinct_users": "its component distinct_user_share is not a ratio or a mean "
    "(numerator: COUNT(DISTINCT …) is not a per-unit sum)",
}


def bundled_spec(tmp_path: Path, extra_kpis: str = "") -> Spec:
    """The shipped spec over the bundled sample_logs, with extra KPIs appended."""
    text = SPEC.read_text(encoding="utf-8")
    text = text.replace("path: sample_logs/", f"path: {ROOT}/sample_logs/")
    path = tmp_path / "spec.yaml"
    path.write_text(text.rstrip("\n") + "\n" + extra_kpis, encoding="utf-8")
    return load_spec(path)


def assert_compare_agrees_with_compute(spec: Spec, by: tuple[str, ...]) -> pl.DataFrame:
    """For every KPI and cohort: compare's current value and n are compute's on the treatment
    arm, its baseline value and n compute's on the control arm."""
    sources = load_sources(spec)
    result = run_compare(spec, sources, CompareOptions(baseline="holdout", by=by))
    keys = ["kpi", "grouping", *by]
    for side, arm in (("current", "treatment"), ("baseline", "holdout")):
        computed = (
            run_compute(spec, sources, ComputeOptions(where=f"arm = '{arm}'", by=by))
            .table.filter(pl.col("breakdown").is_null())
            .select(*keys, "value", "n")
        )
        compared = result.table.select(
            *keys, pl.col(f"{side}_value").alias("value"), pl.col(f"{side}_n").alias("n")
        )
        assert set(compared["kpi"]) == set(computed["kpi"]) == set(spec.kpis)
        joined = computed.join(
            compared, on=keys, how="full", nulls_equal=True, coalesce=True, suffix="_compare"
        )
        assert joined.height == computed.height == compared.height, side
        for row in joined.iter_rows(named=True):
            where = (side, row["kpi"], row["grouping"], [row[d] for d in by])
            assert row["n_compare"] == row["n"], where
            if row["value"] is None:
                assert row["value_compare"] is None, where
            else:
                assert row["value_compare"] == approx(row["value"], rel=1e-9), where
    return result.table


@pytest.mark.parametrize("by", [(), ("channel",)])
def test_compare_agrees_with_compute_on_the_default_spec(
    tmp_path: Path, by: tuple[str, ...]
) -> None:
    assert_compare_agrees_with_compute(bundled_spec(tmp_path), by)


@pytest.mark.parametrize("by", [(), ("channel",)])
def test_compare_agrees_with_compute_on_adversarial_kpi_shapes(
    tmp_path: Path, by: tuple[str, ...]
) -> None:
    spec = bundled_spec(tmp_path, ADVERSARIAL_KPIS)
    table = assert_compare_agrees_with_compute(spec, by)
    for row in table.iter_rows(named=True):
        reason = NOT_TESTABLE.get(row["kpi"])
        if reason is None:
            assert row["test"] != "not_testable", row["kpi"]
            continue
        # never tested with a test that does not fit: no p-value, no interval, the reason
        assert (row["test"], row["status"], row["p_value"], row["delta"]) == (
            "not_testable",
            "not_testable",
            None,
            None,
        ), row["kpi"]
        assert row["warnings"] == [f"not testable: {reason}"]
    overall = {r["kpi"]: r for r in table.filter(pl.col("grouping") == []).iter_rows(named=True)}
    assert overall["chat_csat"]["test"] == "welch_t"
    assert overall["completion_of_resolved"]["test"] == "delta_ratio"  # d is 0 or 1 per unit
    assert overall["cost_per_completion"]["test"] == "delta_ratio"
    assert overall["chat_ttr_median"]["test"] == "quantile_outer_ci"
    assert overall["escalation_share"]["test"] == "bootstrap"


@pytest.mark.parametrize(
    ("numerator", "kind", "reason"),
    [
        ("COUNT(*) FILTER (WHERE escalated)", "ratio", None),
        ("2 * SUM(tokens) - COUNT(tokens)", "ratio", None),
        ("-TOTAL(cost_usd) FILTER (WHERE completed) / 2", "ratio", None),
        (
            "SUM(DISTINCT tokens)",
            "other",
            "numerator: … DISTINCT … inside SUM/COUNT is not a per-unit sum",
        ),
        (
            "SUM(tokens - AVG(tokens))",
            "other",
            "numerator: AVG(…) inside SUM/COUNT is not a per-unit sum",
        ),
        ("SUM(tokens) + 1", "other", "numerator: a constant is not a per-unit sum"),
        (
            "CAST(SUM(tokens) AS INTEGER)",
            "other",
            "numerator: a cast of a sum to an integer is not a per-unit sum",
        ),
        ("FIRST(tokens)", "other", "numerator: FIRST(…) is not a per-unit sum"),
    ],
)
def test_kpi_shape_reads_the_parsed_expression(
    tmp_path: Path, numerator: str, kind: str, reason: str | None
) -> None:
    from kpictl.engine.shapes import kpi_shape

    extra = f"""
  probe:
    over: conversations
    numerator: "{numerator}"
    denominator: COUNT(*)
"""
    shape = kpi_shape(bundled_spec(tmp_path, extra).kpis["probe"])
    assert (shape.kind, shape.reason) == (kind, reason)


def test_defaults_confidence_sets_the_ci_level(sample: Sample) -> None:
    """`defaults.confidence: 0.90` (no --alpha) gives 90 % intervals and α = 0.10: tokens per
    task's Welch CI equals scipy's at 0.90; an explicit alpha still wins."""
    spec = replace(sample.spec, defaults=replace(sample.spec.defaults, confidence=0.90))
    assert spec.defaults.alpha == 0.1
    result = run_compare(spec, sample.sources, CompareOptions(baseline="holdout"))
    assert result.alpha == 0.1
    per_conv = sample.events.group_by("conversation_id").agg(
        (pl.col("input_tokens").fill_null(0).sum() + pl.col("output_tokens").fill_null(0).sum())
        .cast(pl.Float64)
        .alias("tokens"),
        pl.col("arm").drop_nulls().first(),
    )
    base = arm_of(per_conv, "holdout")["tokens"].to_numpy()
    cur = arm_of(per_conv, "treatment")["tokens"].to_numpy()
    ci = sps.ttest_ind(cur, base, equal_var=False).confidence_interval(0.90)
    r = row(result.table, "tokens_per_task")
    assert (r["delta_low"], r["delta_high"]) == (approx(ci.low, 1e-8), approx(ci.high, 1e-8))
    given = run_compare(spec, sample.sources, CompareOptions(baseline="holdout", alpha=0.05))
    ci95 = sps.ttest_ind(cur, base, equal_var=False).confidence_interval(0.95)
    r = row(given.table, "tokens_per_task")
    assert given.alpha == 0.05
    assert (r["delta_low"], r["delta_high"]) == (approx(ci95.low, 1e-8), approx(ci95.high, 1e-8))
