"""Answer ids: `ans_` + the creation time (ms since the epoch, 12 hex) + 16 random hex.

The id carries its own birth time, so feedback on a well-formed id older than the retention
is told apart (410) from an id never served (404) without asking Redis.
"""

from __future__ import annotations

import os
import re

__all__ = ("ANSWER_ID_PATTERN", "answer_created_ms", "new_answer_id")

ANSWER_ID_PATTERN = r"^ans_[0-9a-f]{28}$"
_ANSWER_ID = re.compile(ANSWER_ID_PATTERN)


def new_answer_id(now_ms: int) -> str:
    return f"ans_{now_ms:012x}{os.urandom(8).hex()}"


def answer_created_ms(answer_id: str) -> int | None:
    """When the answer was made (ms), or None for a string that is no answer id."""
    if not _ANSWER_ID.match(answer_id):
        return None
    return int(answer_id[4:16], 16)
