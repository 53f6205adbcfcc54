"""The engine seam: what an execution engine must do for kpictl, and the facts it hands back.

An engine does three things (docs/architecture.md, "Where a new thing goes"):

- `build_facts`: the facts of every table a run reads, for one dataset, window and as-of — a
  `FactSet`. Built **once per run**: `compute`, `compare` (both arms), `report` (every section,
  cohort against the rest included), `facts` and the review sample all read the same one.
- `aggregate`: the KPI values of those facts per grouping set (overall, `--by`, `--grain`),
  with `n` and `pending` — a small table, one row per KPI × cohort (× breakdown value).
- `unit_stats`: for compare, one arm's per-unit sufficient statistics of an additive KPI (a
  ratio of per-unit sums, or a mean) per cohort — n, Σm, Σm², Σd, Σd², Σmd over the units —
  and the pending rows per cohort: small frames, whatever the number of units.
- `approximation`: which KPIs `aggregate` gives approximately (`--approx-percentiles` on a SQL
  engine), so that every output labels them; None where every value is exact.

Compare's other cells (percentiles, pass^k, formulas' bootstrap, paired designs, CUPED) read
the FactSet's tables with polars, whichever engine built them (kpictl.comparison).

`watch_fact_builds` records every build while it is open: the tests count fact builds per
command with it, the benchmarks may too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import polars as pl

from kpictl.engine.shapes import KpiShape
from kpictl.io.read import Sources
from kpictl.spec.model import KpiSpec, Spec


@dataclass(frozen=True)
class Window:
    """The evaluation window of a run: units whose table time falls in [since, until)."""

    as_of: dt.datetime
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    # the latest timestamp in the data, when it was read (for the default as-of): no row is
    # later than as-of then, and the rows need no filter
    latest: dt.datetime | None = None


@dataclass(frozen=True)
class RelativeTime:
    """A window end counted back from the run's as-of (`--since 7d`, `--until yesterday`), so
    the same data and as-of give the same window whenever it runs: `back` before as-of, or
    (`days` set) 00:00 UTC of the day `days` before as-of's day (0 today, 1 yesterday)."""

    text: str
    back: dt.timedelta | None = None
    days: int | None = None

    def at(self, as_of: dt.datetime) -> dt.datetime:
        """The instant this stands for, given the run's as-of."""
        if self.back is not None:
            return as_of - self.back
        midnight = as_of.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight - dt.timedelta(days=self.days or 0)


TimeBound = dt.datetime | RelativeTime
"""A window end: a time, or one counted back from as-of."""

_RELATIVE_UNITS = {
    "h": dt.timedelta(hours=1),
    "d": dt.timedelta(days=1),
    "w": dt.timedelta(weeks=1),
}
_DAY_WORDS = {"today": 0, "yesterday": 1}


def parse_relative_time(text: str) -> RelativeTime | None:
    """`7d`, `2w`, `12h`, `today`, `yesterday` as a `RelativeTime`; None for other text.

    >>> parse_relative_time("2w").at(dt.datetime(2026, 10, 30, 15, 0, tzinfo=dt.UTC))
    datetime.datetime(2026, 10, 16, 15, 0, tzinfo=datetime.timezone.utc)
    >>> parse_relative_time("yesterday").at(dt.datetime(2026, 10, 30, 15, 0, tzinfo=dt.UTC))
    datetime.datetime(2026, 10, 29, 0, 0, tzinfo=datetime.timezone.utc)
    """
    word = text.strip().lower()
    if word in _DAY_WORDS:
        return RelativeTime(text, days=_DAY_WORDS[word])
    if len(word) > 1 and word[:-1].isdigit() and word[-1] in _RELATIVE_UNITS:
        return RelativeTime(text, back=int(word[:-1]) * _RELATIVE_UNITS[word[-1]])
    return None


MAX_COHORTS = 10_000
"""The most values one `--by` column may have (`--max-cohorts`): a column such as a user id
would make one result row per value and KPI, millions of rows, and exhaust memory."""


@dataclass(frozen=True)
class ComputeOptions:
    """What `compute` is asked for."""

    by: tuple[str, ...] = ()
    max_cohorts: int = MAX_COHORTS
    grain: str | None = None
    since: TimeBound | None = None
    until: TimeBound | None = None
    as_of: dt.datetime | None = None
    where: str | None = None
    kpis: tuple[str, ...] = ()
    cross: tuple[str, ...] = ()  # `by` columns crossed into one grouping set (--by a,b)


def cohort_sets(by: Sequence[str], cross: Sequence[str] = ()) -> list[tuple[str, ...]]:
    """The grouping sets of `--by`: overall, then one per column, except the `cross` columns,
    which make one set together (the cross-tab, where `--by a,b` first names them).

    >>> cohort_sets(["channel", "intent"])
    [(), ('channel',), ('intent',)]
    >>> cohort_sets(["region", "channel", "intent"], cross=["channel", "intent"])
    [(), ('region',), ('channel', 'intent')]
    """
    sets: list[tuple[str, ...]] = [()]
    for dim in by:
        if dim not in cross:
            sets.append((dim,))
        elif (crossed := tuple(d for d in by if d in cross)) not in sets:
            sets.append(crossed)
    return sets


