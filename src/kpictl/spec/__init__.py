"""The spec (kpi_definitions.yaml): its model, YAML loading with line marks, and validation."""
