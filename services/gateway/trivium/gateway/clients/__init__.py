"""The gateway's outbound clients: the OpenAI-compatible upstreams and the retriever."""

from trivium.gateway.clients.retriever import RetrievalError, RetrieverClient
from trivium.gateway.clients.upstream import UpstreamError, UpstreamPool

__all__ = ("RetrievalError", "RetrieverClient", "UpstreamError", "UpstreamPool")
