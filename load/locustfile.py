"""Load test for the Trivium gateway: a realistic mix of feature requests, with per-route KPIs.

Each simulated user is one end user of the product (a stable `user` id, so that variant
assignment is sticky, as with real traffic) who calls the features of the mix, each one a
weighted task: by default docs-qa 50, ticket-triage 35, marketing-copy 15 (`trivium up`'s demo
policy). A share of the users (`--trivium-openai-share`) call `POST /v1/chat/completions`
with `model` = feature, the others the native `POST /v1/features/{feature}/invoke`. Request
bodies come from `load/payloads/<feature>.jsonl`: one JSON object a line, with `input`
(template variables) or `messages` (a chat), and optionally `max_tokens`/`temperature`.

Every response is validated: 200, JSON, the feature's own name, a `route`, and an `output`
(null only when the answer was withheld). Anything else is a failure named by its status and
problem code; a 503 says whether the gateway sent Retry-After (overload, open circuit).

From each valid answer's body, extra entries go into Locust's statistics (Type `TRIVIUM`), so
they land in the console table and the CSVs next to the HTTP rows (but not in the Aggregated
row, which stays the HTTP requests'):

- `route:<route>`: the gateway's own time (`timings_ms.total`); its size column is tokens;
- `stage:<stage>`: each stage the road ran (`retrieve`, `rerank`, `render`, `generate`, `verify`);
- `fallback:<from>-><to> (<reason>)`, `cache:hit`, `verdict:<passed|flagged|withheld>` and
  `variant:<feature>/<variant>`: counts (their time is the request's latency as seen here).

At the end, cost and tokens per feature and route are printed and, with `--csv PREFIX`, written
to `PREFIX_trivium.json` (merged across workers in distributed runs).

Options (command line, `load/locust.conf`, or the environment variable in brackets):

- `--trivium-mix` [TRIVIUM_LOAD_MIX]: `feature=weight,...` (`feature=weight:payloads` to use
  another payload file), or the path of a YAML/JSON file
  `{features: {docs-qa: 50, support-kb: {weight: 20, payloads: docs-qa}}}`;
- `--trivium-payloads` [TRIVIUM_LOAD_PAYLOADS]: the payload folder (default: beside this file);
- `--trivium-openai-share` [TRIVIUM_LOAD_OPENAI_SHARE]: share of users on the OpenAI route;
- `--trivium-feedback-share` [TRIVIUM_LOAD_FEEDBACK_SHARE]: share of answers the user then
  reports on (`POST /v1/feedback`, the Locust row `feedback`; a kind chosen at random; the key
  needs the `feedback` scope), default 0.3;
- `--trivium-wait` [TRIVIUM_LOAD_WAIT]: `min,max` think time between requests, in seconds;
- `--trivium-user-prefix` [TRIVIUM_LOAD_USER_PREFIX]: prefix of the stable user ids;
- `--trivium-api-key` [TRIVIUM_LOAD_API_KEY]: the gateway API key (`trv_...`, scopes `invoke`
  and `read`), sent as `Authorization: Bearer`; `make load` passes the demo key of
  `trivium up` (`var/auth/demo_key`).

Before the first request the mix is checked against the target's `GET /v1/policy`: a feature
the policy lacks stops the run (exit code 2) instead of producing a wall of 404s.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
import yaml
from locust import FastHttpUser, events
from locust.argument_parser import LocustArgumentParser
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

log = logging.getLogger("trivium.load")

HERE = Path(__file__).resolve().parent
DEFAULT_MIX = "docs-qa=50,ticket-triage=35,marketing-copy=15"
DEFAULT_PAYLOADS = HERE / "payloads"
METRIC_TYPE = "TRIVIUM"
"""The Type column of the entries taken from response bodies."""
STAGES = ("retrieve", "rerank", "render", "generate", "verify")
RESERVED_FIELDS = ("user", "session", "stream", "model")
"""Set by the user class, not by payload files."""
PAYLOAD_FIELDS = ("input", "messages", "max_tokens", "temperature", "metadata")
FEEDBACK_EVENTS: tuple[dict[str, Any], ...] = (
    {"kind": "completed", "value": True},
    {"kind": "completed", "value": False},
    {"kind": "rating", "value": 4},
    {"kind": "rating", "value": 2},
    {"kind": "thumbs", "value": "up"},
    {"kind": "escalated", "value": False},
    {"kind": "corrected", "correction": "a better answer"},
)


# -- the mix and the payloads --------------------------------------------------------------


class LoadConfigError(ValueError):
    """A mix or payload file that cannot be used; the message names the place."""


@dataclass(frozen=True)
class MixEntry:
    feature: str
    weight: int
    payloads: str
    """The payload file's stem: `<payloads folder>/<payloads>.jsonl`."""


