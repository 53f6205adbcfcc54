"""kpictl.commands: option text → library values, and the small decisions a command makes
before its library call. Every error is a UsageError naming the option and the value."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kpictl.cli.options import BadRows
from kpictl.commands import (
    DEFAULT_MAX_LINE_BYTES,
    facts_format,
    findings,
    parse_bad_rows,
    parse_bound,
    parse_byte_size,
    parse_cohorts,
    parse_names,
    parse_pairs,
    parse_time,
    size_text,
)
from kpictl.errors import UsageError
from kpictl.io.inputbytes import MAX_LINE_BYTES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1_048_576),
        ("64MiB", 64 * 1024 * 1024),
        ("512 KiB", 512 * 1024),
        ("2g", 2 * 1024**3),
        (" 7 b ", 7),
    ],
)
def test_byte_sizes_are_powers_of_1024(text: str, expected: int) -> None:
    assert parse_byte_size(text, "--max-line-bytes") == expected


@pytest.mark.parametrize("choice", list(BadRows))
def test_every_on_bad_rows_choice_is_a_reader_mode(choice: BadRows) -> None:
    mode = parse_bad_rows(choice)
    assert mode == choice.value
    assert type(mode) is str  # the plain literal the readers take, not the CLI's enum


def test_an_unknown_on_bad_rows_mode_names_the_option() -> None:
    with pytest.raises(UsageError) as caught:
        parse_bad_rows("ignore")
    assert caught.value.message == "--on-bad-rows 'ignore': expected error or skip"


def test_the_max_line_bytes_option_default_is_the_readers_default() -> None:
    assert parse_byte_size(DEFAULT_MAX_LINE_BYTES, "--max-line-bytes") == MAX_LINE_BYTES


@pytest.mark.parametrize("text", ["0", "64 MB/s", "-1", "1.5MiB", "lots"])
def test_a_bad_size_names_the_option(text: str) -> None:
    with pytest.raises(UsageError, match=rf"--max-line-bytes '{text}': expected a size"):
        parse_byte_size(text, "--max-line-bytes")


def test_cohorts_one_way_crossed_and_refused() -> None:
    assert parse_cohorts(None, False) == ((), ())
    assert parse_cohorts(["channel", "intent"], False) == (("channel", "intent"), ())
    assert parse_cohorts(["channel,intent"], False) == (
        ("channel", "intent"),
        ("channel", "intent"),
    )
    assert parse_cohorts(["channel", "intent"], True) == (("channel", "intent"),) * 2
    with pytest.raises(UsageError, match="one cross-tab per run"):
        parse_cohorts(["a,b", "c,d"], False)
    with pytest.raises(UsageError, match="--cross needs two or more --by columns"):
        parse_cohorts(["a"], True)
    with pytest.raises(UsageError, match=r"--by 'a,': expected a column"):
        parse_cohorts(["a,"], False)


def test_pairs_names_and_times() -> None:
    assert parse_pairs(["a=1", " b =x=y", "a=2"], "--param") == {"a": "2", "b": "x=y"}
    with pytest.raises(UsageError, match=r"--source 'events': expected NAME=VALUE"):
        parse_pairs(["events"], "--source")
    assert parse_names(" intent, ,channel ") == ("intent", "channel")
    assert parse_time("2026-10-01", "--as-of") == dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    with pytest.raises(UsageError, match=r"--as-of 'soon': expected an ISO-8601"):
        parse_time("soon", "--as-of")
    assert parse_bound(None, "--since") is None
    assert parse_bound("2026-10-01T12:00:00Z", "--since") == dt.datetime(
        2026, 10, 1, 12, tzinfo=dt.UTC
    )
    assert parse_bound("7d", "--since") is not None  # counted back from as-of
    with pytest.raises(UsageError, match=r"--until 'later': .* 7d, 2w, 12h, today, yesterday"):
        parse_bound("later", "--until")


def test_facts_format_from_the_option_or_the_suffix() -> None:
    assert facts_format(None, None, True) == (Path("facts.parquet"), "parquet")
    assert facts_format(Path("out.CSV"), None, True) == (Path("out.CSV"), "csv")
    assert facts_format(Path("out.txt"), "json", True) == (Path("out.txt"), "json")
    assert facts_format(None, "csv", True) == (None, "csv")
    assert facts_format(None, "parquet", False) == (None, "parquet")
    with pytest.raises(UsageError, match="Parquet is binary, not for a terminal"):
        facts_format(None, "parquet", True)
    with pytest.raises(UsageError, match=r"--output out.txt: expected a .parquet, .csv or .json"):
        facts_format(Path("out.txt"), None, False)


def test_sizes_and_counts_as_text() -> None:
    assert size_text(1023) == "1,023 bytes"
    assert size_text(5 * 1024 * 1024) == "5,242,880 bytes (5.0 MiB)"
    assert size_text(1536) == "1,536 bytes (1.5 KiB)"
    assert (findings(1), findings(0), findings(3)) == ("1 finding", "0 findings", "3 findings")
