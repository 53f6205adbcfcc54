"""The cells no test fits: a KPI whose shape has no test (its values and n as `compute` gives
them, and why), and the cohorts `compute` reports that no test saw."""

from __future__ import annotations

from collections.abc import Sequence

from kpictl import stats
from kpictl.comparison.cells.common import cohort_order
from kpictl.comparison.model import NOT_TESTABLE, Arm, ArmValues, Cell
from kpictl.engine.shapes import KpiShape, kpi_shape
from kpictl.spec.model import KpiSpec, Spec


def untestable_reason(
    spec: Spec, kpi: KpiSpec, shape: KpiShape, baseline: Arm | None
) -> str | None:
    """Why no test applies to this KPI (None: one does)."""
    if shape.kind == "other":
        return shape.reason or "no test for this shape"
    if shape.kind == "formula":
        if baseline is None:
            return "a formula is bootstrapped against a baseline arm, not a target value"
        for name in kpi.formula_kpis:
            component = kpi_shape(spec.kpis[name])
            if component.kind not in ("ratio", "avg"):
                why = component.reason or "a percentile or a formula"
                return f"its component {name} is not a ratio or a mean ({why})"
    return None


def untestable_cells(
    kpi: KpiSpec,
    reason: str,
    values: ArmValues,
    target: float | None,
) -> list[Cell]:
    """A KPI no test applies to: its values and n per cohort, as `compute` gives them on each
    arm, and the reason; never tested with a test that does not fit it."""
    keys = sorted(
        {key[1:] for arm in values.values() for key in arm if key[0] == kpi.name},
        key=lambda k: (len(k[0]), k[0], cohort_order(k[1])),
    )
    cells = []
    for grouping, cohort in keys:
        b = values.get("baseline", {}).get((kpi.name, grouping, cohort))
        c = values["current"].get((kpi.name, grouping, cohort))
        comparison = stats.Comparison(
            NOT_TESTABLE,
            target if target is not None else (b[0] if b else None),
            c[0] if c else None,
            None,
            None,
            None,
            None,
            (f"not testable: {reason}",),
        )
        cells.append(
            Cell(
                kpi,
                dict(zip(grouping, cohort, strict=True)),
                grouping,
                comparison,
                b[1] if b else 0,
                c[1] if c else 0,
                b[2] if b else 0,
                c[2] if c else 0,
                target=target,
            )
        )
    return cells


def cells_left_out(
    kpi: KpiSpec,
    cells: Sequence[Cell],
    values: ArmValues,
    paired: bool,
) -> list[Cell]:
    """A cohort `compute` reports but no test saw (no unit with a value in it): listed with
    compute's value and n and no test, so compare shows every KPI × cohort compute shows."""
    if paired:  # paired cells count the units both arms ran: no row per compute cohort
        return []
    seen = {(c.grouping, tuple(c.cohort.get(d) for d in c.grouping)) for c in cells}
    missing = sorted(
        {
            key[1:]
            for arm in values.values()
            for key in arm
            if key[0] == kpi.name and key[1:] not in seen
        },
        key=lambda k: (len(k[0]), k[0], cohort_order(k[1])),
    )
    return [
        Cell(
            kpi,
            dict(zip(grouping, cohort, strict=True)),
            grouping,
            None,
            0,
            0,
            0,
            0,
            warnings=["no unit with a value in one of the arms: no test"],
        )
        for grouping, cohort in missing
    ]
