"""kpictl.engine.rollup's rewrites give what polars gives for the expression as written."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpictl.engine.rollup import (
    ShiftWindow,
    compile_entry,
    shifted_in_partition,
    split_shift_window,
)
from kpictl.sql.expr import compile_sql


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "LEAD(started_at) OVER (PARTITION BY user_id, intent ORDER BY started_at)",
            ShiftWindow("started_at", 1, ("user_id", "intent"), "started_at"),
        ),
        (
            "lag(COALESCE(a, b), 2) over (partition by u order by t asc nulls last)",
            ShiftWindow("COALESCE(a, b)", -2, ("u",), "t"),
        ),
        # the argument is polars SQL generated from the tree (function names upper-cased)
        ("LEAD(f(a, 2)) OVER (PARTITION BY u ORDER BY t)", ShiftWindow("F(a, 2)", 1, ("u",), "t")),
        # split from the tree, not the text: line breaks and a parenthesised argument
        (
            "LAG(\n  (v * 10),\n  2\n) OVER (\n  PARTITION BY a,\n b\n  ORDER BY t\n)",
            ShiftWindow("(v * 10)", -2, ("a", "b"), "t"),
        ),
        # left as written: a default value, DESC, NULLS FIRST, two ORDER BY columns, no
        # partition, an expression around the window
        ("LEAD(x, 1, 0) OVER (PARTITION BY u ORDER BY t)", None),
        ("LEAD(x) OVER (PARTITION BY u ORDER BY t DESC)", None),
        ("LEAD(x) OVER (PARTITION BY u ORDER BY t NULLS FIRST)", None),
        ("LEAD(x) OVER (PARTITION BY u ORDER BY t, v)", None),
        ("LEAD(x) OVER (ORDER BY t)", None),
        ("LEAD(a) + LEAD(b) OVER (PARTITION BY u ORDER BY t)", None),
        ("LEAD(x) OVER (PARTITION BY u ORDER BY t) + 1", None),
        ("LEAD(x) OVER (PARTITION BY LOWER(u) ORDER BY t)", None),  # a partition not a column
    ],
)
def test_split_shift_window(sql: str, expected: ShiftWindow | None) -> None:
    assert split_shift_window(sql) == expected


_frames = st.lists(
    st.tuples(
        st.sampled_from(["x", "y", None]),  # partition a
        st.one_of(st.none(), st.integers(0, 2)),  # partition b
        st.one_of(st.none(), st.integers(0, 6)),  # order t (ties and nulls)
        st.one_of(st.none(), st.integers(-5, 5)),  # value v
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(
    rows=_frames,
    function=st.sampled_from(["LEAD", "LAG"]),
    offset=st.integers(1, 3),
    one_key=st.booleans(),
    exact=st.booleans(),
)
def test_shift_window_equals_polars_over(
    rows: list[tuple], function: str, offset: int, one_key: bool, exact: bool
) -> None:
    """The sort-and-shift equals polars' own `shift().over(order_by=…)`, nulls in partitions,
    orders and values included, and ties in order values (both keep the rows' input order)."""
    frame = pl.DataFrame(
        rows, schema={"a": pl.String, "b": pl.Int64, "t": pl.Int64, "v": pl.Int64}, orient="row"
    )
    partition = "a" if one_key else "a, b"
    sql = f"{function}(v * 10, {offset}) OVER (PARTITION BY {partition} ORDER BY t)"
    window = split_shift_window(sql)
    assert window is not None
    expected = frame.select(compile_sql(sql).alias("w")).get_column("w")
    got = shifted_in_partition(frame, window, exact=exact)
    assert got.to_list() == expected.to_list()


def test_shift_window_by_hand() -> None:
    frame = pl.DataFrame(
        {
            "u": ["a", "b", "a", None, "a", None],
            "t": [3, 1, 1, 5, 2, 4],
            "v": [30, 10, 11, 50, 20, 40],
        }
    )
    lead = split_shift_window("LEAD(v) OVER (PARTITION BY u ORDER BY t)")
    lag = split_shift_window("LAG(v, 2) OVER (PARTITION BY u ORDER BY t)")
    assert lead is not None and lag is not None
    # u=a in t order: 11 (t1), 20 (t2), 30 (t3); u=null: 40 (t4), 50 (t5); u=b: 10
    assert shifted_in_partition(frame, lead).to_list() == [None, None, 20, None, 30, 50]
    assert shifted_in_partition(frame, lag).to_list() == [11, None, None, None, None, None]


def test_shift_window_with_colliding_partition_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every partition hashing alike interleaves their rows; that is seen, and the rows are
    sorted by the partition columns instead: the same values as without collisions."""
    from kpictl.engine import rollup as rollup

    frame = pl.DataFrame(
        {
            "u": ["a", "b", "a", "b", "a", None, None],
            "t": [1, 2, 3, 4, 5, 6, 7],
            "v": [10, 20, 30, 40, 50, 60, 70],
        }
    )
    window = split_shift_window("LEAD(v) OVER (PARTITION BY u ORDER BY t)")
    assert window is not None
    expected = [30, 40, 50, None, None, 70, None]
    assert shifted_in_partition(frame, window).to_list() == expected
    monkeypatch.setattr(rollup, "partition_hash", lambda columns: pl.lit(7, dtype=pl.UInt64))
    calls: list[bool] = []
    original = rollup.shifted_in_partition

    def spy(frame: pl.DataFrame, window: ShiftWindow, *, exact: bool = False) -> pl.Series:
        calls.append(exact)
        return original(frame, window, exact=exact)

    monkeypatch.setattr(rollup, "shifted_in_partition", spy)
    assert rollup.shifted_in_partition(frame, window).to_list() == expected
    assert calls == [False, True]  # the collision was seen and the exact sort ran


def test_a_multi_line_condition_is_split_into_its_and_terms_for_the_prefilter() -> None:
    """The text scanner split a condition only at ' AND ' with spaces: a line break before AND
    left one term reading the earlier entry resolved_at, so no row prefilter. The tree splits
    it like the one-line form."""
    one_line = "COUNT(*) FILTER (WHERE event = 'reopen' AND ts > resolved_at)"
    multi_line = "COUNT(*) FILTER (WHERE event = 'reopen'\n  AND ts > resolved_at)"
    entries = [
        compile_entry(sql, dependent_names={"resolved_at"}, time_column="ts")
        for sql in (one_line, multi_line)
    ]
    assert entries[1].prefilter is not None
    assert entries[0].prefilter is not None
    assert entries[1].prefilter.meta.eq(entries[0].prefilter)
    assert entries[1].expr.meta.eq(entries[0].expr)
    # the prefilter keeps exactly the reopen rows, and the entry counts what FILTER counts
    frame = pl.DataFrame(
        {
            "g": [1, 1, 1, 2, 2],
            "event": ["reopen", "message", "reopen", "reopen", "message"],
            "ts": [5, 6, 1, 9, 9],
            "resolved_at": [2, 2, 2, 3, 3],
        }
    )
    kept = frame.filter(entries[1].prefilter)
    assert kept.get_column("event").to_list() == ["reopen"] * 3
    counted = kept.group_by("g").agg(entries[1].expr.alias("n")).sort("g")
    assert counted.get_column("n").to_list() == [1, 1]  # g1: ts 5 > 2 (not 1); g2: 9 > 3


@pytest.mark.parametrize(
    "sql",
    [
        "COUNT(DISTINCT ticket) FILTER (WHERE ok)",
        "MEDIAN(x) FILTER (WHERE ok)",
        "SUM(x) FILTER (WHERE ok) > y",
    ],
)
def test_entries_left_as_written(sql: str) -> None:
    entry = compile_entry(sql, dependent_names=(), time_column="ts")
    assert entry.expr.meta.eq(compile_sql(sql))
