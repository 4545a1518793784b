"""The gateway's process settings (`gateway:` in the config file, `TRIVIUM_GATEWAY__*` in env)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from trivium.common.settings import Section, TriviumSettings

__all__ = ("GatewaySection", "GatewaySettings")


class GatewaySection(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    graceful_shutdown_s: float = Field(default=10.0, ge=0)
    admin_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="actor name -> bearer token for registry writes; empty leaves them open",
    )
    policy_file: Path | None = Field(
        default=None,
        description="the routing policy YAML (hot-reloaded); unset or missing: no features",
    )
    policy_poll_s: float = Field(default=1.0, gt=0, description="how often to check the file")


class GatewaySettings(TriviumSettings):
    gateway: GatewaySection = GatewaySection()
