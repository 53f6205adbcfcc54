"""Business outcomes: events attributed to conversations (first / last / split, the window),
checked by hand and against the same rule written as DuckDB SQL; the outcome KPIs vs DuckDB;
the spec's attribution errors with their exact messages."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import JsonlWriter, SpecWriter
from kpictl.cli import app
from kpictl.engine.compute import compute, facts
from kpictl.engine.outcomes import attribute_events
from kpictl.engine.sources import load_sources
from kpictl.errors import SpecError
from kpictl.spec import load_spec
from kpictl.spec.model import AttributionSpec

runner = CliRunner()
T0 = dt.datetime(2026, 10, 1, 10, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# c1 and c2 are user u1's (c1 starts at T0 and ends an hour later, c2 starts 2 days later);
# c3 is u2's; c4 is u3's and has the holdout arm.
EVENTS = [
    {
        "conversation_id": "c1",
        "ts": _iso(T0),
        "event": "message",
        "user_id": "u1",
        "arm": "treatment",
        "cost_usd": 1.0,
    },
    {
        "conversation_id": "c1",
        "ts": _iso(T0 + dt.timedelta(hours=1)),
        "event": "resolution",
        "user_id": "u1",
        "arm": "treatment",
        "cost_usd": 1.0,
    },
    {
        "conversation_id": "c2",
        "ts": _iso(T0 + 2 * DAY),
        "event": "message",
        "user_id": "u1",
        "arm": "treatment",
        "cost_usd": 3.0,
    },
    {
        "conversation_id": "c3",
        "ts": _iso(T0),
        "event": "message",
        "user_id": "u2",
        "arm": "treatment",
        "cost_usd": 0.5,
    },
    {
        "conversation_id": "c4",
        "ts": _iso(T0 + 3 * DAY),
        "event": "message",
        "user_id": "u3",
        "arm": "holdout",
        "cost_usd": 2.0,
    },
]
# (id, conversation_id, user_id, ts, value_usd)
BUSINESS = [
    ("e1", None, "u1", T0 + 3 * DAY, 100.0),  # c1 and c2 hold it
    ("e2", None, "u1", T0 + 7 * DAY, 40.0),  # exactly 7 d after c1's start: c1 and c2
    ("e3", None, "u1", T0 + 7 * DAY + dt.timedelta(seconds=1), 10.0),  # c2 only (start)
    ("e4", "c3", None, T0 + 8 * DAY, 5.0),  # names c3, after its window: none
    ("e5", "c3", "u2", T0 + DAY, 20.0),  # names c3, in its window: c3
    ("e6", None, None, T0 + DAY, 7.0),  # names nobody: none
    ("e7", None, "u1", T0 - dt.timedelta(seconds=1), 9.0),  # before any u1 conversation: none
    ("e8", None, "u9", T0 + DAY, 3.0),  # a user without conversations: none
]


def _business_rows() -> list[dict[str, object]]:
    return [
        {
            "business_event_id": i,
            "conversation_id": c,
            "user_id": u,
            "ts": _iso(t),
            "type": "booking",
            "value_usd": v,
        }
        for i, c, u, t, v in BUSINESS
    ]


def _frames() -> tuple[pl.LazyFrame, pl.LazyFrame]:
    utc = pl.Datetime("us", "UTC")
    parse = pl.col("ts").str.to_datetime(time_zone="UTC").cast(utc)
    events = pl.DataFrame(EVENTS).with_columns(parse)
    business = pl.DataFrame(
        _business_rows(),
        schema={
            "business_event_id": pl.String,
            "conversation_id": pl.String,
            "user_id": pl.String,
            "ts": pl.String,
            "type": pl.String,
            "value_usd": pl.Float64,
        },
    ).with_columns(parse)
    return events.lazy(), business.lazy()


def _attributed(rule: str, after: str = "start") -> dict[tuple[str, str], float]:
    events, business = _frames()
    got = attribute_events(business, events, AttributionSpec(7 * DAY, after, rule)).collect()
    return {
        (r["business_event_id"], r["conversation_id"]): r["share"]
        for r in got.iter_rows(named=True)
    }


# Worked by hand from the comments on BUSINESS above.
HAND = {
    ("first", "start"): {
        ("e1", "c1"): 1.0,
        ("e2", "c1"): 1.0,
        ("e3", "c2"): 1.0,
        ("e5", "c3"): 1.0,
    },
    ("last", "start"): {("e1", "c2"): 1.0, ("e2", "c2"): 1.0, ("e3", "c2"): 1.0, ("e5", "c3"): 1.0},
    ("split", "start"): {
        ("e1", "c1"): 0.5,
        ("e1", "c2"): 0.5,
        ("e2", "c1"): 0.5,
        ("e2", "c2"): 0.5,
        ("e3", "c2"): 1.0,
        ("e5", "c3"): 1.0,
    },
    # after: end — c1 ended an hour after its start, so its window holds e3 too
    ("split", "end"): {
        ("e1", "c1"): 0.5,
        ("e1", "c2"): 0.5,
        ("e2", "c1"): 0.5,
        ("e2", "c2"): 0.5,
        ("e3", "c1"): 0.5,
        ("e3", "c2"): 0.5,
        ("e5", "c3"): 1.0,
    },
}


@pytest.mark.parametrize(("rule", "after"), list(HAND))
def test_attribution_by_hand(rule: str, after: str) -> None:
    assert _attributed(rule, after) == HAND[(rule, after)]


class _Arrow:
    """A polars frame handed to DuckDB through the Arrow PyCapsule interface (no pyarrow)."""

    def __init__(self, df: pl.DataFrame) -> None:
        self._df = df.with_columns(pl.selectors.datetime().dt.replace_time_zone(None))

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._df.__arrow_c_stream__(requested_schema)


def _duckdb(sql: str, **frames: pl.DataFrame) -> list[tuple[object, ...]]:
    con = duckdb.connect()
    try:
        for name, frame in frames.items():
            con.register(name, _Arrow(frame))
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _duckdb_attribution(rule: str, after: str) -> dict[tuple[str, str], float]:
    """The same rule in SQL: windows per conversation, candidates per event, then rank."""
    events, business = _frames()
    anchor = "MIN(ts)" if after == "start" else "MAX(ts)"
    pick = {
        "first": "ROW_NUMBER() OVER (PARTITION BY id ORDER BY start, cid) = 1",
        "last": "ROW_NUMBER() OVER (PARTITION BY id ORDER BY start DESC, cid DESC) = 1",
        "split": "ROW_NUMBER() OVER (PARTITION BY id ORDER BY start, cid) >= 1",
    }[rule]
    rows = _duckdb(
        f"""
        WITH w AS (SELECT conversation_id AS cid, ANY_VALUE(user_id) AS uid, MIN(ts) AS start,
                          {anchor} + INTERVAL 7 DAY AS close FROM ev GROUP BY 1),
        direct AS (SELECT business_event_id AS id, cid, 1.0 AS share FROM be JOIN w
                   ON be.conversation_id = w.cid WHERE be.ts BETWEEN w.start AND w.close),
        cand AS (SELECT business_event_id AS id, cid, start,
                        1.0 / COUNT(*) OVER (PARTITION BY business_event_id) AS n_share
                 FROM be JOIN w ON be.user_id = w.uid
                 WHERE be.conversation_id IS NULL AND be.ts BETWEEN w.start AND w.close),
        by_user AS (SELECT id, cid, CASE WHEN '{rule}' = 'split' THEN n_share ELSE 1.0 END
                    AS share FROM cand QUALIFY {pick})
        SELECT * FROM direct UNION ALL SELECT * FROM by_user
    """,
        ev=events.collect(),
        be=business.collect(),
    )
    return {(i, c): float(s) for i, c, s in rows}


@pytest.mark.parametrize("after", ["start", "end"])
@pytest.mark.parametrize("rule", ["first", "last", "split"])
def test_attribution_matches_duckdb(rule: str, after: str) -> None:
    assert _attributed(rule, after) == pytest.approx(_duckdb_attribution(rule, after))


OUTCOME_CHANGES = (
    (
        "  tool_calls:\n    path: logs/tool_calls/\n",
        "  tool_calls:\n    path: logs/tool_calls/\n"
        "  business_events:\n    path: logs/business_events/\n"
        "    attribution: {within: 7d, after: start, rule: split}\n",
    ),
    (
        "    derive:\n      resolved:",
        "      business_events:\n        outcomes: COUNT(*)\n"
        "        outcome_value: TOTAL(value_usd)\n"
        "    derive:\n      resolved:",
    ),
    (
        "        csat: AVG(csat) FILTER (WHERE event = 'feedback')\n",
        "        csat: AVG(csat) FILTER (WHERE event = 'feedback')\n"
        "        run_cost: TOTAL(cost_usd)\n",
    ),
    (
        "kpis:\n",
        "kpis:\n"
        "  business_outcome_rate:\n    over: conversations\n"
        "    numerator: COUNT(*) FILTER (WHERE outcomes > 0)\n    denominator: COUNT(*)\n"
        "  value_per_conversation:\n    over: conversations\n    value: AVG(outcome_value)\n"
        "  cost_per_outcome:\n    over: conversations\n"
        "    numerator: SUM(run_cost)\n    denominator: SUM(outcomes)\n",
    ),
)


@pytest.fixture()
def outcome_logs(write_spec: SpecWriter, write_jsonl: JsonlWriter, tmp_path: Path) -> Path:
    write_jsonl("logs/events/e.jsonl", EVENTS)
    write_jsonl(
        "logs/tool_calls/t.jsonl",
        [{"conversation_id": "c1", "ts": _iso(T0), "tool": "search", "status": "ok"}],
    )
    write_jsonl("logs/business_events/b.jsonl", _business_rows())
    return write_spec(*OUTCOME_CHANGES)


def test_outcome_rollup_and_kpis_match_duckdb(outcome_logs: Path) -> None:
    spec = load_spec(outcome_logs)
    sources = load_sources(spec)
    as_of = T0 + 30 * DAY  # every business event is before it
    table = facts(spec, sources, as_of=as_of).sort("conversation_id")
    # split: c1 gets half of e1 and e2, c2 half of each and all of e3, c3 e5
    assert table.select("conversation_id", "outcomes", "outcome_value").rows() == [
        ("c1", 2, 70.0),
        ("c2", 3, 80.0),
        ("c3", 1, 20.0),
        ("c4", 0, 0.0),
    ]
    got = compute(
        spec,
        sources,
        as_of=as_of,
        kpis=["business_outcome_rate", "value_per_conversation", "cost_per_outcome"],
    )
    values = dict(got.filter(pl.col("grouping").list.len() == 0).select("kpi", "value").iter_rows())
    (want,) = _duckdb(
        """
        WITH cost AS (SELECT conversation_id, SUM(cost_usd) AS c FROM ev GROUP BY 1)
        SELECT AVG(CASE WHEN outcomes > 0 THEN 1.0 ELSE 0.0 END), AVG(outcome_value),
               SUM(c) / SUM(outcomes)
        FROM conv JOIN cost USING (conversation_id)
    """,
        ev=pl.DataFrame(EVENTS).drop("ts"),
        conv=table,
    )
    assert want == pytest.approx((0.75, 42.5, 7.5 / 6))  # and by hand: 3/4, 170/4, 7.5/6
    assert (
        values["business_outcome_rate"],
        values["value_per_conversation"],
        values["cost_per_outcome"],
    ) == pytest.approx(want)


def test_the_default_as_of_is_the_logs_and_later_business_events_are_left_out(
    outcome_logs: Path,
) -> None:
    """The latest log event is c4's at T0 + 3 d; e4 (T0 + 8 d) does not move as-of, and e2, e3
    (after it) are not counted: c1 and c2 split e1 only, c3 keeps e5."""
    spec = load_spec(outcome_logs)
    table = facts(spec, load_sources(spec)).sort("conversation_id")
    assert table.select("conversation_id", "outcomes", "outcome_value").rows() == [
        ("c1", 1, 50.0),
        ("c2", 1, 50.0),
        ("c3", 1, 20.0),
        ("c4", 0, 0.0),
    ]


def test_unattributed_events_are_counted_for_check_not_a_note(outcome_logs: Path) -> None:
    """Walk-ins and late events are in any CRM export: described by `kpictl check`, not a
    caveat on every run's stderr."""
    spec = load_spec(outcome_logs)
    loaded = load_sources(spec).by_name["business_events"]
    assert loaded.notes == ()
    assert loaded.info == (
        "business_events: 4 of 8 events (50.0%) are attributed to no conversation "
        "(none named, or none of the user's within 7d after its start): outcome "
        "KPIs leave them out",
    )


