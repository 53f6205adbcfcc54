"""The spec validator: every problem is reported at once, each with its file:line, the path of the
key it concerns, what was expected and, where a name is close, "did you mean"."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from conftest import SpecWriter
from kpictl.errors import SpecError, SpecProblem, UsageError
from kpictl.spec import load_spec
from kpictl.spec.model import Spec, Threshold, parse_duration, parse_threshold

QUOTING_HINT = "must be quoted"


def spec_problems(path: Path) -> list[SpecProblem]:
    """The problems load_spec reports for the file (fails the test if it loads)."""
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return caught.value.problems


def line_of(path: Path, needle: str) -> int:
    """The 1-based number of the only line of the file that contains `needle`."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(hits) == 1, f"{needle!r} is on lines {hits}"
    return hits[0]


@dataclass(frozen=True)
class Want:
    """One expected problem: on the line containing `on`, at `path`, saying each of `says`."""

    on: str
    path: str
    says: tuple[str, ...]


def check(path: Path, *wanted: Want) -> None:
    problems = spec_problems(path)
    assert len(problems) == len(wanted), "\n".join(map(str, problems))
    for problem, want in zip(problems, wanted, strict=True):
        assert problem.file == str(path)
        assert (problem.line, problem.path) == (line_of(path, want.on), want.path), problem
        for text in want.says:
            assert text in problem.message, problem


