"""The Grafana dashboard and the Prometheus rules against a REAL Prometheus scraping a real stack.

A dashboard that looks right but queries nothing is the failure this module exists to catch.
It starts a gateway (prompt, rag with groundedness, a cached feature, a fallback, a shadow, a
feature with no fallback on a dead upstream, a feature on the model service, a feature on an
upstream that pushes back) in `auth.mode: keys`, with three caller keys (one with generous
budgets that carries the traffic, one rate-limited to one feature, one whose day budget its
first answer spends), the real retriever, the real model service with the tiny GPT-2 of
the `tiny` fixture, three OpenAI-protocol upstreams, and the Debian `prometheus`
(tests/support/prometheus_server.py finds or installs it, and fails loudly when it cannot)
scraping all three services every second with deploy/prometheus/trivium-alerts.yaml loaded. It
drives the traffic in two rounds a scrape apart (so that every counter has moved between two
samples and every rate is non-zero), with upstream failures, an open circuit, an upstream
answering 503 and 429 (its concurrency limit shrinks) and calls shed at that limit, cache hits,
a rejected policy reload, and callers refused for every reason (no key, a bad key, a feature
or a scope the key lacks, its rate limit, its spent budget), then evaluates:

* every target of every panel of deploy/grafana/trivium-overview.json, with the dashboard's
  variables substituted ($feature and $route = All): each must succeed and return at least
  one finite sample;
* the dashboard's template variables: each must list values;
* every recording rule: its series must exist;
* every alert expression: it must parse, and each operand of its threshold comparisons and
  `and`/`or` must return data (the comparisons themselves are expected to be empty);
* /api/v1/rules: every group loaded, every rule health "ok"; and the alerts the traffic
  must trigger (reload failure, open circuit, the thrifty key near its budget) are active;
* the upstream signals: the pushing-back upstream's sheds, 503s and 429s are counted, its
  limit has shrunk and its circuit stayed closed;
* the caller signals: requests, tokens and cost per key name, every rejection reason counted
  exactly, and each key's budget and spend exported as the limiter read them from Redis.

No panel or rule is exempt.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import (
    ServiceProcess,
    publish_template,
    retriever_env,
    running,
    seed_collection,
    start_gateway,
    start_retriever,
    start_service,
    trivium_env,
)
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.prometheus_server import (
    PrometheusBinaries,
    PrometheusNotFoundError,
    PrometheusServer,
    find_prometheus,
)
from trivium.common.redis_server import RedisServerProcess, free_tcp_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "trivium-overview.json"
RULES = ROOT / "deploy" / "prometheus" / "trivium-alerts.yaml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "trivium-alerts.test.yaml"

ADMIN = {"authorization": "Bearer obs-admin"}
GRAFANA_VARIABLES = {
    # All selected: the variables' allValue.
    "feature": ".*",
    "route": ".*",
    "key": ".*",
    # The default: production traffic (the stack's traffic is all production).
    "traffic": "production",
    # Grafana's built-ins, sized for a 1 s scrape interval and a test a minute long.
    "__rate_interval": "30s",
    "__interval": "5s",
    "__range": "5m",
}
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
TEMPLATES = {
    "ask": ("Question: {{ question }}", ["question"]),
    "answer": (
        "Passages:\n{% for p in passages %}[{{ p.index }}] {{ p.text }}\n{% endfor %}"
        "Question: {{ question }}",
        ["passages", "question"],
    ),
}

# Series that carry a `feature` (and a `route`) label: panels must filter them by the
# dashboard's variables. Histograms are listed by family name.
FEATURE_METRICS = {
    "trivium_requests_total",
    "trivium_request_duration_seconds",
    "trivium_stage_duration_seconds",
    "trivium_gateway_overhead_seconds",
    "trivium_tokens_total",
    "trivium_cost_usd_total",
    "trivium_fallbacks_total",
    "trivium_cache_requests_total",
    "trivium_groundedness",
    "trivium_verdicts_total",
    "trivium_shadow_requests_total",
    "trivium_rollout_step",
}
ROUTE_METRICS = {
    "trivium_requests_total",
    "trivium_request_duration_seconds",
    "trivium_tokens_total",
    "trivium_cost_usd_total",
}
# Request KPIs labelled `traffic` (production | trial): panels must filter them by the
# dashboard's `traffic` variable, so a trial's forced arms never mix into production's.
TRAFFIC_METRICS = {
    "trivium_requests_total",
    "trivium_request_duration_seconds",
    "trivium_stage_duration_seconds",
    "trivium_tokens_total",
    "trivium_cost_usd_total",
    "trivium_fallbacks_total",
    "trivium_groundedness",
    "trivium_verdicts_total",
}
# Series per caller key name: panels must filter them by the dashboard's `key` variable.
KEY_METRICS = {
    "trivium_caller_requests_total",
    "trivium_caller_tokens_total",
    "trivium_caller_cost_usd_total",
    "trivium_caller_budget_usd",
    "trivium_caller_spend_usd",
}
# Recording rules of per-key series: per key, not per feature.
KEY_RECORDS = {"trivium:caller_budget_used_ratio"}
UNLABELLED_RECORDS = {"trivium:cost_budget_usd_per_hour:default"}
# The gateway's callers (POST /v1/keys). `obs-app` carries every request but those below.
CALLER_KEYS: dict[str, dict[str, Any]] = {
    "obs-app": {
        "features": ["*"],
        "scopes": ["invoke", "feedback"],
        "budget_usd_day": 1000.0,
        "budget_usd_month": 10000.0,
    },
    # One request a minute, on `ask` only: its second call is rate_limited, `kb` forbidden.
    "obs-narrow": {"features": ["ask"], "rpm": 1},
    # Its first answer spends the day's budget: budget_exceeded from then on, and alerted.
    "obs-thrifty": {"features": ["ask"], "budget_usd_day": 0.001},
}


def policy_yaml(hosted: str, backup: str, busy: str, model: str, dead: str) -> str:
    return f"""
