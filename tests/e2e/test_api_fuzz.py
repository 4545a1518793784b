"""Schemathesis against the retriever, the model service and the gateway, as a client author
would run it.

Each service is a real process started with an admin token (the gateway in `auth.mode: keys`,
with a caller key holding every scope, in front of a real OpenAI-protocol upstream);
schemathesis loads its `/schema/openapi.json` and runs every phase (examples, coverage,
fuzzing, stateful) with every check, once with the credential and once without, at most
`EXAMPLES_PER_OPERATION` generated cases per operation (the gateway's two runs take about
15 s). Every failure of every check fails the test, except what
`CHECK_ALLOWANCES` states, each with its reason.

Schemathesis runs through its engine (what its CLI runs), not its pytest plugin: the plugin's
lazy loader (`schemathesis.pytest.from_fixture`), needed for a schema served by a fixture's
process, sets `Node._nodeid`, which pytest 9.2 no longer has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import schemathesis.engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events

from tests.e2e.conftest import (
    ServiceProcess,
    publish_template,
    start_gateway,
    start_service,
    trivium_env,
)
from tests.support.openai_upstream import OpenAIUpstream
from trivium.common.redis_server import RedisServerProcess
from trivium.gateway.callers import SCOPES
from trivium.registry.references import LABEL_PATTERN, NAME_PATTERN, SELECTOR_PATTERN

ADMIN_TOKEN = "fuzz-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXAMPLES_PER_OPERATION = 20
GATEWAY_POLICY = """
version: 1
upstreams:
  hosted:
    url: "{url}"
    model: hosted-model
    price: {{prompt_per_1k: 1.0, completion_per_1k: 2.0}}
features:
  faq:
    route: prompt
    template: ask@production
    upstream: hosted
    limits: {{max_tokens: 40}}