# (id, [(old, new) changes to the minimal spec], [expected problems in report order])
CASES: list[tuple[str, list[tuple[str, str]], list[Want]]] = [
    (
        "unknown top-level key",
        [("params:", "parms:\n  x: 1\nparams:")],
        [
            Want(
                "parms:",
                "parms",
                ("unknown key (did you mean 'params'?)", "allowed: version, defaults, params"),
            )
        ],
    ),
    (
        "unknown KPI key",
        [
            (
                "    direction: higher\n    format: percent\n    thresholds: {warning: 2pp",
                "    direcion: higher\n    format: percent\n    thresholds: {warning: 2pp",
            )
        ],
        [
            Want(
                "direcion:",
                "kpis.resolution_rate.direcion",
                ("unknown key (did you mean 'direction'", "allowed: description, owner"),
            )
        ],
    ),
    (
        "unknown table key",
        [("    time: started_at", "    tme: started_at")],
        [
            Want(
                "tme:",
                "tables.conversations.tme",
                ("unknown key (did you mean 'time'?)", "allowed: key, time, attributes"),
            )
        ],
    ),
    (
        "unknown column in an expression",
        [("value: MEDIAN(ttr_s)", "value: MEDIAN(ttr_sec)")],
        [
            Want(
                "MEDIAN(ttr_sec)",
                "kpis.ttr_p50.value",
                (
                    "unknown column 'ttr_sec' (did you mean 'ttr_s'?)",
                    "available: arm, as_of, channel, conversation_id, csat",
                    "[MEDIAN(ttr_sec)]",
                ),
            )
        ],
    ),
    (
        # ttr_p95 inherits the `where`: its problem points at the line the parent wrote.
        "where is not boolean",
        [("where: resolved\n", "where: ttr_s\n")],
        [
            Want("where: ttr_s", "kpis.ttr_p50.where", ("`where` must give Boolean", "Float64")),
            Want("where: ttr_s", "kpis.ttr_p95.where", ("`where` must give Boolean", "Float64")),
        ],
    ),
    (
        "mature is not boolean",
        [
            (
                "    numerator: COUNT(*) FILTER (WHERE resolved)",
                "    mature: ttr_s + 1\n    numerator: COUNT(*) FILTER (WHERE resolved)",
            )
        ],
        [
            Want(
                "mature: ttr_s + 1",
                "kpis.resolution_rate.mature",
                ("`mature` must give Boolean, but gives Float64",),
            )
        ],
    ),
    (
        "value is not an aggregate",
        [("value: MEDIAN(ttr_s)", "value: ttr_s")],
        [
            Want(
                "value: ttr_s",
                "kpis.ttr_p50.value",
                ("`value` must be an aggregate", "got a row-level expression"),
            )
        ],
    ),
    (
        "derive aggregates",
        [("happy: csat >= good_csat", "happy: AVG(csat)")],
        [
            Want(
                "happy: AVG(csat)",
                "tables.conversations.derive.happy",
                ("must be row-level", "it aggregates"),
            )
        ],
    ),
    (
        "two KPI kinds",
        [
            (
                "    where: resolved\n    value",
                "    where: resolved\n    numerator: COUNT(*)\n    value",
            )
        ],
        [Want("  ttr_p50:", "kpis.ttr_p50", ("exactly one kind", "found value, numerator"))],
    ),
    (
        "numerator without denominator",
        [("    denominator: COUNT(*)\n    breakdown", "    breakdown")],
        [Want("WHERE escalated", "kpis.escalation_rate", ("`numerator` needs a `denominator`",))],
    ),
    (
        "extends cycle",
        [("  ttr_p50:\n    over", "  ttr_p50:\n    extends: ttr_p95\n    over")],
        [
            Want(
                "extends: ttr_p50",
                "kpis.ttr_p95.extends",
                ("cycle: ttr_p50 -> ttr_p95 -> ttr_p50",),
            ),
            Want(
                "extends: ttr_p95",
                "kpis.ttr_p50.extends",
                ("cycle: ttr_p95 -> ttr_p50 -> ttr_p95",),
            ),
        ],
    ),
    (
        "extends an unknown KPI",
        [("extends: ttr_p50", "extends: ttr_p5")],
        [Want("extends: ttr_p5", "kpis.ttr_p95.extends", ("no KPI named 'ttr_p5' (did you mean",))],
    ),
    (
        "formula cycle",
        [
            (
                "formula: resolution_rate / (resolution_rate + escalation_rate)",
                "formula: share_b + 1\n  share_b:\n    formula: resolved_share * 2",
            )
        ],
        [
            Want(
                "formula: resolved_share * 2",
                "kpis.share_b.formula",
                ("cycle: resolved_share -> share_b -> resolved_share",),
            ),
            Want(
                "formula: share_b + 1",
                "kpis.resolved_share.formula",
                ("cycle: share_b -> resolved_share -> share_b",),
            ),
        ],
    ),
    (
        "formula uses itself",
        [("resolution_rate / (resolution_rate + escalation_rate)", "resolved_share + 1")],
        [
            Want(
                "formula: resolved_share + 1",
                "kpis.resolved_share.formula",
                ("cycle: resolved_share -> resolved_share",),
            )
        ],
    ),
    (
        "formula uses an unknown KPI",
        [("resolution_rate / (resolution_rate", "resolution_rat / (resolution_rate")],
        [
            Want(
                "formula:",
                "kpis.resolved_share.formula",
                (
                    "unknown column 'resolution_rat' (did you mean 'resolution_rate'",
                    "available: escalation_rate, resolution_rate",
                ),
            )
        ],
    ),
    (
        "rollup entry uses an entry defined below it",
        [("started_at: MIN(ts)\n", "started_at: MIN(ts)\n        first_res: MIN(resolved_at)\n")],
        [
            Want(
                "first_res:",
                "tables.conversations.rollup.events.first_res",
                ("uses resolved_at defined below it", "reorder"),
            )
        ],
    ),
    (
        "thresholds not monotonic",
        [("{warning: 2pp, critical: 5pp}", "{warning: 5pp, critical: 2pp}")],
        [
            Want(
                "warning: 5pp",
                "kpis.resolution_rate.thresholds",
                ("levels must grow from warning to catastrophic: warning 5pp > critical 2pp",),
            )
        ],
    ),
    (
        "bad threshold text",
        [("{warning: 2pp, critical: 5pp}", "{warning: lots, critical: 5pp}")],
        [
            Want(
                "warning: lots",
                "kpis.resolution_rate.thresholds.warning",
                ("not a threshold: 'lots'", "expected e.g. 2pp, 15%"),
            )
        ],
    ),
    (
        "'<' bound on a lower-is-better KPI",
        [("{warning: 15%, critical: 30%}", "{warning: 15%, critical: '< 60s'}")],
        [
            Want(
                "'< 60s'",
                "kpis.ttr_p50.thresholds.critical",
                ("a '<' bound fires on improvement", "lower is better"),
            ),
            Want("'< 60s'", "kpis.ttr_p95.thresholds.critical", ("a '<' bound",)),
        ],
    ),
    (
        "subquery",
        [("(WHERE resolved)", "(WHERE resolved AND csat IN (SELECT 1))")],
        [Want("SELECT 1", "kpis.resolution_rate.numerator", ("subqueries are not allowed",))],
    ),
    (
        "now()",
        [
            (
                "    numerator: COUNT(*) FILTER (WHERE resolved)",
                "    mature: resolved_at < now()\n    numerator: COUNT(*) FILTER (WHERE resolved)",
            )
        ],
        [Want("now()", "kpis.resolution_rate.mature", ("the wall clock is not allowed", "as_of"))],
    ),
    (
        "templating",
        [
            (
                "    numerator: COUNT(*) FILTER (WHERE resolved)",
                '    mature: "csat >= {{ good_csat }}"\n'
                "    numerator: COUNT(*) FILTER (WHERE resolved)",
            )
        ],
        [
            Want(
                "{{ good_csat }}",
                "kpis.resolution_rate.mature",
                ("templating is not supported", "params are columns"),
            )
        ],
    ),
    (
        "YAML syntax error",
        [("    where: resolved\n", "    where: resolved: yes\n")],
        [
            Want(
                "resolved: yes",
                "(yaml)",
                ("not valid YAML", "mapping values are not allowed here", QUOTING_HINT, "': '"),
            )
        ],
    ),
    (
        "unquoted expression read as a mapping",
        [("value: MEDIAN(ttr_s)", "value: {ttr_s}")],
        [
            Want(
                "value: {ttr_s}",
                "kpis.ttr_p50.value",
                ("expected one SQL expression (text), got {'ttr_s': None}", QUOTING_HINT),
            )
        ],
    ),
    (
        "unquoted expression read as a list",
        [
            (
                "    denominator: COUNT(*)\n    breakdown",
                "    denominator: [COUNT(*)]\n    breakdown",
            )
        ],
        [
            Want(
                "[COUNT(*)]",
                "kpis.escalation_rate.denominator",
                ("expected one SQL expression (text), got ['COUNT(*)']", QUOTING_HINT),
            )
        ],
    ),
    (
        "unquoted expression starting with * (an alias)",
        [("value: MEDIAN(ttr_s)", "value: *ttr_s")],
        [Want("value: *ttr_s", "(yaml)", ("found undefined alias 'ttr_s'", QUOTING_HINT))],
    ),
    (
        "empty expression",
        [("happy: csat >= good_csat", "happy:")],
        [Want("happy:", "tables.conversations.derive.happy", ("is empty",))],
    ),
    (
        "unquoted yes is a boolean, not an expression",
        [("where: resolved\n", "where: yes\n")],
        [
            Want("where: yes", "kpis.ttr_p50.where", ("got True", QUOTING_HINT)),
            Want("where: yes", "kpis.ttr_p95.where", ("got True", QUOTING_HINT)),
        ],
    ),
    (
        "unknown baseline in defaults",
        [("baseline: prior\n", "baseline: prio\n")],
        [
            Want(
                "baseline: prio",
                "defaults.baseline",
                ("no baseline named 'prio' (did you mean 'prior'?)",),
            )
        ],
    ),
    (
        # Reported once, where it is declared, not again where defaults use it.
        "baseline with two kinds",
        [("{previous: 28d}", "{previous: 28d, between: [2026-01-01, 2026-02-01]}")],
        [
            Want(
                "prior: {previous",
                "baselines.prior",
                ("exactly one of previous, between, control", "found previous, between"),
            )
        ],
    ),
    (
        "between ends before it starts",
        [
            (
                "  prior: {previous: 28d}\n",
                "  prior: {previous: 28d}\n  q1: {between: [2026-03-01, 2026-01-01]}\n",
            )
        ],
        [Want("q1:", "baselines.q1", ("the end must come after the start",))],
    ),
    (
        "holdout without treatment",
        [(", treatment: \"arm = 'treatment'\"", "")],
        [
            Want(
                "holdout:", "baselines.holdout", ("a holdout needs both `control` and `treatment`",)
            )
        ],
    ),
    (
        "misspelt design",
        [("design: randomized}", "design: randomised}")],
        [
            Want(
                "holdout:",
                "baselines.holdout.design",
                (
                    "expected randomized or observational, got 'randomised' (did you mean "
                    "'randomized'?)",
                ),
            )
        ],
    ),
    (
        "a period comparison declared randomized",
        [("{previous: 28d}", "{previous: 28d, design: randomized}")],
        [
            Want(
                "prior: {previous",
                "baselines.prior.design",
                (
                    "only `control`/`treatment` arms can be randomized; a period or target "
                    "comparison is observational",
                ),
            )
        ],
    ),
    (
        # `split` is only read by the sample-ratio check, which only a randomized design gets.
        "split on observational arms",
        [("design: randomized}", "split: 0.8}")],
        [
            Want(
                "holdout:",
                "baselines.holdout.split",
                (
                    "`split` is the intended treatment share of a randomized assignment: declare "
                    "`design: randomized` (or drop `split`)",
                ),
            )
        ],
    ),
    (
        "values name an unknown KPI",
        [
            (
                "  prior: {previous: 28d}\n",
                "  prior: {previous: 28d}\n  contract: {values: {resolution_rat: 0.8}}\n",
            )
        ],
        [
            Want(
                "contract:",
                "baselines.contract.values.resolution_rat",
                ("no KPI named 'resolution_rat' (did you mean 'resolution_rate'",),
            )
        ],
    ),
    (
        "wrong version",
        [("version: 1", "version: 2")],
        [Want("version: 2", "version", ("expected version: 1, got 2",))],
    ),
    (
        "duplicate YAML key",
        [("  good_csat: 4\n", "  good_csat: 4\n  good_csat: 5\n")],
        [
            Want(
                "good_csat: 5",
                "(yaml)",
                ("duplicate key 'good_csat'", "silently replace", "the first is on line 7"),
            )
        ],
    ),
    (
        # The rollup block that reads it is reported too, but nothing built on its entries.
        "missing events source",
        [("  events:\n    path: logs/events/", "  evts:\n    path: logs/events/")],
        [
            Want("sources:", "sources", ("an `events` source is required",)),
            Want(
                "      events:",
                "tables.conversations.rollup.events",
                ("no source named 'events' (did you mean 'evts'?)",),
            ),
        ],
    ),
    (
        "over an unknown table",
        [("over: calls", "over: cals")],
        [
            Want(
                "over: cals",
                "kpis.tool_success.over",
                ("no table named 'cals' (did you mean 'calls'?)", "tables: conversations, calls"),
            )
        ],
    ),
    (
        "breakdown on a value KPI",
        [("    value: QUANTILE_CONT", "    breakdown: channel\n    value: QUANTILE_CONT")],
        [
            Want(
                "breakdown: channel",
                "kpis.ttr_p95.breakdown",
                ("a breakdown splits a numerator", "`numerator` + `denominator`"),
            )
        ],
    ),
    (
        "breakdown column unknown",
        [("breakdown: escalation_reason", "breakdown: escalation_reasn")],
        [
            Want(
                "breakdown: escalation_reasn",
                "kpis.escalation_rate.breakdown",
                (
                    "no column 'escalation_reasn' in table 'conversations'",
                    "did you mean 'escalation_reason'",
                ),
            )
        ],
    ),
    (
        "cluster column unknown",
        [("cluster: conversation_id", "cluster: conversation")],
        [
            Want(
                "cluster: conversation",
                "kpis.tool_success.cluster",
                ("no column 'conversation' in table 'calls' (did you mean 'conversation_id'?)",),
            )
        ],
    ),
]


