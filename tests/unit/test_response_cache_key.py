"""Response cache keys: everything that could change the answer is in the key, and nothing
else (whitespace in the caller's text is normalised)."""

from __future__ import annotations

from typing import Any

from trivium.gateway.invoke.cache import cache_key

PARTS = ("support", "-", "prompt", "ask@3", "-")


def key(
    parts: tuple[str, ...] = PARTS,
    text: Any = "When do refunds arrive?",
    temperature: float | None = None,
    prefix: str = "tabc",
) -> str:
    body = ("policyhash", {"question": text}, None, None)
    return cache_key(prefix, parts, (body, temperature))


def test_key_carries_the_prefix_and_the_parts() -> None:
    value = key()
    assert value.startswith("tabc:cache:support:-:prompt:ask@3:-:")
    digest = value.rsplit(":", 1)[1]
    assert len(digest) == 32
    int(digest, 16)
    assert key(prefix="other").startswith("other:cache:")


def test_whitespace_differences_give_the_same_key() -> None:
    assert key(text="  When do   refunds\n arrive?\t") == key()
    assert key(text=["When  do", {"a": " refunds  arrive? "}]) == key(
        text=["When do", {"a": "refunds arrive?"}]
    )


def test_a_different_input_gives_a_different_key() -> None:
    assert key(text="When do refunds arrive") != key()
    assert key(text="when do refunds arrive?") != key()  # case is meaning


def test_a_different_template_version_variant_or_adapter_gives_a_different_key() -> None:
    base = key()
    assert key(parts=("support", "-", "prompt", "ask@4", "-")) != base
    assert key(parts=("support", "b", "prompt", "ask@3", "-")) != base
    assert key(parts=("support", "-", "finetune", "ask@3", "triage@2")) != base
    assert key(parts=("other", "-", "prompt", "ask@3", "-")) != base


def test_a_different_temperature_gives_a_different_key() -> None:
    assert key(temperature=0.0) != key()
    assert key(temperature=0.0) != key(temperature=0.7)
    assert key(temperature=0.7) == key(temperature=0.7)


def test_the_key_does_not_depend_on_dict_order() -> None:
    first = cache_key("p", PARTS, {"a": "1", "b": "2"})
    second = cache_key("p", PARTS, {"b": "2", "a": "1"})
    assert first == second
