"""`kpi_definitions.yaml` → a frozen, fully validated `Spec`.

The whole file is validated at load, before any data is read, and every problem is reported at
once with `file:line`, the path of the key it concerns, what was expected and a "did you mean"
where a name is close. See the README's "The KPI spec" section for the format.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import math
import re
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from kpictl.errors import SpecError, SpecProblem, UsageError, did_you_mean
from kpictl.io import schema as canonical
from kpictl.io.formats import (
    CHAT_OPTION_KEYS,
    FORMAT_COLUMNS,
    FORMAT_NAMES,
    OTLP_OPTION_KEYS,
    ChatOptions,
    OtlpOptions,
)
from kpictl.io.pricing import ModelPrice, PricingSpec
from kpictl.spec.yamlmarks import (
    YAML_QUOTING_HINT,
    MarkedDict,
    decode_spec,
    load_marked_yaml,
    read_spec_bytes,
)
from kpictl.sql.expr import (
    CheckedExpression,
    ExpressionProblem,
    ExpressionShape,
    check_expression,
    compile_sql,
    referenced_names,
)

SPEC_VERSION = 1
LAYERS = ("business_outcomes", "quality_adoption", "run_cost", "risk_compliance")
FORMATS = ("percent", "usd", "duration", "ms", "number", "count")
DIRECTIONS = ("higher", "lower")
GRAINS = ("hour", "day", "week", "month")
CORRECTIONS = ("holm", "bh", "none")
LEVELS = ("warning", "critical", "catastrophic")
TESTS = (
    "proportion",
    "welch",
    "delta",
    "quantile",
    "bootstrap",
    "mcnemar",
    "paired_t",
    "wilcoxon",
)

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
)
SOURCE_KEYS = ("path", "columns", "format", "options", "from", "attribution")
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
    "cohorts",
    "mature",
    "cluster",
    "direction",
    "format",
    "thresholds",
    "layer",
    "min_sample",
    "test",
    "baseline",
    *PASS_KINDS,
    "label",
)
UNITS = {"s": "s", "ms": "ms", "us": "us", "ns": "ns"}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    cohorts: tuple[str, ...] = ()
    cluster: str | None = None
    thresholds: tuple[Threshold, ...] = ()
    min_sample: int = 0
    test: str | None = None
    baseline: str | None = None
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
        return {**canonical.BUILTIN_COLUMNS, **{k: _param_dtype(v) for k, v in self.params.items()}}

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


def _param_dtype(value: object) -> pl.DataType:
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
        raise ValueError(f"expected a duration like 7d, 24h, 90m, 30s or 500ms, got {_shown(text)}")
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


# ----------------------------------------------------------------------------------------------
# Loading and validation
# ----------------------------------------------------------------------------------------------


class _Problems:
    """Collects every problem of a spec file, each located at a line."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[SpecProblem] = []
        # Per table, the columns whose definition already has a problem: expressions that use
        # them are not checked again, so one mistake is reported once, not once per use.
        self.broken: dict[str, set[str]] = {}

    def uses_broken(self, sql: object, table: str | None) -> bool:
        """True when `sql` reads a column of `table` whose definition has a problem."""
        broken = self.broken.get(table or "")
        if not broken or not isinstance(sql, str):
            return False
        try:
            return any(n in broken for n in referenced_names(compile_sql(sql)))
        except ExpressionProblem:
            return False

    def add(self, line: int | None, path: str, message: str) -> None:
        self.items.append(SpecProblem(self.file, line, path, message))

    def unknown_keys(self, node: MarkedDict, allowed: tuple[str, ...], path: str) -> None:
        for key in node:
            if key not in allowed:
                self.add(
                    node.line_of(key),
                    f"{path}.{key}" if path else key,
                    f"unknown key{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}",
                )


class _ShortRepr(reprlib.Repr):
    """reprlib's cut-short repr, with the spec's mappings shown as the dicts they are."""

    def repr_MarkedDict(self, obj: MarkedDict, level: int) -> str:
        return self.repr_dict(obj, level)


_SHOWN = _ShortRepr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 80, 80
_SHOWN.maxdict = _SHOWN.maxlist = 6


def _shown(value: object) -> str:
    """A YAML value as quoted in a problem: its repr, cut short (a value may be large or
    deeply nested, and repr() of a deep one fails)."""
    return _SHOWN.repr(value)


def _line(node: object, key: str) -> int | None:
    return node.line_of(key) if isinstance(node, MarkedDict) else None


def _mapping(
    problems: _Problems, parent: object, key: str, path: str, *, required: bool = False
) -> MarkedDict | None:
    value = parent.get(key) if isinstance(parent, dict) else None
    if value is None:
        if required:
            problems.add(_line(parent, key), path, "missing: expected a mapping")
        return None
    if not isinstance(value, MarkedDict):
        problems.add(_line(parent, key), path, f"expected a mapping, got {_shown(value)}")
        return None
    return value


