"""`kpi_definitions.yaml` → a frozen, fully validated `Spec`.

The whole file is validated at load, before any data is read, and every problem is reported at
once with `file:line`, the path of the key it concerns, what was expected and a "did you mean"
where a name is close. See the README's "The KPI spec" section for the format.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from kpictl.errors import SpecError, SpecProblem, did_you_mean
from kpictl.spec.baselines import build_baselines
from kpictl.spec.defaults import build_defaults, build_params
from kpictl.spec.fairness import build_fairness
from kpictl.spec.kpis import build_kpis
from kpictl.spec.model import SPEC_VERSION, TOP_KEYS, Spec, shown
from kpictl.spec.pricing import build_pricing
from kpictl.spec.problems import Problems, node_line
from kpictl.spec.sources import build_sources
from kpictl.spec.tables import build_tables
from kpictl.spec.yamlmarks import (
    MarkedDict,
    decode_spec,
    load_marked_yaml,
    read_spec_bytes,
)


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
    problems = Problems(file)
    if not isinstance(data, MarkedDict):
        raise SpecError([SpecProblem(file, 1, "(top)", "expected a mapping of spec sections")])
    problems.unknown_keys(data, TOP_KEYS, "")
    version = data.get("version")
    if type(version) is not int or version != SPEC_VERSION:
        problems.add(
            data.line_of("version"),
            "version",
            f"expected version: {SPEC_VERSION}, got {shown(version)}",
        )
    defaults = build_defaults(problems, data)
    params = build_params(problems, data)
    sources = build_sources(problems, data, spec_path.parent)
    tables, column_types = build_tables(problems, data, sources, params)
    kpis = build_kpis(problems, data, defaults, tables, column_types, params)
    baselines = build_baselines(problems, data, kpis, tables, column_types, params)
    pricing = build_pricing(problems, data)
    fairness = build_fairness(problems, data, kpis, tables, column_types)
    # An invalid baseline is reported where it is declared, not again where it is used.
    declared = set(data["baselines"]) if isinstance(data.get("baselines"), dict) else set()
    declared |= set(baselines)
    if defaults.baseline is not None and defaults.baseline not in declared:
        problems.add(
            node_line(data.get("defaults"), "baseline"),
            "defaults.baseline",
            f"no baseline named {defaults.baseline!r}{did_you_mean(defaults.baseline, baselines)}",
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
