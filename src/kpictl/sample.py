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
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from kpictl.io import schema as canonical

__all__ = ["generate_business_events", "generate_sample", "write_sample"]

_UTC_TS = canonical.UTC_TIMESTAMP
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_DAY = 86_400
_HOUR = 3_600

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

_EVENTS = ("message", "escalation", "resolution", "reopen", "feedback")
_MESSAGE, _ESCALATION, _RESOLUTION, _REOPEN, _FEEDBACK = range(5)
_ROLES = ("user", "agent", "human")
_USER, _AGENT, _HUMAN = range(3)

_CHANNELS = ("web", "chat", "email", "voice")
_CHANNEL_P = (0.35, 0.35, 0.15, 0.15)
_INTENTS = ("billing", "shipping", "returns", "account", "technical")
_INTENT_P = (0.25, 0.25, 0.20, 0.15, 0.15)
_TIERS = ("free", "pro", "enterprise")
_TIER_P = (0.60, 0.30, 0.10)
_REGIONS = ("na", "emea", "apac")
_REGION_P = (0.50, 0.30, 0.20)
_VERSIONS = ("v1", "v2")
_ARMS = ("treatment", "holdout")
_TREATMENT_SHARE = 0.85

# Published list prices in USD per token (input, output).
_MODELS = ("gpt-4.1", "gpt-4.1-mini")
_MODEL_PRICE_IN = np.array([2.00e-6, 0.40e-6])
_MODEL_PRICE_OUT = np.array([8.00e-6, 1.60e-6])
_MODEL_LATENCY_MEDIAN_MS = np.array([1400.0, 700.0])
_MODEL_MS_PER_OUTPUT_TOKEN = np.array([8.0, 4.0])

_REASONS = ("policy_required", "customer_request", "low_confidence", "tool_failure", "out_of_scope")
_REASON_W = np.array([0.25, 0.25, 0.25, 0.10, 0.15])
_REASON_W_BY_INTENT = np.array(  # added to _REASON_W, rows = intents
    [
        [0.30, 0.00, 0.00, 0.00, 0.00],  # billing
        [0.00, 0.10, 0.00, 0.00, 0.00],  # shipping
        [0.30, 0.00, 0.00, 0.00, 0.00],  # returns
        [0.10, 0.00, 0.10, 0.00, 0.00],  # account
        [0.00, 0.00, 0.20, 0.00, 0.20],  # technical
    ]
)

_TOOLS = ("lookup_order", "refund", "search_kb", "update_account", "transfer_to_human")
_TRANSFER = 4
_TOOL_P_BY_INTENT = np.array(  # rows = intents, columns = the first four tools
    [
        [0.35, 0.30, 0.20, 0.15],
        [0.70, 0.05, 0.20, 0.05],
        [0.45, 0.40, 0.10, 0.05],
        [0.05, 0.05, 0.25, 0.65],
        [0.05, 0.00, 0.85, 0.10],
    ]
)
_TOOL_ERROR_RATE = np.array([0.06, 0.12, 0.04, 0.09, 0.03])  # v1; v2 fails 30 % less often
_TOOL_LATENCY_MEDIAN_MS = np.array([180.0, 650.0, 320.0, 240.0, 90.0])
_TOOL_COST_USD = np.array([0.0001, 0.0025, 0.0006, 0.0002, 0.0010])
_ERROR_TYPES = ("validation", "dependency", "policy_denied", "timeout")
_VALIDATION, _DEPENDENCY, _POLICY_DENIED, _TIMEOUT = range(4)
_ERROR_TYPE_P_BY_TOOL = np.array(
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
_FOLLOW_TEXTS = (
    "Thanks, that works.",
    "That didn't help.",
    "Can you check again?",
    "OK, what should I do next?",
    "Can I speak to a human?",
    "Yes, please go ahead.",
    "It still doesn't work.",
    "Great, thank you!",
)
_HUMAN_TEXTS = (
    "Hi, this is Sam from support; I've taken over your case.",
    "I've reviewed your case and fixed it on our side.",
    "I've escalated this to our specialist team.",
    "Thanks for your patience, everything is sorted now.",
    "I've applied a credit to your account.",
)
_TEXTS = tuple(t for group in _FIRST_TEXTS for t in group) + tuple(
    t for group in _AGENT_TEXTS for t in group
)
_AGENT_TEXT_OFFSET = sum(len(g) for g in _FIRST_TEXTS)
_FOLLOW_OFFSET = len(_TEXTS)
_HUMAN_OFFSET = _FOLLOW_OFFSET + len(_FOLLOW_TEXTS)
_ALL_TEXTS = _TEXTS + _FOLLOW_TEXTS + _HUMAN_TEXTS
_PER_INTENT = 3
_FIRST_NAMES = ("jane", "john", "maria", "wei", "amir", "olga", "kofi", "lena", "raj", "sofia")
_LAST_NAMES = ("doe", "smith", "garcia", "chen", "khan", "petrov", "mensah", "muller", "patel")
_MAIL_DOMAINS = ("example.com", "example.org", "example.net")

# --- ordering of a conversation's timeline (sort key within the conversation) -----------------
# bot-phase message m: m*100 + 50; tool calls before agent message m: m*100 + i (i < 50)
_KEY_TRANSFER = 1990
_KEY_ESCALATION = 2000
_KEY_HUMAN = 3000
_KEY_RESOLUTION = 5000
_KEY_FEEDBACK = 6000
_KEY_REOPEN = 7000
_KEY_RESOLUTION2 = 8000
_KEY_FEEDBACK2 = 9000
_KEY_SPAN = 10_000


# --- small vectorised helpers ----------------------------------------------------------------


def _choice(rng: np.random.Generator, probs: tuple[float, ...], size: int) -> np.ndarray:
    """Draw `size` category codes with probabilities `probs`."""
    cdf = np.cumsum(probs, dtype=float)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(probs) - 1)


