"""The spec (kpi_definitions.yaml): its model (`model`), YAML with line marks (`yamlmarks`), one
module of rules per section (`defaults`, `sources`, `pricing`, `tables`, `kpis`, `baselines`,
`fairness`, sharing `problems`), loading (`load`) and the JSON Schema (`jsonschema`)."""

from kpictl.spec.jsonschema import spec_json_schema
from kpictl.spec.load import build_spec, load_spec

__all__ = ["build_spec", "load_spec", "spec_json_schema"]
