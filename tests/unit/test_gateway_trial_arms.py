"""The arm a trial forces, and who may force one (every auth mode)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from trivium.gateway.callers import ANONYMOUS, Authenticator
from trivium.gateway.callers.errors import MissingScopeError
from trivium.gateway.invoke.trial import (
    UnknownArmError,
    require_trials_scope,
    trial_arm,
    trial_arms,
)
from trivium.gateway.policy import Feature, parse_policy

POLICY = """\
upstreams:
  hosted: {url: "http://127.0.0.1:1/v1", model: m}
  backup: {url: "http://127.0.0.1:2/v1", model: m}
features:
  support:
    route: rag
    template: ask@production
    adapter: tuned@production
    upstream: hosted
    retrieval: {collection: kb}
    variants:
      main: {weight: 1}
      spare: {weight: 0, upstream: backup}
  chat:
    route: prompt
    template: ask@production
    upstream: hosted
"""


def feature(name: str) -> Feature:
    return parse_policy(POLICY, "test.yaml").features[name]


def test_a_road_is_the_features_own_arm_on_it_when_the_feature_names_what_it_needs() -> None:
    support = feature("support")
    arms = trial_arms("support", support)
    assert list(arms) == [
        "prompt", "rag", "finetune", "rag+prompt", "finetune+rag", "extractive", "main", "spare"
    ]  # fmt: skip
    assert arms["rag"] == support.arm("support", None)
    finetune = trial_arm("support", support, "finetune")
    assert (finetune.route, finetune.variant, finetune.adapter) == (
        "finetune",
        None,
        "tuned@production",
    )
    spare = trial_arm("support", support, "spare")
    assert (spare.variant, spare.upstream) == ("spare", "backup")


def test_an_arm_the_feature_cannot_run_is_refused_naming_the_ones_it_can() -> None:
    chat = feature("chat")
    assert list(trial_arms("chat", chat)) == ["prompt"]  # no retrieval, no adapter
    with pytest.raises(UnknownArmError) as refused:
        trial_arm("chat", chat, "rag")
    assert refused.value.field == "trial.arm"
    assert refused.value.status_code == 400
    assert refused.value.extra == {"arms": ["prompt"]}


def authenticator(mode: Any) -> Authenticator:
    keys: Any = SimpleNamespace(store=SimpleNamespace(pepper=b"pepper"))
    return Authenticator(mode, keys, {"ops": SecretStr("admin-token")})


def test_open_mode_needs_a_credential_with_the_trials_scope() -> None:
    open_mode = authenticator("open")
    with pytest.raises(MissingScopeError) as refused:
        asyncio.run(require_trials_scope(open_mode, None, ANONYMOUS))
    assert (refused.value.status_code, refused.value.field) == (403, "trial")
    # an admin token holds `trials`
    asyncio.run(require_trials_scope(open_mode, "Bearer admin-token", ANONYMOUS))


def test_keys_mode_reads_the_scope_of_the_caller_already_authenticated() -> None:
    keys_mode = authenticator("keys")
    with pytest.raises(MissingScopeError):
        asyncio.run(require_trials_scope(keys_mode, "Bearer admin-token", ANONYMOUS))
