"""What can go wrong in the registry, each mapped to an HTTP status by its base class."""

from __future__ import annotations

from trivium.common.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UnavailableError,
)

__all__ = (
    "ArtifactTooLargeError",
    "InvalidArtifactError",
    "LabelConflictError",
    "MalformedReferenceError",
    "NoEarlierVersionError",
    "RegistryUnavailableError",
    "UnknownArtifactError",
    "UnknownLabelError",
    "UnknownVersionError",
)


class MalformedReferenceError(InvalidInputError):
    code = "malformed_reference"


class InvalidArtifactError(InvalidInputError):
    """The body or metadata fails the kind's validation (e.g. a template that does not compile)."""

    code = "invalid_artifact"


class ArtifactTooLargeError(PayloadTooLargeError):
    code = "artifact_too_large"


class UnknownArtifactError(NotFoundError):
    code = "unknown_artifact"


class UnknownLabelError(NotFoundError):
    code = "unknown_label"


class UnknownVersionError(NotFoundError):
    code = "unknown_version"


class LabelConflictError(ConflictError):
    """A compare-and-set label move found the label somewhere other than expected."""

    code = "label_conflict"


class NoEarlierVersionError(ConflictError):
    code = "no_earlier_version"


class RegistryUnavailableError(UnavailableError):
    code = "registry_unavailable"