def test_business_events_are_attributed_once_at_load(outcome_logs: Path) -> None:
    """The attribution (a group-by of every event by conversation, joins, a sort) runs once,
    when the sources load: the source's frame is its attributed rows in memory, so a count, a
    null count or a rollup over it reads those rows instead of attributing again (a report read
    it 9 times, 3-6 s each at 10M events). The rows are those of `attribute_events`."""
    spec = load_spec(outcome_logs)
    sources = load_sources(spec)
    plan = sources["business_events"].explain()
    assert plan.startswith("DF ") and "JOIN" not in plan and "AGGREGATE" not in plan
    # the attributed rows, worked by hand (HAND: the outcome spec splits, after the start)
    got = sources["business_events"].collect()
    rows = got.iter_rows(named=True)
    shares = {(r["business_event_id"], r["conversation_id"]): r["share"] for r in rows}
    assert shares == HAND[("split", "start")]
    assert got.height == 6


ATTRIBUTION_LINE = "    attribution: {within: 7d, after: start, rule: split}\n"


@pytest.mark.parametrize(
    ("attribution", "path", "message"),
    [
        (
            "    attribution: {within: 7 days, after: start, rule: split}\n",
            "sources.business_events.attribution.within",
            "expected a duration like 7d, 24h, 90m, 30s or 500ms, got '7 days'",
        ),
        (
            "    attribution: {within: 0d, after: start, rule: split}\n",
            "sources.business_events.attribution.within",
            "expected a duration above zero, got '0d'",
        ),
        (
            "    attribution: {within: 7d, after: start, rule: lats}\n",
            "sources.business_events.attribution.rule",
            "expected first or last or split, got 'lats' (did you mean 'last'?)",
        ),
        (
            "    attribution: {within: 7d, after: middle, rule: last}\n",
            "sources.business_events.attribution.after",
            "expected start or end, got 'middle'",
        ),
        (
            "    attribution: {within: 7d, rule: last}\n",
            "sources.business_events.attribution",
            "`after` is required, e.g. attribution: {within: 7d, after: start, rule: last}",
        ),
        (
            "",
            "sources.business_events",
            "a business_events source needs `attribution: {within: 7d, after: start, rule: last}` "
            "(rule: first | last | split; after: start | end of the conversation)",
        ),
    ],
)
def test_attribution_spec_errors(
    write_spec: SpecWriter, attribution: str, path: str, message: str
) -> None:
    changes = [OUTCOME_CHANGES[0], *OUTCOME_CHANGES[1:]]
    old, new = changes[0]
    changes[0] = (old, new.replace(ATTRIBUTION_LINE, attribution))
    spec_path = write_spec(*changes)
    with pytest.raises(SpecError) as caught:
        load_spec(spec_path)
    lines = spec_path.read_text().splitlines()
    needle = attribution.strip() or "business_events:"
    want_line = next(n for n, text in enumerate(lines, 1) if needle in text)
    assert [(p.line, p.path, p.message) for p in caught.value.problems] == [
        (want_line, path, message)
    ]


