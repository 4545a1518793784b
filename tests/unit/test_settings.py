"""Process settings: defaults, then the YAML file, then TRIVIUM_* variables, then arguments."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from trivium.cli.config import UpSettings
from trivium.common.errors import InvalidInputError
from trivium.common.settings import TOP_LEVEL_KEYS, TriviumSettings, load_settings
from trivium.gateway.config import GatewaySettings
from trivium.model.config import ModelSettings
from trivium.retriever.config import RetrieverSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TRIVIUM_CONFIG",
        "TRIVIUM_REDIS__URL",
        "TRIVIUM_GATEWAY__PORT",
        "TRIVIUM_DATA_DIR",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_need_no_file_and_no_server() -> None:
    settings = GatewaySettings()
    assert settings.redis.url is None  # the embedded Redis
    assert settings.gateway.port == 8000
    assert RetrieverSettings().retriever.port == 8200
    assert ModelSettings().model.port == 8300


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "trivium.yaml"
    config.write_text(
        "data_dir: /srv/trivium\ngateway: {port: 9000, host: 0.0.0.0}\nmodel: {port: 1}\n"
    )
    monkeypatch.setenv("TRIVIUM_GATEWAY__PORT", "9100")
    monkeypatch.setenv("TRIVIUM_REDIS__URL", "redis://cache:6380/1")
    settings = load_settings(GatewaySettings, config)
    assert settings.gateway.port == 9100
    assert settings.gateway.host == "0.0.0.0"
    assert settings.redis.url == "redis://cache:6380/1"
    assert settings.data_dir == Path("/srv/trivium")
    assert load_settings(ModelSettings, config).model.port == 1


def test_config_file_from_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "trivium.yaml"
    config.write_text("registry: {max_body_bytes: 123}\n")
    monkeypatch.setenv("TRIVIUM_CONFIG", str(config))
    assert TriviumSettings().registry.max_body_bytes == 123


def test_unknown_keys_and_bad_values_name_the_field(tmp_path: Path) -> None:
    config = tmp_path / "trivium.yaml"
    config.write_text("gateway: {port: -1}\n")
    with pytest.raises(ValidationError) as excinfo:
        load_settings(GatewaySettings, config)
    assert excinfo.value.errors()[0]["loc"] == ("gateway", "port")
    config.write_text("redis: {urll: redis://x}\n")
    with pytest.raises(ValidationError) as excinfo:
        load_settings(GatewaySettings, config)
    assert excinfo.value.errors()[0]["loc"] == ("redis", "urll")


def test_unreadable_or_non_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read config file"):
        load_settings(GatewaySettings, tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(InvalidInputError, match="must hold a mapping"):
        load_settings(GatewaySettings, listing)


def test_a_mistyped_section_is_an_error_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "trivium.yaml"
    config.write_text("gatway: {port: 9000}\n")
    with pytest.raises(InvalidInputError) as caught:
        load_settings(GatewaySettings, config)
    assert caught.value.field == "gatway"
    assert "unknown top-level key 'gatway'" in caught.value.message
    assert "gateway" in caught.value.message.split("known sections:")[1]


def test_a_section_of_another_process_is_not_an_error(tmp_path: Path) -> None:
    config = tmp_path / "trivium.yaml"
    config.write_text("gateway: {port: 9000}\nretriever: {port: 9200}\nmodel: {port: 9300}\n")
    assert load_settings(GatewaySettings, config).gateway.port == 9000
    assert load_settings(RetrieverSettings, config).retriever.port == 9200
    assert load_settings(ModelSettings, config).model.port == 9300


def test_the_known_sections_are_every_process_settings_fields() -> None:
    fields = {
        name
        for settings in (GatewaySettings, RetrieverSettings, ModelSettings, UpSettings)
        for name in settings.model_fields
    }
    assert len(set(TOP_LEVEL_KEYS)) == len(TOP_LEVEL_KEYS)
    assert set(TOP_LEVEL_KEYS) == fields - {"config_file"}  # an argument, not a file key
