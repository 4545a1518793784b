"""The invoke API's wire contract: what callers send and what every road answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from trivium.common.contracts.trials import ARM_PATTERN, TRIAL_ID_PATTERN

__all__ = (
    "Cached",
    "Citation",
    "FallbackInfo",
    "InvokeRequest",
    "InvokeResponse",
    "Lineage",
    "Message",
    "SemanticCacheHit",
    "Timings",
    "TrialTag",
    "Usage",
    "Verdict",
)

Verdict = Literal["passed", "flagged", "withheld", "held"]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class Message(msgspec.Struct, frozen=True):
    role: Literal["system", "user", "assistant", "developer"]
    content: str


class TrialTag(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A trial's case: the arm it forces (a road or a variant name of the feature). Only a
    caller with the `trials` scope may send one."""

    id: Annotated[str, msgspec.Meta(pattern=TRIAL_ID_PATTERN)]
    arm: Annotated[str, msgspec.Meta(pattern=ARM_PATTERN)]


class InvokeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`input` (the template's variables) or `messages` (a chat), not both."""

    input: dict[str, Any] | None = None
    messages: Annotated[list[Message], msgspec.Meta(min_length=1, max_length=256)] | None = None
    user: ShortText | None = None
    """Variant assignment is sticky per user, else per session."""
    session: ShortText | None = None
    stream: bool = False
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=32_768)] | None = None
    """Capped by the feature's `limits.max_tokens`."""
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    metadata: Annotated[dict[str, str], msgspec.Meta(max_length=32)] = {}
    trial: TrialTag | None = None
    """Trial traffic: the arm is forced, the response cache and shadows are skipped, and the
    request is labelled `traffic="trial"` and kept out of the production `/v1/stats` window."""


class Citation(msgspec.Struct, frozen=True):
    index: int
    """The passage's number in the prompt, [1], [2], ..."""
    doc_id: str
    chunk_id: str
    source: str | None
    offsets: tuple[int, int]
    score: float
    title: str | None = None
    text: str | msgspec.UnsetType = msgspec.UNSET
    """The passage's text: on trial traffic only (an LLM judge reads what was cited);
    absent from production answers, which the caller's own retrieval can resolve."""


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Timings(msgspec.Struct, frozen=True):
    """Milliseconds per stage; stages a road does not run stay 0."""

    retrieve: float = 0.0
    rerank: float = 0.0
    render: float = 0.0
    generate: float = 0.0
    verify: float = 0.0
    total: float = 0.0


class FallbackInfo(msgspec.Struct, frozen=True):
    from_route: str = msgspec.field(name="from")
    reason: str
    """Why the route before it failed: an upstream error kind, or retriever_unavailable."""


class Lineage(msgspec.Struct, frozen=True, omit_defaults=True):
    """Exactly what served the answer, to trace a regression to its change."""

    policy_hash: str
    policy_version: int | None = None
    template: str | None = None
    adapter: str | None = None
    retriever_index: str | None = None
    upstream: str | None = None


class SemanticCacheHit(msgspec.Struct, frozen=True):
    """What a semantic cache hit replayed: how close the question was, and whose answer."""

    similarity: float
    """Cosine similarity of this question's compared text to the original's."""
    threshold: float
    """The feature's threshold it cleared."""
    original_id: str
    """The answer id (`ans_...`) of the request whose answer this is."""


Cached = bool | Literal["semantic"]
"""false: generated for this request; true: an exact cache hit (identical request); "semantic":
a semantic cache hit (a question of the same meaning). Existing readers that test truthiness
keep working: both kinds of hit are truthy."""


class InvokeResponse(msgspec.Struct):
    id: str
    feature: str
    route: str
    variant: str | None
    template: str | None
    adapter: str | None
    output: str | None
    """None when the answer was withheld for poor grounding."""
    citations: list[Citation]
    usage: Usage
    cost_usd: float
    timings_ms: Timings
    lineage: Lineage
    fallback: FallbackInfo | None = None
    groundedness: float | None = None
    verdict: Verdict | None = None
    needs_review: bool = False
    cached: Cached = False
    finish_reason: str | None = None
    semantic_cache: SemanticCacheHit | msgspec.UnsetType = msgspec.UNSET
    """On a semantic hit only (absent otherwise)."""
    review_id: str | None = None
    """Set when the answer entered the review queue (`GET /v1/reviews/{id}`); with verdict
    `held` the output waits for a reviewer's decision there."""
