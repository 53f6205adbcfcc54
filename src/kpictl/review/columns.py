"""The review file's vocabulary: the allocations, its columns in order (the stratify-by columns
go after `stratum`), the required ones, the words of a 1/0 label, and the stratum of a sample
without stratify-by columns (`all`) and of a null value (`(missing)`).
"""

from __future__ import annotations

ALLOCATIONS = ("proportional", "equal")
# The columns of a review file, in order; the stratify-by columns go after `stratum`.
ID = "conversation_id"
HEAD_COLUMNS = (ID, "sampled_at", "allocation", "stratum")
TAIL_COLUMNS = (
    "stratum_size",  # conversations of the stratum in the population (the weight)
    "stratum_self_reported",  # of those, how many the agent reported a success for
    "self_reported",  # the agent's self-reported outcome, 1/0
    "transcript",  # the first messages, "role: text" per line, redacted
    "human_success",  # to fill: 1/0
    "hallucination",  # to fill: 1/0
    "notes",
)
REQUIRED = (ID, "self_reported", "human_success")
TRUE_WORDS = frozenset({"1", "true", "yes"})
FALSE_WORDS = frozenset({"0", "false", "no"})
ALL = "all"
MISSING = "(missing)"
