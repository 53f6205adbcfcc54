"""kpictl compare, a package whose modules name its rooms (docs/architecture.md):

- `model`: what compare is asked and gives back (options, arms, design, cells, result, statuses);
- `arms`: the two arms as restrictions of facts already built, their checks, SRM;
- `cells/`: one KPI × cohort tested by the KPI's shape (one module per shape, one dispatch);
- `verdicts`: threshold verdicts, the sequential form, the result table;
- `heterogeneity`, `fairness`: the findings across the groups of a --by column;
- `run`: `run_compare`, `compare_arms` and the API's `compare`.

Named `comparison`, not `compare`: a subpackage would shadow the API function `kpictl.compare`.
"""

from kpictl.comparison.arms import (
    ConditionSplit,
    build_arms,
    condition_arms,
    condition_split,
    data_check,
    read_columns,
)
from kpictl.comparison.fairness import fairness_findings, fairness_note
from kpictl.comparison.heterogeneity import heterogeneity_notes, heterogeneity_tests
from kpictl.comparison.model import (
    INSUFFICIENT,
    NOT_TESTABLE,
    OBSERVATIONAL_ARMS_CAVEAT,
    STATUSES,
    UNAVAILABLE,
    Arm,
    Cell,
    CompareOptions,
    CompareResult,
    Design,
    FairnessFinding,
    GroupEffect,
    Heterogeneity,
)
from kpictl.comparison.run import compare, compare_arms, run_compare
from kpictl.comparison.verdicts import verdict

__all__ = [
    "INSUFFICIENT",
    "NOT_TESTABLE",
    "OBSERVATIONAL_ARMS_CAVEAT",
    "STATUSES",
    "UNAVAILABLE",
    "Arm",
    "Cell",
    "CompareOptions",
    "CompareResult",
    "ConditionSplit",
    "Design",
    "FairnessFinding",
    "GroupEffect",
    "Heterogeneity",
    "build_arms",
    "compare",
    "compare_arms",
    "condition_arms",
    "condition_split",
    "data_check",
    "fairness_findings",
    "fairness_note",
    "heterogeneity_notes",
    "heterogeneity_tests",
    "read_columns",
    "run_compare",
    "verdict",
]
