"""errors: the typed errors, the exit codes and the one did-you-mean every message uses."""

from __future__ import annotations

import ast
from pathlib import Path

from kpictl.errors import did_you_mean

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "kpictl"


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(PACKAGE)), ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def test_did_you_mean_names_up_to_three_close_candidates_in_order_of_closeness() -> None:
    assert did_you_mean("escalaton_rate", ["escalation_rate", "cost"]) == (
        " (did you mean 'escalation_rate'?)"
    )
    # difflib ranks by ratio: 'chanel' ~ 'channel' (0.92) before 'chapel' (0.83); duplicates once
    assert did_you_mean("chanel", ["channel", "chapel", "channel", "intent"]) == (
        " (did you mean 'channel' or 'chapel'?)"
    )
    assert did_you_mean("zzz", ["channel", "intent"]) == ""
    assert did_you_mean("a", []) == ""


def test_did_you_mean_has_one_definition_in_errors() -> None:
    """Every 'unknown name' message suggests alike: nothing else defines a did-you-mean or asks
    difflib for close matches (a second copy would drift: other cutoff, other wording)."""
    found = []
    for name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and "did_you_mean" in node.name:
                found.append(f"{name}: def {node.name}")
            if isinstance(node, ast.Attribute) and node.attr == "get_close_matches":
                found.append(f"{name}: difflib.get_close_matches")
            if isinstance(node, ast.ImportFrom) and node.module == "difflib":
                found.append(f"{name}: from difflib import …")
    assert sorted(found) == [
        "errors.py: def did_you_mean",
        "errors.py: difflib.get_close_matches",
    ]
