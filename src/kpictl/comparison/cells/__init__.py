"""compare's cells: one KPI × cohort each, tested by the KPI's shape (`dispatch.CELLS`), one module
per shape: additive (ratio of sums, mean; CUPED), paired, quantile, pass^k, formula, and the
cells no test fits."""

from kpictl.comparison.cells.dispatch import CELLS, kpi_cells

__all__ = ["CELLS", "kpi_cells"]