def test_attribution_on_another_source_is_an_error(write_spec: SpecWriter) -> None:
    spec_path = write_spec(
        ("    path: logs/tool_calls/\n", "    path: logs/tool_calls/\n" + ATTRIBUTION_LINE)
    )
    with pytest.raises(SpecError) as caught:
        load_spec(spec_path)
    line = spec_path.read_text().splitlines().index(ATTRIBUTION_LINE.rstrip("\n")) + 1
    assert [(p.line, p.path, p.message) for p in caught.value.problems] == [
        (
            line,
            "sources.tool_calls.attribution",
            "attribution belongs to the business_events source only",
        )
    ]


ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "kpi_definitions.yaml"


def outcome_spec_text() -> str:
    """The shipped spec with its business-outcome blocks turned on (their "# " removed), the
    way its header tells a user to, reading the bundled sample_logs/."""
    lines, inside = [], False
    for line in SHIPPED.read_text().splitlines():
        if line.startswith("# >>> business outcomes"):
            inside = True
        elif line.startswith("# <<< business outcomes"):
            inside = False
        elif inside:
            assert line.startswith("# ") or line == "#", line
            lines.append(line[2:])
        else:
            lines.append(line)
    return "\n".join(lines).replace("sample_logs/", f"{ROOT / 'sample_logs'}/") + "\n"


