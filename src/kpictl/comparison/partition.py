"""An arm split once into groups of units (the report's every value of a --by column against
the rest of the data): each row carries its unit's group code, and an arm that is some of the
groups (a `Part`) gets compare's per-unit statistics from one pass over the whole, grouped by
code, instead of one pass per arm. The numbers are those of the arm's own rows: per-unit sums
add up over groups; a percentile's rows are the whole's rows of the arm's groups, in order."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import polars as pl

from kpictl.comparison.model import Arm, Part
from kpictl.engine.interface import Engine, UnitStats, Window
from kpictl.engine.shapes import KpiShape
from kpictl.spec.model import KpiSpec, Spec

PART = "__kpictl_part"  # a row's group code in a partition's whole tables (null: no group)

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Partition:
    """The whole arm's tables with each row's group code (`PART`; a table without the unit
    key has none and is the same in every part), and each group's code by its values of
    `columns` (as text, null a value). A cohort of some of the columns is the groups with its
    values: one partition by every --by column serves each column's cohorts."""

    whole: Mapping[str, pl.LazyFrame]
    grouped: frozenset[str]  # the tables of `whole` with group codes (holding the unit key)
    columns: tuple[str, ...]
    codes: Mapping[tuple[str | None, ...], int]
    window: Window
    engine: Engine
    memo: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def arms(self, columns: Sequence[str], values: Sequence[str | None]) -> tuple[Arm, Arm]:
        """The units whose `columns` hold `values` (treatment) and all others of the whole
        (control): the arms of the conditions those values and their negation."""
        at = [self.columns.index(c) for c in columns]
        inside = {
            code
            for group, code in self.codes.items()
            if all(group[i] == v for i, v in zip(at, values, strict=True))
        }
        rest = set(self.codes.values()) - inside
        return self._arm("treatment", inside), self._arm("control", rest)

    def _arm(self, label: str, codes: Collection[int]) -> Arm:
        kept = sorted(codes)
        tables = {
            name: frame.filter(pl.col(PART).is_in(kept)).drop(PART)
            if name in self.grouped
            else frame
            for name, frame in self.whole.items()
        }
        part = Part(self.whole, frozenset(kept), self.memo, self.grouped)
        return Arm(label, tables, self.window, self.engine, part)


def partitioned(part: Part | None, table: str) -> bool:
    """`part`'s whole holds group codes in `table` (else the arm's own rows are read)."""
    return part is not None and table in part.grouped


def remembered(part: Part, key: tuple[Any, ...], make: Callable[[], T]) -> T:
    """The whole's answer to `key`, computed once for all the parts of a partition."""
    if key not in part.memo:
        part.memo[key] = make()
    answer: T = part.memo[key]
    return answer


def own_groups(frame: pl.DataFrame, keys: Sequence[str], codes: Collection[int]) -> pl.DataFrame:
    """A frame of sums by (keys, PART), added up per cohort of `keys` over this part's groups:
    numbers summed, flags (every unit …) all true; without keys one row, even of no group.
    In Python: a few rows per group, where a polars query costs more than its rows."""
    schema = {name: dtype for name, dtype in frame.schema.items() if name != PART}
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    if not keys:
        totals[()] = {}
    for row in frame.iter_rows(named=True):
        if row[PART] is None or int(row[PART]) not in codes:
            continue
        total = totals.setdefault(tuple(row[k] for k in keys), {})
        for name, value in row.items():
            if name == PART or name in keys or value is None:
                continue
            if schema[name] == pl.Boolean:
                total[name] = total.get(name, True) and value
            else:
                total[name] = total.get(name, 0) + value
    rows = [
        {
            **dict(zip(keys, cohort, strict=True)),
            **{
                name: total.get(name, True if dtype == pl.Boolean else 0)
                for name, dtype in schema.items()
                if name not in keys
            },
        }
        for cohort, total in totals.items()
    ]
    return pl.DataFrame(rows, schema=schema) if rows else frame.clear().drop(PART)


def part_unit_stats(
    spec: Spec,
    kpi: KpiSpec,
    shape: KpiShape,
    arm: Arm,
    unit: str,
    keys: Sequence[str],
    where: str | None,
) -> UnitStats:
    """`Engine.unit_stats` of an arm: of a part, the whole's by (keys, group) once, then this
    part's groups added up (a unit of the unit table is in one group: its sums are whole);
    else, or for another unit (which may span groups), the arm's own."""
    part = arm.part
    # the groups are of the unit table's units: another unit (user_id) may span groups
    if part is None or not partitioned(part, kpi.over) or unit != spec.require_primary_table().key:
        return arm.engine.unit_stats(spec, kpi, shape, arm.tables, arm.window, unit, keys, where)
    whole = remembered(
        part,
        ("unit_stats", kpi.name, unit, tuple(keys), where),
        lambda: arm.engine.unit_stats(
            spec, kpi, shape, part.whole, arm.window, unit, [*keys, PART], where
        ),
    )
    return UnitStats(
        own_groups(whole.sums, keys, part.codes), own_groups(whole.pending, keys, part.codes)
    )
