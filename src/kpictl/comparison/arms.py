"""The two arms of a comparison: restrictions of facts already built (a holdout's two
conditions, an earlier or pinned period, another dataset, or the current arm against target
values), the columns they read, their checks before a test (columns, data), and what is said
about them after (an empty arm, the sample-ratio mismatch of a randomized holdout)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from kpictl import stats
from kpictl.comparison.model import OBSERVATIONAL_ARMS_CAVEAT, Arm, CompareOptions, Design
from kpictl.comparison.partition import PART, Partition
from kpictl.engine.datacheck import check_data, require_columns
from kpictl.engine.facts import usable, with_cost_counts
from kpictl.engine.findings import DataCheck
from kpictl.engine.interface import ComputeOptions, Engine, FactSet, Window
from kpictl.engine.polarsengine import PolarsEngine
from kpictl.engine.selection import read_names, require_cohorts, selected_kpis
from kpictl.engine.window import literal_columns, names_in, resolve_window, window_text
from kpictl.errors import UsageError, did_you_mean
from kpictl.io.read import Sources
from kpictl.io.schema import BUILTIN_COLUMNS
from kpictl.spec.model import BaselineSpec, KpiSpec, Spec, TableSpec
from kpictl.sql.expr import compile_sql


def _time_column(spec: Spec, table: TableSpec) -> str | None:
    if table.is_rollup:
        return table.time
    return spec.tables[table.lookup].time if table.lookup else None


def _in_window(
    spec: Spec, table: TableSpec, since: dt.datetime | None, until: dt.datetime | None
) -> list[pl.Expr]:
    """The bounds of a table's rows in [since, until), on its time (a row table: its unit's)."""
    time_col = _time_column(spec, table)
    if time_col is None:
        return []
    return [
        *([pl.col(time_col) >= since] if since is not None else []),
        *([pl.col(time_col) < until] if until is not None else []),
    ]


def _restrict(
    spec: Spec,
    tables: Mapping[str, pl.LazyFrame],
    window: Window,
    since: dt.datetime | None,
    until: dt.datetime | None,
    condition: str | None,
    carriers: Collection[str] = (),
) -> dict[str, pl.LazyFrame]:
    """Tables limited to units whose time is in [since, until) and that meet `condition`.

    `carriers` (`condition_carriers`): the tables whose own rows hold the unit's values of
    every column the condition reads; the condition filters them directly, the same rows in
    the same order as the semi-join on the unit key that restricts the others."""
    parent = spec.require_primary_table()
    key = parent.key
    assert key is not None
    keys: pl.LazyFrame | None = None
    literals: list[pl.Expr] = []
    if condition is not None:
        literals = literal_columns(spec, window, names_in([condition]))
        facts = tables[parent.name].with_columns(literals) if literals else tables[parent.name]
        keys = facts.filter(compile_sql(condition)).select(key)
    restricted: dict[str, pl.LazyFrame] = {}
    for name, frame in tables.items():
        for bound in _in_window(spec, spec.tables[name], since, until):
            frame = frame.filter(bound)
        if condition is not None and name in carriers:
            meets = compile_sql(condition) & pl.col(key).is_not_null()
            frame = (
                frame.with_columns(literals)
                .filter(meets)
                .drop([e.meta.output_name() for e in literals])
                if literals
                else frame.filter(meets)
            )
        elif keys is not None and key in frame.collect_schema():
            frame = frame.join(keys, on=key, how="semi")
        restricted[name] = frame
    return restricted


def condition_carriers(spec: Spec, facts: FactSet, conditions: Sequence[str]) -> set[str]:
    """The tables of `facts` whose rows hold every column `conditions` read with the unit's
    value, so that a condition filters their rows as the semi-join on the unit key would: the
    unit table (a rollup: one row per key), and each row table that looks it up with those
    columns read (`read_columns`: not the empty placeholders of columns a run does not read).
    A column named like a param or built-in the condition reads is not filtered there."""
    parent = spec.require_primary_table()
    names = set(names_in(list(conditions)))
    literal = {n for n in names if n in spec.params or n in BUILTIN_COLUMNS}
    columns = names - literal
    carried = {*parent.attributes, *([parent.time] if parent.time else [])}
    carriers: set[str] = set()
    for name, frame in facts.tables.items():
        table = spec.tables[name]
        schema = frame.collect_schema()
        if literal & set(schema) or not columns <= set(schema):
            continue
        read = facts.reads.get(name)
        unit_table = name == parent.name and table.is_rollup
        looked_up = (
            table.lookup == parent.name
            and columns <= carried
            and (read is None or columns <= set(read))
        )
        if unit_table or looked_up:
            carriers.add(name)
    return carriers


def condition_arms(
    spec: Spec,
    tables: Mapping[str, pl.LazyFrame],
    window: Window,
    engine: Engine,
    treatment: str,
    control: str,
    carriers: Collection[str] = (),
) -> tuple[Arm, Arm]:
    """Two arms of facts already built: the units in `window` meeting `treatment`, and those
    meeting `control` (a holdout's conditions; the report's cohort and the rest); `carriers`:
    the tables the conditions filter directly (`condition_carriers`)."""
    return (
        Arm(
            "treatment",
            _restrict(spec, tables, window, window.since, window.until, treatment, carriers),
            window,
            engine,
        ),
        Arm(
            "control",
            _restrict(spec, tables, window, window.since, window.until, control, carriers),
            window,
            engine,
        ),
    )


@dataclass(frozen=True)
class ConditionSplit:
    """Facts collected once, to be split into two arms by many pairs of conditions (the
    report's every cohort against the rest). An arm's rows are a mask over the same frames: the
    unit table's rows meeting the condition, another table's rows whose unit does (through the
    row of the unit table each row belongs to, found once by a join) — the rows `_restrict`'s
    semi-joins keep, in the same order, without two joins per arm. Built by `condition_split`."""

    spec: Spec
    tables: Mapping[str, pl.DataFrame]
    window: Window
    engine: Engine
    # per table holding the unit key (but the unit table): each row's row in the unit table
    # (null: no unit); None when the unit table's keys are not unique (then semi-joins)
    positions: Mapping[str, pl.Series] | None

    def arms(self, treatment: str, control: str) -> tuple[Arm, Arm]:
        """The arms of `condition_arms(…, treatment, control)` over these facts."""
        if self.positions is None:
            lazy = {name: frame.lazy() for name, frame in self.tables.items()}
            return condition_arms(self.spec, lazy, self.window, self.engine, treatment, control)
        return (
            Arm("treatment", self._masked(treatment), self.window, self.engine),
            Arm("control", self._masked(control), self.window, self.engine),
        )

    def _masked(self, condition: str) -> dict[str, pl.LazyFrame]:
        spec, window = self.spec, self.window
        assert self.positions is not None
        parent = spec.require_primary_table()
        key = parent.key
        assert key is not None
        literals = literal_columns(spec, window, names_in([condition]))
        units = self.tables[parent.name].lazy()
        meets = (
            (units.with_columns(literals) if literals else units)
            .select((compile_sql(condition) & pl.col(key).is_not_null()).fill_null(False))
            .collect()
            .to_series()
        )
        restricted: dict[str, pl.LazyFrame] = {}
        for name, frame in self.tables.items():
            keep = [*_in_window(spec, spec.tables[name], window.since, window.until)]
            if name == parent.name:
                keep.append(pl.lit(meets))
            elif name in self.positions:
                keep.append(pl.lit(meets.gather(self.positions[name]).fill_null(False)))
            restricted[name] = frame.lazy().filter(*keep) if keep else frame.lazy()
        return restricted

    def partition(
        self, columns: Sequence[str], where: str | None, max_groups: int | None = None
    ) -> Partition | None:
        """The units meeting `where` grouped by their values of `columns` (as text; null a
        value), for the arms of each cohort of some of the columns against the rest
        (`Partition.arms`: the arms of `arms(its condition, its negation)`, their statistics
        read once for all cohorts). None when the unit table's keys are not unique (then
        `arms`), or when the units hold more than `max_groups` combinations."""
        if self.positions is None:
            return None
        spec, window = self.spec, self.window
        parent = spec.require_primary_table()
        key = parent.key
        assert key is not None
        meets = pl.col(key).is_not_null()
        if where is not None:
            meets = meets & compile_sql(where).fill_null(False)
        literals = literal_columns(spec, window, names_in([where] if where else []))
        units = self.tables[parent.name]
        labels = (units.with_columns(literals) if literals else units).select(
            meets.alias("__meets"), *[pl.col(c).cast(pl.String) for c in columns]
        )
        groups = (
            labels.filter("__meets")
            .select(columns)
            .unique(maintain_order=True)
            .with_row_index("__group")
        )
        if max_groups is not None and groups.height > max_groups:
            return None
        code = (
            labels.join(
                groups, on=list(columns), how="left", nulls_equal=True, maintain_order="left"
            )
            .select(pl.when("__meets").then(pl.col("__group").cast(pl.UInt32)))
            .to_series()
            .alias(PART)
        )
        whole: dict[str, pl.LazyFrame] = {}
        for name, frame in self.tables.items():
            keep = [*_in_window(spec, spec.tables[name], window.since, window.until)]
            lazy = frame.lazy()
            if name == parent.name:
                lazy = lazy.with_columns(code)
            elif name in self.positions:
                lazy = lazy.with_columns(code.gather(self.positions[name]))
            if name == parent.name or name in self.positions:
                keep.append(pl.col(PART).is_not_null())
            whole[name] = lazy.filter(*keep) if keep else lazy
        grouped = frozenset([parent.name, *self.positions])
        by_values = {
            tuple(row[:-1]): row[-1] for row in groups.select([*columns, "__group"]).rows()
        }
        return Partition(whole, grouped, tuple(columns), by_values, window, self.engine)


def condition_split(
    spec: Spec, tables: Mapping[str, pl.LazyFrame], window: Window, engine: Engine
) -> ConditionSplit:
    """`tables` collected once, with each row's unit found once, for `ConditionSplit.arms`."""
    frames = {name: frame.collect() for name, frame in tables.items()}
    parent = spec.require_primary_table()
    key = parent.key
    assert key is not None
    units = frames[parent.name]
    positions: dict[str, pl.Series] | None = None
    if units.select(pl.col(key).n_unique()).item() == units.height:
        rows = units.select(key).with_row_index("__unit_row")
        positions = {
            name: frame.select(key)
            .join(rows, on=key, how="left", maintain_order="left")
            .get_column("__unit_row")
            for name, frame in frames.items()
            if name != parent.name and key in frame.columns
        }
    return ConditionSplit(spec, frames, window, engine, positions)


