"""The model service's process settings (`model:` in the config file, `TRIVIUM_MODEL__*` in env)."""

from __future__ import annotations

from pydantic import Field

from trivium.common.settings import Section, TriviumSettings

__all__ = ("ModelSection", "ModelSettings")


class ModelSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8300, ge=0, le=65535)


class ModelSettings(TriviumSettings):
    model: ModelSection = ModelSection()
