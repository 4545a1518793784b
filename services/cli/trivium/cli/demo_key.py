"""The demo caller key `trivium up` creates, so a loopback stack works with no set-up.

The full key is kept in `<data_dir>/auth/demo_key` (mode 0600) so the next `up` on the same
data reuses it; a key that no longer checks out (revoked, rotated, another pepper) is
replaced by a new one, and so is one made before the demo's scopes grew.
"""

from __future__ import annotations

import os
from pathlib import Path

from trivium.gateway.callers import KeySpec, KeyStore
from trivium.gateway.callers.keys import Scope, parse_key, secrets_match

__all__ = ("DEMO_KEY_NAME", "DEMO_SCOPES", "demo_key_file", "ensure_demo_key")

DEMO_KEY_NAME = "demo"
DEMO_SCOPES: tuple[Scope, ...] = ("invoke", "read", "trials", "feedback")
"""Enough to call every feature, run trials and send feedback; nothing that administers."""


def demo_key_file(data_dir: Path) -> Path:
    return data_dir / "auth" / "demo_key"


async def ensure_demo_key(store: KeyStore, data_dir: Path) -> str:
    path = demo_key_file(data_dir)
    if path.is_file():
        kept = path.read_text().strip()
        parsed = parse_key(kept)
        record = await store.fetch(parsed.key_id) if parsed is not None else None
        if (
            parsed is not None
            and record is not None
            and record.status() == "active"
            and set(DEMO_SCOPES) <= set(record.scopes)
            and secrets_match(store.pepper, parsed.secret, record.secret_hash)
        ):
            return kept
    for record in await store.all():
        if record.name == DEMO_KEY_NAME and record.status() == "active":
            await store.revoke(record.id, actor="trivium up")  # its secret is lost
    created = await store.create(
        KeySpec(
            name=DEMO_KEY_NAME,
            owner="trivium up",
            features=("*",),
            scopes=DEMO_SCOPES,
        ),
        actor="trivium up",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(created.key + "\n")
    return created.key
