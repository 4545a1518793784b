"""A small synchronous HTTP client of the retriever API (CLI, `trivium up`, scripts)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from trivium.common.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    TriviumError,
    UnavailableError,
)
from trivium.retriever.schemas import (
    CollectionStats,
    DeleteResult,
    DocumentIn,
    DocumentPage,
    DocumentSummary,
    IngestRequest,
    IngestResult,
    SearchRequest,
    SearchResponse,
)

__all__ = ("RetrieverClient",)

_ERRORS: dict[int, type[TriviumError]] = {
    400: InvalidInputError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    503: UnavailableError,
}


class RetrieverClient:
    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 120.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s)

    def __enter__(self) -> RetrieverClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def collection(self, name: str) -> CollectionStats | None:
        response = self._http.get(f"/v1/collections/{name}")
        if response.status_code == 404:
            return None
        return msgspec.convert(self._json(response), CollectionStats)

    def create_collection(self, name: str) -> CollectionStats:
        response = self._http.post("/v1/collections", json={"name": name})
        return msgspec.convert(self._json(response), CollectionStats)

    def ingest(self, collection: str, documents: Sequence[DocumentIn]) -> IngestResult:
        body = msgspec.json.encode(IngestRequest(list(documents)))
        response = self._http.post(
            f"/v1/collections/{collection}/documents",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        return msgspec.convert(self._json(response), IngestResult)

    def documents(self, collection: str, page_size: int = 1000) -> Iterator[DocumentSummary]:
        offset: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if offset is not None:
                params["offset"] = offset
            response = self._http.get(f"/v1/collections/{collection}/documents", params=params)
            page = msgspec.convert(self._json(response), DocumentPage)
            yield from page.documents
            if page.next_offset is None:
                return
            offset = page.next_offset

    def delete_document(self, collection: str, doc_id: str) -> DeleteResult:
        path = quote(doc_id, safe="/")
        response = self._http.delete(f"/v1/collections/{collection}/documents/{path}")
        return msgspec.convert(self._json(response), DeleteResult)

    def search(self, collection: str, request: SearchRequest) -> SearchResponse:
        response = self._http.post(
            f"/v1/collections/{collection}/search",
            content=msgspec.json.encode(request),
            headers={"Content-Type": "application/json"},
        )
        return msgspec.convert(self._json(response), SearchResponse)

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if response.is_success:
            return response.json()
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text[:500]}
        error = _ERRORS.get(response.status_code, TriviumError)
        raise error(str(problem.get("detail", problem)), field=problem.get("field"))
