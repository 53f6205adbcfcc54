"""The parity check shared by the engine tests: two KPI tables with the same rows and numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import polars as pl


def _rows(table: pl.DataFrame, by: Sequence[str]) -> dict[tuple[object, ...], dict[str, Any]]:
    rows: dict[tuple[object, ...], dict[str, Any]] = {}
    for row in table.iter_rows(named=True):
        key = (
            row["kpi"],
            tuple(row["grouping"]),
            *(row[d] for d in by),
            row.get("bucket"),
            row["breakdown"],
            row["breakdown_value"],
        )
        assert key not in rows, key
        rows[key] = row
    return rows


def assert_same_numbers(expected: pl.DataFrame, got: pl.DataFrame, by: Sequence[str]) -> int:
    """Every (kpi, cohort, breakdown) row in both tables, n and pending equal, values to 1e-9
    relative (a null only where the other is null), reasons equal. Returns the rows compared."""
    want, have = _rows(expected, by), _rows(got, by)
    assert set(have) == set(want)
    for key, row in want.items():
        other = have[key]
        assert (other["n"], other["pending"]) == (row["n"], row["pending"]), key
        assert other["reason"] == row["reason"], key
        if row["value"] is None:
            assert other["value"] is None, (key, other["value"])
        else:
            assert other["value"] is not None, key
            assert math.isclose(other["value"], row["value"], rel_tol=1e-9, abs_tol=0), (
                key,
                row["value"],
                other["value"],
            )
    return len(want)