version: 3
upstreams:
  hosted:
    url: "{hosted}"
    model: hosted-model
    price: {{prompt_per_1k: 1.0, completion_per_1k: 2.0}}
  backup:
    url: "{backup}"
    model: backup-model
    price: {{prompt_per_1k: 0.5, completion_per_1k: 1.0}}
  busy:
    url: "{busy}"
    model: busy-model
    price: {{prompt_per_1k: 0.5, completion_per_1k: 1.0}}
  local:
    url: "{model}/v1"
    model: base
    price: {{gpu_hour_usd: 3.6, tokens_per_hour: 3600000}}
  dead: {{url: "{dead}", model: gone, connect_timeout_s: 0.5}}
  gone: {{url: "{dead}", model: gone-too, connect_timeout_s: 0.5}}
features:
  ask:
    route: prompt
    template: ask@production
    upstream: hosted
  kb:
    route: rag
    template: answer@production
    upstream: hosted
    retrieval: {{collection: kb, k: 2, mode: sparse, min_groundedness: 0.5, on_fail: flag}}
  local:
    route: prompt
    template: ask@production
    upstream: local
    limits: {{max_tokens: 4}}
  cached:
    route: prompt
    template: ask@production
    upstream: backup
    cache: {{ttl_s: 300}}
  shadowed:
    route: prompt
    template: ask@production
    upstream: hosted
    variants: {{main: {{weight: 1}}, challenger: {{weight: 0, upstream: backup}}}}
    shadow: [challenger]
  resilient:
    route: prompt
    template: ask@production
    upstream: dead
    variants: {{main: {{weight: 1}}, spare: {{weight: 0, upstream: backup}}}}
    fallback: [spare]
  lonely:
    route: prompt
    template: ask@production
    upstream: gone
  queued:
    route: prompt
    template: ask@production
    upstream: busy
    variants: {{main: {{weight: 1}}, spare: {{weight: 0, upstream: backup}}}}
    fallback: [spare]
  experiment:
    route: prompt
    template: ask@production
    upstream: hosted
    variants: {{control: {{weight: 1}}, challenger: {{weight: 1, upstream: backup}}}}
  canary-ask:
    route: prompt
    template: ask@production
    upstream: hosted
    variants:
      control: {{weight: 1}}
      canary: {{weight: 0, upstream: backup, rollout: {{steps: [10, 100]}}}}
