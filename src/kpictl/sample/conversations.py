"""The conversations: their starts (diurnal and weekly), returning users, user and
conversation attributes, ids, and each conversation's opening message (some with fake PII).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from kpictl.sample.draws import choice, pool, resolve
from kpictl.sample.scenario import (
    ALL_TEXTS,
    CHANNEL_P,
    DAY,
    FIRST_NAMES,
    HOUR,
    INTENT_P,
    LAST_NAMES,
    MAIL_DOMAINS,
    PER_INTENT,
    REGION_P,
    TIER_P,
    TREATMENT_SHARE,
)


class Conversations:
    """Conversation-level attributes as numpy arrays (index = conversation, in start order)."""

    def __init__(self, rng: np.random.Generator, n: int, days: int, start_epoch_s: int) -> None:
        span = days * DAY
        self.n = n
        self.start = self._start_seconds(rng, n, span, start_epoch_s)
        idx = np.arange(n)

        # Returning users: conversation i continues the user of the conversation that started
        # closest after (start_i - lag); lags are mostly a few days, sometimes weeks.
        lag = np.where(
            rng.random(n) < 0.85,
            rng.exponential(1.5 * DAY, n),
            rng.uniform(7 * DAY, 45 * DAY, n),
        )
        lag = np.maximum(lag, 600.0)
        target = self.start - lag
        prev = np.searchsorted(self.start, target, side="left")
        eligible = (target >= 0) & (prev < idx)
        p_repeat = min(0.95, (2 / 3) / max(float(eligible.mean()), 1e-9))
        repeat = eligible & (rng.random(n) < p_repeat)
        parent = np.where(repeat, prev, idx)
        root = resolve(parent)
        roots, user_rank = np.unique(root, return_inverse=True)
        self.n_users = roots.size
        self.user = rng.permutation(self.n_users)[user_rank]

        # User-level attributes come from the user's first conversation.
        self.tier = choice(rng, TIER_P, n)[root]
        self.region = choice(rng, REGION_P, n)[root]
        self.arm = (rng.random(n) >= TREATMENT_SHARE).astype(np.int64)[root]  # 0 = treatment

        # Intent and channel: often the same as the previous conversation of the user.
        keep = repeat & (rng.random(n) < 0.70)
        self.intent = choice(rng, INTENT_P, n)[resolve(np.where(keep, parent, idx))]
        keep = repeat & (rng.random(n) < 0.60)
        self.channel = choice(rng, CHANNEL_P, n)[resolve(np.where(keep, parent, idx))]

        # v2 is rolled out gradually: from 25 % of conversations on day 1 to 75 % at the end.
        p_v2 = 0.25 + 0.5 * self.start / span
        self.version = (rng.random(n) < p_v2).astype(np.int64)

    @staticmethod
    def _start_seconds(
        rng: np.random.Generator, n: int, span: int, start_epoch_s: int
    ) -> np.ndarray:
        """Distinct start offsets (s) drawn without replacement from a diurnal/weekly profile."""
        hours = np.arange((span + HOUR - 1) // HOUR)
        abs_hour = start_epoch_s // HOUR + hours
        hour_of_day = abs_hour % 24
        weekday = (abs_hour // 24 + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
        log_w = np.log(
            (0.25 + np.exp(-0.5 * ((hour_of_day - 14.5) / 3.5) ** 2))
            * np.where(weekday >= 5, 0.7, 1.0)
        )
        # Gumbel top-k: weighted sampling of n distinct seconds.
        seconds = np.arange(span)
        keys = log_w[seconds // HOUR] - np.log(-np.log(rng.random(span)))
        chosen = np.argpartition(-keys, n - 1)[:n] if n < span else seconds
        return np.sort(chosen).astype(np.int64)


def conversation_ids(n: int) -> pl.Series:
    """ "c000001", "c000002", ... (zero-padded to at least six digits), by conversation index."""
    digits = pl.Series(np.arange(1, n + 1)).cast(pl.String).str.zfill(max(6, len(str(n))))
    return "c" + digits


def user_ids(c: Conversations) -> pl.Series:
    """User id ("u000123") of every conversation, by conversation index."""
    digits = pl.Series(c.user + 1).cast(pl.String).str.zfill(max(6, len(str(c.n_users))))
    return "u" + digits


def first_texts(rng: np.random.Generator, c: Conversations) -> pl.Series:
    """Opening user message of every conversation; some cite an order, a few contain fake PII."""
    n = c.n
    u = rng.random(n)
    frame = pl.DataFrame(
        {
            "base": pool(ALL_TEXTS).gather(
                c.intent * PER_INTENT + (rng.random(n) * PER_INTENT).astype(np.int64)
            ),
            "order": ((c.intent == 1) | (c.intent == 2)) & (rng.random(n) < 0.6),
            "order_no": rng.integers(100_000, 1_000_000, n),
            "email": u < 0.04,
            "phone": (u >= 0.04) & (u < 0.06),
            "first": pool(FIRST_NAMES).gather(rng.integers(0, len(FIRST_NAMES), n)),
            "last": pool(LAST_NAMES).gather(rng.integers(0, len(LAST_NAMES), n)),
            "domain": pool(MAIL_DOMAINS).gather(rng.integers(0, len(MAIL_DOMAINS), n)),
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
