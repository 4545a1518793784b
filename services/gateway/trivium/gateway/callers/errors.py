"""What a caller is told when it may not in: one class per reason, each a 4xx/5xx."""

from __future__ import annotations

from collections.abc import Mapping

from trivium.common.errors import (
    ConflictError,
    ForbiddenError,
    HeaderTooLargeError,
    NotFoundError,
    TooManyRequestsError,
    UnauthenticatedError,
    UnavailableError,
)

__all__ = (
    "BudgetExceededError",
    "ForbiddenFeatureError",
    "KeyNameTakenError",
    "KeysUnavailableError",
    "LimitsUnavailableError",
    "MissingScopeError",
    "OversizeAuthorizationError",
    "RateLimitedError",
    "UnknownKeyError",
    "invalid_key",
    "missing_key",
)

INVALID_KEY_MESSAGE = "the API key is not valid"
"""The same words for a malformed, unknown, wrong-secret, revoked or expired key, so a
caller probing keys learns nothing from the answer."""


def missing_key() -> UnauthenticatedError:
    return UnauthenticatedError(
        "send an API key as 'Authorization: Bearer trv_...'", field="authorization"
    )


def invalid_key() -> UnauthenticatedError:
    return UnauthenticatedError(INVALID_KEY_MESSAGE, field="authorization")


class OversizeAuthorizationError(HeaderTooLargeError):
    code = "authorization_too_large"


class ForbiddenFeatureError(ForbiddenError):
    code = "forbidden_feature"


class MissingScopeError(ForbiddenError):
    code = "missing_scope"


class RateLimitedError(TooManyRequestsError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, headers: Mapping[str, str]) -> None:
        super().__init__(
            message, retry_after_s=retry_after_s, field="authorization", headers=headers
        )


class BudgetExceededError(TooManyRequestsError):
    code = "budget_exceeded"

    def __init__(self, message: str, *, retry_after_s: int, headers: Mapping[str, str]) -> None:
        super().__init__(
            message, retry_after_s=retry_after_s, field="authorization", headers=headers
        )


class LimitsUnavailableError(UnavailableError):
    """The feature's limits fail closed and the shared counters cannot be reached."""

    code = "limits_unavailable"


class KeysUnavailableError(UnavailableError):
    """A key this replica has not seen yet cannot be checked while Redis is down."""

    code = "keys_unavailable"


class UnknownKeyError(NotFoundError):
    code = "unknown_key"


class KeyNameTakenError(ConflictError):
    code = "key_name_taken"
