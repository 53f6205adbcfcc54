"""The spec's model: the frozen dataclasses a validated `kpi_definitions.yaml` becomes
(`Spec` and its parts), the vocabularies of its keys, and the value parsers (durations,
timestamps, thresholds) every section shares. Loading and validation: `kpictl.spec.load`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from kpictl.errors import UsageError, did_you_mean
from kpictl.io import schema as canonical
from kpictl.io.formats import (
    FORMAT_NAMES,
    ChatOptions,
    OtlpOptions,
)
from kpictl.io.pricing import PricingSpec
from kpictl.spec.yamlmarks import (
    MarkedDict,
)

SPEC_VERSION = 1
LAYERS = ("business_outcomes", "quality_adoption", "run_cost", "risk_compliance")
FORMATS = ("percent", "usd", "duration", "ms", "number", "count")
DIRECTIONS = ("higher", "lower")
GRAINS = ("hour", "day", "week", "month")
CORRECTIONS = ("holm", "bh", "none")
ENGINES = ("polars", "duckdb", "spark")  # defaults.engine and --engine (the CLI's EngineName)
LEVELS = ("warning", "critical", "catastrophic")  # threshold levels, least to most severe

TOP_KEYS = (
    "version",
    "defaults",
    "params",
    "sources",
    "tables",
    "baselines",
    "kpis",
    "pricing",
    "fairness",
)
FAIRNESS_KEYS = ("max_gap",)
DEFAULT_KEYS = (
    "owner",
    "window",
    "grain",
    "baseline",
    "cohorts",
    "min_sample",
    "confidence",
    "correction",
    "layer",
    "engine",
)
SOURCE_KEYS = ("path", "table", "columns", "format", "options", "from", "attribution")
ATTRIBUTION_KEYS = ("within", "after", "rule")
ATTRIBUTION_ANCHORS = ("start", "end")  # the window closes `within` after the start or the end
ATTRIBUTION_RULES = ("first", "last", "split")
OUTCOME_SOURCE = "business_events"
SOURCE_FORMATS = ("auto", "jsonl", "parquet", *FORMAT_NAMES)
PRICING_KEYS = ("models", "genai_prices")
PRICE_KEYS = ("input", "output", "cache_read", "cache_write", "effective_from", "aliases")
PASS_KINDS = ("pass_k", "pass_at_k")
PASS_KEYS = ("k", "task", "success")
COLUMN_KEYS = ("from", "type", "unit", "default")
ROLLUP_TABLE_KEYS = ("key", "time", "attributes", "rollup", "derive", "description")
ROW_TABLE_KEYS = ("from", "where", "lookup", "description")
BASELINE_KINDS = ("previous", "between", "control", "values")
BASELINE_KEYS = (*BASELINE_KINDS, "treatment", "split", "design", "unit", "description")
BASELINE_DESIGNS = ("randomized", "observational")
KPI_KEYS = (
    "description",
    "owner",
    "over",
    "value",
    "numerator",
    "denominator",
    "formula",
    "where",
    "extends",
    "breakdown",
    "mature",
    "cluster",
    "direction",
    "format",
    "thresholds",
    "layer",
    "min_sample",
    *PASS_KINDS,
    "label",
)
# Keys a KPI once accepted but nothing read: a spec that still has one gets this problem (and
# `kpictl schema` no longer lists them). The README's "The KPI spec" section says the same.
RETIRED_KPI_KEYS = {
    "test": "compare picks each KPI's test from its shape (README, compare): remove the key",
    "cohorts": "cohorts are chosen per run (--by COLUMN; the report's in defaults.cohorts): "
    "remove the key",
    "baseline": "one baseline serves every KPI of a run (defaults.baseline or --baseline): "
    "remove the key",
}
UNITS = {"s": "s", "ms": "ms", "us": "us", "ns": "ns"}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ----------------------------------------------------------------------------------------------
# The typed spec
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnMapping:
    """How one canonical (or extra) column is made from a source's raw fields."""

    name: str
    source_field: str | None = None  # a raw field name, possibly dotted (struct path)
    sql: str | None = None  # or a SQL expression over raw fields
    type: str | None = None  # timestamp | int | float | bool | str
    unit: str | None = None  # s | ms | us | ns, for epoch-number timestamps
    default: Any = None
    line: int | None = None


@dataclass(frozen=True)
class AttributionSpec:
    """How business events are attached to conversations (README "Business outcomes").

    An event is attributed to a conversation when start <= ts <= (start or end) + within;
    `rule` says which of several such conversations of one user gets it (split: each 1/n)."""

    within: dt.timedelta
    after: str  # start | end
    rule: str  # first | last | split
    line: int | None = None


