"""The one client of the retriever API: search for the gateway, administration for the CLI.

One pooled aiohttp session, msgspec JSON both ways, an optional bearer token. `search` spends
a budget inside the caller's deadline (`budget_share` of the time left, at most
`search_timeout_s`), so that a fallback road keeps the rest, and passes a circuit breaker:
after a few timeouts, connection failures or 5xx in a row it fails at once (`circuit_open`)
until a half-open probe succeeds. It raises `RetrievalError` with a bounded reason; the admin
calls raise the `trivium.common.errors` class of the retriever's status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
from prometheus_client import Gauge

from trivium.common.contracts.drift import CollectionDrift
from trivium.common.contracts.retriever import (
    CacheLookup,
    CacheLookupResult,
    CacheStore,
    CacheStoreResult,
    CollectionCreate,
    CollectionStats,
    DeleteResult,
    DocumentIn,
    DocumentPage,
    DocumentSummary,
    FusionWeights,
    IngestRequest,
    IngestResult,
    Quantization,
    SearchHit,
    SearchRequest,
    SearchResponse,
)
from trivium.common.errors import (
    BadGatewayError,
    ConflictError,
    GatewayTimeoutError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    TriviumError,
    UnavailableError,
)
from trivium.gateway.clients.breaker import (
    CIRCUIT_STATE_VALUE,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
)
from trivium.gateway.config import RetrieverClientSection
from trivium.gateway.policy.model import Retrieval

__all__ = (
    "CIRCUIT_STATE",
    "RETRIEVAL_FAILURE_REASONS",
    "RetrievalError",
    "RetrieverClient",
    "SearchHit",
    "SearchResponse",
    "search_request",
)

T = TypeVar("T")

_ENCODER = msgspec.json.Encoder()
_SEARCH_DECODER = msgspec.json.Decoder(SearchResponse)
log = logging.getLogger(__name__)
_JSON = {"Content-Type": "application/json"}
_NO_CEIL = 1e9
"""aiohttp rounds timeouts over this up to whole seconds; a search's budget should not move."""
_ADMIN_ERRORS: dict[int, type[TriviumError]] = {
    400: InvalidInputError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    503: UnavailableError,
}

RETRIEVAL_FAILURE_REASONS = ("timeout", "retriever_unavailable", "retriever_error", "circuit_open")
_SICK = frozenset({"timeout", "retriever_unavailable"})

CIRCUIT_STATE = Gauge(
    "trivium_retriever_client_circuit_state",
    "The gateway's circuit to the retriever: 0 closed, 1 half-open, 2 open.",
    multiprocess_mode="livemax",
)


def _report_circuit(state: CircuitState) -> None:
    CIRCUIT_STATE.set(CIRCUIT_STATE_VALUE[state])


class RetrievalError(Exception):
    """The retriever could not answer; `reason`, one of `RETRIEVAL_FAILURE_REASONS`, is a
    bounded label for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def search_request(retrieval: Retrieval, query: str) -> SearchRequest:
    """What a policy's `retrieval` block asks of the retriever for one query."""
    weights = retrieval.weights
    return SearchRequest(
        query=query,
        k=retrieval.k,
        mode=retrieval.mode,
        rerank=retrieval.rerank,
        rerank_top=max(retrieval.rerank_top, retrieval.k) if retrieval.rerank else None,
        weights=None if weights is None else FusionWeights(weights.dense, weights.sparse),
    )


