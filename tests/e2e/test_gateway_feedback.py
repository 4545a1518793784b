"""Feedback from the product (`POST /v1/feedback`) through a real gateway, Redis and a
scripted OpenAI-protocol upstream, in `auth.mode: keys`: an answer, its feedback, and the
attribution after a policy flip; the stats window, the metrics, the corrections export; every
refusal (400, 403, 404, 410, 413)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest

from tests.e2e.conftest import ServiceProcess, publish_template, running, start_gateway, trivium_env
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.prometheus import sample_value
from trivium.common.contracts.datasets import DatasetRow
from trivium.common.redis_server import RedisServerProcess

ADMIN_TOKEN = "feedback-bootstrap-token"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
RETENTION_S = 3600
POLICY = """
version: {version}
upstreams:
  hosted: {{url: "{url}", model: hosted-model}}
features:
  faq:
    route: prompt
    template: ask@{template}
    upstream: hosted
    variants:
      {variant}: {{weight: 1}}
  billing:
    route: prompt
    template: ask@1
    upstream: hosted
"""


@dataclass
class Deployment:
    gateway: ServiceProcess
    policy_file: Any
    url: str
    app: dict[str, str]
    """invoke + feedback, feature faq only."""
    billing_app: dict[str, str]
    """invoke + feedback, feature billing only."""
    invoker: dict[str, str]
    """invoke only."""
    exporter: dict[str, str]
    """trials: the corrections export."""

    def http(self) -> httpx.Client:
        return self.gateway.client()


def _key(http: httpx.Client, name: str, features: list[str], scopes: list[str]) -> dict[str, str]:
    body = {"name": name, "owner": "product", "features": features, "scopes": scopes}
    created = http.post("/v1/keys", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    return {"authorization": f"Bearer {created.json()['key']}"}


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("feedback")
    policy_file = tmp / "policy.yaml"
    with OpenAIUpstream(model="hosted-model") as hosted:
        policy_file.write_text(
            POLICY.format(version=1, url=hosted.url, template=1, variant="control")
        )
        env = trivium_env(
            tmp,
            redis_server.url,
            TRIVIUM_GATEWAY__AUTH__MODE="keys",
            TRIVIUM_GATEWAY__AUTH__PEPPER="feedback-pepper",
            TRIVIUM_GATEWAY__ADMIN_TOKENS=f'{{"ops": "{ADMIN_TOKEN}"}}',
            TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
            TRIVIUM_GATEWAY__POLICY_POLL_S="3600",
            TRIVIUM_GATEWAY__STATS__FLUSH_S="0.1",
            TRIVIUM_GATEWAY__FEEDBACK__RETENTION_S=str(RETENTION_S),
        )
        with running(start_gateway(tmp, env)) as gateway, gateway.client() as http:
            publish_template(http, "ask", "Question: {{ question }}", ["question"], ADMIN)
            publish_template(http, "ask", "Q (v2): {{ question }}", ["question"], ADMIN)
            yield Deployment(
                gateway,
                policy_file,
                hosted.url,
                app=_key(http, "support-app", ["faq"], ["invoke", "feedback"]),
                billing_app=_key(http, "billing-app", ["billing"], ["invoke", "feedback"]),
                invoker=_key(http, "invoke-only", ["*"], ["invoke"]),
                exporter=_key(http, "dataset-builder", ["*"], ["trials"]),
            )


def ask(d: Deployment, question: str, user: str = "u-1", feature: str = "faq") -> dict[str, Any]:
    with d.http() as http:
        answer = http.post(
            f"/v1/features/{feature}/invoke",
            json={"input": {"question": question}, "user": user},
            headers=d.app if feature == "faq" else d.billing_app,
        )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def feedback(d: Deployment, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
    with d.http() as http:
        return http.post("/v1/feedback", json=body, headers=d.app if headers is None else headers)


def problem(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["code"], body["field"]


def stats_of(d: Deployment) -> dict[str, Any]:
    with d.http() as http:
        answer = http.get("/v1/stats", params={"feature": "faq"}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    variants: dict[str, Any] = answer.json()["features"]["faq"]["prompt"]["variants"]
    return variants


def test_feedback_is_attributed_to_what_served_the_answer_even_after_a_flip(
    deployment: Deployment,
) -> None:
    d = deployment
    before = ask(d, "where is my refund?")
    assert before["id"].startswith("ans_")
    assert before["variant"] == "control"
    assert before["template"] == "ask@1"
    receipt = feedback(d, answer_id=before["id"], kind="completed", value=False)
    assert receipt.status_code == 200, receipt.text
    assert receipt.json()["replaced"] is False

    d.policy_file.write_text(POLICY.format(version=2, url=d.url, template=2, variant="candidate"))
    with d.http() as http:
        reloaded = http.post("/v1/policy:reload", headers=ADMIN)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["result"] == "ok"
    after = ask(d, "and my invoice?")
    assert (after["variant"], after["template"]) == ("candidate", "ask@2")
    assert after["lineage"]["policy_hash"] != before["lineage"]["policy_hash"]

    # after the flip: the answer served before it keeps its variant, versions and policy
    late = feedback(d, answer_id=before["id"], kind="completed", value=True, comment="done")
    assert late.status_code == 200, late.text
    assert {k: late.json()[k] for k in ("variant", "template", "policy_hash", "replaced")} == {
        "variant": "control",
        "template": "ask@1",
        "policy_hash": before["lineage"]["policy_hash"],
        "replaced": True,
    }
    assert late.json()["policy_version"] == 1
    assert feedback(d, answer_id=before["id"], kind="rating", value=2).status_code == 200
    assert feedback(d, answer_id=before["id"], kind="escalated", value=True).status_code == 200
    fresh = feedback(d, answer_id=after["id"], kind="completed", value=False)
    assert (fresh.json()["variant"], fresh.json()["policy_version"]) == ("candidate", 2)
    assert feedback(d, answer_id=after["id"], kind="thumbs", value="up").status_code == 200

    # /v1/stats: the last event of each kind counts, per arm
    deadline = time.monotonic() + 10
    while True:
        variants = stats_of(d)
        control = variants.get("control", {}).get("feedback") or {}
        candidate = variants.get("candidate", {}).get("feedback") or {}
        if control.get("escalation", {}).get("count") and candidate.get("satisfaction", {}).get(
            "count"
        ):
            break
        assert time.monotonic() < deadline, variants
        time.sleep(0.1)
    assert control["completion"] == {"rate": 1.0, "count": 1}  # false, then true: true counts
    assert control["satisfaction"] == {"rate": 0.0, "count": 1}
    assert control["mean_rating"] == 2.0
    assert control["escalation"] == {"rate": 1.0, "count": 1}  # 1 of the 1 answer it served
    assert control["correction"] == {"rate": 0.0, "count": 0}
    assert candidate["completion"] == {"rate": 0.0, "count": 1}
    assert candidate["satisfaction"] == {"rate": 1.0, "count": 1}

    # Prometheus counts every event, with bounded values
    with d.http() as http:
        metrics = http.get("/metrics").text
    labels = {"feature": "faq", "variant": "control", "route": "prompt", "kind": "completed"}
    assert sample_value(metrics, "trivium_feedback_total", **labels, value="true") == 1
    assert sample_value(metrics, "trivium_feedback_total", **labels, value="false") == 1
    rating = {**labels, "kind": "rating", "value": "2"}
    assert sample_value(metrics, "trivium_feedback_total", **rating) == 1


def test_the_openai_route_answers_carry_the_same_kind_of_id(deployment: Deployment) -> None:
    d = deployment
    with d.http() as http:
        completion = http.post(
            "/v1/chat/completions",
            json={"model": "faq", "messages": [{"role": "user", "content": "hello"}]},
            headers=d.app,
        )
        assert completion.status_code == 200, completion.text
        with http.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "faq", "messages": [{"role": "user", "content": "hi"}], "stream": True},
            headers=d.app,
        ) as streamed:
            chunks = [
                json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: {")
            ]
    answer_id = completion.json()["id"]
    assert answer_id.startswith("ans_")
    assert feedback(d, answer_id=answer_id, kind="thumbs", value="down").status_code == 200
    streamed_id = chunks[0]["id"]
    assert {chunk["id"] for chunk in chunks} == {streamed_id}
    assert feedback(d, answer_id=streamed_id, kind="rating", value=5).json()["route"] == "prompt"


def test_corrections_become_candidate_dataset_rows(deployment: Deployment) -> None:
    d = deployment
    since = int(time.time() * 1000)
    first = ask(d, "refund for order 7?")
    second = ask(d, "cancel my plan")
    label = {"label": "refunds"}
    assert feedback(d, answer_id=first["id"], kind="corrected", correction=label).status_code == 200
    text = "Go to Billing, then Cancel."
    assert feedback(d, answer_id=second["id"], kind="corrected", correction=text).status_code == 200
    again = {"label": "refunds", "answer": "Refunds take 5 days."}
    assert feedback(d, answer_id=first["id"], kind="corrected", correction=again).status_code == 200
    with d.http() as http:
        export = http.get(
            "/v1/feedback/corrections",
            params={"feature": "faq", "since": since},
            headers=d.exporter,
        )
        other = http.get(
            "/v1/feedback/corrections", params={"feature": "billing"}, headers=d.exporter
        )
        paged = http.get(
            "/v1/feedback/corrections",
            params={"feature": "faq", "since": since, "limit": 1},
            headers=d.exporter,
        )
        forbidden = http.get("/v1/feedback/corrections", params={"feature": "faq"}, headers=d.app)
    assert export.status_code == 200, export.text
    assert export.headers["content-type"].startswith("application/x-ndjson")
    rows = [msgspec.json.decode(line, type=DatasetRow) for line in export.text.splitlines()]
    assert [row.id for row in rows] == [second["id"], first["id"]]  # the last correction counts
    assert rows[0].input == {"question": "cancel my plan"}
    assert rows[0].expected.answer == text
    assert rows[0].expected.label is None
    assert (rows[1].expected.label, rows[1].expected.answer) == ("refunds", "Refunds take 5 days.")
    assert rows[1].tags == ["feedback", "route:prompt", "variant:candidate"]
    assert other.status_code == 200
    assert other.text == ""
    assert paged.text.count("\n") == 1
    assert "x-next-cursor" in paged.headers
    assert forbidden.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "completed", "value": "yes"}, "value"),
        ({"kind": "escalated"}, "value"),
        ({"kind": "rating", "value": 6}, "value"),
        ({"kind": "rating", "value": True}, "value"),
        ({"kind": "rating", "value": "5"}, "value"),
        ({"kind": "thumbs", "value": "sideways"}, "value"),
        ({"kind": "corrected"}, "correction"),
        ({"kind": "corrected", "correction": {}}, "correction"),
        ({"kind": "corrected", "value": False, "correction": "x"}, "value"),
        ({"kind": "completed", "value": True, "correction": "x"}, "correction"),
        ({"kind": "liked", "value": True}, "kind"),
        ({"kind": "completed", "value": True, "extra": 1}, "extra"),
    ],
)
def test_wrong_values_are_400_naming_the_field(
    deployment: Deployment, body: dict[str, Any], field: str
) -> None:
    answer_id = ask(deployment, "a question")["id"]
    refused = feedback(deployment, answer_id=answer_id, **body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == field


def test_unknown_expired_forbidden_and_oversize_feedback_is_refused(
    deployment: Deployment,
) -> None:
    d = deployment
    now_ms = int(time.time() * 1000)
    never_served = f"ans_{now_ms:012x}{'0' * 16}"
    assert problem(feedback(d, answer_id=never_served, kind="completed", value=True)) == (
        404,
        "answer_not_found",
        "answer_id",
    )
    from_the_future = f"ans_{now_ms + 86_400_000:012x}{'0' * 16}"
    assert feedback(d, answer_id=from_the_future, kind="completed", value=True).status_code == 404
    expired = f"ans_{now_ms - (RETENTION_S + 60) * 1000:012x}{'1' * 16}"
    assert problem(feedback(d, answer_id=expired, kind="completed", value=True)) == (
        410,
        "answer_expired",
        "answer_id",
    )
    malformed = feedback(d, answer_id="chatcmpl-123", kind="completed", value=True)
    assert problem(malformed)[0::2] == (400, "answer_id")

    faq_answer = ask(d, "whose answer?")["id"]
    other_feature = feedback(d, d.billing_app, answer_id=faq_answer, kind="thumbs", value="up")
    assert problem(other_feature) == (403, "forbidden_feature", "answer_id")
    no_scope = feedback(d, d.invoker, answer_id=faq_answer, kind="thumbs", value="up")
    assert no_scope.status_code == 403
    assert no_scope.json()["code"] == "missing_scope"
    no_key = feedback(d, {}, answer_id=faq_answer, kind="thumbs", value="up")
    assert no_key.status_code == 401
    billing_answer = ask(d, "my invoice", feature="billing")["id"]
    own = feedback(d, d.billing_app, answer_id=billing_answer, kind="thumbs", value="up")
    assert own.status_code == 200
    assert own.json()["feature"] == "billing"

    huge = {"answer_id": faq_answer, "kind": "completed", "value": True, "comment": "x" * 2_000_000}
    with d.http() as http:
        oversize = http.post("/v1/feedback", json=huge, headers=d.app)
    assert oversize.status_code == 413
    long_comment = feedback(
        d, answer_id=faq_answer, kind="completed", value=True, comment="x" * 2001
    )
    assert problem(long_comment)[0::2] == (400, "comment")
