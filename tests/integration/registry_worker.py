"""Another Trivium process for the registry tests: one label move, or a storm of them.

Run as ``python registry_worker.py '<json config>'``; prints one JSON object on stdout.
The config names the store the way a deployment does: ``url`` for a Redis server, or
``data_dir`` for the embedded default that every process under that directory shares,
plus the registry ``prefix`` and the artifact ``name``/``label``. ``op`` is one of:

* ``promote`` (``version``) or ``rollback``: one move, printed as ``{"move": {...}}``.
* ``storm``: check in on ``ready_key``, wait for a token on ``go_key``, then run ``ops``
  random promotes and rollbacks (seeded by ``seed``) over ``streams`` concurrent streams.
  Prints every successful move and a count of every refusal by error class.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from trivium.common.errors import TriviumError
from trivium.common.redis import open_redis
from trivium.common.settings import RedisSettings, RegistrySettings
from trivium.registry import ABSENT, TEMPLATE_KIND, LabelMove, Registry
from trivium.registry.errors import (
    LabelConflictError,
    NoEarlierVersionError,
    UnknownLabelError,
)

TOLERATED = (LabelConflictError, NoEarlierVersionError, UnknownLabelError)


def _move(action: str, move: LabelMove) -> dict[str, Any]:
    return {
        "action": action,
        "from": move.from_version,
        "to": move.to_version,
        "changed": move.changed,
    }


async def _wait_for_go(client: Redis, config: dict[str, Any]) -> None:
    await client.incr(config["ready_key"])
    deadline = time.monotonic() + 30
    while not await client.blpop([config["go_key"]], timeout=1):
        if time.monotonic() > deadline:
            raise TimeoutError("no go signal within 30 s")


async def storm(client: Redis, registry: Registry, config: dict[str, Any]) -> dict[str, Any]:
    name, label, actor = config["name"], config["label"], config["actor"]
    rng = random.Random(config["seed"])
    plan = [
        (
            "promote" if rng.random() < 0.6 else "rollback",
            rng.randint(1, config["versions"]),
            rng.random() < 0.5,
        )
        for _ in range(config["ops"])
    ]
    moves: list[dict[str, Any]] = []
    refused: Counter[str] = Counter()

    async def one(action: str, version: int, read_expected: bool) -> None:
        expected: int | None = None
        try:
            if read_expected:
                expected = (await registry.labels(name)).get(label, ABSENT)
            if action == "promote":
                move = await registry.promote(
                    name, label, version, expected_current=expected, actor=actor
                )
            else:
                move = await registry.rollback(name, label, expected_current=expected, actor=actor)
        except TOLERATED as exc:
            refused[type(exc).__name__] += 1
            return
        moves.append(_move(action, move))

    async def stream(steps: list[tuple[str, int, bool]]) -> None:
        for step in steps:
            await one(*step)

    await _wait_for_go(client, config)
    streams = config["streams"]
    await asyncio.gather(*(stream(plan[i::streams]) for i in range(streams)))
    return {"moves": moves, "refused": dict(refused)}


async def main(config: dict[str, Any]) -> dict[str, Any]:
    redis_settings = RedisSettings(url=config.get("url"))
    data_dir = Path(config.get("data_dir") or ".")
    settings = RegistrySettings(key_prefix=config["prefix"])
    async with open_redis(redis_settings, data_dir) as client:
        registry = Registry(client, TEMPLATE_KIND, settings, cache=False)
        op = config["op"]
        name, label, actor = config["name"], config["label"], config["actor"]
        try:
            if op == "promote":
                move = await registry.promote(name, label, config["version"], actor=actor)
                return {"move": _move(op, move)}
            if op == "rollback":
                return {"move": _move(op, await registry.rollback(name, label, actor=actor))}
            if op == "storm":
                return await storm(client, registry, config)
        except TriviumError as exc:
            return {"error": type(exc).__name__, "message": exc.message}
        raise ValueError(f"unknown op {op!r}")


if __name__ == "__main__":
    result = asyncio.run(main(json.loads(sys.argv[1])))
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
