"""The public Python API: `import kpictl` gives the documented names, and they stay functions."""

from __future__ import annotations

import importlib
from pathlib import Path

import kpictl


def test_public_names_resolve() -> None:
    for name in kpictl.__all__:
        assert getattr(kpictl, name) is not None, name


def test_api_functions_are_not_shadowed_by_submodules() -> None:
    """A submodule named like an API function would replace it once imported."""
    for module in (
        "kpictl.cli",
        "kpictl.comparison.run",
        "kpictl.scorecard.report",
        "kpictl.engine.compute",
    ):
        importlib.import_module(module)
    for name in ("compare", "compute", "facts", "report", "load_spec", "load_sources"):
        assert callable(getattr(kpictl, name)) and not isinstance(
            getattr(kpictl, name), type(kpictl)
        ), name


def test_dir_lists_the_public_api() -> None:
    listed = dir(kpictl)
    for name in kpictl.__all__:
        assert name in listed, name
    assert {"compute", "compare", "facts", "load_frames", "load_sources", "load_spec"} <= set(
        listed
    )


# The modules whose docstrings hold the API's examples (README "The Python API"); they run on
# the shipped sample from the repository's root, as the README shows them.
DOCTESTED = (
    "kpictl.engine.interface",
    "kpictl.engine.sources",
    "kpictl.engine.compute",
    "kpictl.comparison.run",
)


def test_the_api_docstring_examples_run() -> None:
    import contextlib
    import doctest

    root = Path(__file__).resolve().parents[1]
    with contextlib.chdir(root):
        for name in DOCTESTED:
            module = importlib.import_module(name)
            failed, attempted = doctest.testmod(
                module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
            )
            assert attempted > 0 and failed == 0, name


def test_load_frames_applies_the_spec_column_mapping(tmp_path: Path) -> None:
    """A frame with its own field names is mapped by the spec's `columns:` as a file is."""
    import polars as pl

    from kpictl.spec import load_spec

    root = Path(__file__).resolve().parents[1]
    text = (root / "kpi_definitions.yaml").read_text()
    text = text.replace(
        "      ts: {from: ts, type: timestamp}\n  tool_calls:",
        "      ts: {from: time, type: timestamp}\n      intent: {from: topic}\n  tool_calls:",
        1,
    )
    spec_path = tmp_path / "spec.yaml"
    assert "from: time" in text
    events = pl.read_ndjson(root / "sample_logs/events/events.jsonl").rename(
        {"ts": "time", "intent": "topic"}
    )
    spec_path.write_text(text)
    spec = load_spec(spec_path)
    sources = kpictl.load_frames({"events": events}, spec)
    frame = sources["events"].collect()
    assert frame.schema["ts"] == pl.Datetime("us", "UTC") and frame.height == events.height
    counts = dict(frame.group_by("intent").len().iter_rows())
    assert counts == dict(events.group_by("topic").len().iter_rows())
