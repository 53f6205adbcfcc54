"""The layers import one way only (docs/architecture.md, "The layers"): each module may use those
to its left."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "kpictl"

# Packages (and the few top-level modules) in import order: each may use those to its left.
# Inside a package listed in WITHIN, its modules keep that order (the package's __init__
# may import any module of its own package). docs/architecture.md explains them.
LAYERS: list[set[str]] = [
    {"errors"},
    {"sql", "redact"},  # sql: the spec's expressions; redact: PII masking of free text
    {"io"},  # reading logs into canonical frames
    {"sample"},  # the synthetic sample writer (its frames in io.schema's canonical types)
    {"spec"},
    {"engine"},
    {"init"},  # kpictl init: detect the kind of logs, propose a mapping, write a spec
    {"projection"},  # kpictl project: cost at a volume, peak exposure
    {"stats"},
    {"comparison", "review"},  # review: the human review loop (sample and score)
    {"render"},
    {"scorecard"},  # the report (named so the package does not shadow kpictl.report)
    {"commands"},  # between the options and the library call: option values, spec, sources
    {"cli"},
]
WITHIN: dict[str, list[str]] = {
    "sql": ["tree", "expr", "dialect"],
    "io": [
        "schema",
        "inputbytes",
        "formats",
        "cache",
        "remote",  # a source kpictl never reads (s3a://…, a table): what its engine told
        "request",  # what to read for a source, what a file gave, the read log
        "files",  # paths, globs, folders, hive partitions
        "columns",  # column mapping and canonical typing
        "jsonl",  # JSONL parsed once, errors located
        "rowchecks",  # every row checked, located; epoch units; Int64 sums
        "read",  # load_source / load_frames / load_requests, Sources
        "pricing",
    ],
    # the model, the shared problems collector, one module of rules per section, loading
    "spec": [
        "yamlmarks",
        "model",
        "problems",
        "defaults",
        "sources",
        "pricing",
        "tables",
        "kpis",
        "baselines",
        "fairness",
        "load",
        "jsonschema",
    ],
    "engine": [
        "rollup",
        "outcomes",
        "sources",
        "findings",  # what a data check finds: literal matches, missing columns, cost coverage
        "origins",  # the (source, column) pairs a column or a KPI's value comes from
        "literals",  # the literals compared with columns, a column's most frequent values
        "scans",  # the data checks' passes over the sources (shared_scans, shared_row)
        "costcoverage",  # priced sources' cost-bearing and known-cost rows
        "datacheck",  # check_data, require_columns
        "checksources",  # kpictl check: the whole picture, per source
        "shapes",
        "interface",
        "window",  # as-of, the window, a source's rows up to as-of
        "notes",  # the notes under a KPI table
        "selection",  # --kpi, --by, --where checked; the columns a run reads
        "facts",  # rollup → derive → row tables (polars)
        "finish",  # formulas, order and metadata of every engine's KPI table
        "kpis",  # KPI values per grouping set (polars)
        "unitstats",  # compare's per-unit sufficient statistics (polars)
        "polarsengine",  # PolarsEngine
        "compute",  # run_compute: the orchestration
        "costs",
        "sqlsource",
        "sqlplan",
        "duck",
        "spark",
    ],
    "init": ["detect", "mapping", "write"],
    # the choices and shared options; the app and its error boundary; the commands, registered
    # in the order of `kpictl --help` (cli/__init__.py imports them)
    "cli": ["options", "app", "compute", "compare", "checks", "cache", "review", "__main__"],
    # the scenario's constants, draws, conversations, their timelines, the three generators
    "sample": [
        "scenario",
        "draws",
        "conversations",
        "timeline",
        "generate",
        "business",
        "write",
    ],
    # controls: the stderr messages' escaping; text: what every writer shares; one module per
    # output format; writers: the registry of formats and the one dispatch, render()
    "render": ["controls", "text", "files", "table", "json", "csv", "markdown", "writers", "html"],
    "scorecard": [
        "model",  # options, gathered data, result; the status vocabulary
        "markdown",  # tables, code spans, number formats, redaction of data values
        "lineage",  # what a KPI reads (tables, columns, entries)
        "quality",  # data-quality checks and the caveats they put on KPIs
        "charts",  # matplotlib (lazily imported)
        "tiles",  # the KPI tiles: value, bounds' status, comparison; what the agent settles alone
        "slices",  # the current and baseline arms or periods; compute over one slice
        "cohorts",  # each --by value against the rest
        "drilldown",  # each failure type's latest conversations, and the columns it reads
        "gather",  # runs compute/compare/facts: everything the sections show
        "roi",  # the money: "is the agent worth it?" and the ROI section
        "appendix",  # data quality, drill-down, method and provenance
        "sections",  # pure: gathered data → Markdown sections, in order
        "report",  # the public entry: run_report, report
    ],
    "stats": [
        "core",
        "means",
        "ratios",
        "proportions",
        "quantiles",
        "paired",
        "bootstrap",
        "corrections",
        "srm",
        "heterogeneity",
        "power",
        "sequential",
        "cuped",
        "agreement",
        "stratified",
        "trend",
    ],
    "comparison": [
        "model",  # options, arms, design, cells, result, statuses
        "partition",  # an arm split once into groups; a part's statistics from the whole
        "arms",  # the two arms: restrictions of facts, their checks, SRM
        "cells",  # one KPI × cohort tested by its shape (WITHIN_SUBPACKAGE["comparison.cells"])
        "verdicts",  # thresholds, the sequential form, the result table
        "heterogeneity",
        "fairness",
        "run",  # run_compare, compare_arms, compare
    ],
    # the review file's columns, drawing a sample, reading labels, scoring, a score's numbers
    "review": ["columns", "sampling", "labels", "scores", "summary"],
}
# Subpackages of a package (dotted below kpictl): their modules keep this order, and none
# imports the subpackage's __init__ (the registry that imports them all).
WITHIN_SUBPACKAGE: dict[str, list[str]] = {
    # what every format shares, then one module per input format
    "io.formats": ["records", "chat", "otlp"],
    # what every shape shares, one module per KPI shape, then the one dispatch by shape
    "comparison.cells": [
        "common",
        "cuped",
        "additive",
        "paired",
        "quantile",
        "pass_k",
        "formula",
        "untestable",
        "dispatch",
    ],
}
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
ONLY_IN = {
    "typer": {"cli"},
    "rich": {"render", "cli"},
    "scipy": {"stats"},
    "matplotlib": {"scorecard"},
    "sqlglot": {"sql"},  # every question about an expression is asked of sql/tree.py
}


def unit_of(dotted: str) -> tuple[str, int, int]:
    """(package or top module, its layer, its rank inside the package) of `kpictl.a.b`."""
    parts = dotted.split(".")[1:]
    top = parts[0]
    inner = parts[1] if len(parts) > 1 else "__init__"
    order = WITHIN.get(top, [])
    if inner != "__init__" and order:
        assert inner in order, f"give kpictl.{top}.{inner} a place in WITHIN[{top!r}]"
    return top, RANK[top], order.index(inner) if inner in order else -1


def subpackage_rank(dotted: str) -> tuple[str, int] | None:
    """(subpackage, rank inside it) of `kpictl.a.b.c` in a subpackage of WITHIN_SUBPACKAGE;
    the subpackage itself (its __init__) ranks after all its modules."""
    parts = dotted.split(".")[1:]
    sub = ".".join(parts[:2])
    if sub not in WITHIN_SUBPACKAGE:
        return None
    order = WITHIN_SUBPACKAGE[sub]
    if len(parts) == 2:
        return sub, len(order)
    assert parts[2] in order, f"give {dotted} a place in WITHIN_SUBPACKAGE[{sub!r}]"
    return sub, order.index(parts[2])


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("kpictl"):
                # `from kpictl.io import schema`: a submodule when it is one, else the module
                for alias in node.names:
                    candidate = PACKAGE.joinpath(*node.module.split(".")[1:], alias.name)
                    is_module = candidate.with_suffix(".py").exists() or candidate.is_dir()
                    names.add(f"{node.module}.{alias.name}" if is_module else node.module)
            else:
                names.add(node.module)
    return names


def dotted_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in relative.parts if p != "__init__"]
    return ".".join(["kpictl", *parts])


FILES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")
MODULES = [dotted_name(p) for p in FILES]


def test_every_module_has_a_layer() -> None:
    tops = {m.split(".")[1] for m in MODULES}
    assert tops <= set(RANK), f"give these a layer: {tops - set(RANK)}"


@pytest.mark.parametrize("path", FILES, ids=MODULES)
def test_imports_point_left(path: Path) -> None:
    module = dotted_name(path)
    top, layer, inner = unit_of(module)
    for name in imports_of(path):
        first = name.split(".")[0]
        if first == "kpictl":
            if name in ("kpictl", "kpictl.__version__"):
                continue
            target_top, target_layer, target_inner = unit_of(name)
            if target_top == top:
                if path.name == "__init__.py":
                    continue  # a package's __init__ may re-export its own modules
                here, there = subpackage_rank(module), subpackage_rank(name)
                if here is not None and there is not None and here[0] == there[0]:
                    assert there[1] < here[1], (
                        f"{module} must not import {name} "
                        f"(order inside {here[0]}: {WITHIN_SUBPACKAGE[here[0]]})"
                    )
                    continue
                assert target_inner < inner, (
                    f"{module} must not import {name} (order inside {top}: {WITHIN.get(top)})"
                )
            else:
                assert target_layer < layer, f"{module} must not import {name}"
        elif first in ONLY_IN:
            assert top in ONLY_IN[first], f"only {ONLY_IN[first]} may import {first}"


@pytest.mark.parametrize(
    "path", [p for p in FILES if dotted_name(p).split(".")[1] != "cli"], ids=dotted_name
)
def test_library_never_prints_or_exits(path: Path) -> None:
    module = dotted_name(path)
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("print", "exit"), f"{module} calls {node.func.id}()"
        if isinstance(node, ast.Attribute) and node.attr == "exit":
            assert not (isinstance(node.value, ast.Name) and node.value.id == "sys"), module


def test_compute_and_its_renderers_do_not_import_scipy() -> None:
    """`kpictl compute` needs no statistics: importing the CLI, the engine and the renderers
    leaves scipy (and compare, review, projection, which import it) unloaded — 0.5 s of every
    compute run when render imported them at module level."""
    import subprocess
    import sys

    code = (
        "import sys, kpictl.cli, kpictl.render.writers, kpictl.engine.compute, "
        "kpictl.engine.sources; heavy = [m for m in ('scipy', 'kpictl.stats', "
        "'kpictl.comparison.run', 'kpictl.review', "
        "'kpictl.projection') if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("command", [["--help"], ["compute", "--help"], ["--version"]])
def test_help_loads_neither_polars_nor_sqlglot(command: list[str]) -> None:
    """`kpictl --help` and a command's help answer from typer alone: the data and SQL libraries
    (polars, sqlglot, numpy, scipy, rich) and the spec are imported by the command bodies that
    need them. Measured with `python -X importtime`: `kpictl compute --help` imports kpictl.cli
    in ~0.17 s; sqlglot and its DuckDB dialect alone would add ~0.09 s."""
    import subprocess
    import sys

    code = (
        "import sys; from kpictl.cli import main; sys.argv = ['kpictl', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code or 0\n"
        "heavy = [m for m in ('polars', 'sqlglot', 'numpy', 'scipy', 'rich', 'kpictl.spec') "
        "if m in sys.modules]\nprint(heavy, file=sys.stderr); sys.exit(1 if heavy else code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *command], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stderr) == (0, "[]\n")
    assert done.stdout.strip()  # the help (or version) was printed


def test_the_clis_messages_load_no_renderer(tmp_path: Path) -> None:
    """`kpictl sample`'s `kpictl: wrote …` lines (and every `kpictl: error: …`) are escaped by
    `render/controls.py` alone: the renderers, the spec and sqlglot stay unloaded (they cost
    `kpictl sample` ~0.35 s of imports when the message escaping lived in the renderers' module)."""
    import subprocess
    import sys

    code = (
        "import sys; from kpictl.cli import main\n"
        f"sys.argv = ['kpictl', 'sample', '-n', '5', '-o', {str(tmp_path / 'logs')!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code or 0\n"
        "heavy = [m for m in ('sqlglot', 'rich', 'kpictl.spec', 'kpictl.render.text') "
        "if m in sys.modules]\nprint(heavy); sys.exit(1 if heavy else code)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr
    assert done.stderr.count("kpictl: wrote ") == 3


TESTS = Path(__file__).resolve().parent


def _patched_names(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of what each `monkeypatch.setattr` / `setattr` / `patch(…)` call replaces:
    the attribute named by its second argument, or the last part of a dotted target text."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called not in {"setattr", "patch", "object"} or not node.args:
            continue
        texts = [a.value for a in node.args[:2] if isinstance(a, ast.Constant)]
        names = [t.rsplit(".", 1)[-1] for t in texts if isinstance(t, str)]
        found += [(node.lineno, n) for n in names]
    return found


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.py")), ids=lambda p: p.name)
def test_no_test_monkeypatches_a_private_name(path: Path) -> None:
    """A test replaces only public names (docs/architecture.md, "Invariants the tests hold"): what
    it needs to watch goes through a public seam (`io.read.watch_file_reads`,
    `engine.interface.watch_fact_builds`)."""
    private = [
        f"{path.name}:{line}: {name}"
        for line, name in _patched_names(ast.parse(path.read_text()))
        if name.startswith("_") and not name.startswith("__")
    ]
    assert private == []


def test_the_private_patch_finder_finds_one() -> None:
    source = (
        'monkeypatch.setattr(kio, "_read_jsonl", f)\n'
        'monkeypatch.setattr("kpictl.io.read._checked_frame", f)\n'
        'mock.patch("kpictl.cli._run")\n'
        'monkeypatch.setattr(rollup, "partition_hash", f)\n'
    )
    assert _patched_names(ast.parse(source)) == [
        (1, "_read_jsonl"),
        (2, "_checked_frame"),
        (3, "_run"),
        (4, "partition_hash"),
    ]
