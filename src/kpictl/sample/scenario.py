"""The sample's scenario: its frames' columns and types, the categories and their
probabilities, model and tool prices, the message texts and a conversation's timeline order.
"""

from __future__ import annotations

import datetime

import numpy as np
import polars as pl

from kpictl.io import schema as canonical

UTC_TS = canonical.UTC_TIMESTAMP
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
DAY = 86_400
HOUR = 3_600

# The frames are in io/schema's canonical types (one definition: a generated frame is typed as
# a loaded log is), plus the sample's pass-through attributes of a conversation.
ATTRIBUTE_COLUMNS = ("channel", "intent", "customer_tier", "region", "agent_version", "arm")
EVENTS_SCHEMA: dict[str, pl.DataType] = {
    **{name: column.dtype for name, column in canonical.EVENTS.items()},
    **{name: pl.String() for name in ATTRIBUTE_COLUMNS},
    "pre_tokens": pl.Int64(),
}
"""Columns (in order) and dtypes of the `events` frame. `pre_tokens` is a pre-period covariate
(for `compare --cuped`): the customer's tokens per conversation in the 4 weeks before, the same
on every row of a conversation, null for the 12 % who are new (`_pre_period_tokens`)."""

TOOL_CALLS_SCHEMA: dict[str, pl.DataType] = {
    name: column.dtype for name, column in canonical.TOOL_CALLS.items()
}
"""Columns (in order) and dtypes of the `tool_calls` frame."""

BUSINESS_EVENTS_SCHEMA: dict[str, pl.DataType] = {
    name: column.dtype for name, column in canonical.BUSINESS_EVENTS.items()
}
"""Columns (in order) and dtypes of the `business_events` frame (a CRM export)."""

# --- categories (code = position) ------------------------------------------------------------

EVENTS = ("message", "escalation", "resolution", "reopen", "feedback")
MESSAGE, ESCALATION, RESOLUTION, REOPEN, FEEDBACK = range(5)
ROLES = ("user", "agent", "human")
USER, AGENT, HUMAN = range(3)

CHANNELS = ("web", "chat", "email", "voice")
CHANNEL_P = (0.35, 0.35, 0.15, 0.15)
INTENTS = ("billing", "shipping", "returns", "account", "technical")
INTENT_P = (0.25, 0.25, 0.20, 0.15, 0.15)
TIERS = ("free", "pro", "enterprise")
TIER_P = (0.60, 0.30, 0.10)
REGIONS = ("na", "emea", "apac")
REGION_P = (0.50, 0.30, 0.20)
VERSIONS = ("v1", "v2")
ARMS = ("treatment", "holdout")
TREATMENT_SHARE = 0.85

# Published list prices in USD per token (input, output).
MODELS = ("gpt-4.1", "gpt-4.1-mini")
MODEL_PRICE_IN = np.array([2.00e-6, 0.40e-6])
MODEL_PRICE_OUT = np.array([8.00e-6, 1.60e-6])
MODEL_LATENCY_MEDIAN_MS = np.array([1400.0, 700.0])
MODEL_MS_PER_OUTPUT_TOKEN = np.array([8.0, 4.0])

REASONS = ("policy_required", "customer_request", "low_confidence", "tool_failure", "out_of_scope")
REASON_W = np.array([0.25, 0.25, 0.25, 0.10, 0.15])
REASON_W_BY_INTENT = np.array(  # added to REASON_W, rows = intents
    [
        [0.30, 0.00, 0.00, 0.00, 0.00],  # billing
        [0.00, 0.10, 0.00, 0.00, 0.00],  # shipping
        [0.30, 0.00, 0.00, 0.00, 0.00],  # returns
        [0.10, 0.00, 0.10, 0.00, 0.00],  # account
        [0.00, 0.00, 0.20, 0.00, 0.20],  # technical
    ]
)