class RetrieverClient:
    """The aiohttp session opens on first use, in the caller's event loop; `aclose` ends it."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        search_timeout_s: float = 10.0,
        budget_share: float = 1.0,
        admin_timeout_s: float = 120.0,
        max_connections: int = 100,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        """`breaker`: the searches' circuit; by default one that opens after 3 failures in a
        row for 5 s."""
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._search_timeout_s = search_timeout_s
        self._budget_share = budget_share
        self.breaker = breaker or CircuitBreaker(3, 5.0, name="retriever")
        self._admin_timeout = aiohttp.ClientTimeout(total=admin_timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_section(cls, section: RetrieverClientSection) -> RetrieverClient:
        """The gateway's client, as its settings describe it; its circuit is reported in
        `trivium_retriever_client_circuit_state`."""
        _report_circuit("closed")
        return cls(
            section.url,
            search_timeout_s=section.timeout_s,
            budget_share=section.budget_share,
            max_connections=section.max_connections,
            breaker=CircuitBreaker(
                section.breaker_failures,
                section.breaker_open_s,
                probe_timeout_s=section.breaker_probe_timeout_s,
                name="retriever",
                on_change=_report_circuit,
            ),
        )

    async def __aenter__(self) -> RetrieverClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            await asyncio.sleep(0)

    # -- search (the gateway's hot path) --------------------------------------------------

    async def search(self, retrieval: Retrieval, query: str, *, deadline: float) -> SearchResponse:
        """Search the policy's collection as its `retrieval` block says, before `deadline`."""
        request = search_request(retrieval, query)
        return await self.search_collection(retrieval.collection, request, deadline=deadline)

    async def search_collection(
        self, collection: str, request: SearchRequest, *, deadline: float
    ) -> SearchResponse:
        """`deadline` is a `time.monotonic()` instant; the call spends at most `budget_share`
        of the time left before it, and never more than `search_timeout_s`."""
        budget = min(self._search_timeout_s, self._budget_share * (deadline - time.monotonic()))
        if budget <= 0:
            raise RetrievalError("timeout", "no time left for retrieval")
        try:
            ticket = self.breaker.admit()
        except CircuitOpenError as refusal:
            raise RetrievalError(
                "circuit_open",
                f"retriever {refusal.message}; retry in {refusal.retry_after_s:.1f} s",
            ) from None
        try:
            found = await self._search(collection, request, budget)
        except RetrievalError as error:
            if error.reason in _SICK:
                self.breaker.failed(ticket)
            else:
                self.breaker.succeeded(ticket)  # it answered: alive
            raise
        except BaseException:
            self.breaker.release(ticket)
            raise
        self.breaker.succeeded(ticket)
        return found

    async def _search(
        self, collection: str, request: SearchRequest, budget_s: float
    ) -> SearchResponse:
        try:
            async with self._client().post(
                self._url(collection, "search"),
                data=_ENCODER.encode(request),
                headers=_JSON,
                timeout=aiohttp.ClientTimeout(total=budget_s, ceil_threshold=_NO_CEIL),
            ) as response:
                status, payload = response.status, await response.read()
        except TimeoutError as exc:
            raise RetrievalError("timeout", f"retriever timed out after {budget_s:.2f} s") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise RetrievalError("retriever_unavailable", f"retriever unreachable: {exc}") from exc
        if status != 200:
            raise RetrievalError(
                "retriever_error" if status < 500 else "retriever_unavailable",
                f"retriever answered {status}: {payload[:300]!r}",
            )
        try:
            return _SEARCH_DECODER.decode(payload)
        except msgspec.DecodeError as exc:
            raise RetrievalError("retriever_error", f"unexpected retriever answer: {exc}") from exc

    # -- the semantic cache (best effort: any failure is None) ----------------------------

    async def cache_lookup(
        self, namespace: str, request: CacheLookup, *, timeout_s: float
    ) -> CacheLookupResult | None:
        """None on any failure or while the search circuit is open (a miss, never an error)."""
        if self.breaker.state == "open":
            return None
        payload = await self._cache_call(namespace, "lookup", _ENCODER.encode(request), timeout_s)
        if payload is None:
            return None
        try:
            return msgspec.json.decode(payload, type=CacheLookupResult)
        except msgspec.DecodeError:
            return None

    async def cache_store(self, namespace: str, request: CacheStore, *, timeout_s: float) -> bool:
        """Whether the retriever stored it."""
        payload = await self._cache_call(namespace, "store", _ENCODER.encode(request), timeout_s)
        if payload is None:
            return False
        try:
            return msgspec.json.decode(payload, type=CacheStoreResult).stored
        except msgspec.DecodeError:
            return False

    async def _cache_call(
        self, namespace: str, op: str, body: bytes, timeout_s: float
    ) -> bytes | None:
        url = "/".join((self.base_url, "v1/cache", quote(namespace, safe=""), op))
        try:
            async with self._client().post(
                url,
                data=body,
                headers=_JSON,
                timeout=aiohttp.ClientTimeout(total=timeout_s, ceil_threshold=_NO_CEIL),
            ) as response:
                status, payload = response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.debug("semantic cache call failed", extra={"op": op, "error": str(exc)})
            return None
        if status != 200:
            log.debug("semantic cache call refused", extra={"op": op, "status": status})
            return None
        return payload

    # -- administration (the CLI) ---------------------------------------------------------

    async def collection(self, name: str) -> CollectionStats | None:
        """The collection's stats; None when there is no such collection."""
        status, payload = await self._admin("GET", self._url(name))
        if status == 404:
            return None
        return _answer(status, payload, CollectionStats)

    async def create_collection(
        self, name: str, quantization: Quantization | None = None
    ) -> CollectionStats:
        body = _ENCODER.encode(CollectionCreate(name, quantization))
        status, payload = await self._admin("POST", f"{self.base_url}/v1/collections", body)
        return _answer(status, payload, CollectionStats)

    async def drop_collection(self, name: str) -> None:
        status, payload = await self._admin("DELETE", self._url(name))
        _raise_for(status, payload)

    async def ingest(self, collection: str, documents: Sequence[DocumentIn]) -> IngestResult:
        body = _ENCODER.encode(IngestRequest(list(documents)))
        status, payload = await self._admin("POST", self._url(collection, "documents"), body)
        return _answer(status, payload, IngestResult)

    async def documents(
        self, collection: str, page_size: int = 1000
    ) -> AsyncIterator[DocumentSummary]:
        """Every document of the collection, fetched a page at a time."""
        params: dict[str, str | int] = {"limit": page_size}
        while True:
            url = self._url(collection, "documents")
            status, payload = await self._admin("GET", url, params=params)
            page = _answer(status, payload, DocumentPage)
            for document in page.documents:
                yield document
            if page.next_offset is None:
                return
            params = {"limit": page_size, "offset": page.next_offset}

    async def delete_document(self, collection: str, doc_id: str) -> DeleteResult:
        url = self._url(collection, "documents", quote(doc_id, safe="/"))
        status, payload = await self._admin("DELETE", url)
        return _answer(status, payload, DeleteResult)

    async def drift(self, collection: str, mode: str) -> CollectionDrift:
        """The collection's query and retrieval drift for searches in `mode`."""
        url = self._url(collection, "drift")
        status, payload = await self._admin("GET", url, params={"mode": mode})
        return _answer(status, payload, CollectionDrift)

    async def reset_drift(self, collection: str) -> list[str]:
        """Every mode of the collection collects a new baseline; the tracks reset."""
        url = self._url(collection, "drift", "baseline")
        status, payload = await self._admin("POST", url)
        return _answer(status, payload, list[str])

    # -- plumbing ---------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, timeout_ceil_threshold=_NO_CEIL
                ),
                headers=self._headers,
            )
        return self._session

    def _url(self, collection: str, *rest: str) -> str:
        return "/".join((self.base_url, "v1/collections", quote(collection, safe=""), *rest))

    async def _admin(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> tuple[int, bytes]:
        try:
            async with self._client().request(
                method,
                url,
                data=body,
                params=params,
                headers=_JSON if body is not None else None,
                timeout=self._admin_timeout,
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise GatewayTimeoutError(f"retriever at {self.base_url} timed out") from exc
        except aiohttp.ClientError as exc:
            raise UnavailableError(f"retriever at {self.base_url} unreachable: {exc}") from exc


def _answer(status: int, payload: bytes, kind: type[T]) -> T:
    """The decoded body of a 2xx answer, or the error the retriever's problem names."""
    _raise_for(status, payload)
    try:
        return msgspec.json.decode(payload, type=kind)
    except msgspec.DecodeError as exc:
        raise BadGatewayError(f"unexpected retriever answer: {exc}") from exc


def _raise_for(status: int, payload: bytes) -> None:
    """Nothing for a 2xx answer; else the `trivium.common.errors` class of its status."""
    if 200 <= status < 300:
        return
    problem: Any
    try:
        problem = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"detail": payload[:500].decode(errors="replace")}
    field = problem.get("field")
    error = _ADMIN_ERRORS.get(status, TriviumError)
    raise error(
        str(problem.get("detail", problem)), field=field if isinstance(field, str) else None
    )
