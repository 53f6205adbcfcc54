"""The public Python API: `import kpictl` gives the documented names, and they stay functions."""

from __future__ import annotations

import importlib

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
