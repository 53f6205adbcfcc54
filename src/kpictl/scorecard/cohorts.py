"""The report's cohorts: each value of `--by` against the rest of the data, as conditions
compare can read."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import polars as pl

from kpictl.comparison import (
    OBSERVATIONAL_ARMS_CAVEAT,
    CompareOptions,
    Design,
    compare_arms,
    condition_split,
)
from kpictl.engine.costs import (
    Slice,
)
from kpictl.engine.datacheck import check_data
from kpictl.engine.facts import with_cost_counts
from kpictl.engine.interface import cohort_sets
from kpictl.engine.polarsengine import default_engine
from kpictl.scorecard.markdown import redactor
from kpictl.scorecard.model import (
    INSUFFICIENT,
    ReportOptions,
    adjust_p_values,
)
from kpictl.spec.model import BaselineSpec, Spec

MAX_COHORT_VALUES = 12
MAX_PARTITION_GROUPS = 2000  # combinations of all --by columns' values read as one partition


_COHORT_BASELINE = "__kpictl_rest"


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quote_identifier(name: str) -> str:
    return name if _IDENTIFIER.match(name) else '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _cohort_conditions(group: Sequence[str], values: Sequence[str | None]) -> tuple[str, str]:
    """SQL conditions for the rows of one cohort (a value per column of `group`; null is a
    value) and for the rest."""
    if len(group) == 1:
        column, value = _quote_identifier(group[0]), values[0]
        if value is None:
            return f"{column} IS NULL", f"{column} IS NOT NULL"
        return (
            f"CAST({column} AS VARCHAR) = {_quote_literal(value)}",
            f"COALESCE(CAST({column} AS VARCHAR) <> {_quote_literal(value)}, TRUE)",
        )
    parts = [
        f"{_quote_identifier(d)} IS NULL"
        if v is None
        else f"COALESCE(CAST({_quote_identifier(d)} AS VARCHAR) = {_quote_literal(v)}, FALSE)"
        for d, v in zip(group, values, strict=True)
    ]
    inside = " AND ".join(parts)
    return inside, f"NOT ({inside})"


def cohort_comparisons(
    spec: Spec, piece: Slice, facts: pl.DataFrame, by: Sequence[str], options: ReportOptions
) -> tuple[list[dict[str, Any]], list[str], int]:
    """Each cohort value against the rest of the current arm, for every KPI; p-values adjusted
    (the spec's correction) over all these tests. Returns (significant rows, notes, tests).

    The cohort and the rest are two arms of the slice's facts (`Slice.facts`, built once for
    the report), compared as a holdout's conditions are (`compare_arms`)."""
    cells: list[dict[str, Any]] = []
    notes: list[str] = []
    correction = spec.defaults.correction
    built = piece.facts or default_engine().build_facts(
        spec, piece.sources, piece.window, in_memory=True
    )
    kpis = list(spec.kpis.values())
    tables = with_cost_counts(spec, piece.sources, piece.window, built.tables, kpis)
    check = check_data(spec, piece.sources, kpis)
    arm_options = CompareOptions(
        since=piece.window.since,
        until=piece.window.until,
        as_of=piece.window.as_of,
        alpha=options.significance,
        correction="none",
    )
    design = Design(
        "conditions",
        "observational comparison of two concurrent conditions (not randomized)",
        _COHORT_BASELINE,
        randomized=False,
        caveat=OBSERVATIONAL_ARMS_CAVEAT,
    )
    split = condition_split(spec, tables, piece.window, built.engine)  # facts collected once
    sets = cohort_sets(by, options.cross)[1:]
    # every cohort's arms from one partition by all the columns (each arm's statistics read
    # once for all), unless their combinations are too many to add up per arm
    columns = list(dict.fromkeys(c for group in sets for c in group))
    every = split.partition(columns, piece.where, MAX_PARTITION_GROUPS)
    for group in sets:
        dim = " × ".join(group)  # a cross-tab (--by a,b): each combination against the rest
        combos = facts.select(pl.col(d).cast(pl.String) for d in group).unique().rows()
        ordered = sorted(combos, key=lambda r: tuple((v is None, v or "") for v in r))
        if len(ordered) > MAX_COHORT_VALUES:
            notes.append(
                f"--by {','.join(group)}: {len(ordered)} values; only the first "
                f"{MAX_COHORT_VALUES} (in order) are compared with the rest"
            )
            ordered = ordered[:MAX_COHORT_VALUES]
        groups = every or split.partition(group, piece.where)
        left_out = {"insufficient": 0, "untested": 0}  # cohort × KPI pairs without a test
        pairs = 0
        for combo in ordered:
            inside, outside = _cohort_conditions(group, combo)
            value = combo[0] if len(group) == 1 else " × ".join(str(v) for v in combo)
            if piece.where:
                inside, outside = f"({piece.where}) AND {inside}", f"({piece.where}) AND {outside}"
            rest = BaselineSpec(_COHORT_BASELINE, "holdout", control=outside, treatment=inside)
            cohort, others = (
                groups.arms(group, combo) if groups is not None else split.arms(inside, outside)
            )
            result = compare_arms(
                spec, cohort, others, design, rest, arm_options, check, with_fairness=False
            )
            for row in result.table.filter(pl.col("grouping").list.len() == 0).iter_rows(
                named=True
            ):
                pairs += 1
                if row["status"] == INSUFFICIENT or row["p_value"] is None:
                    left_out["insufficient" if row["status"] == INSUFFICIENT else "untested"] += 1
                    continue
                shown = redactor(options.redact)(value)
                cells.append({**row, "dimension": dim, "value": shown})
        if any(left_out.values()):  # said, not left to be read from a small test count
            said = [
                f"{left_out['insufficient']} with insufficient data (fewer units than the "
                "KPI's min_sample in the cohort or the rest, or no units)"
                if left_out["insufficient"]
                else "",
                f"{left_out['untested']} without a test (a KPI compare cannot test, or unavailable)"
                if left_out["untested"]
                else "",
            ]
            notes.append(
                f"--by {','.join(group)}: {sum(left_out.values())} of "
                f"{pairs} cohort × KPI comparisons not tested: " + "; ".join(x for x in said if x)
            )
    adjusted = adjust_p_values([c["p_value"] for c in cells], correction)
    significant = []
    for cell, p_adj in zip(cells, adjusted, strict=True):
        if p_adj is not None and p_adj < options.significance:
            significant.append({**cell, "p_adjusted": p_adj})
    order = {name: i for i, name in enumerate(spec.kpis)}
    significant.sort(
        key=lambda c: (order[c["kpi"]], c["dimension"], c["value"] is None, str(c["value"]))
    )
    return significant, notes, len(cells)