def _choice_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """Draw one category code per row of a (rows x categories) weight matrix."""
    cdf: np.ndarray = np.cumsum(weights, axis=1)
    u = rng.random((weights.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((u >= cdf).sum(axis=1), weights.shape[1] - 1)


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For per-owner counts, return (owner index, position within owner) of every child row."""
    owner = np.repeat(np.arange(counts.size), counts)
    first = np.cumsum(counts) - counts
    return owner, np.arange(owner.size) - first[owner]


def _resolve(pointer: np.ndarray) -> np.ndarray:
    """Follow pointers (each to an earlier index or to itself) to their fixed point."""
    while True:
        nxt = pointer[pointer]
        if np.array_equal(nxt, pointer):
            return pointer
        pointer = nxt


def _lognormal(
    rng: np.random.Generator, median: np.ndarray | float, sigma: float, size: int
) -> np.ndarray:
    """Lognormal draws with the given median(s)."""
    return np.asarray(median) * np.exp(sigma * rng.standard_normal(size))


def _decode(pool: pl.Series, codes: np.ndarray) -> pl.Series:
    """Map integer codes to the strings of `pool`; negative codes become nulls."""
    valid = codes >= 0
    out = pool.gather(np.where(valid, codes, 0))
    return out if valid.all() else _masked(out, valid)


def _masked(values: np.ndarray | pl.Series, valid: np.ndarray) -> pl.Series:
    """`values` where `valid`, null elsewhere."""
    series = values if isinstance(values, pl.Series) else pl.Series(values)
    return pl.select(pl.when(pl.Series(valid)).then(series)).to_series()


def _pool(values: tuple[str, ...]) -> pl.Series:
    return pl.Series(values=list(values), dtype=pl.String)


# --- conversations ---------------------------------------------------------------------------


class _Conversations:
    """Conversation-level attributes as numpy arrays (index = conversation, in start order)."""

    def __init__(self, rng: np.random.Generator, n: int, days: int, start_epoch_s: int) -> None:
        span = days * _DAY
        self.n = n
        self.start = self._start_seconds(rng, n, span, start_epoch_s)
        idx = np.arange(n)

        # Returning users: conversation i continues the user of the conversation that started
        # closest after (start_i - lag); lags are mostly a few days, sometimes weeks.
        lag = np.where(
            rng.random(n) < 0.85,
            rng.exponential(1.5 * _DAY, n),
            rng.uniform(7 * _DAY, 45 * _DAY, n),
        )
        lag = np.maximum(lag, 600.0)
        target = self.start - lag
        prev = np.searchsorted(self.start, target, side="left")
        eligible = (target >= 0) & (prev < idx)
        p_repeat = min(0.95, (2 / 3) / max(float(eligible.mean()), 1e-9))
        repeat = eligible & (rng.random(n) < p_repeat)
        parent = np.where(repeat, prev, idx)
        root = _resolve(parent)
        roots, user_rank = np.unique(root, return_inverse=True)
        self.n_users = roots.size
        self.user = rng.permutation(self.n_users)[user_rank]

        # User-level attributes come from the user's first conversation.
        self.tier = _choice(rng, _TIER_P, n)[root]
        self.region = _choice(rng, _REGION_P, n)[root]
        self.arm = (rng.random(n) >= _TREATMENT_SHARE).astype(np.int64)[root]  # 0 = treatment

        # Intent and channel: often the same as the previous conversation of the user.
        keep = repeat & (rng.random(n) < 0.70)
        self.intent = _choice(rng, _INTENT_P, n)[_resolve(np.where(keep, parent, idx))]
        keep = repeat & (rng.random(n) < 0.60)
        self.channel = _choice(rng, _CHANNEL_P, n)[_resolve(np.where(keep, parent, idx))]

        # v2 is rolled out gradually: from 25 % of conversations on day 1 to 75 % at the end.
        p_v2 = 0.25 + 0.5 * self.start / span
        self.version = (rng.random(n) < p_v2).astype(np.int64)

    @staticmethod
    def _start_seconds(
        rng: np.random.Generator, n: int, span: int, start_epoch_s: int
    ) -> np.ndarray:
        """Distinct start offsets (s) drawn without replacement from a diurnal/weekly profile."""
        hours = np.arange((span + _HOUR - 1) // _HOUR)
        abs_hour = start_epoch_s // _HOUR + hours
        hour_of_day = abs_hour % 24
        weekday = (abs_hour // 24 + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
        log_w = np.log(
            (0.25 + np.exp(-0.5 * ((hour_of_day - 14.5) / 3.5) ** 2))
            * np.where(weekday >= 5, 0.7, 1.0)
        )
        # Gumbel top-k: weighted sampling of n distinct seconds.
        seconds = np.arange(span)
        keys = log_w[seconds // _HOUR] - np.log(-np.log(rng.random(span)))
        chosen = np.argpartition(-keys, n - 1)[:n] if n < span else seconds
        return np.sort(chosen).astype(np.int64)


# --- generator -------------------------------------------------------------------------------


def generate_sample(
    conversations: int = 2000,
    *,
    seed: int = 7,
    days: int = 30,
    start: datetime.datetime = datetime.datetime(2026, 10, 1, tzinfo=datetime.UTC),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (events, tool_calls) frames in kpictl's canonical schema.

    Args:
        conversations: number of conversations; at most ``days * 86400`` (conversation starts
            are distinct seconds).
        seed: random seed; the same seed always gives identical frames.
        days: length of the observation window; events after ``start + days`` are cut off
            (not yet logged), so late conversations have their outcome window still open.
        start: start of the window (a naive datetime is taken as UTC).

    Returns:
        ``events`` (columns and dtypes of `EVENTS_SCHEMA`) and ``tool_calls``
        (`TOOL_CALLS_SCHEMA`), both sorted by (conversation_id, ts); timestamps are whole
        seconds after `start` and strictly increase within a conversation.

    Raises:
        ValueError: for a negative count, a non-positive number of days, or more conversations
            than seconds in the window.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if conversations < 0:
        raise ValueError(f"conversations must be >= 0, got {conversations}")
    if conversations > days * _DAY:
        raise ValueError(
            f"{conversations} conversations do not fit in {days} day(s): conversation starts are "
            f"distinct seconds, so at most {days * _DAY} fit; use more days"
        )
    if conversations == 0:
        return pl.DataFrame(schema=EVENTS_SCHEMA), pl.DataFrame(schema=TOOL_CALLS_SCHEMA)
    if start.tzinfo is None:
        start = start.replace(tzinfo=datetime.UTC)
    start_us = (start - _EPOCH) // datetime.timedelta(microseconds=1)

    rng = np.random.default_rng(seed)
    c = _Conversations(rng, conversations, days, start_us // 1_000_000)
    rows = _Rows(rng, c)
    pre = _pre_period_tokens(seed, rows)
    return rows.events(start_us, days * _DAY, pre), rows.tool_calls(start_us, days * _DAY)


_PRE_STREAM = 16  # the pre-period covariate's own random stream: no other value moves
_PRE_NEW_P = 0.12  # customers without a pre-period (new): pre_tokens is null


def _pre_period_tokens(seed: int, rows: _Rows) -> pl.Series:
    """Per conversation, its customer's tokens per conversation in the 4 weeks before: drawn to
    correlate with the conversation's own tokens (0.8 times them, times a log-normal factor
    with sigma 0.35), as a customer's habits carry over; null for new customers. From a random
    stream of its own (seed, 16), so adding it moves no other value of the sample."""
    rng = np.random.default_rng([seed, _PRE_STREAM])
    n = rows.c.n
    tokens = np.bincount(
        rows.m_conv, weights=np.where(rows.m_agent, rows.m_in + rows.m_out, 0), minlength=n
    )
    pre = np.round(0.8 * tokens * np.exp(0.35 * rng.standard_normal(n))).astype(np.int64)
    return _masked(pre, rng.random(n) >= _PRE_NEW_P)


class _Rows:
    """Every row of every conversation's timeline, grouped by kind, with its time.

    Kinds (segments, in this order): bot-phase messages, escalations, human-phase messages,
    status rows (resolution / feedback / reopen), tool calls.  Each row has a conversation, a
    sort key that fixes its place in the conversation, and a gap (s) after the previous row.
    """

    def __init__(self, rng: np.random.Generator, c: _Conversations) -> None:
        self.c = c
        n = c.n
        treat = c.arm == 0
        v2 = c.version == 1

        # ---- plan: messages and tool calls of the bot phase ----
        n_msg = 2 + rng.binomial(8, 0.42, n)
        n_agent = n_msg // 2
        n_tools = np.where(rng.random(n) < 0.03, 0, 1 + np.minimum(rng.poisson(0.9, n), 12))
        t_conv, t_pos = _expand(n_tools)
        n_t = t_conv.size
        t_turn = (rng.random(n_t) * n_agent[t_conv]).astype(np.int64)  # before agent message
        t_key = (2 * t_turn + 1) * 100 + t_pos
        t_tool = _choice_rows(rng, _TOOL_P_BY_INTENT[c.intent[t_conv]])
        t_error = rng.random(n_t) < _TOOL_ERROR_RATE[t_tool] * np.where(v2[t_conv], 0.7, 1.0)
        tool_error = np.bincount(t_conv[t_error], minlength=n) > 0

        # ---- plan: outcomes (treatment and v2 do better) ----
        p_esc = (
            np.where(treat, 0.15, 0.25)
            - 0.04 * v2
            + np.array([0.0, -0.03, 0.0, 0.02, 0.06])[c.intent]
            + 0.20 * tool_error
            + 0.04 * (c.tier == 2)
            + 0.04 * (c.channel == 3)
        )
        escalated = rng.random(n) < np.clip(p_esc, 0.01, 0.9)
        escalated2 = escalated & (rng.random(n) < 0.06)
        transfer = escalated & (rng.random(n) < 0.85)
        n_human = np.where(escalated, 1 + rng.binomial(3, 0.5, n), 0)
        p_res = np.where(
            escalated,
            0.80,
            np.where(treat, 0.75, 0.65)
            + 0.05 * v2
            + np.array([0.0, 0.02, 0.0, -0.02, -0.06])[c.intent],
        )
        resolved = rng.random(n) < np.clip(p_res, 0.05, 0.98)
        u = rng.random(n)
        p_reopen_soon = np.where(treat, 0.07, 0.10)
        reopen_soon = resolved & (u < p_reopen_soon)
        reopen_late = resolved & (u >= p_reopen_soon) & (u < p_reopen_soon + 0.05)
        reopened = reopen_soon | reopen_late
        resolved2 = reopened & (rng.random(n) < 0.5)
        feedback = rng.random(n) < 0.40
        feedback2 = feedback & (rng.random(n) < 0.06)

        # ---- segment 0: bot-phase messages user, agent, user, ... ----
        m_conv, m_pos = _expand(n_msg)
        self.m_conv = m_conv
        n_m = m_conv.size
        self.m_agent = m_agent = (m_pos % 2) == 1
        m_model = (rng.random(n_m) >= np.where(v2[m_conv], 0.45, 0.75)).astype(np.int64)
        self.m_model = m_model
        turn = m_pos // 2
        self.m_in = (1100 + 320 * turn + _lognormal(rng, 150.0, 0.6, n_m)).astype(np.int64)
        self.m_out = np.clip(_lognormal(rng, 110.0, 0.55, n_m), 12, 1500).astype(np.int64)
        self.m_cost = np.round(
            self.m_in * _MODEL_PRICE_IN[m_model] + self.m_out * _MODEL_PRICE_OUT[m_model], 8
        )
        self.m_cost_known = rng.random(n_m) >= 0.003
        self.m_latency = np.round(
            _lognormal(rng, _MODEL_LATENCY_MEDIAN_MS[m_model], 0.5, n_m)
            + self.m_out * _MODEL_MS_PER_OUTPUT_TOKEN[m_model],
            1,
        )
        pv_conv = rng.random(n) < np.where(treat, 0.012, 0.02) + 0.005 * ~v2
        pv_msg = 2 * (rng.random(n) * n_agent).astype(np.int64) + 1
        self.m_pv = m_agent & pv_conv[m_conv] & (m_pos == pv_msg[m_conv])
        pick = ((rng.random(n) * _PER_INTENT).astype(np.int64)[m_conv] + turn) % _PER_INTENT
        follow = (rng.random(n_m) * len(_FOLLOW_TEXTS)).astype(np.int64)
        m_text = np.where(
            m_agent,
            _AGENT_TEXT_OFFSET + c.intent[m_conv] * _PER_INTENT + pick,
            _FOLLOW_OFFSET + follow,
        )
        # opening messages: their own text, appended to the text pool after the templates
        self.m_text = np.where(m_pos == 0, len(_ALL_TEXTS) + m_conv, m_text)
        m_gap = np.where(
            m_agent,
            np.ceil(self.m_latency / 1000.0),
            np.where(m_pos == 0, 0, np.round(5 + _lognormal(rng, 25.0, 0.8, n_m))),
        ).astype(np.int64)
        m_key = m_pos * 100 + 50
        del pick, follow, m_text, turn

        # ---- segment 4: tool calls, incl. a transfer to a human right before an escalation ----
        x_conv = np.flatnonzero(transfer)
        tc_conv = np.concatenate([t_conv, x_conv])
        tc_key = np.concatenate([t_key, np.full(x_conv.size, _KEY_TRANSFER)])
        tc_tool = np.concatenate([t_tool, np.full(x_conv.size, _TRANSFER)])
        n_tc = tc_conv.size
        tc_error = np.concatenate([t_error, rng.random(x_conv.size) < _TOOL_ERROR_RATE[_TRANSFER]])
        tc_etype = np.where(tc_error, _choice_rows(rng, _ERROR_TYPE_P_BY_TOOL[tc_tool]), -1)
        transient = (tc_etype == _DEPENDENCY) | (tc_etype == _TIMEOUT)
        ok_retries = _choice(rng, (0.90, 0.08, 0.02), n_tc)
        tc_retries = np.where(
            transient, rng.integers(1, 4, n_tc), np.where(tc_error, 0, ok_retries)
        ).astype(np.int64)
        tc_latency = np.round(
            np.where(
                tc_etype == _TIMEOUT,
                10_000.0 + rng.uniform(0, 500, n_tc),
                _lognormal(rng, _TOOL_LATENCY_MEDIAN_MS[tc_tool], 0.5, n_tc),
            )
            * (1 + tc_retries),
            1,
        )
        tc_gap = np.where(tc_tool == _TRANSFER, rng.integers(2, 11, n_tc), rng.integers(1, 4, n_tc))
        self.tc_tool, self.tc_error, self.tc_etype = tc_tool, tc_error, tc_etype
        self.tc_retries, self.tc_latency = tc_retries, tc_latency
        self.tc_cost = np.round(_TOOL_COST_USD[tc_tool] * (1 + tc_retries), 8)

        # ---- segment 1: escalations (a few with a second, different reason) ----
        e1 = np.flatnonzero(escalated)
        reason_w = _REASON_W + _REASON_W_BY_INTENT[c.intent[e1]]
        reason_w[:, 3] += 1.0 * tool_error[e1]
        reason1 = _choice_rows(rng, reason_w)
        reason2 = (reason1 + rng.integers(1, len(_REASONS), e1.size)) % len(_REASONS)
        second = escalated2[e1]
        n_second = int(second.sum())
        e_conv = np.concatenate([e1, e1[second]])
        e_key = np.concatenate(
            [np.full(e1.size, _KEY_ESCALATION), np.full(n_second, _KEY_ESCALATION + 1)]
        )
        self.e_reason = np.concatenate([reason1, reason2[second]])
        e_gap = np.concatenate([rng.integers(1, 6, e1.size), rng.integers(5, 121, n_second)])

        # ---- segment 2: human phase, human, user, human, ... ----
        h_conv, h_pos = _expand(n_human)
        n_h = h_conv.size
        self.h_human = h_human = (h_pos % 2) == 0
        self.h_minutes = np.round(np.clip(_lognormal(rng, 3.5, 0.6, n_h), 0.2, 45.0), 2)
        queue_s = np.minimum(_lognormal(rng, 180.0, 1.0, n_h), 2 * _HOUR)
        h_gap = np.where(
            h_human,
            np.round(self.h_minutes * 60 + np.where(h_pos == 0, queue_s, 0)),
            np.round(5 + _lognormal(rng, 40.0, 0.8, n_h)),
        ).astype(np.int64)
        greeting = np.where(
            h_pos == 0, 0, 1 + (rng.random(n_h) * (len(_HUMAN_TEXTS) - 1)).astype(np.int64)
        )
        self.h_text = np.where(
            h_human,
            _HUMAN_OFFSET + greeting,
            _FOLLOW_OFFSET + (rng.random(n_h) * len(_FOLLOW_TEXTS)).astype(np.int64),
        )
        h_key = _KEY_HUMAN + h_pos

        # ---- segment 3: resolution, feedback, reopen, second resolution, second feedback ----
        status = [  # (conversations, key, event, gap range in s; None = feedback delay)
            (resolved, _KEY_RESOLUTION, _RESOLUTION, (5, 90)),
            (feedback, _KEY_FEEDBACK, _FEEDBACK, None),
            (reopen_soon, _KEY_REOPEN, _REOPEN, (2 * _HOUR, 20 * _HOUR)),
            (reopen_late, _KEY_REOPEN, _REOPEN, (30 * _HOUR, 5 * _DAY)),
            (resolved2, _KEY_RESOLUTION2, _RESOLUTION, (20 * 60, 6 * _HOUR)),
            (feedback2, _KEY_FEEDBACK2, _FEEDBACK, (_HOUR, 2 * _DAY)),
        ]
        s_convs = [np.flatnonzero(mask) for mask, *_ in status]
        s_conv = np.concatenate(s_convs)
        s_key = np.concatenate(
            [np.full(a.size, p[1]) for a, p in zip(s_convs, status, strict=True)]
        )
        self.s_event = np.concatenate(
            [np.full(a.size, p[2]) for a, p in zip(s_convs, status, strict=True)]
        )
        s_gap = np.concatenate(
            [
                rng.integers(p[3][0], p[3][1] + 1, a.size)
                if p[3] is not None
                else np.minimum(60 + rng.exponential(900.0, a.size), 2 * _HOUR).astype(np.int64)
                for a, p in zip(s_convs, status, strict=True)
            ]
        )
        happy = resolved & ~(reopened & ~resolved2)
        mu = np.where(happy, np.where(reopened, 3.2, 4.3), 2.2) - 0.3 * escalated + 0.1 * treat
        csat = np.round(mu[s_conv] + rng.normal(0.0, 0.9, s_conv.size))
        self.s_csat = np.clip(csat, 1, 5).astype(np.int64)

        self.first_texts = _first_texts(rng, c)

        # ---- one timeline: sort every row into its conversation, then accumulate the gaps ----
        convs = [m_conv, e_conv, h_conv, s_conv, tc_conv]
        self.bounds = np.cumsum([0] + [a.size for a in convs])
        self.n_events = int(self.bounds[4])
        self.conv = np.concatenate(convs).astype(np.int32)
        key = np.concatenate([m_key, e_key, h_key, s_key, tc_key])
        order = pl.Series(self.conv.astype(np.int64) * _KEY_SPAN + key).arg_sort().to_numpy()
        del key, convs
        gap = np.concatenate([m_gap, e_gap, h_gap, s_gap, tc_gap]).astype(np.int64)[order]
        busy = np.zeros(self.conv.size, np.int64)  # a tool call delays the row after it
        busy[self.n_events :] = np.ceil(tc_latency / 1000.0)
        gap[1:] += busy[order[:-1]]
        del busy
        conv_sorted = self.conv[order]
        first = np.ones(order.size, bool)
        first[1:] = conv_sorted[1:] != conv_sorted[:-1]
        gap[first] = 0
        cum = np.cumsum(gap)
        del gap
        cum -= np.repeat(cum[first], np.bincount(conv_sorted, minlength=n))
        cum += c.start[conv_sorted]
        self.order = order.astype(np.int64)
        self.secs = cum  # seconds after start, in timeline order

    def _window(self, cutoff: int, tools: bool) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (into the kind segments) and seconds of the rows before `cutoff`."""
        keep = self.secs < cutoff
        keep &= (self.order >= self.n_events) if tools else (self.order < self.n_events)
        return self.order[keep], self.secs[keep]

    def events(self, start_us: int, cutoff: int, pre_tokens: pl.Series) -> pl.DataFrame:
        """The `events` frame: rows before the cutoff, sorted by (conversation, ts);
        `pre_tokens`: one value per conversation."""
        idx, secs = self._window(cutoff, tools=False)
        b = self.bounds
        c = self.c

        def seg(k: int, values: np.ndarray, fill: float | bool) -> tuple[np.ndarray, np.ndarray]:
            local = idx - b[k]
            inside = (local >= 0) & (local < b[k + 1] - b[k])
            out = np.full(idx.size, fill, dtype=values.dtype)
            out[inside] = values[local[inside]]
            return out, inside

        conv = self.conv[idx]
        agent, _ = seg(0, self.m_agent, False)
        event = np.concatenate(
            [
                np.full(b[1], _MESSAGE),
                np.full(b[2] - b[1], _ESCALATION),
                np.full(b[3] - b[2], _MESSAGE),
                self.s_event,
            ]
        )[idx]
        role = np.concatenate(
            [
                np.where(self.m_agent, _AGENT, _USER),
                np.full(b[2] - b[1], -1),
                np.where(self.h_human, _HUMAN, _USER),
                np.full(b[4] - b[3], -1),
            ]
        )[idx]
        text = np.concatenate(
            [self.m_text, np.full(b[2] - b[1], -1), self.h_text, np.full(b[4] - b[3], -1)]
        )[idx]
        reason, _ = seg(1, self.e_reason, -1)
        minutes, in_human = seg(2, self.h_minutes, 0.0)
        csat, in_status = seg(3, self.s_csat, 0)
        cost, _ = seg(0, self.m_cost, 0.0)
        cost_known, _ = seg(0, self.m_cost_known, False)
        human, _ = seg(2, self.h_human, False)
        attrs = {
            "channel": (_CHANNELS, c.channel),
            "intent": (_INTENTS, c.intent),
            "customer_tier": (_TIERS, c.tier),
            "region": (_REGIONS, c.region),
            "agent_version": (_VERSIONS, c.version),
            "arm": (_ARMS, c.arm),
        }
        columns = {
            "conversation_id": _conversation_ids(c.n).gather(conv),
            "ts": _timestamps(start_us, secs),
            "event": _decode(_pool(_EVENTS), event),
            "role": _decode(_pool(_ROLES), role),
            "input_tokens": _masked(seg(0, self.m_in, 0)[0], agent),
            "output_tokens": _masked(seg(0, self.m_out, 0)[0], agent),
            "cost_usd": _masked(cost, agent & cost_known),
            "latency_ms": _masked(seg(0, self.m_latency, 0.0)[0], agent),
            "escalation_reason": _decode(_pool(_REASONS), reason),
            "csat": _masked(csat, in_status & (event == _FEEDBACK)),
            "human_minutes": _masked(minutes, in_human & human),
            "policy_violation": seg(0, self.m_pv, False)[0],
            "user_id": _user_ids(c).gather(conv),
            "model": _decode(_pool(_MODELS), np.where(agent, seg(0, self.m_model, 0)[0], -1)),
            "text": _decode(pl.concat([_pool(_ALL_TEXTS), self.first_texts]), text),
        }
        for name, (values, codes) in attrs.items():
            columns[name] = _decode(_pool(values), codes).gather(conv)
        columns["pre_tokens"] = pre_tokens.gather(conv)
        return pl.DataFrame(columns, schema=EVENTS_SCHEMA)

    def tool_calls(self, start_us: int, cutoff: int) -> pl.DataFrame:
        """The `tool_calls` frame: calls before the cutoff, sorted by (conversation, ts)."""
        idx, secs = self._window(cutoff, tools=True)
        conv = self.conv[idx]
        idx = idx - self.n_events
        return pl.DataFrame(
            {
                "conversation_id": _conversation_ids(self.c.n).gather(conv),
                "ts": _timestamps(start_us, secs),
                "tool": _decode(_pool(_TOOLS), self.tc_tool[idx]),
                "status": _decode(_pool(("ok", "error")), self.tc_error[idx].astype(np.int64)),
                "error_type": _decode(_pool(_ERROR_TYPES), self.tc_etype[idx]),
                "retries": self.tc_retries[idx],
                "latency_ms": self.tc_latency[idx],
                "cost_usd": self.tc_cost[idx],
            },
            schema=TOOL_CALLS_SCHEMA,
        )


# --- business events (a CRM export) ------------------------------------------------------------

_OUTCOME_STREAM = 15  # the business events' own random stream: events and tool calls never move
_BOOKING_P = np.array([0.10, 0.30])  # by resolved (no, yes), treatment arm
_HOLDOUT_FACTOR = 0.7  # the holdout arm books less often
_REFUND_P = 0.15  # of a conversation's events: a refund (negative value) instead of a booking
_NAMED_P = 0.6  # events that carry the conversation_id (the rest only the user_id)
_LATE_P = 0.12  # events more than 7 days after the conversation (not attributable in 7 d)
_ORPHAN_P = 0.05  # extra events from customers without a conversation (walk-ins)


def generate_business_events(
    events: pl.DataFrame,
    *,
    seed: int = 7,
    days: int = 30,
    start: datetime.datetime = datetime.datetime(2026, 10, 1, tzinfo=datetime.UTC),
) -> pl.DataFrame:
    """Bookings and refunds caused (or not) by the conversations of `events`: a CRM export.

    Drawn from a random stream of their own (seed, 15), so adding them moves no event or tool
    call. Per conversation: a booking with probability 10 % (unresolved) or 30 % (resolved) in
    the treatment arm, 0.7 times that in the holdout arm, 15 % of them refunds (negative value);
    88 % arrive within ~1.5 days (exponential), 12 % 7 to 20 days later; 60 % carry the
    conversation_id, the rest only the user_id; 5 % more come from customers with no conversation
    (no ids). Events after ``start + days`` are not in the export. Sorted by time, ids
    ``b000001``… in that order.
    """
    if start.tzinfo is None:
        start = start.replace(tzinfo=datetime.UTC)
    if events.height == 0:
        return pl.DataFrame(schema=BUSINESS_EVENTS_SCHEMA)
    rng = np.random.default_rng([seed, _OUTCOME_STREAM])
    conv = (
        events.group_by("conversation_id")
        .agg(
            pl.col("ts").min().alias("start"),
            pl.col("user_id").first(),
            pl.col("arm").first(),
            (pl.col("event") == "resolution").any().alias("resolved"),
        )
        .sort("conversation_id")
    )
    n = conv.height
    p = _BOOKING_P[conv["resolved"].cast(pl.Int64).to_numpy()]
    p = np.where(conv["arm"].to_numpy() == "holdout", p * _HOLDOUT_FACTOR, p)
    has = rng.random(n) < p
    late = rng.random(n) < _LATE_P
    delay_s = (
        np.where(late, rng.uniform(7 * _DAY, 20 * _DAY, n), rng.exponential(1.5 * _DAY, n)).astype(
            np.int64
        )
        + 60
    )
    refund = rng.random(n) < _REFUND_P
    value = np.round(_lognormal(rng, 120.0, 0.6, n), 2)
    value = np.where(refund, -np.round(value / 3, 2), value)
    named = rng.random(n) < _NAMED_P
    caused = conv.select(
        pl.when(pl.Series(named)).then(pl.col("conversation_id")).alias("conversation_id"),
        pl.col("user_id"),
        (pl.col("start") + pl.Series(delay_s * 1_000_000).cast(pl.Duration("us"))).alias("ts"),
        pl.Series("type", np.where(refund, "refund", "booking")),
        pl.Series("value_usd", value),
    ).filter(pl.Series(has))
    n_orphan = int(rng.binomial(n, _ORPHAN_P * float(has.mean())))
    start_us = (start - _EPOCH) // datetime.timedelta(microseconds=1)
    orphans = pl.DataFrame(
        {
            "conversation_id": pl.Series([None] * n_orphan, dtype=pl.String),
            "user_id": pl.Series([None] * n_orphan, dtype=pl.String),
            "ts": _timestamps(start_us, rng.integers(0, days * _DAY, n_orphan)),
            "type": pl.Series(["booking"] * n_orphan, dtype=pl.String),
            "value_usd": np.round(_lognormal(rng, 120.0, 0.6, n_orphan), 2),
        }
    )
    until = start + datetime.timedelta(days=days)
    found = (
        pl.concat([caused, orphans])
        .filter(pl.col("ts") < until)
        .sort("ts", "conversation_id", "user_id", nulls_last=True, maintain_order=True)
    )
    ids = "b" + pl.Series(np.arange(1, found.height + 1)).cast(pl.String).str.zfill(
        max(6, len(str(found.height)))
    )
    return (
        found.with_columns(ids.alias("business_event_id"))
        .select(list(BUSINESS_EVENTS_SCHEMA))
        .cast(pl.Schema(BUSINESS_EVENTS_SCHEMA))
    )


def _conversation_ids(n: int) -> pl.Series:
    """ "c000001", "c000002", ... (zero-padded to at least six digits), by conversation index."""
    digits = pl.Series(np.arange(1, n + 1)).cast(pl.String).str.zfill(max(6, len(str(n))))
    return "c" + digits


def _user_ids(c: _Conversations) -> pl.Series:
    """User id ("u000123") of every conversation, by conversation index."""
    digits = pl.Series(c.user + 1).cast(pl.String).str.zfill(max(6, len(str(c.n_users))))
    return "u" + digits


def _timestamps(start_us: int, secs: np.ndarray) -> pl.Series:
    return pl.Series(secs * 1_000_000 + start_us, dtype=pl.Int64).cast(_UTC_TS)


def _first_texts(rng: np.random.Generator, c: _Conversations) -> pl.Series:
    """Opening user message of every conversation; some cite an order, a few contain fake PII."""
    n = c.n
    u = rng.random(n)
    frame = pl.DataFrame(
        {
            "base": _pool(_ALL_TEXTS).gather(
                c.intent * _PER_INTENT + (rng.random(n) * _PER_INTENT).astype(np.int64)
            ),
            "order": ((c.intent == 1) | (c.intent == 2)) & (rng.random(n) < 0.6),
            "order_no": rng.integers(100_000, 1_000_000, n),
            "email": u < 0.04,
            "phone": (u >= 0.04) & (u < 0.06),
            "first": _pool(_FIRST_NAMES).gather(rng.integers(0, len(_FIRST_NAMES), n)),
            "last": _pool(_LAST_NAMES).gather(rng.integers(0, len(_LAST_NAMES), n)),
            "domain": _pool(_MAIL_DOMAINS).gather(rng.integers(0, len(_MAIL_DOMAINS), n)),
            "phone_no": rng.integers(0, 100, n),
        }
    )
    order_part = pl.when(pl.col("order")).then(
        pl.concat_str(pl.lit(" Order #"), pl.col("order_no").cast(pl.String), pl.lit("."))
    )
    email_part = pl.when(pl.col("email")).then(
        pl.concat_str(
            pl.lit(" You can reach me at "),
            pl.col("first"),
            pl.lit("."),
            pl.col("last"),
            pl.lit("@"),
            pl.col("domain"),
            pl.lit("."),
        )
    )
    phone_part = pl.when(pl.col("phone")).then(  # 555-01xx numbers are reserved for fiction
        pl.concat_str(
            pl.lit(" My number is +1 415 555 01"),
            pl.col("phone_no").cast(pl.String).str.zfill(2),
            pl.lit("."),
        )
    )
    return frame.select(
        pl.concat_str(
            pl.col("base"),
            order_part.fill_null(""),
            email_part.fill_null(""),
            phone_part.fill_null(""),
        )
    ).to_series()


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
