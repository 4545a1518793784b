"""Adapter registry reads: the versions the model service published, with their metadata."""

from trivium.gateway.adapters.routes import AdapterController

__all__ = ("AdapterController",)