TOOLS = ("lookup_order", "refund", "search_kb", "update_account", "transfer_to_human")
TRANSFER = 4
TOOL_P_BY_INTENT = np.array(  # rows = intents, columns = the first four tools
    [
        [0.35, 0.30, 0.20, 0.15],
        [0.70, 0.05, 0.20, 0.05],
        [0.45, 0.40, 0.10, 0.05],
        [0.05, 0.05, 0.25, 0.65],
        [0.05, 0.00, 0.85, 0.10],
    ]
)
TOOL_ERROR_RATE = np.array([0.06, 0.12, 0.04, 0.09, 0.03])  # v1; v2 fails 30 % less often
TOOL_LATENCY_MEDIAN_MS = np.array([180.0, 650.0, 320.0, 240.0, 90.0])
TOOL_COST_USD = np.array([0.0001, 0.0025, 0.0006, 0.0002, 0.0010])
ERROR_TYPES = ("validation", "dependency", "policy_denied", "timeout")
_VALIDATION, DEPENDENCY, _POLICY_DENIED, TIMEOUT = range(4)
ERROR_TYPE_P_BY_TOOL = np.array(
    [
        [0.25, 0.40, 0.00, 0.35],
        [0.30, 0.10, 0.50, 0.10],
        [0.05, 0.45, 0.00, 0.50],
        [0.55, 0.20, 0.20, 0.05],
        [0.00, 0.60, 0.00, 0.40],
    ]
)

# --- message texts ---------------------------------------------------------------------------

_FIRST_TEXTS = (  # first user message, by intent
    (
        "Hi, I was charged twice this month.",
        "Why is my invoice higher than usual?",
        "Can you explain a charge on my card I don't recognise?",
    ),
    (
        "Where is my package? It was due yesterday.",
        "My order still shows as processing.",
        "Can I change the delivery address of my order?",
    ),
    (
        "I'd like to return an item I bought last week.",
        "The product arrived damaged, I want a refund.",
        "How do I send back a wrong size?",
    ),
    (
        "I can't log in to my account.",
        "Please update the e-mail address on my account.",
        "How do I close my account?",
    ),
    (
        "The app crashes when I open settings.",
        "Sync has stopped working since the last update.",
        "I get an error 500 when I upload a file.",
    ),
)
_AGENT_TEXTS = (  # agent replies, by intent
    (
        "I can see two charges on your account; let me check them for you.",
        "Your invoice includes a prorated upgrade from last month.",
        "I've found the charge: it is your annual renewal.",
    ),
    (
        "Your package is with the carrier and should arrive within two days.",
        "I've checked your order: it ships today.",
        "I've updated the delivery address for you.",
    ),
    (
        "I've created a return label; you'll get it by e-mail.",
        "I'm sorry about that. I've started a refund for the damaged item.",
        "You can return it within 30 days; here is how.",
    ),
    (
        "I've sent you a password reset link.",
        "Your e-mail address has been updated.",
        "I can help with that; please confirm you want to close the account.",
    ),
    (
        "Please update the app to the latest version and try again.",
        "This is a known issue; a fix is rolling out this week.",
        "Could you tell me which browser and version you are using?",
    ),
)
FOLLOW_TEXTS = (
    "Thanks, that works.",
    "That didn't help.",
    "Can you check again?",
    "OK, what should I do next?",
    "Can I speak to a human?",
    "Yes, please go ahead.",
    "It still doesn't work.",
    "Great, thank you!",
)
HUMAN_TEXTS = (
    "Hi, this is Sam from support; I've taken over your case.",
    "I've reviewed your case and fixed it on our side.",
    "I've escalated this to our specialist team.",
    "Thanks for your patience, everything is sorted now.",
    "I've applied a credit to your account.",
)
_TEXTS = tuple(t for group in _FIRST_TEXTS for t in group) + tuple(
    t for group in _AGENT_TEXTS for t in group
)
AGENT_TEXT_OFFSET = sum(len(g) for g in _FIRST_TEXTS)
FOLLOW_OFFSET = len(_TEXTS)
HUMAN_OFFSET = FOLLOW_OFFSET + len(FOLLOW_TEXTS)
ALL_TEXTS = _TEXTS + FOLLOW_TEXTS + HUMAN_TEXTS
PER_INTENT = 3
FIRST_NAMES = ("jane", "john", "maria", "wei", "amir", "olga", "kofi", "lena", "raj", "sofia")
LAST_NAMES = ("doe", "smith", "garcia", "chen", "khan", "petrov", "mensah", "muller", "patel")
MAIL_DOMAINS = ("example.com", "example.org", "example.net")

# --- ordering of a conversation's timeline (sort key within the conversation) -----------------
# bot-phase message m: m*100 + 50; tool calls before agent message m: m*100 + i (i < 50)
KEY_TRANSFER = 1990
KEY_ESCALATION = 2000
KEY_HUMAN = 3000
KEY_RESOLUTION = 5000
KEY_FEEDBACK = 6000
KEY_REOPEN = 7000
KEY_RESOLUTION2 = 8000
KEY_FEEDBACK2 = 9000
KEY_SPAN = 10_000
