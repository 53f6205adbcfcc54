"""Rules of the `fairness:` section: a group column and the largest gap allowed per KPI."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from kpictl.errors import did_you_mean
from kpictl.spec.model import (
    FAIRNESS_KEYS,
    FairnessSpec,
    KpiSpec,
    TableSpec,
    parse_threshold,
    primary_table,
)
from kpictl.spec.problems import Problems, section_mapping
from kpictl.spec.yamlmarks import (
    MarkedDict,
)


def build_fairness(
    problems: Problems,
    data: MarkedDict,
    kpis: Mapping[str, KpiSpec],
    tables: Mapping[str, TableSpec],
    column_types: Mapping[str, dict[str, pl.DataType]],
) -> tuple[FairnessSpec, ...]:
    """`fairness: {column: {kpi: {max_gap: 5pp}}}`: the column must be one of the unit
    table's, the KPI declared (not a formula), max_gap a pp or absolute amount."""
    node = section_mapping(problems, data, "fairness", "fairness")
    if node is None:
        return ()
    unit_table = primary_table(tables)
    columns = column_types.get(unit_table.name, {}) if unit_table else {}
    found: list[FairnessSpec] = []
    for column, watched in node.items():
        path = f"fairness.{column}"
        if column not in columns:
            problems.add(
                node.line_of(column),
                path,
                f"not a column of the unit table{did_you_mean(str(column), columns)}",
            )
            continue
        if not isinstance(watched, MarkedDict):
            problems.add(node.line_of(column), path, "expected {kpi: {max_gap: 5pp}}")
            continue
        for name, body in watched.items():
            kpath, line = f"{path}.{name}", watched.line_of(name)
            kpi = kpis.get(name)
            if kpi is None:
                problems.add(line, kpath, f"no KPI named {name!r}{did_you_mean(str(name), kpis)}")
                continue
            if not isinstance(body, MarkedDict) or "max_gap" not in body:
                problems.add(line, kpath, "expected {max_gap: 5pp} (or an absolute amount)")
                continue
            problems.unknown_keys(body, FAIRNESS_KEYS, kpath)
            gline = body.line_of("max_gap")
            try:
                gap = parse_threshold("warning", body["max_gap"], kpi.format)
            except ValueError as exc:
                problems.add(gline, f"{kpath}.max_gap", f"{exc}; expected e.g. 5pp or 0.3")
                continue
            if gap.kind not in ("pp", "absolute"):
                problems.add(
                    gline,
                    f"{kpath}.max_gap",
                    f"{body['max_gap']!r}: a gap is a "
                    "difference between groups: write pp (5pp) or an absolute amount",
                )
                continue
            found.append(FairnessSpec(str(column), name, gap.amount, str(body["max_gap"]), line))
    return tuple(found)
