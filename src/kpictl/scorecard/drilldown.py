"""The report's drill-down: each failure type's latest conversations, with their attributes,
costs and first user message, and the unit-table columns it reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from kpictl.engine.costs import (
    Slice,
)
from kpictl.engine.costs import source_rows as _source_rows
from kpictl.engine.costs import with_literals as _with_literals
from kpictl.engine.window import names_in
from kpictl.errors import InputDataError
from kpictl.scorecard.lineage import (
    proportion_condition,
)
from kpictl.scorecard.markdown import code_span, redactor
from kpictl.scorecard.model import (
    ReportOptions,
)
from kpictl.scorecard.tiles import AGENT_ALONE
from kpictl.spec.model import KpiSpec, RollupEntry, Spec
from kpictl.sql.expr import compile_sql


def _failure_types(spec: Spec) -> list[tuple[KpiSpec, str, str]]:
    """(KPI, failing-row condition, label) for every share-of-conversations KPI."""
    types = []
    for kpi in spec.kpis.values():
        condition = proportion_condition(spec, kpi)
        if condition is None:
            continue
        if kpi.direction == "higher":
            types.append(
                (kpi, f"NOT COALESCE(({condition}), FALSE)", f"not {code_span(condition)}")
            )
        else:
            types.append((kpi, f"COALESCE(({condition}), FALSE)", code_span(condition)))
    return types


def drilldown(
    spec: Spec,
    piece: Slice,
    facts: pl.DataFrame,
    costs: pl.DataFrame | None,
    options: ReportOptions,
    skip: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], bool]:
    """A few failing conversations per failure type (most recent first), with cohort values,
    cost and the first user message. Unless options.redact is False, every value shown (ids,
    cohort and breakdown values, the message) is redacted (kpictl.redact)."""
    table = spec.require_primary_table()
    key = table.key or "conversation_id"
    cohort_dims = [
        d for d in dict.fromkeys([*spec.defaults.cohorts, *options.by]) if d in facts.columns
    ]
    # attributes not in the facts (no KPI reads them): looked up for the rows shown only
    built = built_columns(spec, piece)
    later = [
        d for d in cohort_dims if d in table.attributes and built is not None and d not in built
    ]
    shown = redactor(options.redact)
    groups: list[dict[str, Any]] = []
    wanted: set[str] = set()
    for kpi, condition, label in _failure_types(spec):
        if kpi.name in skip:
            continue
        # only the columns read here: the conditions, what a row shows, the breakdown
        sqls = [kpi.where, kpi.mature, condition]
        read = {key, *([table.time] if table.time else []), *cohort_dims, *names_in(sqls)}
        read |= {kpi.breakdown} if kpi.breakdown else set()
        narrow = facts.select(c for c in facts.columns if c in read)
        frame, names = _with_literals(spec, narrow.lazy(), piece.window, sqls)
        for sql in (kpi.where, kpi.mature):  # the rows the KPI counts
            if sql:
                frame = frame.filter(compile_sql(sql).fill_null(False))
        counted = frame.collect()
        failing = counted.filter(compile_sql(condition)).drop(names)
        settled = counted.drop(names)
        # (breakdown column, value), None for the whole failing set
        parts: list[tuple[tuple[str, object] | None, pl.DataFrame]] = [(None, failing)]
        if kpi.breakdown and kpi.breakdown in failing.columns:
            values = failing.get_column(kpi.breakdown).cast(pl.String)
            keys = sorted(values.drop_nulls().unique().to_list())
            parts = [((kpi.breakdown, shown(v)), failing.filter(values == v)) for v in keys]
            if values.null_count():
                parts.append(((kpi.breakdown, None), failing.filter(values.is_null())))
        for which, part in parts:
            order = [c for c in (table.time, key) if c and c in part.columns]
            fresh = part.filter(~pl.col(key).is_in(sorted(wanted)))  # each conversation once
            chosen = _latest(fresh, order, options.drilldown)
            wanted.update(chosen.get_column(key).to_list())
            groups.append(
                {
                    "kpi": kpi.name,
                    "label": label,
                    "part": which,
                    "count": part.height,
                    "of": settled.height,
                    "rows": chosen.select(
                        [key, *([table.time] if table.time else [])]
                        + [d for d in cohort_dims if d not in later]
                    ).to_dicts(),
                }
            )
    texts, has_text = _first_user_messages(piece, key, sorted(wanted))
    attributes = _shown_attributes(spec, piece, sorted(wanted), later)
    cost_of = {}
    if costs is not None and wanted:  # only the conversations shown, not every one
        shown_costs = costs.filter(pl.col(key).is_in(sorted(wanted)))
        cost_of = dict(
            zip(
                shown_costs.get_column(key).to_list(),
                shown_costs.get_column("total_cost").to_list(),
                strict=True,
            )
        )
    for group in groups:
        for row in group["rows"]:
            row.update(attributes.get(row[key], dict.fromkeys(later)))
            row["__cohort"] = " · ".join(f"{d}={shown(row[d])}" for d in cohort_dims)
            row["__cost"] = cost_of.get(row[key])
            row["__text"] = shown(texts.get(row[key]))
            row[key] = shown(row[key])  # an id may be an e-mail address or a phone number
    return groups, has_text


def report_columns(
    spec: Spec, options: ReportOptions, entries: Sequence[tuple[RollupEntry, pl.DataType]]
) -> set[str]:
    """The unit table's columns the report reads from an arm's facts: the key and time, the
    costs (`entries`), `tiles.agent_alone`'s, the cohorts (`--by`, the spec's cohorts) and what the
    drill-down tests and shows."""
    table = spec.require_primary_table()
    read = {
        *(c for c in (table.key, table.time) if c),
        *(e.name for e, _ in entries),
        *AGENT_ALONE,
        *options.by,
        *spec.defaults.cohorts,
    }
    for kpi, condition, _ in _failure_types(spec):
        read |= set(names_in([kpi.where, kpi.mature, condition]))
        read |= {kpi.breakdown} if kpi.breakdown else set()
    return read


def built_columns(spec: Spec, piece: Slice) -> set[str] | None:
    """The unit table's columns the slice's facts were built with (None: every column)."""
    if piece.facts is None:
        return None
    read = piece.facts.reads.get(spec.require_primary_table().name)
    return None if read is None else set(read)


def _shown_attributes(
    spec: Spec, piece: Slice, ids: Sequence[Any], names: Sequence[str]
) -> dict[Any, dict[str, Any]]:
    """Per unit of `ids`, its value of each attribute of `names`, as the facts would hold it:
    the non-null value of its rows in the first rollup source (null when none), one per unit
    (else the facts' error: an attribute varies within a key)."""
    table = spec.require_primary_table()
    key = table.key or "conversation_id"
    if not ids or not names:
        return {}
    rows = _source_rows(piece, table.rollup_sources()[0])
    if rows is None:
        return {}
    schema = rows.collect_schema()
    present = [n for n in names if n in schema]
    found = (
        rows.filter(pl.col(key).is_in(list(ids)))
        .group_by(key)
        .agg(
            *[pl.col(n).drop_nulls().first() for n in present],
            *[pl.col(n).drop_nulls().n_unique().alias(f"__kpictl_n_{n}") for n in present],
        )
        .sort(key)
        .collect()
    )
    for name in present:
        varying = found.filter(pl.col(f"__kpictl_n_{name}") > 1)
        if varying.height:
            raise InputDataError(
                f"tables.{table.name}.attributes: {name!r} varies within a {key} (e.g. "
                f"{varying.item(0, key)!r}); an attribute must be constant per key — "
                "aggregate it in `rollup` instead"
            )
    values = {row[key]: row for row in found.select(key, *present).iter_rows(named=True)}
    return {unit: {n: values.get(unit, {}).get(n) for n in names} for unit in ids}


def _latest(frame: pl.DataFrame, order: Sequence[str], n: int) -> pl.DataFrame:
    """The first `n` rows of `frame` sorted by `order` (time descending, then the unit key
    ascending). The key is unique in the unit table, so without nulls in those columns the
    order is total and the `n` rows are those of `top_k` (no sort of every row), sorted."""
    descending = [True, False][: len(order)]
    if len(order) == 2 and n > 0 and not any(frame.get_column(c).has_nulls() for c in order):
        top = frame.top_k(n, by=list(order), reverse=[False, True])
        return top.sort(list(order), descending=descending)
    return frame.sort(list(order), descending=descending).head(n)


def _first_user_messages(piece: Slice, key: str, ids: Sequence[str]) -> tuple[dict[str, str], bool]:
    rows = _source_rows(piece, "events")
    if rows is None:
        return {}, False
    schema = rows.collect_schema()
    if "text" not in schema or key not in schema or "role" not in schema:
        return {}, False
    has_text = bool(rows.select(pl.col("text").is_not_null().any()).collect().item())
    if not ids:
        return {}, has_text
    users = rows.filter((pl.col("role") == "user") & pl.col("text").is_not_null())
    if "event" in schema:
        users = users.filter(pl.col("event") == "message")
    first = (
        users.filter(pl.col(key).is_in(list(ids)))
        .sort([key, "ts"])
        .group_by(key, maintain_order=True)
        .agg(pl.col("text").first())
        .collect()
    )
    return dict(
        zip(first.get_column(key).to_list(), first.get_column("text").to_list(), strict=True)
    ), has_text
