"""KPI values by polars over facts: one lazy query per KPI and grouping set (overall, `--by`,
`--grain` buckets), ratios (`ratio_or_null`), breakdowns, pass^k / pass@k, cost unknown per
cohort, then `finish.finish_kpis` (`evaluate_kpis`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import polars as pl

from kpictl.engine.costcoverage import kpi_cost_sources
from kpictl.engine.facts import cost_columns
from kpictl.engine.finish import finish_kpis
from kpictl.engine.interface import ComputeOptions, Window, cohort_sets
from kpictl.engine.window import BUCKET, literal_columns, names_in
from kpictl.spec.model import KpiSpec, Spec
from kpictl.sql.expr import compile_sql

_GRAIN_EVERY = {"hour": "1h", "day": "1d", "week": "1w", "month": "1mo"}


def _as_float(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Duration):
        return expr.dt.total_microseconds().cast(pl.Float64) / 1e6
    return expr.cast(pl.Float64)


def grouping_sets(
    by: Sequence[str], grain: str | None, cross: Sequence[str] = ()
) -> list[tuple[str, ...]]:
    """The grouping sets of a run: the cohorts (`cohort_sets`), then with a grain the bucket
    alone and the bucket with each cohort set."""
    cohorts = cohort_sets(by, cross)
    if not grain:
        return cohorts
    return [*cohorts, (BUCKET,), *((BUCKET, *s) for s in cohorts[1:])]


def aggregate_by(frame: pl.LazyFrame, keys: Sequence[str], aggs: Sequence[pl.Expr]) -> pl.LazyFrame:
    """`aggs` per group of `keys`; one row over all of `frame` without keys (the overall set)."""
    if keys:
        return frame.group_by(list(keys)).agg(aggs)
    return frame.select(aggs)


def filter_kpi_rows(
    spec: Spec, kpi: KpiSpec, frame: pl.LazyFrame, window: Window, where: str | None
) -> pl.LazyFrame:
    """A KPI's rows with --where and the KPI's `where` applied, flagged `__mature` (the units
    whose outcome window has closed). Used by `compute` and by `compare` for each arm."""
    sqls = [
        kpi.where,
        kpi.mature,
        kpi.value,
        kpi.numerator,
        kpi.denominator,
        where,
        kpi.pass_k.success if kpi.pass_k else None,
    ]
    literals = literal_columns(spec, window, names_in(sqls))
    if literals:
        frame = frame.with_columns(literals)
    if where and set(names_in([where])) <= set(frame.collect_schema().names()):
        frame = frame.filter(compile_sql(where))  # a table without its columns: all rows
    if kpi.where:
        frame = frame.filter(compile_sql(kpi.where))
    mature = compile_sql(kpi.mature).fill_null(False) if kpi.mature else pl.lit(True)
    return frame.with_columns(mature.alias("__mature"))


def _kpi_frame(
    spec: Spec,
    kpi: KpiSpec,
    tables: Mapping[str, pl.LazyFrame],
    window: Window,
    options: ComputeOptions,
) -> pl.LazyFrame:
    """The KPI's table, windowed and bucketed, then `filter_kpi_rows`."""
    table = spec.tables[kpi.over]
    frame = tables[kpi.over]
    time_col = (
        table.time
        if table.is_rollup
        else (spec.tables[table.lookup].time if table.lookup else None)
    )
    if time_col is not None:
        if window.since is not None:
            frame = frame.filter(pl.col(time_col) >= window.since)
        if window.until is not None:
            frame = frame.filter(pl.col(time_col) < window.until)
        if options.grain:
            frame = frame.with_columns(
                pl.col(time_col).dt.truncate(_GRAIN_EVERY[options.grain]).alias(BUCKET)
            )
    return filter_kpi_rows(spec, kpi, frame, window, options.where)


