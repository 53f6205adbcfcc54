"""`kpictl review`: sampling, scoring and their statistics, against hand arithmetic, statsmodels
and a simulation."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from conftest import run, sample_sources
from kpictl import stats
from kpictl.render.markdown import review_markdown
from kpictl.review import allocate, read_review, score_review, summary_rows

SPEC = Path(__file__).resolve().parents[1] / "kpi_definitions.yaml"
runner = CliRunner()
Z = 1.959963984540054


def data_args(logs: Path) -> list[str]:
    return [
        str(logs / "events"),
        *sample_sources(logs),
        "-c",
        str(SPEC),
    ]


def write_review(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def rows_of(
    stratum: str, size: int, pairs: list[tuple[int, int]], **extra: object
) -> list[dict[str, object]]:
    """Review rows of one stratum from (self_reported, human_success) pairs."""
    return [
        {
            "conversation_id": f"{stratum}{i}",
            "stratum": stratum,
            "stratum_size": size,
            "self_reported": s,
            "human_success": h,
            **extra,
        }
        for i, (s, h) in enumerate(pairs)
    ]


# ----------------------------------------------------------------------------------------------
# Allocation
# ----------------------------------------------------------------------------------------------


def test_proportional_allocation_by_hand() -> None:
    assert allocate([50, 30, 20], 10, "proportional") == [5, 3, 2]
    # quotas 3.5, 1.0, 0.5: floors 3, 1, 0; one row left goes to the largest remainder, the
    # tie of 0.5 and 0.5 to the earlier stratum
    assert allocate([7, 2, 1], 5, "proportional") == [4, 1, 0]


def test_equal_allocation_takes_small_strata_whole_and_shares_the_rest() -> None:
    # 10 each; the stratum of 3 is taken whole; 7 left: 3 more each to the other two; 1 left
    assert allocate([100, 3, 50], 30, "equal") == [14, 3, 13]
    assert allocate([5, 5], 10, "equal") == [5, 5]


# ----------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------


def test_kappa_by_hand() -> None:
    # observed agreement (40 + 45)/100 = 0.85; chance 0.5·0.45 + 0.5·0.55 = 0.5
    k = stats.cohens_kappa([[40, 10], [5, 45]])
    assert k.observed == pytest.approx(0.85)
    assert k.expected == pytest.approx(0.5)
    assert k.kappa == pytest.approx((0.85 - 0.5) / (1 - 0.5))


@pytest.mark.parametrize(
    "table",
    [
        [[40, 10], [5, 45]],
        [[3, 7], [9, 1]],
        [[120, 8], [31, 41]],
        [[20, 3, 1], [2, 15, 4], [0, 5, 30]],
    ],
)
def test_kappa_and_its_ci_match_statsmodels(table: list[list[int]]) -> None:
    ours = stats.cohens_kappa(table)
    theirs = cohens_kappa(np.array(table))
    assert ours.kappa == pytest.approx(theirs.kappa, abs=1e-12)
    assert ours.se == pytest.approx(theirs.std_kappa, abs=1e-12)
    assert (ours.low, ours.high) == pytest.approx((theirs.kappa_low, theirs.kappa_upp), abs=1e-12)


def test_kappa_is_undefined_when_both_raters_give_one_label() -> None:
    k = stats.cohens_kappa([[30, 0], [0, 0]])
    assert k.kappa is None
    assert k.warning == "kappa undefined: both raters gave every item the same label"


def test_rogan_gladen_by_hand() -> None:
    # 100 rows: human success 50 (45 self-reported), human failure 50 (15 self-reported)
    pairs = [(1, 1)] * 45 + [(0, 1)] * 5 + [(1, 0)] * 15 + [(0, 0)] * 35
    s, h = np.array(pairs).T
    est = stats.stratified_review(h, s, np.zeros(100, int), [math.inf], logged_rate=0.6)
    se_, sp_ = 0.9, 0.7
    theta = (0.6 + sp_ - 1) / (se_ + sp_ - 1)  # 0.5
    assert est.sensitivity is not None and est.specificity is not None
    assert (est.sensitivity.estimate, est.specificity.estimate) == pytest.approx((se_, sp_))
    assert est.corrected is not None
    assert est.corrected.estimate == pytest.approx(theta)
    # delta method: Var θ = [θ² Var Se + (1 − θ)² Var Sp] / (Se + Sp − 1)², with the sample
    # variances of the rows (n − 1): Var Se = Se(1 − Se)/n1 · n/(n − 1)
    var = (theta**2 * se_ * (1 - se_) / 50 + (1 - theta) ** 2 * sp_ * (1 - sp_) / 50) * 100 / 99
    se = math.sqrt(var) / (se_ + sp_ - 1)
    assert est.corrected.se == pytest.approx(se)
    assert (est.corrected.low, est.corrected.high) == pytest.approx(
        (theta - Z * se, theta + Z * se)
    )
    # the gap: self-reported 60 % − human 50 %
    assert est.gap.estimate == pytest.approx(0.1)


def test_corrected_rate_from_the_rows_alone_is_the_human_rate() -> None:
    """With p_obs estimated on the labelled rows themselves, Rogan–Gladen gives back the
    human-labelled rate exactly (p̂ = Se·π + (1 − Sp)(1 − π) in the sample), SE and all."""
    rng = np.random.default_rng(5)
    h = rng.integers(0, 2, 150)
    s = np.where(rng.random(150) < 0.8, h, 1 - h)
    codes = rng.integers(0, 3, 150)
    est = stats.stratified_review(h, s, codes, [400.0, 900.0, 250.0])
    assert est.corrected is not None
    assert est.corrected.estimate == pytest.approx(est.human.estimate)
    assert est.corrected.se == pytest.approx(est.human.se)


def test_corrected_rate_ci_covers_the_truth_about_95_percent() -> None:
    """400 stratified samples of 200 from a population of 6,000 in three strata whose agents
    over-report success differently; the truth is the population's human success rate."""
    rng = np.random.default_rng(2026)
    sizes = np.array([3000, 2000, 1000])
    truth_p = [0.75, 0.6, 0.4]
    false_pos = [0.2, 0.35, 0.5]  # P(self-reported success | failure)
    miss = [0.05, 0.1, 0.1]  # P(self-reported failure | success)
    codes_pop = np.repeat(np.arange(3), sizes)
    human = (rng.random(6000) < np.take(truth_p, codes_pop)).astype(int)
    u = rng.random(6000)
    selfr = np.where(human == 1, u >= np.take(miss, codes_pop), u < np.take(false_pos, codes_pop))
    selfr = selfr.astype(int)
    truth = human.mean()
    logged = selfr.mean()
    take = allocate(list(sizes), 200, "proportional")
    hits = 0
    reps = 400
    for _ in range(reps):
        idx = np.concatenate(
            [
                rng.choice(np.flatnonzero(codes_pop == k), n, replace=False)
                for k, n in enumerate(take)
            ]
        )
        est = stats.stratified_review(
            human[idx], selfr[idx], codes_pop[idx], list(sizes), logged_rate=logged
        )
        assert est.corrected is not None
        hits += est.corrected.low <= truth <= est.corrected.high
    coverage = hits / reps
    assert 0.92 <= coverage <= 0.98, coverage