"""


@dataclass
class Stack:
    gateway: ServiceProcess
    retriever: ServiceProcess
    model: ServiceProcess
    prometheus: PrometheusServer
    binaries: PrometheusBinaries
    policy_file: Path
    busy: OpenAIUpstream
    keys: dict[str, str]

    def client(self, key: str | None = "obs-app") -> httpx.Client:
        """A client calling as caller key `key` (None: no credential)."""
        headers = {} if key is None else {"authorization": f"Bearer {self.keys[key]}"}
        return httpx.Client(base_url=self.gateway.base_url, timeout=30, headers=headers)


@pytest.fixture(scope="module")
def binaries() -> PrometheusBinaries:
    try:
        return find_prometheus()
    except PrometheusNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServerProcess,
    tiny: dict[str, Path],
    binaries: PrometheusBinaries,
) -> Iterator[Stack]:
    model_tmp = tmp_path_factory.mktemp("obs-model")
    model_env = trivium_env(
        model_tmp,
        redis_server.url,
        TRIVIUM_MODEL__TRANSFORMERS__BASE_MODEL_DIR=str(tiny["base"]),
        TRIVIUM_MODEL__TRANSFORMERS__TORCH_THREADS="1",
    )
    retriever_tmp = tmp_path_factory.mktemp("obs-retriever")
    gateway_tmp = tmp_path_factory.mktemp("obs-gateway")
    policy_file = gateway_tmp / "policy.yaml"
    dead = f"http://127.0.0.1:{free_tcp_port()}/v1"
    with ExitStack() as stack:
        hosted = stack.enter_context(OpenAIUpstream(model="hosted-model", record=False))
        backup = stack.enter_context(OpenAIUpstream(model="backup-model", record=False))
        busy = stack.enter_context(OpenAIUpstream(model="busy-model", record=False))
        # The two slow starters (torch + the tiny model, the embedder) side by side.
        with ThreadPoolExecutor(2) as pool:
            model_start = pool.submit(
                start_service, model_tmp, ["model", "serve"], "MODEL", model_env
            )
            retriever_start = pool.submit(
                start_retriever, retriever_tmp, retriever_env(retriever_tmp) | SMALL_DRIFT
            )
            model = stack.enter_context(running(model_start.result()))
            retriever = stack.enter_context(running(retriever_start.result()))
        seed_collection(retriever, "kb", KB)
        policy_file.write_text(policy_yaml(hosted.url, backup.url, busy.url, model.base_url, dead))
        gateway_env = trivium_env(
            gateway_tmp,
            redis_server.url,
            TRIVIUM_REGISTRY__KEY_PREFIX=f"t{uuid.uuid4().hex[:12]}",
            TRIVIUM_GATEWAY__POLICY_FILE=str(policy_file),
            TRIVIUM_GATEWAY__POLICY_POLL_S="3600",
            TRIVIUM_GATEWAY__AUTH__MODE="keys",
            TRIVIUM_GATEWAY__AUTH__PEPPER="obs-pepper",
            # obs-narrow's one request per window: the two rounds fall in the same window.
            TRIVIUM_GATEWAY__LIMITS__WINDOW_S="600",
            TRIVIUM_GATEWAY__ADMIN_TOKENS='{"ops": "obs-admin"}',
            TRIVIUM_GATEWAY__RETRIEVER__URL=retriever.base_url,
            # Drift judged after 20 + 10 answers, exported every second (the Drift row).
            TRIVIUM_GATEWAY__DRIFT__BASELINE_SIZE="20",
            TRIVIUM_GATEWAY__DRIFT__WINDOW_SIZE="20",
            TRIVIUM_GATEWAY__DRIFT__MIN_WINDOW="10",
            TRIVIUM_GATEWAY__DRIFT__POLL_S="1",
            TRIVIUM_GATEWAY__UPSTREAM__MAX_RETRIES="0",
            TRIVIUM_GATEWAY__UPSTREAM__BREAKER_FAILURES="2",
            TRIVIUM_GATEWAY__UPSTREAM__BREAKER_OPEN_S="120",
            # One 503 or 429 cuts a limit to a tenth: two take `busy` from 32 to 1.
            TRIVIUM_GATEWAY__UPSTREAM__CONCURRENCY_MIN="1",
            TRIVIUM_GATEWAY__UPSTREAM__CONCURRENCY_DECREASE_RATIO="0.1",
        )
        gateway = stack.enter_context(running(start_gateway(gateway_tmp, gateway_env)))
        keys: dict[str, str] = {}
        with gateway.client() as http:
            for name, (body, variables) in TEMPLATES.items():
                publish_template(http, name, body, variables, ADMIN)
            for name, spec in CALLER_KEYS.items():
                created = http.post(
                    "/v1/keys", json={"name": name, "owner": "obs", **spec}, headers=ADMIN
                )
                assert created.status_code == 201, created.text
                keys[name] = created.json()["key"]
        prometheus = stack.enter_context(
            PrometheusServer(
                binaries,
                tmp_path_factory.mktemp("obs-prometheus"),
                {
                    "trivium-gateway": [gateway.base_url],
                    "trivium-retriever": [retriever.base_url],
                    "trivium-model": [model.base_url],
                },
                rule_files=[RULES],
                interval_s=1.0,
            )
        )
        yield Stack(gateway, retriever, model, prometheus, binaries, policy_file, busy, keys)


def invoke(http: httpx.Client, feature: str, question: str) -> httpx.Response:
    return http.post(
        f"/v1/features/{feature}/invoke", json={"input": {"question": question}, "temperature": 0}
    )


SMALL_DRIFT = {
    "TRIVIUM_RETRIEVER__DRIFT__BASELINE_SIZE": "20",
    "TRIVIUM_RETRIEVER__DRIFT__WINDOW_SIZE": "20",
    "TRIVIUM_RETRIEVER__DRIFT__MIN_WINDOW": "10",
}


def drive_round(stack: Stack, round_no: int) -> None:
    """One round of every kind of traffic the dashboard and the alerts look at."""
    with stack.client() as http:
        for i in range(3):
            assert invoke(http, "ask", f"round {round_no} question {i}").status_code == 200
        for question in ("How do refunds reach my card?", "How do I reset my password?"):
            body = invoke(http, "kb", question).json()
            assert body["verdict"] in ("passed", "flagged"), body
        for i in range(15):  # enough kb answers and searches for a drift baseline and window
            assert invoke(http, "kb", f"round {round_no} refunds {i}?").status_code == 200
        for i in range(2):
            response = invoke(http, "local", f"round {round_no} local {i}")
            assert response.status_code == 200, response.text
            assert response.json()["cost_usd"] > 0
        cached = [invoke(http, "cached", f"same question {round_no}").json() for _ in range(3)]
        assert [c["cached"] for c in cached] == [False, True, True], cached
        for i in range(2):
            assert invoke(http, "shadowed", f"shadow {i}").status_code == 200
        for _ in range(3):
            body = invoke(http, "resilient", "still there?").json()
            assert body["fallback"]["from"] == "prompt", body
        for _ in range(3):
            assert invoke(http, "lonely", "anyone?").status_code == 503
        send_feedback(http, round_no)
        push_back_then_shed(stack, http)
        # A rejected policy file: the old one keeps serving (and the reload is counted).
        good = stack.policy_file.read_text()
        stack.policy_file.write_text(good.replace("route: rag", "route: telepathy", 1))
        try:
            assert http.post("/v1/policy:reload", headers=ADMIN).status_code == 422
        finally:
            stack.policy_file.write_text(good)
        assert http.post("/v1/policy:reload", headers=ADMIN).status_code == 200
        # A key without the `read` scope on a read route.
        assert problem_code(http.get("/v1/policy"), 403) == "missing_scope"
    refuse_callers(stack, round_no)


# Users of `experiment` whose sticky assignment (by user) covers both of its variants.
EXPERIMENT_USERS = [f"obs-user-{i}" for i in range(8)]


def send_feedback(http: httpx.Client, round_no: int) -> None:
    """`experiment`'s answers, for the users above, and the product's feedback on each: every
    kind (completed both ways, ratings, thumbs, a correction, an escalation), so the row
    "Quality from the product" and TriviumVariantCompletionBelowControl have data per
    variant, `control` included."""
    variants: set[str] = set()
    for i, user in enumerate(EXPERIMENT_USERS):
        answer = http.post(
            "/v1/features/experiment/invoke",
            json={"input": {"question": f"round {round_no} task {i}"}, "user": user},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        variants.add(body["variant"])
        events: list[dict[str, Any]] = [
            {"kind": "completed", "value": i % 3 != 0},
            {"kind": "rating", "value": 2 + i % 4},
            {"kind": "thumbs", "value": "up" if i % 2 else "down"},
        ]
        if i % 4 == 1:
            events.append({"kind": "corrected", "correction": f"the right answer {i}"})
        if i % 4 == 2:
            events.append({"kind": "escalated", "value": True})
        for event in events:
            sent = http.post("/v1/feedback", json={"answer_id": body["id"], **event})
            assert sent.status_code == 200, sent.text
    assert variants == {"control", "challenger"}, variants


def problem_code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    code: str = response.json()["code"]
    return code


def refuse_callers(stack: Stack, round_no: int) -> None:
    """Refusals for each reason the authenticator and the limiter count (forbidden_scope is
    drive_round's), each a real request: no key, a bad key, a feature the key lacks, the
    key's rate limit, its spent budget. `obs-narrow`'s and `obs-thrifty`'s first call of the
    module is admitted (and the thrifty one's answer spends its day's budget). Per round:
    unauthenticated 2, forbidden_feature 1, rate_limited and budget_exceeded 1, then 2."""
    with stack.client(None) as anonymous:
        assert problem_code(invoke(anonymous, "ask", "who am I?"), 401) == "unauthorized"
        forged = {"authorization": "Bearer trv_zzzzzzzzzzzz_" + "A" * 43}
        refused = anonymous.post(
            "/v1/features/ask/invoke", json={"input": {"question": "?"}}, headers=forged
        )
        assert problem_code(refused, 401) == "unauthorized"
    with stack.client("obs-narrow") as narrow:
        assert problem_code(invoke(narrow, "kb", "not mine"), 403) == "forbidden_feature"
        first = invoke(narrow, "ask", f"narrow {round_no}")
        if round_no == 1:
            assert first.status_code == 200, first.text
        else:  # the same window: the first round's request still fills it
            assert problem_code(first, 429) == "rate_limited"
        assert problem_code(invoke(narrow, "ask", "again"), 429) == "rate_limited"
    with stack.client("obs-thrifty") as thrifty:
        first = invoke(thrifty, "ask", f"thrifty {round_no}")
        if round_no == 1:
            assert first.status_code == 200, first.text
            assert first.json()["cost_usd"] > CALLER_KEYS["obs-thrifty"]["budget_usd_day"]
        else:
            assert problem_code(first, 429) == "budget_exceeded"
        assert problem_code(invoke(thrifty, "ask", "more"), 429) == "budget_exceeded"


def push_back_then_shed(stack: Stack, http: httpx.Client) -> None:
    """`busy` answers 503 "queue full", then 429, each with Retry-After: its concurrency limit
    falls to 1 and its circuit stays closed. Then three calls at once against its slow answer:
    one is admitted, two are shed (overloaded). Every refused call falls back to `backup`."""
    stack.busy.fail_next(1, status=503, retry_after=1)
    stack.busy.fail_next(1, status=429, retry_after=1)
    reasons = [invoke(http, "queued", f"room {i}?").json()["fallback"]["reason"] for i in (1, 2)]
    assert reasons == ["backpressure", "rate_limited"], reasons
    stack.busy.delay_s = 1.0
    try:
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda i: invoke(http, "queued", f"at once {i}"), range(3)))
    finally:
        stack.busy.delay_s = 0.0
    assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
    fallbacks = sorted(str((a.json().get("fallback") or {}).get("reason")) for a in answers)
    assert fallbacks == ["None", "overloaded", "overloaded"], fallbacks


@pytest.fixture(scope="module")
def driven(stack: Stack) -> Stack:
    """Two rounds of traffic a few scrapes apart, then wait until Prometheus has the second
    round and every rule group has evaluated over it."""
    drive_round(stack, 1)
    stack.prometheus.wait_for_scrapes(since=time.time(), scrapes=2)
    drive_round(stack, 2)
    stack.prometheus.wait_for_scrapes(since=time.time(), scrapes=2)
    return stack


# -- PromQL helpers -----------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def substitute(expr: str) -> str:
    """A Grafana query as Grafana would send it; an unknown variable is an error."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in GRAFANA_VARIABLES, f"unknown dashboard variable ${name} in {expr!r}"
        return GRAFANA_VARIABLES[name]

    return _VARIABLE.sub(one, expr)


_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
_SET_OPERATORS = ("and", "or")
_IDENTIFIER = re.compile(r"[A-Za-z0-9_:]")
_MODIFIERS = re.compile(
    r"^\s*(?:bool\b\s*)?(?:(?:on|ignoring)\s*\([^)]*\)\s*)?"
    r"(?:(?:group_left|group_right)\b\s*(?:\([^)]*\))?\s*)?"
)
_CONSTANT = re.compile(r"^[\d\s.eE+\-*/()]+$")


def _operator_at(expr: str, i: int) -> str | None:
    for op in _COMPARISONS:
        if expr.startswith(op, i):
            return op
    for word in _SET_OPERATORS:
        end = i + len(word)
        if (
            expr.startswith(word, i)
            and (i == 0 or not _IDENTIFIER.match(expr[i - 1]))
            and (end == len(expr) or not _IDENTIFIER.match(expr[end]))
        ):
            return word
    return None


def split_top_level(expr: str) -> list[str]:
    """`expr` cut at its top-level comparisons and `and`/`or` (not inside (), [], {} or
    quotes). `unless` and arithmetic stay inside an operand."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    start = i = 0
    while i < len(expr):
        c = expr[i]
        if quote is not None:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and (op := _operator_at(expr, i)) is not None:
            parts.append(expr[start:i])
            i += len(op)
            start = i
            continue
        i += 1
    parts.append(expr[start:])
    return parts


def _wrapped(expr: str) -> bool:
    """Whether the whole of `expr` is one parenthesised group."""
    if not (expr.startswith("(") and expr.endswith(")")):
        return False
    depth = 0
    for i, c in enumerate(expr):
        depth += c == "("
        depth -= c == ")"
        if depth == 0:
            return i == len(expr) - 1
    return False


def signal_operands(expr: str) -> list[str]:
    """The non-constant operands of `expr`'s threshold comparisons and `and`/`or`: what an
    alert measures, without its thresholds."""
    leaves: list[str] = []
    for part in split_top_level(expr):
        part = _MODIFIERS.sub("", part, count=1).strip()
        if _wrapped(part):
            leaves += signal_operands(part[1:-1].strip())
        elif part and not _CONSTANT.match(part):
            leaves.append(part)
    return leaves


def test_the_operand_splitter() -> None:
    assert signal_operands("a:b:rate1h > 14.4\nand on (feature)\na:b:rate5m > (14.4 * 0.01)") == [
        "a:b:rate1h",
        "a:b:rate5m",
    ]
    assert signal_operands('max by (x) (m{le=">"}) == 2') == ['max by (x) (m{le=">"})']
    assert signal_operands("x > on (f) group_left () y") == ["x", "y"]
    assert signal_operands("increase(c[10m]) > 0 or (c unless c offset 10m)") == [
        "increase(c[10m])",
        "c unless c offset 10m",
    ]
    assert signal_operands("sum(rate(orders_total[5m])) >= bool 3") == [
        "sum(rate(orders_total[5m]))"
    ]


def assert_has_data(prometheus: PrometheusServer, expr: str, what: str) -> list[Any]:
    answer = prometheus.query(expr)
    assert answer.get("status") == "success", f"{what}: {answer.get('error')}\n  query: {expr}"
    result: list[Any] = answer["data"]["result"]
    if answer["data"]["resultType"] == "scalar":
        result = [{"value": result}]
    assert result, f"{what}: the query returned no data\n  query: {expr}"
    return result


def _finite(sample: dict[str, Any]) -> bool:
    return math.isfinite(float(sample["value"][1]))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels += panel.get("panels", [])  # collapsed rows hold their panels
    return [p for p in panels if p["type"] != "row"]


def rule_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded


# -- no stack needed ---------------------------------------------------------------------------


def test_promtool_accepts_the_rules_and_their_unit_tests(binaries: PrometheusBinaries) -> None:
    print(f"using {binaries.prometheus} ({binaries.version()}) and {binaries.promtool}")
    checked = binaries.promtool_run("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = binaries.promtool_run("test", "rules", str(RULES_TEST))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_production_kpi_rules_leave_trial_traffic_out() -> None:
    """The request KPIs the alerts read select production traffic; spend counts every call."""
    selector = re.compile(r"(trivium_[a-z_]+)(\{[^}]*\})?")
    for group in rule_file()["groups"]:
        for rule in group["rules"]:
            name = rule.get("record") or rule["alert"]
            for series, braces in selector.findall(rule["expr"]):
                family = re.sub(r"_(bucket|sum|count)$", "", series)
                if family in TRAFFIC_METRICS - {"trivium_cost_usd_total"}:
                    if name == "trivium:cost_budget_usd_per_hour":
                        continue  # only its feature label is read
                    assert 'traffic="production"' in braces, f"{name}: {series} mixes in trials"


def test_every_alert_has_for_severity_summary_description_and_runbook() -> None:
    alerts = [r for g in rule_file()["groups"] for r in g["rules"] if "alert" in r]
    names = {a["alert"] for a in alerts}
    for expected in (
        "TriviumLatencySLOFastBurn",
        "TriviumFeatureErrorRate",
        "TriviumFallbackSpike",
        "TriviumGatewayOverheadHigh",
        "TriviumCostOverBudget",
        "TriviumPolicyReloadFailed",
        "TriviumUpstreamCircuitOpen",
        "TriviumUpstreamShedding",
        "TriviumRetrieverCircuitOpen",
    ):
        assert expected in names
    for alert in alerts:
        assert "for" in alert, alert["alert"]
        assert alert["labels"]["severity"] in ("critical", "warning", "info"), alert["alert"]
        for key in ("summary", "description", "runbook"):
            assert alert["annotations"].get(key), f"{alert['alert']} has no {key}"


def test_the_dashboard_is_provisionable_and_filters_by_feature_and_route() -> None:
    board = dashboard()
    assert "__inputs" not in board
    assert "__requires" not in board
    assert board["uid"]
    assert board["title"]
    assert board["schemaVersion"] >= 39
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    feature = variables["feature"]
    assert feature["definition"] == "label_values(trivium_requests_total, feature)"
    assert variables["key"]["definition"] == "label_values(trivium_caller_requests_total, key)"
    for variable in (feature, variables["route"], variables["key"]):
        assert variable["multi"], variable["name"]
        assert variable["includeAll"], variable["name"]
        assert variable["allValue"] == ".*", variable["name"]
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    traffic = variables["traffic"]
    assert traffic["type"] == "custom"
    assert traffic["query"] == "production,trial"
    assert traffic["current"]["value"] == "production"
    for variable in (feature, variables["route"], variables["key"]):
        assert variable["datasource"] == datasource
    selector = re.compile(r"(trivium_[a-z_]+|trivium:[a-z0-9_:]+)(\{[^}]*\})?")
    for panel in dashboard_panels():
        title = panel["title"]
        assert panel["datasource"] == datasource, title
        assert panel["targets"], f"{title}: no queries"
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys(), title
        for target in panel["targets"]:
            assert target["datasource"] == datasource, title
            for name, braces in selector.findall(target["expr"]):
                family = re.sub(r"_(bucket|sum|count)$", "", name)
                feature_series = family in FEATURE_METRICS or (
                    name.startswith("trivium:")
                    and name not in UNLABELLED_RECORDS
                    and name not in KEY_RECORDS
                )
                if feature_series:
                    assert 'feature=~"$feature"' in braces, f"{title}: {name} ignores $feature"
                if family in ROUTE_METRICS:
                    assert 'route=~"$route"' in braces, f"{title}: {name} ignores $route"
                if family in TRAFFIC_METRICS:
                    assert 'traffic=~"$traffic"' in braces, f"{title}: {name} ignores $traffic"
                if family in KEY_METRICS or name in KEY_RECORDS:
                    assert 'key=~"$key"' in braces, f"{title}: {name} ignores $key"


# -- against the running stack ---------------------------------------------------------------------


def test_prometheus_scrapes_all_three_services(driven: Stack) -> None:
    up = assert_has_data(driven.prometheus, "up", "up")
    assert {s["metric"]["job"]: s["value"][1] for s in up} == {
        "trivium-gateway": "1",
        "trivium-retriever": "1",
        "trivium-model": "1",
    }


def test_every_dashboard_query_returns_data(driven: Stack) -> None:
    failures: list[str] = []
    count = 0
    for panel in dashboard_panels():
        for target in panel["targets"]:
            count += 1
            expr = substitute(target["expr"])
            what = f"panel {panel['title']!r} target {target['refId']}"
            try:
                result = assert_has_data(driven.prometheus, expr, what)
            except AssertionError as exc:
                failures.append(str(exc))
                continue
            if not any(_finite(sample) for sample in result):
                failures.append(f"{what}: only NaN/Inf samples\n  query: {expr}\n  {result}")
    assert not failures, f"{len(failures)} of {count} dashboard queries failed:\n" + "\n".join(
        failures
    )
    assert count >= 64


def test_every_dashboard_variable_lists_values(driven: Stack) -> None:
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
        assert match, f"${variable['name']}: unsupported query {variable['definition']}"
        series, label = substitute(match.group(1)), match.group(2)
        result = assert_has_data(
            driven.prometheus, f"count by ({label}) ({series})", f"${variable['name']}"
        )
        values = {s["metric"][label] for s in result}
        if variable["name"] == "feature":
            assert {"ask", "kb", "local", "cached", "resilient", "lonely"} <= values
        if variable["name"] == "route":
            assert {"prompt", "rag"} <= values
        if variable["name"] == "key":
            assert values == set(CALLER_KEYS), values  # names only: never an id or a secret


def test_rule_groups_are_loaded_and_healthy(driven: Stack) -> None:
    expected = {g["name"]: len(g["rules"]) for g in rule_file()["groups"]}
    groups = driven.prometheus.rule_groups()
    assert {g["name"]: len(g["rules"]) for g in groups} == expected
    for group in groups:
        for rule in group["rules"]:
            name = rule["name"]
            assert rule["health"] == "ok", f"{group['name']}/{name}: {rule.get('lastError')}"


def test_every_recording_rule_has_data(driven: Stack) -> None:
    records = [r["record"] for g in rule_file()["groups"] for r in g["rules"] if "record" in r]
    assert len(records) >= 9
    for record in records:
        assert_has_data(driven.prometheus, record, f"recording rule {record}")


def test_every_alert_expression_parses_and_measures_something(driven: Stack) -> None:
    alerts = [r for g in rule_file()["groups"] for r in g["rules"] if "alert" in r]
    for alert in alerts:
        name, expr = alert["alert"], alert["expr"].strip()
        whole = driven.prometheus.query(expr)
        assert whole.get("status") == "success", f"{name}: {whole.get('error')}"
        operands = signal_operands(expr)
        assert operands, f"{name}: nothing but constants in {expr!r}"
        for operand in operands:
            assert_has_data(driven.prometheus, operand, f"alert {name} operand")


def test_the_traffic_triggers_the_reload_failure_and_open_circuit_alerts(driven: Stack) -> None:
    wanted = {
        ("TriviumPolicyReloadFailed", None),
        ("TriviumUpstreamCircuitOpen", "dead"),
        ("TriviumUpstreamCircuitOpen", "gone"),
    }
    deadline = time.monotonic() + 10
    while True:
        active = {
            (a["labels"]["alertname"], a["labels"].get("upstream"))
            for a in driven.prometheus.alerts()
            if a["state"] in ("pending", "firing")
        }
        if wanted <= active:
            break
        assert time.monotonic() < deadline, f"active alerts: {active}, wanted {wanted}"
        time.sleep(0.5)
    # Nothing fired that the traffic does not explain: the hosted upstreams never failed, and
    # `busy` only pushed back, which never opens a circuit.
    assert not {a for a in active if a[0] == "TriviumUpstreamCircuitOpen"} - wanted
    assert ("TriviumRetrieverCircuitOpen", None) not in active


def _by_label(prometheus: PrometheusServer, expr: str, label: str) -> dict[str, float]:
    samples = assert_has_data(prometheus, expr, expr)
    return {s["metric"][label]: float(s["value"][1]) for s in samples}


def test_the_upstream_signals_show_push_back_and_sheds(driven: Stack) -> None:
    """What the Upstreams row and TriviumUpstreamShedding read, after two rounds of
    `push_back_then_shed`: counted by kind, the limit cut, the circuit closed."""
    prometheus = driven.prometheus
    kinds = _by_label(prometheus, 'trivium_upstream_errors_total{upstream="busy"}', "kind")
    assert kinds["backpressure"] == 2, kinds
    assert kinds["rate_limited"] == 2, kinds
    assert kinds["overloaded"] == 4, kinds
    assert kinds["circuit_open"] == 0, kinds
    limits = _by_label(prometheus, "trivium_upstream_concurrency_limit", "upstream")
    assert limits["hosted"] == 32, limits  # concurrency_initial: it never pushed back
    assert limits["busy"] < 32, limits
    in_flight = _by_label(prometheus, "trivium_upstream_in_flight", "upstream")
    assert in_flight["busy"] == 0, in_flight
    circuits = _by_label(prometheus, "trivium_upstream_circuit_state", "upstream")
    assert circuits["busy"] == 0, circuits
    shed = _by_label(prometheus, "trivium:upstream_shed_ratio:rate5m", "upstream")
    assert shed["busy"] > 0, shed
    retriever = assert_has_data(prometheus, "trivium_retriever_client_circuit_state", "retriever")
    assert [float(s["value"][1]) for s in retriever] == [0.0]


def test_the_caller_signals_count_keys_rejections_and_budgets(driven: Stack) -> None:
    """What the Callers row and TriviumCallerNearBudget read, after two rounds of traffic:
    per key name, every refusal by its reason, the budgets and Redis's spend."""
    prometheus = driven.prometheus
    reasons = _by_label(prometheus, "trivium_caller_rejections_total", "reason")
    assert reasons == {
        "unauthenticated": 4,
        "forbidden_feature": 2,
        "forbidden_scope": 2,
        "rate_limited": 3,
        "budget_exceeded": 3,
    }, reasons
    requests = _by_label(
        prometheus, 'sum by (key) (trivium_caller_requests_total{status="ok"})', "key"
    )
    assert requests["obs-narrow"] == 1, requests
    assert requests["obs-thrifty"] == 1, requests
    # 35 answered per round (lonely: 503s; 15 kb ones for drift), and experiment's answers
    assert requests["obs-app"] == 2 * (35 + len(EXPERIMENT_USERS)), requests
    rejected = _by_label(
        prometheus, 'sum by (key) (trivium_caller_requests_total{status="rejected"})', "key"
    )
    assert rejected == {"obs-narrow": 3, "obs-thrifty": 3}, rejected
    cost = _by_label(prometheus, "trivium_caller_cost_usd_total", "key")
    assert cost["obs-app"] > 0, cost
    budgets = _by_label(prometheus, 'trivium_caller_budget_usd{period="day"}', "key")
    assert budgets == {"obs-app": 1000.0, "obs-thrifty": 0.001}, budgets  # obs-narrow has none
    used = _by_label(prometheus, 'trivium:caller_budget_used_ratio{period="day"}', "key")
    assert used["obs-thrifty"] >= 1, used  # its first answer's cost, read back from Redis
    assert 0 < used["obs-app"] < 0.8, used
    degraded = _by_label(prometheus, "trivium_limiter_degraded_total", "policy")
    assert degraded == {"fail_open": 0, "fail_closed": 0}, degraded  # Redis never went away


def test_the_key_over_its_budget_is_alerted_and_no_other(driven: Stack) -> None:
    deadline = time.monotonic() + 10
    while True:
        near = {
            (a["labels"]["key"], a["labels"]["period"])
            for a in driven.prometheus.alerts()
            if a["labels"]["alertname"] == "TriviumCallerNearBudget"
            and a["state"] in ("pending", "firing")
        }
        if near:
            break
        assert time.monotonic() < deadline, "TriviumCallerNearBudget never became active"
        time.sleep(0.5)
    assert near == {("obs-thrifty", "day")}, near
