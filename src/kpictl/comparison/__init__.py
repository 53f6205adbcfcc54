"""kpictl compare: arms, per-KPI tests dispatched by the KPI's shape, verdicts."""
