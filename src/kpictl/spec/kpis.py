"""Rules of the `kpis:` section: each KPI's kind, expressions, `extends`, labels, thresholds,
pass^k / pass@k, and formulas over other KPIs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import polars as pl

from kpictl.errors import did_you_mean
from kpictl.io import schema as canonical
from kpictl.spec.model import (
    DIRECTIONS,
    FORMATS,
    KPI_KEYS,
    LAYERS,
    LEVELS,
    NAME_PATTERN,
    PASS_KEYS,
    PASS_KINDS,
    RETIRED_KPI_KEYS,
    Defaults,
    KpiSpec,
    PassKSpec,
    TableSpec,
    Threshold,
    param_dtype,
    parse_threshold,
    primary_table,
    shown,
)
from kpictl.spec.problems import Problems, check_sql, section_mapping, sql_text
from kpictl.spec.yamlmarks import (
    YAML_QUOTING_HINT,
    MarkedDict,
)
from kpictl.sql.expr import (
    ExpressionShape,
)


def build_kpis(
    problems: Problems,
    data: MarkedDict,
    defaults: Defaults,
    tables: Mapping[str, TableSpec],
    column_types: Mapping[str, dict[str, pl.DataType]],
    params: Mapping[str, bool | int | float | str],
) -> dict[str, KpiSpec]:
    node = section_mapping(problems, data, "kpis", "kpis", required=True)
    kpis: dict[str, KpiSpec] = {}
    if node is None:
        return kpis
    extras = {**canonical.BUILTIN_COLUMNS, **{k: param_dtype(v) for k, v in params.items()}}
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

        if not NAME_PATTERN.match(name):
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
        for key in ("over", "breakdown", "cluster"):
            if body.get(key) is not None and not isinstance(body[key], str):
                problems.add(at(key), f"{path}.{key}", f"expected a name, got {body[key]!r}")
                names_ok = names_ok and key != "over"
                body = {**body, key: None}
        if not names_ok:
            continue
        over = body.get("over", default_table.name if default_table else None)
        fmt, direction, layer, min_sample = _presentation(problems, body, defaults, at, path)
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
            cluster=body.get("cluster"),
            thresholds=thresholds,
            min_sample=min_sample,
            line=line,
            lines=dict(key_lines),
        )
        kpi = _expressions_as_text(problems, kpi, body, at, path)
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
        _check_against_table(problems, kpi, str(over), column_types, extras, at, path)
        kpis[name] = kpi
    _check_formulas(problems, kpis, formula_lines, declared=set(node))
    return kpis


def _presentation(
    problems: Problems,
    body: Mapping[str, Any],
    defaults: Defaults,
    at: Callable[[str], int | None],
    path: str,
) -> tuple[str, str, str, int]:
    """A KPI's format, direction, layer and min_sample, each checked (a bad one: reported,
    then the default)."""
    fmt = body.get("format", "number")
    if fmt not in FORMATS:
        problems.add(
            at("format"),
            f"{path}.format",
            f"expected one of {', '.join(FORMATS)}, got {fmt!r}{did_you_mean(str(fmt), FORMATS)}",
        )
        fmt = "number"
    direction = body.get("direction", "higher")
    if direction not in DIRECTIONS:
        problems.add(
            at("direction"),
            f"{path}.direction",
            f"expected higher or lower, got {shown(direction)}",
        )
    layer = body.get("layer", defaults.layer)
    if layer not in LAYERS:
        problems.add(
            at("layer"),
            f"{path}.layer",
            f"expected one of {', '.join(LAYERS)}, got {layer!r}{did_you_mean(str(layer), LAYERS)}",
        )
    min_sample = body.get("min_sample", defaults.min_sample)
    if not isinstance(min_sample, int) or isinstance(min_sample, bool) or min_sample < 0:
        problems.add(
            at("min_sample"),
            f"{path}.min_sample",
            f"expected a whole number ≥ 0, got {shown(min_sample)}",
        )
        min_sample = defaults.min_sample
    return str(fmt), str(direction), str(layer), min_sample


def _expressions_as_text(
    problems: Problems,
    kpi: KpiSpec,
    body: Mapping[str, Any],
    at: Callable[[str], int | None],
    path: str,
) -> KpiSpec:
    """The KPI with each SQL key as text: an empty or non-text one reported (and dropped), a
    bare number written as text."""
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
                f"expected one SQL expression (text), got {shown(value)}; {YAML_QUOTING_HINT}",
            )
            kpi = _with_expression(kpi, key, None)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            kpi = _with_expression(kpi, key, str(value))
    return kpi


def _check_against_table(
    problems: Problems,
    kpi: KpiSpec,
    over: str,
    column_types: Mapping[str, dict[str, pl.DataType]],
    extras: Mapping[str, pl.DataType],
    at: Callable[[str], int | None],
    path: str,
) -> None:
    """A KPI's expressions and columns checked against its table: aggregates for value,
    numerator and denominator, row conditions for where and mature, columns for breakdown
    and cluster; a breakdown needs a ratio."""
    kind = kpi.kind
    scope = {**column_types[over], **extras}
    agg = ExpressionShape.AGGREGATE
    for key in ("value", "numerator", "denominator"):
        sql = getattr(kpi, key)
        if problems.uses_broken(sql, over):
            continue
        check_sql(
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
        check_sql(
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


def _build_pass_k(
    problems: Problems,
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
            f"expected a whole number ≥ 1 (trials per draw), got {shown(k)}",
        )
        ok = False
    task = node.get("task")
    if not isinstance(task, str) or task not in scope:
        problems.add(
            node.line_of("task") or line,
            f"{path}.task",
            f"expected the column naming the task, got {shown(task)}"
            f"{did_you_mean(str(task), scope)}",
        )
        ok = False
    success = sql_text(problems, node, "success", f"{path}.success")
    if success is None:
        if "success" not in node:
            problems.add(line, f"{path}.success", "missing: a SQL condition true for a success")
        return None
    checked = check_sql(
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


def _label(problems: Problems, raw: object, line: int | None, path: str) -> str | None:
    """A KPI's `label:`: plain words on one line, at most LABEL_MAX characters; else a problem."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        problems.add(
            line,
            path,
            f"expected plain words (text of at most {LABEL_MAX} characters), got {shown(raw)}",
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
    problems: Problems, node: MarkedDict
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
            problems.unknown_keys(body, KPI_KEYS, f"kpis.{name}", RETIRED_KPI_KEYS)
        parent_name = body.get("extends")
        if parent_name is not None and not isinstance(parent_name, str):
            problems.add(
                body.line_of("extends"),
                f"kpis.{name}.extends",
                f"expected the name of another KPI, got {shown(parent_name)}",
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
    problems: Problems,
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
    problems: Problems,
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
        checked = check_sql(
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
