"""From a caller's request to what a road needs: checks, template variables, query, chat."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.search_hits import hit
from trivium.common.errors import InvalidInputError, PayloadTooLargeError
from trivium.gateway.invoke.errors import InputTooLargeError
from trivium.gateway.invoke.inputs import (
    PASSAGES,
    check_request,
    context_message,
    passage_variables,
    retrieval_query,
    template_variables,
    upstream_messages,
)
from trivium.gateway.invoke.schemas import InvokeRequest, Message


def chat(*turns: tuple[str, str]) -> InvokeRequest:
    return InvokeRequest(messages=[Message(role, content) for role, content in turns])  # type: ignore[arg-type]


# -- check_request -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        InvokeRequest(),
        InvokeRequest(input={"q": "x"}, messages=[Message("user", "x")]),
    ],
    ids=["neither", "both"],
)
def test_exactly_one_of_input_and_messages(request_: InvokeRequest) -> None:
    with pytest.raises(InvalidInputError) as excinfo:
        check_request(request_, 100)
    assert excinfo.value.field == "input"
    assert excinfo.value.status_code == 400


def test_input_size_limit_is_413_naming_input() -> None:
    check_request(InvokeRequest(input={"ab": "x" * 8}), 10)  # key and value count: 2 + 8
    with pytest.raises(InputTooLargeError) as excinfo:
        check_request(InvokeRequest(input={"ab": "x" * 9}), 10)
    error = excinfo.value
    assert isinstance(error, PayloadTooLargeError)
    assert error.status_code == 413
    assert error.field == "input"
    assert error.extra == {"limit": 10, "size": 11}


def test_nested_input_counts_toward_the_size() -> None:
    nested: dict[str, Any] = {"a": ["xx", {"b": "yyy"}, 7]}
    check_request(InvokeRequest(input=nested), 7)  # a + xx + b + yyy = 7, numbers count 0
    with pytest.raises(InputTooLargeError):
        check_request(InvokeRequest(input=nested), 6)


def test_message_size_limit_is_413_naming_messages() -> None:
    request = chat(("system", "x" * 6), ("user", "y" * 5))
    check_request(request, 11)
    with pytest.raises(InputTooLargeError) as excinfo:
        check_request(request, 10)
    assert excinfo.value.field == "messages"
    assert excinfo.value.extra["size"] == 11


def test_passages_are_reserved_for_retrieval() -> None:
    with pytest.raises(InvalidInputError) as excinfo:
        check_request(InvokeRequest(input={"question": "x", PASSAGES: []}), 100)
    assert excinfo.value.field == "input.passages"


def test_the_last_message_must_be_the_users() -> None:
    check_request(chat(("assistant", "hi"), ("user", "help")), 100)
    with pytest.raises(InvalidInputError) as excinfo:
        check_request(chat(("user", "help"), ("assistant", "hi"), ("system", "s")), 100)
    assert excinfo.value.field == "messages[2].role"


# -- template_variables ------------------------------------------------------------------


def test_input_variables_pass_through_as_a_copy() -> None:
    variables = {"product": "kettle", "tone": "warm"}
    request = InvokeRequest(input=variables)
    got = template_variables(request, ["product", "tone"])
    assert got == variables
    got["extra"] = 1
    assert "extra" not in (request.input or {})


def test_a_chat_fills_the_templates_one_input_variable() -> None:
    request = chat(("user", "first"), ("assistant", "reply"), ("user", "last words"))
    assert template_variables(request, ["question"]) == {"question": "last words"}
    assert template_variables(request, [PASSAGES, "question"]) == {"question": "last words"}


def test_a_chat_with_no_declared_input_fills_nothing() -> None:
    assert template_variables(chat(("user", "x")), []) == {}
    assert template_variables(chat(("user", "x")), [PASSAGES]) == {}


def test_a_chat_cannot_fill_two_variables() -> None:
    with pytest.raises(InvalidInputError) as excinfo:
        template_variables(chat(("user", "x")), ["product", PASSAGES, "tone"])
    assert excinfo.value.field == "messages"
    assert "product, tone" in excinfo.value.message


# -- retrieval_query ---------------------------------------------------------------------


def test_query_from_the_last_user_message() -> None:
    assert retrieval_query(chat(("user", "old"), ("assistant", "a"), ("user", "new"))) == "new"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"question": "Q", "query": "R", "topic": "T"}, "Q"),
        ({"question": "  ", "query": "R", "topic": "T"}, "R"),
        ({"question": 3, "query": "R"}, "R"),
        ({"query": "R", "topic": "T"}, "R"),
        ({"topic": "T", "count": 3, "blank": " "}, "T"),
    ],
)
def test_query_precedence(variables: dict[str, Any], expected: str) -> None:
    assert retrieval_query(InvokeRequest(input=variables)) == expected


@pytest.mark.parametrize("variables", [{"topic": "T", "area": "A"}, {"count": 3}, {}])
def test_no_clear_query_is_an_error(variables: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError) as excinfo:
        retrieval_query(InvokeRequest(input=variables))
    assert excinfo.value.field == "input.question"


# -- passages and the upstream chat ----------------------------------------------------------


def test_passage_variables_are_numbered_from_one() -> None:
    passages = passage_variables([hit("first", "a"), hit("second", "b")])
    assert [p["index"] for p in passages] == [1, 2]
    assert passages[1] == {
        "index": 2,
        "text": "second",
        "title": "B",
        "source": "kb/b.md",
        "doc_id": "b",
    }


def test_context_message_numbers_the_passages() -> None:
    message = context_message([hit("Refunds take five days.", "a"), hit("Resets by email.", "b")])
    assert message["role"] == "system"
    lines = message["content"].splitlines()
    assert lines[1:] == ["[1] Refunds take five days.", "[2] Resets by email."]


def test_upstream_messages_with_a_template_replace_the_last_turn() -> None:
    request = chat(("system", "be brief"), ("user", "old"), ("assistant", "a"), ("user", "raw"))
    assert upstream_messages(request, "Question: raw", None) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "old"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "Question: raw"},
    ]


def test_upstream_messages_from_input_and_a_template() -> None:
    request = InvokeRequest(input={"product": "kettle"})
    assert upstream_messages(request, "Write copy for kettle.", None) == [
        {"role": "user", "content": "Write copy for kettle."}
    ]


def test_upstream_messages_without_a_template_keep_the_callers_chat() -> None:
    request = chat(("user", "old"), ("assistant", "a"), ("user", "new"))
    assert upstream_messages(request, None, None) == [
        {"role": "user", "content": "old"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "new"},
    ]


def test_upstream_messages_without_a_template_take_the_only_text_input() -> None:
    assert upstream_messages(InvokeRequest(input={"ticket": "it broke"}), None, None) == [
        {"role": "user", "content": "it broke"}
    ]
    for variables in ({"a": "x", "b": "y"}, {"a": 3}, {"a": "x", "n": 1}):
        with pytest.raises(InvalidInputError) as excinfo:
            upstream_messages(InvokeRequest(input=variables), None, None)
        assert excinfo.value.field == "input"


def test_context_comes_first() -> None:
    context = context_message([hit("Refunds take five days.")])
    request = chat(("user", "old"), ("assistant", "a"), ("user", "refunds?"))
    messages = upstream_messages(request, "Q: refunds?", context)
    assert messages[0] is context
    assert messages[1:] == [
        {"role": "user", "content": "old"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "Q: refunds?"},
    ]
    plain = upstream_messages(InvokeRequest(input={"ticket": "x"}), None, context)
    assert plain == [context, {"role": "user", "content": "x"}]