def test_shipped_spec_loads(shipped_spec: Spec) -> None:
    assert len(shipped_spec.kpis) == 19
    assert shipped_spec.kpis["time_to_resolution_p95"].where == "resolved_at IS NOT NULL"
    assert shipped_spec.kpis["containment_with_quality"].denominator == "COUNT(*)"
    assert shipped_spec.params == {"human_cost_per_minute": 0.75, "good_csat": 4}


def test_minimal_spec_loads(write_spec: SpecWriter) -> None:
    spec = load_spec(write_spec())
    assert list(spec.kpis) == [
        "resolution_rate",
        "escalation_rate",
        "ttr_p50",
        "ttr_p95",
        "tool_success",
        "resolved_share",
    ]
    assert spec.kpis["ttr_p95"].where == "resolved"  # inherited through extends
    assert spec.kpis["resolved_share"].formula_kpis == ("resolution_rate", "escalation_rate")


def test_shipped_spec_labels_every_kpi_in_plain_words(shipped_spec: Spec) -> None:
    labels = [k.label for k in shipped_spec.kpis.values()]
    assert all(labels) and len(set(labels)) == 19
    assert all(len(label) <= 80 and "_" not in label for label in labels if label)
    kpi = shipped_spec.kpis["task_completion_rate"]
    assert (kpi.label, kpi.title) == ("Task completion (not reopened in 24 h)",) * 2


