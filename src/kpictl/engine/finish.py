"""The KPI table's last step, shared by every engine: each engine's rows aligned to
`kpi_schema`, formula KPIs computed from their inputs' rows, stable order and KPI metadata
(`finish_table`), and KPIs without a value marked with their reason (`mark_unavailable`)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from kpictl.engine.findings import DataCheck
from kpictl.engine.interface import ComputeOptions
from kpictl.engine.window import BUCKET
from kpictl.io import schema as canonical
from kpictl.spec.model import KpiSpec, Spec
from kpictl.sql.expr import compile_sql

META_COLUMNS = ("layer", "format", "direction", "owner", "label")


def _formula_rows(
    kpi: KpiSpec, computed: pl.DataFrame, dims: Sequence[str]
) -> tuple[pl.DataFrame, str | None]:
    """A formula KPI's rows, and a note when the formula has no finite value somewhere."""
    base = computed.filter(pl.col("breakdown").is_null() & pl.col("kpi").is_in(kpi.formula_kpis))
    index = ["grouping", *dims]
    wide = base.pivot(on="kpi", index=index, values="value")
    sizes = base.group_by(index, maintain_order=True).agg(
        pl.col("n").min().alias("n"), pl.col("pending").max().alias("pending")
    )
    for name in kpi.formula_kpis:
        if name not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    raw = compile_sql(kpi.formula or "").cast(pl.Float64)
    # a division by zero gives ±inf or NaN: no number, so null (and a note), never inf
    wide = wide.with_columns(
        pl.when(raw.is_finite()).then(raw).alias("value"),
        (raw.is_not_null() & ~raw.is_finite()).alias("__undefined"),
    )
    undefined = int(wide.get_column("__undefined").sum())
    note = None
    if undefined:
        note = (
            f"{kpi.name}: the formula {kpi.formula} divides by zero (no finite value) in "
            f"{undefined} of {wide.height} rows: those values are null"
        )
    rows = wide.select([*index, "value"]).join(sizes, on=index, how="left", nulls_equal=True)
    return rows.with_columns(
        pl.lit(kpi.name).alias("kpi"),
        pl.lit(None, dtype=pl.String).alias("breakdown"),
        pl.lit(None, dtype=pl.String).alias("breakdown_value"),
    ), note


def kpi_schema(options: ComputeOptions) -> dict[str, pl.DataType]:
    """The columns of a KPI table before its metadata, in order, with their types: what an
    engine's per-KPI frames are aligned to (`finish_kpis`)."""
    dims = list(options.by)
    return {
        "kpi": pl.String(),
        "grouping": pl.List(pl.String()),
        **{d: pl.String() for d in dims},
        **({BUCKET: canonical.UTC_TIMESTAMP} if options.grain else {}),
        "breakdown": pl.String(),
        "breakdown_value": pl.String(),
        "value": pl.Float64(),
        "reason": pl.String(),
        "n": pl.Int64(),
        "pending": pl.Int64(),
    }


def finish_kpis(
    spec: Spec,
    kpis: Sequence[KpiSpec],
    output: Sequence[str],
    frames: Sequence[pl.DataFrame],
    options: ComputeOptions,
    sets: Sequence[tuple[str, ...]],
) -> tuple[pl.DataFrame, list[str]]:
    """The KPI table from each engine's rows of the KPIs it aggregated (one frame per query,
    columns of `kpi_schema`, missing ones null): NaN values as null, the formula KPIs computed
    from their inputs' rows, the output KPIs in a stable order with their metadata; and the
    formulas' notes. Every engine ends here, so formulas and order are one code."""
    dims = list(options.by)
    schema = kpi_schema(options)
    columns = list(schema)
    aligned = [
        f.with_columns(
            [pl.lit(None, dtype=schema[c]).alias(c) for c in columns if c not in f.columns]
        )
        .select(columns)
        .cast(schema)  # type: ignore[arg-type]
        for f in frames
    ]
    computed = pl.concat(aligned) if aligned else pl.DataFrame(schema=schema)
    computed = computed.with_columns(pl.col("value").fill_nan(None))
    notes: list[str] = []
    for kpi in kpis:
        if kpi.kind == "formula":
            rows, note = _formula_rows(kpi, computed, [*dims, *([BUCKET] if options.grain else [])])
            if note is not None:
                notes.append(note)
            rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias("reason"))
            computed = pl.concat([computed, rows.select(columns).cast(schema)])  # type: ignore[arg-type]
    table = finish_table(
        spec,
        computed.filter(pl.col("kpi").is_in(output)),
        output,
        sets,
        dims,
        options.grain is not None,
    )
    return table, notes


def mark_unavailable(table: pl.DataFrame, check: DataCheck) -> pl.DataFrame:
    """`reason` (after `value`): why a KPI has no value — a column it depends on is missing
    from the data, or no row has a known cost; its value is then null on every row, never a
    number computed over nulls (or $0)."""
    reasons = {kpi: check.reason(kpi) for kpi in check.unavailable}
    reason = pl.col("kpi").replace_strict(reasons, default=None, return_dtype=pl.String)
    if "reason" in table.columns:  # a cohort's own (its cost unknown: `evaluate_kpis`)
        reason = pl.coalesce(reason, pl.col("reason"))
    marked = table.with_columns(reason.alias("reason")).with_columns(
        pl.when(pl.col("reason").is_null()).then(pl.col("value")).alias("value")
    )
    columns = [c for c in marked.columns if c != "reason"]
    position = columns.index("value") + 1
    return marked.select([*columns[:position], "reason", *columns[position:]])


def finish_table(
    spec: Spec,
    computed: pl.DataFrame,
    output: Sequence[str],
    sets: Sequence[tuple[str, ...]],
    dims: Sequence[str],
    grain: bool,
) -> pl.DataFrame:
    """Stable order (spec order, grouping set, cohort values, breakdown) and KPI metadata."""
    kpi_order = {name: i for i, name in enumerate(output)}
    set_order = {"\x1f".join(s): i for i, s in enumerate(sets)}
    meta = pl.DataFrame(
        {
            "kpi": list(output),
            "layer": [spec.kpis[k].layer for k in output],
            "format": [spec.kpis[k].format for k in output],
            "direction": [spec.kpis[k].direction for k in output],
            "owner": [spec.kpis[k].owner for k in output],
            "label": pl.Series([spec.kpis[k].label for k in output], dtype=pl.String),
        }
    )
    sort_cols = ["__kpi", "__set", *([BUCKET] if grain else []), *dims, "__bd", "breakdown_value"]
    return (
        computed.with_columns(
            pl.col("kpi").replace_strict(kpi_order, return_dtype=pl.Int64).alias("__kpi"),
            pl.col("grouping")
            .list.join("\x1f")
            .replace_strict(set_order, return_dtype=pl.Int64)
            .alias("__set"),
            pl.col("breakdown").is_not_null().alias("__bd"),
        )
        .sort(sort_cols, nulls_last=False, maintain_order=True)
        .drop("__kpi", "__set", "__bd")
        .join(meta, on="kpi", how="left", maintain_order="left")
    )
