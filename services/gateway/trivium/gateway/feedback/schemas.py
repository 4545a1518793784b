"""`POST /v1/feedback`'s wire contract, and how each kind's value is checked and labelled."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from trivium.common.errors import InvalidInputError
from trivium.gateway.feedback.ids import ANSWER_ID_PATTERN

__all__ = (
    "FEEDBACK_KINDS",
    "MAX_CORRECTION_CHARS",
    "Correction",
    "FeedbackKind",
    "FeedbackReceipt",
    "FeedbackRequest",
    "checked_value",
    "value_label",
)

FeedbackKind = Literal["completed", "rating", "thumbs", "corrected", "escalated"]
FEEDBACK_KINDS: tuple[FeedbackKind, ...] = (
    "completed",
    "rating",
    "thumbs",
    "corrected",
    "escalated",
)
MAX_COMMENT_CHARS = 2000
MAX_CORRECTION_CHARS = 16_000
CorrectionText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CORRECTION_CHARS)]


class Correction(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The right answer: a classification `label` and/or a reference `answer` text."""

    label: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    answer: CorrectionText | None = None


class FeedbackRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One event about one answer. Several may be sent; the last of each kind counts.

    `value` by kind: `completed`, `escalated`: true/false; `rating`: 1..5; `thumbs`: "up" or
    "down"; `corrected`: true or absent, with `correction` (the right text, or
    `{label, answer}`) required."""

    answer_id: Annotated[str, msgspec.Meta(pattern=ANSWER_ID_PATTERN)]
    kind: FeedbackKind
    value: bool | int | str | None = None
    comment: Annotated[str, msgspec.Meta(max_length=MAX_COMMENT_CHARS)] | None = None
    correction: CorrectionText | Correction | None = None
    user: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None


class FeedbackReceipt(msgspec.Struct, frozen=True):
    """The event as stored, attributed to what served the answer."""

    answer_id: str
    kind: FeedbackKind
    value: bool | int | str
    replaced: bool
    """An earlier event of this kind existed; this one counts from now on."""
    feature: str
    variant: str | None
    route: str
    template: str | None
    adapter: str | None
    policy_hash: str
    policy_version: int | None


def checked_value(request: FeedbackRequest) -> bool | int | str:
    """The event's value, or a 400 naming `value` (or `correction`)."""
    kind, value = request.kind, request.value
    if kind == "corrected":
        correction = request.correction
        if correction is None or (
            isinstance(correction, Correction)
            and correction.label is None
            and correction.answer is None
        ):
            raise InvalidInputError(
                "kind corrected needs `correction`: the right text, or {label, answer}",
                field="correction",
            )
        if value not in (None, True):
            raise InvalidInputError("kind corrected takes value true (or none)", field="value")
        return True
    if request.correction is not None:
        raise InvalidInputError("`correction` goes with kind corrected only", field="correction")
    if kind in ("completed", "escalated"):
        if not isinstance(value, bool):
            raise InvalidInputError(f"kind {kind} takes value true or false", field="value")
        return value
    if kind == "rating":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise InvalidInputError("kind rating takes a whole number 1..5", field="value")
        return value
    if value not in ("up", "down"):
        raise InvalidInputError('kind thumbs takes "up" or "down"', field="value")
    return value


def value_label(kind: FeedbackKind, value: bool | int | str, correction: object = None) -> str:
    """The bounded `value` label: true/false, 1..5, up/down, label/text."""
    if kind == "corrected":
        return "label" if isinstance(correction, Correction) and correction.label else "text"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
