"""The layers import one way only (STYLE.md): each module may use those to its left."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "kpictl"

# errors   io (read logs)   spec   engine   stats   render   report   cli — with their helpers.
LAYERS: list[set[str]] = [
    {"errors"},
    {"schema", "sqlexpr", "yamlmarks", "redact", "inputbytes"},
    {"formats", "cache"},  # log formats the io layer reads, its JSONL cache (imported by io)
    {"io", "sample", "pricing"},
    {"rollup"},
    {"spec"},
    {"outcomes"},  # business events attributed to conversations (read by sources)
    {"sources"},
    {"datacheck"},
    {"engine"},
    {"costs"},  # per-conversation costs (scorecard ROI, kpictl project)
    {"projection"},  # kpictl project: cost at a volume, peak exposure
    {"stats"},
    {"comparison", "review"},  # review: the human review loop (sample and score)
    {"render"},
    {"scorecard"},
    {"cli"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
ONLY_IN = {
    "typer": {"cli"},
    "rich": {"render", "cli"},
    "scipy": {"stats"},
    "matplotlib": {"scorecard"},
}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "kpictl":
                names.update(f"kpictl.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def test_every_module_has_a_layer() -> None:
    assert set(MODULES) <= set(RANK), f"give these a layer: {set(MODULES) - set(RANK)}"


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_left(module: str) -> None:
    for name in imports_of(PACKAGE / f"{module}.py"):
        top = name.split(".")[0]
        if top == "kpictl":
            target = name.split(".")[1]
            if target == "__version__":
                continue
            assert RANK[target] < RANK[module], f"{module} must not import kpictl.{target}"
        elif top in ONLY_IN:
            assert module in ONLY_IN[top], f"only {ONLY_IN[top]} may import {top}"


@pytest.mark.parametrize("module", [m for m in MODULES if m != "cli"])
def test_library_never_prints_or_exits(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
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
        "import sys, kpictl.cli, kpictl.render, kpictl.engine, kpictl.sources; "
        "heavy = [m for m in ('scipy', 'kpictl.stats', 'kpictl.comparison', 'kpictl.review', "
        "'kpictl.projection') if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
