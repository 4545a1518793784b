"""The human review queue through a real gateway (auth.mode: keys), a real retriever, Redis
and a scripted OpenAI-protocol upstream: a flagged answer enters the queue with its evidence;
`on_fail: hold` answers 202 and its caller reads the outcome once a reviewer approves,
corrects or rejects it; passing answers are sampled; the decided cases export to a dataset;
every refusal (400, 403, 404, 409, 413) and the bad `review` blocks."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from matplotlib.image import imread
from playwright.sync_api import sync_playwright

from tests.e2e.conftest import (
    ServiceProcess,
    publish_template,
    run_trivium,
    running,
    seed_collection,
    start_gateway,
    start_retriever,
    trivium_env,
)
from tests.support.chromium import CHROMIUM_ARGS, ChromiumNotFoundError, find_chromium
from tests.support.openai_upstream import OpenAIUpstream, echo_reply
from tests.support.prometheus import sample_value
from trivium.common.redis_server import RedisServerProcess

ADMIN_TOKEN = "reviews-bootstrap-token"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
KB = [
    {
        "id": "refunds",
        "title": "Refunds",
        "source": "kb/refunds.md",
        "text": "Refunds reach the original card within five business days.",
    },
    {
        "id": "reset",
        "title": "Password reset",
        "source": "kb/reset.md",
        "text": "Reset a forgotten password from the login page with the emailed link.",
    },
]
MADE_UP = "Refunds reach the card by carrier pigeon on alternate Tuesdays."
POLICY = """
version: 1
upstreams:
  hosted: {{url: "{url}", model: hosted-model}}
features:
  kb:
    route: rag
    template: answer@1
    upstream: hosted
    retrieval: {{collection: kb, k: 2, mode: sparse, min_groundedness: 0.6, on_fail: flag}}
  kb-held:
    route: rag
    template: answer@1
    upstream: hosted
    retrieval: {{collection: kb, k: 2, mode: sparse, min_groundedness: 0.6, on_fail: hold}}
    review: {{slo_s: 60}}
  kb-sampled:
    route: rag
    template: answer@1
    upstream: hosted
    retrieval: {{collection: kb, k: 2, mode: sparse}}
    review: {{sample_rate: 1.0}}
