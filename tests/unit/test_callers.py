"""Caller keys without Redis: the format, the hash, the exposure rule, the budget series."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from trivium.gateway.app import create_app
from trivium.gateway.callers import (
    SCOPES,
    InsecureExposureError,
    check_exposure,
    is_loopback,
    require_scope,
)
from trivium.gateway.callers.keys import (
    format_key,
    hash_secret,
    new_key_id,
    new_secret,
    parse_key,
    secrets_match,
)
from trivium.gateway.callers.limiter import _duration
from trivium.gateway.callers.metrics import CallerMetrics
from trivium.gateway.config import AuthSection, GatewaySection, GatewaySettings


def test_a_key_round_trips_and_only_its_hash_matches() -> None:
    key_id, secret = new_key_id(), new_secret()
    key = format_key(key_id, secret)
    parsed = parse_key(key)
    assert parsed is not None
    assert (parsed.key_id, parsed.secret) == (key_id, secret)
    stored = hash_secret(b"pepper", secret)
    assert secret not in stored
    assert secrets_match(b"pepper", secret, stored)
    assert not secrets_match(b"other-pepper", secret, stored)
    assert not secrets_match(b"pepper", secret[:-1] + "x", stored)


@pytest.mark.parametrize(
    "token",
    ["", "trv_", "trv_short_secret", "sk-abc", "trv_ABCDEFGHIJKL_" + "a" * 43, "x" * 600],
)
def test_malformed_keys_do_not_parse(token: str) -> None:
    assert parse_key(token) is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_exposure_rule_names_the_missing_setting() -> None:
    check_exposure(GatewaySection())  # loopback: zero-config
    exposed = "0.0.0.0"
    with pytest.raises(InsecureExposureError) as no_admin:
        check_exposure(GatewaySection(host=exposed))
    assert no_admin.value.field == "gateway.admin_tokens"
    with pytest.raises(InsecureExposureError) as no_pepper:
        check_exposure(GatewaySection(host=exposed, admin_tokens={"ops": SecretStr("t")}))
    assert no_pepper.value.field == "gateway.auth.pepper"
    check_exposure(
        GatewaySection(
            host=exposed,
            admin_tokens={"ops": SecretStr("t")},
            auth=AuthSection(pepper=SecretStr("p")),
        )
    )
    check_exposure(GatewaySection(host=exposed, auth=AuthSection(mode="open")))  # explicit


@pytest.mark.parametrize(
    ("ms", "text"), [(0, "0ms"), (250, "250ms"), (1500, "1.5s"), (59_000, "59s"), (360_000, "6m0s")]
)
def test_reset_durations_read_like_openai(ms: int, text: str) -> None:
    assert _duration(ms) == text


OPEN_PATHS = {"/healthz", "/readyz", "/metrics", "/schema"}
CHECKED_IN_THE_HANDLER = {
    "/v1/features/{feature:str}/invoke",  # Authenticator.for_feature
    "/v1/chat/completions",  # Authenticator.for_feature
    "/v1/models",  # Authenticator.for_models
    "/v1/reviews/{review_id:str}",  # the case (scope review) or its outcome (the key it held)
    "/reviews",  # the review page: the `review` key from its HttpOnly cookie, every request
    "/reviews/{review_id:str}",
    "/reviews/{review_id:str}/decide",
    "/reviews/login",  # the sign-in form itself, and where a `review` key is checked
    "/reviews/logout",
}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Litestar 3 notices on routes
def test_every_route_declares_its_scope(tmp_path: Path) -> None:
    """A new admin or read route cannot ship unguarded: each one names its scope."""
    app = create_app(GatewaySettings(data_dir=tmp_path))
    unguarded = []
    for route in app.routes:
        if route.path in OPEN_PATHS or route.path.startswith("/schema"):
            continue
        for handler in getattr(route, "route_handlers", []):
            if route.path in CHECKED_IN_THE_HANDLER or handler.http_methods == {"OPTIONS"}:
                continue
            if handler.opt.get("scope") not in SCOPES or require_scope not in (
                handler.resolve_guards()
            ):
                unguarded.append(f"{sorted(handler.http_methods)} {route.path}")
    assert unguarded == []


def _budget_series(name: str) -> dict[tuple[str, str], float | None]:
    return {
        (metric, period): REGISTRY.get_sample_value(metric, {"key": name, "period": period})
        for metric in ("trivium_caller_budget_usd", "trivium_caller_spend_usd")
        for period in ("day", "month")
    }


def test_budget_series_follow_the_utc_periods_and_go_with_the_key() -> None:
    metrics = CallerMetrics()
    name = f"budgeted-{new_key_id()}"
    metrics.spend("k1", name, ("20260131", "202601"), (10.0, None), (8_000_000, 9_500_000))
    assert _budget_series(name) == {
        ("trivium_caller_budget_usd", "day"): 10.0,
        ("trivium_caller_budget_usd", "month"): None,  # no monthly budget: no series
        ("trivium_caller_spend_usd", "day"): 8.0,
        ("trivium_caller_spend_usd", "month"): None,
    }
    metrics.roll_periods(("20260131", "202601"))  # same day: nothing changes
    assert _budget_series(name)[("trivium_caller_spend_usd", "day")] == 8.0
    metrics.roll_periods(("20260201", "202602"))  # a new UTC day: yesterday's spend is not today's
    assert _budget_series(name)[("trivium_caller_spend_usd", "day")] == 0.0
    assert _budget_series(name)[("trivium_caller_budget_usd", "day")] == 10.0
    metrics.spend("k1", name, ("20260201", "202602"), (10.0, 100.0), (1_000_000, 1_000_000))
    assert _budget_series(name)[("trivium_caller_spend_usd", "month")] == 1.0
    metrics.forget("k1")  # revoked (or rotated): the series go until its next admission
    assert set(_budget_series(name).values()) == {None}
    metrics.forget("k1")  # twice is harmless


def test_spend_read_just_before_the_day_turned_is_still_rolled() -> None:
    metrics = CallerMetrics()
    name = f"late-{new_key_id()}"
    metrics.roll_periods(("20260201", "202602"))
    # An admission that computed its periods before midnight and answered after it.
    metrics.spend("k2", name, ("20260131", "202601"), (10.0, 50.0), (9_000_000, 40_000_000))
    metrics.roll_periods(("20260201", "202602"))
    assert _budget_series(name)[("trivium_caller_spend_usd", "day")] == 0.0
    assert _budget_series(name)[("trivium_caller_spend_usd", "month")] == 0.0


def test_a_revoked_key_does_not_take_the_series_of_the_key_now_holding_its_name() -> None:
    metrics = CallerMetrics()
    name = f"reused-{new_key_id()}"
    metrics.spend("old", name, ("20260131", "202601"), (5.0, None), (4_000_000, 0))
    metrics.spend("new", name, ("20260131", "202601"), (7.0, None), (1_000_000, 0))
    metrics.forget("old")  # the revocation arrived after the new key's first admission
    assert _budget_series(name)[("trivium_caller_budget_usd", "day")] == 7.0
    assert _budget_series(name)[("trivium_caller_spend_usd", "day")] == 1.0
