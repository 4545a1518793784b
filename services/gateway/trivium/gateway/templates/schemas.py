"""Wire structs of the template admin API."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from trivium.registry.references import MAX_VERSION

__all__ = (
    "DiffResponse",
    "PromoteRequest",
    "PublishRequest",
    "PublishResponse",
    "RenderRequest",
    "RenderResponse",
    "RollbackRequest",
    "TemplateDetail",
    "VersionSummary",
)

Version = Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]
ExpectedVersion = Annotated[int, msgspec.Meta(ge=0, le=MAX_VERSION)]


class PublishRequest(msgspec.Struct, forbid_unknown_fields=True):
    body: str
    metadata: dict[str, Any] = {}


class PromoteRequest(msgspec.Struct, forbid_unknown_fields=True):
    version: Version
    expected_current: ExpectedVersion | None = None
    """Compare-and-set: the version the label must point at now (0: the label must not exist)."""


class RollbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    expected_current: Version | None = None


class RenderRequest(msgspec.Struct, forbid_unknown_fields=True):
    variables: dict[str, Any]
    selector: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "production"
    """A label or a version number."""


class PublishResponse(msgspec.Struct):
    name: str
    version: int
    sha256: str
    created: bool


class VersionSummary(msgspec.Struct):
    version: int
    sha256: str
    created_at: float
    created_by: str


class TemplateDetail(msgspec.Struct):
    name: str
    labels: dict[str, int]
    versions: list[VersionSummary]


class DiffResponse(msgspec.Struct):
    name: str
    old: str
    new: str
    diff: str


class RenderResponse(msgspec.Struct):
    template: str
    text: str
