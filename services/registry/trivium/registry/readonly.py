"""Reading another service's artifacts: a kind that resolves but refuses to publish."""

from __future__ import annotations

from typing import Any

from trivium.registry.errors import InvalidArtifactError

__all__ = ("ReadOnlyKind",)


class ReadOnlyKind:
    """E.g. the gateway resolving `triage-lora@production` to a version for its lineage,
    while publishing adapters stays the model service's job (it checks the weights)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def validate(self, body: str, metadata: dict[str, Any]) -> dict[str, Any]:
        raise InvalidArtifactError(
            f"{self.name} artifacts are read-only here; publish them through their service",
            field="body",
        )