def _names(problems: _Problems, value: object, line: int | None, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        problems.add(line, path, f"expected a list of column names, got {_shown(value)}")
        return ()
    return tuple(items)


def _sql_text(problems: _Problems, node: MarkedDict, key: str, path: str) -> str | None:
    """An expression-position value: must be a string (catches the YAML quoting trap)."""
    value = node.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if key in node:
            problems.add(
                node.line_of(key), path, "is empty: write one SQL expression or remove the key"
            )
        return None
    if isinstance(value, bool | int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        problems.add(
            node.line_of(key),
            path,
            f"expected one SQL expression (text), got {type(value).__name__} {value!r}; "
            + YAML_QUOTING_HINT,
        )
        return None
    return value


def load_spec(path: str | Path, *, params: Mapping[str, str] | None = None) -> Spec:
    """Read, validate and type `kpi_definitions.yaml`. Raises SpecError listing every problem."""
    spec_path = Path(path)
    raw = read_spec_bytes(spec_path)
    data = load_marked_yaml(decode_spec(raw, spec_path), str(spec_path))
    spec = build_spec(data, spec_path, sha256=hashlib.sha256(raw).hexdigest())
    return spec.with_params(params) if params else spec


def build_spec(data: object, spec_path: Path, *, sha256: str = "") -> Spec:
    """Validate parsed YAML (MarkedDicts) and build a Spec; raises SpecError with all problems."""
    file = str(spec_path)
    problems = _Problems(file)
    if not isinstance(data, MarkedDict):
        raise SpecError([SpecProblem(file, 1, "(top)", "expected a mapping of spec sections")])
    problems.unknown_keys(data, TOP_KEYS, "")
    version = data.get("version")
    if type(version) is not int or version != SPEC_VERSION:
        problems.add(
            data.line_of("version"),
            "version",
            f"expected version: {SPEC_VERSION}, got {_shown(version)}",
        )
    defaults = _build_defaults(problems, data)
    params = _build_params(problems, data)
    sources = _build_sources(problems, data, spec_path.parent)
    tables, column_types = _build_tables(problems, data, sources, params)
    kpis = _build_kpis(problems, data, defaults, tables, column_types, params)
    baselines = _build_baselines(problems, data, kpis, tables, column_types, params)
    pricing = _build_pricing(problems, data)
    fairness = _build_fairness(problems, data, kpis, tables, column_types)
    # An invalid baseline is reported where it is declared, not again where it is used.
    declared = set(data["baselines"]) if isinstance(data.get("baselines"), dict) else set()
    declared |= set(baselines)
    if defaults.baseline is not None and defaults.baseline not in declared:
        problems.add(
            _line(data.get("defaults"), "baseline"),
            "defaults.baseline",
            f"no baseline named {defaults.baseline!r}{did_you_mean(defaults.baseline, baselines)}",
        )
    for kpi in kpis.values():
        if kpi.baseline is not None and kpi.baseline not in declared:
            problems.add(
                kpi.line,
                f"kpis.{kpi.name}.baseline",
                f"no baseline named {kpi.baseline!r}{did_you_mean(kpi.baseline, baselines)}",
            )
    if problems.items:
        raise SpecError(problems.items)
    return Spec(
        path=spec_path,
        sha256=sha256,
        version=SPEC_VERSION,
        defaults=defaults,
        params=params,
        sources=sources,
        tables=tables,
        baselines=baselines,
        kpis=kpis,
        column_types=column_types,
        pricing=pricing,
        fairness=fairness,
    )


def _build_fairness(
    problems: _Problems,
    data: MarkedDict,
    kpis: Mapping[str, KpiSpec],
    tables: Mapping[str, TableSpec],
    column_types: Mapping[str, dict[str, pl.DataType]],
) -> tuple[FairnessSpec, ...]:
    """`fairness: {column: {kpi: {max_gap: 5pp}}}`: the column must be one of the unit
    table's, the KPI declared (not a formula), max_gap a pp or absolute amount."""
    node = _mapping(problems, data, "fairness", "fairness")
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


def _build_pricing(problems: _Problems, data: MarkedDict) -> PricingSpec:
    """`pricing: {models: {name: {input, output, cache_read?, cache_write?, effective_from?}
    or a list of those}, genai_prices: bool}`; prices are USD per 1M tokens."""
    node = _mapping(problems, data, "pricing", "pricing")
    if node is None:
        return PricingSpec()
    problems.unknown_keys(node, PRICING_KEYS, "pricing")
    genai = node.get("genai_prices", False)
    if not isinstance(genai, bool):
        problems.add(node.line_of("genai_prices"), "pricing.genai_prices", "expected true/false")
        genai = False
    models = _mapping(problems, node, "models", "pricing.models")
    prices: list[ModelPrice] = []
    aliases = _price_aliases(problems, models)
    for model, body in (models or {}).items():
        path = f"pricing.models.{model}"
        line = models.line_of(model) if models is not None else None
        entries = body if isinstance(body, list) else [body]
        seen: set[object] = set()
        for position, entry in enumerate(entries):
            epath = path if len(entries) == 1 else f"{path}[{position}]"
            eline = entry.line if isinstance(entry, MarkedDict) else line
            if not isinstance(entry, MarkedDict):
                problems.add(line, epath, "expected {input: USD per 1M tokens, output: …}")
                continue
            problems.unknown_keys(entry, PRICE_KEYS, epath)
            amounts: dict[str, float | None] = {}
            for key in ("input", "output", "cache_read", "cache_write"):
                value = entry.get(key)
                if value is None and key in ("input", "output"):
                    problems.add(eline, f"{epath}.{key}", "missing: USD per 1M tokens")
                elif value is not None and (
                    isinstance(value, bool) or not isinstance(value, int | float) or value < 0
                ):
                    problems.add(
                        entry.line_of(key),
                        f"{epath}.{key}",
                        f"expected a price ≥ 0 in USD per 1M tokens, got {_shown(value)}",
                    )
                    value = None
                amounts[key] = None if value is None else float(value)
            since = None
            if entry.get("effective_from") is not None:
                try:
                    since = parse_timestamp(entry["effective_from"])
                except ValueError:
                    problems.add(
                        entry.line_of("effective_from"),
                        f"{epath}.effective_from",
                        f"expected a date such as 2025-01-01, got {entry['effective_from']!r}",
                    )
            if since in seen:
                problems.add(eline, epath, f"two prices of {model!r} take effect at {since}")
            seen.add(since)
            if amounts["input"] is None or amounts["output"] is None:
                continue
            prices.append(
                ModelPrice(
                    str(model),
                    amounts["input"],
                    amounts["output"],
                    amounts["cache_read"],
                    amounts["cache_write"],
                    since,
                    aliases.get(str(model), ()),
                )
            )
    return PricingSpec(tuple(prices), genai)


def _price_aliases(problems: _Problems, models: MarkedDict | None) -> dict[str, tuple[str, ...]]:
    """`aliases: [name, …]` of each model (any of its dated entries may list them): other model
    names its prices apply to. An alias that is a listed model, or an alias of two models, is
    ambiguous and reported with its line."""
    found: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    listed = {str(m) for m in models or {}}
    for model, body in (models or {}).items():
        entries = body if isinstance(body, list) else [body]
        for position, entry in enumerate(entries):
            if not isinstance(entry, MarkedDict) or entry.get("aliases") is None:
                continue
            path = (
                f"pricing.models.{model}"
                if len(entries) == 1
                else f"pricing.models.{model}[{position}]"
            ) + ".aliases"
            line = entry.line_of("aliases")
            names = entry["aliases"]
            if not isinstance(names, list) or not all(
                isinstance(n, str) and n.strip() for n in names
            ):
                problems.add(
                    line,
                    path,
                    f"expected a list of model names such as [{model}-latest], got {_shown(names)}",
                )
                continue
            for name in names:
                if name in listed:
                    problems.add(
                        line,
                        path,
                        f"{name!r} is a model of its own under "
                        "pricing.models; an alias names a model that is not listed",
                    )
                elif owner.get(name, str(model)) != str(model):
                    problems.add(
                        line,
                        path,
                        f"{name!r} is already an alias of "
                        f"{owner[name]!r}; a model name has one price",
                    )
                else:
                    owner[name] = str(model)
                    if name not in found.get(str(model), ()):
                        found[str(model)] = (*found.get(str(model), ()), name)
    return found


def _build_defaults(problems: _Problems, data: MarkedDict) -> Defaults:
    node = _mapping(problems, data, "defaults", "defaults")
    if node is None:
        return Defaults()
    problems.unknown_keys(node, DEFAULT_KEYS, "defaults")
    result = Defaults()
    changes: dict[str, Any] = {}
    if "owner" in node:
        changes["owner"] = str(node["owner"])
    if node.get("window") not in (None, "all"):
        try:
            changes["window"] = parse_duration(node["window"])
        except ValueError as exc:
            problems.add(node.line_of("window"), "defaults.window", f"{exc} (or 'all')")
    for key, allowed in (("grain", GRAINS), ("correction", CORRECTIONS), ("layer", LAYERS)):
        if key in node:
            if node[key] in allowed:
                changes[key] = node[key]
            else:
                problems.add(
                    node.line_of(key),
                    f"defaults.{key}",
                    f"expected one of {', '.join(allowed)}, got {node[key]!r}"
                    + did_you_mean(str(node[key]), allowed),
                )
    if "baseline" in node:
        changes["baseline"] = str(node["baseline"])
    if "cohorts" in node:
        changes["cohorts"] = _names(problems, node["cohorts"], node.line_of("cohorts"), "cohorts")
    if "min_sample" in node:
        value = node["min_sample"]
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            changes["min_sample"] = value
        else:
            problems.add(
                node.line_of("min_sample"),
                "defaults.min_sample",
                f"expected a whole number ≥ 0, got {_shown(value)}",
            )
    if "confidence" in node:
        value = node["confidence"]
        if isinstance(value, float) and 0.5 < value < 1:
            changes["confidence"] = value
        else:
            problems.add(
                node.line_of("confidence"),
                "defaults.confidence",
                f"expected a number between 0.5 and 1 such as 0.95, got {_shown(value)}",
            )
    return replace(result, **changes)


def _build_params(problems: _Problems, data: MarkedDict) -> dict[str, bool | int | float | str]:
    node = _mapping(problems, data, "params", "params")
    params: dict[str, bool | int | float | str] = {}
    if node is None:
        return params
    for key, value in node.items():
        if not _NAME.match(key):
            problems.add(node.line_of(key), f"params.{key}", "a param name must be an identifier")
        elif key in canonical.BUILTIN_COLUMNS:
            problems.add(node.line_of(key), f"params.{key}", "is a built-in column; rename it")
        elif isinstance(value, bool | int | float | str):
            params[key] = value
        else:
            problems.add(
                node.line_of(key),
                f"params.{key}",
                f"expected a number, text or true/false, got {_shown(value)}",
            )
    return params


def _build_sources(problems: _Problems, data: MarkedDict, base_dir: Path) -> dict[str, SourceSpec]:
    node = _mapping(problems, data, "sources", "sources", required=True)
    sources: dict[str, SourceSpec] = {}
    if node is None:
        return sources
    if "events" not in node:
        problems.add(data.line_of("sources"), "sources", "an `events` source is required")
    for name, body in node.items():
        path = f"sources.{name}"
        if not isinstance(body, MarkedDict):
            problems.add(node.line_of(name), path, "expected a mapping with `path` and `columns`")
            continue
        problems.unknown_keys(body, SOURCE_KEYS, path)
        fmt = body.get("format", "auto")
        if fmt not in SOURCE_FORMATS:
            problems.add(
                body.line_of("format"),
                f"{path}.format",
                f"expected one of {', '.join(SOURCE_FORMATS)}, got {_shown(fmt)}"
                + did_you_mean(str(fmt), SOURCE_FORMATS),
            )
            fmt = "auto"
        source_path = body.get("path")
        if source_path is not None and not isinstance(source_path, str):
            problems.add(body.line_of("path"), f"{path}.path", "expected a file, glob or folder")
            source_path = None
        derived = _derived_from(problems, node, name, body, path)
        options = _format_options(problems, body, path, str(fmt))
        columns = _build_columns(problems, body, path)
        attribution = _build_attribution(problems, node, name, body, path)
        sources[name] = SourceSpec(
            name=name,
            path=source_path,
            base_dir=base_dir,
            columns=columns,
            line=node.line_of(name),
            format=str(fmt),
            options=options,
            derived_from=derived,
            attribution=attribution,
        )
    return sources


def _build_attribution(
    problems: _Problems, node: MarkedDict, name: str, body: MarkedDict, path: str
) -> AttributionSpec | None:
    """`attribution: {within, after, rule}`: declared on the business_events source only."""
    example = "attribution: {within: 7d, after: start, rule: last}"
    if name != OUTCOME_SOURCE:
        if "attribution" in body:
            problems.add(
                body.line_of("attribution"),
                f"{path}.attribution",
                f"attribution belongs to the {OUTCOME_SOURCE} source only",
            )
        return None
    if "attribution" not in body:
        problems.add(
            node.line_of(name),
            path,
            f"a {OUTCOME_SOURCE} source needs `{example}` (rule: first | last | "
            "split; after: start | end of the conversation)",
        )
        return None
    spec = _mapping(problems, body, "attribution", f"{path}.attribution")
    if spec is None:
        return None
    apath = f"{path}.attribution"
    problems.unknown_keys(spec, ATTRIBUTION_KEYS, apath)
    ok = True
    within = dt.timedelta(0)
    for key in ATTRIBUTION_KEYS:
        if key not in spec:
            problems.add(
                spec.line or body.line_of("attribution"),
                apath,
                f"`{key}` is required, e.g. {example}",
            )
            ok = False
    if "within" in spec:
        try:
            within = parse_duration(spec["within"])
        except ValueError as exc:
            problems.add(spec.line_of("within"), f"{apath}.within", str(exc))
            ok = False
        else:
            if within <= dt.timedelta(0):
                problems.add(
                    spec.line_of("within"),
                    f"{apath}.within",
                    f"expected a duration above zero, got {spec['within']!r}",
                )
                ok = False
    for key, allowed in (("after", ATTRIBUTION_ANCHORS), ("rule", ATTRIBUTION_RULES)):
        if key in spec and spec[key] not in allowed:
            problems.add(
                spec.line_of(key),
                f"{apath}.{key}",
                f"expected {' or '.join(allowed)}, got {spec[key]!r}"
                + did_you_mean(str(spec[key]), allowed),
            )
            ok = False
    if not ok:
        return None
    return AttributionSpec(
        within=within,
        after=str(spec["after"]),
        rule=str(spec["rule"]),
        line=body.line_of("attribution"),
    )


def _derived_from(
    problems: _Problems, node: MarkedDict, name: str, body: MarkedDict, path: str
) -> str | None:
    """`from: <source>`: this source is the tool calls of a chat / otlp_json source."""
    if "from" not in body:
        return None
    origin = body.get("from")
    origin_body = node.get(origin) if isinstance(origin, str) else None
    formats = " or ".join(FORMAT_NAMES)
    if not isinstance(origin_body, MarkedDict) or origin == name:
        problems.add(
            body.line_of("from"),
            f"{path}.from",
            f"no source named {origin!r}{did_you_mean(str(origin), node)}; `from` names a "
            f"source with format {formats} whose tool calls this source is",
        )
        return None
    if origin_body.get("format") not in FORMAT_NAMES:
        problems.add(
            body.line_of("from"),
            f"{path}.from",
            f"source {origin!r} has format {origin_body.get('format', 'auto')!r}: only a "
            f"{formats} source makes tool calls another source can read `from`",
        )
        return None
    for key in ("path", "format", "options"):
        if key in body:
            problems.add(
                body.line_of(key),
                f"{path}.{key}",
                f"a source read `from: {origin}` takes its files and format from {origin!r}; "
                f"remove `{key}`",
            )
    return origin


def _format_options(
    problems: _Problems, body: MarkedDict, path: str, fmt: str
) -> ChatOptions | OtlpOptions | None:
    """The `options:` of a chat / otlp_json source, checked key by key."""
    node = _mapping(problems, body, "options", f"{path}.options")
    if fmt not in FORMAT_NAMES:
        if node is not None:
            problems.add(
                body.line_of("options"),
                f"{path}.options",
                f"options belong to format {' or '.join(FORMAT_NAMES)}",
            )
        return None
    if node is None:
        return ChatOptions() if fmt == "chat" else OtlpOptions()
    if fmt == "otlp_json":
        problems.unknown_keys(node, OTLP_OPTION_KEYS, f"{path}.options")
        names = _names(
            problems,
            node.get("conversation_id"),
            node.line_of("conversation_id"),
            f"{path}.options.conversation_id",
        )
        return OtlpOptions(conversation_id=names)
    problems.unknown_keys(node, CHAT_OPTION_KEYS, f"{path}.options")
    values: dict[str, Any] = {}
    for key in CHAT_OPTION_KEYS:
        if key not in node:
            continue
        value, opath, line = node[key], f"{path}.options.{key}", node.line_of(key)
        if key == "fields":
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                value = {v.split(".")[-1]: v for v in value}
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and _is_field_path(v)
                for k, v in value.items()
            ):
                problems.add(line, opath, "expected a list of record fields, or {column: field}")
                continue
            values[key] = dict(value)
            continue
        if not isinstance(value, str) or not value.strip():
            problems.add(line, opath, f"expected text, got {_shown(value)}")
            continue
        if key == "tool_error":
            _check(
                problems,
                line,
                opath,
                value,
                {"result": pl.String(), "tool": pl.String(), "arguments": pl.String()},
                shape=ExpressionShape.ROW,
                dtype=pl.Boolean,
                what="`tool_error`",
            )
        elif not _is_field_path(value):
            problems.add(
                line, opath, f"expected a field name (a.b for nested), got {_shown(value)}"
            )
            continue
        values[key] = value
    return ChatOptions(**values)


def _build_columns(problems: _Problems, body: MarkedDict, path: str) -> tuple[ColumnMapping, ...]:
    node = _mapping(problems, body, "columns", f"{path}.columns")
    if node is None:
        return ()
    mappings: list[ColumnMapping] = []
    for name, spec in node.items():
        cpath = f"{path}.columns.{name}"
        line = node.line_of(name)
        if isinstance(spec, MarkedDict):
            problems.unknown_keys(spec, COLUMN_KEYS, cpath)
            kind = spec.get("type")
            if kind is not None and kind not in canonical.TYPE_NAMES:
                problems.add(
                    spec.line_of("type"),
                    f"{cpath}.type",
                    f"expected one of {', '.join(canonical.TYPE_NAMES)}, got {_shown(kind)}"
                    + did_you_mean(str(kind), canonical.TYPE_NAMES),
                )
                kind = None  # reported: the rest of the spec is checked as if it had no type
            unit = spec.get("unit")
            if unit is not None and unit not in UNITS:
                problems.add(spec.line_of("unit"), f"{cpath}.unit", "expected s, ms, us or ns")
            source_field = spec.get("from", name)
            if not isinstance(source_field, str):
                problems.add(spec.line_of("from"), f"{cpath}.from", "expected a field name")
                continue
            mappings.append(
                ColumnMapping(
                    name=name,
                    source_field=source_field if _is_field_path(source_field) else None,
                    sql=None if _is_field_path(source_field) else source_field,
                    type=kind,
                    unit=unit,
                    default=spec.get("default"),
                    line=line,
                )
            )
        elif isinstance(spec, str):
            if _is_field_path(spec):
                mappings.append(ColumnMapping(name=name, source_field=spec, line=line))
            else:
                try:
                    compile_sql(spec)
                except ExpressionProblem as exc:
                    problems.add(line, cpath, str(exc))
                    continue
                mappings.append(ColumnMapping(name=name, sql=spec, line=line))
        else:
            problems.add(
                line,
                cpath,
                "expected a field name, a SQL expression or {from, type, unit, default}",
            )
    return tuple(mappings)


def _is_field_path(text: str) -> bool:
    return all(_NAME.match(part) for part in text.split("."))


def source_schema(source: SourceSpec) -> dict[str, pl.DataType]:
    """The typed columns a source is known to have before any data is read."""
    columns: dict[str, pl.DataType] = {
        name: col.dtype for name, col in source.canonical_columns.items()
    }
    fmt = source.format if source.derived_from is None else None
    kind = "events" if fmt in FORMAT_NAMES else ("tool_calls" if source.derived_from else None)
    if kind is not None:
        for name, dtype in FORMAT_COLUMNS.get(kind, {}).items():
            columns.setdefault(name, dtype)
    if isinstance(source.options, ChatOptions) and source.options.fields:
        for name in source.options.fields:
            columns.setdefault(name, canonical.PASS_THROUGH_DTYPE)
    for mapping in source.columns:
        if mapping.type is not None:
            columns[mapping.name] = canonical.TYPE_NAMES[mapping.type]
        else:
            columns.setdefault(mapping.name, canonical.PASS_THROUGH_DTYPE)
    if source.attribution is not None:
        columns.update(canonical.ATTRIBUTION_COLUMNS)
    return columns


def _build_tables(
    problems: _Problems,
    data: MarkedDict,
    sources: Mapping[str, SourceSpec],
    params: Mapping[str, bool | int | float | str],
) -> tuple[dict[str, TableSpec], dict[str, dict[str, pl.DataType]]]:
    node = _mapping(problems, data, "tables", "tables", required=True)
    tables: dict[str, TableSpec] = {}
    column_types: dict[str, dict[str, pl.DataType]] = {}
    if node is None:
        return tables, column_types
    extras = {**canonical.BUILTIN_COLUMNS, **{k: _param_dtype(v) for k, v in params.items()}}
    # Attribute names are pass-through columns: known to every source that carries them.
    declared_attributes: set[str] = set()
    for body in node.values():
        if isinstance(body, MarkedDict) and isinstance(body.get("attributes"), list):
            declared_attributes.update(a for a in body["attributes"] if isinstance(a, str))
    priced = "pricing" in data or any(
        s.format in FORMAT_NAMES or s.derived_from for s in sources.values()
    )
    cost_columns = canonical.COST_COLUMNS if priced else {}
    schemas = {
        name: {
            **{a: canonical.PASS_THROUGH_DTYPE for a in sorted(declared_attributes)},
            **(cost_columns if name in canonical.CANONICAL_TABLES else {}),
            **source_schema(src),
        }
        for name, src in sources.items()
    }
    for name, body in node.items():
        path = f"tables.{name}"
        if not isinstance(body, MarkedDict):
            problems.add(node.line_of(name), path, "expected a mapping")
            continue
        if "from" in body:
            table = _build_row_table(
                problems, name, body, path, sources, schemas, extras, tables, column_types
            )
        else:
            table = _build_rollup_table(problems, name, body, path, sources, schemas, extras)
        if table is None:
            continue
        tables[name], column_types[name] = table
    return tables, column_types


def _quoted_sql(sql: str, limit: int = 200) -> str:
    """The expression as quoted in a problem: its start when it is long (it may be 10,000
    characters, and the problem already says where it is)."""
    return sql if len(sql) <= limit else f"{sql[:limit]}… ({len(sql):,} characters)"


def _check(
    problems: _Problems,
    line: int | None,
    path: str,
    sql: str | None,
    schema: Mapping[str, pl.DataType],
    **kwargs: Any,
) -> CheckedExpression | None:
    if sql is None:
        return None
    try:
        return check_expression(sql, schema, **kwargs)
    except ExpressionProblem as exc:
        problems.add(line, path, f"{exc}  [{_quoted_sql(sql)}]")
        return None


def _build_rollup_table(
    problems: _Problems,
    name: str,
    body: MarkedDict,
    path: str,
    sources: Mapping[str, SourceSpec],
    schemas: Mapping[str, dict[str, pl.DataType]],
    extras: Mapping[str, pl.DataType],
) -> tuple[TableSpec, dict[str, pl.DataType]] | None:
    problems.unknown_keys(body, ROLLUP_TABLE_KEYS, path)
    key = body.get("key")
    if not isinstance(key, str):
        problems.add(
            body.line_of("key"), f"{path}.key", "expected the key column, e.g. key: conversation_id"
        )
        return None
    attributes = _names(
        problems, body.get("attributes"), body.line_of("attributes"), f"{path}.attributes"
    )
    rollup_node = _mapping(problems, body, "rollup", f"{path}.rollup", required=True)
    columns: dict[str, pl.DataType] = {key: pl.String()}
    entries: list[RollupEntry] = []
    broken = problems.broken.setdefault(name, set())
    if rollup_node is not None:
        for source_name, block in rollup_node.items():
            bpath = f"{path}.rollup.{source_name}"
            if source_name not in sources:
                problems.add(
                    rollup_node.line_of(source_name),
                    bpath,
                    f"no source named {source_name!r}{did_you_mean(source_name, sources)}",
                )
                if isinstance(block, dict):
                    broken.update(block)
                continue
            if not isinstance(block, MarkedDict):
                problems.add(
                    rollup_node.line_of(source_name), bpath, "expected a mapping of name: aggregate"
                )
                continue
            source_cols = schemas[source_name]
            if key not in source_cols:
                problems.add(
                    rollup_node.line_of(source_name),
                    bpath,
                    f"source {source_name!r} has no key column {key!r}; map one in "
                    f"sources.{source_name}.columns",
                )
            for entry_name, _ in block.items():
                epath = f"{bpath}.{entry_name}"
                line = block.line_of(entry_name)
                sql = _sql_text(problems, block, entry_name, epath)
                if not _NAME.match(entry_name):
                    problems.add(line, epath, "a column name must be an identifier")
                    continue
                if entry_name in columns or entry_name == key:
                    problems.add(line, epath, f"{entry_name!r} is defined twice in {path}")
                    continue
                if sql is None or problems.uses_broken(sql, name):
                    broken.add(entry_name)
                    continue
                earlier = {n: t for n, t in columns.items() if n != key}
                scope = {**source_cols, **extras, **earlier}
                later = _later_names(sql, block, entry_name)
                if later:
                    problems.add(
                        line,
                        epath,
                        f"uses {', '.join(later)} defined below it: an "
                        "entry may only use the entries above it (reorder them)",
                    )
                    broken.add(entry_name)
                    continue
                checked = _check(
                    problems,
                    line,
                    epath,
                    sql,
                    scope,
                    shape=ExpressionShape.AGGREGATE,
                    what="a rollup entry",
                )
                if checked is None:
                    broken.add(entry_name)
                    continue
                depends = tuple(n for n in checked.names if n in earlier and n not in source_cols)
                entries.append(RollupEntry(entry_name, source_name, sql, depends, line))
                columns[entry_name] = checked.dtype
    # Attributes are taken per key from the first source that has them.
    first_source = entries[0].source if entries else None
    for attr in attributes:
        if attr in columns:
            problems.add(
                body.line_of("attributes"),
                f"{path}.attributes",
                f"{attr!r} is both an attribute and a rollup entry",
            )
            continue
        attr_type = schemas.get(first_source or "", {}).get(attr, canonical.PASS_THROUGH_DTYPE)
        columns[attr] = attr_type
    derives: list[DeriveEntry] = []
    derive_node = _mapping(problems, body, "derive", f"{path}.derive")
    if derive_node is not None:
        for entry_name in derive_node:
            epath = f"{path}.derive.{entry_name}"
            line = derive_node.line_of(entry_name)
            sql = _sql_text(problems, derive_node, entry_name, epath)
            if entry_name in columns:
                problems.add(line, epath, f"{entry_name!r} is already a column of {name}")
                continue
            if sql is None or problems.uses_broken(sql, name):
                broken.add(entry_name)
                continue
            later = _later_names(sql, derive_node, entry_name)
            if later:
                problems.add(line, epath, f"uses {', '.join(later)} defined below it (reorder)")
                broken.add(entry_name)
                continue
            checked = _check(
                problems,
                line,
                epath,
                sql,
                {**columns, **extras},
                shape=ExpressionShape.ROW,
                what="a derive entry",
            )
            if checked is None:
                broken.add(entry_name)
            else:
                columns[entry_name] = checked.dtype
                derives.append(DeriveEntry(entry_name, sql, line))
    time = body.get("time")
    if time is not None and not isinstance(time, str):
        problems.add(
            body.line_of("time"), f"{path}.time", f"expected a column name, got {_shown(time)}"
        )
        time = None
    if time is not None and time not in broken:
        if time not in columns:
            problems.add(
                body.line_of("time"),
                f"{path}.time",
                f"no column {time!r} in {name}{did_you_mean(str(time), columns)}",
            )
        elif not isinstance(columns[time], pl.Datetime):
            problems.add(
                body.line_of("time"),
                f"{path}.time",
                f"{time!r} must be a timestamp, it is {columns[time]}",
            )
    table = TableSpec(
        name=name,
        key=key,
        time=time,
        attributes=attributes,
        rollup=tuple(entries),
        derive=tuple(derives),
        line=body.line,
    )
    return table, columns


def _later_names(sql: str, block: MarkedDict, entry_name: str) -> list[str]:
    """Names of entries declared after `entry_name` that its SQL references."""
    names = list(block)
    later = names[names.index(entry_name) + 1 :]
    try:
        used = referenced_names(compile_sql(sql))
    except ExpressionProblem:
        return []
    return [n for n in used if n in later]


def _build_row_table(
    problems: _Problems,
    name: str,
    body: MarkedDict,
    path: str,
    sources: Mapping[str, SourceSpec],
    schemas: Mapping[str, dict[str, pl.DataType]],
    extras: Mapping[str, pl.DataType],
    tables: Mapping[str, TableSpec],
    column_types: Mapping[str, dict[str, pl.DataType]],
) -> tuple[TableSpec, dict[str, pl.DataType]] | None:
    problems.unknown_keys(body, ROW_TABLE_KEYS, path)
    source_name = body.get("from")
    if not isinstance(source_name, str) or source_name not in sources:
        problems.add(
            body.line_of("from"),
            f"{path}.from",
            f"no source named {source_name!r}{did_you_mean(str(source_name), sources)}",
        )
        return None
    columns = dict(schemas[source_name])
    lookup = body.get("lookup")
    if lookup is not None:
        parent = tables.get(lookup) if isinstance(lookup, str) else None
        if parent is None or not parent.is_rollup:
            problems.add(
                body.line_of("lookup"),
                f"{path}.lookup",
                f"expected a rollup table declared above {name}{did_you_mean(str(lookup), tables)}",
            )
            return None
        if parent.key not in columns:
            problems.add(
                body.line_of("lookup"),
                f"{path}.lookup",
                f"source {source_name!r} has no column {parent.key!r} to look up {lookup!r} by",
            )
        problems.broken.setdefault(name, set()).update(problems.broken.get(lookup, set()))
        parent_cols = column_types[lookup]
        for attr in parent.attributes:
            columns[attr] = parent_cols.get(attr, canonical.PASS_THROUGH_DTYPE)
        if parent.time is not None and parent.time in parent_cols:  # else reported on parent
            columns[parent.time] = parent_cols[parent.time]
    where = _sql_text(problems, body, "where", f"{path}.where")
    _check(
        problems,
        body.line_of("where"),
        f"{path}.where",
        where,
        {**columns, **extras},
        shape=ExpressionShape.ROW,
        dtype=pl.Boolean,
        what="`where`",
    )
    table = TableSpec(
        name=name,
        from_source=str(source_name),
        where=where,
        lookup=lookup,
        line=body.line,
        where_line=body.line_of("where"),
    )
    return table, columns


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


def _build_kpis(
    problems: _Problems,
    data: MarkedDict,
    defaults: Defaults,
    tables: Mapping[str, TableSpec],
    column_types: Mapping[str, dict[str, pl.DataType]],
    params: Mapping[str, bool | int | float | str],
) -> dict[str, KpiSpec]:
    node = _mapping(problems, data, "kpis", "kpis", required=True)
    kpis: dict[str, KpiSpec] = {}
    if node is None:
        return kpis
    extras = {**canonical.BUILTIN_COLUMNS, **{k: _param_dtype(v) for k, v in params.items()}}
    resolved = _resolve_extends(problems, node)
    declared_tables = set(data["tables"]) if isinstance(data.get("tables"), dict) else set()
    default_table = primary_table(tables)
    formula_lines: dict[str, int | None] = {}
    labels: dict[str, str] = {}  # label → the KPI that has it
    for name, (body, line, key_lines) in resolved.items():
        path = f"kpis.{name}"

        def at(
            key: str, key_lines: dict[str, int | None] = key_lines, line: int | None = line
        ) -> int | None:
            return key_lines.get(key, line)

        if not _NAME.match(name):
            problems.add(line, path, "a KPI name must be an identifier (letters, digits, _)")
            continue
        kinds = [k for k in ("value", "numerator", "formula", *PASS_KINDS) if k in body]
        if "denominator" in body and "numerator" not in body:
            problems.add(at("denominator"), path, "`denominator` needs a `numerator`")
            continue
        if len(kinds) != 1:
            problems.add(
                line,
                path,
                "exactly one kind is needed: `value`, `numerator` + "
                f"`denominator`, `formula`, `pass_k` or `pass_at_k`; found "
                f"{', '.join(kinds) or 'none'}",
            )
            continue
        kind = {"value": "value", "numerator": "ratio", "formula": "formula"}.get(
            kinds[0], kinds[0]
        )
        if kind == "ratio" and "denominator" not in body:
            problems.add(at("numerator"), path, "`numerator` needs a `denominator`")
            continue
        names_ok = True
        for key in ("over", "breakdown", "cluster", "baseline"):
            if body.get(key) is not None and not isinstance(body[key], str):
                problems.add(at(key), f"{path}.{key}", f"expected a name, got {body[key]!r}")
                names_ok = names_ok and key != "over"
                body = {**body, key: None}
        if not names_ok:
            continue
        over = body.get("over", default_table.name if default_table else None)
        fmt = body.get("format", "number")
        if fmt not in FORMATS:
            problems.add(
                at("format"),
                f"{path}.format",
                f"expected one of {', '.join(FORMATS)}, got "
                f"{fmt!r}{did_you_mean(str(fmt), FORMATS)}",
            )
            fmt = "number"
        direction = body.get("direction", "higher")
        if direction not in DIRECTIONS:
            problems.add(
                at("direction"),
                f"{path}.direction",
                f"expected higher or lower, got {_shown(direction)}",
            )
        layer = body.get("layer", defaults.layer)
        if layer not in LAYERS:
            problems.add(
                at("layer"),
                f"{path}.layer",
                f"expected one of {', '.join(LAYERS)}, got "
                f"{layer!r}{did_you_mean(str(layer), LAYERS)}",
            )
        test = body.get("test")
        if test is not None and test not in TESTS:
            problems.add(
                at("test"),
                f"{path}.test",
                f"expected one of {', '.join(TESTS)}, got {_shown(test)}",
            )
        min_sample = body.get("min_sample", defaults.min_sample)
        if not isinstance(min_sample, int) or isinstance(min_sample, bool) or min_sample < 0:
            problems.add(
                at("min_sample"),
                f"{path}.min_sample",
                f"expected a whole number ≥ 0, got {_shown(min_sample)}",
            )
            min_sample = defaults.min_sample
        thresholds = _build_thresholds(problems, body, at("thresholds"), path, fmt, direction)
        label = _label(problems, body.get("label"), at("label"), f"{path}.label")
        if label is not None and label in labels:
            problems.add(
                at("label"),
                f"{path}.label",
                f"{label!r} is also the label of {labels[label]} (a KPI that `extends` "
                "another inherits its label); give each KPI its own label",
            )
        elif label is not None:
            labels[label] = name
        kpi = KpiSpec(
            name=name,
            kind=kind,
            over=str(over),
            layer=str(layer),
            owner=str(body.get("owner", defaults.owner)),
            direction=str(direction),
            format=fmt,
            description=str(body.get("description", "")).strip(),
            label=label,
            value=body.get("value"),
            numerator=body.get("numerator"),
            denominator=body.get("denominator"),
            formula=body.get("formula"),
            where=body.get("where"),
            mature=body.get("mature"),
            breakdown=body.get("breakdown"),
            cohorts=_names(
                problems,
                body.get("cohorts", list(defaults.cohorts)),
                at("cohorts"),
                f"{path}.cohorts",
            ),
            cluster=body.get("cluster"),
            thresholds=thresholds,
            min_sample=min_sample,
            test=test,
            baseline=body.get("baseline"),
            line=line,
            lines=dict(key_lines),
        )
        for key in ("value", "numerator", "denominator", "formula", "where", "mature"):
            value = body.get(key)
            if key in body and (value is None or (isinstance(value, str) and not value.strip())):
                problems.add(
                    at(key), f"{path}.{key}", "is empty: write one SQL expression or remove the key"
                )
                kpi = _with_expression(kpi, key, None)
            elif value is not None and (
                isinstance(value, bool) or not isinstance(value, str | int | float)
            ):
                problems.add(
                    at(key),
                    f"{path}.{key}",
                    f"expected one SQL expression (text), got {_shown(value)}; {YAML_QUOTING_HINT}",
                )
                kpi = _with_expression(kpi, key, None)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                kpi = _with_expression(kpi, key, str(value))
        if kind == "formula":
            formula_lines[name] = at("formula")
            kpis[name] = kpi
            continue
        if kind in PASS_KINDS and over in tables:
            scope = {**column_types[str(over)], **extras}
            pass_k = _build_pass_k(
                problems, body[kind], at(kind), f"{path}.{kind}", scope, kind == "pass_at_k"
            )
            if pass_k is not None:
                kpis[name] = replace(kpi, pass_k=pass_k)
            continue
        if over not in tables:
            if over in declared_tables:
                continue  # the table's own problem is reported where it is declared
            problems.add(
                at("over"),
                f"{path}.over",
                f"no table named {over!r}"
                f"{did_you_mean(str(over), tables)}; tables: {', '.join(tables)}",
            )
            continue
        over = str(over)  # a table name (checked above)
        scope = {**column_types[over], **extras}
        agg = ExpressionShape.AGGREGATE
        for key in ("value", "numerator", "denominator"):
            sql = getattr(kpi, key)
            if problems.uses_broken(sql, over):
                continue
            _check(
                problems,
                at(key),
                f"{path}.{key}",
                sql,
                scope,
                shape=agg,
                dtype=(
                    pl.Float64,
                    pl.Float32,
                    pl.Int64,
                    pl.Int32,
                    pl.UInt32,
                    pl.UInt64,
                    pl.Boolean,
                    pl.Duration,
                ),
                what=f"`{key}`",
            )
        for key in ("where", "mature"):
            if problems.uses_broken(getattr(kpi, key), over):
                continue
            _check(
                problems,
                at(key),
                f"{path}.{key}",
                getattr(kpi, key),
                scope,
                shape=ExpressionShape.ROW,
                dtype=pl.Boolean,
                what=f"`{key}`",
            )
        for key in ("breakdown", "cluster"):
            column = getattr(kpi, key)
            if (
                column is not None
                and column not in column_types[over]
                and column not in (problems.broken.get(over, set()))
            ):
                problems.add(
                    at(key),
                    f"{path}.{key}",
                    f"no column {column!r} in table {over!r}"
                    f"{did_you_mean(str(column), column_types[over])}",
                )
        if kpi.breakdown is not None and kind != "ratio":
            problems.add(
                at("breakdown"),
                f"{path}.breakdown",
                "a breakdown splits a numerator: it needs `numerator` + `denominator`",
            )
        kpis[name] = kpi
    _check_formulas(problems, kpis, formula_lines, declared=set(node))
    return kpis


def _build_pass_k(
    problems: _Problems,
    node: object,
    line: int | None,
    path: str,
    scope: Mapping[str, pl.DataType],
    at_least_one: bool,
) -> PassKSpec | None:
    """`pass_k: {k: 3, task: task_id, success: SQL}` over a table with one row per trial."""
    if not isinstance(node, MarkedDict):
        problems.add(line, path, "expected {k: 3, task: <task column>, success: <SQL>}")
        return None
    problems.unknown_keys(node, PASS_KEYS, path)
    ok = True
    k = node.get("k")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        problems.add(
            node.line_of("k") or line,
            f"{path}.k",
            f"expected a whole number ≥ 1 (trials per draw), got {_shown(k)}",
        )
        ok = False
    task = node.get("task")
    if not isinstance(task, str) or task not in scope:
        problems.add(
            node.line_of("task") or line,
            f"{path}.task",
            f"expected the column naming the task, got {_shown(task)}"
            f"{did_you_mean(str(task), scope)}",
        )
        ok = False
    success = _sql_text(problems, node, "success", f"{path}.success")
    if success is None:
        if "success" not in node:
            problems.add(line, f"{path}.success", "missing: a SQL condition true for a success")
        return None
    checked = _check(
        problems,
        node.line_of("success"),
        f"{path}.success",
        success,
        scope,
        shape=ExpressionShape.ROW,
        dtype=pl.Boolean,
        what="`success`",
    )
    if checked is None or not ok:
        return None
    assert isinstance(k, int) and isinstance(task, str)
    return PassKSpec(k=k, task=task, success=success, at_least_one=at_least_one)


def _with_expression(kpi: KpiSpec, key: str, sql: str | None) -> KpiSpec:
    """A copy of the KPI with one expression key replaced."""
    changes: dict[str, Any] = {key: sql}
    return replace(kpi, **changes)


LABEL_MAX = 80  # characters: a label fits a table cell, a tile and a chart title


def _label(problems: _Problems, raw: object, line: int | None, path: str) -> str | None:
    """A KPI's `label:`: plain words on one line, at most LABEL_MAX characters; else a problem."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        problems.add(
            line,
            path,
            f"expected plain words (text of at most {LABEL_MAX} characters), got {_shown(raw)}",
        )
        return None
    text = raw.strip()
    if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in text):
        problems.add(
            line, path, "expected one line of plain words, got a line break or a control character"
        )
        return None
    if len(text) > LABEL_MAX:
        problems.add(
            line,
            path,
            f"expected at most {LABEL_MAX} characters, got {len(text)}; "
            "a longer explanation belongs in `description`",
        )
        return None
    return text


def _resolve_extends(
    problems: _Problems, node: MarkedDict
) -> dict[str, tuple[dict[str, Any], int | None, dict[str, int | None]]]:
    """Each KPI's keys with `extends` applied (parents first), cycles reported.

    Returns {name: (keys, line of the KPI, line of each key)}; an inherited key keeps the line
    where the ancestor wrote it, so a problem in it points at the text to fix.
    """
    resolved: dict[str, tuple[dict[str, Any], int | None, dict[str, int | None]]] = {}
    keys_checked: set[str] = set()

    def resolve(
        name: str, chain: tuple[str, ...]
    ) -> tuple[dict[str, Any], dict[str, int | None]] | None:
        if name in resolved:
            return resolved[name][0], resolved[name][2]
        body = node.get(name)
        line = node.line_of(name)
        if not isinstance(body, MarkedDict):
            problems.add(line, f"kpis.{name}", "expected a mapping of KPI keys")
            return None
        if name not in keys_checked:
            keys_checked.add(name)
            problems.unknown_keys(body, KPI_KEYS, f"kpis.{name}")
        parent_name = body.get("extends")
        if parent_name is not None and not isinstance(parent_name, str):
            problems.add(
                body.line_of("extends"),
                f"kpis.{name}.extends",
                f"expected the name of another KPI, got {_shown(parent_name)}",
            )
            return None
        merged: dict[str, Any] = {}
        lines: dict[str, int | None] = {}
        if parent_name is not None:
            if parent_name in chain or parent_name == name:
                problems.add(
                    body.line_of("extends"),
                    f"kpis.{name}.extends",
                    f"cycle: {' -> '.join((*chain, name, str(parent_name)))}",
                )
                return None
            if parent_name not in node:
                problems.add(
                    body.line_of("extends"),
                    f"kpis.{name}.extends",
                    f"no KPI named {parent_name!r}{did_you_mean(str(parent_name), node)}",
                )
                return None
            found = resolve(str(parent_name), (*chain, name))
            if found is None:
                return None
            parent, parent_lines = found
            merged = {k: v for k, v in parent.items() if k != "description"}
            lines = {k: v for k, v in parent_lines.items() if k in merged}
            # A child that sets one kind replaces the parent's kind entirely.
            if any(k in body for k in ("value", "numerator", "formula", *PASS_KINDS)):
                for key in ("value", "formula", *PASS_KINDS):
                    if key not in body:
                        merged.pop(key, None)
                if (
                    ("numerator" not in body and "value" in body)
                    or "formula" in body
                    or any(k in body for k in PASS_KINDS)
                ):
                    merged.pop("numerator", None)
                    merged.pop("denominator", None)
        merged.update({k: v for k, v in body.items() if k != "extends"})
        lines.update({k: body.line_of(k) for k in body if k != "extends"})
        resolved[name] = (merged, line, lines)
        return merged, lines

    for kpi_name in node:
        resolve(kpi_name, ())
    return {name: resolved[name] for name in node if name in resolved}


def _build_thresholds(
    problems: _Problems,
    body: Mapping[str, Any],
    line: int | None,
    path: str,
    fmt: str,
    direction: object,
) -> tuple[Threshold, ...]:
    raw = body.get("thresholds")
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        problems.add(
            line, f"{path}.thresholds", "expected {warning: …, critical: …, catastrophic: …}"
        )
        return ()
    result: list[Threshold] = []
    for level, value in raw.items():
        tline = raw.line_of(level) if isinstance(raw, MarkedDict) else line
        if level not in LEVELS:
            problems.add(
                tline,
                f"{path}.thresholds.{level}",
                f"unknown level{did_you_mean(str(level), LEVELS)}; levels: " + ", ".join(LEVELS),
            )
            continue
        try:
            threshold = parse_threshold(level, value, fmt)
        except ValueError as exc:
            problems.add(
                tline,
                f"{path}.thresholds.{level}",
                f"{exc}; expected e.g. 2pp, 15%, 0.5, 90s, '> 1%' or '< 0.8'",
            )
            continue
        if threshold.kind == "bound":
            wrong = "<" if direction == "lower" else ">"
            if threshold.operator == wrong:
                problems.add(
                    tline,
                    f"{path}.thresholds.{level}",
                    f"a '{wrong}' bound fires on improvement for a KPI where {direction} is better",
                )
        result.append(threshold)
    ordered = sorted(result, key=lambda t: LEVELS.index(t.level))
    for kind in ("pp", "relative", "absolute"):
        same = [t for t in ordered if t.kind == kind]
        for lower, upper in itertools.pairwise(same):
            if upper.amount < lower.amount:
                problems.add(
                    line,
                    f"{path}.thresholds",
                    f"levels must grow from warning to catastrophic: {lower.level} "
                    f"{lower.text} > {upper.level} {upper.text}",
                )
    bounds = [t for t in ordered if t.kind == "bound"]
    for lower, upper in itertools.pairwise(bounds):
        grows = (
            upper.amount >= lower.amount
            if upper.operator == ">"
            else (upper.amount <= lower.amount)
        )
        if not grows:
            problems.add(
                line,
                f"{path}.thresholds",
                f"bounds must get stricter from warning to catastrophic: {lower.level} "
                f"{lower.text}, {upper.level} {upper.text}",
            )
    return tuple(ordered)


def _check_formulas(
    problems: _Problems,
    kpis: dict[str, KpiSpec],
    lines: Mapping[str, int | None],
    declared: set[str],
) -> None:
    """Formulas may only use KPIs' values (any declared KPI, even an invalid one, so that one
    mistake is reported once), without cycles. `lines` gives each formula's line."""
    deps: dict[str, tuple[str, ...]] = {}
    for name, kpi in list(kpis.items()):
        if kpi.kind != "formula" or kpi.formula is None:
            continue
        path = f"kpis.{name}.formula"
        schema = {k: pl.Float64() for k in sorted(declared | set(kpis))}
        checked = _check(
            problems,
            lines.get(name, kpi.line),
            path,
            kpi.formula,
            schema,
            shape=ExpressionShape.ROW,
            what="a formula",
        )
        if checked is None:
            del kpis[name]
            continue
        deps[name] = checked.names
        kpis[name] = replace(kpi, formula_kpis=checked.names)

    def visit(name: str, chain: tuple[str, ...]) -> None:
        for dep in deps.get(name, ()):
            if dep in chain:
                problems.add(
                    lines.get(name, kpis[name].line),
                    f"kpis.{name}.formula",
                    f"cycle: {' -> '.join((*chain, dep))}",
                )
                return
            visit(dep, (*chain, dep))

    for name in deps:
        visit(name, (name,))


