"""From what a caller sent to what a road needs: template variables, a query, a chat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trivium.common.contracts.retriever import SearchHit
from trivium.common.errors import InvalidInputError
from trivium.gateway.invoke.errors import InputTooLargeError
from trivium.gateway.invoke.schemas import InvokeRequest, Message

__all__ = (
    "PASSAGES",
    "QUERY_VARIABLES",
    "check_request",
    "context_message",
    "passage_variables",
    "retrieval_query",
    "template_variables",
    "upstream_messages",
)

PASSAGES = "passages"
"""The template variable retrieved passages fill, when a template declares it."""
QUERY_VARIABLES = ("question", "query")


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(key) + _size(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return sum(_size(item) for item in value)
    return 0


def check_request(request: InvokeRequest, max_input_chars: int) -> None:
    if (request.input is None) == (request.messages is None):
        raise InvalidInputError("send exactly one of input (variables) or messages", field="input")
    field = "input" if request.input is not None else "messages"
    if request.input is not None and PASSAGES in request.input:
        raise InvalidInputError(
            f"{PASSAGES} is filled by retrieval, not by the caller", field=f"input.{PASSAGES}"
        )
    messages = request.messages or []
    size = _size(request.input) + sum(len(message.content) for message in messages)
    if size > max_input_chars:
        raise InputTooLargeError(
            f"input is {size} characters; this feature takes at most {max_input_chars}",
            field=field,
            extra={"limit": max_input_chars, "size": size},
        )
    if messages and messages[-1].role != "user":
        raise InvalidInputError(
            "the last message must be the user's", field=f"messages[{len(messages) - 1}].role"
        )


def _last_user(messages: Sequence[Message]) -> str:
    return messages[-1].content


def template_variables(request: InvokeRequest, declared: Sequence[str]) -> dict[str, Any]:
    """The caller's variables; from a chat, the last user message fills the template's one
    input variable (the template must declare exactly one besides passages)."""
    if request.input is not None:
        return dict(request.input)
    assert request.messages is not None
    inputs = [name for name in declared if name != PASSAGES]
    if len(inputs) > 1:
        raise InvalidInputError(
            f"this feature's template takes variables {', '.join(inputs)}: send them as input",
            field="messages",
        )
    return {inputs[0]: _last_user(request.messages)} if inputs else {}


def retrieval_query(request: InvokeRequest) -> str:
    """The text to search for: the last user message, else the `question`/`query` variable,
    else the only string variable."""
    if request.messages is not None:
        return _last_user(request.messages)
    variables = request.input or {}
    for name in QUERY_VARIABLES:
        value = variables.get(name)
        if isinstance(value, str) and value.strip():
            return value
    texts = [value for value in variables.values() if isinstance(value, str) and value.strip()]
    if len(texts) == 1:
        return texts[0]
    raise InvalidInputError(
        "cannot tell which input to search for: name it `question` or `query`",
        field="input.question",
    )


def _only_text(variables: dict[str, Any]) -> str:
    texts = [value for value in variables.values() if isinstance(value, str)]
    if len(texts) != 1 or len(variables) != 1:
        raise InvalidInputError(
            "this road has no template: send messages, or input with one text variable",
            field="input",
        )
    return texts[0]


def passage_variables(hits: Sequence[SearchHit]) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "text": hit.text,
            "title": hit.title,
            "source": hit.source,
            "doc_id": hit.doc_id,
        }
        for i, hit in enumerate(hits, start=1)
    ]


def context_message(hits: Sequence[SearchHit]) -> dict[str, str]:
    """Passages for a template that does not place them itself: a numbered system message."""
    lines = ["Answer from the numbered passages below; cite them as [1], [2], ..."]
    lines += [f"[{i}] {hit.text}" for i, hit in enumerate(hits, start=1)]
    return {"role": "system", "content": "\n".join(lines)}


def upstream_messages(
    request: InvokeRequest, prompt: str | None, context: dict[str, str] | None
) -> list[dict[str, str]]:
    """The chat the upstream sees: the caller's history, the rendered prompt as the last user
    turn (or the caller's own last turn when no template applies), context first."""
    history = [{"role": m.role, "content": m.content} for m in request.messages or []]
    if prompt is None and not history:
        prompt = _only_text(request.input or {})
    if prompt is not None:
        history = [*history[:-1], {"role": "user", "content": prompt}]
    return [context, *history] if context is not None else history
