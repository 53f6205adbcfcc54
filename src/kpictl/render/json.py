"""The JSON writer (`--format json`): one document per result kind, each with
`kpictl_version`; NaN and ±Infinity written as null with a note (`text.json_text`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kpictl import __version__
from kpictl.engine.checksources import CheckReport
from kpictl.engine.compute import ComputeResult
from kpictl.io.read import FileReport
from kpictl.render.text import (
    RenderOptions,
    Write,
    cohort_of,
    iso,
    json_text,
    status_counts,
    text_writer,
)

if TYPE_CHECKING:  # their modules import scipy: loaded only by the functions that render them
    from rich.console import Console

    from kpictl.projection import ProjectionResult
    from kpictl.review import ReviewScore


def result_records(result: ComputeResult) -> list[dict[str, Any]]:
    """Result rows as plain JSON-ready objects, in the result's (stable) order."""
    records = []
    for row in result.table.iter_rows(named=True):
        record: dict[str, Any] = {
            "kpi": row["kpi"],
            "label": row.get("label"),
            "cohort": cohort_of(row),
        }
        if row["breakdown"] is not None:
            record["breakdown"] = {row["breakdown"]: row["breakdown_value"]}
        value = row["value"]
        record["value"] = None if value is None or math.isnan(value) else value
        if result.approximation is not None:  # --approx-percentiles: each row says
            record["approximate"] = row["kpi"] in result.approximation.kpis
        record["reason"] = row.get("reason")  # why value is null (a missing column), else null
        record["n"] = row["n"]
        record["pending"] = row["pending"]
        record.update({k: row[k] for k in ("layer", "format", "direction", "owner")})
        records.append(record)
    return records


def input_records(files: Sequence[FileReport]) -> list[dict[str, Any]]:
    """What was read, per file: rows kept and skipped (with the first reasons)."""
    return [
        {
            "source": f.source,
            "path": f.path,
            "format": f.format,
            "rows": f.rows,
            "skipped": f.skipped,
            **({"skipped_reasons": list(f.skipped_reasons)} if f.skipped else {}),
        }
        for f in files
    ]


def to_json(result: ComputeResult, files: Sequence[FileReport] = ()) -> str:
    """The `--format json` document."""
    document = {
        "kpictl_version": __version__,
        "as_of": iso(result.window.as_of),
        "window": {"since": iso(result.window.since), "until": iso(result.window.until)},
        "results": result_records(result),
        "inputs": input_records(files),
        "notes": list(result.notes),
    }
    return json_text(document)


