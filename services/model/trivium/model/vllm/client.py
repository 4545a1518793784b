"""HTTP client of vLLM's OpenAI server: health, model list, runtime LoRA loading, proxying.

One pooled `httpx.AsyncClient` per vLLM server. Transport failures become our errors:
connection refused/reset/dropped -> `VllmUnavailableError` (503, Retry-After); no answer
within the read timeout -> `UpstreamTimeoutError` (504).

vLLM's error bodies come in two shapes depending on its version: the flat
`{"object": "error", "message", "type", "param", "code"}` (up to 0.9) and the nested
`{"error": {"message", "type", "param", "code"}}` (later); both are understood.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from trivium.common.errors import InvalidInputError
from trivium.model.vllm.errors import UpstreamTimeoutError, VllmResponseError, VllmUnavailableError

__all__ = ("UpstreamResponse", "VllmClient", "VllmModels", "rewrite_model")

log = logging.getLogger(__name__)

# Hop-by-hop headers (RFC 9110 7.6.1) and those httpx/the ASGI server set for the new message.
_DROP_REQUEST = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",
    }
)
_DROP_RESPONSE = _DROP_REQUEST | {"content-encoding", "date", "server"}
_ALREADY_LOADED = "has already been loaded"


WAITING_METRIC = "vllm:num_requests_waiting"


class VllmModels(NamedTuple):
    """What `/v1/models` lists: base model ids, and loaded LoRA names with their paths (`root`)."""

    base_ids: frozenset[str]
    loras: dict[str, str]


class _ModelCard(msgspec.Struct):
    id: str
    parent: str | None = None
    root: str | None = None


class _ModelList(msgspec.Struct):
    data: list[_ModelCard]


def rewrite_model(body: bytes, model: str) -> bytes:
    """The JSON request body with its `model` member set to `model` (other members unchanged)."""
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidInputError(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidInputError("the request body must be a JSON object")
    payload["model"] = model
    return msgspec.json.encode(payload)


def _error_message(response: httpx.Response) -> str:
    """The message of a vLLM (or FastAPI) error body, else the body text."""
    text = response.text
    try:
        payload = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return text.strip() or response.reason_phrase
    if isinstance(payload, dict):
        inner = payload.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        for key in ("message", "detail"):
            if isinstance(payload.get(key), str):
                return str(payload[key])
    return text.strip()


def _is_route_missing(response: httpx.Response) -> bool:
    """FastAPI's answer for an unregistered route (runtime LoRA updating disabled)."""
    return response.status_code in (404, 405) and _error_message(response) in (
        "Not Found",
        "Method Not Allowed",
    )


@contextlib.contextmanager
def _mapped_errors(base_url: str, what: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            raise VllmUnavailableError(
                f"vLLM at {base_url} is not accepting connections ({what}): {type(exc).__name__}",
                retry_after_s=2,
            ) from exc
        raise UpstreamTimeoutError(
            f"vLLM at {base_url} did not answer in time ({what}): {type(exc).__name__}"
        ) from exc
    except httpx.TransportError as exc:
        raise VllmUnavailableError(
            f"vLLM at {base_url} is unavailable ({what}): {type(exc).__name__}: {exc}",
            retry_after_s=2,
        ) from exc


class UpstreamResponse:
    """A proxied vLLM response: status and headers now, the body as it arrives.

    Iterate `body()` once (it closes the response at the end, or on error/abandon); call
    `aclose()` if the body is never iterated. Errors while streaming are mapped like the request.
    """

    def __init__(self, response: httpx.Response, base_url: str) -> None:
        self._response = response
        self._base_url = base_url
        self.status_code = response.status_code
        self.headers = {
            key: value for key, value in response.headers.items() if key not in _DROP_RESPONSE
        }

    @property
    def media_type(self) -> str | None:
        return self.headers.get("content-type")

    @property
    def is_event_stream(self) -> bool:
        return (self.media_type or "").startswith("text/event-stream")

    async def body(self) -> AsyncIterator[bytes]:
        """The body's bytes, unchanged and as received (SSE events are relayed as they come)."""
        try:
            with _mapped_errors(self._base_url, "reading the response"):
                async for chunk in self._response.aiter_raw():
                    if chunk:
                        yield chunk
        finally:
            await self._response.aclose()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.body()])

    async def aclose(self) -> None:
        await self._response.aclose()


