"""What a data check finds: compared literals and their matches, missing columns, cost
coverage, and `DataCheck`, the notes and unavailable KPIs they make (see `datacheck`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kpictl.errors import did_you_mean
from kpictl.io.pricing import COST_SOURCES
from kpictl.spec.model import OUTCOME_SOURCE

# columns kpictl itself writes: a literal of their vocabulary matching no row is a count of 0
KNOWN_VALUES: dict[str, tuple[str, ...]] = {"cost_source": COST_SOURCES}


@dataclass(frozen=True)
class LiteralUse:
    """A string literal a spec expression compares a column with."""

    location: str  # spec file:line (or "--where")
    path: str  # e.g. kpis.tool_call_success_rate.numerator
    column: str  # the column as the expression names it
    literal: str
    source: str  # the source whose rows hold the column's values
    source_column: str  # the column there


@dataclass(frozen=True)
class LiteralMatch:
    """How many rows of its source a compared literal matches, and what the column holds."""

    use: LiteralUse
    rows: int
    seen: tuple[tuple[str, int], ...]  # the most frequent values, with their row counts
    column_empty: bool  # the column holds no value at all (see `MissingColumn`)

    @property
    def note(self) -> str:
        """The note of a literal that matches no row."""
        use = self.use
        values = ", ".join(f"{v!r} ({n:,})" for v, n in self.seen)
        hint = did_you_mean(use.literal, [v for v, _ in self.seen])
        where = use.location if use.location == use.path else f"{use.location}: {use.path}"
        return (
            f"{where}: no row of source {use.source!r} has "
            f"{use.source_column} = {use.literal!r}; most frequent values: {values}{hint}"
        )


@dataclass(frozen=True)
class MissingColumn:
    """A column the spec reads that no row of its source holds (absent from every file, so
    null throughout)."""

    source: str
    column: str

    @property
    def reason(self) -> str:
        return f"no `{self.column}` column in source {self.source!r}"


@dataclass(frozen=True)
class CostCoverage:
    """How many of a priced source's cost-bearing rows — agent messages (LLM calls) and any row
    with tokens or a cost — have a known cost. The others are unpriced (tokens, no price) or
    carry no usage at all (an agent message without tokens or cost): their cost is unknown,
    never $0."""

    source: str
    rows: int
    priced: int
    unpriced: int
    no_usage: int
    computed: int  # costs computed from tokens
    cache_reported: int  # of those, with a cached-token count (cache_read_tokens)

    @property
    def unknown(self) -> str:
        """What the unknown rows are: "2 unpriced (tokens but no price), 1 agent message
        without usage"."""
        parts = []
        if self.unpriced:
            parts.append(f"{self.unpriced} unpriced (tokens but no price)")
        if self.no_usage:
            parts.append(
                f"{self.no_usage} agent message{'s' if self.no_usage != 1 else ''} "
                "without usage (no tokens, no cost)"
            )
        return ", ".join(parts)

    @property
    def reason(self) -> str:
        """Why a cost KPI over this source is unavailable (no row has a cost)."""
        return f"cost unknown: no row of source {self.source!r} has a cost ({self.unknown})"


@dataclass(frozen=True)
class DataCheck:
    """What the data lets a run show: literals matched, KPIs that cannot be computed."""

    literals: tuple[LiteralMatch, ...] = ()
    missing: Mapping[str, tuple[MissingColumn, ...]] = field(default_factory=dict)  # by KPI
    costs: Mapping[str, tuple[CostCoverage, ...]] = field(default_factory=dict)  # by cost KPI
    # by KPI: why a source it reads cannot support a number (LoadedSource.unusable)
    unusable: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def unavailable(self) -> tuple[str, ...]:
        """The KPIs that cannot be computed: a column missing, or no row with a known cost."""
        unknown = [k for k, covers in self.costs.items() if any(not c.priced for c in covers)]
        return tuple(dict.fromkeys([*self.missing, *unknown, *self.unusable]))

    @property
    def unmatched(self) -> tuple[LiteralMatch, ...]:
        """Literals that match no row of a column that does hold values (a value of a column
        kpictl writes, such as cost_source = 'unpriced', is never a typo)."""
        return tuple(
            m
            for m in self.literals
            if m.rows == 0
            and not m.column_empty
            and m.use.literal not in KNOWN_VALUES.get(m.use.source_column, ())
        )

    @property
    def findings(self) -> int:
        """How many things the check flags (what `--strict` turns into exit 2): literals that
        match nothing and missing columns."""
        return len(self.notes())

    def reason(self, kpi: str) -> str | None:
        """Why a KPI is unavailable, or None when it can be computed."""
        reasons = [m.reason for m in self.missing.get(kpi, ())]
        reasons += [c.reason for c in self.costs.get(kpi, ()) if not c.priced]
        reasons += self.unusable.get(kpi, ())
        return "; ".join(reasons) if reasons else None

    def notes(self) -> list[str]:
        """One note per unmatched literal and per unavailable KPI."""
        notes = [m.note for m in self.unmatched]
        by_column: dict[MissingColumn, list[str]] = {}
        for kpi, columns in self.missing.items():
            for column in columns:
                by_column.setdefault(column, []).append(kpi)
        for column, kpis in by_column.items():
            notes.append(
                f"{column.reason}: unavailable (value null, not computed over nulls): "
                f"{', '.join(kpis)}; map the column in the spec, e.g. sources.{column.source}"
                f".columns.{column.column}: {{from: <field>}}, or {{default: 0}} when its "
                "absence means zero"
            )
        by_reason: dict[str, list[str]] = {}
        for kpi, reasons in self.unusable.items():
            for reason in reasons:
                by_reason.setdefault(reason, []).append(kpi)
        for reason, kpis in by_reason.items():
            notes.append(f"{reason}: unavailable (value null, not 0): {', '.join(kpis)}")
        by_source: dict[CostCoverage, list[str]] = {}
        for kpi, covers in self.costs.items():
            for cover in covers:
                by_source.setdefault(cover, []).append(kpi)
        for cover, kpis in by_source.items():
            names = ", ".join(kpis)
            if not cover.priced:
                notes.append(f"{cover.reason}: unavailable (value null, not $0): {names}")
            elif cover.priced < cover.rows:
                notes.append(
                    f"cost: partially priced ({cover.priced:,} of {cover.rows:,} rows of "
                    f"source {cover.source!r}; {cover.unknown}): the unknown costs are left "
                    f"out of {names}, a lower bound"
                )
            if cover.computed and not cover.cache_reported:
                notes.append(
                    f"cost: source {cover.source!r} reports no cached tokens "
                    f"(cache_read_tokens): its {cover.computed:,} computed costs are priced "
                    f"without the cache discount, an upper bound where the provider cached "
                    f"input ({names})"
                )
        return notes


def unavailable_label(reason: str) -> str:
    """How an unavailable value is shown: "unavailable (no `intent` column)"."""
    parts = reason.split("; ")
    columns = list(dict.fromkeys(p.split("`")[1] for p in parts if p.count("`") >= 2))
    shown = []
    if columns:
        names = ", ".join(f"`{c}`" for c in columns)
        shown.append(f"no {names} column{'s' if len(columns) > 1 else ''}")
    if any(p.startswith("cost unknown") for p in parts):
        shown.append("cost unknown")
    if any(OUTCOME_SOURCE in p and ("not read" in p or "not given" in p) for p in parts):
        shown.append(f"no {OUTCOME_SOURCE} given")
    elif any(OUTCOME_SOURCE in p and "attributed" in p for p in parts):
        shown.append("no business event matched")

    return f"unavailable ({', '.join(shown)})" if shown else "unavailable"