def test_a_label_is_optional_and_its_own_through_extends(write_spec: SpecWriter) -> None:
    spec = load_spec(
        write_spec(
            (
                "    value: MEDIAN(ttr_s)\n",
                "    value: MEDIAN(ttr_s)\n    label: Time to resolve, median\n",
            ),
            (
                "    value: QUANTILE_CONT(ttr_s, 0.95)\n",
                "    value: QUANTILE_CONT(ttr_s, 0.95)\n"
                "    label: '  Time to resolve, slowest 5 %'\n",
            ),
        )
    )
    assert spec.kpis["ttr_p50"].label == "Time to resolve, median"
    assert spec.kpis["ttr_p95"].label == "Time to resolve, slowest 5 %"  # stripped
    assert spec.kpis["ttr_p95"].where == "resolved"  # the rest still inherited
    assert (spec.kpis["resolution_rate"].label, spec.kpis["resolution_rate"].title) == (
        None,
        "resolution_rate",
    )


def test_a_label_inherited_through_extends_is_a_duplicate(write_spec: SpecWriter) -> None:
    # ttr_p95 extends ttr_p50: the same words on two KPIs would read as one KPI twice
    check(
        write_spec(
            ("    value: MEDIAN(ttr_s)\n", "    value: MEDIAN(ttr_s)\n    label: Time to resolve\n")
        ),
        Want(
            "label: Time to resolve",
            "kpis.ttr_p95.label",
            ("'Time to resolve' is also the label of ttr_p50", "give each KPI its own label"),
        ),
    )


