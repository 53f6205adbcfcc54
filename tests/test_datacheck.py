"""The data must speak the spec's vocabulary: unmatched literals, unavailable KPIs (datacheck)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import run, sample_sources
from kpictl.spec import load_spec
from kpictl.sql.expr import compared_literals, picked_column

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "kpi_definitions.yaml"
runner = CliRunner()
RENAMED = {"resolution": "closed", "escalation": "handoff", "reopen": "reopened"}


@pytest.fixture(scope="module")
def kind_logs(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's events with `event` written as `kind` in another vocabulary (closed,
    handoff, reopened), and a spec mapping `event: {from: kind}`."""
    out = tmp_path_factory.mktemp("kind")
    events = pl.read_parquet(logs / "events")
    events.with_columns(pl.col("event").replace(RENAMED)).rename({"event": "kind"}).write_parquet(
        out / "events.parquet"
    )
    text = SPEC.read_text().replace(  # the first `ts:` mapping is the events source's
        "      ts: {from: ts, type: timestamp}\n",
        "      ts: {from: ts, type: timestamp}\n      event: {from: kind}\n",
        1,
    )
    assert "event: {from: kind}" in text
    (out / "spec.yaml").write_text(text)
    return out


def _line(spec: Path, text: str) -> int:
    return next(i for i, line in enumerate(spec.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("event = 'resolution'", [("event", "resolution")]),
        ("'resolution' = event", [("event", "resolution")]),
        ("status <> 'ok'", [("status", "ok")]),
        ("role IN ('agent', 'bot')", [("role", "agent"), ("role", "bot")]),
        ("role NOT IN ('agent')", [("role", "agent")]),
        ("COUNT(*) FILTER (WHERE event = 'reopen'\n  AND ts > resolved_at)", [("event", "reopen")]),
        (
            "x = 'it''s = ''no''' AND y = 'a AND b = ''c'''",
            [("x", "it's = 'no'"), ("y", "a AND b = 'c'")],
        ),
        ("event\n=\n'x'\nOR\nkind = 'y'", [("event", "x"), ("kind", "y")]),
        ("ts > '2026-01-01'", []),  # an ordering, not a vocabulary
        ("LOWER(event) = 'x'", []),  # not a bare column
        ("COUNT(*)", []),
        ("event = other_column", []),
    ],
)
def test_compared_literals_come_from_the_parsed_tree(sql: str, expected: list) -> None:
    assert list(compared_literals(sql)) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("FIRST(escalation_reason) FILTER (WHERE event = 'escalation')", "escalation_reason"),
        ("LAST(channel)", "channel"),
        ("MIN(ts)", "ts"),
        ("MAX(x) FILTER (WHERE a)", "x"),
        ("COUNT(*)", None),
        ("TOTAL(a) + TOTAL(b)", None),
        ("MIN(a + b)", None),
    ],
)
def test_picked_column(sql: str, expected: str | None) -> None:
    assert picked_column(sql) == expected


def test_another_event_vocabulary_is_named_with_the_values_seen(
    kind_logs: Path, logs: Path
) -> None:
    spec = kind_logs / "spec.yaml"
    code, out, err = run(
        "compute",
        str(kind_logs / "events.parquet"),
        *sample_sources(logs),
        "-c",
        str(spec),
        "--format",
        "json",
        "--kpi",
        "task_completion_rate",
        "--kpi",
        "escalation_rate",
    )
    assert code == 0, err
    counts = (
        pl.read_parquet(kind_logs / "events.parquet")
        .get_column("kind")
        .value_counts()
        .sort(["count", "kind"], descending=[True, False])
    )
    seen = ", ".join(f"{v!r} ({n:,})" for v, n in counts.iter_rows())
    assert seen.startswith("'message' (1,747), 'closed' (240)")  # the data, as written
    expected = [
        f"{spec}:{_line(spec, 'resolved_at:       MIN')}: tables.conversations.rollup.events."
        f"resolved_at: no row of source 'events' has event = 'resolution'; most frequent "
        f"values: {seen}",
        f"{spec}:{_line(spec, 'reopened_24h:')}: tables.conversations.rollup.events."
        f"reopened_24h: no row of source 'events' has event = 'reopen'; most frequent values: "
        f"{seen} (did you mean 'reopened'?)",
        f"{spec}:{_line(spec, 'escalated:')}: tables.conversations.rollup.events.escalated: no "
        f"row of source 'events' has event = 'escalation'; most frequent values: {seen}",
        f"{spec}:{_line(spec, 'escalation_reason: FIRST')}: tables.conversations.rollup.events."
        f"escalation_reason: no row of source 'events' has event = 'escalation'; most frequent "
        f"values: {seen}",
    ]
    assert json.loads(out)["notes"] == expected
    assert err.splitlines() == [f"kpictl: note: {n}" for n in expected]