_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}")


def is_remote_path(path: str) -> bool:
    """A path with a scheme (`s3a://`, `hdfs://`, `abfss://`, `gs://`, `file://`, …): read by
    the Spark engine itself, never by kpictl.

    >>> is_remote_path("s3a://bucket/events/"), is_remote_path("logs/events/")
    (True, False)
    """
    return _URI.match(path) is not None


@dataclass(frozen=True)
class SourceSpec:
    """One raw log source: where it is and how its fields map onto canonical columns."""

    name: str
    path: str | None
    base_dir: Path
    columns: tuple[ColumnMapping, ...] = ()
    line: int | None = None
    format: str = "auto"  # auto | jsonl | parquet | chat | otlp_json
    options: ChatOptions | OtlpOptions | None = None  # the format's options
    derived_from: str | None = None  # `from: <source>`: the tool calls of a format source
    attribution: AttributionSpec | None = None  # business_events: how events attach
    table: str | None = None  # `table: catalog.schema.events`: a catalog table (Spark reads it)

    @property
    def remote(self) -> str | None:
        """Where the source lives when only a SQL engine reads it (a catalog table, or a path
        with a scheme such as `s3a://`): kpictl never lists or opens it. None: local files."""
        if self.table is not None:
            return f"table {self.table}"
        return self.path if self.path is not None and is_remote_path(self.path) else None

    @property
    def canonical_columns(self) -> Mapping[str, canonical.CanonicalColumn]:
        """The canonical schema this source is mapped onto (empty for non-canonical names)."""
        return canonical.CANONICAL_TABLES.get(self.name, {})


@dataclass(frozen=True)
class RollupEntry:
    """One aggregate per key: `name: SQL` under `tables.<t>.rollup.<source>`."""

    name: str
    source: str
    sql: str
    depends_on: tuple[str, ...]  # earlier rollup entries it reads
    line: int | None = None


@dataclass(frozen=True)
class DeriveEntry:
    """One row-level column computed over the rolled-up table."""

    name: str
    sql: str
    line: int | None = None


@dataclass(frozen=True)
class TableSpec:
    """A grain KPIs are computed over: a rollup per key, or a row table from a source."""

    name: str
    key: str | None = None
    time: str | None = None
    attributes: tuple[str, ...] = ()
    rollup: tuple[RollupEntry, ...] = ()
    derive: tuple[DeriveEntry, ...] = ()
    from_source: str | None = None
    where: str | None = None
    lookup: str | None = None
    line: int | None = None
    where_line: int | None = None

    @property
    def is_rollup(self) -> bool:
        """True for a table with one row per key."""
        return self.from_source is None

    def rollup_sources(self) -> tuple[str, ...]:
        """The sources this rollup reads, in the order they are declared."""
        seen: dict[str, None] = {}
        for entry in self.rollup:
            seen.setdefault(entry.source, None)
        return tuple(seen)


@dataclass(frozen=True)
class Threshold:
    """One alert level of a KPI: a change (pp, relative, absolute) or an absolute bound."""

    level: str
    kind: str  # "pp" | "relative" | "absolute" | "bound"
    amount: float  # in the KPI's unit (pp → proportion units; relative → fraction)
    operator: str | None = None  # ">" or "<" for bounds
    text: str = ""

    @property
    def severity(self) -> int:
        """The level's rank in LEVELS (0: warning)."""
        return LEVELS.index(self.level)

    def beyond(self, value: float) -> bool:
        """A bound's test: the value is beyond it (`> 1%`: above 0.01; `< 90%`: below 0.9)."""
        return value > self.amount if self.operator == ">" else value < self.amount


def levels_at_or_above(level: str) -> tuple[str, ...]:
    """The threshold levels from `level` up: what `--fail-on LEVEL` fails on."""
    return LEVELS[LEVELS.index(level) :]


def most_severe(thresholds: Iterable[Threshold]) -> Threshold | None:
    """The most severe of `thresholds` (the first of equals), or None: the one that fires."""
    return max(thresholds, key=lambda t: t.severity, default=None)


@dataclass(frozen=True)
class BaselineSpec:
    """What a comparison is judged against (used by `kpictl compare`)."""

    name: str
    kind: str  # previous | between | holdout | values
    previous: dt.timedelta | None = None
    between: tuple[dt.datetime, dt.datetime] | None = None
    control: str | None = None
    treatment: str | None = None
    split: float | None = None  # intended treatment share of a randomized holdout
    # How the arms were formed: only `randomized` (declared, for control/treatment arms) earns
    # the sample-ratio check and a causal reading; everything else is observational.
    design: str = "observational"
    unit: str | None = None
    values: Mapping[str, float] = field(default_factory=dict)
    line: int | None = None