def test_stratified_rates_by_hand(tmp_path: Path) -> None:
    """Equal allocation over strata of 900 and 100: the human rate is 0.9·0.8 + 0.1·0.2."""
    a = rows_of("a", 900, [(1, 1)] * 8 + [(1, 0)] * 2, stratum_self_reported=810)
    b = rows_of("b", 100, [(1, 1)] * 2 + [(0, 0)] * 8, stratum_self_reported=30)
    score = score_review([write_review(tmp_path / "r.csv", a + b)]).latest
    e = score.estimates
    assert e.human.estimate == pytest.approx(0.9 * 0.8 + 0.1 * 0.2)
    s2 = 0.8 * 0.2 * 10 / 9  # the sample variance of 8 ones and 2 zeros (n − 1)
    var = 0.9**2 * (1 - 10 / 900) * s2 / 10 + 0.1**2 * (1 - 10 / 100) * s2 / 10
    assert e.human.se == pytest.approx(math.sqrt(var))
    assert e.self_reported.estimate == pytest.approx(0.9 * 1.0 + 0.1 * 0.2)
    # the population's logged rate: (810 + 30) / 1000
    assert e.logged_rate == pytest.approx(0.84)
    assert e.logged_rate_known
    # Se = Σ W·P(s=1,h=1) / Σ W·P(h=1) = (0.9·0.8 + 0.1·0.2)/(0.74) = 1; Sp = 0.1·0.8/0.26
    assert e.sensitivity is not None and e.specificity is not None
    assert e.sensitivity.estimate == pytest.approx(1.0)
    assert e.specificity.estimate == pytest.approx(0.1 * 0.8 / (0.9 * 0.2 + 0.1 * 0.8))
    assert score.confusion == ((10, 0), (2, 8))