def _baseline_spec(spec: Spec, name: str | None) -> BaselineSpec:
    chosen = name or spec.defaults.baseline
    if chosen is None:
        raise UsageError(
            "no baseline: pass --baseline NAME|PATH or set defaults.baseline "
            f"(declared: {', '.join(spec.baselines) or 'none'})"
        )
    if chosen not in spec.baselines:
        raise UsageError(
            f"--baseline {chosen}: the spec declares no such baseline"
            f"{did_you_mean(chosen, spec.baselines)}; declared: "
            f"{', '.join(spec.baselines) or 'none'} (or pass a path to a dataset)"
        )
    return spec.baselines[chosen]


def read_columns(
    spec: Spec, options: CompareOptions, window: Window, base: BaselineSpec | None
) -> dict[str, set[str]]:
    """Per table, the columns this comparison reads (see engine.read_names): its KPIs and
    their formulas' components, --by, --where, the unit, the arms' conditions, and the times
    when a window or a period baseline bounds the arms. The rest is neither rolled up nor
    looked up."""
    kpis, _ = selected_kpis(spec, options.kpis)
    unit = options.unit or (base.unit if base and base.unit else None)
    period = base is not None and base.kind in ("previous", "between")
    bounded = window.since is not None or window.until is not None or period
    reads = read_names(
        spec,
        kpis,
        ComputeOptions(by=options.by, where=options.where, cross=options.cross),
        with_time=bounded,
        extra=[c for c in (unit, options.cuped) if c is not None],
    )
    conditions = names_in([base.control, base.treatment] if base else [])
    primary = spec.require_primary_table()
    carried = {*primary.attributes, *([primary.time] if primary.time else [])}
    for name, table in spec.tables.items():
        # a row table that looks the unit table up anyway takes the conditions' columns with
        # it, and each arm is a filter of its rows (`condition_carriers`); one that looks
        # nothing up keeps its semi-joins (a lookup join costs what they cost)
        if table.is_rollup or (table.lookup == primary.name and reads[name] & carried):
            reads[name] |= set(conditions)
    return reads


