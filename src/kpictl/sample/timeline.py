"""Every row of every conversation's timeline (messages, escalations, the human phase,
resolutions / feedback / reopens, tool calls), its time, and the `events` and `tool_calls`
frames cut at the export instant.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from kpictl.sample.conversations import Conversations, conversation_ids, first_texts, user_ids
from kpictl.sample.draws import (
    choice,
    choice_rows,
    decode,
    expand,
    lognormal,
    masked,
    pool,
    timestamps,
)
from kpictl.sample.scenario import (
    AGENT,
    AGENT_TEXT_OFFSET,
    ALL_TEXTS,
    ARMS,
    CHANNELS,
    DAY,
    DEPENDENCY,
    ERROR_TYPE_P_BY_TOOL,
    ERROR_TYPES,
    ESCALATION,
    EVENTS,
    EVENTS_SCHEMA,
    FEEDBACK,
    FOLLOW_OFFSET,
    FOLLOW_TEXTS,
    HOUR,
    HUMAN,
    HUMAN_OFFSET,
    HUMAN_TEXTS,
    INTENTS,
    KEY_ESCALATION,
    KEY_FEEDBACK,
    KEY_FEEDBACK2,
    KEY_HUMAN,
    KEY_REOPEN,
    KEY_RESOLUTION,
    KEY_RESOLUTION2,
    KEY_SPAN,
    KEY_TRANSFER,
    MESSAGE,
    MODEL_LATENCY_MEDIAN_MS,
    MODEL_MS_PER_OUTPUT_TOKEN,
    MODEL_PRICE_IN,
    MODEL_PRICE_OUT,
    MODELS,
    PER_INTENT,
    REASON_W,
    REASON_W_BY_INTENT,
    REASONS,
    REGIONS,
    REOPEN,
    RESOLUTION,
    ROLES,
    TIERS,
    TIMEOUT,
    TOOL_CALLS_SCHEMA,
    TOOL_COST_USD,
    TOOL_ERROR_RATE,
    TOOL_LATENCY_MEDIAN_MS,
    TOOL_P_BY_INTENT,
    TOOLS,
    TRANSFER,
    USER,
    VERSIONS,
)


class Rows:
    """Every row of every conversation's timeline, grouped by kind, with its time.

    Kinds (segments, in this order): bot-phase messages, escalations, human-phase messages,
    status rows (resolution / feedback / reopen), tool calls.  Each row has a conversation, a
    sort key that fixes its place in the conversation, and a gap (s) after the previous row.
    """

    def __init__(self, rng: np.random.Generator, c: Conversations) -> None:
        self.c = c
        n = c.n
        treat = c.arm == 0
        v2 = c.version == 1

        # ---- plan: messages and tool calls of the bot phase ----
        n_msg = 2 + rng.binomial(8, 0.42, n)
        n_agent = n_msg // 2
        n_tools = np.where(rng.random(n) < 0.03, 0, 1 + np.minimum(rng.poisson(0.9, n), 12))
        t_conv, t_pos = expand(n_tools)
        n_t = t_conv.size
        t_turn = (rng.random(n_t) * n_agent[t_conv]).astype(np.int64)  # before agent message
        t_key = (2 * t_turn + 1) * 100 + t_pos
        t_tool = choice_rows(rng, TOOL_P_BY_INTENT[c.intent[t_conv]])
        t_error = rng.random(n_t) < TOOL_ERROR_RATE[t_tool] * np.where(v2[t_conv], 0.7, 1.0)
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
        m_conv, m_pos = expand(n_msg)
        self.m_conv = m_conv
        n_m = m_conv.size
        self.m_agent = m_agent = (m_pos % 2) == 1
        m_model = (rng.random(n_m) >= np.where(v2[m_conv], 0.45, 0.75)).astype(np.int64)
        self.m_model = m_model
        turn = m_pos // 2
        self.m_in = (1100 + 320 * turn + lognormal(rng, 150.0, 0.6, n_m)).astype(np.int64)
        self.m_out = np.clip(lognormal(rng, 110.0, 0.55, n_m), 12, 1500).astype(np.int64)
        self.m_cost = np.round(
            self.m_in * MODEL_PRICE_IN[m_model] + self.m_out * MODEL_PRICE_OUT[m_model], 8
        )
        self.m_cost_known = rng.random(n_m) >= 0.003
        self.m_latency = np.round(
            lognormal(rng, MODEL_LATENCY_MEDIAN_MS[m_model], 0.5, n_m)
            + self.m_out * MODEL_MS_PER_OUTPUT_TOKEN[m_model],
            1,
        )
        pv_conv = rng.random(n) < np.where(treat, 0.012, 0.02) + 0.005 * ~v2
        pv_msg = 2 * (rng.random(n) * n_agent).astype(np.int64) + 1
        self.m_pv = m_agent & pv_conv[m_conv] & (m_pos == pv_msg[m_conv])
        pick = ((rng.random(n) * PER_INTENT).astype(np.int64)[m_conv] + turn) % PER_INTENT
        follow = (rng.random(n_m) * len(FOLLOW_TEXTS)).astype(np.int64)
        m_text = np.where(
            m_agent,
            AGENT_TEXT_OFFSET + c.intent[m_conv] * PER_INTENT + pick,
            FOLLOW_OFFSET + follow,
        )
        # opening messages: their own text, appended to the text pool after the templates
        self.m_text = np.where(m_pos == 0, len(ALL_TEXTS) + m_conv, m_text)
        m_gap = np.where(
            m_agent,
            np.ceil(self.m_latency / 1000.0),
            np.where(m_pos == 0, 0, np.round(5 + lognormal(rng, 25.0, 0.8, n_m))),
        ).astype(np.int64)
        m_key = m_pos * 100 + 50
        del pick, follow, m_text, turn

        # ---- segment 4: tool calls, incl. a transfer to a human right before an escalation ----
        x_conv = np.flatnonzero(transfer)
        tc_conv = np.concatenate([t_conv, x_conv])
        tc_key = np.concatenate([t_key, np.full(x_conv.size, KEY_TRANSFER)])
        tc_tool = np.concatenate([t_tool, np.full(x_conv.size, TRANSFER)])
        n_tc = tc_conv.size
        tc_error = np.concatenate([t_error, rng.random(x_conv.size) < TOOL_ERROR_RATE[TRANSFER]])
        tc_etype = np.where(tc_error, choice_rows(rng, ERROR_TYPE_P_BY_TOOL[tc_tool]), -1)
        transient = (tc_etype == DEPENDENCY) | (tc_etype == TIMEOUT)
        ok_retries = choice(rng, (0.90, 0.08, 0.02), n_tc)
        tc_retries = np.where(
            transient, rng.integers(1, 4, n_tc), np.where(tc_error, 0, ok_retries)
        ).astype(np.int64)
        tc_latency = np.round(
            np.where(
                tc_etype == TIMEOUT,
                10_000.0 + rng.uniform(0, 500, n_tc),
                lognormal(rng, TOOL_LATENCY_MEDIAN_MS[tc_tool], 0.5, n_tc),
            )
            * (1 + tc_retries),
            1,
        )
        tc_gap = np.where(tc_tool == TRANSFER, rng.integers(2, 11, n_tc), rng.integers(1, 4, n_tc))
        self.tc_tool, self.tc_error, self.tc_etype = tc_tool, tc_error, tc_etype
        self.tc_retries, self.tc_latency = tc_retries, tc_latency
        self.tc_cost = np.round(TOOL_COST_USD[tc_tool] * (1 + tc_retries), 8)

        # ---- segment 1: escalations (a few with a second, different reason) ----
        e1 = np.flatnonzero(escalated)
        reason_w = REASON_W + REASON_W_BY_INTENT[c.intent[e1]]
        reason_w[:, 3] += 1.0 * tool_error[e1]
        reason1 = choice_rows(rng, reason_w)
        reason2 = (reason1 + rng.integers(1, len(REASONS), e1.size)) % len(REASONS)
        second = escalated2[e1]
        n_second = int(second.sum())
        e_conv = np.concatenate([e1, e1[second]])
        e_key = np.concatenate(
            [np.full(e1.size, KEY_ESCALATION), np.full(n_second, KEY_ESCALATION + 1)]
        )
        self.e_reason = np.concatenate([reason1, reason2[second]])
        e_gap = np.concatenate([rng.integers(1, 6, e1.size), rng.integers(5, 121, n_second)])

        # ---- segment 2: human phase, human, user, human, ... ----
        h_conv, h_pos = expand(n_human)
        n_h = h_conv.size
        self.h_human = h_human = (h_pos % 2) == 0
        self.h_minutes = np.round(np.clip(lognormal(rng, 3.5, 0.6, n_h), 0.2, 45.0), 2)
        queue_s = np.minimum(lognormal(rng, 180.0, 1.0, n_h), 2 * HOUR)
        h_gap = np.where(
            h_human,
            np.round(self.h_minutes * 60 + np.where(h_pos == 0, queue_s, 0)),
            np.round(5 + lognormal(rng, 40.0, 0.8, n_h)),
        ).astype(np.int64)
        greeting = np.where(
            h_pos == 0, 0, 1 + (rng.random(n_h) * (len(HUMAN_TEXTS) - 1)).astype(np.int64)
        )
        self.h_text = np.where(
            h_human,
            HUMAN_OFFSET + greeting,
            FOLLOW_OFFSET + (rng.random(n_h) * len(FOLLOW_TEXTS)).astype(np.int64),
        )
        h_key = KEY_HUMAN + h_pos

        # ---- segment 3: resolution, feedback, reopen, second resolution, second feedback ----
        status = [  # (conversations, key, event, gap range in s; None = feedback delay)
            (resolved, KEY_RESOLUTION, RESOLUTION, (5, 90)),
            (feedback, KEY_FEEDBACK, FEEDBACK, None),
            (reopen_soon, KEY_REOPEN, REOPEN, (2 * HOUR, 20 * HOUR)),
            (reopen_late, KEY_REOPEN, REOPEN, (30 * HOUR, 5 * DAY)),
            (resolved2, KEY_RESOLUTION2, RESOLUTION, (20 * 60, 6 * HOUR)),
            (feedback2, KEY_FEEDBACK2, FEEDBACK, (HOUR, 2 * DAY)),
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
                else np.minimum(60 + rng.exponential(900.0, a.size), 2 * HOUR).astype(np.int64)
                for a, p in zip(s_convs, status, strict=True)
            ]
        )
        happy = resolved & ~(reopened & ~resolved2)
        mu = np.where(happy, np.where(reopened, 3.2, 4.3), 2.2) - 0.3 * escalated + 0.1 * treat
        csat = np.round(mu[s_conv] + rng.normal(0.0, 0.9, s_conv.size))
        self.s_csat = np.clip(csat, 1, 5).astype(np.int64)

        self.first_texts = first_texts(rng, c)

        # ---- one timeline: sort every row into its conversation, then accumulate the gaps ----
        convs = [m_conv, e_conv, h_conv, s_conv, tc_conv]
        self.bounds = np.cumsum([0] + [a.size for a in convs])
        self.n_events = int(self.bounds[4])
        self.conv = np.concatenate(convs).astype(np.int32)
        key = np.concatenate([m_key, e_key, h_key, s_key, tc_key])
        order = pl.Series(self.conv.astype(np.int64) * KEY_SPAN + key).arg_sort().to_numpy()
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
                np.full(b[1], MESSAGE),
                np.full(b[2] - b[1], ESCALATION),
                np.full(b[3] - b[2], MESSAGE),
                self.s_event,
            ]
        )[idx]
        role = np.concatenate(
            [
                np.where(self.m_agent, AGENT, USER),
                np.full(b[2] - b[1], -1),
                np.where(self.h_human, HUMAN, USER),
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
            "channel": (CHANNELS, c.channel),
            "intent": (INTENTS, c.intent),
            "customer_tier": (TIERS, c.tier),
            "region": (REGIONS, c.region),
            "agent_version": (VERSIONS, c.version),
            "arm": (ARMS, c.arm),
        }
        columns = {
            "conversation_id": conversation_ids(c.n).gather(conv),
            "ts": timestamps(start_us, secs),
            "event": decode(pool(EVENTS), event),
            "role": decode(pool(ROLES), role),
            "input_tokens": masked(seg(0, self.m_in, 0)[0], agent),
            "output_tokens": masked(seg(0, self.m_out, 0)[0], agent),
            "cost_usd": masked(cost, agent & cost_known),
            "latency_ms": masked(seg(0, self.m_latency, 0.0)[0], agent),
            "escalation_reason": decode(pool(REASONS), reason),
            "csat": masked(csat, in_status & (event == FEEDBACK)),
            "human_minutes": masked(minutes, in_human & human),
            "policy_violation": seg(0, self.m_pv, False)[0],
            "user_id": user_ids(c).gather(conv),
            "model": decode(pool(MODELS), np.where(agent, seg(0, self.m_model, 0)[0], -1)),
            "text": decode(pl.concat([pool(ALL_TEXTS), self.first_texts]), text),
        }
        for name, (values, codes) in attrs.items():
            columns[name] = decode(pool(values), codes).gather(conv)
        columns["pre_tokens"] = pre_tokens.gather(conv)
        return pl.DataFrame(columns, schema=EVENTS_SCHEMA)

    def tool_calls(self, start_us: int, cutoff: int) -> pl.DataFrame:
        """The `tool_calls` frame: calls before the cutoff, sorted by (conversation, ts)."""
        idx, secs = self._window(cutoff, tools=True)
        conv = self.conv[idx]
        idx = idx - self.n_events
        return pl.DataFrame(
            {
                "conversation_id": conversation_ids(self.c.n).gather(conv),
                "ts": timestamps(start_us, secs),
                "tool": decode(pool(TOOLS), self.tc_tool[idx]),
                "status": decode(pool(("ok", "error")), self.tc_error[idx].astype(np.int64)),
                "error_type": decode(pool(ERROR_TYPES), self.tc_etype[idx]),
                "retries": self.tc_retries[idx],
                "latency_ms": self.tc_latency[idx],
                "cost_usd": self.tc_cost[idx],
            },
            schema=TOOL_CALLS_SCHEMA,
        )
