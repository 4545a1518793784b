"""The dataset routes of a real gateway process, over HTTP (`auth.mode: open`; the scope
checks are in test_gateway_auth.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from trivium.common.contracts.datasets import MAX_DATASET_BYTES, ROWS_PER_CHUNK

NDJSON = {"content-type": "application/x-ndjson"}


def unique() -> str:
    return f"d-{uuid.uuid4().hex[:8]}"


def jsonl(count: int, salt: str = "") -> str:
    return "".join(
        json.dumps(
            {
                "id": f"c{i:04d}",
                "input": {"ticket": f"ticket {i}{salt}"},
                "expected": {"label": "billing" if i % 2 else "bug"},
                "tags": ["en"],
            }
        )
        + "\n"
        for i in range(count)
    )


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def test_publish_show_page_and_history(http: httpx.Client) -> None:
    name = unique()
    count = ROWS_PER_CHUNK + 20
    created = http.post(f"/v1/datasets/{name}/versions", content=jsonl(count), headers=NDJSON)
    assert created.status_code == 201, created.text
    assert created.json() | {"sha256": ""} == {
        "name": name,
        "version": 1,
        "sha256": "",
        "created": True,
        "rows": count,
        "label": None,
    }
    again = http.post(
        f"/v1/datasets/{name}/versions",
        content=jsonl(count),
        headers={"content-type": "application/jsonl"},
        params={"label": "production"},
    )
    assert again.status_code == 200, again.text
    assert again.json() == {**created.json(), "created": False, "label": "production"}
    second = http.post(f"/v1/datasets/{name}/versions", content=jsonl(3, "!"), headers=NDJSON)
    assert second.json()["version"] == 2

    detail = http.get(f"/v1/datasets/{name}").json()
    assert detail["labels"] == {"production": 1}
    first = detail["versions"][0]
    assert (first["rows"], first["labels"], first["expects"], first["tags"]) == (
        count,
        ["billing", "bug"],
        ["label"],
        {"en": count},
    )
    assert "chunks" not in first
    listed = {d["name"]: d for d in http.get("/v1/datasets").json()}
    assert listed[name]["latest_version"] == 2

    latest = http.get(f"/v1/datasets/{name}/rows").json()
    assert (latest["version"], latest["total"], latest["next_offset"]) == (2, 3, None)
    page = http.get(
        f"/v1/datasets/{name}/rows",
        params={"selector": "production", "offset": ROWS_PER_CHUNK - 2, "limit": 4},
    ).json()
    assert page["version"] == 1
    assert [r["id"] for r in page["rows"]] == [f"c{i:04d}" for i in range(498, 502)]
    assert page["next_offset"] == 502
    assert page["rows"][0] == {
        "id": "c0498",
        "expected": {"label": "bug"},
        "input": {"ticket": "ticket 498"},
        "tags": ["en"],
    }
    by_version = http.get(f"/v1/datasets/{name}/rows", params={"selector": "2", "limit": 1})
    assert by_version.json()["rows"][0]["input"] == {"ticket": "ticket 0!"}

    history = http.get(f"/v1/datasets/{name}/history").json()
    assert [e["action"] for e in history] == ["publish", "promote", "publish"]


def test_bad_rows_are_a_400_naming_each_line(http: httpx.Client) -> None:
    name = unique()
    body = jsonl(2) + '{"id": "x", "input": {}, "expected": {"label": 1}}\n' + "oops\n"
    response = http.post(f"/v1/datasets/{name}/versions", content=body, headers=NDJSON)
    found = problem(response, 400, "invalid_dataset")
    assert found["field"] == "expected.label"
    assert [(e["line"], e["field"]) for e in found["errors"]] == [
        (3, "expected.label"),
        (4, "row"),
    ]
    assert "line 3: expected.label" in found["detail"]
    problem(http.get(f"/v1/datasets/{name}"), 404, "unknown_artifact")


def test_limits_media_types_and_unknown_names(http: httpx.Client) -> None:
    name = unique()
    oversize = http.post(
        f"/v1/datasets/{name}/versions", content=b"\n" * (MAX_DATASET_BYTES + 1), headers=NDJSON
    )
    assert problem(oversize, 413, "dataset_too_large")["field"] == "body"
    wrong = http.post(f"/v1/datasets/{name}/versions", json={"rows": []})
    assert problem(wrong, 415, "unsupported_media_type")["field"] == "content-type"
    bad_name = http.post("/v1/datasets/Bad%20Name/versions", content=jsonl(1), headers=NDJSON)
    assert problem(bad_name, 400, "malformed_reference")["field"] == "name"

    problem(http.get(f"/v1/datasets/{name}/rows"), 404, "unknown_artifact")
    http.post(f"/v1/datasets/{name}/versions", content=jsonl(2), headers=NDJSON)
    missing = http.get(f"/v1/datasets/{name}/rows", params={"selector": "canary"})
    assert problem(missing, 404, "unknown_label")["field"] == "label"
    malformed = http.get(f"/v1/datasets/{name}/rows", params={"selector": "No!"})
    assert problem(malformed, 400, "malformed_reference")["field"] == "selector"
    too_many = http.get(f"/v1/datasets/{name}/rows", params={"limit": 1001})
    assert problem(too_many, 400, "invalid_input")["field"] == "limit"
