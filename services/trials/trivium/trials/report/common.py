"""What every format says before its tables: the trial's identity, and its summary or why not."""

from __future__ import annotations

from datetime import UTC, datetime

from trivium.common.contracts.trials import TrialRecord, TrialSummary
from trivium.common.errors import ConflictError

__all__ = ("facts", "summary_of")


def summary_of(record: TrialRecord) -> TrialSummary:
    """The trial's summary; a trial without one (still running, interrupted) has no report."""
    if record.summary is None:
        raise ConflictError(
            f"trial {record.id} has no summary yet (status {record.status}): resume it with "
            f"`trivium trial run {record.feature} --resume {record.id}` to finish it first",
            field="summary",
        )
    return record.summary


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def facts(record: TrialRecord) -> list[tuple[str, str]]:
    """(name, value) pairs identifying the trial, in reading order."""
    pairs = [
        ("feature", record.feature),
        ("dataset", record.dataset),
        ("cases", str(record.cases)),
        ("arms", ", ".join(record.arms)),
        ("status", record.status),
        ("created", f"{_when(record.created_at)} by {record.created_by}"),
    ]
    if record.summary is not None:
        pairs.append(("summarised", _when(record.summary.computed_at)))
    if record.policy_hash:
        pairs.append(("policy", record.policy_hash))
    if record.note:
        pairs.append(("note", record.note))
    return pairs
