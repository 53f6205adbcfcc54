"""The CSV writer (`--format csv`): one row per result, full-precision values, text cells a
spreadsheet would run as a formula made inert (`text.csv_safe`)."""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from kpictl.engine.compute import ComputeResult
from kpictl.engine.window import BUCKET
from kpictl.render.text import Write, cohort_label, csv_safe, iso, text_writer


def _flat_rows(result: ComputeResult) -> tuple[list[str], list[list[Any]]]:
    dims = [*result.dimensions, *([BUCKET] if BUCKET in result.table.columns else [])]
    approx = result.approximation  # --approx-percentiles: a column saying which
    header = [
        "kpi",
        "cohort",
        *dims,
        "breakdown",
        "breakdown_value",
        "value",
        *(["approximate"] if approx is not None else []),
        "reason",
        "n",
        "pending",
        "layer",
        "format",
        "direction",
        "owner",
    ]
    rows = []
    for row in result.table.iter_rows(named=True):
        dim_values = [iso(row[d]) if d == BUCKET else row[d] for d in dims]
        value = row["value"]
        rows.append(
            [
                row["kpi"],
                cohort_label(row),
                *dim_values,
                row["breakdown"],
                row["breakdown_value"],
                None if value is None or math.isnan(value) else repr(value),
                *([str(row["kpi"] in approx.kpis).lower()] if approx is not None else []),
                row.get("reason"),
                row["n"],
                row["pending"],
                row["layer"],
                row["format"],
                row["direction"],
                row["owner"],
            ]
        )
    return header, rows


def to_csv(result: ComputeResult) -> str:
    """The `--format csv` document: one row per result, full-precision values."""
    header, rows = _flat_rows(result)
    # by position: a --by column may share a name with a fixed column (the last one)
    value, n, pending = (
        max(i for i, h in enumerate(header) if h == k) for k in ("value", "n", "pending")
    )
    names = [f"c{i}" for i in range(len(header))]
    frame = pl.DataFrame(
        [
            [v if v is None or i in (n, pending) else str(v) for v in column]
            for i, column in enumerate(zip(*rows, strict=True))
        ]
        if rows
        else None,
        schema={c: pl.Int64 if i in (n, pending) else pl.String for i, c in enumerate(names)},
        orient="col",
    )
    head = pl.DataFrame([header], schema=names, orient="row")
    body = csv_safe(frame, numeric=(names[value],))
    return head.write_csv(include_header=False) + body.write_csv(include_header=False)


def compare_to_csv(result: Any) -> str:
    """One row per KPI × cohort, full precision."""
    table = result.table.with_columns(
        pl.col("grouping").list.join(";"),
        pl.col("warnings").list.join(" | "),
    )
    return csv_safe(table).write_csv()


WRITES: dict[str, Write] = {
    "compute": text_writer(to_csv),
    "compare": text_writer(compare_to_csv),
}