def _build_baselines(
    problems: _Problems,
    data: MarkedDict,
    kpis: Mapping[str, KpiSpec],
    tables: Mapping[str, TableSpec],
    column_types: Mapping[str, dict[str, pl.DataType]],
    params: Mapping[str, bool | int | float | str],
) -> dict[str, BaselineSpec]:
    node = _mapping(problems, data, "baselines", "baselines")
    baselines: dict[str, BaselineSpec] = {}
    if node is None:
        return baselines
    extras = {**canonical.BUILTIN_COLUMNS, **{k: _param_dtype(v) for k, v in params.items()}}
    unit_table = primary_table(tables)
    for name, body in node.items():
        path = f"baselines.{name}"
        line = node.line_of(name)
        if not isinstance(body, MarkedDict):
            problems.add(
                line,
                path,
                "expected a mapping: {previous: 28d} | {between: [from, to]}"
                " | {control: SQL, treatment: SQL} | {values: {kpi: number}}",
            )
            continue
        problems.unknown_keys(body, BASELINE_KEYS, path)
        kinds = [k for k in BASELINE_KINDS if k in body]
        if len(kinds) != 1:
            problems.add(
                line,
                path,
                "exactly one of previous, between, control (+ treatment) "
                f"or values is needed; found {', '.join(kinds) or 'none'}",
            )
            continue
        kind = kinds[0]
        spec = BaselineSpec(name=name, kind=kind, line=line)
        try:
            if kind == "previous":
                spec = replace(spec, previous=parse_duration(body["previous"]))
            elif kind == "between":
                bounds = body["between"]
                if not isinstance(bounds, list) or len(bounds) != 2:
                    raise ValueError("expected [start, end] dates")
                start, end = (parse_timestamp(b) for b in bounds)
                if end <= start:
                    raise ValueError("the end must come after the start")
                spec = replace(spec, between=(start, end))
            elif kind == "values":
                values = body["values"]
                if not isinstance(values, dict):
                    raise ValueError("expected {kpi_name: number}")
                for kpi_name, number in values.items():
                    if kpi_name not in kpis:
                        problems.add(
                            body.line_of("values"),
                            f"{path}.values.{kpi_name}",
                            f"no KPI named {kpi_name!r}{did_you_mean(kpi_name, kpis)}",
                        )
                    elif not isinstance(number, int | float) or isinstance(number, bool):
                        problems.add(
                            body.line_of("values"),
                            f"{path}.values.{kpi_name}",
                            f"expected a number, got {_shown(number)}",
                        )
                spec = replace(
                    spec,
                    values={k: float(v) for k, v in values.items() if isinstance(v, int | float)},
                )
            else:
                spec = replace(
                    spec,
                    kind="holdout",
                    control=body.get("control"),
                    treatment=body.get("treatment"),
                )
                if spec.treatment is None:
                    raise ValueError("a holdout needs both `control` and `treatment`")
                if unit_table is not None:
                    scope = {**column_types[unit_table.name], **extras}
                    for key in ("control", "treatment"):
                        _check(
                            problems,
                            body.line_of(key),
                            f"{path}.{key}",
                            body.get(key),
                            scope,
                            shape=ExpressionShape.ROW,
                            dtype=pl.Boolean,
                            what=f"`{key}`",
                        )
                split = body.get("split")
                if split is not None:
                    if not isinstance(split, float) or not 0 < split < 1:
                        raise ValueError("split is the intended treatment share, e.g. 0.85")
                    spec = replace(spec, split=split)
        except (ValueError, TypeError) as exc:
            problems.add(line, path, str(exc))
            continue
        design = _baseline_design(problems, body, spec, path)
        if design is None:
            continue
        baselines[name] = replace(spec, design=design)
    return baselines


