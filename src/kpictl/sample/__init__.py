"""Deterministic synthetic agent logs in kpictl's canonical schema.

`generate_sample` builds an `events` frame (one row per transcript event) and a `tool_calls` frame
(one row per tool invocation) for a customer-support AI agent running an A/B test: a `treatment`
arm (~85 % of users) and a `holdout` arm (~15 %), and two agent versions rolled out gradually.
The data has the structure real logs have, so every KPI has something to measure:

* conversation starts follow a diurnal/weekly pattern and are unique to the second across the
  whole sample (so no user ever starts two conversations at the same instant);
* a pool of about ``conversations / 3`` users comes back: a repeat conversation usually starts
  within a week of the user's previous one and often has the same intent;
* treatment resolves more and escalates less than holdout; v2 does better than v1;
* escalations (some with a second, different reason) hand over to humans whose messages carry
  `human_minutes`; most conversations end with a `resolution`, some never do; some resolutions
  are reopened within 24 h, some later; ~40 % get CSAT feedback;
* tool calls (a few percent fail, with an error type and retries) are interleaved with the
  messages; agent messages carry tokens, an LLM cost computed from the tokens, a skewed latency,
  and, rarely, a policy violation; a few first user messages contain fake PII.

The log export is cut at ``start + days``: events after that instant are not in the sample, so
the conversations of the last days still have their outcome window open.

Everything is vectorised (numpy + polars); the same seed always gives byte-identical output.

The package's modules, in import order: `scenario` (the frames' columns and types, categories,
probabilities, prices, texts) → `draws` (vectorised helpers) → `conversations` (starts, users,
attributes, opening messages) → `timeline` (every row of every conversation, its time, the
frames) → `generate` (`generate_sample`) → `business` (`generate_business_events`) → `write`
(`write_sample`).
"""

from __future__ import annotations

from kpictl.sample.business import generate_business_events
from kpictl.sample.generate import generate_sample
from kpictl.sample.scenario import (
    ATTRIBUTE_COLUMNS,
    BUSINESS_EVENTS_SCHEMA,
    EVENTS_SCHEMA,
    TOOL_CALLS_SCHEMA,
)
from kpictl.sample.write import write_sample

__all__ = [
    "ATTRIBUTE_COLUMNS",
    "BUSINESS_EVENTS_SCHEMA",
    "EVENTS_SCHEMA",
    "TOOL_CALLS_SCHEMA",
    "generate_business_events",
    "generate_sample",
    "write_sample",
]
