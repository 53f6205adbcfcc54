"""Rules of the `sources:` section: paths, formats and their options, columns, attribution,
sources derived from another; and a source's typed schema.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl

from kpictl.errors import did_you_mean
from kpictl.io import schema as canonical
from kpictl.io.formats import (
    CHAT_OPTION_KEYS,
    FORMAT_COLUMNS,
    FORMAT_NAMES,
    OTLP_OPTION_KEYS,
    ChatOptions,
    OtlpOptions,
)
from kpictl.spec.model import (
    ATTRIBUTION_ANCHORS,
    ATTRIBUTION_KEYS,
    ATTRIBUTION_RULES,
    COLUMN_KEYS,
    NAME_PATTERN,
    OUTCOME_SOURCE,
    SOURCE_FORMATS,
    SOURCE_KEYS,
    TABLE_NAME,
    UNITS,
    AttributionSpec,
    ColumnMapping,
    SourceSpec,
    is_remote_path,
    parse_duration,
    shown,
)
from kpictl.spec.problems import Problems, check_sql, column_names, section_mapping
from kpictl.spec.yamlmarks import (
    MarkedDict,
)
from kpictl.sql.expr import (
    ExpressionProblem,
    ExpressionShape,
    compile_sql,
)


def build_sources(problems: Problems, data: MarkedDict, base_dir: Path) -> dict[str, SourceSpec]:
    node = section_mapping(problems, data, "sources", "sources", required=True)
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
                f"expected one of {', '.join(SOURCE_FORMATS)}, got {shown(fmt)}"
                + did_you_mean(str(fmt), SOURCE_FORMATS),
            )
            fmt = "auto"
        source_path = body.get("path")
        if source_path is not None and not isinstance(source_path, str):
            problems.add(body.line_of("path"), f"{path}.path", "expected a file, glob or folder")
            source_path = None
        table = _table(problems, body, path, str(fmt))
        if source_path is not None and is_remote_path(source_path) and fmt not in REMOTE_FORMATS:
            problems.add(
                body.line_of("format"),
                f"{path}.format",
                f"{source_path} is read by Spark as Parquet: format must be parquet or auto, "
                f"got {shown(fmt)}",
            )
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
            table=table,
        )
    return sources


REMOTE_FORMATS = ("auto", "parquet")  # what Spark reads of a remote path or a catalog table


def _table(problems: Problems, body: MarkedDict, path: str, fmt: str) -> str | None:
    """`table: catalog.schema.events`: a catalog table Spark reads, instead of `path:`."""
    if "table" not in body:
        return None
    value, line = body.get("table"), body.line_of("table")
    if not isinstance(value, str) or not TABLE_NAME.fullmatch(value):
        problems.add(
            line, f"{path}.table", f"expected a table name such as db.events, got {shown(value)}"
        )
        return None
    if "path" in body:
        problems.add(
            line,
            f"{path}.table",
            "give `path:` (files) or `table:` (a catalog table Spark reads), not both",
        )
        return None
    if fmt not in REMOTE_FORMATS:
        problems.add(
            body.line_of("format"),
            f"{path}.format",
            f"a catalog table is read by Spark: format must be parquet or auto, got {shown(fmt)}",
        )
    return value


def _build_attribution(
    problems: Problems, node: MarkedDict, name: str, body: MarkedDict, path: str
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
    spec = section_mapping(problems, body, "attribution", f"{path}.attribution")
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
    problems: Problems, node: MarkedDict, name: str, body: MarkedDict, path: str
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
    for key in ("path", "table", "format", "options"):
        if key in body:
            problems.add(
                body.line_of(key),
                f"{path}.{key}",
                f"a source read `from: {origin}` takes its files and format from {origin!r}; "
                f"remove `{key}`",
            )
    return origin


def _format_options(
    problems: Problems, body: MarkedDict, path: str, fmt: str
) -> ChatOptions | OtlpOptions | None:
    """The `options:` of a chat / otlp_json source, checked key by key."""
    node = section_mapping(problems, body, "options", f"{path}.options")
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
        names = column_names(
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
            problems.add(line, opath, f"expected text, got {shown(value)}")
            continue
        if key == "tool_error":
            check_sql(
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
            problems.add(line, opath, f"expected a field name (a.b for nested), got {shown(value)}")
            continue
        values[key] = value
    return ChatOptions(**values)


def _build_columns(problems: Problems, body: MarkedDict, path: str) -> tuple[ColumnMapping, ...]:
    node = section_mapping(problems, body, "columns", f"{path}.columns")
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
                    f"expected one of {', '.join(canonical.TYPE_NAMES)}, got {shown(kind)}"
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
    return all(NAME_PATTERN.match(part) for part in text.split("."))


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
