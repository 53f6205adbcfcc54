"""Loading the sources a spec declares: the spec's column mappings applied by the io layer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import polars as pl

from kpictl.engine.outcomes import attribute_events, unattributed_count
from kpictl.errors import UsageError, did_you_mean
from kpictl.io import schema as canonical
from kpictl.io.inputbytes import MAX_LINE_BYTES
from kpictl.io.pricing import apply_prices, mark_reported
from kpictl.io.read import (
    ColumnRule,
    LoadedSource,
    OnBadRows,
    SourceRequest,
    Sources,
    jsonl_cache_dir,
    load_requests,
)
from kpictl.io.read import load_frames as load_frames_as_read
from kpictl.spec.model import OUTCOME_SOURCE, SourceSpec, Spec, is_remote_path
from kpictl.sql.expr import summed_columns


def json_fields(spec: Spec, source: SourceSpec) -> dict[str, pl.DataType] | None:
    """The JSON fields a run can use, each with the type it must parse as; None when the
    spec maps a column with SQL or from a nested field (any raw field may then matter)."""
    fields: dict[str, pl.DataType] = {}
    rules = {m.name: m for m in source.columns}
    if any(
        m.sql is not None or (m.source_field and "." in m.source_field) or m.unit is not None
        for m in source.columns
    ):
        return None
    attributes = {a for t in spec.tables.values() for a in t.attributes}
    targets = {*source.canonical_columns, *rules, *attributes}
    for name in sorted(targets):
        rule = rules.get(name)
        field = rule.source_field if rule and rule.source_field else name
        kind = rule.type if rule and rule.type else None
        if kind is not None:
            dtype = canonical.TYPE_NAMES[kind]
        elif name in source.canonical_columns:
            dtype = source.canonical_columns[name].dtype
        else:
            dtype = pl.String()
        if isinstance(dtype, pl.Datetime):
            dtype = pl.String()  # ISO text; epoch numbers need a declared unit (None above)
        fields[field] = dtype
    return fields


def summed_names(spec: Spec) -> tuple[str, ...]:
    """Every column name the spec's expressions add up (rollup and derive entries, KPIs):
    the io layer refuses an integer column of these whose values would overflow a sum."""
    sqls = [e.sql for t in spec.tables.values() for e in t.rollup]
    sqls += [e.sql for t in spec.tables.values() for e in t.derive]
    sqls += [
        sql for k in spec.kpis.values() for sql in (k.value, k.numerator, k.denominator) if sql
    ]
    found: dict[str, None] = {}
    for sql in sqls:
        for name in summed_columns(sql):
            found.setdefault(name, None)
    return tuple(found)


def source_request(
    source: SourceSpec,
    paths: Sequence[str | Path] | None = None,
    spec: Spec | None = None,
    cache: bool = True,
) -> SourceRequest:
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
    fields = json_fields(spec, source) if spec is not None else None
    summed = summed_names(spec) if spec is not None else ()
    cache_dir = jsonl_cache_dir() if cache else None
    if source.derived_from is not None:  # its rows come from the format source it names
        return SourceRequest(
            source.name, (), source.base_dir, rules, format="auto", derived_from=source.derived_from
        )
    if paths:
        return SourceRequest(
            source.name,
            tuple(str(p) for p in paths),
            Path.cwd(),
            rules,
            format=source.format,
            fields=fields,
            cache_dir=cache_dir,
            options=source.options,
            summed=summed,
        )
    if source.path is None:
        raise UsageError(
            f"source {source.name!r} has no path in the spec: give one with --source "
            f"{source.name}=PATH"
            + (" or as a positional argument" if source.name == "events" else "")
        )
    return SourceRequest(
        source.name,
        (source.path,),
        source.base_dir,
        rules,
        format=source.format,
        fields=fields,
        cache_dir=cache_dir,
        options=source.options,
        summed=summed,
    )


def load_sources(
    spec: Spec,
    paths: Mapping[str, Sequence[str | Path]] | None = None,
    *,
    on_bad_rows: OnBadRows = "error",
    cache: bool = True,
    reprice: bool = False,
    max_line_bytes: int = MAX_LINE_BYTES,
    columns: Sequence[str] = (),
    engine: object | None = None,
    reads_rows: str | None = None,
) -> Sources:
    """Read every source the spec declares (paths override the spec's), in canonical form.

    A remote source (`table:`, or a path with a scheme such as `s3a://`) is never listed or
    opened by kpictl: `engine` reads it (a `RemoteReader`: the Spark engine); with any other
    engine (None: polars) it is a UsageError naming the source, its spec line and
    `--engine spark`. `reads_rows`: what of the run reads every source's rows itself (the
    report's data checks, costs and drill-down), which refuses a remote source up front.

    `columns`: columns a run reads beyond the spec's (a `--by` column it does not declare): a
    JSONL source then parses every field, not only those the spec names.

    Parsed JSONL is cached as Parquet (see `kpictl.io.cache`) unless `cache=False`.
    With a `pricing:` section (or a chat / otlp_json source) every row of the canonical tables
    carries `cost_source` (reported | computed | unpriced, see `kpictl.io.pricing`); `reprice`
    recomputes every cost from the spec's prices, so periods compare at constant prices.
    A JSONL line longer than `max_line_bytes` is a bad row (see `on_bad_rows`).

    >>> import kpictl, polars as pl
    >>> spec = kpictl.load_spec("kpi_definitions.yaml")
    >>> sources = kpictl.load_sources(spec, {"events": ["sample_logs/events/"]})
    >>> sources["events"].select(pl.len()).collect().item()
    14648
    >>> [f.rows for f in sources.files]  # events/ given, tool_calls from the spec's path
    [14648, 3949]
    """
    overrides = dict(paths or {})
    if reprice and not spec.pricing.enabled:
        raise UsageError("--reprice needs a `pricing:` section in the spec (the price table)")
    for name in overrides:
        if name in spec.sources and spec.sources[name].derived_from is not None:
            origin = spec.sources[name].derived_from
            raise UsageError(
                f"--source {name}: source {name!r} is read from {origin!r} "
                f"(`from: {origin}`); give --source {origin}=PATH instead"
            )
        if name not in spec.sources:
            raise UsageError(
                f"--source {name}: the spec declares no source {name!r}"
                f"{did_you_mean(name, spec.sources)}; sources: {', '.join(spec.sources)}"
            )
    remote = remote_sources(spec, overrides)
    if remote:
        if reads_rows is not None:
            name, source = next(iter(remote.items()))
            raise UsageError(
                f"{reads_rows}, and source {name!r} stays at {source.remote} (read by the "
                "Spark engine only, never by kpictl): run it over local files, or use compute "
                "or compare --engine spark"
            )
        refuse_remote(spec, remote, engine)
        overrides = {n: p for n, p in overrides.items() if n not in remote}
    # business events are credited to the events' conversations: events given elsewhere than
    # the spec says, without business events for them, leave the spec's export unread
    detached = (
        "events" in overrides and OUTCOME_SOURCE in spec.sources and OUTCOME_SOURCE not in overrides
    )
    requests = [
        replace(
            source_request(src, overrides.get(name), spec, cache), max_line_bytes=max_line_bytes
        )
        for name, src in spec.sources.items()
        if not (detached and name == OUTCOME_SOURCE) and name not in remote
    ]
    undeclared = [c for c in columns if not any(c in t for t in spec.column_types.values())]
    if undeclared:
        requests = [
            replace(r, fields=None)
            if r.fields is not None and any(c not in r.fields for c in undeclared)
            else r
            for r in requests
        ]
    loaded_sources = load_requests(requests, on_bad_rows)
    if remote:
        assert isinstance(engine, RemoteReader)
        read = {name: engine.read_remote(spec, source) for name, source in remote.items()}
        loaded_sources = Sources(
            {
                n: read[n] if n in read else loaded_sources.by_name[n]
                for n in spec.sources
                if n in read or n in loaded_sources
            }
        )
    if detached:
        loaded_sources = Sources({**loaded_sources.by_name, OUTCOME_SOURCE: _detached_outcomes()})
    sources = attribute_outcomes(spec, loaded_sources)
    if not priced(spec):
        return sources
    loaded: dict[str, LoadedSource] = {}
    for name, item in sources.by_name.items():
        frame = item.frame
        if name in canonical.CANONICAL_TABLES:
            frame = (
                apply_prices(frame, spec.pricing, reprice=reprice)
                if spec.pricing.enabled
                else mark_reported(frame)
            )
        loaded[name] = replace(item, frame=frame)
    return Sources(loaded)


@runtime_checkable
class RemoteReader(Protocol):
    """An engine that reads a remote source itself (engine/spark.py): the source's rows stay
    where they live; kpictl gets their schema and what its checks need (kpictl.io.remote)."""

    name: str

    def read_remote(self, spec: Spec, source: SourceSpec) -> LoadedSource:
        """The source as a LoadedSource whose `remote` says how the engine reads it."""
        ...


def remote_sources(
    spec: Spec, overrides: Mapping[str, Sequence[str | Path]]
) -> dict[str, SourceSpec]:
    """The sources of a run that live where only a SQL engine reads them (a `table:`, a path
    with a scheme in the spec or on the command line), with that path in place."""
    found: dict[str, SourceSpec] = {}
    for name, source in spec.sources.items():
        given = [str(p) for p in overrides.get(name, ())]
        uris = [p for p in given if is_remote_path(p)]
        if uris:
            if len(given) > 1:
                raise UsageError(
                    f"--source {name}: {uris[0]} is read by Spark as one path: give it alone"
                )
            found[name] = replace(source, path=uris[0], table=None, format="parquet")
        elif not given and source.remote is not None:
            found[name] = source
    return found


def refuse_remote(spec: Spec, remote: Mapping[str, SourceSpec], engine: object | None) -> None:
    """A UsageError unless `engine` reads remote sources itself; also for what kpictl must do
    to a source's rows itself (pricing, attributing business events to remote events)."""
    name, source = next(iter(remote.items()))
    where = f"{spec.path.name} line {source.line}" if source.line else spec.path.name
    what = f"source {name!r} ({where}) is {source.remote}"
    if not isinstance(engine, RemoteReader):
        engine_name = getattr(engine, "name", "polars")
        raise UsageError(
            f"{what}, which kpictl does not list or open itself: only the Spark engine reads "
            "it — run compute, compare, facts or compile with --engine spark (the "
            f"{engine_name} engine reads local files)"
        )
    if priced(spec):
        raise UsageError(
            f"{what}: kpictl prices each row itself (pricing:, a chat or OTLP source), which it "
            "cannot do to rows it does not read; use local files or drop `pricing:`"
        )
    outcome = spec.sources.get(OUTCOME_SOURCE)
    attributed = {"events", OUTCOME_SOURCE} & set(remote)
    if outcome is not None and outcome.attribution is not None and attributed:
        name = sorted(attributed)[0]
        raise UsageError(
            f"source {name!r} is {remote[name].remote}: kpictl attributes {OUTCOME_SOURCE} to "
            f"conversations itself (attribution:), which needs the rows of 'events' and "
            f"{OUTCOME_SOURCE!r}; use local files for both"
        )


def priced(spec: Spec) -> bool:
    """Whether kpictl prices the canonical tables' rows (`cost_source`, kpictl.io.pricing): a
    `pricing:` section, or a chat / OTLP source."""
    return spec.pricing.enabled or any(
        s.derived_from is not None or s.format in ("chat", "otlp_json")
        for s in spec.sources.values()
    )


def _detached_outcomes() -> LoadedSource:
    """The business_events source left unread (see `load_sources`): no rows, and why."""
    empty = pl.DataFrame(
        schema={name: column.dtype for name, column in canonical.BUSINESS_EVENTS.items()}
    ).lazy()
    reason = (
        f"source {OUTCOME_SOURCE!r} not read: source 'events' was given (--source events=…) "
        f"without it; give --source {OUTCOME_SOURCE}=PATH for the same conversations"
    )
    return LoadedSource(OUTCOME_SOURCE, empty, (), unusable=reason)


def load_frames(
    frames: Mapping[str, pl.DataFrame | pl.LazyFrame], spec: Spec | None = None
) -> Sources:
    """Sources from in-memory frames (notebooks, tests), read as files are. With `spec`, a
    frame named like one of its sources gets that source's column mapping (`columns:`:
    renamed fields, types, SQL, defaults), as `load_sources` gives files; without, the frames
    must already use the canonical column names.

    >>> import kpictl, polars as pl
    >>> spec = kpictl.load_spec("kpi_definitions.yaml")
    >>> events = pl.read_ndjson("sample_logs/events/events.jsonl")
    >>> events.schema["ts"]  # text in the file: the spec's `ts: {type: timestamp}` types it
    String
    >>> calls = pl.read_ndjson("sample_logs/tool_calls/tool_calls.jsonl")
    >>> sources = kpictl.load_frames({"events": events, "tool_calls": calls}, spec)
    >>> sources["events"].collect_schema()["ts"]
    Datetime(time_unit='us', time_zone='UTC')
    >>> table = kpictl.compute(spec, sources, kpis=["escalation_rate"])
    >>> round(table.filter(pl.col("breakdown").is_null())["value"].item(), 4)
    0.18
    """
    requests = None
    if spec is not None:
        requests = {
            name: source_request(spec.sources[name], [f"<frame {name}>"], spec, cache=False)
            for name in frames
            if name in spec.sources
        }
    return load_frames_as_read(frames, requests)


def attribute_outcomes(spec: Spec, sources: Sources) -> Sources:
    """The business_events source as attributed rows (`kpictl.engine.outcomes`): what a rollup over
    conversations reads. Events attributed to no conversation (walk-in customers, events past
    the window: expected in any CRM export) are counted in the source's `info`, which `kpictl
    check` shows; none attributed at all makes the outcome KPIs unavailable (`unusable`)."""
    source = spec.sources.get(OUTCOME_SOURCE)
    if source is None or source.attribution is None or OUTCOME_SOURCE not in sources:
        return sources
    rule = source.attribution
    loaded = sources.by_name[OUTCOME_SOURCE]
    events = sources["events"]
    # computed once here, in memory (a few rows per conversation at most): a lazy plan would
    # group every event by conversation again at each read of the source (its row count, its
    # null counts, the rollup, the data checks: 9 times in a report, 3-6 s each at 10M events)
    rows = attribute_events(loaded.frame, events, rule).collect()
    missing, total = unattributed_count(loaded.frame, rows)
    notes = loaded.notes
    unusable = loaded.unusable
    if unusable is None and total and missing == total:  # (none at all: "has no rows", below)
        unusable = (
            f"none of the {total:,} rows of source {OUTCOME_SOURCE!r} is attributed to a "
            "conversation of this data (do they describe the same conversations as source "
            "'events'?)"
        )
    info = loaded.info
    if missing and unusable is None:
        within = _duration_text(rule.within)
        info = (
            *info,
            (
                f"{OUTCOME_SOURCE}: {missing:,} of {total:,} events ({missing / total:.1%}) are "
                f"attributed to no conversation (none named, or none of the user's within {within} "
                f"after its {rule.after}): outcome KPIs leave them out"
            ),
        )
    attributed = replace(
        loaded,
        frame=rows.lazy(),
        notes=notes,
        info=info,
        unusable=unusable,
    )
    return Sources({**sources.by_name, OUTCOME_SOURCE: attributed})


def _duration_text(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