def _baseline_design(
    problems: _Problems, body: MarkedDict, spec: BaselineSpec, path: str
) -> str | None:
    """A baseline's declared `design` (observational unless `randomized` is declared), or None
    after reporting why the declaration cannot hold."""
    design = body.get("design", "observational")
    line = body.line_of("design") if "design" in body else spec.line
    if design not in BASELINE_DESIGNS:
        problems.add(
            line,
            f"{path}.design",
            f"expected randomized or observational, got {_shown(design)}"
            f"{did_you_mean(str(design), BASELINE_DESIGNS)}",
        )
        return None
    if design == "randomized" and spec.kind != "holdout":
        problems.add(
            line,
            f"{path}.design",
            "only `control`/`treatment` arms can be randomized; a period or target "
            "comparison is observational",
        )
        return None
    if spec.split is not None and design != "randomized":
        problems.add(
            body.line_of("split"),
            f"{path}.split",
            "`split` is the intended treatment share of a randomized assignment: declare "
            "`design: randomized` (or drop `split`)",
        )
        return None
    return design


# ----------------------------------------------------------------------------------------------
# JSON Schema of the spec file (`kpictl schema`): the keys load_spec accepts, for editors'
# completion and underlining. load_spec stays the authority on values (SQL, thresholds, names).
# ----------------------------------------------------------------------------------------------


