"""Small vectorised helpers of the generator: category draws, expanding counts into rows,
lognormal draws, codes to strings, masks to nulls, seconds to UTC timestamps.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from kpictl.sample.scenario import UTC_TS


def choice(rng: np.random.Generator, probs: tuple[float, ...], size: int) -> np.ndarray:
    """Draw `size` category codes with probabilities `probs`."""
    cdf = np.cumsum(probs, dtype=float)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(probs) - 1)


def choice_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """Draw one category code per row of a (rows x categories) weight matrix."""
    cdf: np.ndarray = np.cumsum(weights, axis=1)
    u = rng.random((weights.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((u >= cdf).sum(axis=1), weights.shape[1] - 1)


def expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For per-owner counts, return (owner index, position within owner) of every child row."""
    owner = np.repeat(np.arange(counts.size), counts)
    first = np.cumsum(counts) - counts
    return owner, np.arange(owner.size) - first[owner]


def resolve(pointer: np.ndarray) -> np.ndarray:
    """Follow pointers (each to an earlier index or to itself) to their fixed point."""
    while True:
        nxt = pointer[pointer]
        if np.array_equal(nxt, pointer):
            return pointer
        pointer = nxt


def lognormal(
    rng: np.random.Generator, median: np.ndarray | float, sigma: float, size: int
) -> np.ndarray:
    """Lognormal draws with the given median(s)."""
    return np.asarray(median) * np.exp(sigma * rng.standard_normal(size))


def decode(pool: pl.Series, codes: np.ndarray) -> pl.Series:
    """Map integer codes to the strings of `pool`; negative codes become nulls."""
    valid = codes >= 0
    out = pool.gather(np.where(valid, codes, 0))
    return out if valid.all() else masked(out, valid)


def masked(values: np.ndarray | pl.Series, valid: np.ndarray) -> pl.Series:
    """`values` where `valid`, null elsewhere."""
    series = values if isinstance(values, pl.Series) else pl.Series(values)
    return pl.select(pl.when(pl.Series(valid)).then(series)).to_series()


def pool(values: tuple[str, ...]) -> pl.Series:
    return pl.Series(values=list(values), dtype=pl.String)


def timestamps(start_us: int, secs: np.ndarray) -> pl.Series:
    return pl.Series(secs * 1_000_000 + start_us, dtype=pl.Int64).cast(UTC_TS)
