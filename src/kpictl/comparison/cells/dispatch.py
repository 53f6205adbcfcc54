"""The one dispatch of compare's tests: a KPI's shape (engine/shapes.py) picks the module of
`cells/` that reduces it to per-unit statistics and tests it per cohort. A test for a new shape
is one module here and one line in `CELLS`."""

from __future__ import annotations

from collections.abc import Callable

from kpictl.comparison.cells.additive import additive_cells
from kpictl.comparison.cells.formula import formula_cells
from kpictl.comparison.cells.paired import paired_cells
from kpictl.comparison.cells.pass_k import pass_k_cells
from kpictl.comparison.cells.quantile import quantile_cells
from kpictl.comparison.cells.untestable import cells_left_out, untestable_cells, untestable_reason
from kpictl.comparison.model import Arm, ArmValues, Cell, CompareOptions
from kpictl.engine.shapes import KpiShape, kpi_shape
from kpictl.spec.model import KpiSpec, Spec

# (spec, kpi, shape, current arm, baseline arm or None, target value or None, options, unit)
CellMaker = Callable[
    [Spec, KpiSpec, KpiShape, Arm, Arm | None, float | None, CompareOptions, str], list[Cell]
]

# KpiShape.kind → its cells; "other" has no test (untestable_reason says why)
CELLS: dict[str, CellMaker] = {
    "ratio": additive_cells,
    "avg": additive_cells,
    "quantile": quantile_cells,
    "pass_k": pass_k_cells,
    "formula": formula_cells,
}


def kpi_cells(
    spec: Spec,
    kpi: KpiSpec,
    current: Arm,
    baseline: Arm | None,
    target: float | None,
    paired: bool,
    options: CompareOptions,
    unit: str,
    values: ArmValues,
) -> list[Cell]:
    """The KPI's cells, one per cohort: its shape's test (paired designs test additive shapes
    unit by unit), or none with the reason; then the cohorts `compute` reports that no test saw
    (`values`: each arm's `compute` values)."""
    shape = kpi_shape(kpi)
    reason = untestable_reason(spec, kpi, shape, baseline)
    if reason is not None:
        cells = untestable_cells(kpi, reason, values, target)
    elif paired and baseline is not None and shape.kind in ("ratio", "avg"):
        cells = paired_cells(spec, kpi, shape, current, baseline, options, unit)
    else:
        cells = CELLS[shape.kind](spec, kpi, shape, current, baseline, target, options, unit)
    return cells + cells_left_out(kpi, cells, values, paired)