def _object(keys: Sequence[str], **known: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {k: known.get(k, {}) for k in keys},
    }


def _named(body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": body}


def spec_json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of kpi_definitions.yaml: every section and key."""
    text = {"type": "string"}
    names = {"type": "array", "items": text}
    column = {"oneOf": [text, _object(COLUMN_KEYS, type=text, unit={"enum": list(UNITS)})]}
    source = _object(
        SOURCE_KEYS,
        path={"oneOf": [text, names]},
        format={"enum": list(SOURCE_FORMATS)},
        columns=_named(column),
        options=_object(tuple(dict.fromkeys((*CHAT_OPTION_KEYS, *OTLP_OPTION_KEYS)))),
        attribution=_object(
            ATTRIBUTION_KEYS,
            after={"enum": list(ATTRIBUTION_ANCHORS)},
            rule={"enum": list(ATTRIBUTION_RULES)},
        ),
    )
    table = _object(
        tuple(dict.fromkeys((*ROLLUP_TABLE_KEYS, *ROW_TABLE_KEYS))),
        attributes=names,
        rollup=_named(_named(text)),
        derive=_named(text),
    )
    price = _object(PRICE_KEYS, aliases=names)
    pass_k = _object(PASS_KEYS, k={"type": "integer", "minimum": 1}, task=text, success=text)
    kpi = _object(
        KPI_KEYS,
        label={"type": "string", "minLength": 1, "maxLength": LABEL_MAX},
        layer={"enum": list(LAYERS)},
        format={"enum": list(FORMATS)},
        direction={"enum": list(DIRECTIONS)},
        test={"enum": list(TESTS)},
        thresholds=_object(LEVELS),
        cohorts=names,
        min_sample={"type": "integer", "minimum": 0},
        **{kind: pass_k for kind in PASS_KINDS},
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "kpictl spec (kpi_definitions.yaml)",
        "description": "Generated by `kpictl schema`; see the README, 'The KPI spec'.",
        **_object(
            TOP_KEYS,
            version={"enum": [1]},
            defaults=_object(DEFAULT_KEYS, layer={"enum": list(LAYERS)}, cohorts=names),
            params=_named({"type": ["number", "string", "boolean"]}),
            sources=_named(source),
            tables=_named(table),
            baselines=_named(_object(BASELINE_KEYS, design={"enum": list(BASELINE_DESIGNS)})),
            kpis=_named(kpi),
            pricing=_object(
                PRICING_KEYS, models=_named({"oneOf": [price, {"type": "array", "items": price}]})
            ),
            fairness=_object(FAIRNESS_KEYS),
        ),
        "required": ["version", "sources", "tables", "kpis"],
    }
