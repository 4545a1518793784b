"""The semantic cache's gateway side: what must match exactly, what is compared by meaning,
and when a lookup is worth its cost. The retriever embeds and stores (`/v1/cache/...`);
the gateway never loads a model.

Scope (hashed exactly, sha256): feature, variant, route, template and adapter versions,
policy hash, `max_tokens`, `temperature`, and every message but the last user turn (or, for
`input` requests, every variable but the compared one). On RAG roads the retriever also
filters on the collection's current index version, so a re-ingest invalidates. Only the last
user turn (or the compared variable) is compared by meaning.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time
from collections import defaultdict, deque
from dataclasses import dataclass

import msgspec

from trivium.common.contracts.retriever import CacheLookup, CacheStore, IndexRef
from trivium.gateway.clients.retriever import RetrieverClient
from trivium.gateway.invoke.call import Call
from trivium.gateway.invoke.schemas import InvokeResponse, SemanticCacheHit, Timings, Usage
from trivium.gateway.policy.model import SemanticCache as SemanticPolicy
from trivium.gateway.telemetry.metrics import KpiRecorder

__all__ = ("LatencyGate", "SemanticCache", "SemanticQuery", "semantic_query")

_ENCODER = msgspec.json.Encoder(order="sorted")
_DECODER = msgspec.json.Decoder(InvokeResponse)
MAX_STORES_IN_FLIGHT = 32


@dataclass(frozen=True, slots=True)
class SemanticQuery:
    policy: SemanticPolicy
    scope: str
    text: str
    collection: str | None


def semantic_query(
    call: Call, template: str, adapter: str, policy: SemanticPolicy
) -> SemanticQuery | None:
    """None when the request has nothing to compare by meaning: a chat whose last turn is not
    the user's, or input without the named (or a single) string variable."""
    request, arm = call.request, call.arm
    rest: object
    if request.messages is not None:
        last = request.messages[-1]
        if last.role != "user" or not last.content.strip():
            return None
        text = last.content
        rest = [(m.role, m.content) for m in request.messages[:-1]]
    else:
        variables = request.input or {}
        name = policy.text
        if name is None:
            strings = [key for key, value in variables.items() if isinstance(value, str)]
            if len(strings) != 1:
                return None
            name = strings[0]
        value = variables.get(name)
        if not isinstance(value, str) or not value.strip():
            return None
        text = value
        rest = {key: item for key, item in variables.items() if key != name}
    exact = (
        call.feature_name,
        call.variant or "-",
        arm.route,
        template,
        adapter,
        call.loaded.hash,
        request.max_tokens,
        request.temperature,
        rest,
    )
    scope = hashlib.sha256(_ENCODER.encode(exact)).hexdigest()
    collection = arm.retrieval.collection if arm.retrieval is not None else None
    return SemanticQuery(policy, scope, text, collection)


class LatencyGate:
    """Skips lookups for a feature whose median upstream time is below the lookup's median:
    there a hit would save less than every miss costs. Until both have `min_samples`, it
    looks; while skipping, every `probe_every`-th request still looks, to keep measuring."""

    def __init__(self, window: int = 64, min_samples: int = 8, probe_every: int = 20) -> None:
        self._window = window
        self._min_samples = min_samples
        self._probe_every = probe_every
        self._upstream: defaultdict[str, deque[float]] = defaultdict(self._samples)
        self._lookup: defaultdict[str, deque[float]] = defaultdict(self._samples)
        self._skipped: defaultdict[str, int] = defaultdict(int)

    def _samples(self) -> deque[float]:
        return deque(maxlen=self._window)

    def upstream(self, feature: str, ms: float) -> None:
        self._upstream[feature].append(ms)

    def lookup(self, feature: str, ms: float) -> None:
        self._lookup[feature].append(ms)

    def worth_looking(self, feature: str) -> bool:
        upstream, lookup = self._upstream[feature], self._lookup[feature]
        if len(upstream) < self._min_samples or len(lookup) < self._min_samples:
            return True
        if statistics.median(upstream) > statistics.median(lookup):
            return True
        self._skipped[feature] += 1
        return self._skipped[feature] % self._probe_every == 0