def _read(name: str) -> pl.DataFrame:
    frame = pl.read_ndjson(ROOT / "sample_logs" / name / f"{name}.jsonl", infer_schema_length=None)
    return frame.with_columns(pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC"))


# The shipped outcome KPIs on the bundled sample, written from the raw files in DuckDB: the
# as-of is the latest log time; attribution is `last` within 7 days of a conversation's start.
SAMPLE_OUTCOMES_SQL = """
WITH horizon AS (SELECT MAX(ts) AS as_of FROM (SELECT ts FROM ev UNION ALL SELECT ts FROM tc)),
tool AS (SELECT conversation_id, SUM(cost_usd) AS tool_cost FROM tc GROUP BY 1),
conv AS (
  SELECT conversation_id AS cid, ANY_VALUE(user_id) AS uid, ANY_VALUE(arm) AS arm,
         MIN(ts) AS start,
         COALESCE(SUM(cost_usd), 0) + COALESCE(SUM(human_minutes), 0) * 0.75 AS own_cost
  FROM ev GROUP BY 1),
b AS (SELECT * FROM be WHERE ts <= (SELECT as_of FROM horizon)),
direct AS (SELECT cid, type, value_usd FROM b JOIN conv ON b.conversation_id = conv.cid
           WHERE b.ts BETWEEN conv.start AND conv.start + INTERVAL 7 DAY),
by_user AS (SELECT cid, type, value_usd FROM b JOIN conv ON b.user_id = conv.uid
            WHERE b.conversation_id IS NULL
              AND b.ts BETWEEN conv.start AND conv.start + INTERVAL 7 DAY
            QUALIFY ROW_NUMBER() OVER (PARTITION BY business_event_id
                                       ORDER BY start DESC, cid DESC) = 1),
per_conv AS (SELECT cid, COUNT(*) FILTER (WHERE type = 'booking') AS outcomes,
                    SUM(value_usd) AS outcome_value
             FROM (SELECT * FROM direct UNION ALL SELECT * FROM by_user) GROUP BY 1),
settled AS (
  SELECT conv.arm, COALESCE(outcomes, 0) AS outcomes, COALESCE(outcome_value, 0) AS value,
         own_cost + COALESCE(tool_cost, 0) AS cost
  FROM conv LEFT JOIN per_conv USING (cid) LEFT JOIN tool ON tool.conversation_id = conv.cid
  WHERE conv.start <= (SELECT as_of FROM horizon) - INTERVAL 7 DAY)
SELECT arm, AVG(CASE WHEN outcomes > 0 THEN 1.0 ELSE 0.0 END), AVG(value),
       SUM(cost) / SUM(outcomes), COUNT(*)
FROM settled GROUP BY GROUPING SETS ((), (arm)) ORDER BY arm NULLS FIRST
"""


def test_the_shipped_outcome_blocks_match_duckdb_on_the_sample(tmp_path: Path) -> None:
    path = tmp_path / "kpi_definitions.yaml"
    path.write_text(outcome_spec_text())
    spec = load_spec(path)
    assert len(spec.kpis) == 19
    kpis = ["business_outcome_rate", "value_per_conversation", "cost_per_outcome"]
    got = compute(spec, load_sources(spec), by=["arm"], kpis=kpis)
    want = _duckdb(
        SAMPLE_OUTCOMES_SQL, ev=_read("events"), tc=_read("tool_calls"), be=_read("business_events")
    )
    assert [r[0] for r in want] == [None, "holdout", "treatment"]
    for arm, rate, value, cost, n in want:
        rows = got.filter(pl.col("arm").is_null() if arm is None else pl.col("arm") == arm)
        values = dict(rows.select("kpi", "value").iter_rows())
        assert set(rows["n"]) == {n}
        assert (
            values["business_outcome_rate"],
            values["value_per_conversation"],
            values["cost_per_outcome"],
        ) == pytest.approx((rate, value, cost), rel=1e-9)
    # the holdout arm books less often than the agent's arm (as the sample is drawn)
    assert want[1][1] < want[2][1]


def test_the_sample_logs_are_unchanged_by_the_business_events(tmp_path: Path) -> None:
    """`kpictl sample` with its defaults writes the bundled files byte for byte: adding
    business events moved no event and no tool call."""
    from kpictl.sample import write_sample

    for path in write_sample(tmp_path):
        bundled = ROOT / "sample_logs" / path.relative_to(tmp_path)
        assert path.read_bytes() == bundled.read_bytes(), bundled


def test_the_report_roi_credits_the_attributed_business_value(tmp_path: Path) -> None:
    """With the outcome blocks on, the ROI section compares value_per_conversation between the
    arms: the figures are the Welch test on each settled conversation's attributed value
    (scipy), the randomized design's caveat is printed, and 'value added' is Δ × n."""
    from scipy import stats as sps

    path = tmp_path / "kpi_definitions.yaml"
    path.write_text(outcome_spec_text())
    code = runner.invoke(
        app, ["report", "-c", str(path), "--baseline", "holdout", "-o", str(tmp_path / "r.md")]
    ).exit_code
    assert code == 0
    text = (tmp_path / "r.md").read_text()
    roi = text.split("### Business value against the baseline", 1)[1].split("\n\n", 2)[1]
    spec = load_spec(path)
    table = facts(spec, load_sources(spec)).filter(pl.col("outcome_settled"))
    treat = table.filter(pl.col("arm") == "treatment")["outcome_value"].to_numpy()
    hold = table.filter(pl.col("arm") == "holdout")["outcome_value"].to_numpy()
    welch = sps.ttest_ind(treat, hold, equal_var=False)
    ci = welch.confidence_interval(0.95)
    delta = treat.mean() - hold.mean()
    lines = roi.splitlines()
    assert lines[0] == (
        f"- Attributed business value per conversation (KPI `value_per_conversation`): "
        f"baseline ${hold.mean():,.2f} (n={len(hold)}), current ${treat.mean():,.2f} "
        f"(n={len(treat):,}); Δ = +${delta:.4f} [-${-ci.low:.4f}, +${ci.high:.2f}] "
        f"(welch_t, 95 % CI, p = {welch.pvalue:.3f}, p adj. = 1.000 after holm correction "
        "over the KPI tests)."
    )
    n = len(treat)
    assert lines[1] == (
        "- **No added value can be claimed:** the 95 % interval of Δ includes 0 (point "
        f"estimate Δ × current conversations = +${delta:.4f} × {n:,} = ${delta * n:,.2f} "
        f"[-${-ci.low * n:,.2f}, ${ci.high * n:,.2f}], for context only)."
    )
    assert lines[2] == (
        "- Design: randomized holdout, so the difference is a causal estimate "
        "for this period's traffic."
    )
    assert lines[3] == (
        "- Assumptions: business events are credited by the spec's attribution (within 7d "
        "after the conversation's start, rule last); events attributed to no conversation "
        "count for neither side; 468 conversations whose window is still open are left out "
        "(pending)."
    )


def test_compare_tests_the_outcome_kpis_by_their_shape(tmp_path: Path) -> None:
    """A rate gets the proportion test, a mean Welch's t, a ratio of sums the delta method; the
    differences are those of the settled conversations' facts by arm."""
    from kpictl.comparison import compare

    path = tmp_path / "kpi_definitions.yaml"
    path.write_text(outcome_spec_text())
    spec = load_spec(path)
    sources = load_sources(spec)
    got = compare(
        spec,
        sources,
        baseline="holdout",
        kpis=["business_outcome_rate", "value_per_conversation", "cost_per_outcome"],
    )
    overall = {
        r["kpi"]: r for r in got.filter(pl.col("grouping").list.len() == 0).iter_rows(named=True)
    }
    assert {k: r["test"] for k, r in overall.items()} == {
        "business_outcome_rate": "proportion_t",
        "value_per_conversation": "welch_t",
        "cost_per_outcome": "delta_ratio",
    }
    table = facts(spec, sources).filter(pl.col("outcome_settled"))
    arms = {arm: table.filter(pl.col("arm") == arm) for arm in ("holdout", "treatment")}

    def by_hand(frame: pl.DataFrame) -> tuple[float, float, float]:
        return (
            (frame["outcomes"] > 0).mean(),
            frame["outcome_value"].mean(),
            frame["cost_usd"].sum() / frame["outcomes"].sum(),
        )

    hold, treat = by_hand(arms["holdout"]), by_hand(arms["treatment"])
    for i, kpi in enumerate(
        ("business_outcome_rate", "value_per_conversation", "cost_per_outcome")
    ):
        assert overall[kpi]["baseline_value"] == pytest.approx(hold[i], rel=1e-9)
        assert overall[kpi]["current_value"] == pytest.approx(treat[i], rel=1e-9)
        assert overall[kpi]["delta"] == pytest.approx(treat[i] - hold[i], rel=1e-9)
