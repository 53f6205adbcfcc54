"""Hostile input (issue 12, "numbers stay right on extreme values"): a log line cannot make a
number silently wrong. Each case is a located error (file:line, column, value), a skipped row
under --on-bad-rows skip, or a note — never a null, a wrap-around or a double count.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import MINIMAL_SPEC, JsonlWriter, SpecWriter
from kpictl.cli import app
from kpictl.errors import InputDataError
from kpictl.io.read import ColumnRule, LoadedSource, SourceRequest, load_source

TS_RULE = ColumnRule("ts", "ts", type="timestamp")
INT64_MAX = 2**63 - 1
runner = CliRunner()
HYPOTHESIS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def row(
    cid: str = "c1", ts: str = "2026-10-01T10:00:00Z", event: str = "message", **extra: object
) -> dict[str, object]:
    return {"conversation_id": cid, "ts": ts, "event": event, **extra}


def write(path: Path, lines: list[dict[str, object] | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    path.write_text(text, encoding="utf-8")
    return path


def load(*paths: Path, skip: bool = False) -> LoadedSource:
    request = SourceRequest("events", tuple(str(p) for p in paths), Path("."), (TS_RULE,))
    return load_source(request, "skip" if skip else "error")


def load_error(*paths: Path) -> str:
    with pytest.raises(InputDataError) as caught:
        load(*paths)
    return str(caught.value)


FIX = "; fix the data, map the column in the spec, or pass --on-bad-rows skip"


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def minimal_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "kpis.yaml"
    spec.write_text(MINIMAL_SPEC, encoding="utf-8")
    return spec


# ---------------------------------------------------------------------------------------------
# 1. integers beyond Int64, sums that would overflow
# ---------------------------------------------------------------------------------------------


@HYPOTHESIS
@given(
    big=st.one_of(
        st.integers(min_value=INT64_MAX + 1, max_value=10**30),
        st.integers(min_value=-(10**30), max_value=-(2**63) - 1),
    )
)
def test_an_integer_beyond_int64_is_a_located_error_not_null(tmp_path: Path, big: int) -> None:
    path = write(tmp_path / "e.jsonl", [row(input_tokens=5), row(input_tokens=big)])
    assert load_error(path) == (
        f"{path}:2: column 'input_tokens': expected a whole number (Int64), got {big}{FIX}"
    )


def test_an_integer_beyond_int64_is_skipped_and_counted_with_skip(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", [row(input_tokens=5), row(input_tokens=10**20)])
    loaded = load(path, skip=True)
    assert loaded.frame.collect().get_column("input_tokens").to_list() == [5]
    assert (loaded.rows, loaded.skipped) == (1, 1)


def test_token_counts_that_would_overflow_a_sum_are_refused_at_their_line(tmp_path: Path) -> None:
    # two token counts of 5e18 each fit Int64, their sum does not: polars wraps it to
    # -8446744073709551616, which made tokens_per_task negative
    path = write(
        tmp_path / "logs/events/e.jsonl",
        [
            row("c1", input_tokens=3),
            row("c1", input_tokens=5 * 10**18),
            row("c2", input_tokens=5 * 10**18),
            row("c2", event="resolution"),
        ],
    )
    assert load_error(path) == (
        f"{path}:2: column 'input_tokens': {5 * 10**18}: the integer columns of source "
        "'events' (input_tokens) add up to 1e+19, more than a 64-bit integer holds "
        f"({INT64_MAX}): their sums would overflow to a wrong (negative) number; fix the data"
    )
    code, out, err = cli(
        "compute",
        "-c",
        str(minimal_spec(tmp_path)),
        str(path.parent),
        "--source",
        f"tool_calls={path}",
    )
    assert (code, out) == (1, "")
    assert err.startswith(f"kpictl: error: {path}:2: column 'input_tokens': 5000000000000000000")


def test_sums_across_files_and_columns_are_checked_together(tmp_path: Path) -> None:
    # each file fits, and each column fits; input + output tokens together do not
    a = write(tmp_path / "d/a.jsonl", [row("c1", input_tokens=4 * 10**18)])
    b = write(tmp_path / "d/b.jsonl", [row("c2", input_tokens=1, output_tokens=6 * 10**18)])
    message = load_error(tmp_path / "d")
    assert message.startswith(
        f"{b}:1: column 'output_tokens': 6000000000000000000: the "
        "integer columns of source 'events' (input_tokens, output_tokens) "
        "add up to 1e+19"
    )
    assert load(a).rows == 1 and load(b).rows == 1  # alone, each is fine


# ---------------------------------------------------------------------------------------------
# 2. "NaN" / "Infinity" where a number is expected; a formula dividing by zero
# ---------------------------------------------------------------------------------------------

NON_FINITE = st.sampled_from(
    ["NaN", "nan", "Infinity", "-Infinity", "inf", "-inf", "+inf", "INFINITY", "-NaN", " NaN "]
)


@HYPOTHESIS
@given(text=NON_FINITE, column=st.sampled_from(["csat", "cost_usd", "latency_ms"]))
def test_nan_and_infinity_text_is_rejected_like_bare_nan(
    tmp_path: Path, text: str, column: str
) -> None:
    path = write(tmp_path / "e.jsonl", [row(**{column: 4}), row(**{column: text})])
    assert load_error(path) == (
        f"{path}:2: column {column!r}: expected a number (Float64), got {text!r}{FIX}"
    )
    skipped = load(path, skip=True)
    assert skipped.frame.collect().get_column(column).to_list() == [4.0]


def test_a_nan_csat_no_longer_counts_as_good(tmp_path: Path) -> None:
    # NaN compares above every number in polars: "NaN" csat counted as >= 4 (happy)
    events = write(
        tmp_path / "logs/events/e.jsonl",
        [
            row("c1", event="feedback", csat=2),
            row("c2", event="feedback", csat="NaN"),
            row("c3", event="feedback", csat=5),
        ],
    )
    calls = write(
        tmp_path / "logs/tool_calls/t.jsonl",
        [{"conversation_id": "c1", "ts": "2026-10-01T10:00:00Z", "tool": "x", "status": "ok"}],
    )
    spec = minimal_spec(tmp_path)
    spec.write_text(
        MINIMAL_SPEC.replace(
            "  resolved_share:",
            "  happy_share:\n    over: conversations\n"
            "    numerator: COUNT(*) FILTER (WHERE happy)\n    denominator: COUNT(*)\n"
            "  resolved_share:",
        ),
        encoding="utf-8",
    )
    args = [
        "compute",
        "-c",
        str(spec),
        str(events),
        "--source",
        f"tool_calls={calls}",
        "--kpi",
        "happy_share",
        "-f",
        "json",
    ]
    code, _, err = cli(*args)
    assert code == 1
    assert err == (
        f"kpictl: error: {events}:2: column 'csat': expected a number (Float64), got 'NaN'{FIX}\n"
    )
    code, out, err = cli(*args, "--on-bad-rows", "skip")
    assert code == 0, err
    # c2's only row is skipped: c1 (csat 2) and c3 (csat 5) remain, one happy of two
    assert json.loads(out)["results"][0]["value"] == pytest.approx(1 / 2)


def test_nan_and_infinity_in_a_parquet_float_column_are_located(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    pl.DataFrame(
        {
            "conversation_id": ["c1", "c2", "c3"],
            "ts": ["2026-10-01T10:00:00Z"] * 3,
            "event": ["feedback"] * 3,
            "csat": [4.0, float("inf"), float("nan")],
        }
    ).write_parquet(path)
    assert load_error(path) == (
        f"{path} (row 2): column 'csat': expected a number (Float64), got inf (1 more bad rows)"
        f"{FIX}"
    )
    assert load(path, skip=True).frame.collect().get_column("csat").to_list() == [4.0]


# ---------------------------------------------------------------------------------------------
# 4. the same file reached twice
# ---------------------------------------------------------------------------------------------


def test_a_file_named_twice_is_read_once_with_a_note(tmp_path: Path) -> None:
    events = write(
        tmp_path / "logs/events/e.jsonl",
        [row("c1"), row("c1", ts="2026-10-01T10:05:00Z", event="resolution"), row("c2")],
    )
    calls = write(
        tmp_path / "logs/tool_calls/t.jsonl",
        [{"conversation_id": "c1", "ts": "2026-10-01T10:00:00Z", "tool": "x", "status": "ok"}],
    )
    folder = events.parent
    loaded = load(folder, events, tmp_path / "logs/events/*.jsonl")
    assert loaded.rows == 3 and len(loaded.files) == 1
    glob = str(tmp_path / "logs/events/*.jsonl")
    assert loaded.notes == (
        f"source 'events': 2 files named more than once, read once: {events} (by "
        f"{str(folder)!r} and {str(events)!r}), {events} (by {str(folder)!r} and {glob!r})",
    )
    code, out, err = cli(
        "compute",
        "-c",
        str(minimal_spec(tmp_path)),
        str(folder),
        str(events),
        "--source",
        f"tool_calls={calls}",
        "--kpi",
        "resolution_rate",
        "-f",
        "json",
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["results"][0]["n"] == 2  # c1 and c2, not four conversations' worth of rows
    assert document["results"][0]["value"] == pytest.approx(1 / 2)
    note = (
        f"source 'events': 1 file named more than once, read once: {events} (by "
        f"{str(folder)!r} and {str(events)!r})"
    )
    assert f"kpictl: note: {note}\n" in err
    assert document["notes"].count(note) == 1


def test_a_hard_link_to_a_file_is_the_same_file(tmp_path: Path) -> None:
    events = write(
        tmp_path / "logs/e.jsonl",
        [row("c1", input_tokens=10), row("c1", ts="2026-10-01T10:05:00Z", event="resolution")],
    )
    link = tmp_path / "elsewhere/run.jsonl"
    link.parent.mkdir()
    link.hardlink_to(events)
    loaded = load(events.parent, link)
    assert loaded.rows == 2 and len(loaded.files) == 1  # was 4 rows: 20 tokens for a 10-token run
    assert loaded.notes == (
        f"source 'events': 1 file named more than once, read once: {link} (by "
        f"{str(events.parent)!r} and {str(link)!r})",
    )


# ---------------------------------------------------------------------------------------------
# 5. an empty key is not a conversation
# ---------------------------------------------------------------------------------------------


@HYPOTHESIS
@given(key=st.sampled_from(["", " ", "\t", "  \n "]))
def test_an_empty_conversation_id_is_a_located_error(tmp_path: Path, key: str) -> None:
    path = write(tmp_path / "e.jsonl", [row("c1"), row(key)])
    assert load_error(path) == (
        f"{path}:2: column 'conversation_id' is empty text ({key!r}): it is required{FIX}"
    )
    assert load(path, skip=True).frame.collect().get_column("conversation_id").to_list() == ["c1"]


@pytest.mark.parametrize(
    ("formula", "value"),
    [
        ("resolution_rate / escalation_rate", "inf"),  # 1/2 ÷ 0
        ("escalation_rate / escalation_rate", "NaN"),  # 0 ÷ 0
        ("resolution_rate / (escalation_rate + 1)", None),  # finite: no note
    ],
)
def test_a_formula_dividing_by_zero_is_null_with_a_note(
    tmp_path: Path, formula: str, value: str | None
) -> None:
    events = write(
        tmp_path / "logs/events/e.jsonl",
        [row("c1"), row("c1", ts="2026-10-01T10:05:00Z", event="resolution"), row("c2")],
    )
    calls = write(
        tmp_path / "logs/tool_calls/t.jsonl",
        [{"conversation_id": "c1", "ts": "2026-10-01T10:00:00Z", "tool": "x", "status": "ok"}],
    )
    spec = minimal_spec(tmp_path)
    spec.write_text(
        MINIMAL_SPEC.replace(
            "formula: resolution_rate / (resolution_rate + escalation_rate)", f"formula: {formula}"
        ),
        encoding="utf-8",
    )
    code, out, err = cli(
        "compute",
        "-c",
        str(spec),
        str(events),
        "--source",
        f"tool_calls={calls}",
        "--kpi",
        "resolved_share",
        "-f",
        "json",
    )
    assert code == 0, err
    document = json.loads(out)
    note = (
        f"resolved_share: the formula {formula} divides by zero (no finite value) in 1 of 1 "
        "rows: those values are null"
    )
    if value is None:  # resolution 1/2 over escalation 0 + 1
        assert document["results"][0]["value"] == pytest.approx(0.5)
        assert not any("divides by zero" in n for n in document["notes"])
    else:
        assert document["results"][0]["value"] is None  # not inf, not NaN (invalid JSON)
        assert note in document["notes"]
        assert f"kpictl: note: {note}\n" in err


# ---------------------------------------------------------------------------------------------
# 3. an object or a list where a scalar is expected, duplicate keys, kinds that conflict
# ---------------------------------------------------------------------------------------------

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=5))
CONTAINERS = st.one_of(
    st.dictionaries(st.text(min_size=1, max_size=3), JSON_SCALARS, min_size=1, max_size=3),
    st.lists(st.integers(0, 9), max_size=3),
    st.lists(st.text(max_size=3), min_size=1, max_size=3),
)
FAST = {
    "conversation_id": pl.String(),
    "ts": pl.String(),
    "event": pl.String(),
    "csat": pl.Float64(),
    "channel": pl.String(),
}


def load_fields(
    path: Path, fields: dict[str, pl.DataType] | None, skip: bool = False
) -> LoadedSource:
    request = SourceRequest("events", (str(path),), Path("."), (TS_RULE,), fields=fields)
    return load_source(request, "skip" if skip else "error")


def shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


@HYPOTHESIS
@given(
    value=CONTAINERS,
    column=st.sampled_from(["csat", "conversation_id", "channel"]),
    fast=st.booleans(),
)
def test_an_object_or_list_where_a_scalar_is_expected_is_a_located_error(
    tmp_path: Path, value: object, column: str, fast: bool
) -> None:
    # polars reads an object in a text column as its JSON text, and fails on one among numbers
    good = {"csat": 4, "conversation_id": "c1", "channel": "web"}[column]
    path = write(
        tmp_path / "e.jsonl", [row(**{column: good}), row(**{column: value}), row(**{column: good})]
    )
    fields = FAST if fast else None
    with pytest.raises(InputDataError) as caught:
        load_fields(path, fields)
    kind = "an object" if isinstance(value, dict) else "a list"
    expected = "a number (Float64)" if column == "csat" else "text"
    assert str(caught.value) == (
        f"{path}:2: field {column!r}: expected {expected}, got {kind} ({shown(value)}); fix the "
        "file or pass --on-bad-rows skip"
    )
    skipped = load_fields(path, fields, skip=True)
    assert (skipped.rows, skipped.skipped) == (2, 1)
    assert (
        skipped.frame.collect().get_column(column).to_list() == [float(good)] * 2
        if (column == "csat")
        else [good] * 2
    )


def test_text_that_merely_looks_like_json_is_kept(tmp_path: Path) -> None:
    texts = ["[internal] escalate", "{not json", " [1, 2] is text here"]
    path = write(tmp_path / "e.jsonl", [row(channel=t) for t in texts])
    assert load_fields(path, FAST).frame.collect().get_column("channel").to_list() == texts


def test_an_object_in_every_line_of_a_number_column_is_located(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", [row(csat={"score": 4}), row(csat={"score": 5})])
    assert load_error(path) == (
        f"{path}:1: column 'csat': expected a number (Float64), got {{'score': 4}} (1 more bad "
        f"rows){FIX}"
    )


def test_a_type_conflict_across_lines_names_the_file_and_line(tmp_path: Path) -> None:
    # was: "cannot read as JSONL: cannot parse 'true' (bool) as Int64", no file, no line
    path = write(tmp_path / "e.jsonl", [row(input_tokens=4), row(), row(input_tokens=True)])
    assert load_error(path) == (
        f"{path}:3: field 'input_tokens': expected a whole number (Int64), got a boolean (true); "
        "fix the file or pass --on-bad-rows skip"
    )
    # a pass-through field: the line whose kind differs from the field's first kind
    other = write(tmp_path / "o.jsonl", [row(tier="gold"), row(tier=[1, 2])])
    assert load_error(other) == (
        f"{other}:2: field 'tier': expected text, got a list ([1, 2]); fix the file or pass "
        "--on-bad-rows skip"
    )
    mixed = write(tmp_path / "m.jsonl", [row(tier=1), row(tier=[1, 2])])  # polars fails here
    assert load_error(mixed) == (
        f"{mixed}:2: field 'tier': a list ([1, 2]) where line 1 has a number: one field holds "
        "one kind of value; fix the file or pass --on-bad-rows skip"
    )


def test_a_number_beyond_a_float_is_located(tmp_path: Path) -> None:
    path = write(
        tmp_path / "e.jsonl",
        [
            row(csat=4),
            '{"conversation_id": "c2", "ts": "2026-10-01T10:00:00Z", "event": "x", "csat": 1e400}',
        ],
    )
    assert load_error(path) == (
        f"{path}:2: malformed JSON (number 1e400 is out of range); fix the file or pass "
        "--on-bad-rows skip"
    )


def test_a_duplicate_key_is_located_on_the_located_pass(tmp_path: Path) -> None:
    # polars keeps the first of two equal keys; Python's json the last: the line is refused
    # when the file is re-parsed to locate a problem (here, a type conflict on line 3)
    path = write(
        tmp_path / "e.jsonl",
        [
            row(csat=4),
            '{"conversation_id": "c1", "ts": "2026-10-01T10:00:00Z", "event": "feedback", '
            '"csat": 1, "csat": 5}',
            row(csat=True),
        ],
    )
    assert load_error(path) == (
        f"{path}:2: duplicate key 'csat' in one object (1, then 5): which one is meant cannot "
        "be known (1 more bad lines); fix the file or pass --on-bad-rows skip"
    )
    assert load(path, skip=True).frame.collect().get_column("csat").to_list() == [4.0]


def test_a_duplicate_key_is_located_when_it_is_the_files_only_problem(tmp_path: Path) -> None:
    # the fast read (polars, first key wins) is checked by a byte scan for keys written twice
    path = write(
        tmp_path / "e.jsonl",
        [
            row(csat=4),
            '{"conversation_id": "c1", "ts": "2026-10-01T10:00:00Z", "event": "feedback", '
            '"csat": 1, "csat": 5}',
            row(csat=3),
        ],
    )
    assert load_error(path) == (
        f"{path}:2: duplicate key 'csat' in one object (1, then 5): which one is meant cannot "
        "be known; fix the file or pass --on-bad-rows skip"
    )
    assert load(path, skip=True).frame.collect().get_column("csat").to_list() == [4.0, 3.0]


def test_a_duplicate_key_inside_a_nested_object_is_located(tmp_path: Path) -> None:
    path = write(
        tmp_path / "e.jsonl",
        [row(meta={"tier": "gold", "region": "eu"}), row(meta={"tier": "gold", "x": 1})],
    )
    path.write_text(path.read_text().replace('"x": 1', '"tier": "free"'))  # json.dumps can't
    assert load_error(path) == (
        f'{path}:2: duplicate key \'tier\' in one object ("gold", then "free"): which one is '
        "meant cannot be known; fix the file or pass --on-bad-rows skip"
    )


def test_the_same_key_in_two_nested_objects_is_not_a_duplicate(tmp_path: Path) -> None:
    # `id` at the top and in a nested object: a candidate for the byte scan, cleared by parsing
    path = write(
        tmp_path / "e.jsonl",
        [row(id="a", args={"id": 1}), row(id="b", args={"id": 2}), row(csat=5)],
    )
    assert load(path).frame.collect().get_column("id").to_list() == ["a", "b", None]


def test_keys_spaced_from_their_colon_are_still_checked(tmp_path: Path) -> None:
    # `"csat" : 1` and `"csat"\t:` are keys too
    path = tmp_path / "e.jsonl"
    path.write_text(
        '{"conversation_id" : "c1", "ts" : "2026-10-01T10:00:00Z", "event" : "x", "csat" : 4}\n'
        '{"conversation_id" : "c1", "ts" : "2026-10-01T10:00:00Z", "event" : "x", "csat" : 1, '
        '"csat"\t:  5}\n'
    )
    assert load_error(path) == (
        f"{path}:2: duplicate key 'csat' in one object (1, then 5): which one is meant cannot "
        "be known; fix the file or pass --on-bad-rows skip"
    )


_KEYS = st.sampled_from(["a", "b", "ab", "ba", "csat", "cs", "at"])
_VALUES = st.one_of(st.integers(0, 9), st.sampled_from(['"x"', '"a\\":"', '"\\"a\\":"']))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(_KEYS, st.one_of(_VALUES, st.lists(st.tuples(_KEYS, _VALUES), max_size=3))),
            min_size=1,
            max_size=5,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_the_byte_scan_finds_every_line_with_a_repeated_key(
    lines: list[list[tuple[str, object]]],
) -> None:
    """Property: every line where json's object_pairs_hook sees a key twice in one object is
    among the scan's candidates (a false candidate only costs a parse)."""
    from kpictl.io.inputbytes import repeated_key_lines

    def render(pairs: list[tuple[str, object]]) -> str:
        items = (
            f'"{key}":{render(value) if isinstance(value, list) else value}' for key, value in pairs
        )
        return "{" + ",".join(items) + "}"

    def has_duplicate(text: str) -> bool:
        found = False

        def hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
            nonlocal found
            found = found or len({key for key, _ in pairs}) < len(pairs)
            return dict(pairs)

        json.loads(text, object_pairs_hook=hook)
        return found

    texts = [render(pairs) for pairs in lines]
    data = "\n".join(texts).encode()
    names = ["a", "b", "ab", "ba", "csat", "cs", "at"]
    expected = {n for n, text in enumerate(texts, start=1) if has_duplicate(text)}
    whole = repeated_key_lines(data, names)
    assert expected <= set(whole)
    # slices cut at line ends (64 MB in use; a few bytes here) number lines the same way
    assert repeated_key_lines(data, names, slice_bytes=7) == whole


