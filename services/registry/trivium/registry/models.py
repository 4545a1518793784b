"""What the registry stores and returns."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import msgspec

__all__ = (
    "ArtifactKind",
    "ArtifactSummary",
    "ArtifactVersion",
    "AuditEntry",
    "LabelMove",
    "PublishResult",
)


class ArtifactKind(Protocol):
    """What makes templates, adapters, ... different: the name and the publish-time checks."""

    @property
    def name(self) -> str: ...

    def validate(self, body: str, metadata: dict[str, Any]) -> dict[str, Any]:
        """Return the normalised metadata, or raise InvalidArtifactError naming the field."""
        ...


class ArtifactVersion(msgspec.Struct, frozen=True):
    """One immutable version. `sha256` covers the body and the metadata."""

    kind: str
    name: str
    version: int
    sha256: str
    body: str
    metadata: dict[str, Any]
    created_at: float
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class StoredVersion(msgspec.Struct, frozen=True):
    """The Redis encoding of a version; name and number live in the key and field."""

    sha256: str
    body: str
    metadata: dict[str, Any]
    created_at: float
    created_by: str


class AuditEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    ts: float
    actor: str
    action: Literal["publish", "promote", "rollback"]
    label: str | None = None
    version: int | None = None
    from_version: int | None = msgspec.field(default=None, name="from")
    to_version: int | None = msgspec.field(default=None, name="to")


class PublishResult(msgspec.Struct, frozen=True):
    artifact: ArtifactVersion
    created: bool


class LabelMove(msgspec.Struct, frozen=True):
    name: str
    label: str
    from_version: int | None
    to_version: int
    changed: bool


class ArtifactSummary(msgspec.Struct, frozen=True):
    name: str
    latest_version: int
    labels: dict[str, int]
