"""The shared OpenAPI helpers and strict bodies, on a small real Litestar app."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.testing import TestClient

from trivium.common.http.openapi import (
    ADMIN_SECURITY,
    add_content,
    answer_options_with_every_method,
    constrain,
    describe_structs,
    openapi_config,
    problem_responses,
    server_sent_event,
    unions_as_any_of,
)
from trivium.common.http.problems import PROBLEM_EXCEPTION_HANDLERS
from trivium.common.http.strict_body import decode_body_strictly


class Inner(msgspec.Struct, forbid_unknown_fields=True):
    weight: Annotated[float, msgspec.Meta(gt=0, le=10)] = 1.0


class Order(msgspec.Struct, forbid_unknown_fields=True):
    count: Annotated[int, msgspec.Meta(ge=0)]
    urgent: bool = False
    inner: Inner | None = None
    note: str | int | None = None


class Orders(Controller):
    path = "/orders"

    @post("/", responses=problem_responses(400, 409), security=ADMIN_SECURITY)
    async def place(self, data: JSONBody[Order]) -> Order:
        return data

    @get("/{n:int}")
    async def show(self, n: FromPath[int]) -> dict[str, int]:
        return {"n": n}

    @delete("/{n:int}")
    async def cancel(self, n: FromPath[int]) -> None:
        return None


def _app() -> Litestar:
    app = Litestar(
        [Orders],
        exception_handlers=PROBLEM_EXCEPTION_HANDLERS,
        before_request=decode_body_strictly,
        openapi_config=openapi_config(
            "test",
            describe_structs(Order),
            unions_as_any_of,
            constrain("Order", "count", maximum=7),
            add_content("/orders", "post", 201, "text/event-stream", server_sent_event("x")),
        ),
    )
    return answer_options_with_every_method(app)


def _schema(client: TestClient[Litestar]) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/schema/openapi.json").json()
    return document


def test_the_served_schema_states_what_types_cannot() -> None:
    with TestClient(_app()) as client:
        document = _schema(client)
    schemas = document["components"]["schemas"]
    assert schemas["Order"]["additionalProperties"] is False
    assert schemas["Inner"]["additionalProperties"] is False
    assert schemas["Order"]["properties"]["count"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 7,
    }
    assert schemas["Inner"]["properties"]["weight"]["exclusiveMinimum"] == 0
    assert "oneOf" not in str(document)
    operation = document["paths"]["/orders"]["post"]
    assert operation["security"] == [{"bearer": []}]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    conflict = operation["responses"]["409"]["content"]["application/problem+json"]["schema"]
    assert conflict == {"$ref": "#/components/schemas/ProblemDetails"}
    assert {"type", "title", "status", "detail", "code"} <= set(
        schemas["ProblemDetails"]["required"]
    )


def test_bodies_are_read_strictly_and_integral_numbers_are_integers() -> None:
    with TestClient(_app()) as client:
        assert client.post("/orders", json={"count": 3.0}).json()["count"] == 3
        lax = client.post("/orders", json={"count": 1, "urgent": 0})
        assert lax.status_code == 400
        assert lax.json()["field"] == "urgent"
        nested = client.post("/orders", json={"count": 1, "inner": {"weight": "2"}})
        assert (nested.status_code, nested.json()["field"]) == (400, "inner.weight")
        unknown = client.post("/orders", json={"count": 1, "inner": {"colour": 1}})
        assert (unknown.status_code, unknown.json()["field"]) == (400, "inner.colour")
        malformed = client.post(
            "/orders", content=b"{", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400


def test_options_names_every_method_of_the_path() -> None:
    with TestClient(_app()) as client:
        assert client.options("/orders/1").headers["allow"] == "DELETE, GET, OPTIONS"


def test_a_streamed_answer_documents_each_event_as_schemathesis_reads_it() -> None:
    with TestClient(_app()) as client:
        document = _schema(client)
    content = document["paths"]["/orders"]["post"]["responses"]["201"]["content"]
    event = content["text/event-stream"]["schema"]
    assert event["required"] == ["event", "data"]
    assert event["properties"]["event"] == {"enum": ["message"]}
    assert server_sent_event("d", ("delta", "error"))["properties"]["event"] == {
        "enum": ["delta", "error"]
    }