@dataclass(frozen=True)
class KpiSpec:
    """One KPI, after `extends` is resolved and defaults are applied."""

    name: str
    kind: str  # value | ratio | formula
    over: str
    layer: str
    owner: str
    direction: str
    format: str
    description: str = ""
    label: str | None = None  # plain words for readers: "Task completion (not reopened in 24 h)"
    value: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    formula: str | None = None
    where: str | None = None
    mature: str | None = None
    breakdown: str | None = None
    cluster: str | None = None
    thresholds: tuple[Threshold, ...] = ()
    min_sample: int = 0
    formula_kpis: tuple[str, ...] = ()
    line: int | None = None
    pass_k: PassKSpec | None = None  # kinds pass_k (pass^k) and pass_at_k (pass@k)
    # each key's line (an inherited key: the line in the KPI it extends)
    lines: Mapping[str, int | None] = field(default_factory=dict, hash=False, compare=False)

    @property
    def title(self) -> str:
        """What a reader sees: the label, else the KPI's name."""
        return self.label or self.name


@dataclass(frozen=True)
class PassKSpec:
    """pass^k / pass@k over a trial table: per task, c successes of n trials (n ≥ k)."""

    k: int
    task: str  # the column identifying the task (trials of one task share it)
    success: str  # a row-level boolean SQL expression: the trial succeeded
    at_least_one: bool = False  # pass@k (at least one of k succeeds) instead of pass^k


@dataclass(frozen=True)
class FairnessSpec:
    """A group column to watch for one KPI and the largest gap allowed between its groups'
    values (`fairness: {column: {kpi: {max_gap: 5pp}}}`; pp or an absolute amount)."""

    column: str
    kpi: str
    max_gap: float  # in the KPI's unit (5pp -> 0.05)
    text: str
    line: int | None = None


@dataclass(frozen=True)
class Defaults:
    """The spec's `defaults` section."""

    owner: str = "unassigned"
    window: dt.timedelta | None = None
    grain: str = "day"
    baseline: str | None = None
    cohorts: tuple[str, ...] = ()
    min_sample: int = 200
    confidence: float = 0.95
    correction: str = "holm"
    layer: str = "business_outcomes"
    engine: str = "polars"  # the engine of compute, compare, report and facts (--engine wins)

    @property
    def alpha(self) -> float:
        """1 − confidence: the significance level compare and report use unless --alpha is given
        (rounded, so 0.95 gives 0.05 and not 0.050000000000000044)."""
        return round(1.0 - self.confidence, 10)


@dataclass(frozen=True)
class Spec:
    """A validated KPI spec."""

    path: Path
    sha256: str
    version: int
    defaults: Defaults
    params: Mapping[str, bool | int | float | str]
    sources: Mapping[str, SourceSpec]
    tables: Mapping[str, TableSpec]
    baselines: Mapping[str, BaselineSpec]
    kpis: Mapping[str, KpiSpec]
    column_types: Mapping[str, Mapping[str, pl.DataType]] = field(default_factory=dict)
    pricing: PricingSpec = field(default_factory=PricingSpec)
    fairness: tuple[FairnessSpec, ...] = ()

    def table_schema(self, table: str) -> dict[str, pl.DataType]:
        """The columns (with types) a KPI over `table` can use, params and built-ins included."""
        return {**self.column_types[table], **self.param_schema()}

    def param_schema(self) -> dict[str, pl.DataType]:
        """Params and built-ins as typed columns."""
        return {**canonical.BUILTIN_COLUMNS, **{k: param_dtype(v) for k, v in self.params.items()}}

    @property
    def primary_table(self) -> TableSpec | None:
        """The primary table: the first rollup table declared (one row per conversation, e.g.
        `conversations`), the unit compare, report, review, project and facts count; None when
        the spec declares none (compute needs none)."""
        return primary_table(self.tables)

    def require_primary_table(self) -> TableSpec:
        """`primary_table`, or a UsageError saying the spec lacks one."""
        table = self.primary_table
        if table is None:
            raise UsageError(
                "the spec has no rollup table (one row per conversation, e.g. `conversations:` "
                "with `key:` and `rollup:`), where compare, report, review, project and facts "
                f"count their units; tables: {', '.join(self.tables) or '(none)'}"
            )
        return table

    def with_params(self, overrides: Mapping[str, str]) -> Spec:
        """A copy with params overridden from `--param k=v` text, coerced to the declared type."""
        params = dict(self.params)
        for key, text in overrides.items():
            if key not in params:
                raise UsageError(
                    f"--param {key}: no such param{did_you_mean(key, params)}; "
                    f"the spec declares: {', '.join(sorted(params)) or '(none)'}"
                )
            params[key] = _coerce_param(key, params[key], text)
        return replace(self, params=params)


