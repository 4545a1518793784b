"""The retriever as its callers see it: a real `trivium retriever serve` process over HTTP,
and `trivium retriever ingest` against it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServiceProcess, run_trivium, start_service, trivium_env
from tests.support.prometheus import sample_value

KB: list[dict[str, Any]] = [
    {
        "id": "refunds",
        "title": "Refunds",
        "text": "Refunds reach the card in five days.",
        "metadata": {"team": "billing"},
    },
    {
        "id": "guide/reset.md",
        "title": "Password reset",
        "text": "Reset the password from the login page.",
        "metadata": {"team": "accounts"},
    },
]


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("retriever")
    env = trivium_env(
        tmp,
        None,
        TRIVIUM_RETRIEVER__MAX_REQUEST_BYTES="300000",
        TRIVIUM_RETRIEVER__MAX_DOCUMENT_BYTES="20000",
        TRIVIUM_RETRIEVER__STORE__OPTIMIZE_AFTER_S="0.2",
        TRIVIUM_RETRIEVER__EMBEDDING__TORCH_THREADS="1",
    )
    service = start_service(tmp, ["retriever", "serve"], "RETRIEVER", env)
    yield service
    assert service.stop() == 0, service.log_path.read_text()[-2000:]


@pytest.fixture
def http(retriever: ServiceProcess) -> Iterator[httpx.Client]:
    with retriever.client() as client:
        yield client


def _collection(http: httpx.Client, name: str) -> None:
    response = http.post("/v1/collections", json={"name": name})
    assert response.status_code == 201, response.text
    assert response.json()["vector_size"] == 384


def test_collections_ingest_search_delete(http: httpx.Client) -> None:
    _collection(http, "kb")
    again = http.post("/v1/collections", json={"name": "kb"})
    assert again.status_code == 409
    assert again.json()["field"] == "name"
    ingest = http.post("/v1/collections/kb/documents", json={"documents": KB})
    assert ingest.status_code == 200, ingest.text
    assert sorted(ingest.json()["added"]) == ["guide/reset.md", "refunds"]
    assert http.post("/v1/collections/kb/documents", json={"documents": KB}).json()[
        "unchanged"
    ] == ["refunds", "guide/reset.md"]

    search = http.post("/v1/collections/kb/search", json={"query": "forgot my password", "k": 2})
    assert search.status_code == 200, search.text
    top = search.json()["hits"][0]
    assert top["doc_id"] == "guide/reset.md"
    assert top["text"] == KB[1]["text"][top["start"] : top["end"]]
    assert {"dense", "sparse", "fused"} <= set(top["scores"])
    version = search.json()["index_version"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{12}", version)
    assert http.get("/v1/collections/kb").json()["index_version"] == version
    filtered = http.post(
        "/v1/collections/kb/search",
        json={
            "query": "password",
            "filter": {"must": [{"key": "metadata.team", "match": "billing"}]},
        },
    )
    assert [h["doc_id"] for h in filtered.json()["hits"]] == ["refunds"]

    more = {"id": "quotas", "text": "Quotas limit the tokens a tenant may spend per day."}
    assert http.post("/v1/collections/kb/documents", json={"documents": [more]}).json()[
        "added"
    ] == ["quotas"]
    after = http.post("/v1/collections/kb/search", json={"query": "tokens per day"}).json()
    assert after["index_version"] not in {version, ""}
    assert after["index_version"][:8] == version[:8]  # the same recipe
    assert http.delete("/v1/collections/kb/documents/quotas").status_code == 200
    searched = http.post("/v1/collections/kb/search", json={"query": "refund"}).json()
    assert searched["index_version"] == version  # the same content again

    stats = http.get("/v1/collections/kb").json()
    assert (stats["documents"], stats["backend"]) == (2, "edge")
    assert "kb" in [c["name"] for c in http.get("/v1/collections").json()]
    deleted = http.delete("/v1/collections/kb/documents/guide/reset.md")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["id"] == "guide/reset.md"
    assert http.delete("/v1/collections/kb/documents/guide/reset.md").status_code == 404
    assert http.get("/v1/collections/kb").json()["documents"] == 1

    metrics = http.get("/metrics").text
    assert (
        sample_value(metrics, "trivium_retriever_searches_total", mode="hybrid", reranked="false")
        >= 2
    )
    assert sample_value(metrics, "trivium_retriever_documents_total", result="added") >= 2
    assert sample_value(metrics, "trivium_retriever_documents_total", result="unchanged") >= 2
    for foreign in ("trivium_caller_", "trivium_policy_", "trivium_requests_total"):
        assert foreign not in metrics, f"the retriever exports the gateway's {foreign}*"
    ready = http.get("/readyz").json()
    assert ready["checks"]["store"] is True
    assert ready["checks"]["embedding_model"] == "all-MiniLM-L6-v2"


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/v1/collections/bad/search", {"query": "x"}, 404, "collection"),
        ("/v1/collections/errs/search", {"query": " "}, 400, "query"),
        ("/v1/collections/errs/search", {"query": "x", "k": 0}, 400, "k"),
        ("/v1/collections/errs/search", {"query": "x", "k": "ten"}, 400, "k"),
        ("/v1/collections/errs/search", {"query": "x", "mode": "magic"}, 400, "mode"),
        ("/v1/collections/errs/search", {"query": "x", "limit": 3}, 400, None),
        ("/v1/collections/errs/search", {"query": "x", "rerank": True}, 400, "rerank"),
        (
            "/v1/collections/errs/search",
            {"query": "x", "filter": {"must": [{"key": "doc_id"}]}},
            400,
            "filter.must[0]",
        ),
        ("/v1/collections/errs/search", {}, 400, "query"),
        ("/v1/collections/errs/search", {"query": "x", "weights": {"dense": 0}}, 400, "dense"),
        ("/v1/collections", {"name": "Bad Name!"}, 400, "name"),
        ("/v1/collections/errs/documents", {"documents": []}, 400, "documents"),
        ("/v1/collections/errs/documents", {"documents": [{"id": "a"}]}, 400, "text"),
        (
            "/v1/collections/errs/documents",
            {"documents": [{"id": "a", "text": "x" * 20001}]},
            413,
            "documents[0].text",
        ),
        (
            "/v1/collections/missing/documents",
            {"documents": [{"id": "a", "text": "x"}]},
            404,
            "collection",
        ),
    ],
)
def test_bad_input_gets_a_problem_naming_the_field(
    http: httpx.Client, path: str, body: dict[str, Any], status: int, field: str | None
) -> None:
    if http.get("/v1/collections/errs").status_code == 404:
        _collection(http, "errs")
    response = http.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    if field is not None:
        assert field in problem.get("field", "") or field in json.dumps(
            problem.get("errors", [])
        ), problem


def test_an_oversize_body_is_refused_and_nothing_is_written(http: httpx.Client) -> None:
    _collection(http, "big")
    documents = [{"id": f"d{i}", "text": "word " * 3000} for i in range(30)]  # ~450 kB
    response = http.post("/v1/collections/big/documents", json={"documents": documents})
    assert response.status_code == 413
    assert http.get("/v1/collections/big").json()["points"] == 0


def test_cli_ingest_is_idempotent_and_syncs_deletions(
    retriever: ServiceProcess, tmp_path: Path
) -> None:
    kb = tmp_path / "kb"
    (kb / "guide").mkdir(parents=True)
    (kb / "guide" / "gpu.md").write_text("# GPUs\nThe model service runs vLLM on GPUs.")
    (kb / "notes.txt").write_text("Refunds take five days.")
    (kb / "faq.jsonl").write_text(
        json.dumps({"id": "faq-1", "text": "Two-factor codes arrive by SMS."}) + "\n"
    )
    env = retriever.env
    args = ["retriever", "ingest", str(kb), "--collection", "cli", "--url", retriever.base_url]

    def ingest(*extra: str) -> dict[str, Any]:
        result = run_trivium(env, *args, *extra)
        assert result.returncode == 0, result.stderr
        summary: dict[str, Any] = json.loads(result.stdout)
        return summary

    first = ingest()
    assert (first["added"], first["unchanged"], first["deleted"]) == (3, 0, 0)
    assert ingest()["unchanged"] == 3

    (kb / "guide" / "gpu.md").write_text("# GPUs\nAdapters are loaded at run time.")
    (kb / "notes.txt").unlink()
    synced = ingest("--delete-missing")
    assert (synced["updated"], synced["unchanged"], synced["deleted"]) == (1, 1, 1)

    with httpx.Client(base_url=retriever.base_url) as http:
        hits = http.post("/v1/collections/cli/search", json={"query": "adapters run time"}).json()
        assert hits["hits"][0]["doc_id"] == "guide/gpu.md"
        assert hits["hits"][0]["title"] == "GPUs"
        assert "notes.txt" not in {h["doc_id"] for h in hits["hits"]}

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    failed = run_trivium(env, "retriever", "ingest", str(bad), "--url", retriever.base_url)
    assert failed.returncode != 0
    assert "bad.jsonl:1" in failed.stderr


@pytest.mark.parametrize("section", ["EMBEDDING", "RERANK"])
def test_a_model_that_cannot_load_stops_start_up(tmp_path: Path, section: str) -> None:
    missing = tmp_path / "no-such-model"
    env = trivium_env(tmp_path, None, **{f"TRIVIUM_RETRIEVER__{section}__MODEL_DIR": str(missing)})
    result = run_trivium(env, "retriever", "serve")
    assert result.returncode != 0
    assert "retriever cannot start" in result.stderr
    assert str(missing) in result.stderr


def test_bad_reads_and_deletes_are_refused(http: httpx.Client) -> None:
    if http.get("/v1/collections/errs").status_code == 404:
        _collection(http, "errs")
    for limit in ("0", "1001", "many"):
        response = http.get("/v1/collections/errs/documents", params={"limit": limit})
        assert response.status_code == 400, response.text
        assert "limit" in json.dumps(response.json())
    assert http.get("/v1/collections/nope/documents").json()["field"] == "collection"
    assert http.delete("/v1/collections/nope").status_code == 404
    assert http.delete("/v1/collections/nope/documents/a").status_code == 404
    assert http.get("/v1/collections/nope").status_code == 404


def test_a_dropped_collection_is_gone(http: httpx.Client) -> None:
    _collection(http, "short-lived")
    ingest = http.post("/v1/collections/short-lived/documents", json={"documents": [KB[0]]})
    assert ingest.status_code == 200, ingest.text
    assert http.delete("/v1/collections/short-lived").status_code == 204
    assert http.get("/v1/collections/short-lived").status_code == 404
    assert "short-lived" not in [c["name"] for c in http.get("/v1/collections").json()]
    _collection(http, "short-lived")  # the name is free again, and the new one is empty
    assert http.get("/v1/collections/short-lived").json()["points"] == 0
