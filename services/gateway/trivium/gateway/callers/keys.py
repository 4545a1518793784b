"""Caller API keys: the record, the `trv_<key id>_<secret>` format, and the secret's hash.

Only `HMAC-SHA256(pepper, secret)` is stored; the pepper lives in the gateway's settings
(or a file beside the data), never in Redis, so a copy of Redis alone cannot check guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Annotated, Literal

import msgspec

__all__ = (
    "ADMIN_SCOPES",
    "ALL_FEATURES",
    "KEY_ID_PATTERN",
    "KEY_NAME_PATTERN",
    "MAX_AUTHORIZATION_CHARS",
    "SCOPES",
    "KeyRecord",
    "KeyView",
    "ParsedKey",
    "Scope",
    "format_key",
    "hash_secret",
    "new_key_id",
    "new_secret",
    "parse_key",
    "secrets_match",
)

Scope = Literal[
    "invoke",
    "read",
    "templates:write",
    "policy:reload",
    "keys:admin",
    "trials",
    "feedback",
    "review",
]
SCOPES: tuple[Scope, ...] = (
    "invoke",
    "read",
    "templates:write",
    "policy:reload",
    "keys:admin",
    "trials",
    "feedback",
    "review",
)
ADMIN_SCOPES: frozenset[Scope] = frozenset(
    {"read", "templates:write", "policy:reload", "keys:admin", "trials", "review"}
)
"""What a bootstrap admin token (`gateway.admin_tokens`) may do: every admin scope (not
`invoke`, nor `feedback`, a caller's own)."""
ALL_FEATURES = "*"

KEY_PREFIX = "trv"
KEY_ID_PATTERN = r"^[a-z0-9]{12}$"
KEY_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
MAX_AUTHORIZATION_CHARS = 512
"""Longer `Authorization` headers are refused (431) before anything is parsed."""
_KEY = re.compile(r"^trv_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


class ParsedKey(msgspec.Struct, frozen=True):
    key_id: str
    secret: str


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One key as stored (JSON in Redis): everything but the secret itself."""

    id: str
    name: str
    owner: str
    features: tuple[str, ...]
    scopes: tuple[Scope, ...]
    secret_hash: str
    created_at: float
    created_by: str
    rpm: int | None = None
    tpm: int | None = None
    budget_usd_day: float | None = None
    budget_usd_month: float | None = None
    expires_at: float | None = None
    revoked_at: float | None = None
    rotated_at: float | None = None

    def allows_feature(self, feature: str) -> bool:
        return ALL_FEATURES in self.features or feature in self.features

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    def limited(self) -> bool:
        """Whether admitting a request needs the shared counters at all."""
        return (
            self.rpm is not None
            or self.tpm is not None
            or self.budget_usd_day is not None
            or self.budget_usd_month is not None
        )

    def view(self) -> KeyView:
        return KeyView(
            id=self.id,
            name=self.name,
            owner=self.owner,
            features=list(self.features),
            scopes=list(self.scopes),
            rpm=self.rpm,
            tpm=self.tpm,
            budget_usd_day=self.budget_usd_day,
            budget_usd_month=self.budget_usd_month,
            expires_at=self.expires_at,
            created_at=self.created_at,
            created_by=self.created_by,
            revoked_at=self.revoked_at,
            rotated_at=self.rotated_at,
            status=self.status(),
        )

    def status(self) -> Literal["active", "revoked", "expired"]:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expired() else "active"


class KeyView(msgspec.Struct, frozen=True, kw_only=True):
    """A key as the admin API shows it: never the secret, nor its hash."""

    id: str
    name: str
    owner: str
    features: list[str]
    scopes: list[Scope]
    rpm: int | None
    tpm: int | None
    budget_usd_day: float | None
    budget_usd_month: float | None
    expires_at: float | None
    created_at: float
    created_by: str
    revoked_at: float | None
    rotated_at: float | None
    status: Annotated[str, msgspec.Meta(description="active, revoked or expired")]


def new_key_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def format_key(key_id: str, secret: str) -> str:
    return f"{KEY_PREFIX}_{key_id}_{secret}"


def parse_key(token: str) -> ParsedKey | None:
    """The id and secret of a well-formed key, or None (malformed)."""
    match = _KEY.match(token)
    if match is None:
        return None
    return ParsedKey(match.group(1), match.group(2))


def hash_secret(pepper: bytes, secret: str) -> str:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def secrets_match(pepper: bytes, secret: str, stored_hash: str) -> bool:
    """Constant-time: the compare takes as long whatever the first differing byte."""
    return hmac.compare_digest(hash_secret(pepper, secret), stored_hash)