class SemanticCache:
    """Best effort, like the exact cache: a failed lookup is a miss, a failed store is lost."""

    def __init__(
        self,
        retriever: RetrieverClient,
        kpis: KpiRecorder,
        *,
        lookup_timeout_s: float = 0.25,
        store_timeout_s: float = 5.0,
        gate: LatencyGate | None = None,
    ) -> None:
        self._retriever = retriever
        self._kpis = kpis
        self._lookup_timeout_s = lookup_timeout_s
        self._store_timeout_s = store_timeout_s
        self.gate = gate or LatencyGate()
        self._stores: set[asyncio.Task[None]] = set()

    async def lookup(self, call: Call, query: SemanticQuery) -> InvokeResponse | None:
        feature = call.feature_name
        if not self.gate.worth_looking(feature):
            self._kpis.cache(feature, "semantic_skip")
            return None
        began = time.perf_counter()
        request = CacheLookup(
            query.scope, query.text, query.policy.threshold, collection=query.collection
        )
        found = await self._retriever.cache_lookup(
            feature, request, timeout_s=self._lookup_timeout_s
        )
        seconds = time.perf_counter() - began
        self.gate.lookup(feature, seconds * 1000)
        self._kpis.stage(feature, "semantic_cache", seconds)
        if found is None:
            self._kpis.cache(feature, "semantic_error")
            return None
        if found.hit is None:
            self._kpis.cache(feature, "semantic_miss")
            return None
        try:
            original = _DECODER.decode(found.hit.answer)
        except msgspec.DecodeError:
            self._kpis.cache(feature, "semantic_error")
            return None
        self._kpis.cache(feature, "semantic_hit")
        return msgspec.structs.replace(
            original,
            id=call.answer_id,
            cached="semantic",
            cost_usd=0.0,
            usage=Usage(0, 0, 0),
            timings_ms=Timings(total=(time.perf_counter() - call.started) * 1000),
            semantic_cache=SemanticCacheHit(
                similarity=round(found.hit.similarity, 6),
                threshold=query.policy.threshold,
                original_id=found.hit.origin_id,
            ),
        )

    def store(self, call: Call, query: SemanticQuery, response: InvokeResponse, ttl_s: int) -> None:
        """In the background, after the answer left: first-choice answers only."""
        timings = response.timings_ms
        self.gate.upstream(call.feature_name, timings.retrieve + timings.rerank + timings.generate)
        if response.verdict == "withheld" or response.fallback is not None:
            return
        if len(self._stores) >= MAX_STORES_IN_FLIGHT:
            return
        version = response.lineage.retriever_index if query.collection is not None else None
        if query.collection is not None and version is None:
            return
        request = CacheStore(
            scope=query.scope,
            text=query.text,
            answer=msgspec.json.encode(response).decode(),
            origin_id=response.id,
            ttl_s=query.policy.ttl_s or ttl_s,
            max_entries=query.policy.max_entries,
            built_on=None
            if query.collection is None or version is None
            else IndexRef(query.collection, version),
        )
        task = asyncio.create_task(self._store(call.feature_name, request))
        self._stores.add(task)
        task.add_done_callback(self._stores.discard)

    async def _store(self, feature: str, request: CacheStore) -> None:
        stored = await self._retriever.cache_store(
            feature, request, timeout_s=self._store_timeout_s
        )
        self._kpis.cache(feature, "semantic_store" if stored else "semantic_error")

    async def drain(self) -> None:
        """Wait for the stores in flight (shutdown, tests)."""
        while self._stores:
            await asyncio.gather(*list(self._stores), return_exceptions=True)
