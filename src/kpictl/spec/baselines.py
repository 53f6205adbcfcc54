"""Rules of the `baselines:` section: previous / between / control-treatment / values, design."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import polars as pl

from kpictl.errors import did_you_mean
from kpictl.io import schema as canonical
from kpictl.spec.model import (
    BASELINE_DESIGNS,
    BASELINE_KEYS,
    BASELINE_KINDS,
    BaselineSpec,
    KpiSpec,
    TableSpec,
    param_dtype,
    parse_duration,
    parse_timestamp,
    primary_table,
    shown,
)
from kpictl.spec.problems import Problems, check_sql, section_mapping
from kpictl.spec.yamlmarks import (
    MarkedDict,
)
from kpictl.sql.expr import (
    ExpressionShape,
)


def build_baselines(
    problems: Problems,
    data: MarkedDict,
    kpis: Mapping[str, KpiSpec],
    tables: Mapping[str, TableSpec],
    column_types: Mapping[str, dict[str, pl.DataType]],
    params: Mapping[str, bool | int | float | str],
) -> dict[str, BaselineSpec]:
    node = section_mapping(problems, data, "baselines", "baselines")
    baselines: dict[str, BaselineSpec] = {}
    if node is None:
        return baselines
    extras = {**canonical.BUILTIN_COLUMNS, **{k: param_dtype(v) for k, v in params.items()}}
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
                            f"expected a number, got {shown(number)}",
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
                        check_sql(
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
    problems: Problems, body: MarkedDict, spec: BaselineSpec, path: str
) -> str | None:
    """A baseline's declared `design` (observational unless `randomized` is declared), or None
    after reporting why the declaration cannot hold."""
    design = body.get("design", "observational")
    line = body.line_of("design") if "design" in body else spec.line
    if design not in BASELINE_DESIGNS:
        problems.add(
            line,
            f"{path}.design",
            f"expected randomized or observational, got {shown(design)}"
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