def _kpi_queries(
    spec: Spec,
    kpi: KpiSpec,
    tables: Mapping[str, pl.LazyFrame],
    window: Window,
    options: ComputeOptions,
    sets: Sequence[tuple[str, ...]],
) -> list[pl.LazyFrame]:
    """One lazy query per grouping set (and breakdown) giving the KPI's long-format rows."""
    frame = _kpi_frame(spec, kpi, tables, window, options)
    present = frame.collect_schema().names()
    costed = [s for s in kpi_cost_sources(spec, kpi) if cost_columns(s)[0] in present]
    cost_sums = [pl.col(c).sum().alias(c) for s in costed for c in cost_columns(s)]
    queries = []
    for keys in sets:
        keyed = frame.with_columns([pl.col(k).cast(pl.String) for k in keys if k != BUCKET])
        sizes = aggregate_by(
            keyed,
            keys,
            [
                pl.col("__mature").sum().cast(pl.Int64).alias("n"),
                (~pl.col("__mature")).sum().cast(pl.Int64).alias("pending"),
            ],
        )
        settled = keyed.filter(pl.col("__mature"))
        if kpi.pass_k is not None:
            query = _pass_k_query(keyed, keys, kpi)
        elif kpi.kind == "value":
            value = _float_expr(frame, kpi.value)
            query = _join_on(
                sizes, aggregate_by(settled, keys, [value.alias("value"), *cost_sums]), keys
            )
            # n = 0 is a null value, as for a cohort without rows: TOTAL or COUNT over no
            # units gave 0 ($0.00 on an empty source, under a note saying "null")
            query = query.with_columns(
                pl.when(pl.col("n") > 0).then(pl.col("value")).alias("value")
            )
        else:
            num = _float_expr(frame, kpi.numerator)
            parts = aggregate_by(
                settled,
                keys,
                [
                    num.alias("__num"),
                    _float_expr(frame, kpi.denominator).alias("__den"),
                    *cost_sums,
                ],
            )
            query = _join_on(sizes, parts, keys).with_columns(
                _ratio("__num", "__den").alias("value")
            )
            if kpi.breakdown:
                split = aggregate_by(settled, [*keys, kpi.breakdown], [num.alias("__num")])
                split = _join_on(split, query.drop("__num", "value"), keys)
                split = (
                    split.filter(pl.col("__num") != 0)
                    .with_columns(
                        _ratio("__num", "__den").alias("value"),
                        pl.lit(kpi.breakdown).alias("breakdown"),
                        pl.col(kpi.breakdown).cast(pl.String).alias("breakdown_value"),
                    )
                    .select([*keys, "n", "pending", "value", "breakdown", "breakdown_value"])
                )
                queries.append(_tag(split, kpi, keys))
            query = query.drop("__num", "__den")
        if kpi.pass_k is None:
            query = cost_unknown(query, costed)
        queries.append(
            _tag(
                query.with_columns(
                    pl.lit(None, dtype=pl.String).alias("breakdown"),
                    pl.lit(None, dtype=pl.String).alias("breakdown_value"),
                ),
                kpi,
                keys,
            )
        )
    return queries


def cost_unknown(query: pl.LazyFrame, costed: Sequence[str]) -> pl.LazyFrame:
    """A cost KPI's row whose population has rows that should carry a cost and none with a
    known one (a cohort of an unpriced model, say): value null, `reason` "cost unknown: …",
    never $0. Partly priced rows keep their value (the source-level note says so)."""
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    for source in reversed(costed):
        rows_col, known_col = cost_columns(source)
        unknown = (pl.col(rows_col).fill_null(0) > 0) & (pl.col(known_col).fill_null(0) == 0)
        text = pl.format(
            f"cost unknown: no row of source {source!r} here has a cost "
            f"(rows that should carry one: {{}})",
            pl.col(rows_col),
        )
        reason = pl.when(unknown).then(text).otherwise(reason)
    drop = [c for s in costed for c in cost_columns(s)]
    return (
        query.with_columns(reason.alias("reason"))
        .with_columns(pl.when(pl.col("reason").is_null()).then(pl.col("value")).alias("value"))
        .drop(drop)
    )


def pass_k_probability(n: pl.Expr, c: pl.Expr, k: int, at_least_one: bool) -> pl.Expr:
    """Per task with c successes of n trials (n ≥ k): pass^k = C(c,k)/C(n,k), the chance that k
    trials drawn without replacement all succeed; pass@k = 1 − C(n−c,k)/C(n,k). Computed as the
    product Π_{i<k} (x−i)/(n−i) (x = c or n−c), exact ratios of integers, no factorials."""
    x = (n - c) if at_least_one else c
    product = pl.lit(1.0)
    for i in range(k):  # k factors: a loop over k, vectorised over tasks
        product = product * ((x - i).clip(lower_bound=0).cast(pl.Float64) / (n - i))
    return (1.0 - product) if at_least_one else product


