"""Query and retrieval drift per collection and search mode."""

from trivium.retriever.drift.monitor import QueryDriftMonitor

__all__ = ("QueryDriftMonitor",)
