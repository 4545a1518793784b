"""Drift monitoring: answers, cost and latency here; queries and retrieval in the retriever."""

from trivium.gateway.drift.monitor import AnswerDriftMonitor
from trivium.gateway.drift.service import DriftService

__all__ = ("AnswerDriftMonitor", "DriftService")
