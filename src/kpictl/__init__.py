"""kpictl: verified-outcome KPIs for AI agents, from agent logs, declared in YAML.

The Python API (each command of the CLI is a thin layer over these)::

    import kpictl
    spec = kpictl.load_spec("kpi_definitions.yaml")
    sources = kpictl.load_sources(spec)              # or paths={"events": ["logs/"]}
    table = kpictl.facts(spec, sources)              # one row per conversation
    kpis = kpictl.compute(spec, sources, by=["channel"], grain="day")   # polars DataFrame
    changes = kpictl.compare(spec, sources, baseline="holdout")         # one row per KPI
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "CompareOptions",
    "CompareResult",
    "ComputeOptions",
    "ComputeResult",
    "EmptyInputError",
    "FactSet",
    "InputDataError",
    "KpictlError",
    "ProjectionOptions",
    "ReportOptions",
    "SampleOptions",
    "SpecError",
    "UsageError",
    "__version__",
    "compare",
    "compute",
    "draw_review_sample",
    "fact_set",
    "facts",
    "load_frames",
    "load_sources",
    "load_spec",
    "parse_volume",
    "report",
    "run_compare",
    "run_compute",
    "run_projection",
    "run_report",
    "score_review",
]

if TYPE_CHECKING:
    from kpictl.comparison.model import CompareOptions, CompareResult
    from kpictl.comparison.run import compare, run_compare
    from kpictl.engine.compute import ComputeResult, compute, fact_set, facts, run_compute
    from kpictl.engine.interface import ComputeOptions, FactSet
    from kpictl.engine.sources import load_frames, load_sources
    from kpictl.errors import EmptyInputError, InputDataError, KpictlError, SpecError, UsageError
    from kpictl.projection import ProjectionOptions, parse_volume, run_projection
    from kpictl.review import SampleOptions, draw_review_sample, score_review
    from kpictl.scorecard.report import ReportOptions, report, run_report
    from kpictl.spec import load_spec

_LAZY = {
    "ProjectionOptions": "kpictl.projection",
    "parse_volume": "kpictl.projection",
    "run_projection": "kpictl.projection",
    "CompareOptions": "kpictl.comparison.model",
    "CompareResult": "kpictl.comparison.model",
    "compare": "kpictl.comparison.run",
    "run_compare": "kpictl.comparison.run",
    "ReportOptions": "kpictl.scorecard.report",
    "report": "kpictl.scorecard.report",
    "run_report": "kpictl.scorecard.report",
    "SampleOptions": "kpictl.review",
    "draw_review_sample": "kpictl.review",
    "score_review": "kpictl.review",
    "ComputeOptions": "kpictl.engine.interface",
    "ComputeResult": "kpictl.engine.compute",
    "compute": "kpictl.engine.compute",
    "facts": "kpictl.engine.compute",
    "fact_set": "kpictl.engine.compute",
    "FactSet": "kpictl.engine.interface",
    "run_compute": "kpictl.engine.compute",
    "EmptyInputError": "kpictl.errors",
    "InputDataError": "kpictl.errors",
    "KpictlError": "kpictl.errors",
    "SpecError": "kpictl.errors",
    "UsageError": "kpictl.errors",
    "load_frames": "kpictl.engine.sources",
    "load_sources": "kpictl.engine.sources",
    "load_spec": "kpictl.spec",
}


def __dir__() -> list[str]:
    """`dir(kpictl)` lists the public API (imported lazily, so not yet in the module)."""
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    """Import the public API lazily, so `kpictl --version` does not pay for polars."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'kpictl' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
