"""The rollout guards and effective weights: pure functions over window numbers and state."""

from __future__ import annotations

import pytest

from trivium.gateway.policy import parse_policy
from trivium.gateway.policy.errors import InvalidPolicyError
from trivium.gateway.policy.model import Feature, Guards, Rollout, Variant
from trivium.gateway.rollouts.guards import judge
from trivium.gateway.rollouts.plan import effective_weights, feature_rollout, weighted_variants
from trivium.gateway.rollouts.state import RolloutEvent, RolloutState, advance
from trivium.gateway.telemetry.stats import FeedbackRates, LatencyMs, Rate, WindowStats

ROLLOUT = Rollout(
    steps=(5.0, 50.0, 100.0),
    control="control",
    guard_min_requests=10,
    guards=Guards(
        max_error_rate_increase=0.02,
        max_fallback_rate_increase=0.05,
        max_p95_latency_ratio=1.5,
        max_groundedness_drop=0.1,
        max_cost_ratio=2.0,
        max_completion_rate_drop=0.05,
    ),
)


def window(
    count: int = 100,
    errors: int = 0,
    fallbacks: int = 0,
    p95: float = 100.0,
    cost: float = 0.001,
    grounded: float | None = 0.8,
    completion: float | None = 0.9,
) -> WindowStats:
    rate = Rate(rate=completion, count=20 if completion is not None else 0)
    none = Rate(rate=None, count=0)
    return WindowStats(
        count=count,
        errors=errors,
        error_rate=errors / count if count else 0.0,
        latency_ms=LatencyMs(p50=p95 / 2, p95=p95, p99=p95 * 1.2),
        mean_cost_usd=cost,
        mean_tokens=10.0,
        feedback=FeedbackRates(rate, none, none, none, None),
        fallbacks=fallbacks,
        mean_groundedness=grounded,
    )


def test_a_canary_like_its_control_passes_every_guard() -> None:
    judgement = judge(ROLLOUT, window(), window())
    assert judgement.verdict == "pass"
    assert [r.passed for r in judgement.readings] == [True] * 6
    assert judgement.reason() == "every guard held"


@pytest.mark.parametrize(
    ("canary", "guard"),
    [
        (window(errors=3), "max_error_rate_increase"),
        (window(fallbacks=6), "max_fallback_rate_increase"),
        (window(p95=151.0), "max_p95_latency_ratio"),
        (window(grounded=0.69), "max_groundedness_drop"),
        (window(cost=0.0021), "max_cost_ratio"),
        (window(completion=0.84), "max_completion_rate_drop"),
    ],
)
def test_each_guard_fails_past_its_limit_alone(canary: WindowStats, guard: str) -> None:
    judgement = judge(ROLLOUT, canary, window())
    assert judgement.verdict == "fail"
    assert [r.guard for r in judgement.failed] == [guard]
    assert guard in judgement.reason()


def test_at_its_limit_a_guard_still_holds() -> None:
    judgement = judge(ROLLOUT, window(errors=2, fallbacks=5, p95=150.0), window())
    assert judgement.verdict == "pass"


def test_too_few_canary_requests_wait_even_when_a_guard_fails() -> None:
    judgement = judge(ROLLOUT, window(count=9, errors=9), window())
    assert judgement.verdict == "wait"
    assert judgement.failed  # shown, not acted on


def test_without_data_a_guard_is_not_judged_and_a_missing_control_counts_as_zero_rates() -> None:
    judgement = judge(ROLLOUT, window(fallbacks=4, grounded=None, completion=None), None)
    by_guard = {r.guard: r for r in judgement.readings}
    assert by_guard["max_fallback_rate_increase"].passed is True  # 0.04 against 0
    assert by_guard["max_p95_latency_ratio"].passed is None
    assert by_guard["max_groundedness_drop"].passed is None
    assert by_guard["max_completion_rate_drop"].passed is None
    assert judgement.verdict == "pass"


def test_unset_guards_are_not_read() -> None:
    judgement = judge(Rollout(steps=(50.0,), control="control"), window(p95=900.0), window())
    assert [r.guard for r in judgement.readings] == [
        "max_error_rate_increase",
        "max_fallback_rate_increase",
    ]


FEATURE = Feature(
    route="prompt",
    upstream="a",
    template="t@production",
    variants={
        "control": Variant(weight=3),
        "other": Variant(weight=1),
        "canary": Variant(weight=0, rollout=ROLLOUT),
    },
)


def test_the_canary_takes_its_percent_and_the_others_share_the_rest_by_weight() -> None:
    variants = weighted_variants(FEATURE, "canary", 20.0)
    assert {v: s.weight for v, s in variants.items()} == {
        "control": 60.0,
        "other": 20.0,
        "canary": 20.0,
    }
    assert variants["canary"].rollout == ROLLOUT