@dataclass(frozen=True)
class FactSet:
    """The facts of a run: per table of the spec it reads, its frame (a rollup table one row
    per key, in memory; a row table its source's rows with what they look up), for one dataset
    (`sources`), `window` and as-of. `reads`: per table, the columns built (None: all); a
    column not built is there, empty. `engine`: the engine that built them, which aggregates
    them too."""

    sources: Sources
    window: Window
    tables: Mapping[str, pl.LazyFrame]
    reads: Mapping[str, Collection[str] | None]
    engine: Engine

    def table(self, name: str) -> pl.LazyFrame:
        """One table's facts (a KeyError names a table the run did not build)."""
        return self.tables[name]


@dataclass(frozen=True)
class UnitStats:
    """One arm's per-unit sufficient statistics of an additive KPI, per cohort of `keys` (the
    cohort columns as text, null a value).

    `sums`: one row per cohort with units: `n` (units with a settled row; for a mean, units with
    a value), `m_sum`, `m_sq`, `d_sum`, `d_sq`, `md_sum` (Σ over units of the unit's numerator
    m and denominator d — for a mean, the sum and count of its values — their squares and
    products), `unit_rows` (every d is 1), `binary` (every m is 0 or 1), `bounded` (every
    m ≤ d), and for a mean `row_sq` (Σ of the squared row values). Without cohort keys, one
    row even with no unit (n = 0, sums 0, the flags true). `pending`: per cohort, its rows
    whose outcome window is still open (one row without keys)."""

    sums: pl.DataFrame
    pending: pl.DataFrame


@dataclass(frozen=True)
class Approximation:
    """The KPIs of a run whose values are approximate (`--approx-percentiles`: their percentile
    aggregates computed by `method` on the engine), for every output to label."""

    kpis: tuple[str, ...]
    method: str  # the engine's function and its error bound, as docs/architecture.md states

    def note(self) -> str:
        """The run's note saying which values are approximate and how."""
        if not self.kpis:
            return "--approx-percentiles: no percentile KPI in this run; every value is exact"
        return (
            f"approximate percentiles (--approx-percentiles, {self.method}): "
            f'{", ".join(self.kpis)}; their values are marked ≈ (JSON: "approximate": true)'
        )


class Engine(Protocol):
    """How a spec's facts and KPIs are computed. `PolarsEngine` (kpictl.engine.polarsengine) is the
    first implementation; another engine (DuckDB, Spark) implements these three methods and
    hands back polars frames of the same shape: the facts may stay in the engine until
    `aggregate` or `unit_stats` reads them, only the small results need to cross."""

    name: str

    def build_facts(
        self,
        spec: Spec,
        sources: Sources,
        window: Window,
        tables: Sequence[str] | None = None,
        reads: Mapping[str, Collection[str] | None] | None = None,
        *,
        in_memory: bool = False,
    ) -> FactSet:
        """The facts of `tables` (None: every table) and the tables they look up, with the
        columns of `reads` (None: all). `in_memory`: row tables computed once too (a run that
        reads them many times: compare's arms, the report's sections)."""
        ...

    def aggregate(
        self,
        spec: Spec,
        kpis: Sequence[KpiSpec],
        output: Sequence[str],
        tables: Mapping[str, pl.LazyFrame],
        window: Window,
        options: ComputeOptions,
    ) -> tuple[pl.DataFrame, list[str]]:
        """The KPI table (one row per KPI × grouping set × cohort × breakdown value, with
        `value`, `reason`, `n`, `pending` and the KPI's metadata) over facts tables — a
        FactSet's, or an arm's restriction of them — and notes."""
        ...

    def unit_stats(
        self,
        spec: Spec,
        kpi: KpiSpec,
        shape: KpiShape,
        tables: Mapping[str, pl.LazyFrame],
        window: Window,
        unit: str,
        keys: Sequence[str],
        where: str | None,
    ) -> UnitStats:
        """One arm's per-unit sufficient statistics of `kpi` (shape `ratio` or `avg`) per
        cohort of `keys`, over `tables` (the arm's restriction of a FactSet): its rows filtered
        by `where` (when the table has its columns) and the KPI's `where`, the settled ones
        (`mature`) summed per `unit` (see `UnitStats`)."""
        ...

    def approximation(self, spec: Spec, kpis: Sequence[KpiSpec]) -> Approximation | None:
        """Which of `kpis` `aggregate` gives approximately (None: every value exact)."""
        ...


@dataclass(frozen=True)
class FactBuild:
    """One build of facts: the engine, the tables built and the window's as-of."""

    engine: str
    tables: tuple[str, ...]
    as_of: dt.datetime


_WATCHERS: list[list[FactBuild]] = []


@contextmanager
def watch_fact_builds() -> Iterator[list[FactBuild]]:
    """Every fact build while the block runs, in order (a list filled as builds happen)."""
    builds: list[FactBuild] = []
    _WATCHERS.append(builds)
    try:
        yield builds
    finally:
        _WATCHERS.remove(builds)


def record_fact_build(build: FactBuild) -> None:
    """Called by an engine for each `build_facts`: tells every open `watch_fact_builds`."""
    for builds in _WATCHERS:
        builds.append(build)
