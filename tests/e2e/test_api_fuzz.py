"""Schemathesis against the retriever's and the model service's OpenAPI schemas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import schemathesis.engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events

from tests.e2e.conftest import ServiceProcess, start_service, trivium_env
from trivium.common.redis_server import RedisServerProcess

ADMIN_TOKEN = "fuzz-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("fuzz-retriever")
    env = trivium_env(
        tmp,
        None,
        TRIVIUM_RETRIEVER__STORE__OPTIMIZE_AFTER_S="0.2",
        TRIVIUM_RETRIEVER__EMBEDDING__TORCH_THREADS="1",
        TRIVIUM_RETRIEVER__ADMIN_TOKENS=f'{{"fuzz": "{ADMIN_TOKEN}"}}',
    )
    service = start_service(tmp, ["retriever", "serve"], "RETRIEVER", env)
    with service.client() as http:
        http.post("/v1/collections", json={"name": "docs"}, headers=ADMIN).raise_for_status()
        http.post(
            "/v1/collections/docs/documents",
            json={"documents": [{"id": "refunds", "text": "Refunds take five days."}]},
            headers=ADMIN,
        ).raise_for_status()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def model_service(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServerProcess,
    tiny: dict[str, Path],
) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("fuzz-model")
    env = trivium_env(
        tmp,
        redis_server.url,
        TRIVIUM_MODEL__TRANSFORMERS__BASE_MODEL_DIR=str(tiny["base"]),
        TRIVIUM_MODEL__TRANSFORMERS__TORCH_THREADS="1",
        TRIVIUM_MODEL__ADMIN_TOKENS=f'{{"fuzz": "{ADMIN_TOKEN}"}}',
    )
    service = start_service(tmp, ["model", "serve"], "MODEL", env)
    yield service
    service.stop()


def fuzz(base_url: str, headers: dict[str, str]) -> list[str]:
    """Schemathesis's whole run (every phase, every check) over the service's schema."""
    config = SchemathesisConfig.from_dict(
        {
            "headers": headers,
            "workers": 1,
            "generation": {"max-examples": EXAMPLES_PER_OPERATION},
        }
    )
    schema = schemathesis.openapi.from_url(f"{base_url}/schema/openapi.json", config=config)
    found: dict[tuple[str, str, str], str] = {}
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.NonFatalError | events.FatalError):
            found[("error", str(event), "")] = f"{event}"
        if isinstance(event, events.ScenarioFinished):
            for checks in event.recorder.checks.values():
                for check in checks:
                    info = check.failure_info
                    if info is not None:
                        failure = info.failure
                        key = (failure.operation or event.recorder.label, check.name, failure.title)
                        found.setdefault(
                            key, f"{' / '.join(key)}\n{failure.message}\n{info.code_sample}"
                        )
    return list(found.values())


def test_retriever_with_admin_token(retriever: ServiceProcess) -> None:
    failures = fuzz(retriever.base_url, ADMIN)
    assert not failures, "\n\n".join(failures)


def test_retriever_without_token(retriever: ServiceProcess) -> None:
    failures = fuzz(retriever.base_url, {})
    assert not failures, "\n\n".join(failures)


def test_model_service_with_admin_token(model_service: ServiceProcess) -> None:
    failures = fuzz(model_service.base_url, ADMIN)
    assert not failures, "\n\n".join(failures)


def test_model_service_without_token(model_service: ServiceProcess) -> None:
    failures = fuzz(model_service.base_url, {})
    assert not failures, "\n\n".join(failures)