@pytest.mark.parametrize(
    ("label", "says"),
    [
        ("3", "expected plain words (text of at most 80 characters), got 3"),
        ("[a, b]", "expected plain words (text of at most 80 characters), got ['a', 'b']"),
        ("''", "expected plain words (text of at most 80 characters), got ''"),
        ('"two\\nlines"', "expected one line of plain words, got a line break"),
        ("x" * 81, "expected at most 80 characters, got 81; a longer explanation belongs in"),
    ],
)
def test_a_bad_label_is_located_and_explained(
    write_spec: SpecWriter, label: str, says: str
) -> None:
    check(
        write_spec(
            (
                "    breakdown: escalation_reason\n",
                f"    breakdown: escalation_reason\n    label: {label}\n",
            )
        ),
        Want(f"label: {label}", "kpis.escalation_rate.label", (says,)),
    )


def test_control_treatment_arms_are_observational_unless_declared_randomized(
    write_spec: SpecWriter, shipped_spec: Spec
) -> None:
    assert shipped_spec.baselines["holdout"].design == "randomized"
    assert shipped_spec.baselines["prior_4w"].design == "observational"
    spec = load_spec(write_spec((", design: randomized}", "}")))
    assert (spec.baselines["holdout"].kind, spec.baselines["holdout"].design) == (
        "holdout",
        "observational",
    )
    declared = load_spec(write_spec(("design: randomized}", "design: observational}")))
    assert declared.baselines["holdout"].design == "observational"


@pytest.mark.parametrize(("changes", "wanted"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_problem_is_located_and_explained(
    write_spec: SpecWriter, changes: list[tuple[str, str]], wanted: list[Want]
) -> None:
    check(write_spec(*changes), *wanted)


def test_several_problems_are_reported_at_once(write_spec: SpecWriter) -> None:
    path = write_spec(
        ("version: 1", "version: 3"),
        ("    time: started_at", "    tme: started_at"),
        ("value: MEDIAN(ttr_s)", "value: MEDIAN(ttr_sec)"),
        ("{warning: 2pp, critical: 5pp}", "{warning: 5pp, critical: 2pp}"),
        ("cluster: conversation_id", "cluster: conversation"),
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    problems = caught.value.problems
    assert [(p.line, p.path) for p in problems] == [
        (1, "version"),
        (line_of(path, "tme:"), "tables.conversations.tme"),
        (line_of(path, "warning: 5pp"), "kpis.resolution_rate.thresholds"),
        (line_of(path, "MEDIAN(ttr_sec)"), "kpis.ttr_p50.value"),
        (line_of(path, "cluster: conversation"), "kpis.tool_success.cluster"),
    ]
    text = str(caught.value)
    assert text.startswith("5 problems in the KPI spec:\n")
    assert f"  {path}:1: version: expected version: 1, got 3" in text.splitlines()


def test_a_broken_column_is_reported_once_not_at_every_use(write_spec: SpecWriter) -> None:
    # resolved_at is broken; resolved, ttr_s, both ttr KPIs and resolution_rate build on it.
    path = write_spec(
        (
            "MIN(ts) FILTER (WHERE event = 'resolution')",
            "MIN(tss) FILTER (WHERE event = 'resolution')",
        )
    )
    check(
        path,
        Want(
            "MIN(tss)",
            "tables.conversations.rollup.events.resolved_at",
            ("unknown column 'tss' (did you mean 'ts'?)",),
        ),
    )


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("over: calls", "over: [calls]", "kpis.tool_success.over"),
        ("extends: ttr_p50", "extends: [ttr_p50]", "kpis.ttr_p95.extends"),
        ("cluster: conversation_id", "cluster: {a: b}", "kpis.tool_success.cluster"),
        ("breakdown: escalation_reason", "breakdown: [a, b]", "kpis.escalation_rate.breakdown"),
        ("from: tool_calls", "from: [tool_calls]", "tables.calls.from"),
        ("lookup: conversations", "lookup: {a: b}", "tables.calls.lookup"),
        ("time: started_at", "time: [started_at]", "tables.conversations.time"),
    ],
)
def test_a_list_or_mapping_where_a_name_belongs_is_a_problem_not_a_crash(
    write_spec: SpecWriter, old: str, new: str, path: str
) -> None:
    spec_file = write_spec((old, new))
    problems = spec_problems(spec_file)
    assert [(p.line, p.path) for p in problems] == [(line_of(spec_file, new), path)]


def test_an_unknown_column_type_is_a_problem_not_a_crash(write_spec: SpecWriter) -> None:
    """`type: string` (not one of kpictl's names) was reported and then looked up anyway while
    typing the source's columns: KeyError, exit 70."""
    path = write_spec(
        (
            "      ts: {from: ts, type: timestamp}",
            "      ts: {from: ts, type: timestamp}\n      ver: {type: string}",
        )
    )
    check(
        path,
        Want(
            "ver: {type: string}",
            "sources.events.columns.ver.type",
            (
                "expected one of timestamp, int, float, bool, str, got 'string' "
                "(did you mean 'str'?)",
            ),
        ),
    )


def test_missing_spec_file_is_a_spec_error(tmp_path: Path) -> None:
    (problem,) = spec_problems(tmp_path / "nope.yaml")
    assert problem.line is None and "no such spec file" in problem.message


# ---------------------------------------------------------------------------------------------
# --param overrides
# ---------------------------------------------------------------------------------------------


def test_with_params_coerces_to_the_declared_type(shipped_spec: Spec) -> None:
    spec = shipped_spec.with_params({"good_csat": "5", "human_cost_per_minute": "1.25"})
    assert spec.params["good_csat"] == 5 and type(spec.params["good_csat"]) is int
    assert spec.params["human_cost_per_minute"] == 1.25
    assert shipped_spec.params["good_csat"] == 4  # the original is unchanged


def test_unknown_param_is_a_usage_error_with_did_you_mean(shipped_spec: Spec) -> None:
    with pytest.raises(UsageError) as caught:
        shipped_spec.with_params({"good_cast": "5"})
    assert str(caught.value) == (
        "--param good_cast: no such param (did you mean 'good_csat'?); "
        "the spec declares: good_csat, human_cost_per_minute"
    )


@pytest.mark.parametrize("text", ["high", "", "nan", "inf", "4,5"])
def test_param_that_is_not_a_number_is_a_usage_error(shipped_spec: Spec, text: str) -> None:
    with pytest.raises(UsageError) as caught:
        shipped_spec.with_params({"good_csat": text})
    assert f"--param good_csat={text}: expected a whole number like 4" in str(caught.value)


def test_load_spec_applies_params(shipped_spec_path: Path) -> None:
    assert load_spec(shipped_spec_path, params={"good_csat": "3"}).params["good_csat"] == 3


# ---------------------------------------------------------------------------------------------
# thresholds and durations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fmt", "kind", "amount", "operator"),
    [
        ("2pp", "percent", "pp", 0.02, None),
        ("0.2pp", "percent", "pp", 0.002, None),
        ("15%", "number", "relative", 0.15, None),
        ("15%", "percent", "relative", 0.15, None),
        ("> 1%", "percent", "bound", 0.01, ">"),
        ("< 0.8", "number", "bound", 0.8, "<"),
        ("> 10000", "ms", "bound", 10000.0, ">"),
        (0.5, "number", "absolute", 0.5, None),
        (3, "count", "absolute", 3.0, None),
        ("90s", "duration", "absolute", 90.0, None),
        ("2m", "duration", "absolute", 120.0, None),
        ("500ms", "ms", "absolute", 500.0, None),
        ("90s", "ms", "absolute", 90000.0, None),
        ("> 2h", "duration", "bound", 7200.0, ">"),
    ],
)
def test_parse_threshold(
    raw: object, fmt: str, kind: str, amount: float, operator: str | None
) -> None:
    threshold = parse_threshold("warning", raw, fmt)
    assert threshold == Threshold("warning", kind, pytest.approx(amount), operator, str(raw))


