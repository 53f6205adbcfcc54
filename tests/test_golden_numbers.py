"""Every number compute and compare print, pinned before a refactor (docs/architecture.md).

The JSON of `compute` and `compare` on the shipped sample and on a 20,000-conversation
`kpictl sample` is kept under tests/golden/numbers/. A refactor must leave every value equal (floats
to 1e-12 relative), every n, pending, status and note identical. A change of a number on purpose
regenerates the files ONLY with `KPICTL_UPDATE_GOLDEN=1` — review the diff before committing:

    KPICTL_UPDATE_GOLDEN=1 pytest tests/test_golden_numbers.py
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from conftest import SHIPPED_SPEC, run
from kpictl.sample import write_sample

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "numbers"
UPDATE = os.environ.get("KPICTL_UPDATE_GOLDEN") == "1"

COMMANDS: dict[str, list[str]] = {
    "compute": ["compute", "-f", "json"],
    "compute_by_channel_intent": ["compute", "-f", "json", "--by", "channel", "--by", "intent"],
    "compute_weekly": ["compute", "-f", "json", "--grain", "week"],
    "compare": ["compare", "-f", "json"],
    "compare_by_channel": ["compare", "-f", "json", "--by", "channel"],
    "compare_previous": ["compare", "-f", "json", "--baseline", "prior_4w"],
}


@pytest.fixture(scope="module")
def large_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("golden-20k")
    write_sample(folder / "logs", conversations=20_000, seed=7, days=30, fmt="parquet")
    return folder


def _close(a: object, b: object, where: str) -> None:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _check(name: str, args: list[str], cwd: Path) -> None:
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        code, out, err = run(*args)
    finally:
        os.chdir(previous)
    assert code == 0, err
    got = json.loads(out)
    golden = GOLDEN / f"{name}.json"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert golden.exists(), "no golden file: run with KPICTL_UPDATE_GOLDEN=1 and review it"
    _close(got, json.loads(golden.read_text()), name)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_shipped_sample_numbers_are_unchanged(name: str) -> None:
    _check(f"sample_{name}", COMMANDS[name], ROOT)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_20k_sample_numbers_are_unchanged(name: str, large_sample: Path) -> None:
    spec = large_sample / "kpi_definitions.yaml"
    if not spec.exists():
        text = SHIPPED_SPEC.read_text().replace("sample_logs/", "logs/")
        spec.write_text(text)
    _check(f"large_{name}", COMMANDS[name], large_sample)
