"""errors: the typed errors, the exit codes and the one did-you-mean every message uses."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import run
from kpictl.errors import ExitCode, did_you_mean

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


def test_every_exit_code_is_in_the_readme_and_the_help() -> None:
    """ExitCode is the one list of exit codes: the README's table and `kpictl --help` say the
    same codes, no more, no fewer."""
    readme = (PACKAGE.parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    documented = [int(m) for m in re.findall(r"^\| (\d+) \|", section, flags=re.MULTILINE)]
    assert documented == [int(code) for code in ExitCode]
    code, out, _ = run("--help")
    assert code == 0
    helped = re.findall(r"\b(\d+)\s+[a-z]", out.split("Exit codes:", 1)[1].split("\n\n", 1)[0])
    assert [int(m) for m in helped] == [int(code) for code in ExitCode]


def test_the_cli_exits_with_exit_code_names_never_numbers() -> None:
    """The CLI raises SystemExit / typer.Exit only with an ExitCode member (a literal 70 beside
    the enum is how a second list of codes starts)."""
    trees = [ast.parse(p.read_text(encoding="utf-8")) for p in (PACKAGE / "cli").glob("*.py")]
    literal = []
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in {"SystemExit", "typer.Exit"}:
            for arg in node.args:
                if any(isinstance(n, ast.Constant) for n in ast.walk(arg)):
                    literal.append(f"line {node.lineno}: {ast.unparse(node)}")
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and node.value.value in {int(code) for code in ExitCode if code > 3}
        ):
            literal.append(f"line {node.lineno}: {ast.unparse(node)}")
    assert literal == []


def test_an_internal_error_exits_70_and_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("kpictl.spec.load_spec", broken)
    code, out, err = run("validate", "-c", "kpi_definitions.yaml")
    assert (code, out) == (ExitCode.INTERNAL_ERROR, "") and code == 70
    assert err == (
        "kpictl: internal error: RuntimeError: boom (please report it; rerun with --traceback "
        "for details)\n"
    )
    assert int(ExitCode.INTERRUPTED) == 130  # the interrupt itself: test_hostile_limits


def test_every_module_imports_did_you_mean_from_errors() -> None:
    found = [
        f"{name}: from {node.module}"
        for name, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and any(alias.name == "did_you_mean" for alias in node.names)
        and node.module != "kpictl.errors"
    ]
    assert found == []