@pytest.mark.parametrize(
    ("raw", "fmt", "message"),
    [
        (">= 1", "number", "use > or < (bounds are exclusive)"),
        ("> 1pp", "percent", "a bound is a value, not a change"),
        ("> 1%", "number", "a '%' bound needs format: percent"),
        ("90s", "number", "a duration threshold needs format: duration or ms"),
        ("-1", "number", "levels are magnitudes of deterioration"),
        ("lots", "number", "not a threshold: 'lots'"),
        ("xpp", "percent", "not a threshold: 'xpp'"),
        ("nan", "number", "not a threshold: 'nan'"),
    ],
)
def test_parse_threshold_rejects(raw: str, fmt: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_threshold("critical", raw, fmt)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", dt.timedelta(days=7)),
        ("24h", dt.timedelta(hours=24)),
        ("90m", dt.timedelta(minutes=90)),
        ("30s", dt.timedelta(seconds=30)),
        ("500ms", dt.timedelta(milliseconds=500)),
        ("2w", dt.timedelta(weeks=2)),
        ("1.5h", dt.timedelta(minutes=90)),
        (" 28d ", dt.timedelta(days=28)),
    ],
)
def test_parse_duration(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["7", "d", "7 days", "-1d", "1y", "", None])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration like 7d, 24h"):
        parse_duration(text)


UNIT_KEYWORDS = {
    "ms": "milliseconds",
    "s": "seconds",
    "m": "minutes",
    "h": "hours",
    "d": "days",
    "w": "weeks",
}