def build_arms(
    spec: Spec,
    sources: Sources,
    options: CompareOptions,
    baseline_sources: Sources | None = None,
    baseline_label: str | None = None,
    *,
    facts: FactSet | None = None,
    baseline_facts: FactSet | None = None,
    engine: Engine | None = None,
) -> tuple[Arm, Arm | None, Design, BaselineSpec | None]:
    """The current and baseline arms (baseline None for `values`), and the design: both arms
    restrict the same facts (`facts` when they serve this comparison, else built here by
    `engine`, polars by default), except against another dataset, whose facts are its own
    (built by the same engine)."""
    window = resolve_window(
        spec, sources, ComputeOptions(since=options.since, until=options.until, as_of=options.as_of)
    )
    # the tables of the compared KPIs (formulas' components too) and the unit table
    kpi_tables = sorted(
        {k.over for k in selected_kpis(spec, options.kpis)[0] if k.kind != "formula"}
        | {spec.require_primary_table().name}
    )
    base = None if baseline_sources is not None else _baseline_spec(spec, options.baseline)
    reads = read_columns(spec, options, window, base)
    if facts is None or not usable(spec, facts, window, kpi_tables, reads):
        facts = (engine or PolarsEngine()).build_facts(
            spec, sources, window, kpi_tables, reads, in_memory=True
        )
    engine = facts.engine
    tables = with_cost_counts(spec, sources, window, facts.tables, list(spec.kpis.values()))

    def arm(label: str, frames: Mapping[str, pl.LazyFrame], arm_window: Window) -> Arm:
        return Arm(label, frames, arm_window, engine)

    if baseline_sources is not None:
        base_window = resolve_window(
            spec,
            baseline_sources,
            ComputeOptions(since=options.since, until=options.until, as_of=None),
        )
        base_reads = read_columns(spec, options, base_window, None)
        base_facts = baseline_facts
        if base_facts is None or not usable(spec, base_facts, base_window, kpi_tables, base_reads):
            base_facts = engine.build_facts(
                spec, baseline_sources, base_window, kpi_tables, base_reads, in_memory=True
            )
        base_tables = with_cost_counts(
            spec, baseline_sources, base_window, base_facts.tables, list(spec.kpis.values())
        )
        design = Design(
            "dataset",
            "observational comparison of two datasets",
            baseline_label or "dataset",
            randomized=False,
            caveat="the datasets differ in time and traffic mix: differences are "
            "not causal effects",
        )
        current = arm(
            "current", _restrict(spec, tables, window, window.since, window.until, None), window
        )
        baseline = arm(
            "baseline",
            _restrict(spec, base_tables, base_window, base_window.since, base_window.until, None),
            base_window,
        )
        return current, baseline, design, None
    assert base is not None
    if base.kind == "holdout":
        design = (
            Design("holdout", "randomized holdout (concurrent control)", base.name, randomized=True)
            if base.design == "randomized"
            else Design(
                "conditions",
                "observational comparison of two concurrent conditions (not randomized)",
                base.name,
                randomized=False,
                caveat=OBSERVATIONAL_ARMS_CAVEAT,
            )
        )
        assert base.treatment is not None and base.control is not None
        carriers = condition_carriers(spec, facts, [base.treatment, base.control])
        current, baseline = condition_arms(
            spec, tables, window, engine, base.treatment, base.control, carriers
        )
        return current, baseline, design, base
    if base.kind == "values":
        design = Design(
            "values",
            "current period against target values",
            base.name,
            randomized=False,
            caveat="targets are constants: the test asks whether "
            "the current value differs from the target",
        )
        current = arm(
            "current", _restrict(spec, tables, window, window.since, window.until, None), window
        )
        return current, None, design, base
    caveat = (
        "periods differ in time (seasonality, traffic mix, prices): the change is "
        "observational, not a causal effect; a concurrent holdout is the remedy"
    )
    if base.kind == "previous":
        assert base.previous is not None
        # Without --since the current period is the declared length ending at --until (or
        # as-of); the baseline is the declared length just before the current period.
        start = window.since or ((window.until or window.as_of) - base.previous)
        current_window = replace(window, since=start, until=window.until)
        base_window = replace(window, since=start - base.previous, until=start)
        design = Design(
            "previous",
            "observational period comparison (time-confounded)",
            base.name,
            randomized=False,
            caveat=caveat,
        )
    else:
        assert base.between is not None
        base_window = replace(window, since=base.between[0], until=base.between[1])
        start = window.since or base.between[1]
        current_window = replace(window, since=start)
        design = Design(
            "between",
            "observational period comparison (time-confounded)",
            base.name,
            randomized=False,
            caveat=caveat,
        )
    current = arm(
        "current",
        _restrict(spec, tables, window, current_window.since, current_window.until, None),
        current_window,
    )
    baseline = arm(
        "baseline",
        _restrict(spec, tables, window, base_window.since, base_window.until, None),
        base_window,
    )
    return current, baseline, design, base