def test_hallucination_rate_is_wilson_on_the_labelled_rows(tmp_path: Path) -> None:
    rows = rows_of("all", 1000, [(1, 1)] * 30)
    for i, row in enumerate(rows):
        row["hallucination"] = "yes" if i < 4 else ("" if i >= 25 else "no")
    score = score_review([write_review(tmp_path / "r.csv", rows)]).latest
    assert score.hallucination is not None
    assert (score.hallucination.count, score.hallucination.n) == (4, 25)
    low, high = proportion_confint(4, 25, alpha=0.05, method="wilson")
    assert (score.hallucination.low, score.hallucination.high) == pytest.approx((low, high))


def test_trend_of_two_rounds_is_their_difference() -> None:
    trend = stats.round_trend([0.05, 0.12], [0.02, 0.03])
    assert trend is not None
    se = math.sqrt(0.02**2 + 0.03**2)
    assert trend.slope.estimate == pytest.approx(0.07)
    assert trend.slope.se == pytest.approx(se)
    assert trend.p_value == pytest.approx(math.erfc(0.07 / se / math.sqrt(2)))


def test_trend_of_three_rounds_is_weighted_least_squares() -> None:
    y, se = np.array([0.02, 0.05, 0.11]), np.array([0.02, 0.03, 0.025])
    trend = stats.round_trend(list(y), list(se))
    assert trend is not None
    x = np.column_stack([np.ones(3), np.arange(3.0)])
    w = np.diag(1 / se**2)
    cov = np.linalg.inv(x.T @ w @ x)
    beta = cov @ x.T @ w @ y
    assert trend.slope.estimate == pytest.approx(beta[1])
    assert trend.slope.se == pytest.approx(math.sqrt(cov[1, 1]))


# ----------------------------------------------------------------------------------------------
# Review files
# ----------------------------------------------------------------------------------------------


def test_unlabelled_rows_are_counted_and_left_out(tmp_path: Path) -> None:
    rows = rows_of("all", 500, [(1, 1), (1, 0), (0, 0), (1, "")])
    rows[3]["human_success"] = ""
    score = score_review([write_review(tmp_path / "r.csv", rows)]).latest
    assert score.labelled == 3
    assert "1 of 4 row(s) have no human_success label: left out" in score.notes


@pytest.mark.parametrize("value", ["maybe", "2", "y"])
def test_a_label_outside_the_vocabulary_is_located(tmp_path: Path, value: str) -> None:
    rows = rows_of("all", 500, [(1, 1), (1, 0), (0, 0)])
    rows[2]["human_success"] = value
    path = write_review(tmp_path / "r.csv", rows)
    code, _, err = run("review", "score", str(path))
    assert code == 1
    assert err == (
        f"kpictl: error: {path}:4: column human_success: {value!r} is not a label; expected "
        "1/0, true/false, yes/no (or empty: not labelled yet)\n"
    )