def _pass_k_query(frame: pl.LazyFrame, keys: Sequence[str], kpi: KpiSpec) -> pl.LazyFrame:
    """pass^k / pass@k: per task n trials and c successes, the probability per task, averaged
    over the tasks with at least k settled trials. n = tasks counted; pending = trials left out
    (outcome window open) plus tasks with fewer than k trials."""
    spec = kpi.pass_k
    assert spec is not None
    success = compile_sql(spec.success).fill_null(False)
    per_task = (
        frame.filter(pl.col("__mature"))
        # `--by` the task column itself: each cohort is one task (polars refuses a key twice)
        .group_by(list(dict.fromkeys([*keys, spec.task])))
        .agg(pl.len().alias("__n"), success.sum().alias("__c"))
        .with_columns(pl.col("__n").cast(pl.Int64), pl.col("__c").cast(pl.Int64))
    )
    enough = pl.col("__n") >= spec.k
    probability = pass_k_probability(pl.col("__n"), pl.col("__c"), spec.k, spec.at_least_one)
    aggs = [
        probability.filter(enough).mean().alias("value"),
        enough.sum().cast(pl.Int64).alias("n"),
        (~enough).sum().cast(pl.Int64).alias("__short"),
    ]
    immature = aggregate_by(
        frame, keys, [(~pl.col("__mature")).sum().cast(pl.Int64).alias("__open")]
    )
    result = aggregate_by(per_task, keys, aggs)
    return (
        _join_on(immature, result, keys)
        .with_columns(
            pl.col("n").fill_null(0),
            (pl.col("__open") + pl.col("__short").fill_null(0)).alias("pending"),
        )
        .select([*keys, "n", "pending", "value"])
    )


def _float_expr(frame: pl.LazyFrame, sql: str | None) -> pl.Expr:
    """An aggregate as Float64 (durations as seconds)."""
    expr = compile_sql(sql or "")
    return _as_float(expr, frame.select(expr).collect_schema().dtypes()[0])


def _join_on(left: pl.LazyFrame, right: pl.LazyFrame, keys: Sequence[str]) -> pl.LazyFrame:
    if keys:
        return left.join(right, on=list(keys), how="left", nulls_equal=True)
    return left.join(right, how="cross")


def ratio_or_null(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den, null where den is 0 (a ratio KPI over no denominator has no value); the one
    definition both the polars engine and the SQL engines' finishing step use."""
    return pl.when(den != 0).then(num / den).otherwise(None)


def _ratio(num: str, den: str) -> pl.Expr:
    return ratio_or_null(pl.col(num), pl.col(den))


def _tag(query: pl.LazyFrame, kpi: KpiSpec, keys: Sequence[str]) -> pl.LazyFrame:
    return query.with_columns(
        pl.lit(kpi.name).alias("kpi"),
        pl.lit(list(keys), dtype=pl.List(pl.String)).alias("grouping"),
    )


def evaluate_kpis(
    spec: Spec,
    kpis: Sequence[KpiSpec],
    output: Sequence[str],
    tables: Mapping[str, pl.LazyFrame],
    window: Window,
    options: ComputeOptions,
) -> tuple[pl.DataFrame, list[str]]:
    """The KPI table of `compute` (one row per KPI × cohort × breakdown value, with n and
    pending) over facts tables already built: `compute` calls it on the run's facts, `compare`
    on each arm's, so both report the same value and n for the same slice."""
    sets = grouping_sets(options.by, options.grain, options.cross)
    queries: list[pl.LazyFrame] = []
    notes: list[str] = []
    for kpi in kpis:
        if kpi.kind == "formula":
            continue
        usable, note = usable_sets(kpi, tables[kpi.over].collect_schema().names(), sets)
        if note is not None:
            notes.append(note)
        queries += _kpi_queries(spec, kpi, tables, window, options, usable)
    frames = pl.collect_all(queries) if queries else []
    table, formula_notes = finish_kpis(spec, kpis, output, frames, options, sets)
    return table, notes + formula_notes


def usable_sets(
    kpi: KpiSpec, columns: Collection[str], sets: Sequence[tuple[str, ...]]
) -> tuple[list[tuple[str, ...]], str | None]:
    """The grouping sets a KPI is split by: those whose columns its table has (the bucket
    always), and a note naming the columns it is not split by."""
    usable = [s for s in sets if all(k == BUCKET or k in columns for k in s)]
    if len(usable) == len(sets):
        return usable, None
    skipped = sorted({k for s in sets for k in s if k != BUCKET and k not in columns})
    return usable, (
        f"{kpi.name}: not split by {', '.join(skipped)} (not a column of table {kpi.over!r})"
    )