def require_arm_columns(
    spec: Spec,
    sources: Sources,
    kpis: Sequence[KpiSpec],
    options: CompareOptions,
    baseline_sources: Sources | None,
) -> None:
    """A baseline condition or --by column no row holds is an error, not two empty arms."""
    name = options.baseline or spec.defaults.baseline
    base = spec.baselines.get(name or "") if baseline_sources is None else None
    if base is not None and base.kind == "holdout":
        names = names_in([base.control, base.treatment])
        where = f"{spec.path}:{base.line}" if base.line is not None else str(spec.path)
        require_columns(
            spec, sources, spec.require_primary_table(), names, f"{where}: baselines.{base.name}"
        )
    for data in (sources, baseline_sources):
        if data is not None:
            require_cohorts(spec, data, kpis, options.by)


def data_check(
    spec: Spec,
    sources: Sources,
    kpis: Sequence[KpiSpec],
    options: CompareOptions,
    baseline_sources: Sources | None = None,
) -> DataCheck:
    """The data check of both arms' data: literals (the baseline's conditions too) and the
    KPIs a column missing from either dataset makes unavailable."""
    named = (
        [] if baseline_sources is not None else [options.baseline or spec.defaults.baseline or ""]
    )
    check = check_data(spec, sources, kpis, [n for n in named if n], options.where)
    if baseline_sources is None:
        return check
    other = check_data(spec, baseline_sources, kpis, (), options.where)
    missing = dict(other.missing)
    missing.update(
        {k: tuple(dict.fromkeys([*other.missing.get(k, ()), *v])) for k, v in check.missing.items()}
    )
    costs = {**other.costs, **check.costs}
    return DataCheck(check.literals + other.literals, missing, costs)