def otlp_export(attributes: list[tuple[str, dict[str, object]]]) -> dict[str, object]:
    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "chat gpt-4o",
        "startTimeUnixNano": "1790000000000000000",
        "endTimeUnixNano": "1790000001500000000",
        "attributes": [{"key": k, "value": v} for k, v in attributes],
    }
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [span]}]}]}


def test_an_otlp_attribute_given_twice_with_different_values_is_located(tmp_path: Path) -> None:
    from kpictl.io.formats.otlp import OtlpOptions, read_otlp

    attrs = [
        ("gen_ai.operation.name", {"stringValue": "chat"}),
        ("gen_ai.usage.input_tokens", {"intValue": "10"}),
        ("gen_ai.usage.input_tokens", {"intValue": "9000"}),
    ]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(otlp_export(attrs)), encoding="utf-8")
    with pytest.raises(InputDataError) as caught:
        read_otlp(path, OtlpOptions())
    assert str(caught.value) == (
        f"{path} resourceSpans[0] scopeSpans[0] spans[0]: attribute 'gen_ai.usage.input_tokens' "
        "is given twice with different values ('10', then '9000'): which one is meant cannot be "
        "known; fix the export"
    )
    same = tmp_path / "same.json"  # the same value twice: nothing is ambiguous
    same.write_text(json.dumps(otlp_export(attrs[:2] + attrs[1:2])), encoding="utf-8")
    assert read_otlp(same, OtlpOptions()).events.get_column("input_tokens").to_list() == [10]


