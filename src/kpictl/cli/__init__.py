"""The `kpictl` command line: parse arguments, call the library, render. Nothing else.

This package is the only one that imports typer and the only place that turns errors into exit
codes (see `KpictlGroup.invoke`). Heavy modules (polars, rich) are imported inside commands so
`kpictl --version` starts fast.
"""

from __future__ import annotations

import importlib
import sys

from kpictl.cli.app import app, buffered_stdout, closed_pipe
from kpictl.cli.options import EngineName, FailLevel, OutputFormat

__all__ = ["EngineName", "FailLevel", "OutputFormat", "app", "main"]

# Each module's commands register on `app` when it is imported: in this order, the order of
# `kpictl --help`.
COMMAND_MODULES = ("compute", "compare", "checks", "cache", "review")
for _name in COMMAND_MODULES:
    importlib.import_module(f"kpictl.cli.{_name}")


def main() -> None:
    """Console-script entry point."""
    buffered_stdout()
    try:
        app()
    finally:
        try:  # what is still buffered goes out here: the reader may have gone by now
            sys.stdout.flush()
        except BrokenPipeError:
            closed_pipe()