class VllmClient:
    """A pooled HTTP client of one vLLM OpenAI server at `base_url` (e.g. http://127.0.0.1:8400)."""

    def __init__(
        self,
        base_url: str,
        *,
        request_timeout_s: float = 300.0,
        connect_timeout_s: float = 5.0,
        max_connections: int = 256,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.request_timeout_s = request_timeout_s
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(
                connect=connect_timeout_s,
                read=request_timeout_s,
                write=request_timeout_s,
                pool=connect_timeout_s,
            ),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"accept-encoding": "identity"},
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- management -----------------------------------------------------------------------

    async def health(self, timeout_s: float = 5.0) -> bool:
        """True when vLLM answers `GET /health` with 200; False when down, starting or sick."""
        try:
            response = await self._client.get("/health", timeout=timeout_s)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def list_models(self) -> VllmModels:
        """Base model ids and loaded LoRA adapters (cards with a `parent`) with their paths."""
        with _mapped_errors(self.base_url, "GET /v1/models"):
            response = await self._client.get("/v1/models")
        if response.status_code != 200:
            raise VllmResponseError(
                f"vLLM GET /v1/models answered {response.status_code}: {_error_message(response)}",
                upstream_status=response.status_code,
            )
        try:
            cards = msgspec.json.decode(response.content, type=_ModelList).data
        except msgspec.DecodeError as exc:
            raise VllmResponseError(
                f"vLLM GET /v1/models answered an unexpected body: {exc}", upstream_status=200
            ) from exc
        base_ids = frozenset(card.id for card in cards if card.parent is None)
        loras = {card.id: card.root or "" for card in cards if card.parent is not None}
        return VllmModels(base_ids, loras)

    async def waiting_requests(self) -> int:
        """`vllm:num_requests_waiting` from vLLM's /metrics, summed over its engines."""
        with _mapped_errors(self.base_url, "GET /metrics"):
            response = await self._client.get("/metrics")
        if response.status_code != 200:
            raise VllmResponseError(
                f"vLLM GET /metrics answered {response.status_code}",
                upstream_status=response.status_code,
            )
        waiting = 0.0
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == WAITING_METRIC:
                    waiting += sample.value
        return int(waiting)

    async def load_adapter(self, lora_name: str, path: str | Path) -> bool:
        """Load a LoRA adapter under `lora_name`; True if loaded now, False if it already was."""
        body = {"lora_name": lora_name, "lora_path": str(path)}
        response = await self._post_json("/v1/load_lora_adapter", body)
        if response.status_code == 200:
            log.info("vLLM loaded adapter", extra={"adapter": lora_name, "path": str(path)})
            return True
        message = _error_message(response)
        if response.status_code == 400 and _ALREADY_LOADED in message:
            return False
        raise self._adapter_error("load", lora_name, response, message)

    async def unload_adapter(self, lora_name: str) -> bool:
        """Unload a LoRA adapter; True if it was loaded, False if vLLM did not know it."""
        response = await self._post_json("/v1/unload_lora_adapter", {"lora_name": lora_name})
        if response.status_code == 200:
            log.info("vLLM unloaded adapter", extra={"adapter": lora_name})
            return True
        if response.status_code == 404 and not _is_route_missing(response):
            return False
        raise self._adapter_error("unload", lora_name, response, _error_message(response))

    async def _post_json(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        with _mapped_errors(self.base_url, f"POST {path}"):
            return await self._client.post(
                path,
                content=msgspec.json.encode(body),
                headers={"content-type": "application/json"},
            )

    def _adapter_error(
        self, verb: str, lora_name: str, response: httpx.Response, message: str
    ) -> VllmResponseError:
        if _is_route_missing(response):
            message = (
                "runtime LoRA updating is disabled in vLLM; start it with "
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
            )
        return VllmResponseError(
            f"vLLM could not {verb} adapter {lora_name!r} ({response.status_code}): {message}",
            upstream_status=response.status_code,
            extra={"adapter": lora_name},
        )

    # -- proxying ---------------------------------------------------------------------------

    async def forward(
        self,
        path: str,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        method: str = "POST",
    ) -> UpstreamResponse:
        """Send one request to vLLM and return as soon as the response headers arrive.

        `headers` are the caller's request headers; hop-by-hop ones, Host and Content-Length
        are dropped. vLLM's status (errors included) is returned as is, for the caller to relay.
        """
        outgoing = {
            key: value for key, value in (headers or {}).items() if key.lower() not in _DROP_REQUEST
        }
        request = self._client.build_request(method, path, content=body, headers=outgoing)
        with _mapped_errors(self.base_url, f"{method} {path}"):
            response = await self._client.send(request, stream=True)
        return UpstreamResponse(response, self.base_url)