"""
"""One prompt feature; a rag feature would need a retriever process too, and its road adds
no route or status of its own to the schema (retriever failures fall back or answer 503)."""

POSITIVE_DATA_ACCEPTANCE_DEFAULT = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
CHECK_ALLOWANCES: list[dict[str, Any]] = [
    {
        # A completion request the schema allows is refused with 400 `context_length_exceeded`
        # when its prompt's tokens plus `max_tokens` exceed the model's context window: a count
        # of tokens, which no schema can state (OpenAI's API answers the same 400). Every
        # other check, and every other status, holds on these operations.
        "include-path-regex": "^/v1/(chat/)?completions$",
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_DEFAULT, "400"]
            }
        },
    },
    {
        # The gateway's template routes: a template's body is Jinja whose variables its
        # metadata must declare (`variables`), else a publish is refused with 400
        # `invalid_artifact`; a render or invoke that leaves out a variable the stored template
        # declares is refused with 400 `render_error` naming it (`input.question`). Templates
        # change with each publish, so no schema of the routes can state either.
        "include-path-regex": "^/v1/(templates/[^/]+/(render|versions)|features/[^/]+/invoke)$",
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_DEFAULT, "400"]
            }
        },
    },
    {
        # The gateway's two invoke routes convert their bodies as Litestar does, in msgspec's
        # lax mode (`"stream": 0` is read as false), and do not take `decode_body_strictly`:
        # on its hot path it measured 0.504 -> 0.543 ms gateway CPU per request
        # (`load/bench_gateway.py overhead --concurrency 8 --requests 1500 --repeat 1 --path
        # openai`, 3 runs without, 2 with), over the 0.02 ms it may cost. Lax conversion
        # accepts only values that mean the same (0/1 for a boolean, "10" for 10); every
        # other schema violation is still refused with 400 and checked by every other check.
        "include-path-regex": "^/v1/(chat/completions|features/[^/]+/invoke)$",
        "checks": {"negative_data_rejection": {"enabled": False}},
    },
    {
        # `POST /v1/datasets/{name}/versions` reads a JSONL file: every line a JSON case whose
        # members (one of `input` and `messages`, `expected`, unique ids) the route checks line
        # by line, answering 400 `invalid_dataset` naming each bad line. A text body's schema
        # cannot state "each line is a JSON object of this shape".
        # A trial's case results and pages name one of the trial's own arms, set when it was
        # created (`POST /v1/trials`): another arm is refused with 400 naming `cases[i].arm`
        # (or `arm`). The arms change with each trial, so no schema of the routes can state it.
        "include-path-regex": "^/v1/(datasets/[^/]+/versions|trials/[^/]+/cases)$",
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_DEFAULT, "400"]
            }
        },
    },
    {
        # `POST /v1/feedback` names an answer by an id that carries its creation time: one
        # older than the deployment's feedback retention is 410 `answer_expired`, a fact of
        # the clock that no schema can state.
        "include-path-regex": "^/v1/feedback$",
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_DEFAULT, "410"]
            }
        },
    },
    {
        # `POST /v1/policy:validate` checks a policy document: a YAML text whose features,
        # upstreams and references must resolve, which no request schema can state. Answering
        # 422 with every error is the route's purpose.
        "include-path-regex": "^/v1/policy:validate$",
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_DEFAULT, "422"]
            }
        },
    },
]


# A client author sends a JSONL file as text: the dataset route's two media types.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")
schemathesis.serializer.alias("application/jsonl", "text/plain")


def fuzz(
    base_url: str,
    headers: dict[str, str],
    examples: int = EXAMPLES_PER_OPERATION,
    known: Callable[[dict[str, Any]], None] | None = None,
    operations: tuple[dict[str, Any], ...] = (),
) -> list[str]:
    """Schemathesis's whole run over the service's schema: one line per distinct failure.
    `known` adds what a client author knows of the deployment (its feature names) to the
    schema as examples before the run."""
    config = SchemathesisConfig.from_dict(
        {
            "base-url": base_url,
            "headers": headers,
            "workers": 1,
            "generation": {"max-examples": examples, "database": "none"},
            "operations": [*CHECK_ALLOWANCES, *operations],
        }
    )
    document = httpx.get(f"{base_url}/schema/openapi.json", timeout=10).json()
    if known is not None:
        known(document)
    schema = schemathesis.openapi.from_dict(document, config=config)
    found: dict[tuple[str, ...], str] = {}
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.NonFatalError | events.FatalError):
            found[("error", str(event))] = f"schemathesis could not run: {event}"
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    info = check.failure_info
                    if info is None:
                        continue
                    failure = info.failure
                    key = (failure.operation or recorder.label, check.name, failure.title)
                    interaction = recorder.interactions.get(case_id)
                    answer = interaction.response if interaction is not None else None
                    said = (
                        ""
                        if answer is None
                        else f"\n-> {answer.status_code} {answer.content[:500]!r}"
                    )
                    found.setdefault(
                        key, f"{' / '.join(key)}\n{failure.message}\n{info.code_sample}{said}"
                    )
    return list(found.values())


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
    assert service.stop() == 0, service.log_path.read_text()[-2000:]


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
    assert service.stop() == 0, service.log_path.read_text()[-2000:]


@dataclass
class FuzzedGateway:
    service: ServiceProcess
    key: dict[str, str]
    """The headers of a key with every scope, for every feature."""
    rotated_key_id: str
    revoked_key_id: str
    """Spare keys the run rotates and revokes in place of the key it runs with (rotating a
    revoked key is a 404; revoking is idempotent)."""


@pytest.fixture(scope="module")
def fuzzed_gateway(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> Iterator[FuzzedGateway]:
    """A gateway in `auth.mode: keys`, a key with every scope and two spare keys."""
    tmp = tmp_path_factory.mktemp("fuzz-gateway")
    policy_file = tmp / "policy.yaml"
    with OpenAIUpstream(model="hosted-model") as hosted:
        policy_file.write_text(GATEWAY_POLICY.format(url=hosted.url))
        env = trivium_env(
            tmp,
            redis_server.url,
            TRIVIUM_GATEWAY__AUTH__MODE="keys",
            TRIVIUM_GATEWAY__AUTH__PEPPER="fuzz-pepper-of-the-deployment",
            TRIVIUM_GATEWAY__ADMIN_TOKENS=f'{{"fuzz": "{ADMIN_TOKEN}"}}',
            TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
        )
        service = start_gateway(tmp, env)
        with service.client() as http:
            publish_template(http, "ask", "Question: {{ question }}", ["question"], ADMIN)
            created = http.post(
                "/v1/keys",
                json={"name": "fuzzer", "owner": "qa", "features": ["*"], "scopes": list(SCOPES)},
                headers=ADMIN,
            )
            assert created.status_code == 201, created.text
            spares = [
                http.post(
                    "/v1/keys", json={"name": name, "owner": "qa", "features": ["*"]}, headers=ADMIN
                )
                for name in ("spare-rotated", "spare-revoked")
            ]
            assert all(spare.status_code == 201 for spare in spares), spares
        yield FuzzedGateway(
            service,
            {"Authorization": f"Bearer {created.json()['key']}"},
            *(spare.json()["record"]["id"] for spare in spares),
        )
        assert service.stop() == 0, service.log_path.read_text()[-2000:]


def the_faq_feature(document: dict[str, Any]) -> None:
    """Examples naming the deployment's feature (`faq`, a template taking `question`), so
    the run reaches the upstream, not only the gateway's 404s and 400s."""
    invoke = document["paths"]["/v1/features/{feature}/invoke"]["post"]
    for parameter in invoke["parameters"]:
        if parameter["name"] == "feature":
            parameter["schema"]["examples"] = ["faq"]
    schemas = document["components"]["schemas"]
    schemas["InvokeRequest"]["examples"] = [
        {"input": {"question": "where is my refund?"}},
        {"input": {"question": "and my invoice?"}, "stream": True},
    ]
    schemas["ChatRequest"]["examples"] = [
        {
            "model": "faq",
            "messages": [{"role": "user", "content": "hi"}],
            "input": {"question": "where is my refund?"},
        },
        {
            "model": "faq",
            "messages": [{"role": "user", "content": "hi"}],
            "input": {"question": "and my invoice?"},
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ]


@pytest.mark.parametrize("with_key", [True, False], ids=["every-scope-key", "no-key"])
def test_gateway_answers_as_its_schema_says(fuzzed_gateway: FuzzedGateway, with_key: bool) -> None:
    gateway = fuzzed_gateway.service
    # Rotating or revoking the key the run holds would leave the rest of it 401s.
    spare_keys_only = (
        {
            "include-path-regex": "^/v1/keys/[^/]+/rotate$",
            "parameters": {"path.key_id": fuzzed_gateway.rotated_key_id},
        },
        {
            "include-path-regex": "^/v1/keys/[^/]+/revoke$",
            "parameters": {"path.key_id": fuzzed_gateway.revoked_key_id},
        },
    )
    failures = fuzz(
        gateway.base_url,
        fuzzed_gateway.key if with_key else {},
        known=the_faq_feature,
        operations=spare_keys_only,
    )
    assert not failures, "\n\n".join(failures)
    assert "unhandled error" not in gateway.log_path.read_text()


@pytest.mark.parametrize("headers", [ADMIN, {}], ids=["admin-token", "no-token"])
def test_retriever_answers_as_its_schema_says(
    retriever: ServiceProcess, headers: dict[str, str]
) -> None:
    failures = fuzz(retriever.base_url, headers)
    assert not failures, "\n\n".join(failures)
    assert "internal error" not in retriever.log_path.read_text()


@pytest.mark.parametrize("headers", [ADMIN, {}], ids=["admin-token", "no-token"])
def test_model_service_answers_as_its_schema_says(
    model_service: ServiceProcess, headers: dict[str, str]
) -> None:
    failures = fuzz(model_service.base_url, headers)
    assert not failures, "\n\n".join(failures)


def test_an_empty_offset_is_a_400_naming_it(retriever: ServiceProcess) -> None:
    with retriever.client() as http:
        response = http.get("/v1/collections/docs/documents", params={"offset": ""})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "offset"


def test_the_retriever_schema_states_its_errors_and_limits(retriever: ServiceProcess) -> None:
    with retriever.client() as http:
        document = http.get("/schema/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert schemas["SearchRequest"]["additionalProperties"] is False
    assert schemas["SearchRequest"]["properties"]["k"]["maximum"] == 100
    assert schemas["SearchRequest"]["properties"]["rerank"]["enum"] == [False]  # no re-ranker
    ingest = document["paths"]["/v1/collections/{collection}/documents"]["post"]
    assert set(ingest["responses"]) == {"200", "400", "401", "404", "409", "413"}
    assert ingest["security"] == [{"bearer": []}]
    problem = ingest["responses"]["404"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/ProblemDetails"}
    with retriever.client() as http:
        assert http.options("/v1/collections").headers["allow"] == "GET, OPTIONS, POST"


def test_the_model_service_schema_states_its_errors(model_service: ServiceProcess) -> None:
    with model_service.client() as http:
        document = http.get("/schema/openapi.json").json()
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert set(chat) == {"200", "400", "404", "413", "503", "504"}
    assert set(chat["200"]["content"]) == {"application/json", "text/event-stream"}
    error = chat["404"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/OpenAIErrorBody"}
    assert document["components"]["schemas"]["RegisterRequest"]["additionalProperties"] is False


def test_the_gateway_schema_states_its_errors_scopes_and_patterns(
    fuzzed_gateway: FuzzedGateway,
) -> None:
    with fuzzed_gateway.service.client() as http:
        document = http.get("/schema/openapi.json").json()
        allow = http.options("/v1/templates/ask/labels/production").headers["allow"]
    assert allow == "GET, OPTIONS, PUT"
    paths = document["paths"]
    invoke = paths["/v1/features/{feature}/invoke"]["post"]
    assert invoke["security"] == [{"bearer": ["invoke"]}]
    assert "`invoke` scope" in invoke["description"]
    assert set(invoke["responses"]) == {
        "200", "202", "400", "401", "403", "404", "413", "429", "431", "502", "503", "504"
    }  # fmt: skip
    assert set(invoke["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert "x-ratelimit-remaining-requests" in invoke["responses"]["429"]["headers"]
    problem = invoke["responses"]["403"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/ProblemDetails"}
    chat = paths["/v1/chat/completions"]["post"]["responses"]
    assert chat["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OpenAIErrorBody"
    }
    assert paths["/v1/keys"]["post"]["security"] == [{"bearer": ["keys:admin"]}]
    assert paths["/v1/policy:reload"]["post"]["security"] == [{"bearer": ["policy:reload"]}]
    promote = paths["/v1/templates/{name}/labels/{label}"]["put"]
    assert promote["security"] == [{"bearer": ["templates:write"]}]
    patterns = {p["name"]: p["schema"].get("pattern") for p in promote["parameters"]}
    assert patterns == {"name": NAME_PATTERN, "label": LABEL_PATTERN}
    schemas = document["components"]["schemas"]
    for body in ("InvokeRequest", "ChatRequest", "CreateKeyRequest", "PromoteRequest"):
        assert schemas[body]["additionalProperties"] is False, body
    assert schemas["RenderRequest"]["properties"]["selector"]["pattern"] == SELECTOR_PATTERN
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_the_gateway_admin_bodies_are_read_strictly(fuzzed_gateway: FuzzedGateway) -> None:
    body = {"name": "strict", "owner": "qa", "features": ["faq"], "rpm": "5"}
    with fuzzed_gateway.service.client() as http:
        refused = http.post("/v1/keys", json=body, headers=ADMIN)
        promoted = http.put(
            "/v1/templates/ask/labels/production", json={"version": True}, headers=ADMIN
        )
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == "rpm"
    assert promoted.status_code == 400, promoted.text
    assert promoted.json()["field"] == "version"