# ---------------------------------------------------------------------------------------------
# 4. repeated OTLP spans, chat records sharing an id
# ---------------------------------------------------------------------------------------------


def load_format(fmt: str, *paths: Path) -> dict[str, LoadedSource]:
    from kpictl.io.formats import ChatOptions, OtlpOptions
    from kpictl.io.read import load_format_source

    options = OtlpOptions() if fmt == "otlp_json" else ChatOptions()
    request = SourceRequest(
        "events", tuple(str(p) for p in paths), Path("."), format=fmt, options=options
    )
    calls = SourceRequest("tool_calls", (), Path("."), derived_from="events")
    return load_format_source(request, [calls])


def test_an_otlp_span_exported_twice_is_read_once_with_a_note(tmp_path: Path) -> None:
    attrs = [
        ("gen_ai.operation.name", {"stringValue": "chat"}),
        ("gen_ai.usage.input_tokens", {"intValue": "10"}),
    ]
    export = otlp_export(attrs)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(export), encoding="utf-8")
    b.write_text(json.dumps(export), encoding="utf-8")  # a retried export
    loaded = load_format("otlp_json", a, b)["events"]
    events = loaded.frame.collect()
    assert events.get_column("input_tokens").to_list() == [10]  # not 20 tokens
    assert loaded.notes == (
        "source 'events': 1 OTLP span exported more than once (same traceId and spanId) read "
        f"once: e.g. {b} resourceSpans[0] scopeSpans[0] spans[0] span chat gpt-4o repeats "
        f"{a} resourceSpans[0] scopeSpans[0] spans[0] span chat gpt-4o",
    )


