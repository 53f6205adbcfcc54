"""The problems collector of spec validation and the helpers every section's rules share:
reading a YAML node with its line, showing a bad value, checking an SQL expression.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from kpictl.errors import SpecProblem, did_you_mean
from kpictl.spec.model import shown
from kpictl.spec.yamlmarks import (
    YAML_QUOTING_HINT,
    MarkedDict,
)
from kpictl.sql.expr import (
    CheckedExpression,
    ExpressionProblem,
    check_expression,
)
from kpictl.sql.tree import names as sql_names


class Problems:
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
            return any(n in broken for n in sql_names(sql))
        except ExpressionProblem:
            return False

    def add(self, line: int | None, path: str, message: str) -> None:
        self.items.append(SpecProblem(self.file, line, path, message))

    def unknown_keys(
        self,
        node: MarkedDict,
        allowed: tuple[str, ...],
        path: str,
        retired: Mapping[str, str] | None = None,
    ) -> None:
        """Each key of node not in allowed; a retired key (no longer read) says why instead."""
        for key in node:
            if retired and key in retired:
                where = f"{path}.{key}" if path else key
                self.add(node.line_of(key), where, f"no longer a spec key: {retired[key]}")
            elif key not in allowed:
                self.add(
                    node.line_of(key),
                    f"{path}.{key}" if path else key,
                    f"unknown key{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}",
                )


def node_line(node: object, key: str) -> int | None:
    return node.line_of(key) if isinstance(node, MarkedDict) else None


def section_mapping(
    problems: Problems, parent: object, key: str, path: str, *, required: bool = False
) -> MarkedDict | None:
    value = parent.get(key) if isinstance(parent, dict) else None
    if value is None:
        if required:
            problems.add(node_line(parent, key), path, "missing: expected a mapping")
        return None
    if not isinstance(value, MarkedDict):
        problems.add(node_line(parent, key), path, f"expected a mapping, got {shown(value)}")
        return None
    return value


def column_names(problems: Problems, value: object, line: int | None, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        problems.add(line, path, f"expected a list of column names, got {shown(value)}")
        return ()
    return tuple(items)


def sql_text(problems: Problems, node: MarkedDict, key: str, path: str) -> str | None:
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


def _quoted_sql(sql: str, limit: int = 200) -> str:
    """The expression as quoted in a problem: its start when it is long (it may be 10,000
    characters, and the problem already says where it is)."""
    return sql if len(sql) <= limit else f"{sql[:limit]}… ({len(sql):,} characters)"


def check_sql(
    problems: Problems,
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