def state(spec_id: str, **changes: object) -> RolloutState:
    base = RolloutState(
        id=spec_id,
        feature="f",
        variant="canary",
        status="running",
        step=1,
        percent=50.0,
        started_at=1_700_000_000.0,
        step_started_at=1_700_000_100.0,
    )
    event = RolloutEvent(
        at=1_700_000_200.0, outcome="rolled_back", step=2, percent=0, reason="x", actor="r"
    )
    return advance(base, event, 3, **changes)


def test_effective_weights_explain_themselves_from_file_and_state() -> None:
    spec = feature_rollout("f", FEATURE)
    assert spec is not None
    pending = effective_weights("f", FEATURE, spec, None)
    assert pending.shares == {"control": 0.75, "other": 0.25, "canary": 0.0}
    assert "not started yet" in pending.why
    running = effective_weights("f", FEATURE, spec, state(spec.id))
    assert running.shares == {"control": 0.375, "other": 0.125, "canary": 0.5}
    assert "step 2 of 3 (50%)" in running.why
    assert "control (3), other (1) share the rest" in running.why
    back = effective_weights("f", FEATURE, spec, state(spec.id, status="rolled_back", percent=0.0))
    assert back.shares["canary"] == 0.0
    assert "rolled back" in back.why
    stale = effective_weights("f", FEATURE, spec, state("an-older-block"))
    assert stale.shares["canary"] == 0.0, "a state of another block is not this rollout's"


def test_a_state_write_bumps_rev_keeps_the_highest_token_and_bounds_history() -> None:
    s = state("x")
    assert (s.rev, s.fence, len(s.history)) == (1, 3, 1)
    for _ in range(150):
        s = advance(s, s.history[-1], 2)
    assert s.fence == 3
    assert len(s.history) == 100


BASE = """
upstreams:
  a: {url: "http://127.0.0.1:1/v1", model: m}
features:
  f:
    route: prompt
    upstream: a
    template: t
    variants:
      control: {weight: 2}
      other: {weight: 0}
      light: {weight: 1}
      canary:
        weight: 0
        template: TEMPLATE
        rollout: BLOCK
"""


def policy_text(block: str, template: str = "t@canary") -> str:
    return BASE.replace("BLOCK", block).replace("TEMPLATE", template)


def errors_of(block: str, template: str = "t@canary") -> list[tuple[str, str]]:
    with pytest.raises(InvalidPolicyError) as caught:
        parse_policy(policy_text(block, template).encode(), "test")
    return [(e["path"], e["message"]) for e in caught.value.extra["errors"]]


R = "features.f.variants.canary.rollout"


@pytest.mark.parametrize(
    ("block", "path", "words"),
    [
        ("{steps: []}", f"{R}.steps", "at least 1"),
        ("{steps: [10, 5]}", f"{R}.steps", "rise strictly"),
        ("{steps: [0]}", f"{R}.steps[0]", "greater than 0"),
        ("{steps: [5], min_requests: 0}", f"{R}.min_requests", "between 1 and"),
        ("{steps: [5], guards: {max_cost_ratio: 0}}", f"{R}.guards.max_cost_ratio", "above 0"),
        ("{steps: [5], guards: {latency: 2}}", f"{R}.guards.latency", "unknown key"),
        ("{steps: [5], speed: 2}", f"{R}.speed", "unknown key"),
        ("{steps: [5], control: other}", f"{R}.control", "weight 0"),
        ("{steps: [5], control: nobody}", f"{R}.control", "not a variant"),
        ("{steps: [5], control: canary}", f"{R}.control", "not the canary itself"),
    ],
)
def test_a_bad_rollout_block_is_named_by_its_path(block: str, path: str, words: str) -> None:
    found = errors_of(block)
    assert [p for p, _ in found] == [path], found
    assert words in found[0][1]


def test_rolling_back_the_registry_needs_a_label_to_roll_back() -> None:
    found = errors_of("{steps: [5], rollback_registry: true}", template="t@3")
    assert [p for p, _ in found] == [f"{R}.rollback_registry"], found
    assert "name@label" in found[0][1]


def test_one_rollout_per_feature() -> None:
    text = policy_text("{steps: [5]}").replace(
        "light: {weight: 1}", "light: {weight: 1, rollout: {steps: [5]}}"
    )
    with pytest.raises(InvalidPolicyError) as caught:
        parse_policy(text.encode(), "test")
    assert [e["path"] for e in caught.value.extra["errors"]] == [R]


def test_the_control_defaults_to_the_heaviest_other_variant() -> None:
    policy = parse_policy(policy_text("{steps: [5, 100]}").encode(), "test")
    rollout = policy.features["f"].variants["canary"].rollout
    assert rollout is not None
    assert rollout.control == "control"
    assert rollout.steps == (5.0, 100.0)
