"""Multiple testing: Holm and Benjamini–Hochberg adjusted p-values (docs/methods.md
"Multiple testing").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

PAdjust = Literal["holm", "bh", "none"]


def adjust_p_values(p_values: Sequence[float | None], method: PAdjust | None) -> list[float | None]:
    """Holm (FWER) or Benjamini–Hochberg (FDR) adjusted p-values, in input order (A8).

    None entries are not part of the family and stay None; method None or "none" returns the
    p-values unchanged.
    """
    if method is None or method == "none":
        return list(p_values)
    if method not in ("holm", "bh"):
        raise ValueError(f"unknown p-value adjustment {method!r} (holm, bh or none)")
    present = [i for i, p in enumerate(p_values) if p is not None]
    p = np.array([p_values[i] for i in present], dtype=np.float64)
    m = p.size
    adjusted = np.empty(m)
    if m:
        order = np.argsort(p, kind="stable")
        ranked = p[order]
        if method == "holm":
            steps = np.maximum.accumulate((m - np.arange(m)) * ranked)
        else:
            steps = np.minimum.accumulate((m / np.arange(1, m + 1) * ranked)[::-1])[::-1]
        adjusted[order] = np.minimum(steps, 1.0)
    out: list[float | None] = [None] * len(p_values)
    for i, value in zip(present, adjusted, strict=True):
        out[i] = float(value)
    return out
