"""Callers: API keys, scopes, rate limits and budgets (see docs/architecture.md)."""

from trivium.gateway.callers.auth import (
    ACTOR,
    ANONYMOUS,
    Authenticator,
    AuthMode,
    Caller,
    require_scope,
)
from trivium.gateway.callers.cache import KeyCache
from trivium.gateway.callers.exposure import InsecureExposureError, check_exposure, is_loopback
from trivium.gateway.callers.keys import ADMIN_SCOPES, SCOPES, KeyRecord, KeyView, Scope
from trivium.gateway.callers.limiter import Grant, Limiter
from trivium.gateway.callers.metrics import CALLER_METRICS
from trivium.gateway.callers.pepper import load_pepper
from trivium.gateway.callers.routes import KeyController
from trivium.gateway.callers.store import CreatedKey, KeySpec, KeyStore

__all__ = (
    "ACTOR",
    "ADMIN_SCOPES",
    "ANONYMOUS",
    "CALLER_METRICS",
    "SCOPES",
    "AuthMode",
    "Authenticator",
    "Caller",
    "CreatedKey",
    "Grant",
    "InsecureExposureError",
    "KeyCache",
    "KeyController",
    "KeyRecord",
    "KeySpec",
    "KeyStore",
    "KeyView",
    "Limiter",
    "Scope",
    "check_exposure",
    "is_loopback",
    "load_pepper",
    "require_scope",
)