def materialise(
    spec: Spec, arm: Arm, kpis: Sequence[KpiSpec], options: CompareOptions, unit: str
) -> Arm:
    """Each table an arm's KPIs read, computed once with only the columns they use (every
    KPI × cohort query then runs in memory instead of re-reading the logs)."""
    wanted: dict[str, set[str]] = {}
    for kpi in kpis:
        for component in (
            [spec.kpis[n] for n in kpi.formula_kpis] if kpi.kind == "formula" else [kpi]
        ):
            pass_k = component.pass_k
            names = names_in(
                [
                    component.where,
                    component.mature,
                    component.value,
                    component.numerator,
                    component.denominator,
                    options.where,
                    pass_k.success if pass_k else None,
                ]
            )
            extra = [pass_k.task] if pass_k else []
            extra += [component.breakdown] if component.breakdown else []
            # the time column too: `compute` on an arm bounds it again by the arm's window
            time = _time_column(spec, spec.tables[component.over])
            extra += [time] if time else []
            extra += [options.cuped] if options.cuped else []
            wanted.setdefault(component.over, set()).update([*names, *extra, unit, *options.by])
    tables = dict(arm.tables)
    for name, columns in wanted.items():
        available = tables[name].collect_schema().names()
        keep = [c for c in available if c in columns or c.startswith("__cost_")]
        tables[name] = tables[name].select(keep).collect().lazy()
    return replace(arm, tables=tables)


