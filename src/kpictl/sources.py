"""Loading the sources a spec declares: the spec's column mappings applied by the io layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from kpictl.errors import UsageError
from kpictl.io import ColumnRule, OnBadRows, SourceRequest, Sources, load_requests
from kpictl.spec import SourceSpec, Spec
from kpictl.sqlexpr import did_you_mean


def source_request(source: SourceSpec, paths: Sequence[str | Path] | None = None) -> SourceRequest:
    """The io request for one spec source; `paths` (relative to the CWD) replace the spec's."""
    rules = tuple(
        ColumnRule(
            name=m.name,
            source_field=m.source_field,
            sql=m.sql,
            type=m.type,
            unit=m.unit,
            default=m.default,
        )
        for m in source.columns
    )
    if paths:
        return SourceRequest(source.name, tuple(str(p) for p in paths), Path.cwd(), rules)
    if source.path is None:
        raise UsageError(
            f"source {source.name!r} has no path in the spec: give one with --source "
            f"{source.name}=PATH"
            + (" or as a positional argument" if source.name == "events" else "")
        )
    return SourceRequest(source.name, (source.path,), source.base_dir, rules)


def load_sources(
    spec: Spec,
    paths: Mapping[str, Sequence[str | Path]] | None = None,
    *,
    on_bad_rows: OnBadRows = "error",
) -> Sources:
    """Read every source the spec declares (paths override the spec's), in canonical form."""
    overrides = dict(paths or {})
    for name in overrides:
        if name not in spec.sources:
            raise UsageError(
                f"--source {name}: the spec declares no source {name!r}"
                f"{did_you_mean(name, spec.sources)}; sources: {', '.join(spec.sources)}"
            )
    requests = [source_request(src, overrides.get(name)) for name, src in spec.sources.items()]
    return load_requests(requests, on_bad_rows)
