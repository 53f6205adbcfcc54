"""Rules of the `defaults:` and `params:` sections."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kpictl.errors import did_you_mean
from kpictl.io import schema as canonical
from kpictl.spec.model import (
    CORRECTIONS,
    DEFAULT_KEYS,
    ENGINES,
    GRAINS,
    LAYERS,
    NAME_PATTERN,
    Defaults,
    parse_duration,
    shown,
)
from kpictl.spec.problems import Problems, column_names, section_mapping
from kpictl.spec.yamlmarks import (
    MarkedDict,
)


def build_defaults(problems: Problems, data: MarkedDict) -> Defaults:
    node = section_mapping(problems, data, "defaults", "defaults")
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
    for key, allowed in (
        ("grain", GRAINS),
        ("correction", CORRECTIONS),
        ("layer", LAYERS),
        ("engine", ENGINES),
    ):
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
        changes["cohorts"] = column_names(
            problems, node["cohorts"], node.line_of("cohorts"), "cohorts"
        )
    if "min_sample" in node:
        value = node["min_sample"]
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            changes["min_sample"] = value
        else:
            problems.add(
                node.line_of("min_sample"),
                "defaults.min_sample",
                f"expected a whole number ≥ 0, got {shown(value)}",
            )
    if "confidence" in node:
        value = node["confidence"]
        if isinstance(value, float) and 0.5 < value < 1:
            changes["confidence"] = value
        else:
            problems.add(
                node.line_of("confidence"),
                "defaults.confidence",
                f"expected a number between 0.5 and 1 such as 0.95, got {shown(value)}",
            )
    return replace(result, **changes)


def build_params(problems: Problems, data: MarkedDict) -> dict[str, bool | int | float | str]:
    node = section_mapping(problems, data, "params", "params")
    params: dict[str, bool | int | float | str] = {}
    if node is None:
        return params
    for key, value in node.items():
        if not NAME_PATTERN.match(key):
            problems.add(node.line_of(key), f"params.{key}", "a param name must be an identifier")
        elif key in canonical.BUILTIN_COLUMNS:
            problems.add(node.line_of(key), f"params.{key}", "is a built-in column; rename it")
        elif isinstance(value, bool | int | float | str):
            params[key] = value
        else:
            problems.add(
                node.line_of(key),
                f"params.{key}",
                f"expected a number, text or true/false, got {shown(value)}",
            )
    return params
