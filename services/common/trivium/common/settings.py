"""Process settings: one YAML file plus `TRIVIUM_*` environment variables.

Precedence, highest first: explicit keyword arguments, environment variables
(`TRIVIUM_REDIS__URL`, `TRIVIUM_GATEWAY__PORT`, ...), the YAML file named by
`TRIVIUM_CONFIG` (or passed as `config_file`), then the defaults below.
Each service subclasses `TriviumSettings` and adds its own section.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from trivium.common.errors import InvalidInputError

__all__ = (
    "TOP_LEVEL_KEYS",
    "LogSettings",
    "RedisSettings",
    "RegistrySettings",
    "TriviumSettings",
    "load_settings",
)

CONFIG_ENV_VAR = "TRIVIUM_CONFIG"

TOP_LEVEL_KEYS: tuple[str, ...] = (
    # every process: TriviumSettings
    "data_dir",
    "log",
    "redis",
    "registry",
    # each service's own section: GatewaySettings, RetrieverSettings, ModelSettings
    "gateway",
    "retriever",
    "model",
    # `trivium up`'s supervisor: UpSettings (trivium.cli.config)
    "up",
)
"""The top-level keys of the config file. One file serves every process and each reads only
its own settings class, so a key is known when ANY Trivium process reads it; a settings class
that adds a top-level field adds it here too (a unit test holds them equal)."""


class Section(BaseModel):
    """A settings section: unknown keys are typos, and typos are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LogSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "console"] = "json"


class RedisSettings(Section):
    url: str | None = Field(
        default=None,
        description="redis:// or rediss:// URL. Unset: an embedded Redis under data_dir.",
    )
    socket_timeout_s: float = Field(default=2.0, gt=0)
    connect_timeout_s: float = Field(default=1.0, gt=0)


class RegistrySettings(Section):
    key_prefix: str = Field(default="trivium", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    max_metadata_bytes: int = Field(default=16 * 1024, gt=0)


class TriviumSettings(BaseSettings):
    """Settings every process shares."""

    model_config = SettingsConfigDict(
        env_prefix="TRIVIUM_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    config_file: Path | None = Field(default=None, exclude=True)
    data_dir: Path = Path("var")
    log: LogSettings = LogSettings()
    redis: RedisSettings = RedisSettings()
    registry: RegistrySettings = RegistrySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlFileSource(settings_cls, init_settings))


class YamlFileSource(PydanticBaseSettingsSource):
    """Reads the YAML config file named by `config_file` or `TRIVIUM_CONFIG`."""

    def __init__(
        self, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource
    ) -> None:
        super().__init__(settings_cls)
        explicit = init_settings().get("config_file")
        path = explicit or os.environ.get(CONFIG_ENV_VAR)
        self._data = _read_yaml(Path(path)) if path else {}
        for key in self._data:
            if key not in TOP_LEVEL_KEYS:
                raise InvalidInputError(
                    f"config file {path}: unknown top-level key {key!r}; "
                    f"known sections: {', '.join(TOP_LEVEL_KEYS)}",
                    field=str(key),
                )

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {
            key: value for key, value in self._data.items() if key in self.settings_cls.model_fields
        }


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read config file {path}: {exc}", field="config_file"
        ) from exc
    except yaml.YAMLError as exc:
        raise InvalidInputError(
            f"config file {path} is not valid YAML: {exc}", field="config_file"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInputError(f"config file {path} must hold a mapping", field="config_file")
    return data


SettingsT = TypeVar("SettingsT", bound=TriviumSettings)


def load_settings(
    settings_cls: type[SettingsT], config_file: Path | None = None, **overrides: Any
) -> SettingsT:
    """Load a service's settings once, at start-up; validation errors name the field.
    `overrides` (command-line arguments) win over the environment and the file."""
    return settings_cls(config_file=config_file, **overrides)
