"""Rules of the `tables:` section: rollup tables (key, time, attributes, rollup, derive) and
row tables (from, where, lookup).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from kpictl.errors import did_you_mean
from kpictl.io import schema as canonical
from kpictl.io.formats import (
    FORMAT_NAMES,
)
from kpictl.spec.model import (
    NAME_PATTERN,
    ROLLUP_TABLE_KEYS,
    ROW_TABLE_KEYS,
    DeriveEntry,
    RollupEntry,
    SourceSpec,
    TableSpec,
    param_dtype,
    shown,
)
from kpictl.spec.problems import Problems, check_sql, column_names, section_mapping, sql_text
from kpictl.spec.sources import source_schema
from kpictl.spec.yamlmarks import (
    MarkedDict,
)
from kpictl.sql.expr import (
    ExpressionProblem,
    ExpressionShape,
)
from kpictl.sql.tree import names as sql_names


def build_tables(
    problems: Problems,
    data: MarkedDict,
    sources: Mapping[str, SourceSpec],
    params: Mapping[str, bool | int | float | str],
) -> tuple[dict[str, TableSpec], dict[str, dict[str, pl.DataType]]]:
    node = section_mapping(problems, data, "tables", "tables", required=True)
    tables: dict[str, TableSpec] = {}
    column_types: dict[str, dict[str, pl.DataType]] = {}
    if node is None:
        return tables, column_types
    extras = {**canonical.BUILTIN_COLUMNS, **{k: param_dtype(v) for k, v in params.items()}}
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


def _build_rollup_table(
    problems: Problems,
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
    attributes = column_names(
        problems, body.get("attributes"), body.line_of("attributes"), f"{path}.attributes"
    )
    rollup_node = section_mapping(problems, body, "rollup", f"{path}.rollup", required=True)
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
                sql = sql_text(problems, block, entry_name, epath)
                if not NAME_PATTERN.match(entry_name):
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
                checked = check_sql(
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
    derive_node = section_mapping(problems, body, "derive", f"{path}.derive")
    if derive_node is not None:
        for entry_name in derive_node:
            epath = f"{path}.derive.{entry_name}"
            line = derive_node.line_of(entry_name)
            sql = sql_text(problems, derive_node, entry_name, epath)
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
            checked = check_sql(
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
            body.line_of("time"), f"{path}.time", f"expected a column name, got {shown(time)}"
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
        used = sql_names(sql)
    except ExpressionProblem:
        return []
    return [n for n in used if n in later]


def _build_row_table(
    problems: Problems,
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
    where = sql_text(problems, body, "where", f"{path}.where")
    check_sql(
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
