"""The documents the code cites exist in the repo, and what they are cited for is in them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()
PYTHON_FILES = sorted(
    p for folder in ("src", "tests", "benchmarks") for p in (ROOT / folder).rglob("*.py")
)
SOURCES = [*(p for p in PYTHON_FILES if p.resolve() != HERE), ROOT / "README.md"]
# the design notes and house rules kept outside the repo (a reader of the repo cannot open them)
OUTSIDE = (
    "statistics.md",
    "performance-notes",
    "log-formats",
    "kpi-spec.md",
    "STYLE.md",
    "../shared",
)


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a document's headings."""
    found = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_docs_exist_and_nothing_outside_the_repo_is_cited(path: Path) -> None:
    text = path.read_text()
    for cited in set(re.findall(r"docs/[\w.-]+\.md", text)):
        assert (ROOT / cited).is_file(), f"{path.name} cites {cited}, which is not in the repo"
    for name in OUTSIDE:
        assert name not in text, f"{path.name} cites {name}: cite docs/ instead"


def test_every_method_code_the_code_cites_has_its_section() -> None:
    """Docstrings cite methods by code (A1 = "Two arms: Welch's t"); each code is a heading."""
    methods = (ROOT / "docs" / "methods.md").read_text()
    headed = {
        code
        for line in methods.splitlines()
        if line.startswith("## ")
        for code in re.findall(r"\bA\d{1,2}\b", line)
    }
    cited: dict[str, str] = {}
    for path in [*(ROOT / "src" / "kpictl").rglob("*.py"), *(ROOT / "tests").glob("*.py")]:
        if path.resolve() == HERE:
            continue
        for code in re.findall(r"\bA\d{1,2}\b", path.read_text()):
            cited.setdefault(code, path.name)
    missing = {code: where for code, where in cited.items() if code not in headed}
    assert not missing, f"codes cited without a section in docs/methods.md: {missing}"


@pytest.mark.parametrize("name", ["methods.md", "formats.md", "architecture.md"])
def test_links_inside_a_document_resolve(name: str) -> None:
    text = (ROOT / "docs" / name).read_text()
    targets = set(re.findall(r"\]\(#([\w-]+)\)", text))
    assert targets <= anchors(text), f"docs/{name}: no heading for {targets - anchors(text)}"


def test_readme_links_to_the_docs_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    for doc, anchor in re.findall(r"\]\((docs/[\w.-]+\.md)(?:#([\w-]+))?\)", readme):
        assert (ROOT / doc).is_file()
        if anchor:
            assert anchor in anchors((ROOT / doc).read_text()), f"README links {doc}#{anchor}"