def test_labels_accept_words_in_any_case(tmp_path: Path) -> None:
    rows = rows_of("all", 500, [("TRUE", "Yes"), ("false", "no"), ("1", " 0 ")])
    review = read_review(write_review(tmp_path / "r.csv", rows))
    assert (review.self_reported, review.human) == ((1, 0, 1), (1, 0, 0))


def test_a_file_without_labels_is_an_error(tmp_path: Path) -> None:
    path = write_review(tmp_path / "r.csv", rows_of("all", 50, [(1, ""), (0, "")]))
    code, _, err = run("review", "score", str(path))
    assert code == 1
    assert err == (
        f"kpictl: error: {path}: no row has a human_success label yet; label rows 1/0 "
        "(or yes/no) and score again\n"
    )


def test_a_stratum_with_two_sizes_is_located(tmp_path: Path) -> None:
    rows = rows_of("a", 50, [(1, 1), (1, 0)])
    rows[1]["stratum_size"] = 60
    path = write_review(tmp_path / "r.csv", rows)
    code, _, err = run("review", "score", str(path))
    assert code == 1
    assert err == (
        f"kpictl: error: {path}:3: column stratum_size: 60 for stratum 'a', 50 at {path}:2\n"
    )


def test_rounds_are_ordered_by_sample_time_and_the_gap_trend_is_reported(tmp_path: Path) -> None:
    early = rows_of(
        "all", 1000, [(1, 1)] * 38 + [(1, 0)] * 2 + [(0, 0)] * 10, sampled_at="2026-10-01T00:00:00"
    )
    late = rows_of(
        "all", 1000, [(1, 1)] * 25 + [(1, 0)] * 20 + [(0, 0)] * 5, sampled_at="2026-10-08T00:00:00"
    )
    files = [write_review(tmp_path / "late.csv", late), write_review(tmp_path / "early.csv", early)]
    score = score_review(files)
    assert [s.round.path for s in score.rounds] == [str(files[1]), str(files[0])]
    # the gap is the mean of d = self − human: 2 of 50 rows, then 20 of 50
    assert score.rounds[0].estimates.gap.estimate == pytest.approx(0.04)
    assert score.latest.estimates.gap.estimate == pytest.approx(0.4)
    var_early = (1 - 50 / 1000) * (0.04 * 0.96 * 50 / 49) / 50
    var_late = (1 - 50 / 1000) * (0.4 * 0.6 * 50 / 49) / 50
    assert score.trend is not None
    assert score.trend.slope.estimate == pytest.approx(0.36)
    assert score.trend.slope.se == pytest.approx(math.sqrt(var_early + var_late))
    assert score.trend_verdict.startswith("the gap widens (+36.0 pp per round, p = ")


def test_a_round_without_disagreement_gives_no_trend(tmp_path: Path) -> None:
    early = rows_of("all", 1000, [(1, 1)] * 40 + [(0, 0)] * 10, sampled_at="2026-10-01")
    late = rows_of("all", 1000, [(1, 1)] * 25 + [(1, 0)] * 25, sampled_at="2026-10-08")
    score = score_review(
        [write_review(tmp_path / "a.csv", early), write_review(tmp_path / "b.csv", late)]
    )
    assert score.trend is None
    assert score.trend_verdict == (
        "no trend test: a round has no disagreement at all, so its gap has no standard error"
    )


# ----------------------------------------------------------------------------------------------
# kpictl review sample / score
# ----------------------------------------------------------------------------------------------