def primary_table(tables: Mapping[str, TableSpec]) -> TableSpec | None:
    """The first rollup table of `tables` (the one definition of "the primary table"; see
    `Spec.primary_table`), or None."""
    return next((t for t in tables.values() if t.is_rollup), None)


def param_dtype(value: object) -> pl.DataType:
    if isinstance(value, bool):
        return pl.Boolean()
    if isinstance(value, int):
        return pl.Int64()
    if isinstance(value, float):
        return pl.Float64()
    return pl.String()


_PARAM_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _coerce_param(key: str, current: object, text: str) -> bool | int | float | str:
    try:
        if isinstance(current, bool):
            lowered = text.strip().lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError(text)
        if isinstance(current, int | float):
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(text)
            return int(number) if isinstance(current, int) and number.is_integer() else number
    except ValueError as exc:
        raise UsageError(
            f"--param {key}={text}: expected {_PARAM_KINDS[type(current)]} like {current!r}"
        ) from exc
    return text


def parse_duration(text: object) -> dt.timedelta:
    """Parse `7d`, `24h`, `90m`, `30s`, `500ms`, `2w` into a timedelta."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"expected a duration like 7d, 24h, 90m, 30s or 500ms, got {shown(text)}")
    return dt.timedelta(seconds=float(match.group(1)) * _DURATION_SECONDS[match.group(2)])


def parse_timestamp(value: object) -> dt.datetime:
    """A date or ISO-8601 timestamp (YAML date, datetime or text) as an aware UTC datetime."""
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, dt.date):
        stamp = dt.datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        stamp = dt.datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        return stamp.replace(tzinfo=dt.UTC)
    return stamp.astimezone(dt.UTC)


class _ShortRepr(reprlib.Repr):
    """reprlib's cut-short repr, with the spec's mappings shown as the dicts they are."""

    def repr_MarkedDict(self, obj: MarkedDict, level: int) -> str:
        return self.repr_dict(obj, level)


_SHOWN = _ShortRepr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 80, 80
_SHOWN.maxdict = _SHOWN.maxlist = 6


def shown(value: object) -> str:
    """A YAML value as quoted in a problem: its repr, cut short (a value may be large or
    deeply nested, and repr() of a deep one fails)."""
    return _SHOWN.repr(value)


def parse_threshold(level: str, raw: object, fmt: str) -> Threshold:
    """Parse one threshold level: `2pp`, `15%`, `0.5`, `90s`, `500ms`, `"> 1%"`, `"< 0.8"`."""
    text = str(raw).strip()
    operator = None
    if text[:1] in "<>":
        operator, text = text[0], text[1:].strip()
        if text.startswith("="):
            raise ValueError("use > or < (bounds are exclusive)")
    if text.endswith("pp"):
        if operator:
            raise ValueError("a bound is a value, not a change: write '> 1%' rather than '> 1pp'")
        return Threshold(level, "pp", _number(text[:-2], raw) / 100.0, None, str(raw))
    if text.endswith("%"):
        amount = _number(text[:-1], raw) / 100.0
        if operator:
            if fmt != "percent":
                raise ValueError("a '%' bound needs format: percent (write the plain number)")
            return Threshold(level, "bound", amount, operator, str(raw))
        return Threshold(level, "relative", amount, None, str(raw))
    match = _DURATION.match(text)
    if match and match.group(2) in ("ms", "s", "m", "h"):
        seconds = parse_duration(text).total_seconds()
        if fmt not in ("duration", "ms"):
            raise ValueError("a duration threshold needs format: duration or ms")
        amount = seconds * 1000.0 if fmt == "ms" else seconds
    else:
        amount = _number(text, raw)
    if amount < 0:
        raise ValueError("levels are magnitudes of deterioration: write them without a sign")
    kind = "bound" if operator else "absolute"
    return Threshold(level, kind, amount, operator, str(raw))


def _number(text: str, raw: object) -> float:
    """The number in a threshold's text; a ValueError that quotes the whole threshold."""
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"not a threshold: {raw!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"not a threshold: {raw!r}")
    return number
