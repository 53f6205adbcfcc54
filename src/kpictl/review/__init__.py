"""`kpictl review`: the human review loop (README "Human review").

Two steps, one file per review round:

* `draw_review_sample` draws a stratified random sample of conversations from the spec's unit
  table (the first rollup table, one row per conversation), proportional or equal allocation,
  deterministic for a seed, with each conversation's first messages (redacted by
  `kpictl.redact.redact_pii`), the agent's self-reported outcome (a boolean fact, by default
  `completed`) and empty label columns; `write_review_csv` writes it.
* `score_review` reads labelled files (`read_review`) and scores each round: the confusion matrix
  of human label × self-report, Cohen's kappa, the stratum-weighted human and self-reported
  rates and their gap, sensitivity and specificity of the self-report, the label-corrected
  (Rogan–Gladen) completion rate, the hallucination rate (Wilson CI), and the trend of the gap
  over rounds. `review_json` / `summary_rows` / `trend_rows` give a score's numbers;
  `kpictl.render.markdown.review_markdown` renders it (the scorecard shows the latest round).

The statistics live in `kpictl.stats` (`cohens_kappa`, `stratified_review`, `round_trend`,
`wilson_interval`).

The package's modules, in import order: `columns` (the review file's columns and label words)
→ `sampling` (`draw_review_sample`, `write_review_csv`) → `labels` (`read_review`) → `scores`
(`score_round`, `score_review`) → `summary` (a score's rows, method note and JSON).
"""

from __future__ import annotations

from kpictl.review.columns import (
    ALL,
    ALLOCATIONS,
    FALSE_WORDS,
    HEAD_COLUMNS,
    ID,
    MISSING,
    REQUIRED,
    TAIL_COLUMNS,
    TRUE_WORDS,
)
from kpictl.review.labels import ReviewRound, read_review
from kpictl.review.sampling import (
    ReviewSample,
    SampleOptions,
    allocate,
    draw_review_sample,
    write_review_csv,
)
from kpictl.review.scores import (
    HallucinationRate,
    ReviewScore,
    RoundScore,
    score_review,
    score_round,
)
from kpictl.review.summary import method_note, review_json, summary_rows, trend_rows

__all__ = [
    "ALL",
    "ALLOCATIONS",
    "FALSE_WORDS",
    "HEAD_COLUMNS",
    "ID",
    "MISSING",
    "REQUIRED",
    "TAIL_COLUMNS",
    "TRUE_WORDS",
    "HallucinationRate",
    "ReviewRound",
    "ReviewSample",
    "ReviewScore",
    "RoundScore",
    "SampleOptions",
    "allocate",
    "draw_review_sample",
    "method_note",
    "read_review",
    "review_json",
    "score_review",
    "score_round",
    "summary_rows",
    "trend_rows",
    "write_review_csv",
]