def test_sample_is_deterministic_for_a_seed_and_proportional(logs: Path, tmp_path: Path) -> None:
    first, second, other = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    for path, seed in ((first, "4"), (second, "4"), (other, "5")):
        code, _, err = run(
            "review",
            "sample",
            *data_args(logs),
            "--size",
            "60",
            "--stratify-by",
            "intent",
            "--seed",
            seed,
            "-o",
            str(path),
        )
        assert code == 0, err
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    assert err.endswith(f"kpictl: wrote 60 conversations to {other} (seed 5)\n")
    sample = pl.read_csv(first, infer_schema=False)
    assert sample.columns == [
        "conversation_id",
        "sampled_at",
        "allocation",
        "stratum",
        "intent",
        "stratum_size",
        "stratum_self_reported",
        "self_reported",
        "transcript",
        "human_success",
        "hallucination",
        "notes",
    ]
    assert sample["conversation_id"].n_unique() == 60
    assert sample["human_success"].null_count() == 60
    # the population per intent, as an independent count over the facts
    code, _, _ = run("facts", *data_args(logs), "-o", str(tmp_path / "f.csv"))
    facts = pl.read_csv(tmp_path / "f.csv")
    population = facts.group_by("intent").agg(pl.len().alias("n"), pl.col("completed").sum())
    sizes = dict(zip(population["intent"], population["n"], strict=True))
    drawn = sample.group_by("intent").agg(pl.len(), pl.col("stratum_size").first())
    for intent, count, size in drawn.iter_rows():
        assert int(size) == sizes[intent]
        assert abs(count - 60 * sizes[intent] / facts.height) < 1
    completed = dict(zip(population["intent"], population["completed"], strict=True))
    for intent, value in sample.select("intent", "stratum_self_reported").unique().iter_rows():
        assert int(value) == completed[intent]
    ids = set(facts.filter(pl.col("completed"))["conversation_id"])
    assert all(
        (row[0] in ids) == (row[1] == "1")
        for row in sample.select("conversation_id", "self_reported").iter_rows()
    )


def test_sample_refuses_more_than_the_population(logs: Path, tmp_path: Path) -> None:
    code, _, err = run(
        "review",
        "sample",
        *data_args(logs),
        "--size",
        "301",
        "--seed",
        "1",
        "-o",
        str(tmp_path / "r.csv"),
    )
    assert code == 2
    assert err == (
        "kpictl: error: --size 301: table 'conversations' holds 300 conversation(s) in the "
        "window; ask for at most 300\n"
    )


def test_sample_names_an_unknown_column(logs: Path, tmp_path: Path) -> None:
    code, _, err = run(
        "review",
        "sample",
        *data_args(logs),
        "--stratify-by",
        "intnet",
        "--size",
        "5",
        "-o",
        str(tmp_path / "r.csv"),
    )
    assert code == 2
    assert err == (
        "kpictl: error: --stratify-by intnet: not a column of table 'conversations' "
        "(did you mean 'intent'?)\n"
    )


