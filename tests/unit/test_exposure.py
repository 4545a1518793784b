"""A service reachable from other hosts refuses to serve unguarded admin writes."""

from __future__ import annotations

import pytest

from trivium.common.http.exposure import (
    InsecureExposureError,
    require_admin_credential,
)
from trivium.model.config import ModelSection, ModelSettings
from trivium.retriever.config import RetrieverSection, RetrieverSettings


@pytest.mark.parametrize("section", ["retriever", "model"])
def test_no_admin_credential_off_loopback_is_refused_naming_the_settings(section: str) -> None:
    with pytest.raises(InsecureExposureError) as excinfo:
        require_admin_credential(section, "0.0.0.0", {}, insecure=False)
    error = excinfo.value
    assert error.field == f"{section}.admin_tokens"
    assert f"TRIVIUM_{section.upper()}__ADMIN_TOKENS" in error.message
    assert f"{section}.insecure: true" in error.message


def test_a_token_an_explicit_insecure_or_loopback_is_enough() -> None:
    require_admin_credential("retriever", "0.0.0.0", {"ops": "t"}, insecure=False)
    require_admin_credential("retriever", "0.0.0.0", {}, insecure=True)
    require_admin_credential("retriever", "127.0.0.1", {}, insecure=False)


def test_the_services_refuse_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from trivium.model.app import create_app as model_app
    from trivium.retriever.api.app import create_app as retriever_app

    for name in ("TRIVIUM_RETRIEVER__ADMIN_TOKENS", "TRIVIUM_MODEL__ADMIN_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InsecureExposureError):
        retriever_app(RetrieverSettings(retriever=RetrieverSection(host="0.0.0.0")))
    with pytest.raises(InsecureExposureError):
        model_app(ModelSettings(model=ModelSection(host="0.0.0.0")))
