"""Typed errors raised deep in the library and rendered once, at the CLI edge.

Every error says what went wrong, where (file:line, KPI, column) and, when it can, how to fix it.
The library never prints or exits; `kpictl.cli` maps these classes to exit codes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """The process exit codes, all of them (README "Exit codes" lists the same table; the CLI
    uses these names, never a number)."""

    OK = 0
    DATA_OR_SPEC_ERROR = 1
    USAGE_ERROR = 2
    THRESHOLD_BREACHED = 3  # `--fail-on LEVEL` and some KPI is at or above that level
    INTERNAL_ERROR = 70  # a bug (sysexits' EX_SOFTWARE): please report it
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells expect
    CLOSED_PIPE = 141  # stdout's reader went away (`| head`): 128 + SIGPIPE, as for other tools


class KpictlError(Exception):
    """Base class of every error kpictl reports to a user."""

    exit_code: ExitCode = ExitCode.DATA_OR_SPEC_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class SpecProblem:
    """One problem found in a KPI spec, located at file:line."""

    file: str
    line: int | None
    path: str  # e.g. "kpis.task_completion_rate.numerator"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}"


class SpecError(KpictlError):
    """The KPI spec (kpi_definitions.yaml) is invalid; carries every problem found at once."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the KPI spec:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


class InputDataError(KpictlError):
    """A log file is missing, malformed, or holds a value of the wrong type."""


class EmptyInputError(InputDataError):
    """The inputs hold no rows to compute on."""


class OutputError(KpictlError):
    """An output file cannot be written: a folder, a missing folder, no permission, a full
    disk. Any file already there is left as it was."""


class UsageError(KpictlError):
    """The command line asks for something that cannot be done (unknown KPI, bad --param, …)."""

    exit_code = ExitCode.USAGE_ERROR


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean …?)' suffix naming up to three candidates close to name, else ''.

    The one place every "unknown name" message (spec keys, KPIs, columns, sources, baselines,
    command-line options) gets its suggestion from, so they all suggest alike.
    """
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"
