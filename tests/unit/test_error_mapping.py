"""One mapping of exceptions to problem+json and OpenAI error bodies, in handlers and streams.

The app below is set up as the gateway is: problem handlers on the app, the OpenAI handlers on
one router (the gateway's `/v1/chat/completions` controller, the model service's whole app).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from litestar import Router, get, post
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody
from litestar.testing import TestClient, create_test_client

from trivium.common.errors import (
    BadGatewayError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
)
from trivium.common.http.error_mapping import INTERNAL_ERROR_DETAIL, problem_from
from trivium.common.http.openai_errors import (
    OPENAI_EXCEPTION_HANDLERS,
    openai_error_body,
    openai_error_chunk,
    openai_error_type,
)
from trivium.common.http.problems import (
    EXCEPTION_HANDLERS,
    PROBLEM_EXCEPTION_HANDLERS,
    problem_body,
    problem_event,
)

FAILURES: dict[str, Callable[[], Exception]] = {
    "unavailable": lambda: UnavailableError("the retriever is down", retry_after_s=7),
    "not_found": lambda: NotFoundError("no feature named 'nope'", field="model"),
    "named": lambda: InvalidInputError("temperature must be at most 2", field="temperature"),
    "upstream": lambda: BadGatewayError("upstream cut", extra={"upstream_error": "protocol"}),
    "unauthorized": lambda: NotAuthorizedException("a token, please"),
    "unexpected": lambda: RuntimeError("secret connection string"),
}


class Question(msgspec.Struct, forbid_unknown_fields=True):
    question: str


class Ask(msgspec.Struct, forbid_unknown_fields=True):
    input: Question
    history: list[Question] = []


def routes() -> list[HTTPRouteHandler]:
    @get("/fail/{kind:str}", sync_to_thread=False)
    def fail(kind: FromPath[str]) -> None:
        raise FAILURES[kind]()

    @post("/ask", sync_to_thread=False)
    def ask(data: JSONBody[Ask]) -> str:
        return data.input.question

    return [fail, ask]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Any]]:
    openai = Router(
        "/openai", route_handlers=routes(), exception_handlers=OPENAI_EXCEPTION_HANDLERS
    )
    with create_test_client(
        [*routes(), openai], exception_handlers=PROBLEM_EXCEPTION_HANDLERS, logging_config=None
    ) as test_client:
        yield test_client


def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == f"urn:trivium:error:{body['code']}"
    return body


def openai_error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


# -- each kind of exception, in both formats ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        ({"input": {"question": "x"}, "colour": "red"}, "colour", "unknown field `colour`"),
        ({"input": {"question": "x", "tone": 1}}, "input.tone", "unknown field `tone`"),
        (
            {"input": {"question": "x"}, "history": [{"question": "y", "at": 2}]},
            "history[0].at",
            "unknown field `at`",
        ),
        ({"input": {"question": 3}}, "input.question", "Expected `str`, got `int`"),
        ({}, "input", "missing required field `input`"),
    ],
)
def test_a_body_that_does_not_decode_names_the_field(
    client: TestClient[Any], body: dict[str, Any], field: str, detail: str
) -> None:
    problem = problem_of(client.post("/ask", json=body), 400)
    assert problem["code"] == "invalid_input"
    assert problem["title"] == "Invalid input"
    assert problem["field"] == field
    assert detail in problem["detail"]
    assert problem["instance"] == "/ask"
    assert [error["source"] for error in problem["errors"]] == ["body"]
    assert detail in problem["errors"][0]["message"]

    error = openai_error_of(client.post("/openai/ask", json=body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == field
    assert error["code"] == "invalid_input"
    assert detail in error["message"]
    assert field in error["message"]


def test_unavailable_carries_retry_after(client: TestClient[Any]) -> None:
    problem_response = client.get("/fail/unavailable")
    problem = problem_of(problem_response, 503)
    assert problem_response.headers["retry-after"] == "7"
    assert problem == {
        "type": "urn:trivium:error:unavailable",
        "title": "Service unavailable",
        "status": 503,
        "detail": "the retriever is down",
        "code": "unavailable",
        "instance": "/fail/unavailable",
    }

    openai_response = client.get("/openai/fail/unavailable")
    assert openai_response.headers["retry-after"] == "7"
    assert openai_error_of(openai_response, 503) == {
        "message": "the retriever is down",
        "type": "server_error",
        "param": None,
        "code": "unavailable",
    }


def test_not_found_names_its_field_and_is_an_invalid_request(client: TestClient[Any]) -> None:
    problem = problem_of(client.get("/fail/not_found"), 404)
    assert (problem["code"], problem["field"]) == ("not_found", "model")
    assert problem["detail"] == "no feature named 'nope'"

    response = client.get("/openai/fail/not_found")
    assert "retry-after" not in response.headers
    assert openai_error_of(response, 404) == {
        "message": "model: no feature named 'nope'",
        "type": "invalid_request_error",
        "param": "model",
        "code": "not_found",
    }


def test_a_message_that_names_its_field_is_not_prefixed(client: TestClient[Any]) -> None:
    error = openai_error_of(client.get("/openai/fail/named"), 400)
    assert error["message"] == "temperature must be at most 2"
    assert error["param"] == "temperature"


def test_extension_members_go_in_problems_only(client: TestClient[Any]) -> None:
    problem = problem_of(client.get("/fail/upstream"), 502)
    assert problem["upstream_error"] == "protocol"
    assert "retry-after" not in client.get("/fail/upstream").headers
    error = openai_error_of(client.get("/openai/fail/upstream"), 502)
    assert error == {
        "message": "upstream cut",
        "type": "server_error",
        "param": None,
        "code": "bad_gateway",
    }


def test_litestar_http_exceptions_keep_status_and_headers(client: TestClient[Any]) -> None:
    refused = client.get("/fail/unauthorized")
    assert problem_of(refused, 401)["code"] == "unauthorized"
    assert problem_of(refused, 401)["detail"] == "a token, please"
    refused_openai = client.get("/openai/fail/unauthorized")
    assert openai_error_of(refused_openai, 401) == {
        "message": "a token, please",
        "type": "invalid_request_error",
        "param": None,
        "code": "unauthorized",
    }

    wrong_method = client.get("/ask")
    assert problem_of(wrong_method, 405)["code"] == "method_not_allowed"
    assert "POST" in wrong_method.headers["allow"]

    broken = client.post(
        "/openai/ask", content=b"{nope", headers={"content-type": "application/json"}
    )
    error = openai_error_of(broken, 400)
    assert (error["type"], error["code"]) == ("invalid_request_error", "http_error")
    assert "malformed" in error["message"]

    too_large = problem_from(HTTPException(status_code=413, detail="body over 1 MiB"))
    assert (too_large.status, too_large.code) == (413, "payload_too_large")
    assert problem_from(HTTPException(status_code=418, detail="teapot")).code == "http_error"


def test_an_unexpected_error_is_logged_not_shown(
    client: TestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="trivium.common.http.error_mapping"):
        problem = problem_of(client.get("/fail/unexpected"), 500)
        error = openai_error_of(client.get("/openai/fail/unexpected"), 500)
    assert problem["code"] == "internal_error"
    assert problem["detail"] == INTERNAL_ERROR_DETAIL
    assert error == {
        "message": INTERNAL_ERROR_DETAIL,
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }
    logged = [r for r in caplog.records if r.name == "trivium.common.http.error_mapping"]
    assert [r.getMessage() for r in logged] == ["unhandled error", "unhandled error"]
    assert [getattr(r, "path", None) for r in logged] == [
        "/fail/unexpected",
        "/openai/fail/unexpected",
    ]
    for record in logged:
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], RuntimeError)
    assert "secret" not in json.dumps([problem, error])


# -- streams ----------------------------------------------------------------------------------


def frame_data(frame: bytes, prefix: bytes) -> dict[str, Any]:
    assert frame.startswith(prefix)
    assert frame.endswith(b"\n\n")
    assert frame.count(b"\n") == prefix.count(b"\n") + 2
    data: dict[str, Any] = json.loads(frame.removeprefix(prefix))
    return data


def test_problem_event_is_the_problem_body_as_an_error_event() -> None:
    cut = BadGatewayError("upstream cut", extra={"upstream_error": "protocol"})
    assert frame_data(problem_event(cut), b"event: error\ndata: ") == {
        "type": "urn:trivium:error:bad_gateway",
        "title": "Bad gateway",
        "status": 502,
        "detail": "upstream cut",
        "code": "bad_gateway",
        "upstream_error": "protocol",
    }
    assert frame_data(problem_event(RuntimeError("boom")), b"event: error\ndata: ")["code"] == (
        "internal_error"
    )


def test_openai_error_chunk_is_the_openai_body_as_a_data_line() -> None:
    down = UnavailableError("vLLM is down", retry_after_s=2)
    assert frame_data(openai_error_chunk(down), b"data: ") == {
        "error": {
            "message": "vLLM is down",
            "type": "server_error",
            "param": None,
            "code": "unavailable",
        }
    }
    missing = NotFoundError("no such adapter", field="model")
    assert frame_data(openai_error_chunk(missing), b"data: ")["error"]["param"] == "model"


# -- the pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 413, 422, 429])
def test_client_errors_are_invalid_requests(status: int) -> None:
    assert openai_error_type(status) == "invalid_request_error"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_server_errors(status: int) -> None:
    assert openai_error_type(status) == "server_error"


def test_the_problem_carries_what_both_bodies_need() -> None:
    problem = problem_from(UnavailableError("down", retry_after_s=3, field="retriever"))
    assert (problem.status, problem.code, problem.title) == (
        503,
        "unavailable",
        "Service unavailable",
    )
    assert (problem.detail, problem.field) == ("down", "retriever")
    assert problem.headers == {"Retry-After": "3"}
    assert problem_body(problem, instance="/x")["instance"] == "/x"
    assert openai_error_body(problem)["error"]["message"] == "retriever: down"


def test_the_older_names_are_the_same_builders() -> None:
    assert EXCEPTION_HANDLERS is PROBLEM_EXCEPTION_HANDLERS
    assert set(OPENAI_EXCEPTION_HANDLERS) == set(PROBLEM_EXCEPTION_HANDLERS)