def test_two_chat_records_with_one_id_are_refused(tmp_path: Path) -> None:
    records = [
        {"id": "run-1", "messages": [{"role": "user", "content": "hi"}]},
        {"id": "run-2", "messages": [{"role": "user", "content": "yo"}]},
        {"id": "run-1", "messages": [{"role": "user", "content": "again"}]},
    ]
    path = write(tmp_path / "runs.jsonl", records)  # type: ignore[arg-type]
    with pytest.raises(InputDataError) as caught:
        load_format("chat", path)
    assert str(caught.value) == (
        f"{path}:3: conversation id 'run-1' is also the id of {path}:1: each record is one "
        "conversation, so their messages would be counted as one; give each record its own id "
        "(options.conversation_id names the field holding it)"
    )
    unique = write(tmp_path / "ok.jsonl", records[:2])  # type: ignore[arg-type]
    assert load_format("chat", unique)["events"].rows == 2


# ---------------------------------------------------------------------------------------------
# 5. outliers that move the whole evaluation; empty keys (above)
# ---------------------------------------------------------------------------------------------

PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


@HYPOTHESIS
@given(
    true=st.sampled_from(list(PER_SECOND)),
    declared=st.sampled_from(list(PER_SECOND)),
    start=st.integers(1_600_000_000, 2_000_000_000),
)
def test_epoch_values_in_another_unit_are_an_error_naming_the_right_unit(
    tmp_path: Path, true: str, declared: str, start: int
) -> None:
    ratio = PER_SECOND[true] / PER_SECOND[declared]
    if true == declared or ratio > 5_000:  # same unit; or so fine-grained it overflows (below)
        return
    values = [start * PER_SECOND[true], (start + 3600) * PER_SECOND[true]]
    path = write(tmp_path / "e.jsonl", [row("c1", ts=v) for v in values])  # type: ignore[arg-type]
    rule = ColumnRule("ts", "ts", type="timestamp", unit=declared)
    request = SourceRequest("events", (str(path),), Path("."), (rule,))
    with pytest.raises(InputDataError) as caught:
        load_source(request)
    seconds = [v * 1_000_000 // PER_SECOND[declared] // 1_000_000 for v in values]
    side = (
        f"before 2000 (the latest is {seconds[1]} s after 1970)"
        if ratio < 1
        else f"after 2100 (the earliest is {seconds[0]} s after 1970)"
    )
    assert str(caught.value) == (
        f"{path}: column 'ts': declared unit {declared} ({UNIT_NAMES[declared]}) puts every row "
        f"{side}; the values look like {UNIT_NAMES[true]}: declare unit: {true} "
        "(sources.events.columns.ts)"
    )


def test_epoch_values_in_the_declared_unit_load(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", [row(ts=1_790_000_000_000)])  # type: ignore[arg-type]
    rule = ColumnRule("ts", "ts", type="timestamp", unit="ms")
    loaded = load_source(SourceRequest("events", (str(path),), Path("."), (rule,)))
    assert str(loaded.frame.collect().item(0, "ts")) == "2026-09-21 14:13:20+00:00"


def test_a_far_off_latest_time_that_becomes_as_of_is_a_note(tmp_path: Path) -> None:
    events = write(
        tmp_path / "logs/events/e.jsonl",
        [
            row("c1"),
            row("c1", ts="2026-10-01T10:05:00Z", event="resolution"),
            row("c2", ts="2026-10-03T08:00:00Z"),
            row("c2", ts="9999-01-01T00:00:00Z"),
        ],
    )
    calls = write(
        tmp_path / "logs/tool_calls/t.jsonl",
        [{"conversation_id": "c1", "ts": "2026-10-01T10:00:00Z", "tool": "x", "status": "ok"}],
    )
    args = [
        "compute",
        "-c",
        str(minimal_spec(tmp_path)),
        str(events),
        "--source",
        f"tool_calls={calls}",
        "--kpi",
        "resolution_rate",
        "-f",
        "json",
    ]
    code, out, err = cli(*args)
    assert code == 0, err
    # 9999-01-01 minus 2026-10-03T08:00 (hand arithmetic: whole days between the dates)
    import datetime as dt

    days = (dt.datetime(9999, 1, 1) - dt.datetime(2026, 10, 3, 8)).days
    note = (
        f"as-of is 9999-01-01T00:00:00+00:00, the time at {events}:4: {days} days after "
        "the next-latest time (2026-10-03T08:00:00+00:00); one far-off time moves the whole "
        "evaluation (what is settled, pending, trending) — check that row or pass --as-of"
    )
    assert json.loads(out)["as_of"] == "9999-01-01T00:00:00Z"
    assert note in json.loads(out)["notes"]
    assert f"kpictl: note: {note}\n" in err
    code, out, err = cli(*args, "--as-of", "2026-10-04T00:00:00Z")  # explicit: no note
    assert code == 0 and "far-off" not in err
    # ordinary data spread over days: no note
    write(events, [row("c1"), row("c2", ts="2026-10-20T08:00:00Z")])
    code, out, err = cli(*args)
    assert code == 0 and "far-off" not in err


def test_otlp_token_counts_that_would_overflow_a_sum_are_located_at_their_span(
    tmp_path: Path,
) -> None:
    export = otlp_export(
        [
            ("gen_ai.operation.name", {"stringValue": "chat"}),
            ("gen_ai.usage.input_tokens", {"intValue": str(5 * 10**18)}),
        ]
    )
    spans = export["resourceSpans"][0]["scopeSpans"][0]["spans"]  # type: ignore[index]
    spans.append({**spans[0], "spanId": "00f067aa0ba902b7"})  # a second span, same count
    path = tmp_path / "t.json"
    path.write_text(json.dumps(export), encoding="utf-8")
    with pytest.raises(InputDataError) as caught:
        load_format("otlp_json", path)
    assert str(caught.value) == (
        f"{path} resourceSpans[0] scopeSpans[0] spans[0] span chat gpt-4o: column "
        "'input_tokens': 5000000000000000000: the integer columns of source 'events' "
        "(input_tokens) add up to 1e+19, more than a 64-bit integer holds "
        f"({INT64_MAX}): their sums would overflow to a wrong (negative) number; fix the data"
    )


def test_a_chat_record_with_an_empty_id_is_located(tmp_path: Path) -> None:
    path = write(
        tmp_path / "runs.jsonl",
        [  # type: ignore[list-item]
            {"id": "run-1", "messages": [{"role": "user", "content": "hi"}]},
            {"id": "", "messages": [{"role": "user", "content": "yo"}]},
        ],
    )
    with pytest.raises(InputDataError) as caught:
        load_format("chat", path)
    assert str(caught.value) == (
        f"{path}:2 messages[0]: column 'conversation_id' is empty text (''): it is required{FIX}"
    )


def test_in_memory_frames_whose_sums_would_overflow_are_refused() -> None:
    from kpictl.io.read import load_frames

    frame = pl.DataFrame(
        {
            "conversation_id": ["c1", "c2"],
            "event": ["message"] * 2,
            "ts": ["2026-10-01T10:00:00Z"] * 2,
            "output_tokens": [5 * 10**18, 5 * 10**18],
        }
    )
    with pytest.raises(InputDataError) as caught:
        load_frames({"events": frame})
    assert str(caught.value).startswith(
        "<frame events> (row 1): column 'output_tokens': 5000000000000000000: the integer "
        "columns of source 'events' (output_tokens) add up to 1e+19"
    )


def test_compare_gives_the_loading_and_as_of_notes_too(tmp_path: Path) -> None:
    events = write(
        tmp_path / "logs/events/e.jsonl",
        [
            row("c1"),
            row("c1", ts="2026-10-01T10:05:00Z", event="resolution"),
            row("c2", ts="2026-10-03T08:00:00Z"),
            row("c3", ts="9999-01-01T00:00:00Z"),
        ],
    )
    calls = write(
        tmp_path / "logs/tool_calls/t.jsonl",
        [{"conversation_id": "c1", "ts": "2026-10-01T10:00:00Z", "tool": "x", "status": "ok"}],
    )
    code, out, err = cli(
        "compare",
        "-c",
        str(minimal_spec(tmp_path)),
        str(events.parent),
        str(events),
        "--source",
        f"tool_calls={calls}",
        "-f",
        "json",
        "--kpi",
        "resolution_rate",
    )
    assert code == 0, err
    notes = json.loads(out)["notes"]
    assert (
        f"source 'events': 1 file named more than once, read once: {events} (by "
        f"{str(events.parent)!r} and {str(events)!r})"
    ) in notes
    assert any(
        n.startswith(f"as-of is 9999-01-01T00:00:00+00:00, the time at {events}:4: ") for n in notes
    )


def test_json_written_as_text_is_kept_and_an_object_among_it_is_not(tmp_path: Path) -> None:
    # a field holding JSON text in every line ("{\"a\": 1}") is text; one real object among
    # those lines is still found (polars turns it into the same-looking text)
    texts = ['{"order": 1}', "[1, 2]", '{"order": 3}']
    path = write(tmp_path / "e.jsonl", [row(channel=t) for t in texts])
    assert load_fields(path, FAST).frame.collect().get_column("channel").to_list() == texts
    mixed = write(tmp_path / "m.jsonl", [row(channel=texts[0]), row(channel={"order": 2})])
    with pytest.raises(InputDataError) as caught:
        load_fields(mixed, FAST)
    assert str(caught.value) == (
        f"{mixed}:2: field 'channel': expected text, got an object ({{\"order\": 2}}); fix the "
        "file or pass --on-bad-rows skip"
    )


def _declared_int_spec(write_spec: SpecWriter) -> Path:
    """The minimal spec with two declared integer columns: `units`, added up by a rollup
    entry, and `ticket`, an id only counted."""
    return write_spec(
        (
            "      ts: {from: ts, type: timestamp}",
            "      ts: {from: ts, type: timestamp}\n      units: {type: int}\n"
            "      ticket: {type: int}",
        ),
        (
            "        csat: AVG(csat) FILTER (WHERE event = 'feedback')",
            "        csat: AVG(csat) FILTER (WHERE event = 'feedback')\n"
            "        units: TOTAL(units)\n        tickets: COUNT(DISTINCT ticket)",
        ),
        (
            "kpis:\n",
            "kpis:\n  units_per_task:\n    over: conversations\n    value: AVG(units)\n"
            "    direction: lower\n    format: number\n",
        ),
    )


def test_a_declared_integer_column_the_spec_adds_up_is_checked_for_overflow(
    write_spec: SpecWriter, write_jsonl: JsonlWriter
) -> None:
    """Two `units` of 5e18 summed by TOTAL(units) gave units_per_task = -1.41e18 (the Int64 sum
    wrapped): a declared column the spec adds up is checked like the canonical counts."""
    spec = _declared_int_spec(write_spec)
    events = write_jsonl(
        "logs/events/e.jsonl",
        [row("c1", units=5 * 10**18, ticket=1), row("c1", units=5 * 10**18, ticket=1)],
    )
    write_jsonl("logs/tool_calls/t.jsonl", [])
    code, out, err = cli("compute", "-c", str(spec), "--kpi", "units_per_task")
    assert (code, out) == (1, "")
    assert err == (
        f"kpictl: error: {events}:1: column 'units': {5 * 10**18}: the integer columns of "
        "source 'events' (units) add up to 1e+19, more than a 64-bit integer holds "
        f"({INT64_MAX}): their sums would overflow to a wrong (negative) number; fix the data\n"
    )


def test_a_declared_integer_id_that_is_only_counted_is_not_refused(
    write_spec: SpecWriter, write_jsonl: JsonlWriter
) -> None:
    """Large numeric ids (snowflake-style, ~4e18) add up past Int64, but the spec never sums
    them: they load, and the KPI over the summed column is the plain sum checked by hand."""
    spec = _declared_int_spec(write_spec)
    big = 4 * 10**18
    write_jsonl(
        "logs/events/e.jsonl",
        [
            row("c1", units=2, ticket=big),
            row("c1", units=3, ticket=big + 1),
            row("c2", units=7, ticket=big + 2),
        ],
    )
    write_jsonl("logs/tool_calls/t.jsonl", [])
    code, out, err = cli("compute", "-c", str(spec), "--kpi", "units_per_task", "--format", "json")
    assert code == 0, err
    (result,) = [r for r in json.loads(out)["results"] if not r["cohort"]]
    assert result["value"] == pytest.approx((2 + 3 + 7) / 2, rel=1e-12)
