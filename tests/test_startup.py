"""What each entry point imports (docs/architecture.md, "Start-up"): a heavy library is imported
by the function that needs it, so a command that does not use it does not pay for it.

Each check runs in a fresh interpreter and reads `sys.modules` after the imports; the figures
in the docstrings are the import's CPU time on the development machine (`python -X importtime`).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# libraries only some commands use: charts, statistics, the SQL engines, the HTML page
HEAVY = ("matplotlib", "scipy", "statsmodels", "duckdb", "pyspark", "markdown_it")


def loaded_after(imports: str, candidates: tuple[str, ...]) -> list[str]:
    """The `candidates` a fresh interpreter has loaded after `import {imports}`."""
    code = (
        f"import sys\nimport {imports}\n"
        f"print(' '.join(m for m in {candidates!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_the_cli_imports_typer_alone() -> None:
    """`import kpictl.cli` (what `kpictl --help` and every command pay first) loads typer and
    nothing heavy: matplotlib ~0.6 s, scipy.stats ~1.3 s, polars ~0.3 s, sqlglot ~0.2 s."""
    others = ("numpy", "polars", "sqlglot", "rich", "yaml", "pyarrow", "pandas")
    assert loaded_after("kpictl.cli", HEAVY + others) == []


@pytest.mark.parametrize(
    ("imports", "absent"),
    [
        # compute, validate, schema, compile, check: numpy is the JSONL byte scan's alone (and a
        # run whose JSONL is cached as Parquet never scans)
        (
            "kpictl.spec, kpictl.engine.compute, kpictl.engine.sources, kpictl.render.writers",
            ("numpy", *HEAVY),
        ),
        # report and compare: scipy is imported by the tests they run, markdown-it by --format
        # html, matplotlib by the charts
        ("kpictl.scorecard.report, kpictl.comparison.run", HEAVY),
        # review sample draws conversations: no test, no scipy
        ("kpictl.review", HEAVY),
    ],
    ids=["compute", "report", "review"],
)
def test_a_command_loads_what_it_uses(imports: str, absent: tuple[str, ...]) -> None:
    assert loaded_after(imports, absent) == []
