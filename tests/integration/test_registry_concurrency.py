"""Many processes moving one label at once: the audit log replays to the final state."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from trivium.registry import AuditEntry, Registry

if TYPE_CHECKING:
    from tests.conftest import RegistryBackend

PROCESSES = 5
OPS_PER_PROCESS = 10
VERSIONS = 5
LABEL = "production"


def replay(entries: list[AuditEntry]) -> tuple[int | None, list[int]]:
    """Rebuild (current version, rollback stack) of LABEL from its audit entries alone,
    checking that each entry starts where the previous one left off."""
    current: int | None = None
    stack: list[int] = []
    for index, entry in enumerate(entries):
        where = f"audit entry {index} ({entry})"
        assert entry.from_version == current, f"{where}: label was at {current}"
        assert entry.to_version is not None, where
        if entry.action == "promote":
            assert entry.to_version != current, f"{where}: a no-op promote was recorded"
            if current is not None:
                stack.append(current)
        else:
            assert entry.action == "rollback", where
            assert stack, f"{where}: rollback with an empty history"
            assert stack.pop() == entry.to_version, f"{where}: did not return to the previous"
        current = entry.to_version
    return current, stack


async def test_concurrent_promotes_and_rollbacks_from_many_processes(
    registry_backend: RegistryBackend, registry: Registry
) -> None:
    name = f"storm-{uuid.uuid4().hex[:8]}"
    for i in range(1, VERSIONS + 1):
        await registry.publish(name, f"Q: {{{{ question }}}} (v{i})", {"variables": ["question"]})
    prefix = registry_backend.settings.key_prefix
    ready_key, go_key = f"{prefix}:test:ready", f"{prefix}:test:go"

    workers = asyncio.gather(
        *(
            registry_backend.run_worker(
                op="storm",
                name=name,
                label=LABEL,
                actor=f"worker-{i}",
                seed=i,
                ops=OPS_PER_PROCESS,
                streams=2,
                versions=VERSIONS,
                ready_key=ready_key,
                go_key=go_key,
            )
            for i in range(PROCESSES)
        )
    )
    # Start them together: every worker checks in, then all get the go at once.
    client = registry_backend.client
    deadline = time.monotonic() + 60
    while int(await client.get(ready_key) or 0) < PROCESSES:
        assert not workers.done(), workers.exception() if workers.done() else None
        assert time.monotonic() < deadline, "workers did not start"
        await asyncio.sleep(0.01)
    await client.rpush(go_key, *["go"] * PROCESSES)
    results: list[dict[str, Any]] = await workers

    reported: Counter[tuple[str, str, int | None, int]] = Counter()
    refused: Counter[str] = Counter()
    unchanged = 0
    for i, result in enumerate(results):
        refused.update(result["refused"])
        for move in result["moves"]:
            if move["changed"]:
                reported[(f"worker-{i}", move["action"], move["from"], move["to"])] += 1
            else:
                unchanged += 1
    successes = sum(reported.values())
    assert successes + unchanged + sum(refused.values()) == PROCESSES * OPS_PER_PROCESS
    assert set(refused) <= {"LabelConflictError", "NoEarlierVersionError", "UnknownLabelError"}

    entries = [
        e
        for e in await registry.history(name)
        if e.action in ("promote", "rollback") and e.label == LABEL
    ]
    # Exactly the moves the workers saw succeed were recorded, each once, in some order.
    assert len(entries) == successes
    assert Counter((e.actor, e.action, e.from_version, e.to_version) for e in entries) == reported
    kinds = Counter(e.action for e in entries)
    assert kinds["promote"] > 0
    assert kinds["rollback"] > 0, "no rollback succeeded: the storm did not test much"

    current, stack = replay(entries)
    labels = await registry.labels(name)
    assert labels.get(LABEL) == current
    assert await registry.label_stack(name, LABEL) == stack
    assert (await registry.resolve(f"{name}@{LABEL}")).version == current