def _entry(feature: str, value: Any, where: str) -> MixEntry:
    payloads = feature
    if isinstance(value, dict):
        unknown = set(value) - {"weight", "payloads"}
        if unknown:
            raise LoadConfigError(f"{where}: unknown keys {sorted(unknown)}")
        payloads = str(value.get("payloads", feature))
        value = value.get("weight", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LoadConfigError(f"{where}: the weight must be a whole number >= 0, not {value!r}")
    return MixEntry(feature, value, payloads)


def parse_mix(spec: str) -> list[MixEntry]:
    """`docs-qa=50,ticket-triage=35:triage-payloads`, or a YAML/JSON file's path."""
    spec = spec.strip()
    if spec.endswith((".yaml", ".yml", ".json")) or Path(spec).is_file():
        path = Path(spec)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise LoadConfigError(f"{path}: {exc}") from exc
        features = data.get("features", data) if isinstance(data, dict) else None
        if not isinstance(features, dict):
            raise LoadConfigError(f"{path}: expected a mapping `features: {{name: weight}}`")
        entries = [_entry(str(k), v, f"{path}: features.{k}") for k, v in features.items()]
    else:
        entries = []
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, sep, rest = item.partition("=")
            weight, _, payloads = rest.partition(":")
            if not sep or not name.strip() or not weight.strip().isdigit():
                raise LoadConfigError(f"mix item {item!r}: expected feature=weight[:payloads]")
            value = {"weight": int(weight), "payloads": payloads.strip() or name.strip()}
            entries.append(_entry(name.strip(), value, f"mix item {item!r}"))
    entries = [entry for entry in entries if entry.weight > 0]
    if not entries:
        raise LoadConfigError(f"the mix {spec!r} has no feature with a weight above 0")
    return entries


def load_payloads(path: Path) -> list[dict[str, Any]]:
    """One request body a line; blank lines are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LoadConfigError(f"{path}: {exc.strerror or exc}") from exc
    payloads: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            payload = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LoadConfigError(f"{where}: {exc}") from exc
        if not isinstance(payload, dict):
            raise LoadConfigError(f"{where}: expected a JSON object")
        if ("input" in payload) == ("messages" in payload):
            raise LoadConfigError(f"{where}: needs exactly one of `input` or `messages`")
        if isinstance(payload.get("input"), dict) is False and "input" in payload:
            raise LoadConfigError(f"{where}: `input` must be an object of template variables")
        unknown = set(payload) - set(PAYLOAD_FIELDS)
        if unknown:
            reserved = sorted(unknown & set(RESERVED_FIELDS))
            hint = f" ({', '.join(reserved)}: set by the load test)" if reserved else ""
            raise LoadConfigError(f"{where}: unknown fields {sorted(unknown)}{hint}")
        payloads.append(payload)
    if not payloads:
        raise LoadConfigError(f"{path}: no payloads")
    return payloads


def chat_body(feature: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-route request for a payload: a chat as an OpenAI client sends it. Template
    variables travel as messages when there is one text variable (the gateway fills the
    template's one input from the last user message), else in the `input` extension."""
    body: dict[str, Any] = {"model": feature}
    variables = payload.get("input")
    if variables is None:
        body["messages"] = payload["messages"]
    else:
        texts = [value for value in variables.values() if isinstance(value, str)]
        if len(variables) == 1 and len(texts) == 1:
            body["messages"] = [{"role": "user", "content": texts[0]}]
        else:  # e.g. {product, audience, tone}: only the extension can carry them
            body["input"] = variables
            summary = "; ".join(f"{key}: {value}" for key, value in variables.items())
            body["messages"] = [{"role": "user", "content": summary}]
    for key in ("max_tokens", "temperature"):
        if key in payload:
            body[key] = payload[key]
    return body


# -- what the answers say ---------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """The fields both routes carry, from a validated 200 body."""

    feature: str
    route: str
    variant: str | None
    output: str | None
    id: str | None
    timings_ms: dict[str, float]
    fallback: dict[str, Any] | None
    cached: bool
    verdict: str | None
    cost_usd: float
    prompt_tokens: int
    completion_tokens: int


class InvalidAnswerError(ValueError):
    pass


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def parse_answer(feature: str, body: Any, openai_route: bool) -> Answer:
    """Check a 200 body and pull out what the metrics need; `InvalidAnswerError` names what is
    wrong (the message is the failure's label in Locust, so it holds no request details)."""
    if not isinstance(body, dict):
        raise InvalidAnswerError("body is not a JSON object")
    if openai_route:
        extension = body.get("trivium")
        choices = body.get("choices")
        if not isinstance(extension, dict):
            raise InvalidAnswerError("no `trivium` extension in the completion")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise InvalidAnswerError("no choices in the completion")
        message = choices[0].get("message")
        if not isinstance(message, dict) or "content" not in message:
            raise InvalidAnswerError("no message content in the completion")
        output = message["content"]
        usage = body.get("usage")
        data = extension
    else:
        if "output" not in body:
            raise InvalidAnswerError("no `output` in the answer")
        output = body["output"]
        usage = body.get("usage")
        data = body
    route = data.get("route")
    if not isinstance(route, str) or not route:
        raise InvalidAnswerError("no `route` in the answer")
    if data.get("feature") != feature:
        raise InvalidAnswerError("the answer names another feature")
    verdict = data.get("verdict")
    if output is None and verdict != "withheld":
        raise InvalidAnswerError("null output without a withheld verdict")
    if output is not None and not isinstance(output, str):
        raise InvalidAnswerError("`output` is not text")
    timings = data.get("timings_ms")
    usage = usage if isinstance(usage, dict) else {}
    fallback = data.get("fallback")
    return Answer(
        feature=feature,
        route=route,
        variant=data.get("variant") if isinstance(data.get("variant"), str) else None,
        output=output,
        id=body.get("id") if isinstance(body.get("id"), str) else None,
        timings_ms={k: _number(v) for k, v in timings.items()} if isinstance(timings, dict) else {},
        fallback=fallback if isinstance(fallback, dict) else None,
        cached=data.get("cached") is True,
        verdict=verdict if isinstance(verdict, str) else None,
        cost_usd=_number(data.get("cost_usd")),
        prompt_tokens=int(_number(usage.get("prompt_tokens"))),
        completion_tokens=int(_number(usage.get("completion_tokens"))),
    )


def failure_label(status: int, body: Any, retry_after: object, error: object) -> str:
    """A short, stable description of a failed response (Locust groups failures by it)."""
    if status == 0:
        return f"no response ({type(error).__name__ if error else 'connection error'})"
    code = None
    if isinstance(body, dict):
        nested = body.get("error")
        code = nested.get("code") or nested.get("type") if isinstance(nested, dict) else None
        code = code or body.get("code")
    label = f"HTTP {status}" + (f" {code}" if code else "")
    if status == 503:
        label += f" (Retry-After: {retry_after}s)" if retry_after else " (no Retry-After)"
    return label


# -- totals that Locust's table cannot hold (cost, tokens) ------------------------------------

Totals = dict[str, dict[str, float]]
_totals: Totals = {}


def _add(totals: Totals, key: str, values: dict[str, float]) -> None:
    row = totals.setdefault(key, {})
    for name, value in values.items():
        row[name] = row.get(name, 0.0) + value


def record_totals(answer: Answer) -> None:
    _add(
        _totals,
        f"{answer.feature} {answer.route}",
        {
            "requests": 1,
            "cost_usd": answer.cost_usd,
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "fallbacks": 1 if answer.fallback else 0,
            "cache_hits": 1 if answer.cached else 0,
            "withheld": 1 if answer.verdict == "withheld" else 0,
        },
    )


def totals_table(totals: Totals) -> str:
    head = f"{'feature route':<40} {'reqs':>7} {'mean $':>12} {'total $':>11} {'tok in':>8}"
    head += f" {'tok out':>8} {'fallbk':>7} {'cached':>7} {'withheld':>8}"
    lines = [head, "-" * len(head)]
    for key in sorted(totals):
        row = totals[key]
        count = max(row.get("requests", 0.0), 1.0)
        lines.append(
            f"{key:<40} {row.get('requests', 0):>7.0f} {row.get('cost_usd', 0) / count:>12.8f}"
            f" {row.get('cost_usd', 0):>11.6f} {row.get('prompt_tokens', 0) / count:>8.1f}"
            f" {row.get('completion_tokens', 0) / count:>8.1f} {row.get('fallbacks', 0):>7.0f}"
            f" {row.get('cache_hits', 0):>7.0f} {row.get('withheld', 0):>8.0f}"
        )
    return "\n".join(lines)


# -- the user ---------------------------------------------------------------------------------


class FeatureTask:
    """One feature of the mix, as a Locust task (a callable taking the user)."""

    def __init__(self, feature: str, payloads: list[dict[str, Any]]) -> None:
        self.feature = feature
        self.payloads = payloads
        self.__name__ = feature  # Locust lists tasks by name

    def __call__(self, user: TriviumUser) -> None:
        user.invoke(self.feature, random.choice(self.payloads))


class TriviumUser(FastHttpUser):
    """One end user of the product. `tasks` is set from the mix when Locust initialises."""

    host = "http://127.0.0.1:8000"
    tasks: list[Any] = []
    _numbers = itertools.count()

    def wait_time(self) -> float:
        low, high = _wait_range(self.environment)
        return random.uniform(low, high)

    def on_start(self) -> None:
        number = next(self._numbers)
        worker = getattr(self.environment.runner, "worker_index", 0)
        options = self.environment.parsed_options
        prefix = getattr(options, "trivium_user_prefix", "load-user")
        self.user_id = f"{prefix}-{worker}-{number}"
        self.session_id = f"{self.user_id}-{uuid.uuid4().hex[:8]}"
        share = float(getattr(options, "trivium_openai_share", 0.2))
        # spread exactly: user n is on the OpenAI route when n*share crosses a whole number
        self.openai_route = math.floor((number + 1) * share) > math.floor(number * share)
        self.feedback_share = float(getattr(options, "trivium_feedback_share", 0.3))
        key = getattr(options, "trivium_api_key", "")
        self.headers = {"authorization": f"Bearer {key}"} if key else {}

    def invoke(self, feature: str, payload: dict[str, Any]) -> None:
        if self.openai_route:
            path, name = "/v1/chat/completions", f"openai {feature}"
            body = {**chat_body(feature, payload), "user": self.user_id}
            body["session"] = self.session_id
        else:
            path, name = f"/v1/features/{feature}/invoke", f"invoke {feature}"
            body = {**payload, "user": self.user_id, "session": self.session_id}
        with self.client.post(
            path, json=body, name=name, headers=self.headers, catch_response=True
        ) as response:
            answer = self._check(feature, response)
            if answer is not None:
                self._report(answer, (response.request_meta or {}).get("response_time", 0.0))
        if answer is not None and answer.id and random.random() < self.feedback_share:
            self.feedback(answer.id)

    def feedback(self, answer_id: str) -> None:
        """What the product reports about an answer: one event of a random kind."""
        body = {"answer_id": answer_id, "user": self.user_id, **random.choice(FEEDBACK_EVENTS)}
        with self.client.post(
            "/v1/feedback", json=body, name="feedback", headers=self.headers, catch_response=True
        ) as response:
            if response.status_code == 200:
                _succeed(response)
            else:
                _fail(response, failure_label(response.status_code, None, None, None))

    def _check(self, feature: str, response: ResponseContextManager) -> Answer | None:
        try:
            body = response.json() if response.content else None
        except (ValueError, TypeError):
            body = None
        if response.status_code != 200:
            headers = response.headers
            retry_after = headers.get("retry-after") if headers is not None else None
            error = getattr(response, "error", None)
            label = failure_label(response.status_code, body, retry_after, error)
            _fail(response, label)
            return None
        try:
            answer = parse_answer(feature, body, self.openai_route)
        except InvalidAnswerError as exc:
            _fail(response, f"invalid answer: {exc}")
            return None
        _succeed(response)
        return answer

    def _report(self, answer: Answer, latency_ms: float) -> None:
        stats = self.environment.stats

        def entry(name: str, response_time: float, length: int = 0) -> None:
            # Logged on the entry itself, not through events.request: that would also count
            # these in the Aggregated row, and its requests/s and percentiles would no longer
            # be the gateway's. Workers still ship them to the master with the other entries.
            stats.get(name, METRIC_TYPE).log(round(response_time), length)

        tokens = answer.prompt_tokens + answer.completion_tokens
        entry(f"route:{answer.route}", answer.timings_ms.get("total", 0.0), tokens)
        for stage in STAGES:
            value = answer.timings_ms.get(stage, 0.0)
            if value > 0:
                entry(f"stage:{stage}", value)
        if answer.fallback is not None:
            came_from, reason = answer.fallback.get("from"), answer.fallback.get("reason")
            entry(f"fallback:{came_from}->{answer.route} ({reason})", latency_ms)
        if answer.cached:
            entry("cache:hit", latency_ms)
        if answer.verdict is not None:
            entry(f"verdict:{answer.verdict}", latency_ms)
        if answer.variant is not None:
            entry(f"variant:{answer.feature}/{answer.variant}", latency_ms)
        record_totals(answer)


def _fail(response: Any, label: str) -> None:
    response.failure(label)  # (Any: FastHttpUser's failure/success carry no annotations)


def _succeed(response: Any) -> None:
    response.success()


# -- Locust hooks -----------------------------------------------------------------------------


def _wait_range(environment: Environment) -> tuple[float, float]:
    spec = str(getattr(environment.parsed_options, "trivium_wait", "0.5,2"))
    low, _, high = spec.partition(",")
    first = float(low)
    return first, float(high) if high.strip() else first


@events.init_command_line_parser.add_listener
def _options(parser: LocustArgumentParser) -> None:
    parser.add_argument(
        "--trivium-feedback-share",
        env_var="TRIVIUM_LOAD_FEEDBACK_SHARE",
        default="0.3",
        help="share of answers followed by a POST /v1/feedback",
    )
    parser.add_argument(
        "--trivium-mix",
        env_var="TRIVIUM_LOAD_MIX",
        default=DEFAULT_MIX,
        help="feature=weight[:payloads],... or a YAML/JSON mix file",
    )
    parser.add_argument(
        "--trivium-payloads",
        env_var="TRIVIUM_LOAD_PAYLOADS",
        default=str(DEFAULT_PAYLOADS),
        help="folder of <payloads>.jsonl files",
    )
    parser.add_argument(
        "--trivium-openai-share",
        env_var="TRIVIUM_LOAD_OPENAI_SHARE",
        type=float,
        default=0.2,
        help="share of users calling POST /v1/chat/completions (0..1)",
    )
    parser.add_argument(
        "--trivium-wait",
        env_var="TRIVIUM_LOAD_WAIT",
        default="0.5,2",
        help="think time between a user's requests: min,max seconds",
    )
    parser.add_argument(
        "--trivium-user-prefix",
        env_var="TRIVIUM_LOAD_USER_PREFIX",
        default="load-user",
        help="prefix of the stable user ids (variant assignment is sticky per user)",
    )
    parser.add_argument(
        "--trivium-api-key",
        env_var="TRIVIUM_LOAD_API_KEY",
        default="",
        is_secret=True,
        help="sent as Authorization: Bearer (an authenticating ingress)",
    )


@events.init.add_listener
def _configure(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:  # used as a library, without Locust's command line
        return
    try:
        mix = parse_mix(options.trivium_mix)
        folder = Path(options.trivium_payloads)
        divisor = math.gcd(*(entry.weight for entry in mix))
        tasks: list[Any] = []
        for entry in mix:
            payloads = load_payloads(folder / f"{entry.payloads}.jsonl")
            tasks.extend([FeatureTask(entry.feature, payloads)] * (entry.weight // divisor))
        if not 0 <= options.trivium_openai_share <= 1:
            raise LoadConfigError("--trivium-openai-share must be between 0 and 1")
        try:
            low, high = _wait_range(environment)
        except ValueError:
            low = high = -1
        if not 0 <= low <= high:
            raise LoadConfigError(f"--trivium-wait {options.trivium_wait!r}: expected min,max")
    except LoadConfigError as exc:
        log.error("%s", exc)
        sys.exit(2)
    TriviumUser.tasks = tasks
    mix_text = ", ".join(f"{entry.feature} {entry.weight}" for entry in mix)
    log.info("mix: %s; payloads from %s", mix_text, folder)
    _preflight_at_init(environment)


def _policy_features(host: str, headers: dict[str, str]) -> set[str] | None:
    request = urllib.request.Request(f"{host.rstrip('/')}/v1/policy", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            features = json.load(reply).get("features")
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("could not read %s/v1/policy (%s): the mix is not checked", host, exc)
        return None
    return set(features) if isinstance(features, dict) else None


def _missing_features(environment: Environment) -> list[str] | None:
    """The mix's features that the target's policy lacks; None when that cannot be told."""
    options = environment.parsed_options
    key = getattr(options, "trivium_api_key", "") if options else ""
    host = environment.host or ""
    served = _policy_features(host, {"authorization": f"Bearer {key}"} if key else {})
    if served is None:
        return None
    wanted = {task.feature for task in TriviumUser.tasks if isinstance(task, FeatureTask)}
    missing = sorted(wanted - served)
    if missing:
        log.error(
            "the policy at %s has no feature %s (it serves %s): set --trivium-mix",
            host,
            ", ".join(missing),
            ", ".join(sorted(served)) or "nothing",
        )
    return missing


_checked_hosts: set[str] = set()


def _preflight_at_init(environment: Environment) -> None:
    """With the host known up front (headless, --host): stop before any user starts."""
    if isinstance(environment.runner, WorkerRunner) or not environment.host:
        return
    _checked_hosts.add(environment.host)
    if _missing_features(environment):
        sys.exit(2)


@events.test_start.add_listener
def _preflight(environment: Environment, **_: Any) -> None:
    """A host first given in the web UI: checked when the test starts."""
    if isinstance(environment.runner, WorkerRunner) or not environment.host:
        return
    if environment.host in _checked_hosts:
        return
    _checked_hosts.add(environment.host)
    if _missing_features(environment) and environment.runner is not None:
        environment.process_exit_code = 2
        gevent.spawn(environment.runner.quit)


@events.report_to_master.add_listener
def _send_totals(client_id: str, data: dict[str, Any]) -> None:
    data["trivium_totals"] = {key: dict(row) for key, row in _totals.items()}
    _totals.clear()


@events.worker_report.add_listener
def _merge_totals(client_id: str, data: dict[str, Any]) -> None:
    for key, row in (data.get("trivium_totals") or {}).items():
        _add(_totals, key, row)


@events.quitting.add_listener
def _print_totals(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or not _totals:
        return
    print(f"\nCost and tokens per feature and route (from the answers)\n{totals_table(_totals)}")
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        path = Path(f"{prefix}_trivium.json")
        path.write_text(json.dumps(_totals, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if isinstance(environment.runner, MasterRunner):
        log.info("totals merged from %d workers", environment.runner.worker_count)