def same_units(spec: Spec, current: Arm, baseline: Arm, unit: str) -> bool:
    """Both arms ran exactly the same units (e.g. task ids of an evaluation suite)."""
    table = spec.require_primary_table().name
    if unit not in current.tables[table].collect_schema():
        return False
    sets = [
        arm.tables[table].select(pl.col(unit).unique().sort()).collect().to_series()
        for arm in (current, baseline)
    ]
    return sets[0].len() > 1 and sets[0].equals(sets[1])


def empty_arm_notes(
    spec: Spec, design: Design, base: BaselineSpec | None, current: Arm, baseline: Arm | None
) -> list[str]:
    """A note for each arm without units: its KPIs are n = 0, so every verdict is
    insufficient data (said, not left to be guessed from a table of dashes)."""
    table = spec.require_primary_table().name
    arms = [
        (current, base.treatment if base and design.kind in ("holdout", "conditions") else None)
    ]
    if baseline is not None:
        arms.append(
            (baseline, base.control if base and design.kind in ("holdout", "conditions") else None)
        )
    empty = [
        (arm, condition)
        for arm, condition in arms
        if arm.tables[table].select(pl.len()).collect().item() == 0
    ]
    notes = []
    for arm, condition in empty:
        place = ", ".join(
            p for p in (f"`{condition}`" if condition else None, _window_words(arm.window)) if p
        )
        notes.append(
            f"no {table} in the {arm.label} arm"
            + (f" ({place})" if place else "")
            + ": every KPI is insufficient data"
        )
    return notes


def _window_words(window: Window) -> str | None:
    text = window_text(window)
    return f"window {text}" if text else None


def srm_check(
    spec: Spec,
    design: Design,
    base: BaselineSpec | None,
    current: Arm,
    baseline: Arm | None,
    unit: str,
) -> dict[str, Any] | None:
    if base is None or baseline is None or base.kind != "holdout":
        return None
    primary = spec.require_primary_table()
    # a rollup table has one row per key: counting its rows counts the units (no hashing)
    count = pl.len() if unit == primary.key else pl.col(unit).n_unique()
    counts = [
        int(arm.tables[primary.name].select(count).collect().item()) for arm in (current, baseline)
    ]
    if not design.randomized:
        return {
            "checked": False,
            "reason": "observational design: the arms were not randomized",
            "treatment": counts[0],
            "control": counts[1],
        }
    if not any(counts):
        return {"checked": False, "reason": "no units in either arm", "treatment": 0, "control": 0}
    if base.split is None:
        return {
            "checked": False,
            "reason": "no intended split declared (baselines.<name>.split)",
            "treatment": counts[0],
            "control": counts[1],
        }
    chi2, p = stats.sample_ratio_mismatch(counts, [base.split, 1 - base.split])
    return {
        "checked": True,
        "treatment": counts[0],
        "control": counts[1],
        "expected_treatment_share": base.split,
        "chi2": chi2,
        "p_value": p,
        "mismatch": bool(p < 0.001),
    }