def test_matched_literals_give_no_note(logs: Path) -> None:
    code, out, err = run(
        "compute",
        str(logs / "events"),
        *sample_sources(logs),
        "-c",
        str(SPEC),
        "--format",
        "json",
    )
    assert (code, err) == (0, "")
    assert json.loads(out)["notes"] == []
    assert all(r["reason"] is None for r in json.loads(out)["results"])


def test_a_typo_in_where_is_named(logs: Path) -> None:
    code, _, err = run(
        "compute",
        str(logs / "events"),
        *sample_sources(logs),
        "-c",
        str(SPEC),
        "--kpi",
        "task_completion_rate",
        "--where",
        "channel = 'wbe'",
    )
    assert code == 0
    channels = (
        pl.read_parquet(logs / "events")
        .get_column("channel")
        .value_counts()
        .sort(["count", "channel"], descending=[True, False])
    )
    seen = ", ".join(f"{v!r} ({n:,})" for v, n in channels.iter_rows())
    as_of = pl.read_parquet(logs / "events").get_column("ts").max()
    assert isinstance(as_of, dt.datetime)
    assert err == (
        f"kpictl: note: --where: no row of source 'events' has channel = "
        f"'wbe'; most frequent values: {seen} (did you mean 'web'?)\n"
        "kpictl: note: no conversations in the window (start – as-of "
        f"{as_of.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}) meet --where channel = 'wbe': "
        "every KPI is n = 0 with a null value\n"
    )