@given(n=st.integers(min_value=0, max_value=100_000), unit=st.sampled_from(list(UNIT_KEYWORDS)))
def test_parse_duration_is_n_times_the_unit(n: int, unit: str) -> None:
    assert parse_duration(f"{n}{unit}") == dt.timedelta(**{UNIT_KEYWORDS[unit]: n})


def test_fast_and_pure_python_yaml_loaders_agree_on_values_and_lines(
    shipped_spec_path: Path,
) -> None:
    """libyaml (when PyYAML has it) and the pure-Python parser give the same values and the
    same key lines, so located errors do not depend on which one ran."""
    import yaml

    from kpictl.spec import yamlmarks as yamlmarks

    text = shipped_spec_path.read_text(encoding="utf-8")
    fast = yaml.load(text, Loader=yamlmarks._FastLoader)
    slow = yaml.load(text, Loader=yamlmarks._MarkedLoader)
    assert fast == slow

    def lines(node: object) -> list[object]:
        if isinstance(node, yamlmarks.MarkedDict):
            return [node.line, node.key_lines, *(lines(v) for v in node.values())]
        if isinstance(node, list):
            return [lines(v) for v in node]
        return []

    assert lines(fast) == lines(slow)
    assert yaml.__with_libyaml__ is False or yamlmarks._FastLoader.__mro__[1] is yaml.CSafeLoader


# ----------------------------------------------------------------------------------------------
# `kpictl schema`: a JSON Schema of the spec file, for editors
# ----------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_SPECS = [ROOT / "kpi_definitions.yaml", *sorted((ROOT / "sample_logs").glob("*.yaml"))]


def schema_of_the_command() -> dict[str, object]:
    from typer.testing import CliRunner

    from kpictl.cli import app

    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_the_committed_schema_is_the_commands_output() -> None:
    # regenerate with: kpictl schema > kpictl.schema.json
    committed = json.loads((ROOT / "kpictl.schema.json").read_text())
    assert committed == schema_of_the_command()


@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_validates_and_names_its_schema(path: Path) -> None:
    import jsonschema

    first = path.read_text().splitlines()[0]
    schema_file = os.path.relpath(ROOT / "kpictl.schema.json", path.parent)
    assert first == f"# yaml-language-server: $schema={schema_file}"
    load_spec(path)  # and kpictl accepts it
    jsonschema.Draft202012Validator(schema_of_the_command()).validate(
        yaml.safe_load(path.read_text())
    )