"""
ANSWER = (
    "Passages:\n{% for p in passages %}[{{ p.index }}] {{ p.text }}\n{% endfor %}"
    "Question: {{ question }}"
)


def reply(body: dict[str, Any]) -> str:
    """Made up for a question asking for it, else an echo of the prompt (its passages)."""
    prompt = str(body["messages"][-1]["content"])
    return MADE_UP if "invent" in prompt else echo_reply(body)


@dataclass
class Deployment:
    gateway: ServiceProcess
    env: dict[str, str]
    app: dict[str, str]
    """invoke, every feature."""
    other_app: dict[str, str]
    """invoke, every feature: a different key."""
    reviewer: dict[str, str]
    """review only."""
    product: dict[str, str]
    """feedback only: no invoke, no review."""

    def http(self) -> httpx.Client:
        return self.gateway.client()


def _key(http: httpx.Client, name: str, scopes: list[str]) -> dict[str, str]:
    body = {"name": name, "owner": "qa", "features": ["*"], "scopes": scopes}
    created = http.post("/v1/keys", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    return {"authorization": f"Bearer {created.json()['key']}"}


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServerProcess
) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("reviews")
    policy_file = tmp / "policy.yaml"
    with (
        running(start_retriever(tmp_path_factory.mktemp("reviews-retriever"))) as retriever,
        OpenAIUpstream(model="hosted-model", reply=reply) as hosted,
    ):
        seed_collection(retriever, "kb", KB)
        policy_file.write_text(POLICY.format(url=hosted.url))
        env = trivium_env(
            tmp,
            redis_server.url,
            TRIVIUM_GATEWAY__AUTH__MODE="keys",
            TRIVIUM_GATEWAY__AUTH__PEPPER="reviews-pepper",
            TRIVIUM_GATEWAY__ADMIN_TOKENS=f'{{"ops": "{ADMIN_TOKEN}"}}',
            TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
            TRIVIUM_GATEWAY__POLICY_POLL_S="3600",
            TRIVIUM_GATEWAY__RETRIEVER__URL=retriever.base_url,
            TRIVIUM_GATEWAY__REVIEWS__POLL_S="0.2",
        )
        with running(start_gateway(tmp, env)) as gateway, gateway.client() as http:
            publish_template(http, "answer", ANSWER, ["passages", "question"], ADMIN)
            yield Deployment(
                gateway,
                env,
                app=_key(http, "support-app", ["invoke"]),
                other_app=_key(http, "other-app", ["invoke"]),
                reviewer=_key(http, "alice-reviewer", ["review"]),
                product=_key(http, "product", ["feedback"]),
            )


def ask(d: Deployment, feature: str, question: str, status: int = 200) -> dict[str, Any]:
    with d.http() as http:
        answer = http.post(
            f"/v1/features/{feature}/invoke",
            json={"input": {"question": question}},
            headers=d.app,
        )
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    return body


def review(d: Deployment, review_id: str, headers: dict[str, str]) -> httpx.Response:
    with d.http() as http:
        return http.get(f"/v1/reviews/{review_id}", headers=headers)


def decide(
    d: Deployment, review_id: str, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    with d.http() as http:
        return http.post(
            f"/v1/reviews/{review_id}:decide", json=body, headers=headers or d.reviewer
        )


def problem(response: httpx.Response) -> tuple[int, str, str | None]:
    body = response.json()
    return response.status_code, body["code"], body.get("field")


def test_a_flagged_answer_enters_the_queue_with_its_evidence(deployment: Deployment) -> None:
    d = deployment
    answer = ask(d, "kb", "invent something about refunds")
    assert answer["verdict"] == "flagged"
    assert answer["output"] == MADE_UP
    review_id = answer["review_id"]
    assert re.fullmatch(r"rev_[0-9a-f]{28}", review_id)
    with d.http() as http:
        listed = http.get("/v1/reviews", params={"feature": "kb", "status": "pending"},
                          headers=d.reviewer)  # fmt: skip
    assert listed.status_code == 200, listed.text
    assert review_id in [r["id"] for r in listed.json()["reviews"]]
    shown = review(d, review_id, d.reviewer)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    case = body["case"]
    assert (body["status"], body["reason"]) == ("pending", "flagged")
    assert case["input"] == {"question": "invent something about refunds"}
    assert case["output"] == MADE_UP
    assert case["answer_id"] == answer["id"]
    assert case["caller"] == "support-app"
    assert case["groundedness"] == pytest.approx(answer["groundedness"])
    assert case["groundedness"] < 0.6
    assert "Refunds reach the original card" in case["passages"][0]["text"]
    assert [c["doc_id"] for c in case["citations"]] == [c["doc_id"] for c in answer["citations"]]
    assert case["lineage"]["template"] == "answer@1"
    assert case["lineage"]["retriever_index"]


def test_hold_answers_202_and_the_caller_reads_the_approved_answer(
    deployment: Deployment,
) -> None:
    d = deployment
    held = ask(d, "kb-held", "invent a refund rule", status=202)
    assert (held["verdict"], held["output"]) == ("held", None)
    review_id = held["review_id"]
    waiting = review(d, review_id, d.app)
    assert waiting.status_code == 200, waiting.text
    assert waiting.json()["status"] == "pending"
    assert "output" not in waiting.json()
    assert "case" not in waiting.json()
    assert review(d, review_id, d.other_app).status_code == 404  # another key: no such review
    approved = decide(d, review_id, decision="approve", note="fine")
    assert approved.status_code == 200, approved.text
    assert approved.json()["decision"]["reviewer"] == "alice-reviewer"
    outcome = review(d, review_id, d.app).json()
    assert (outcome["status"], outcome["output"]) == ("approved", MADE_UP)
    assert outcome["citations"]
    assert "decision" not in outcome
    metrics = httpx.get(f"{d.gateway.base_url}/metrics", timeout=10).text
    labels = {"feature": "kb-held", "decision": "approve"}
    assert sample_value(metrics, "trivium_review_decisions_total", **labels) == 1
    grounded = ask(d, "kb-held", "how do refunds reach the card?")
    assert grounded["verdict"] == "passed"
    assert grounded["review_id"] is None


def test_correct_and_reject_give_the_correction_or_a_refusal(deployment: Deployment) -> None:
    d = deployment
    fixed, refused, replaced = (
        ask(d, "kb-held", f"invent refund rule {n}", status=202)["review_id"] for n in range(3)
    )
    right = "Refunds reach the original card within five business days [1]."
    assert decide(d, fixed, decision="correct", correction=right).status_code == 200
    assert decide(d, refused, decision="reject", note="made up").status_code == 200
    assert decide(d, replaced, decision="reject", correction=right).status_code == 200
    outcome = review(d, fixed, d.app).json()
    assert (outcome["status"], outcome["output"]) == ("corrected", right)
    outcome = review(d, refused, d.app).json()
    assert outcome["status"] == "rejected"
    assert "output" not in outcome
    assert "reviewer did not approve" in outcome["refusal"]
    outcome = review(d, replaced, d.app).json()
    assert (outcome["status"], outcome["output"]) == ("rejected", right)
    with d.http() as http:
        listed = http.get("/v1/reviews", params={"feature": "kb-held", "status": "corrected"},
                          headers=d.reviewer).json()["reviews"]  # fmt: skip
    assert [r["id"] for r in listed] == [fixed]


def test_passing_answers_are_sampled_for_calibration(deployment: Deployment) -> None:
    d = deployment
    answer = ask(d, "kb-sampled", "how do I reset my password?")
    assert answer["verdict"] == "passed"
    assert answer["output"]
    shown = review(d, answer["review_id"], d.reviewer).json()
    assert shown["reason"] == "sampled"


def test_the_queue_depth_and_oldest_age_are_exported(deployment: Deployment) -> None:
    d = deployment
    ask(d, "kb-held", "invent a pending one", status=202)
    labels = {"feature": "kb-held"}
    deadline = time.monotonic() + 5
    depth = 0.0
    while time.monotonic() < deadline:
        metrics = httpx.get(f"{d.gateway.base_url}/metrics", timeout=10).text
        depth = sample_value(metrics, "trivium_review_queue_depth", **labels) or 0.0
        if depth >= 1:
            break
        time.sleep(0.2)
    assert depth >= 1
    assert sample_value(metrics, "trivium_review_slo_seconds", **labels) == 60
    assert (sample_value(metrics, "trivium_review_oldest_pending_seconds", **labels) or -1) >= 0
    enqueued = {"feature": "kb-held", "reason": "held"}
    assert (sample_value(metrics, "trivium_reviews_enqueued_total", **enqueued) or 0) >= 1


def test_refusals_404_403_409_400_413(deployment: Deployment) -> None:
    d = deployment
    unknown = "rev_" + "0" * 28
    assert problem(decide(d, unknown, decision="approve")) == (404, "review_not_found", "id")
    assert problem(review(d, unknown, d.reviewer)) == (404, "review_not_found", "id")
    review_id = ask(d, "kb-held", "invent another rule", status=202)["review_id"]
    assert problem(decide(d, review_id, d.app, decision="approve"))[:2] == (
        403,
        "missing_scope",
    )
    assert review(d, review_id, d.product).status_code == 403  # neither review nor invoke
    assert problem(decide(d, review_id, decision="correct")) == (
        400,
        "invalid_input",
        "correction",
    )
    assert problem(decide(d, review_id, decision="approve", correction="x"))[2] == "correction"
    assert problem(decide(d, review_id, decision="maybe"))[2] == "decision"
    assert decide(d, review_id, decision="reject").status_code == 200
    again = decide(d, review_id, decision="approve")
    assert problem(again) == (409, "review_decided", "id")
    assert again.json()["reviewer"] == "alice-reviewer"
    with d.http() as http:
        huge = http.post(
            f"/v1/reviews/{review_id}:decide",
            content=b'{"decision": "correct", "correction": "' + b"x" * 70_000 + b'"}',
            headers={**d.reviewer, "content-type": "application/json"},
        )
        assert huge.status_code == 413
        malformed = http.post("/v1/reviews/rev_nope:decide", json={"decision": "approve"},
                              headers=d.reviewer)  # fmt: skip
        assert malformed.status_code == 400
        bad_status = http.get("/v1/reviews", params={"status": "lost"}, headers=d.reviewer)
        assert bad_status.status_code == 400


def test_the_decided_cases_export_as_a_dataset_version(deployment: Deployment) -> None:
    d = deployment
    review_id = ask(d, "kb-held", "invent an export case", status=202)["review_id"]
    right = "Refunds take five business days."
    assert decide(d, review_id, decision="correct", correction=right).status_code == 200
    exported = run_trivium(d.env, "reviews", "export", "kb-held", "--as-dataset", "kb-reviewed")
    assert exported.returncode == 0, exported.stderr
    assert "published kb-reviewed@1" in exported.stdout
    with d.http() as http:
        rows = http.get("/v1/datasets/kb-reviewed/rows", headers=ADMIN).json()["rows"]
    by_id = {row["id"]: row for row in rows}
    assert by_id[review_id]["expected"] == {"answer": right}
    assert by_id[review_id]["input"] == {"question": "invent an export case"}
    assert "review:corrected" in by_id[review_id]["tags"]
    approved = [row for row in rows if "review:approved" in row["tags"]]
    assert approved
    assert all(row["expected"]["answer"] == MADE_UP for row in approved)
    assert all("review:rejected" in row["tags"] for row in rows if "made up" in str(row))


def test_the_cli_lists_and_decides(deployment: Deployment) -> None:
    d = deployment
    review_id = ask(d, "kb-held", "invent a cli case", status=202)["review_id"]
    key = d.reviewer["authorization"].removeprefix("Bearer ")
    common = ["--gateway", d.gateway.base_url, "--api-key", key]
    listed = run_trivium(d.env, "reviews", "list", "--feature", "kb-held", "--json", *common)
    assert listed.returncode == 0, listed.stderr
    assert review_id in listed.stdout
    decided = run_trivium(d.env, "reviews", "decide", review_id, "approve", *common)
    assert decided.returncode == 0, decided.stderr
    assert "approve by alice-reviewer" in decided.stdout
    twice = run_trivium(d.env, "reviews", "decide", review_id, "reject", *common)
    assert twice.returncode == 1
    assert "409 review_decided" in twice.stderr


@pytest.mark.parametrize(
    ("block", "path"),
    [
        ("{sample_rate: 1.5}", "features.kb.review.sample_rate"),
        ("{slo_s: 1}", "features.kb.review.slo_s"),
        ("{sla: 3}", "features.kb.review.sla"),
    ],
)
def test_a_bad_review_block_is_refused_with_its_path(
    deployment: Deployment, block: str, path: str
) -> None:
    text = POLICY.format(url="http://127.0.0.1:9/v1").replace(
        "on_fail: flag}}\n", f"on_fail: flag}}\n    review: {block}\n"
    )
    text = text.replace("on_fail: flag}\n", f"on_fail: flag}}\n    review: {block}\n")
    with d_http(deployment) as http:
        answer = http.post(
            "/v1/policy:validate",
            content=text,
            headers={**ADMIN, "content-type": "application/yaml"},
        )
    assert answer.status_code == 422, answer.text
    assert [e["path"] for e in answer.json()["errors"]] == [path]


def d_http(d: Deployment) -> httpx.Client:
    return d.http()


# -- the reviewers' page, in a real headless Chromium ----------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Path:
    try:
        return find_chromium()
    except ChromiumNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.mark.timeout(900)  # the first run may install chromium; a warm run takes seconds
def test_the_review_page_in_chromium(
    deployment: Deployment, chromium: Path, tmp_path: Path
) -> None:
    d = deployment
    review_id = ask(d, "kb-held", "invent how refunds reach the card", status=202)["review_id"]
    base = d.gateway.base_url
    reviewer_key = d.reviewer["authorization"].removeprefix("Bearer ")
    app_key = d.app["authorization"].removeprefix("Bearer ")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=list(CHROMIUM_ARGS), timeout=30_000
        )
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            page = context.new_page()
            problems: list[str] = []
            requested: list[str] = []
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: requested.append(r.url))

            page.goto(f"{base}/reviews", wait_until="load")
            assert page.url == f"{base}/reviews/login"  # not signed in: the login form
            page.fill("input[name=key]", app_key)  # a key without the review scope
            page.click("button[type=submit] >> text=sign in")
            assert "not signed in" in page.inner_text("main")
            assert problems == ["console error: Failed to load resource: the server responded "
                                "with a status of 403 (Forbidden)"]  # fmt: skip
            problems.clear()
            page.fill("input[name=key]", reviewer_key)
            page.click("button[type=submit] >> text=sign in")
            assert page.url == f"{base}/reviews"
            (cookie,) = context.cookies()
            assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
                True,
                "Strict",
                "/reviews",
            )
            assert reviewer_key not in page.url

            page.click(f"a[href='/reviews/{review_id}']")
            assert page.url == f"{base}/reviews/{review_id}"
            marked = set(page.locator(".passage mark").all_inner_texts())
            assert marked == {"Refunds", "reach", "card"}  # the answer's words, found
            unsupported = page.locator(".unsupported").all_inner_texts()
            assert {"pigeon", "Tuesdays"} <= set(unsupported)  # said, in no passage
            assert "invent how refunds reach the card" in page.inner_text("main")
            assert page.evaluate("document.scripts.length") == 0
            shot = Path(os.environ.get("TRIVIUM_SCREENSHOT_DIR") or tmp_path) / "review-case.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
            colours = np.unique(np.asarray(imread(str(shot)))[..., :3].reshape(-1, 3), axis=0)
            assert len(colours) > 20, "a blank page"

            page.check("input[value=correct]")
            page.fill("textarea[name=correction]", "Refunds take five business days.")
            page.click("button >> text=decide")
            assert page.url == f"{base}/reviews/{review_id}", page.inner_text("body")
            assert "correct by alice-reviewer" in page.inner_text("main")
            assert problems == []
            assert all(url.startswith(base) for url in requested)  # nothing off-origin
        finally:
            browser.close()
    outcome = review(d, review_id, d.app).json()
    assert (outcome["status"], outcome["output"]) == (
        "corrected",
        "Refunds take five business days.",
    )


def test_the_page_refuses_a_decision_from_another_origin(deployment: Deployment) -> None:
    d = deployment
    review_id = ask(d, "kb-held", "invent a cross-site case", status=202)["review_id"]
    key = d.reviewer["authorization"].removeprefix("Bearer ")
    with d.http() as http:
        signed_in = http.post("/reviews/login", data={"key": key})
        assert signed_in.status_code == 303
        forged = http.post(
            f"/reviews/{review_id}/decide",
            data={"decision": "approve"},
            headers={"origin": "http://evil.example"},
        )
        assert forged.status_code == 403
        assert review(d, review_id, d.reviewer).json()["status"] == "pending"
        page = http.get(f"/reviews/{review_id}")
        assert page.status_code == 200
        assert "script-src" not in page.headers["content-security-policy"]
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