def test_transcripts_are_redacted(write_spec, write_jsonl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec()
    write_jsonl(
        "logs/events/e.jsonl",
        [
            {
                "conversation_id": "c1",
                "ts": "2026-10-01T10:00:00Z",
                "event": "message",
                "role": "user",
                "text": "I am ann@example.com, call +44 20 7946 0958",
            },
            {
                "conversation_id": "c1",
                "ts": "2026-10-01T10:01:00Z",
                "event": "message",
                "role": "agent",
                "text": "Done.",
            },
            {"conversation_id": "c1", "ts": "2026-10-01T10:02:00Z", "event": "resolution"},
        ],
    )
    write_jsonl(
        "logs/tool_calls/t.jsonl",
        [{"conversation_id": "c1", "ts": "2026-10-01T10:01:00Z", "tool": "x", "status": "ok"}],
    )
    out = tmp_path / "r.csv"
    code, _, err = run(
        "review",
        "sample",
        "-c",
        str(spec),
        "--size",
        "1",
        "--seed",
        "0",
        "--self-reported",
        "resolved",
        "-o",
        str(out),
    )
    assert code == 0, err
    row = pl.read_csv(out, infer_schema=False).row(0, named=True)
    assert row["transcript"] == "user: I am [email], call [phone]\nagent: Done."
    assert row["self_reported"] == "1"


def test_score_json_matches_the_library(tmp_path: Path) -> None:
    rows = rows_of(
        "all",
        400,
        [(1, 1)] * 30 + [(1, 0)] * 6 + [(0, 0)] * 10 + [(0, 1)] * 4,
        stratum_self_reported=300,
    )
    path = write_review(tmp_path / "r.csv", rows)
    code, out, err = run("review", "score", str(path), "--format", "json")
    assert code == 0, err
    data = json.loads(out)["rounds"][0]
    latest = score_review([path]).latest
    assert data["corrected"]["estimate"] == pytest.approx(latest.estimates.corrected.estimate)
    assert data["logged_rate"] == pytest.approx(0.75)
    assert data["kappa"]["estimate"] == pytest.approx(
        cohens_kappa(np.array([[30, 4], [6, 10]])).kappa
    )
    code, out, _ = run("review", "score", str(path), "--format", "markdown")
    assert code == 0
    assert "| label-corrected completion rate (Rogan–Gladen) |" in out


# ----------------------------------------------------------------------------------------------
# kpictl report --review
# ----------------------------------------------------------------------------------------------


def test_report_shows_the_latest_review_round(logs: Path, tmp_path: Path) -> None:
    early = write_review(
        tmp_path / "w1.csv",
        rows_of(
            "all",
            300,
            [(1, 1)] * 20 + [(1, 0)] * 2 + [(0, 0)] * 8,
            sampled_at="2026-10-01",
            stratum_self_reported=200,
        ),
    )
    late = write_review(
        tmp_path / "w2.csv",
        rows_of(
            "all",
            300,
            [(1, 1)] * 15 + [(1, 0)] * 10 + [(0, 0)] * 5,
            sampled_at="2026-10-08",
            stratum_self_reported=210,
        ),
    )
    code, out, err = run("report", *data_args(logs), "--review", str(late), "--review", str(early))
    assert code == 0, err
    section = review_markdown(score_review([early, late]))
    assert section[0] == "## Human review"
    assert f"Latest round: 2026-10-08T00:00:00 ({_escaped(late)})." in section
    lines = out.splitlines()
    start = lines.index("## Human review")
    assert lines[start : start + len(section) - 1] == section[:-1]
    assert lines.index("## ROI") < start < lines.index("## Data quality")
    assert "Trend over 2 round(s): the gap widens (+26.7 pp per round, p = " in out


def test_report_refuses_to_write_over_a_review_file(logs: Path, tmp_path: Path) -> None:
    """A review file is an input of the report: -o naming it overwrote the human labels."""
    path = write_review(tmp_path / "w1.csv", rows_of("all", 300, [(1, 1)] * 20 + [(0, 0)] * 8))
    before = path.read_bytes()
    code, out, err = run("report", *data_args(logs), "--review", str(path), "-o", str(path))
    assert (code, out) == (2, "")
    assert err == f"kpictl: error: --output {path}: is an input of this run; write somewhere else\n"
    assert path.read_bytes() == before


def test_report_without_review_has_no_review_section(logs: Path) -> None:
    code, out, _ = run("report", *data_args(logs))
    assert code == 0
    assert "## Human review" not in out


def test_report_with_a_bad_review_file_stops_with_its_location(logs: Path, tmp_path: Path) -> None:
    rows = rows_of("all", 300, [(1, 1), (1, "perhaps")])
    path = write_review(tmp_path / "r.csv", rows)
    code, out, err = run("report", *data_args(logs), "--review", str(path))
    assert (code, out) == (1, "")
    assert err == (
        f"kpictl: error: {path}:3: column human_success: 'perhaps' is not a label; expected "
        "1/0, true/false, yes/no (or empty: not labelled yet)\n"
    )


def _escaped(path: Path) -> str:
    """A file name as the Markdown shows it: `.csv` escaped (no `name.tld` autolink); the
    temporary folders hold no other Markdown character."""
    return str(path).replace(".", "\\.")


def test_the_review_api_is_exported(logs: Path) -> None:
    import kpictl

    spec = kpictl.load_spec(SPEC)
    sources = kpictl.load_sources(
        spec, {"events": [str(logs / "events")], "tool_calls": [str(logs / "tool_calls")]}
    )
    drawn = kpictl.draw_review_sample(spec, sources, kpictl.SampleOptions(size=10, seed=2))
    assert drawn.frame.height == 10
    assert drawn.notes[0] == (
        "proportional allocation: 10 of 300 conversations in 1 stratum/strata, seed 2; "
        "stratum_size weights the scores"
    )


def test_hallucination_rate_is_also_weighted_across_strata(tmp_path: Path) -> None:
    """Equal allocation over strata of 800 and 200: 1 of 10 and 5 of 10 hallucinated. The
    unweighted rate is 6/20; the population's is 0.8·0.1 + 0.2·0.5."""
    a = rows_of("a", 800, [(1, 1)] * 10)
    b = rows_of("b", 200, [(1, 1)] * 10)
    for i, row in enumerate(a):
        row["hallucination"] = int(i < 1)
    for i, row in enumerate(b):
        row["hallucination"] = int(i < 5)
    score = score_review([write_review(tmp_path / "r.csv", a + b)]).latest
    hr = score.hallucination
    assert hr is not None and hr.weighted is not None
    assert hr.rate == pytest.approx(6 / 20)
    assert hr.weighted.estimate == pytest.approx(0.8 * 0.1 + 0.2 * 0.5)
    var = (
        0.8**2 * (1 - 10 / 800) * (0.1 * 0.9 * 10 / 9) / 10
        + 0.2**2 * (1 - 10 / 200) * (0.5 * 0.5 * 10 / 9) / 10
    )
    assert hr.weighted.se == pytest.approx(math.sqrt(var))
    rows = dict((name, value) for name, value, _ in summary_rows(score))
    assert rows["hallucination rate (6 of 20 labelled, unweighted)"] == "30.0%"
    assert rows["hallucination rate, stratum-weighted"] == "18.0%"


def test_equal_allocation_from_the_cli(logs: Path, tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    code, _, err = run(
        "review",
        "sample",
        *data_args(logs),
        "--size",
        "40",
        "--stratify-by",
        "channel",
        "--allocation",
        "equal",
        "--seed",
        "9",
        "-o",
        str(path),
    )
    assert code == 0, err
    sample = pl.read_csv(path, infer_schema=False)
    drawn = sample.group_by("stratum").agg(pl.len(), pl.col("stratum_size").first().cast(int))
    drawn = drawn.sort("stratum")
    expected = allocate(drawn["stratum_size"].to_list(), 40, "equal")
    assert drawn["len"].to_list() == expected
    assert set(sample["allocation"]) == {"equal"}
    assert "kpictl: note: equal allocation: 40 of 300 conversations in " in err


def test_transcripts_hold_only_messages_up_to_as_of(logs: Path) -> None:
    """The transcript is read from the events as compute reads them (engine source_rows): at
    an as-of inside the data, each drawn conversation shows its first messages up to as-of,
    never a later one (counted by hand from the Parquet rows)."""
    import kpictl

    spec = kpictl.load_spec(SPEC)
    sources = kpictl.load_sources(
        spec, {"events": [str(logs / "events")], "tool_calls": [str(logs / "tool_calls")]}
    )
    events = pl.read_parquet(logs / "events" / "*.parquet")
    as_of = events["ts"].sort()[events.height // 2]
    options = kpictl.SampleOptions(size=40, seed=5, messages=50, as_of=as_of)
    drawn = kpictl.draw_review_sample(spec, sources, options).frame
    counts = dict(
        events.filter(
            (pl.col("event") == "message") & pl.col("text").is_not_null() & (pl.col("ts") <= as_of)
        )
        .group_by("conversation_id")
        .len()
        .iter_rows()
    )
    later = dict(
        events.filter((pl.col("event") == "message") & (pl.col("ts") > as_of))
        .group_by("conversation_id")
        .len()
        .iter_rows()
    )
    shown = {r["conversation_id"]: r["transcript"] for r in drawn.iter_rows(named=True)}
    assert any(later.get(c, 0) for c in shown)  # some drawn conversation goes on after as-of
    for conversation, transcript in shown.items():
        lines = transcript.splitlines() if transcript else []
        assert len(lines) == counts.get(conversation, 0), conversation