# ----------------------------------------------------------------------------------------------
# Unavailable KPIs
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sparse_logs(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample without `intent` and `human_minutes` columns, and with `user_id` null on half
    the rows (present but sparse: fine)."""
    out = tmp_path_factory.mktemp("sparse")
    events = pl.read_parquet(logs / "events").drop("intent", "human_minutes")
    events.with_row_index().with_columns(
        pl.when(pl.col("index") % 2 == 0).then(pl.col("user_id")).alias("user_id")
    ).drop("index").write_parquet(out / "events.parquet")
    return out


def sparse_args(sparse_logs: Path, logs: Path) -> list[str]:
    return [
        str(sparse_logs / "events.parquet"),
        *sample_sources(logs),
        "-c",
        str(SPEC),
    ]


HUMAN = [
    "containment_rate",
    "containment_with_quality",
    "cost_per_successful_task",
    "cost_per_task",
    "human_minutes_per_task",
    "cost_per_outcome",
]


def test_kpis_on_a_missing_column_are_unavailable(sparse_logs: Path, logs: Path) -> None:
    code, out, err = run("compute", *sparse_args(sparse_logs, logs), "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    reasons = {
        r["kpi"]: (r["value"], r["reason"])
        for r in document["results"]
        if not r["cohort"] and "breakdown" not in r
    }
    unavailable = {k: v for k, v in reasons.items() if v[1] is not None}
    assert unavailable == {
        **{k: (None, "no `human_minutes` column in source 'events'") for k in HUMAN},
        "repeat_contact_rate_7d": (None, "no `intent` column in source 'events'"),
    }
    expected_notes = [
        "no `human_minutes` column in source 'events': unavailable (value null, not computed "
        f"over nulls): {', '.join(HUMAN)}; map the column in the spec, e.g. sources.events."
        "columns.human_minutes: {from: <field>}, or {default: 0} when its absence means zero",
        "no `intent` column in source 'events': unavailable (value null, not computed over "
        "nulls): repeat_contact_rate_7d; map the column in the spec, e.g. sources.events."
        "columns.intent: {from: <field>}, or {default: 0} when its absence means zero",
    ]
    assert document["notes"] == expected_notes
    # the others are the numbers of the full data: the missing columns do not touch them
    code, full, _ = run(
        "compute",
        str(logs / "events"),
        *sample_sources(logs),
        "-c",
        str(SPEC),
        "--format",
        "json",
        "--kpi",
        "task_completion_rate",
        "--kpi",
        "tokens_per_task",
    )
    values = {r["kpi"]: r["value"] for r in json.loads(full)["results"]}
    assert reasons["task_completion_rate"][0] == pytest.approx(values["task_completion_rate"])
    assert reasons["tokens_per_task"][0] == pytest.approx(values["tokens_per_task"])


def test_unavailable_in_table_markdown_and_csv(sparse_logs: Path, logs: Path) -> None:
    args = [
        *sparse_args(sparse_logs, logs),
        "--kpi",
        "repeat_contact_rate_7d",
        "--kpi",
        "containment_rate",
    ]
    code, out, _ = run("compute", *args, "--format", "markdown")
    assert code == 0
    rows = [
        line
        for line in out.splitlines()
        if line.startswith("| Came back within 7 days")
        or line.startswith("| Handled without a human |")
    ]  # the KPIs' labels
    assert [r.split(" | ")[2] for r in rows] == [
        "unavailable (no `human_minutes` column)",
        "unavailable (no `intent` column)",
    ]
    assert "0.00 %" not in out
    code, out, _ = run("compute", *args, "--format", "csv")
    records = list(csv.DictReader(io.StringIO(out)))
    assert [(r["kpi"], r["value"], r["reason"]) for r in records] == [  # --kpi order
        ("repeat_contact_rate_7d", "", "no `intent` column in source 'events'"),
        ("containment_rate", "", "no `human_minutes` column in source 'events'"),
    ]
    code, out, _ = run("compute", *args)
    assert "unavailable (no `intent` column)" in out


def test_compare_never_says_ok_on_an_unavailable_kpi(sparse_logs: Path, logs: Path) -> None:
    code, out, err = run(
        "compare",
        *sparse_args(sparse_logs, logs),
        "--baseline",
        "holdout",
        "--kpi",
        "repeat_contact_rate_7d",
        "--kpi",
        "task_completion_rate",
        "--format",
        "json",
    )
    assert code == 0, err
    document = json.loads(out)
    status = {r["kpi"]: r["status"] for r in document["results"]}
    assert status["repeat_contact_rate_7d"] == "unavailable"
    assert status["task_completion_rate"] != "unavailable"
    row = next(r for r in document["results"] if r["kpi"] == "repeat_contact_rate_7d")
    assert row["current"]["value"] is None and row["p_value"] is None
    assert "no `intent` column in source 'events'" in row["warnings"]


def test_the_scorecard_shows_unavailable(sparse_logs: Path, logs: Path) -> None:
    code, out, err = run("report", *sparse_args(sparse_logs, logs))
    assert code == 0, err
    label = "Came back within 7 days with the same need"  # repeat_contact_rate_7d's label
    out = out.replace("\u00a0", " ")  # a number cell's spaces are non-breaking
    tiles, kpi_table = [li for li in out.splitlines() if li.startswith(f"| {label} |")]
    (trend,) = [li for li in out.splitlines() if li.startswith("| repeat_contact_rate_7d")]
    assert tiles == (
        f"| {label} | unavailable (no `intent` column) | — | **unavailable** |"
    )  # the owner is in the KPI table
    # n is compute's n on each arm (rows counted), the value unavailable
    assert kpi_table.startswith(
        f"| {label} | — (n=4) | unavailable (no `intent` "
        "column) (n=64) | — | — | — | — | 2pp / 4pp / 8pp | "
        "**unavailable** |"
    )
    assert "%" not in trend
    assert "### repeat_contact_rate_7d" not in out  # no drill-down counted over nulls


# ----------------------------------------------------------------------------------------------
# --strict, and a baseline or cohort column the data lacks
# ----------------------------------------------------------------------------------------------

STRICT = "kpictl: error: --strict: the data does not fit the spec ({}, see the notes above)"


def test_strict_turns_the_notes_into_exit_2_after_the_output(kind_logs: Path, logs: Path) -> None:
    args = [
        str(kind_logs / "events.parquet"),
        *sample_sources(logs),
        "-c",
        str(kind_logs / "spec.yaml"),
        "--kpi",
        "task_completion_rate",
    ]
    code, out, err = run("compute", *args, "--strict", "--format", "json")
    assert code == 2
    assert len(json.loads(out)["results"]) == 1  # the output is written first
    lines = err.splitlines()
    assert len(lines) == 5 and all(li.startswith("kpictl: note: ") for li in lines[:4])
    assert lines[-1] == STRICT.format("4 findings")
    code, _, err = run("compute", *args)
    assert code == 0 and "error" not in err


def test_strict_on_data_that_fits_exits_0(logs: Path) -> None:
    args = [
        str(logs / "events"),
        *sample_sources(logs),
        "-c",
        str(SPEC),
        "--strict",
    ]
    for command in ("compute", "compare"):
        code, _, err = run(command, *args, "--kpi", "task_completion_rate")
        assert (code, err) == (0, ""), command
    code, _, _ = run("report", *args)
    assert code == 0


def test_strict_on_compare_and_report(sparse_logs: Path, logs: Path) -> None:
    code, out, err = run(
        "compare", *sparse_args(sparse_logs, logs), "--kpi", "repeat_contact_rate_7d", "--strict"
    )
    assert code == 2 and "Came back within 7 days" in out  # the KPI's label
    assert err.splitlines()[-1] == STRICT.format("1 finding")
    code, out, err = run("report", *sparse_args(sparse_logs, logs), "--strict")
    assert code == 2 and out.startswith("# ")
    assert err.splitlines()[-1] == STRICT.format("2 findings")  # no `human_minutes`, no `intent`


@pytest.fixture(scope="module")
def armless_logs(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample without its `arm` and `channel` columns."""
    out = tmp_path_factory.mktemp("armless")
    pl.read_parquet(logs / "events").drop("arm", "channel").write_parquet(out / "events.parquet")
    return out


def _with_values(path: Path) -> str:
    """The columns of the loaded events that hold a value, in the source's order."""
    from kpictl.engine.sources import load_sources
    from kpictl.spec import load_spec

    frame = load_sources(load_spec(SPEC), {"events": [path]}, cache=False)["events"].collect()
    return ", ".join(c for c in frame.columns if frame.get_column(c).null_count() < frame.height)


def test_a_baseline_on_a_missing_column_is_a_usage_error(armless_logs: Path, logs: Path) -> None:
    events = armless_logs / "events.parquet"
    args = [str(events), "--source", f"tool_calls={logs / 'tool_calls'}", "-c", str(SPEC)]
    args[3:3] = ["--source", f"business_events={logs / 'business_events'}"]
    expected = (
        f"kpictl: error: {SPEC}:{_line(SPEC, 'holdout:  {')}: baselines.holdout: no "
        f"`arm` column in source 'events' (no row has a value); columns with values "
        f"there: {_with_values(events)}\n"
    )
    for command in ("compare", "report"):
        code, out, err = run(command, *args, "--baseline", "holdout")
        assert (code, out, err) == (2, "", expected), command


def test_a_cohort_on_a_missing_column_is_a_usage_error(armless_logs: Path, logs: Path) -> None:
    events = armless_logs / "events.parquet"
    args = [
        str(events),
        *sample_sources(logs),
        "-c",
        str(SPEC),
        "--by",
        "channel",
    ]
    expected = (
        "kpictl: error: --by channel: no `channel` column in source 'events' (no row "
        f"has a value); columns with values there: {_with_values(events)}\n"
    )
    for command in (
        ["compute"],
        ["compare", "--baseline", "prior_4w"],
        ["report", "--baseline", "prior_4w"],
    ):
        code, out, err = run(*command, *args)
        assert (code, out, err) == (2, "", expected), command


def test_strict_counts_unknown_costs() -> None:
    """The chat fixture: 3 of its 5 assistant messages carry no usage (partially priced) and
    none reports cached tokens (no cache discount): two findings."""
    chat = ROOT / "tests" / "fixtures" / "chat"
    code, out, err = run(
        "compute",
        "-c",
        str(chat / "spec.yaml"),
        "--kpi",
        "cost_per_trial",
        "--format",
        "json",
        "--strict",
        "--no-cache",
    )
    assert code == 2
    record = json.loads(out)["results"][0]
    assert record["reason"] is None and record["value"] == pytest.approx(
        (0.0025 + 0.002 + 0.00125 + 0.001) / 3
    )  # the priced part, a lower bound
    assert err.splitlines()[-1] == STRICT.format("2 findings")


# ----------------------------------------------------------------------------------------------
# kpictl check
# ----------------------------------------------------------------------------------------------


def test_check_on_data_that_fits(logs: Path) -> None:
    code, out, err = run(
        "check",
        str(logs / "events"),
        *sample_sources(logs),
        "-c",
        str(SPEC),
        "--format",
        "json",
    )
    assert (code, err) == (0, "")
    document = json.loads(out)
    events = pl.read_parquet(logs / "events")
    calls = pl.read_parquet(logs / "tool_calls")
    con = duckdb.connect()
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{logs}/events/*.parquet')")
    con.execute(f"CREATE VIEW calls AS SELECT * FROM read_parquet('{logs}/tool_calls/*.parquet')")
    duplicates = con.execute(
        "SELECT COUNT(*) - (SELECT COUNT(*) FROM (SELECT DISTINCT "
        "conversation_id, ts, event FROM events)) FROM events"
    ).fetchone()[0]
    orphans = con.execute(
        "SELECT COUNT(*) FROM calls WHERE conversation_id NOT IN "
        "(SELECT conversation_id FROM events)"
    ).fetchone()[0]
    first, last = con.execute("SELECT MIN(ts), MAX(ts) FROM events").fetchone()
    source = document["sources"][0]
    assert (source["name"], source["rows"], source["duplicates"], source["orphans"]) == (
        "events",
        events.height,
        duplicates,
        None,
    )
    for found, expected in ((source["first"], first), (source["last"], last)):
        expected = expected.replace(tzinfo=dt.UTC) if expected.tzinfo is None else expected
        assert found == expected.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    # pre_tokens: the sample's pre-period covariate, which the shipped spec does not read
    assert source["columns"] == {"mapped": ["ts"], "unmapped": ["pre_tokens"], "empty": []}
    tools = document["sources"][1]
    assert (tools["name"], tools["rows"], tools["orphans"]) == ("tool_calls", calls.height, orphans)
    status_ok = calls.filter(pl.col("status") == "ok").height
    literal = next(li for li in document["literals"] if li["literal"] == "ok")
    assert (literal["column"], literal["rows"]) == ("status", status_ok)
    assert all(k["computable"] and k["reason"] is None for k in document["kpis"])
    assert [k["kpi"] for k in document["kpis"]] == list(load_spec(SPEC).kpis)
    assert document["findings"] == []


def test_check_flags_vocabulary_duplicates_orphans_and_missing_columns(
    logs: Path, tmp_path: Path
) -> None:
    events = (
        pl.read_parquet(logs / "events")
        .drop("intent")
        .with_columns(
            pl.lit("x").alias("extra_field"), pl.lit(None, dtype=pl.String).alias("region")
        )
    )
    events = pl.concat([events, events.head(2)])  # two rows repeated
    calls = pl.read_parquet(logs / "tool_calls")
    calls = pl.concat(
        [calls, calls.head(3).with_columns(pl.lit("nobody").alias("conversation_id"))]
    )  # three calls of no conversation
    events.write_parquet(tmp_path / "events.parquet")
    calls.write_parquet(tmp_path / "calls.parquet")
    code, out, err = run(
        "check",
        str(tmp_path / "events.parquet"),
        "--source",
        f"tool_calls={tmp_path / 'calls.parquet'}",
        "--source",
        f"business_events={logs / 'business_events'}",
        "-c",
        str(SPEC),
    )
    assert code == 2
    assert err == "kpictl: check: 3 findings: the data does not fit the spec\n"
    assert out.splitlines()[-4:] == [
        "3 findings:",
        "  - no `intent` column in source 'events': unavailable (value null, not computed over "
        "nulls): repeat_contact_rate_7d; map the column in the spec, e.g. sources.events.columns"
        ".intent: {from: <field>}, or {default: 0} when its absence means zero",
        "  - source 'events': 2 rows repeat another row's (conversation_id, ts, event)",
        "  - source 'tool_calls': 3 rows whose conversation_id is not in the primary source",
    ]
    lines = out.splitlines()
    assert (
        "  repeat_contact_rate_7d: unavailable (no `intent` column): no `intent` column in "
        "source 'events'"
    ) in lines
    assert lines[1:5] == [
        "  columns mapped by the spec: ts",
        "  columns neither mapped nor read: pre_tokens, extra_field",
        "  columns with no value: region, intent",
        f"  rows repeating a (conversation_id, ts, event): {2:,}",
    ]
    assert lines[0].startswith(f"source events: {events.height:,} rows, ")


def test_check_names_literals_that_match_nothing(kind_logs: Path, logs: Path) -> None:
    code, out, err = run(
        "check",
        str(kind_logs / "events.parquet"),
        *sample_sources(logs),
        "-c",
        str(kind_logs / "spec.yaml"),
        "--format",
        "json",
    )
    assert code == 2
    assert err == "kpictl: check: 4 findings: the data does not fit the spec\n"
    document = json.loads(out)
    unmatched = [(li["path"], li["literal"]) for li in document["literals"] if li["rows"] == 0]
    assert unmatched == [
        ("tables.conversations.rollup.events.resolved_at", "resolution"),
        ("tables.conversations.rollup.events.reopened_24h", "reopen"),
        ("tables.conversations.rollup.events.escalated", "escalation"),
        ("tables.conversations.rollup.events.escalation_reason", "escalation"),
    ]
    closed = pl.read_parquet(kind_logs / "events.parquet").filter(kind="closed").height
    assert document["literals"][0]["seen"]["closed"] == closed


# ----------------------------------------------------------------------------------------------
# Cost unknown per cohort and slice
# ----------------------------------------------------------------------------------------------

TWO_MODELS_SPEC = """\
version: 1
pricing:
  models:
    gpt-4o:
      - {effective_from: 2026-01-01, input: 2.5, output: 10.0}
sources:
  events:
    path: runs.jsonl
    format: chat
    options:
      ts: created_at
tables:
  trials:
    key: conversation_id
    time: started_at
    attributes: [model]
    rollup:
      events:
        started_at: MIN(ts)
        llm_cost: TOTAL(cost_usd)
kpis:
  total_cost:
    over: trials
    value: TOTAL(llm_cost)
    format: usd
  cost_per_trial:
    over: trials
    value: AVG(llm_cost)
    format: usd
"""


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four chats: c1, c2 on gpt-4o (priced: 2.5 / 10.0 USD per 1M input / output tokens);
    c3 on my-finetune with tokens and no price (unpriced), c4 on my-finetune without usage."""
    out = tmp_path_factory.mktemp("two_models")

    def chat(name: str, model: str, usage: tuple[int, int] | None) -> dict:
        reply: dict = {"role": "assistant", "content": "Done."}
        if usage is not None:
            reply["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
        return {
            "id": name,
            "model": model,
            "created_at": "2026-10-01T10:00:00Z",
            "messages": [{"role": "user", "content": "Hi"}, reply],
        }

    chats = [
        chat("c1", "gpt-4o", (1000, 200)),
        chat("c2", "gpt-4o", (2000, 100)),
        chat("c3", "my-finetune", (500, 50)),
        chat("c4", "my-finetune", None),
    ]
    (out / "runs.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    (out / "spec.yaml").write_text(TWO_MODELS_SPEC)
    return out


C1 = 1000 * 2.5 / 1e6 + 200 * 10.0 / 1e6  # 0.0045
C2 = 2000 * 2.5 / 1e6 + 100 * 10.0 / 1e6  # 0.006
UNKNOWN = "cost unknown: no row of source 'events' here has a cost (rows that should carry one: 2)"


def _results(out: str) -> dict[tuple[str, str | None], dict]:
    return {(r["kpi"], r["cohort"].get("model")): r for r in json.loads(out)["results"]}


def test_a_cohort_without_a_known_cost_is_unavailable_not_zero(two_models: Path) -> None:
    """Every row of model my-finetune is unpriced or without usage: its cost is unknown (was
    $0.0000), while gpt-4o's is the hand-priced sum and the overall one partially priced."""
    spec = str(two_models / "spec.yaml")
    code, out, _ = run("compute", "-c", spec, "--by", "model", "--format", "json", "--no-cache")
    assert code == 0
    rows = _results(out)
    shown = {key: (r["value"], r["reason"], r["n"]) for key, r in rows.items()}
    assert shown[("total_cost", "my-finetune")] == (None, UNKNOWN, 2)
    assert shown[("cost_per_trial", "my-finetune")] == (None, UNKNOWN, 2)
    assert shown[("total_cost", "gpt-4o")][:2] == (pytest.approx(C1 + C2), None)
    assert shown[("cost_per_trial", "gpt-4o")][:2] == (pytest.approx((C1 + C2) / 2), None)
    assert shown[("total_cost", None)][:2] == (pytest.approx(C1 + C2), None)  # a lower bound
    assert shown[("cost_per_trial", None)][:2] == (pytest.approx((C1 + C2) / 4), None)
    code, out, _ = run("compute", "-c", spec, "--by", "model", "--kpi", "total_cost", "--no-cache")
    assert code == 0
    cells = [
        [c.strip() for c in line.split("│")[1:-1]]
        for line in out.splitlines()
        if "model=my-finetune" in line
    ]
    assert cells == [
        ["total_cost", "model=my-finetune", "unavailable (cost unknown)", "2", "", "unassigned"]
    ]


@pytest.mark.parametrize("where", ["model = 'my-finetune'", "conversation_id = 'c4'"])
def test_a_where_slice_without_a_known_cost_is_unavailable(two_models: Path, where: str) -> None:
    code, out, _ = run(
        "compute",
        "-c",
        str(two_models / "spec.yaml"),
        "--where",
        where,
        "--format",
        "json",
        "--no-cache",
    )
    assert code == 0
    rows = _results(out)
    reason = UNKNOWN if "model" in where else UNKNOWN.replace("one: 2", "one: 1")
    assert {k: (r["value"], r["reason"]) for k, r in rows.items()} == {
        ("total_cost", None): (None, reason),
        ("cost_per_trial", None): (None, reason),
    }


def test_a_priced_where_slice_keeps_its_cost(two_models: Path) -> None:
    code, out, _ = run(
        "compute",
        "-c",
        str(two_models / "spec.yaml"),
        "--where",
        "conversation_id = 'c2'",
        "--format",
        "json",
        "--no-cache",
    )
    assert code == 0
    rows = _results(out)
    assert (rows[("total_cost", None)]["value"], rows[("total_cost", None)]["reason"]) == (
        pytest.approx(C2),
        None,
    )


def test_compare_shows_the_cohort_cost_unknown_as_compute(two_models: Path) -> None:
    """compare's current value is compute's: null, status unavailable, the reason as warning."""
    spec = str(two_models / "spec.yaml")
    runs = str(two_models / "runs.jsonl")
    code, out, _ = run(
        "compare",
        "-c",
        spec,
        runs,
        "--baseline",
        runs,
        "--by",
        "model",
        "--format",
        "json",
        "--no-cache",
    )
    assert code == 0
    compared = _results(out)
    _, computed, _ = run("compute", "-c", spec, "--by", "model", "--format", "json", "--no-cache")
    for key, row in _results(computed).items():
        assert compared[key]["current"]["value"] == row["value"], key
    for kpi in ("total_cost", "cost_per_trial"):
        cell = compared[(kpi, "my-finetune")]
        assert (
            cell["current"]["value"],
            cell["baseline"]["value"],
            cell["status"],
            cell["warnings"],
        ) == (None, None, "unavailable", [UNKNOWN])


def test_kpi_origins_are_remembered_per_spec_object(tmp_path: Path) -> None:
    """kpi_origins is memoised on the (spec, KPI) objects: asked again it gives the same pairs
    (a caller changing its copy changes nothing), and another spec with a KPI of the same name
    gets its own answer. Expected pairs read off the shipped spec's rollup and derive by hand:
    cost_usd = llm_cost (events.cost_usd) + tool_cost (tool_calls.cost_usd) + human_minutes
    (events.human_minutes) × a param."""
    from kpictl.engine.costcoverage import kpi_cost_sources
    from kpictl.engine.origins import kpi_origins

    spec = load_spec(SPEC)
    kpi = spec.kpis["cost_per_task"]
    expected = {("events", "cost_usd"), ("events", "human_minutes"), ("tool_calls", "cost_usd")}
    first = kpi_origins(spec, kpi)
    assert first == expected
    first.clear()
    assert kpi_origins(spec, kpi) == expected
    assert kpi_cost_sources(spec, kpi) == ["events", "tool_calls"]

    text = SPEC.read_text()
    assert text.count("value: AVG(cost_usd)") == 1
    other = tmp_path / "kpi_definitions.yaml"
    other.write_text(text.replace("value: AVG(cost_usd)", "value: AVG(llm_cost)"))
    changed = load_spec(other)
    assert kpi_origins(changed, changed.kpis["cost_per_task"]) == {("events", "cost_usd")}
    assert kpi_cost_sources(changed, changed.kpis["cost_per_task"]) == ["events"]
    assert kpi_origins(spec, kpi) == expected
