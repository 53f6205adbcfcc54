"""compare's vocabulary: what it is asked (`CompareOptions`), its arms and design, one KPI × cohort
`Cell`, the result and its findings, and the statuses a cell may get."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from kpictl import stats
from kpictl.engine.findings import DataCheck
from kpictl.engine.interface import MAX_COHORTS, Approximation, Engine, TimeBound, Window
from kpictl.engine.polarsengine import PolarsEngine
from kpictl.spec.model import LEVELS, Defaults, KpiSpec

STATUSES = ("ok", *LEVELS)
INSUFFICIENT = "insufficient_data"
UNAVAILABLE = "unavailable"  # a column a KPI depends on is missing from the data (datacheck)
NOT_TESTABLE = "not_testable"

# Per arm ("current", "baseline"): (kpi, grouping, cohort values) → (value, n, pending), as
# `compute` gives them on that arm.
ArmValues = Mapping[str, Mapping[tuple, tuple[float | None, int, int]]]


@dataclass(frozen=True)
class CompareOptions:
    """What `compare` is asked for."""

    baseline: str | None = None  # a baseline name of the spec (default: defaults.baseline)
    by: tuple[str, ...] = ()
    cross: tuple[str, ...] = ()  # `by` columns crossed into one grouping set (--by a,b)
    since: TimeBound | None = None
    until: TimeBound | None = None
    as_of: dt.datetime | None = None
    where: str | None = None
    kpis: tuple[str, ...] = ()
    alpha: float | None = None  # None: 1 − the spec's defaults.confidence
    correction: str | None = None  # holm | bh | none (default: the spec's)
    unit: str | None = None
    relative_ci: Literal["delta", "fieller"] = "delta"
    paired: bool | None = None  # None: paired when both datasets ran the same --unit ids
    seed: int = 20261122
    max_cohorts: int = MAX_COHORTS  # the most values one --by column may have
    sequential: bool = False  # always-valid CIs and p-values (docs/methods.md A9)
    cuped: str | None = None  # a pre-period covariate column of the unit table (A10)
    heterogeneity: bool = False  # per --by dimension: does the effect differ across groups?
    sequential_n_star: float = stats.SEQUENTIAL_N_STAR

    @property
    def significance(self) -> float:
        """alpha; None (not filled in from a spec's defaults.confidence): the default level."""
        return self.alpha if self.alpha is not None else Defaults().alpha


@dataclass(frozen=True, eq=False)
class Part:
    """Where an arm is some groups of a partitioned arm (the report's cohort, or the rest): the
    whole's tables, each row of a table holding the unit key with its unit's group code (the
    column `comparison.partition.PART`), and this arm's codes. compare's cells ask the whole
    once for every group (`comparison/partition.py`) and keep this arm's groups; `memo` holds
    those answers, shared by every part of one partition."""

    whole: Mapping[str, pl.LazyFrame]
    codes: frozenset[int]
    memo: dict[tuple[Any, ...], Any]
    grouped: frozenset[str]  # the tables of `whole` with group codes (holding the unit key)


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: facts tables restricted to the arm's units and window."""

    label: str
    tables: Mapping[str, pl.LazyFrame]
    window: Window
    engine: Engine = field(default_factory=PolarsEngine)  # the engine of its facts
    part: Part | None = None  # some groups of a partitioned arm (its tables are their rows)


# The caveat of control/treatment arms that were not declared `design: randomized`.
OBSERVATIONAL_ARMS_CAVEAT = (
    "not randomized (the baseline does not declare `design: randomized`): traffic mix and time "
    "differ between the arms, so differences are associations, not causal effects"
)


@dataclass(frozen=True)
class Design:
    """How the two arms were formed, and what that allows one to conclude."""

    kind: str  # holdout (randomized) | conditions | previous | between | dataset | values
    label: str  # e.g. "randomized holdout", "observational period (time-confounded)"
    baseline: str
    randomized: bool
    paired: bool = False
    caveat: str = ""


@dataclass(frozen=True)
class CompareResult:
    """A compare run: one row per KPI × cohort, plus the design and the SRM check."""

    table: pl.DataFrame
    design: Design
    baseline_window: Window | None
    current_window: Window
    srm: Mapping[str, Any] | None
    alpha: float
    correction: str
    unit: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    check: DataCheck = field(default_factory=DataCheck)  # literals matched, KPIs unavailable
    heterogeneity: tuple[Heterogeneity, ...] = ()
    fairness: tuple[FairnessFinding, ...] = ()
    # --approx-percentiles: the KPIs whose baseline and current values are approximate
    approximation: Approximation | None = None


@dataclass(frozen=True)
class FairnessFinding:
    """A `fairness:` entry of the spec checked on the current arm: the gap between the highest
    and the lowest group value of the KPI (groups with at least min_sample units), against the
    declared max_gap; `breached` when it is larger. `baseline_gap` is the same gap in the
    baseline arm (None without one)."""

    kpi: str
    column: str
    max_gap: float
    max_gap_text: str
    gap: float | None
    low: tuple[str | None, float] | None
    high: tuple[str | None, float] | None
    baseline_gap: float | None
    breached: bool
    excluded: int  # groups left out: fewer than min_sample units (or no value)
    format: str = "number"  # the KPI's format


@dataclass(frozen=True)
class GroupEffect:
    """One group's effect in a heterogeneity test; `worse` when the agent is worse than the
    baseline in this group (by the KPI's direction) while better overall."""

    group: str | None
    delta: float
    se: float
    p_value: float | None
    p_holm: float | None
    worse: bool


@dataclass(frozen=True)
class Heterogeneity:
    """Does a KPI's effect differ across the groups of a --by dimension? Cochran's Q over the
    per-group absolute effects and SEs (an interaction test), Holm over the groups' tests."""

    kpi: str
    dimension: str
    overall_delta: float | None
    better_overall: bool
    test: stats.CochranQ | None
    groups: tuple[GroupEffect, ...]


@dataclass
class Cell:
    """One KPI × cohort comparison before correction and verdicts."""

    kpi: KpiSpec
    cohort: dict[str, str | None]
    grouping: tuple[str, ...]
    comparison: stats.Comparison | None
    n_baseline: int
    n_current: int
    pending_baseline: int
    pending_current: int
    mde: float | None = None
    warnings: list[str] = field(default_factory=list)
    cuped_theta: float | None = None  # --cuped: θ and the share of Var(Δ) removed
    variance_reduction: float | None = None
    target: float | None = None  # a `values` baseline: one-sample test, no baseline arm
    # units per arm when n counts rows (percentiles over turns); min_sample is about units
    units_baseline: int | None = None
    units_current: int | None = None
