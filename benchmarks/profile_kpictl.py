"""Where `kpictl compute` spends its time: stage timings of one in-process run.

    python benchmarks/profile_kpictl.py DATA/events DATA/tool_calls [--repeat 1]

Wraps kpictl's stage functions with timers (nothing in kpictl is changed) and runs what
`kpictl compute --format json` runs: import, load_spec, load_sources (per file: JSONL parse,
Parquet scan, row checks), the as-of (latest timestamp), the rollup (per-conversation facts),
derive, and the KPI aggregation (everything after build_facts: row tables with their lookup
joins, per-KPI queries, collect_all, ordering), then JSON rendering. Nested stages are indented;
their time is included in the enclosing stage.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_timings: list[tuple[int, str, float]] = []
_depth = 0


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _depth
        index = len(_timings)
        _timings.append((_depth, name, 0.0))
        _depth += 1
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _depth -= 1
            _timings[index] = (_timings[index][0], name, time.perf_counter() - start)

    return wrapper


def _merge(timings: list[tuple[int, str, float]]) -> list[tuple[int, str, float, int]]:
    """Consecutive calls of one stage at one depth → one line with a call count."""
    merged: list[tuple[int, str, float, int]] = []
    for depth, name, seconds in timings:
        if merged and merged[-1][0] == depth and merged[-1][1] == name:
            d, n, s, count = merged[-1]
            merged[-1] = (d, n, s + seconds, count + 1)
        else:
            merged.append((depth, name, seconds, 1))
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("events")
    parser.add_argument("tool_calls")
    parser.add_argument("-c", "--config", default=str(ROOT / "kpi_definitions.yaml"))
    args = parser.parse_args(argv)

    start = time.perf_counter()
    import polars as pl

    t_polars = time.perf_counter() - start
    import kpictl.cli  # noqa: F401  (what the console script imports)
    from kpictl.engine import compute as engine
    from kpictl.engine import facts as facts
    from kpictl.engine import polarsengine as polarsengine
    from kpictl.engine import sources as sources
    from kpictl.engine import window as window
    from kpictl.io import read as io
    from kpictl.io import rowchecks as rowchecks
    from kpictl.render import json as render
    from kpictl.spec import model as spec

    t_import = time.perf_counter() - start
    _timings.append((0, "import polars", t_polars))
    _timings.append((0, "import kpictl (polars included)", t_import))

    # each stage timed where it is looked up: in the module of the stage that calls it
    io.read_jsonl = _timed("JSONL parse (read_ndjson)", io.read_jsonl)
    columns_step = _timed("canonical columns (plan)", rowchecks.canonical_columns)
    rowchecks.canonical_columns = io.canonical_columns = columns_step
    io._load_file = _timed("load file (row count + row checks)", io._load_file)
    window.latest_timestamp = _timed("as-of: latest timestamp", window.latest_timestamp)
    facts.rollup_table = _timed("rollup (per-conversation group-by)", facts.rollup_table)
    facts.derive_columns = _timed("derive columns", facts.derive_columns)
    polarsengine.build_facts = _timed("build_facts", polarsengine.build_facts)

    loaded_spec = _timed("load_spec", spec.load_spec)(args.config)
    loaded = _timed("load_sources", sources.load_sources)(
        loaded_spec, {"events": [args.events], "tool_calls": [args.tool_calls]}
    )
    original_collect_all = pl.collect_all
    pl.collect_all = _timed("KPI queries: collect_all", original_collect_all)
    result = _timed("run_compute", engine.run_compute)(loaded_spec, loaded)
    pl.collect_all = original_collect_all
    _timed("render JSON", render.to_json)(result, loaded.files)
    total = time.perf_counter() - start

    print(f"kpictl stages ({result.table.height} result rows), seconds:")
    for depth, name, seconds, count in _merge(_timings):
        calls = f" ×{count}" if count > 1 else ""
        print(f"  {'  ' * depth}{name + calls:<{46 - 2 * depth}} {seconds:7.3f}")
    print(f"  {'total in process':<46} {total:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
