"""The retriever's process settings (`retriever:` in the file, `TRIVIUM_RETRIEVER__*` in env)."""

from __future__ import annotations

from pydantic import Field

from trivium.common.settings import Section, TriviumSettings

__all__ = ("RetrieverSection", "RetrieverSettings")


class RetrieverSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8200, ge=0, le=65535)


class RetrieverSettings(TriviumSettings):
    retriever: RetrieverSection = RetrieverSection()
