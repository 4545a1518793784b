"""The adapter artifact kind: body is the adapter's directory, metadata describes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trivium.registry.errors import InvalidArtifactError

__all__ = ("ADAPTER_KIND", "REQUIRED_METADATA", "AdapterKind")

REQUIRED_METADATA = ("base_model", "weights_sha256", "rank")


class AdapterKind:
    """Publish-time checks: a PEFT adapter directory that exists, with its identity in metadata."""

    name = "adapter"

    def validate(self, body: str, metadata: dict[str, Any]) -> dict[str, Any]:
        path = Path(body.strip())
        if not path.is_absolute():
            raise InvalidArtifactError(f"adapter path must be absolute: {body!r}", field="body")
        if not (path / "adapter_config.json").is_file():
            raise InvalidArtifactError(
                f"{path} is not a PEFT adapter directory (no adapter_config.json)", field="body"
            )
        missing = [key for key in REQUIRED_METADATA if key not in metadata]
        if missing:
            raise InvalidArtifactError(
                f"adapter metadata lacks {', '.join(missing)}", field=f"metadata.{missing[0]}"
            )
        return metadata


ADAPTER_KIND = AdapterKind()
