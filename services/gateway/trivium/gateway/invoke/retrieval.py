"""The gateway's client of the retriever service: one pooled aiohttp session."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import msgspec

from trivium.gateway.config import RetrieverClientSection
from trivium.gateway.policy.model import Retrieval
from trivium.retriever.schemas import SearchHit, SearchResponse

__all__ = ("RetrievalError", "RetrieverClient", "SearchHit", "SearchResponse")

_DECODER = msgspec.json.Decoder(SearchResponse)


class RetrievalError(Exception):
    """The retriever could not answer; `reason` is a bounded label for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class RetrieverClient:
    def __init__(self, section: RetrieverClientSection) -> None:
        self.base_url = section.url.rstrip("/")
        self._section = section
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._section.max_connections),
                json_serialize=lambda value: msgspec.json.encode(value).decode(),
            )
        return self._session

    async def search(self, retrieval: Retrieval, query: str, *, deadline: float) -> SearchResponse:
        body: dict[str, Any] = {
            "query": query,
            "k": retrieval.k,
            "mode": retrieval.mode,
            "rerank": retrieval.rerank,
        }
        if retrieval.rerank:
            body["rerank_top"] = max(retrieval.rerank_top, retrieval.k)
        if retrieval.weights is not None:
            body["weights"] = {"dense": retrieval.weights.dense, "sparse": retrieval.weights.sparse}
        left = min(self._section.timeout_s, deadline - time.monotonic())
        if left <= 0:
            raise RetrievalError("timeout", "no time left for retrieval")
        url = f"{self.base_url}/v1/collections/{retrieval.collection}/search"
        try:
            async with self._client().post(
                url,
                data=msgspec.json.encode(body),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=left),
            ) as response:
                payload = await response.read()
                if response.status != 200:
                    raise RetrievalError(
                        "retriever_error" if response.status < 500 else "retriever_unavailable",
                        f"retriever answered {response.status}: {payload[:300]!r}",
                    )
        except TimeoutError as exc:
            raise RetrievalError("timeout", "retriever timed out") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise RetrievalError("retriever_unavailable", f"retriever unreachable: {exc}") from exc
        try:
            return _DECODER.decode(payload)
        except msgspec.ValidationError as exc:
            raise RetrievalError("retriever_error", f"unexpected retriever answer: {exc}") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            await asyncio.sleep(0)
