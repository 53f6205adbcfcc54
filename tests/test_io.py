"""Reading agent logs: formats, folders, timestamps, column mapping, and bad input.

Bad input gets a clear error, never a traceback or a silent wrong number: which file, which line
or row, which field, what was expected.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from conftest import FileReads, JsonlWriter, SpecWriter, parsed
from kpictl.engine.sources import load_sources
from kpictl.errors import EmptyInputError, InputDataError, UsageError
from kpictl.io import schema as canonical
from kpictl.io import schema as schema
from kpictl.io.files import find_files
from kpictl.io.read import ColumnRule, LoadedSource, SourceRequest, load_source
from kpictl.io.request import FileRead
from kpictl.spec import load_spec
from kpictl.spec.model import Spec

UTC = dt.UTC
TS_RULE = ColumnRule("ts", "ts", type="timestamp")  # as the shipped spec declares it
Rows = list[dict[str, object]]


def events(
    *paths: Path | str, base: Path, columns: tuple[ColumnRule, ...] = (TS_RULE,)
) -> SourceRequest:
    return SourceRequest("events", tuple(str(p) for p in paths), base, columns)


def load(
    *paths: Path | str, base: Path, columns: tuple[ColumnRule, ...] = (TS_RULE,), skip: bool = False
) -> LoadedSource:
    return load_source(events(*paths, base=base, columns=columns), "skip" if skip else "error")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def load_error(
    *paths: Path | str,
    base: Path,
    columns: tuple[ColumnRule, ...] = (TS_RULE,),
    error: type[Exception] = InputDataError,
) -> str:
    with pytest.raises(error) as caught:
        load(*paths, base=base, columns=columns)
    return str(caught.value)


# ---------------------------------------------------------------------------------------------
# formats and finding files
# ---------------------------------------------------------------------------------------------


def test_jsonl_ndjson_gzip_and_parquet_give_identical_frames(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    plain = write_jsonl("a/events.jsonl", event_rows)
    (tmp_path / "b").mkdir()
    ndjson = tmp_path / "b" / "events.ndjson"
    ndjson.write_bytes(plain.read_bytes())
    gz = tmp_path / "b" / "events.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    parquet = tmp_path / "b" / "events.parquet"
    pl.DataFrame(event_rows).write_parquet(parquet)

    frames = [load(p, base=tmp_path).frame.collect() for p in (plain, ndjson, gz, parquet)]
    expected = pl.DataFrame(
        {
            "conversation_id": ["c1", "c1", "c2"],
            "ts": [utc(2026, 10, 1, 10), utc(2026, 10, 1, 10, 5), utc(2026, 10, 2, 8, 30)],
            "event": ["message", "resolution", "message"],
            "role": ["agent", None, "user"],
            "input_tokens": [120, None, 40],
            "latency_ms": [850.5, None, 1200.0],
        },
        schema_overrides={"ts": schema.UTC_TIMESTAMP},
    )
    for frame in frames:
        assert_frame_equal(frame.select(expected.columns), expected)
        # optional canonical columns the file lacks are present, empty, with their types
        absent = [c for c in schema.EVENTS if c not in expected.columns]
        assert {c: frame.schema[c] for c in absent} == {c: schema.EVENTS[c].dtype for c in absent}
        assert all(frame[c].null_count() == frame.height for c in absent)


def test_folder_is_read_recursively_and_partition_folders_become_columns(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    write_jsonl("logs/date=2026-10-01/part-0.jsonl", event_rows[:2])
    write_jsonl("logs/date=2026-10-02/region=eu/part-0.jsonl", event_rows[2:])
    loaded = load("logs", base=tmp_path)
    frame = loaded.frame.collect()
    assert frame.select("conversation_id", "date", "region").rows() == [
        ("c1", "2026-10-01", None),
        ("c1", "2026-10-01", None),
        ("c2", "2026-10-02", "eu"),
    ]
    assert [(Path(f.path).relative_to(tmp_path).as_posix(), f.rows) for f in loaded.files] == [
        ("logs/date=2026-10-01/part-0.jsonl", 2),
        ("logs/date=2026-10-02/region=eu/part-0.jsonl", 1),
    ]


def test_partition_folder_does_not_replace_a_field_of_the_same_name(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    write_jsonl("logs/role=admin/part-0.jsonl", event_rows)
    frame = load("logs", base=tmp_path).frame.collect()
    assert frame["role"].to_list() == ["agent", None, "user"]


def test_glob_selects_files(tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows) -> None:
    write_jsonl("logs/2026-10-01/a.jsonl", event_rows[:1])
    write_jsonl("logs/2026-10-02/b.jsonl", event_rows[1:])
    write_jsonl("logs/2026-10-02/c.ndjson", ["this file is not matched by the glob"])
    loaded = load("logs/*/*.jsonl", base=tmp_path)
    assert loaded.rows == 3
    assert [Path(f.path).name for f in loaded.files] == ["a.jsonl", "b.jsonl"]


def test_other_suffixes_are_ignored_and_listed_hidden_and_markers_skipped(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    write_jsonl("logs/part-0.jsonl", event_rows)
    for name in ("README.md", "notes.csv", "part-1.json"):
        (tmp_path / "logs" / name).write_text("not a log")
    for name in (".part-2.jsonl", "_SUCCESS", "_tmp/part-3.jsonl", ".cache/part-4.jsonl"):
        (tmp_path / "logs" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "logs" / name).write_text("garbage that would not parse")
    loaded = load("logs", base=tmp_path)
    assert loaded.rows == 3
    assert [Path(f.path).name for f in loaded.files] == ["part-0.jsonl"]
    assert sorted(Path(p).name for p in loaded.ignored) == ["README.md", "notes.csv", "part-1.json"]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_file_name_with_glob_characters_is_read_as_that_file(
    tmp_path: Path, event_rows: Rows, suffix: str
) -> None:
    base = tmp_path / "in[2026]"  # the spec's folder may hold glob characters too
    (base / "logs").mkdir(parents=True)

    def write(name: str, rows: Rows) -> None:
        path = base / "logs" / name
        if suffix == ".parquet":
            pl.DataFrame(rows).write_parquet(path)
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    write(f"run[1]{suffix}", event_rows[:1])  # as a glob, `run[1]` would name run1
    write(f"run1{suffix}", event_rows[1:])

    def ids(loaded: LoadedSource) -> list[object]:
        return loaded.frame.collect()["conversation_id"].to_list()

    literal = load(f"logs/run[1]{suffix}", base=base)
    assert [Path(f.path).name for f in literal.files] == [f"run[1]{suffix}"]
    assert ids(literal) == ["c1"]
    # in a folder, each file is read once, as named
    folder = load("logs", base=base)
    assert [Path(f.path).name for f in folder.files] == [f"run1{suffix}", f"run[1]{suffix}"]
    assert ids(folder) == ["c1", "c2", "c1"]
    # a pattern that names no file is still a glob, relative to the (literal) base folder
    assert [Path(f.path).name for f in load(f"logs/run?{suffix}", base=base).files] == [
        f"run1{suffix}"
    ]


def test_find_files_returns_each_file_with_its_partition_root(tmp_path: Path) -> None:
    (tmp_path / "logs" / "date=2026-10-01").mkdir(parents=True)
    log = tmp_path / "logs" / "date=2026-10-01" / "a.jsonl.gz"
    log.write_bytes(gzip.compress(b"{}\n"))
    (tmp_path / "logs" / "x.txt").write_text("x")
    found, ignored = find_files("logs", tmp_path)
    assert found == [(log, tmp_path / "logs")]
    assert ignored == [str(tmp_path / "logs" / "x.txt")]


# ---------------------------------------------------------------------------------------------
# timestamps and types
# ---------------------------------------------------------------------------------------------

ISO_CASES = [
    ("2026-10-01T10:00:00Z", utc(2026, 10, 1, 10)),
    ("2026-10-01T12:00:00+02:00", utc(2026, 10, 1, 10)),
    ("2026-10-01T03:00:00-07:00", utc(2026, 10, 1, 10)),
    ("2026-10-01T10:00:00", utc(2026, 10, 1, 10)),  # no offset: UTC
    ("2026-10-01 10:00:00", utc(2026, 10, 1, 10)),
    ("2026-10-01 12:00:00+02:00", utc(2026, 10, 1, 10)),
    ("2026-10-01T10:00:00.250Z", utc(2026, 10, 1, 10, 0, 0, 250_000)),
    ("2026-10-01T10:00:00.123456+05:30", utc(2026, 10, 1, 4, 30, 0, 123_456)),
    ("2026-10-01T00:30:00+01:00", utc(2026, 9, 30, 23, 30)),  # the offset moves the date
    ("2026-10-01", utc(2026, 10, 1)),
]


def test_iso_timestamps_are_normalised_to_utc(tmp_path: Path, write_jsonl: JsonlWriter) -> None:
    rows = [{"conversation_id": "c", "ts": text, "event": "message"} for text, _ in ISO_CASES]
    frame = load(write_jsonl("e.jsonl", rows), base=tmp_path).frame.collect()
    assert frame.schema["ts"] == pl.Datetime("us", "UTC")
    assert frame["ts"].to_list() == [expected for _, expected in ISO_CASES]


def test_timestamps_are_parsed_without_a_column_rule(
    tmp_path: Path, write_jsonl: JsonlWriter
) -> None:
    path = write_jsonl("e.jsonl", [{"conversation_id": "c", "ts": ISO_CASES[1][0], "event": "m"}])
    frame = load(path, base=tmp_path, columns=()).frame.collect()
    assert frame["ts"].to_list() == [ISO_CASES[1][1]]


@pytest.mark.parametrize(
    ("unit", "raw", "expected"),
    [
        ("ms", 1_790_000_000_250, utc(2026, 9, 21, 14, 13, 20, 250_000)),
        ("s", 1_790_000_000, utc(2026, 9, 21, 14, 13, 20)),
        ("s", 1_790_000_000.5, utc(2026, 9, 21, 14, 13, 20, 500_000)),
        ("us", 1_790_000_000_000_001, utc(2026, 9, 21, 14, 13, 20, 1)),
        # integers stay exact: the last µs of 2099 (2**53 µs is in 2255, after 2100: refused
        # as a likely wrong unit, tests/test_hostile_input.py) and ns beyond Float64's precision
        ("us", 4_102_444_799_999_999, utc(2099, 12, 31, 23, 59, 59, 999_999)),
        ("ns", 1_790_000_000_123_456_789, utc(2026, 9, 21, 14, 13, 20, 123_456)),
    ],
)
def test_epoch_numbers_with_a_declared_unit(
    tmp_path: Path, write_jsonl: JsonlWriter, unit: str, raw: float, expected: dt.datetime
) -> None:
    assert dt.datetime.fromtimestamp(1_790_000_000, UTC) == utc(2026, 9, 21, 14, 13, 20)
    path = write_jsonl("e.jsonl", [{"conversation_id": "c", "ts": raw, "event": "m"}])
    rule = ColumnRule("ts", "ts", type="timestamp", unit=unit)
    frame = load(path, base=tmp_path, columns=(rule,)).frame.collect()
    assert frame["ts"].to_list() == [expected]


def test_epoch_numbers_without_a_unit_ask_for_one(tmp_path: Path, write_jsonl: JsonlWriter) -> None:
    path = write_jsonl("e.jsonl", [{"conversation_id": "c", "ts": 1_790_000_000_000, "event": "m"}])
    message = load_error(path, base=tmp_path)
    assert message == (
        f"{path}: column 'ts' holds numbers; declare their epoch unit in the spec: "
        "columns: {ts: {from: …, type: timestamp, unit: s|ms|us|ns}}"
    )


def test_epoch_out_of_range_for_its_unit_is_reported(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    # milliseconds declared as seconds: far beyond any timestamp, never a silent wrap-around
    path = write_jsonl("e.jsonl", [{**event_rows[0], "ts": 17_900_000_000_000_000}])
    rule = ColumnRule("ts", "ts", type="timestamp", unit="s")
    assert load_error(path, base=tmp_path, columns=(rule,)).startswith(
        f"{path}:1: column 'ts': expected an epoch time in s (since 1970-01-01 UTC) that fits "
        "a timestamp, got 17900000000000000;"
    )


def test_native_parquet_timestamps_are_made_utc(tmp_path: Path) -> None:
    naive = [dt.datetime(2026, 10, 1, 10), dt.datetime(2026, 10, 1, 11)]
    base = {"conversation_id": ["c1", "c2"], "event": ["m", "m"]}
    pl.DataFrame({**base, "ts": naive}).cast({"ts": pl.Datetime("ns")}).write_parquet(
        tmp_path / "naive.parquet"
    )
    pl.DataFrame({**base, "ts": naive}).with_columns(
        pl.col("ts").dt.replace_time_zone("Europe/Berlin")
    ).write_parquet(tmp_path / "berlin.parquet")
    assert load("naive.parquet", base=tmp_path).frame.collect()["ts"].to_list() == [
        utc(2026, 10, 1, 10),
        utc(2026, 10, 1, 11),
    ]
    assert load("berlin.parquet", base=tmp_path).frame.collect()["ts"].to_list() == [
        utc(2026, 10, 1, 8),
        utc(2026, 10, 1, 9),  # CEST is UTC+2
    ]


def test_narrow_parquet_numbers_are_widened(tmp_path: Path) -> None:
    pl.DataFrame(
        {
            "conversation_id": ["c1", "c2"],
            "ts": ["2026-10-01T10:00:00Z", "2026-10-01T11:00:00Z"],
            "event": ["message", "message"],
            "input_tokens": pl.Series([2_000_000_000, 7], dtype=pl.Int32),
            "latency_ms": pl.Series([0.5, 1.25], dtype=pl.Float32),
            "attempt": pl.Series([1, 2], dtype=pl.Int16),  # a pass-through column
            "bytes": pl.Series([3, 4], dtype=pl.UInt32),
        }
    ).write_parquet(tmp_path / "e.parquet")
    frame = load("e.parquet", base=tmp_path).frame.collect()
    assert {c: frame.schema[c] for c in ("input_tokens", "latency_ms", "attempt", "bytes")} == {
        "input_tokens": pl.Int64(),
        "latency_ms": pl.Float64(),
        "attempt": pl.Int64(),
        "bytes": pl.Int64(),
    }
    # Int64 sums do not overflow where Int32 sums would (docs/formats.md, "The canonical tables":
    # integers are widened to Int64 on load).
    assert frame["input_tokens"].sum() == 2_000_000_007
    assert frame["latency_ms"].to_list() == [0.5, 1.25]


# ---------------------------------------------------------------------------------------------
# column mapping
# ---------------------------------------------------------------------------------------------

VENDOR_ROWS: Rows = [
    {
        "session": {"id": "s1"},
        "session_id": "x1",
        "created": "2026-10-01T10:00:00Z",
        "kind": "message",
        "cost_cents": 150,
        "geo": {"region": "eu"},
    },
    {
        "session": {"id": "s2"},
        "session_id": "x2",
        "created": "2026-10-01T11:00:00Z",
        "kind": "resolution",
        "cost_cents": 5,
        "geo": {"region": None},
    },
]


@pytest.mark.parametrize(
    ("rule", "column", "expected"),
    [
        (ColumnRule("conversation_id", "session_id"), "conversation_id", ["x1", "x2"]),
        (ColumnRule("conversation_id", "session.id"), "conversation_id", ["s1", "s2"]),
        (ColumnRule("cost_usd", sql="cost_cents / 100.0"), "cost_usd", [1.5, 0.05]),
        (ColumnRule("region", "geo.region", default="unknown"), "region", ["eu", "unknown"]),
        (ColumnRule("channel", default="web"), "channel", ["web", "web"]),  # absent field
    ],
)
def test_column_mapping(
    tmp_path: Path, write_jsonl: JsonlWriter, rule: ColumnRule, column: str, expected: list
) -> None:
    rules = {
        "conversation_id": ColumnRule("conversation_id", "session.id"),
        "ts": ColumnRule("ts", "created", type="timestamp"),
        "event": ColumnRule("event", "kind"),
    }
    rules[rule.name] = rule
    path = write_jsonl("e.jsonl", VENDOR_ROWS)
    frame = load(path, base=tmp_path, columns=tuple(rules.values())).frame.collect()
    assert frame[column].to_list() == expected
    assert frame["ts"].to_list() == [utc(2026, 10, 1, 10), utc(2026, 10, 1, 11)]
    assert frame["event"].to_list() == ["message", "resolution"]


def test_column_mapping_from_a_spec(
    tmp_path: Path, write_spec: SpecWriter, write_jsonl: JsonlWriter
) -> None:
    spec = load_spec(
        write_spec(
            (
                "      ts: {from: ts, type: timestamp}\n",
                "      ts: {from: created, type: timestamp}\n"
                "      conversation_id: session.id\n"
                "      event: CASE kind WHEN 'resolution' THEN 'resolution' ELSE 'message' END\n"
                "      cost_usd: {from: cost_cents / 100.0}\n"
                "      region: {from: geo.region, default: unknown}\n",
            )
        )
    )
    events_file = write_jsonl("vendor/events.jsonl", VENDOR_ROWS)
    calls_file = write_jsonl(
        "vendor/calls.jsonl",
        [{"conversation_id": "s1", "ts": "2026-10-01T10:00:01Z", "tool": "t", "status": "ok"}],
    )
    sources = load_sources(spec, {"events": [events_file], "tool_calls": [calls_file]})
    frame = sources["events"].collect()
    assert frame.select("conversation_id", "event", "cost_usd", "region").rows() == [
        ("s1", "message", 1.5, "eu"),
        ("s2", "resolution", 0.05, "unknown"),
    ]


def test_mapped_field_that_is_missing_is_named(tmp_path: Path, write_jsonl: JsonlWriter) -> None:
    path = write_jsonl("e.jsonl", VENDOR_ROWS)
    rules = (
        ColumnRule("conversation_id", "sesion_id"),
        ColumnRule("ts", "created", type="timestamp"),
        ColumnRule("event", "kind"),
    )
    message = load_error(path, base=tmp_path, columns=rules)
    assert message.startswith(
        f"{path}: source 'events': field 'sesion_id' (mapped to 'conversation_id') is missing "
        "(did you mean 'session_id' or 'session'?); fields there: session, session_id, created, "
        "kind, cost_cents, geo"
    )


# ---------------------------------------------------------------------------------------------
# bad lines and bad values
# ---------------------------------------------------------------------------------------------


def test_malformed_json_line_gives_file_and_line(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    # line 1 ok, line 2 blank, line 3 broken, line 4 ok
    path = write_jsonl("e.jsonl", [event_rows[0], "", '{"conversation_id": "c9", ', event_rows[1]])
    message = load_error(path, base=tmp_path)
    assert message == (
        f"{path}:3: malformed JSON (Expecting property name enclosed in double quotes); "
        "fix the file or pass --on-bad-rows skip"
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[1, 2]", "expected a JSON object, got list"),
        ('"text"', "expected a JSON object, got str"),
        ("42", "expected a JSON object, got int"),
        ('{"conversation_id": "c", "latency_ms": NaN}', "malformed JSON (NaN is not a JSON value"),
        ('{"a": 1} {"b": 2}', "malformed JSON (Extra data)"),
    ],
)
def test_line_that_is_not_one_json_object(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows, line: str, reason: str
) -> None:
    path = write_jsonl("e.jsonl", [event_rows[0], "", "", line, event_rows[1]])
    assert load_error(path, base=tmp_path).startswith(f"{path}:4: {reason}")


def test_skip_drops_bad_lines_counts_them_per_file_and_keeps_the_rest(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    write_jsonl("logs/a.jsonl", [event_rows[0], "{oops", "", "[1]", event_rows[1]])
    write_jsonl("logs/b.jsonl", event_rows[2:])
    loaded = load("logs", base=tmp_path, skip=True)
    assert [(Path(f.path).name, f.rows, f.skipped) for f in loaded.files] == [
        ("a.jsonl", 2, 2),
        ("b.jsonl", 1, 0),
    ]
    assert (loaded.rows, loaded.skipped) == (3, 2)
    assert loaded.files[0].skipped_reasons == (
        "line 2: malformed JSON (Expecting property name enclosed in double quotes)",
        "line 4: expected a JSON object, got list",
    )
    assert loaded.frame.collect()["conversation_id"].to_list() == ["c1", "c1", "c2"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("input_tokens", "abc", "a whole number (Int64)"),
        ("input_tokens", 1.5, "a whole number (Int64)"),
        ("latency_ms", "fast", "a number (Float64)"),
        ("policy_violation", "maybe", "a boolean (true/false)"),
        ("ts", "yesterday", "a timestamp (ISO-8601 text such as 2026-10-01T12:00:00Z, or a date)"),
        ("ts", "2026-13-01T10:00:00Z", "a timestamp (ISO-8601"),
    ],
)
def test_value_of_the_wrong_type_names_column_type_value_and_line(
    tmp_path: Path,
    write_jsonl: JsonlWriter,
    event_rows: Rows,
    field: str,
    value: object,
    expected: str,
) -> None:
    bad = {**event_rows[1], field: value}
    path = write_jsonl("e.jsonl", [event_rows[0], "", bad, event_rows[2]])
    message = load_error(path, base=tmp_path)
    assert message.startswith(f"{path}:3: column {field!r}: expected {expected}")
    assert (
        f"got {value!r}; fix the data, map the column in the spec, or pass --on-bad-rows skip"
        in (message)
    )


def test_wrong_types_are_skipped_and_counted_with_skip(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    rows = [
        event_rows[0],
        {**event_rows[1], "input_tokens": "abc"},
        {**event_rows[1], "ts": "yesterday"},
        event_rows[2],
    ]
    path = write_jsonl("e.jsonl", rows)
    with pytest.raises(InputDataError, match=r":2: column 'input_tokens'.*\(1 more bad rows\)"):
        load(path, base=tmp_path)
    loaded = load(path, base=tmp_path, skip=True)
    assert (loaded.rows, loaded.skipped) == (2, 2)
    assert loaded.frame.collect()["ts"].to_list() == [utc(2026, 10, 1, 10), utc(2026, 10, 2, 8, 30)]
    (reason,) = loaded.files[0].skipped_reasons
    assert reason.startswith(f"{path}:2: column 'input_tokens'") and reason.endswith("and 1 more")


def test_wrong_type_in_parquet_gives_the_row(tmp_path: Path, event_rows: Rows) -> None:
    rows = [{**r, "input_tokens": "12"} for r in event_rows]  # numbers as text
    rows[2]["input_tokens"] = "lots"
    pl.DataFrame(rows).write_parquet(tmp_path / "e.parquet")
    message = load_error("e.parquet", base=tmp_path)
    assert message.startswith(
        f"{tmp_path / 'e.parquet'} (row 3): column 'input_tokens': expected a whole number "
        "(Int64), got 'lots'"
    )


def test_null_required_value_in_one_parquet_row_group_of_many(tmp_path: Path) -> None:
    """Clean row groups are ruled out by their statistics; the one null is still found, with
    its row, and skipped when asked."""
    n = 5_000
    frame = pl.DataFrame(
        {
            "conversation_id": [f"c{i // 7}" for i in range(n)],
            "ts": [
                dt.datetime(2026, 10, 1, tzinfo=UTC) + dt.timedelta(seconds=i) for i in range(n)
            ],
            "event": ["message"] * n,
        }
    ).with_columns(
        pl.when(pl.int_range(pl.len()) == 4_321)
        .then(None)
        .otherwise(pl.col("event"))
        .alias("event")
    )
    frame.write_parquet(tmp_path / "e.parquet", row_group_size=500)
    assert load_error("e.parquet", base=tmp_path, columns=()) == (
        f"{tmp_path / 'e.parquet'} (row 4322): column 'event' is empty (null): it is required;"
        " fix the data, map the column in the spec, or pass --on-bad-rows skip"
    )
    loaded = load("e.parquet", base=tmp_path, columns=(), skip=True)
    assert (loaded.rows, loaded.skipped) == (n - 1, 1)
    assert loaded.frame.collect()["event"].null_count() == 0
    clean = frame.filter(pl.col("event").is_not_null())
    clean.write_parquet(tmp_path / "clean.parquet", row_group_size=500)
    assert load("clean.parquet", base=tmp_path, columns=()).rows == n - 1


def test_missing_required_column_names_source_column_and_what_is_there(
    tmp_path: Path, write_jsonl: JsonlWriter
) -> None:
    path = write_jsonl("e.jsonl", [{"conversation_id": "c", "ts": "2026-10-01", "evnt": "m"}])
    assert load_error(path, base=tmp_path) == (
        f"{path}: source 'events' has no column 'event' (did you mean 'evnt'?); columns there: "
        "conversation_id, ts, evnt. Map one in the spec: sources.events.columns.event: "
        "<field or SQL>"
    )
    path = write_jsonl("f.jsonl", [{"conversation_id": "c", "ts": "2026-10-01", "kind": "m"}])
    assert load_error(path, base=tmp_path).startswith(
        f"{path}: source 'events' has no column 'event'; columns there: conversation_id, ts, kind."
    )


def test_null_in_a_required_column(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    path = write_jsonl("e.jsonl", [event_rows[0], {**event_rows[1], "conversation_id": None}])
    assert load_error(path, base=tmp_path) == (
        f"{path}:2: column 'conversation_id' is empty (null): it is required; fix the data, "
        "map the column in the spec, or pass --on-bad-rows skip"
    )
    loaded = load(path, base=tmp_path, skip=True)
    assert (loaded.rows, loaded.skipped) == (1, 1)


# ---------------------------------------------------------------------------------------------
# nothing to read
# ---------------------------------------------------------------------------------------------


EMPTY_EVENTS_SCHEMA = {
    **{name: column.dtype for name, column in canonical.EVENTS.items()},
    "channel": pl.String(),  # a mapped pass-through column without a type: text
    "score": pl.Float64(),  # a mapped pass-through column with its declared type
}
EMPTY_RULES = (TS_RULE, ColumnRule("channel", "via"), ColumnRule("score", "score", type="float"))


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_jsonl_file_is_zero_typed_rows(tmp_path: Path, content: str) -> None:
    """An empty file has no schema: the canonical schema and the declared types give it one."""
    (tmp_path / "e.jsonl").write_text(content)
    loaded = load("e.jsonl", base=tmp_path, columns=EMPTY_RULES)
    frame = loaded.frame.collect()
    assert (frame.height, loaded.rows, loaded.skipped) == (0, 0, 0)
    assert dict(frame.schema) == EMPTY_EVENTS_SCHEMA
    assert [f.path for f in loaded.files] == [str(tmp_path / "e.jsonl")]


def test_a_typed_empty_parquet_file_is_zero_typed_rows(tmp_path: Path) -> None:
    pl.DataFrame(
        schema={"conversation_id": pl.String, "ts": pl.String, "event": pl.String, "via": pl.String}
    ).write_parquet(tmp_path / "e.parquet")
    frame = load("e.parquet", base=tmp_path, columns=EMPTY_RULES).frame.collect()
    assert frame.height == 0 and dict(frame.schema) == EMPTY_EVENTS_SCHEMA


def test_a_missing_path_is_still_an_error(tmp_path: Path) -> None:
    message = load_error("nope.jsonl", base=tmp_path)
    assert message == f"{tmp_path / 'nope.jsonl'}: no such file or folder"


def test_every_row_skipped_is_an_empty_input_error(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    path = write_jsonl("e.jsonl", [{**event_rows[0], "ts": "soon"}, "{"])
    with pytest.raises(EmptyInputError) as caught:
        load(path, base=tmp_path, skip=True)
    assert str(caught.value) == f"source 'events': no rows in {path} (2 bad rows skipped)"


def test_folder_without_log_files(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "events.csv").write_text("a,b\n")
    assert load_error("logs", base=tmp_path) == (
        f"{tmp_path / 'logs'}: no log files found; expected .jsonl, .ndjson, .jsonl.gz, "
        f".ndjson.gz, .parquet, .pq (ignored: {tmp_path / 'logs' / 'events.csv'})"
    )
    assert load_error("logs/*.jsonl", base=tmp_path).startswith(
        f"{tmp_path / 'logs' / '*.jsonl'}: no log files found"
    )


def test_nonexistent_path(tmp_path: Path) -> None:
    assert load_error("nope/events.jsonl", base=tmp_path) == (
        f"{tmp_path / 'nope' / 'events.jsonl'}: no such file or folder"
    )


def test_inputs_are_never_modified(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    write_jsonl("logs/a.jsonl", [event_rows[0], "{bad", {**event_rows[1], "ts": "soon"}])
    (tmp_path / "logs" / "b.jsonl.gz").write_bytes(
        gzip.compress(json.dumps(event_rows[2]).encode() + b"\n")
    )
    pl.DataFrame(event_rows).write_parquet(tmp_path / "logs" / "c.parquet")
    (tmp_path / "logs" / "notes.txt").write_text("hello")

    def digests() -> dict[str, str]:
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((tmp_path / "logs").iterdir())
        }

    before = digests()
    with pytest.raises(InputDataError):
        load("logs", base=tmp_path)
    load("logs", base=tmp_path, skip=True).frame.collect()
    assert digests() == before


# ---------------------------------------------------------------------------------------------
# sources of a spec
# ---------------------------------------------------------------------------------------------


def test_load_sources_with_the_shipped_spec(
    shipped_spec: Spec, write_jsonl: JsonlWriter, event_rows: Rows, tool_call_rows: Rows
) -> None:
    events_file = write_jsonl("in/events.jsonl", event_rows)
    calls_file = write_jsonl("in/calls.jsonl", tool_call_rows)
    sources = load_sources(shipped_spec, {"events": [events_file], "tool_calls": [calls_file]})
    # business events given nowhere beside these events: not read, their KPIs unavailable
    assert sorted(sources.by_name) == ["business_events", "events", "tool_calls"]
    assert sources.by_name["business_events"].unusable is not None
    assert [f.path for f in sources.files] == [str(events_file), str(calls_file)]
    for name, rows in (("events", event_rows), ("tool_calls", tool_call_rows)):
        frame = sources[name].collect()
        assert frame.height == len(rows)
        canonical = schema.CANONICAL_TABLES[name]
        typed = [c for c in frame.columns if c in canonical]
        assert {c: frame.schema[c] for c in typed} == {c: canonical[c].dtype for c in typed}
        # the other columns are the spec's declared attributes (text)
        attributes = {a for t in shipped_spec.tables.values() for a in t.attributes}
        assert set(frame.columns) - set(canonical) <= attributes


def test_load_sources_rejects_an_unknown_source(shipped_spec: Spec) -> None:
    with pytest.raises(UsageError) as caught:
        load_sources(shipped_spec, {"event": ["x.jsonl"]})
    assert str(caught.value) == (
        "--source event: the spec declares no source 'event' (did you mean 'events'?); "
        "sources: events, tool_calls, business_events"
    )


# ---------------------------------------------------------------------------------------------
# property: ISO text with any offset parses back to the same instant
# ---------------------------------------------------------------------------------------------

OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
AWARE = st.datetimes(
    min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2099, 12, 31), timezones=OFFSETS
)


@settings(max_examples=60, deadline=None)
@given(
    stamps=st.lists(
        st.tuples(
            AWARE,
            st.sampled_from(["T", " "]),
            st.sampled_from(["seconds", "milliseconds", "microseconds"]),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_iso_text_with_any_offset_parses_to_the_same_utc_instant(
    stamps: list[tuple[dt.datetime, str, str, bool]],
) -> None:
    expected, lines = [], []
    for stamp, sep, timespec, zulu in stamps:
        if timespec == "seconds":
            stamp = stamp.replace(microsecond=0)
        elif timespec == "milliseconds":
            stamp = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
        text = stamp.isoformat(sep=sep, timespec=timespec)
        if zulu and text.endswith("+00:00"):
            text = text[:-6] + "Z"
        expected.append(stamp.astimezone(UTC))
        lines.append(json.dumps({"conversation_id": "c", "ts": text, "event": "m"}))
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "e.jsonl").write_text("\n".join(lines) + "\n")
        frame = load("e.jsonl", base=Path(folder)).frame.collect()
    assert frame["ts"].to_list() == expected


def test_jsonl_cache_is_used_for_unchanged_files_and_refreshed_on_change(
    tmp_path: Path, shipped_spec, write_jsonl, event_rows, tool_call_rows, monkeypatch, file_reads
) -> None:
    from kpictl.engine.sources import load_sources

    cache = tmp_path / "cache"
    monkeypatch.setenv("KPICTL_CACHE_DIR", str(cache))
    events = write_jsonl("in/events.jsonl", event_rows)
    calls = write_jsonl("in/calls.jsonl", tool_call_rows)
    paths = {"events": [events], "tool_calls": [calls]}
    first = load_sources(shipped_spec, paths)["events"].collect()
    entries = sorted(p.suffix for p in cache.iterdir())
    assert entries == [".json", ".json", ".parquet", ".parquet"]  # two files, no temp files
    reads = file_reads()
    again = load_sources(shipped_spec, paths)["events"].collect()
    assert parsed(reads) == []  # both files came from the cache
    assert again.equals(first)
    # a changed file (size and mtime) is parsed again
    write_jsonl("in/events.jsonl", event_rows[:2])
    changed = load_sources(shipped_spec, paths)["events"].collect()
    assert parsed(reads) == [events] and changed.height == 2
    # --no-cache
    reads.clear()
    load_sources(shipped_spec, paths, cache=False)
    assert parsed(reads) == [events, calls]


def test_a_half_written_cache_entry_is_ignored(
    tmp_path: Path, shipped_spec, write_jsonl, event_rows, tool_call_rows, monkeypatch
) -> None:
    from kpictl.engine.sources import load_sources

    cache = tmp_path / "cache"
    monkeypatch.setenv("KPICTL_CACHE_DIR", str(cache))
    paths = {
        "events": [write_jsonl("e.jsonl", event_rows)],
        "tool_calls": [write_jsonl("c.jsonl", tool_call_rows)],
    }
    expected = load_sources(shipped_spec, paths)["events"].collect()
    for parquet in cache.glob("*.parquet"):
        parquet.write_bytes(parquet.read_bytes()[:50])  # truncated, as by a crash
    assert load_sources(shipped_spec, paths)["events"].collect().equals(expected)


# ---------------------------------------------------------------------------------------------
# the JSONL cache holds each file's canonical frame: a cached run scans it, parses nothing
# ---------------------------------------------------------------------------------------------

MIXED_TS_ROWS: Rows = [
    {
        "conversation_id": "c1",
        "ts": "2026-10-01T10:00:00Z",
        "event": "message",
        "role": "agent",
        "input_tokens": 120,
        "latency_ms": 850.5,
        "when": "2026-10-05",
    },
    {
        "conversation_id": "c1",
        "ts": "2026-10-01T12:30:00.250+02:00",
        "event": "resolution",
        "role": None,
        "input_tokens": None,
        "latency_ms": None,
        "when": "2026-10-06",
    },
    {
        "conversation_id": "c2",
        "ts": "2026-10-01 09:15:00",
        "event": "message",
        "role": "user",
        "input_tokens": 40,
        "latency_ms": None,
        "when": None,
    },
    {
        "conversation_id": "c2",
        "ts": "2026-10-02",
        "event": "feedback",
        "csat": 4,
        "policy_violation": "no",
        "when": "2026-10-07",
    },
]


def cached_load(
    *paths: Path | str,
    base: Path,
    cache: Path | None,
    columns: tuple[ColumnRule, ...] = (TS_RULE,),
    skip: bool = False,
    fields: dict[str, pl.DataType] | None = None,
) -> LoadedSource:
    request = SourceRequest(
        "events", tuple(str(p) for p in paths), base, columns, fields=fields, cache_dir=cache
    )
    return load_source(request, "skip" if skip else "error")


def assert_same_load(got: LoadedSource, expected: LoadedSource) -> None:
    assert_frame_equal(got.frame.collect(), expected.frame.collect())
    assert got.files == expected.files


@pytest.mark.parametrize(
    "fields",
    [
        None,
        {
            "conversation_id": pl.String(),
            "ts": pl.String(),
            "event": pl.String(),
            "role": pl.String(),
            "input_tokens": pl.Int64(),
        },
    ],
)
def test_cached_run_equals_the_parsing_run_with_iso_formats_nulls_and_partitions(
    tmp_path: Path,
    write_jsonl: JsonlWriter,
    file_reads: FileReads,
    fields: dict[str, pl.DataType] | None,
) -> None:
    write_jsonl("logs/date=2026-10-01/part-0.jsonl", MIXED_TS_ROWS)
    cache = tmp_path / "cache"
    # a partition column read by a rule: typed with the file's own columns, before caching
    columns = (TS_RULE, ColumnRule("day", "date", type="timestamp"))
    uncached = cached_load("logs", base=tmp_path, cache=None, columns=columns, fields=fields)
    first = cached_load("logs", base=tmp_path, cache=cache, columns=columns, fields=fields)
    reads = file_reads()
    again = cached_load("logs", base=tmp_path, cache=cache, columns=columns, fields=fields)
    assert parsed(reads) == []
    assert_same_load(first, uncached)
    assert_same_load(again, uncached)
    frame = again.frame.collect()
    assert frame["ts"].to_list() == [
        utc(2026, 10, 1, 10),
        utc(2026, 10, 1, 10, 30, 0, 250_000),
        utc(2026, 10, 1, 9, 15),
        utc(2026, 10, 2),
    ]
    assert frame.schema["ts"] == pl.Datetime("us", "UTC")
    assert frame["day"].to_list() == [utc(2026, 10, 1)] * 4
    assert frame["date"].to_list() == ["2026-10-01"] * 4
    assert frame["input_tokens"].to_list() == [120, None, 40, None]
    if fields is None:  # every field read: typed as the canonical schema says
        assert frame["policy_violation"].to_list() == [None, None, None, False]
        assert frame["csat"].dtype == pl.Float64 and frame["csat"].to_list()[3] == 4.0
    # the same file named directly has no partition folder: its own entry, no `date` column
    direct = cached_load(
        "logs/date=2026-10-01/part-0.jsonl", base=tmp_path, cache=cache, fields=fields
    )
    assert "date" not in direct.frame.collect_schema()
    assert parsed(reads) == [tmp_path / "logs/date=2026-10-01/part-0.jsonl"]


def test_cached_run_with_skip_reports_the_same_skipped_rows_and_reasons(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows, file_reads: FileReads
) -> None:
    write_jsonl(
        "logs/a.jsonl",
        [
            event_rows[0],
            "{oops",
            {**event_rows[1], "ts": "yesterday"},
            "[1]",
            {**event_rows[1], "conversation_id": None},
            event_rows[2],
        ],
    )
    write_jsonl("logs/b.jsonl", [{**event_rows[0], "ts": "soon"}])  # no row kept
    write_jsonl("logs/c.jsonl", event_rows)
    cache = tmp_path / "cache"
    uncached = cached_load("logs", base=tmp_path, cache=None, skip=True)
    a = tmp_path / "logs" / "a.jsonl"
    assert [(Path(f.path).name, f.rows, f.skipped) for f in uncached.files] == [
        ("a.jsonl", 2, 4),
        ("b.jsonl", 0, 1),
        ("c.jsonl", 3, 0),
    ]
    assert uncached.files[0].skipped_reasons == (
        "line 2: malformed JSON (Expecting property name enclosed in double quotes)",
        "line 4: expected a JSON object, got list",
        f"{a}:3: column 'ts': expected a timestamp (ISO-8601 text such as 2026-10-01T12:00:00Z, "
        "or a date), got 'yesterday' and 1 more",
    )
    first = cached_load("logs", base=tmp_path, cache=cache, skip=True)
    reads = file_reads()
    again = cached_load("logs", base=tmp_path, cache=cache, skip=True)
    assert parsed(reads) == []
    assert_same_load(first, uncached)
    assert_same_load(again, uncached)
    # the entry of a.jsonl holds the two kept rows; b.jsonl's has no frame at all
    assert sorted(pl.read_parquet(p).height for p in cache.glob("*.parquet")) == [2, 3]
    assert len(list(cache.glob("*.json"))) == 3
    # a cached run names the file as it is spelled this time
    respelled = cached_load("logs/../logs", base=tmp_path, cache=cache, skip=True)
    assert parsed(reads) == []
    assert (
        respelled.files[0]
        .skipped_reasons[2]
        .startswith(f"{tmp_path / 'logs/../logs/a.jsonl'}:3: column 'ts'")
    )


def test_a_bad_row_is_an_error_on_every_run_and_nothing_is_cached(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows
) -> None:
    path = write_jsonl("e.jsonl", [event_rows[0], {**event_rows[1], "input_tokens": "abc"}])
    cache = tmp_path / "cache"
    messages = []
    for _ in range(2):
        with pytest.raises(InputDataError) as caught:
            cached_load(path, base=tmp_path, cache=cache)
        messages.append(str(caught.value))
    assert (
        messages
        == [
            f"{path}:2: column 'input_tokens': expected a whole number (Int64), got 'abc'; fix the "
            "data, map the column in the spec, or pass --on-bad-rows skip"
        ]
        * 2
    )
    assert not cache.exists() or list(cache.iterdir()) == []


def test_cached_run_scans_parquet_and_neither_parses_nor_checks_rows(
    tmp_path: Path, write_jsonl: JsonlWriter, event_rows: Rows, file_reads: FileReads
) -> None:
    path = write_jsonl("e.jsonl", event_rows)
    cache = tmp_path / "cache"
    reads = file_reads()
    first = cached_load(path, base=tmp_path, cache=cache)
    assert "Parquet SCAN" not in first.frame.explain()  # the parsing run keeps its frame
    assert reads == [FileRead(path, "parse"), FileRead(path, "check")]
    reads.clear()
    again = cached_load(path, base=tmp_path, cache=cache)
    assert reads == []  # a cached run neither parses nor checks the file again
    plan = again.frame.explain()
    assert plan.startswith("Parquet SCAN") and "DF [" not in plan
    (entry,) = cache.glob("*.parquet")
    assert str(entry) in plan
    assert_same_load(again, first)


@pytest.mark.parametrize(
    ("columns", "fields", "skip"),
    [
        ((ColumnRule("ts", "ts2", type="timestamp"),), None, False),  # another source field
        ((TS_RULE, ColumnRule("input_tokens", type="float")), None, False),
        ((TS_RULE, ColumnRule("role", default="nobody")), None, False),
        ((TS_RULE, ColumnRule("tokens", sql="input_tokens * 2")), None, False),
        (
            (TS_RULE,),
            {"conversation_id": pl.String(), "ts": pl.String(), "event": pl.String()},
            False,
        ),
        ((TS_RULE,), None, True),
    ],
    ids=["source_field", "type", "default", "sql", "fields", "on_bad_rows"],
)
def test_a_change_of_how_the_file_is_read_misses_the_cache(
    tmp_path: Path,
    write_jsonl: JsonlWriter,
    event_rows: Rows,
    file_reads: FileReads,
    columns: tuple[ColumnRule, ...],
    fields: dict[str, pl.DataType] | None,
    skip: bool,
) -> None:
    rows = [{**r, "ts2": f"2027-01-0{i + 1}"} for i, r in enumerate(event_rows)]
    path = write_jsonl("e.jsonl", rows)
    cache = tmp_path / "cache"
    cached_load(path, base=tmp_path, cache=cache)
    reads = file_reads()
    changed = cached_load(
        path, base=tmp_path, cache=cache, columns=columns, fields=fields, skip=skip
    )
    assert parsed(reads) == [path]
    expected = cached_load(
        path, base=tmp_path, cache=None, columns=columns, fields=fields, skip=skip
    )
    assert_same_load(changed, expected)
    assert len(list(cache.glob("*.json"))) == 2
    if columns[0].source_field == "ts2":
        assert changed.frame.collect()["ts"].to_list() == [utc(2027, 1, d) for d in (1, 2, 3)]


def _truncate(entry: Path) -> None:
    entry.write_bytes(entry.read_bytes()[:-20])


def _other_rows(entry: Path) -> None:  # readable, same columns, wrong row count
    pl.read_parquet(entry).head(1).write_parquet(entry)


def _other_columns(entry: Path) -> None:
    pl.read_parquet(entry).drop("role").write_parquet(entry)


def _garbled_metadata(entry: Path) -> None:
    entry.with_suffix(".json").write_text('{"rows": 3, "skipped"')


def _metadata_of_another_kind(entry: Path) -> None:
    entry.with_suffix(".json").write_text(json.dumps({"rows": "3", "skipped": 0}))


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _other_rows,
        _other_columns,
        Path.unlink,
        _garbled_metadata,
        _metadata_of_another_kind,
        lambda e: e.with_suffix(".json").unlink(),
    ],
    ids=[
        "truncated",
        "row-count",
        "columns",
        "parquet-missing",
        "garbled-metadata",
        "bad-metadata",
        "metadata-missing",
    ],
)
def test_a_damaged_cache_entry_is_ignored_and_the_file_parsed_again(
    tmp_path: Path,
    write_jsonl: JsonlWriter,
    event_rows: Rows,
    file_reads: FileReads,
    damage: object,
) -> None:
    path = write_jsonl("e.jsonl", event_rows)
    cache = tmp_path / "cache"
    expected = cached_load(path, base=tmp_path, cache=cache)
    (entry,) = cache.glob("*.parquet")
    assert callable(damage)
    damage(entry)
    reads = file_reads()
    again = cached_load(path, base=tmp_path, cache=cache)
    assert parsed(reads) == [path]
    assert_same_load(again, expected)
    # parsed again, the entry is whole again
    assert_same_load(cached_load(path, base=tmp_path, cache=cache), expected)
    assert parsed(reads) == [path]