def test_the_schema_reports_a_typo_with_its_path(write_spec: SpecWriter) -> None:
    import jsonschema

    document = yaml.safe_load(
        write_spec(
            (
                "    numerator: COUNT(*) FILTER (WHERE resolved)",
                "    numerater: COUNT(*) FILTER (WHERE resolved)",
            ),
            ("    format: percent\n", "    format: percnt\n"),
        ).read_text()
    )
    errors = sorted(
        jsonschema.Draft202012Validator(schema_of_the_command()).iter_errors(document),
        key=lambda e: list(e.absolute_path),
    )
    assert [(list(e.absolute_path), e.message) for e in errors] == [
        (
            ["kpis", "resolution_rate"],
            "Additional properties are not allowed ('numerater' was unexpected)",
        ),
        (
            ["kpis", "resolution_rate", "format"],
            "'percnt' is not one of ['percent', 'usd', 'duration', 'ms', 'number', 'count']",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# The primary table: one definition (Spec.primary_table), one error where a command needs it
# ---------------------------------------------------------------------------------------------

NO_ROLLUP_SPEC = """\
version: 1
defaults: {baseline: prior}
sources:
  events: {path: events.jsonl, columns: {ts: {from: ts, type: timestamp}}}
tables:
  messages: {from: events, where: "event = 'message'"}
baselines:
  prior: {previous: 7d}
kpis:
  message_count: {over: messages, value: "COUNT(*)", format: count, direction: higher}
"""
NO_PRIMARY_TABLE = (
    "kpictl: error: the spec has no rollup table (one row per conversation, e.g. "
    "`conversations:` with `key:` and `rollup:`), where compare, report, review, project and "
    "facts count their units; tables: messages\n"
)


def test_the_primary_table_is_the_first_rollup_table(shipped_spec: Spec, tmp_path: Path) -> None:
    assert shipped_spec.primary_table is shipped_spec.tables["conversations"]
    assert shipped_spec.require_primary_table() is shipped_spec.tables["conversations"]
    path = tmp_path / "kpis.yaml"
    path.write_text(NO_ROLLUP_SPEC)
    spec = load_spec(path)
    assert spec.primary_table is None
    with pytest.raises(UsageError) as caught:
        spec.require_primary_table()
    assert f"kpictl: error: {caught.value}\n" == NO_PRIMARY_TABLE


@pytest.mark.parametrize(
    "command",
    [["facts"], ["compare"], ["report"], ["project"], ["review", "sample", "--output", "out"]],
)
def test_a_command_needing_the_primary_table_says_the_spec_lacks_one(
    tmp_path: Path, event_rows: list[dict[str, object]], command: list[str]
) -> None:
    """compare, facts and review stopped with 'internal error: StopIteration' (exit 70), report
    and project said 'nothing to report on': three definitions of the first rollup table."""
    from conftest import run

    (tmp_path / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in event_rows))
    (tmp_path / "kpis.yaml").write_text(NO_ROLLUP_SPEC)
    with contextlib.chdir(tmp_path):
        code, out, err = run(*command, "-c", "kpis.yaml")
        assert run("compute", "-c", "kpis.yaml")[0] == 0  # compute needs no primary table
    assert (code, out, err) == (2, "", NO_PRIMARY_TABLE)


def test_only_the_spec_says_which_table_is_the_primary_one() -> None:
    """No module picks 'the first rollup table' itself (`next(t ... if t.is_rollup)`): each
    copy had its own failure when there is none."""
    import ast

    package = Path(__file__).resolve().parents[1] / "src" / "kpictl"
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) == "next"
                and "is_rollup" in ast.unparse(node)
            ):
                found.append(str(path.relative_to(package)))
    assert found == ["spec/model.py"]


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("test", "welch", "compare picks each KPI's test from its shape (README, compare)"),
        (
            "cohorts",
            "[channel]",
            "cohorts are chosen per run (--by COLUMN; the report's in defaults.cohorts)",
        ),
        (
            "baseline",
            "holdout",
            "one baseline serves every KPI of a run (defaults.baseline or --baseline)",
        ),
    ],
)
def test_a_retired_kpi_key_is_a_spec_error_saying_why(
    write_spec: SpecWriter, key: str, value: str, why: str
) -> None:
    """test, cohorts and baseline on a KPI were validated and never read: an old spec that has
    one is told so, at its line (they are no longer in `kpictl schema` either)."""
    path = write_spec(
        ("    over: conversations\n", f"    over: conversations\n    {key}: {value}\n")
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    [problem] = caught.value.problems
    line = path.read_text().splitlines().index(f"    {key}: {value}") + 1
    assert str(problem).endswith(
        f":{line}: " + problem.path + f": no longer a spec key: {why}: remove the key"
    )
    assert problem.path.endswith(f".{key}")
    from kpictl.spec import spec_json_schema

    kpi_keys = spec_json_schema()["properties"]["kpis"]["additionalProperties"]["properties"]
    assert key not in kpi_keys and "label" in kpi_keys


# ---------------------------------------------------------------------------------------------
# Threshold levels: one definition (spec.model.LEVELS, Threshold.beyond, most_severe)
# ---------------------------------------------------------------------------------------------


def test_threshold_levels_are_defined_once() -> None:
    """compare's statuses, --fail-on's choices and the renderers' styles follow LEVELS; no
    module but the spec's model spells the list out (it was written out five times)."""
    import ast

    from kpictl.cli import FailLevel
    from kpictl.comparison.model import STATUSES
    from kpictl.render.text import STATUS_STYLES
    from kpictl.spec.model import LEVELS

    assert LEVELS == ("warning", "critical", "catastrophic")
    assert [level.value for level in FailLevel] == list(LEVELS)
    assert ("ok", *LEVELS) == STATUSES
    assert set(LEVELS) <= set(STATUS_STYLES)
    package = Path(__file__).resolve().parents[1] / "src" / "kpictl"
    spelled = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Tuple | ast.List):
                values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if {"warning", "catastrophic"} <= values:
                    spelled.append(f"{path.relative_to(package)}:{node.lineno}")
    assert spelled == [f"spec/model.py:{_line_of('LEVELS = (')}"]


def _line_of(text: str) -> int:
    source = Path(__file__).resolve().parents[1] / "src" / "kpictl" / "spec" / "model.py"
    return next(i for i, line in enumerate(source.read_text().splitlines(), 1) if text in line)


def test_the_most_severe_threshold_that_fires_wins() -> None:
    from kpictl.spec.model import levels_at_or_above, most_severe

    warn = parse_threshold("warning", "> 1%", "percent")
    crit = parse_threshold("critical", "> 5%", "percent")
    floor = parse_threshold("warning", "< 90%", "percent")
    assert (warn.beyond(0.011), warn.beyond(0.01), floor.beyond(0.899), floor.beyond(0.9)) == (
        True,
        False,
        True,
        False,
    )
    assert most_severe([warn, crit]) is crit and most_severe([crit, warn]) is crit
    assert most_severe(t for t in (warn, crit) if t.beyond(0.02)) is warn
    assert most_severe([]) is None
    assert levels_at_or_above("critical") == ("critical", "catastrophic")
