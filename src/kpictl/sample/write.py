"""`write_sample`: the sample's files, JSONL or Parquet, in independent parts past `MAX_PART`
conversations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl

from kpictl.sample.business import generate_business_events
from kpictl.sample.generate import generate_sample


def write_sample(
    out_dir: Path,
    *,
    conversations: int = 2000,
    seed: int = 7,
    days: int = 30,
    fmt: Literal["jsonl", "parquet"] = "jsonl",
) -> list[Path]:
    """Write out_dir/events/events.<ext>, out_dir/tool_calls/tool_calls.<ext> and
    out_dir/business_events/business_events.<ext> (`generate_business_events`); return the paths.

    ``jsonl`` writes one JSON object per line, timestamps as UTC ISO-8601 text with a ``Z``
    suffix (``2026-10-01T08:15:02Z``) and nulls as ``null``; ``parquet`` keeps native
    ``Datetime("us", "UTC")`` columns.  Folders are created as needed; the same arguments always
    give byte-identical files.

    Raises:
        ValueError: for an unknown `fmt`, or invalid arguments of `generate_sample`.
    """
    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"fmt must be 'jsonl' or 'parquet', got {fmt!r}")
    if conversations <= MAX_PART:
        events, tool_calls = generate_sample(conversations, seed=seed, days=days)
        business = generate_business_events(events, seed=seed, days=days)
        return _write_part(out_dir, (events, tool_calls, business), fmt, "")
    # Past MAX_PART conversations, independent parts (seed + i, ids prefixed "pNN-") are
    # generated and written one at a time, so memory stays that of one part.
    parts = -(-conversations // MAX_PART)
    paths: list[Path] = []
    for index in range(parts):
        size = conversations // parts + (1 if index < conversations % parts else 0)
        prefix = f"p{index:02d}-"
        events, tool_calls = generate_sample(size, seed=seed + index, days=days)
        events = events.with_columns(
            (prefix + pl.col("conversation_id")).alias("conversation_id"),
            (prefix + pl.col("user_id")).alias("user_id"),
        )
        tool_calls = tool_calls.with_columns(
            (prefix + pl.col("conversation_id")).alias("conversation_id")
        )
        business = generate_business_events(events, seed=seed + index, days=days)
        business = business.with_columns(
            (prefix + pl.col("business_event_id")).alias("business_event_id")
        )
        paths += _write_part(out_dir, (events, tool_calls, business), fmt, f"-part{index:02d}")
        del events, tool_calls, business
    return paths


MAX_PART = 1_000_000  # conversations generated in one piece (about 3.5 GB at its peak)


def _write_part(
    out_dir: Path, frames: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame], fmt: str, suffix: str
) -> list[Path]:
    paths: list[Path] = []
    for name, frame in zip(("events", "tool_calls", "business_events"), frames, strict=True):
        folder = Path(out_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}{suffix}.{fmt}"
        if fmt == "parquet":
            frame.write_parquet(path)
        else:
            text = frame.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
            if "csat" in text.columns:
                # scores are drawn whole (1-5): written 4, not 4.0, as survey exports write
                # them; csat is read back as the canonical float either way
                text = text.with_columns(pl.col("csat").cast(pl.Int64))
            text.write_ndjson(path)
        paths.append(path)
    return paths