def _float(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def compare_records(result: Any) -> list[dict[str, Any]]:
    """Compare rows as JSON-ready objects."""
    records = []
    for row in result.table.iter_rows(named=True):
        cohort = {d: row[d] for d in row["grouping"]}
        records.append(
            {
                "kpi": row["kpi"],
                "label": row.get("label"),
                "cohort": cohort,
                "baseline": {
                    "value": _float(row["baseline_value"]),
                    "n": row["baseline_n"],
                    "units": row["baseline_units"],
                },
                "current": {
                    "value": _float(row["current_value"]),
                    "n": row["current_n"],
                    "units": row["current_units"],
                },
                # --approx-percentiles: both values approximate (Δ, CI and p exact)
                **({"approximate": row["approximate"]} if "approximate" in row else {}),
                "delta": _float(row["delta"]),
                "delta_ci": None
                if row["delta_low"] is None
                else [row["delta_low"], row["delta_high"]],
                "relative_delta": _float(row["relative_delta"]),
                "relative_ci": None
                if row["relative_low"] is None
                else [row["relative_low"], row["relative_high"]],
                "p_value": _float(row["p_value"]),
                "p_adjusted": _float(row["p_adjusted"]),
                "test": row["test"],
                "significant": row["significant"],
                "mde": _float(row["mde"]),
                "status": row["status"],
                "threshold": row["threshold"],
                "pending": {"baseline": row["pending_baseline"], "current": row["pending_current"]},
                "design_effect": _float(row["design_effect"]),
                **(
                    {
                        "cuped": {
                            "theta": row["cuped_theta"],
                            "variance_reduction": row["variance_reduction"],
                        }
                    }
                    if row.get("cuped_theta") is not None
                    else {}
                ),
                "warnings": list(row["warnings"]),
                **{k: row[k] for k in ("layer", "format", "direction", "owner")},
            }
        )
    return records


def heterogeneity_record(test: Any) -> dict[str, Any]:
    """One heterogeneity test (compare --heterogeneity) as a JSON-ready object."""
    q = test.test
    return {
        "kpi": test.kpi,
        "dimension": test.dimension,
        "overall_delta": test.overall_delta,
        "better_overall": test.better_overall,
        "test": "cochran_q",
        "q": None if q is None else q.q,
        "df": None if q is None else q.df,
        "p_value": None if q is None else q.p_value,
        "i2": None if q is None else q.i2,
        "groups": [
            {
                "group": g.group,
                "delta": g.delta,
                "se": g.se,
                "p_value": g.p_value,
                "p_holm": g.p_holm,
                "worse_while_better_overall": g.worse,
            }
            for g in test.groups
        ],
    }


def fairness_record(finding: Any) -> dict[str, Any]:
    """One `fairness:` check (compare) as a JSON-ready object."""
    return {
        "kpi": finding.kpi,
        "column": finding.column,
        "gap": finding.gap,
        "max_gap": finding.max_gap,
        "max_gap_text": finding.max_gap_text,
        "breached": finding.breached,
        "baseline_gap": finding.baseline_gap,
        "lowest": None
        if finding.low is None
        else {"group": finding.low[0], "value": finding.low[1]},
        "highest": None
        if finding.high is None
        else {"group": finding.high[0], "value": finding.high[1]},
        "groups_excluded": finding.excluded,
    }


def _window_record(window: Any) -> dict[str, str | None] | None:
    if window is None:
        return None
    return {"since": iso(window.since), "until": iso(window.until), "as_of": iso(window.as_of)}


def compare_to_json(result: Any) -> str:
    """The `compare --format json` document."""
    design = result.design
    document = {
        "kpictl_version": __version__,
        "design": {
            "kind": design.kind,
            "label": design.label,
            "randomized": design.randomized,
            "paired": design.paired,
            "caveat": design.caveat or None,
        },
        "baseline": {"name": design.baseline, "window": _window_record(result.baseline_window)},
        "current": {"window": _window_record(result.current_window)},
        "unit": result.unit,
        "alpha": result.alpha,
        "correction": result.correction,
        "srm": result.srm,
        "results": compare_records(result),
        "summary": status_counts(result.table),
        "heterogeneity": [heterogeneity_record(h) for h in result.heterogeneity],
        "fairness": [fairness_record(f) for f in result.fairness],
        "notes": list(result.notes),
    }
    return json_text(document)


def check_records(report: CheckReport) -> dict[str, Any]:
    """The `kpictl check --format json` document."""
    return {
        "kpictl_version": __version__,
        "sources": [
            {
                "name": s.name,
                "rows": s.rows,
                "first": iso(s.first),
                "last": iso(s.last),
                "columns": {
                    "mapped": list(s.mapped),
                    "unmapped": list(s.unmapped),
                    "empty": list(s.empty),
                },
                "duplicates": s.duplicates,
                "orphans": s.orphans,
                "info": list(s.info),
            }
            for s in report.sources
        ],
        "literals": [
            {
                "where": m.use.location,
                "path": m.use.path,
                "source": m.use.source,
                "column": m.use.source_column,
                "literal": m.use.literal,
                "rows": m.rows,
                **({"seen": dict(m.seen)} if m in report.check.unmatched else {}),
            }
            for m in report.check.literals
        ],
        "kpis": [
            {
                "kpi": kpi,
                "computable": report.check.reason(kpi) is None,
                "reason": report.check.reason(kpi),
            }
            for kpi in report.kpis
        ],
        "findings": report.flagged,
    }


def check_to_json(report: CheckReport) -> str:
    """The `kpictl check --format json` document, as text."""
    return json_text(check_records(report))


def review_to_json(score: ReviewScore) -> str:
    """The `review score --format json` document."""
    from kpictl.review import review_json

    return json_text(review_json(score))


def projection_to_json(result: ProjectionResult) -> str:
    """The `project --format json` document."""
    document = {"kpictl_version": __version__, **result.to_dict()}
    return json_text(document)


def _compute(result: ComputeResult, console: Console, options: RenderOptions) -> None:
    console.file.write(to_json(result, options.files))


WRITES: dict[str, Write] = {
    "compute": _compute,
    "compare": text_writer(compare_to_json),
    "review": text_writer(review_to_json),
    "check": text_writer(check_to_json),
    "projection": text_writer(projection_to_json),
}
