"""Seeding the embedded stack with the demo templates that ship in this package."""

from __future__ import annotations

import contextlib
from importlib import resources

from trivium.registry import ABSENT, Registry
from trivium.registry.errors import LabelConflictError
from trivium.registry.templates import parse_template_file

__all__ = ("seed_demo_templates",)


async def seed_demo_templates(registry: Registry, actor: str = "trivium-demo") -> list[str]:
    """Publish each demo template and label it `production` unless that label already exists."""
    seeded = []
    folder = resources.files("trivium.cli").joinpath("demo_templates")
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".j2"):
            continue
        name = entry.name.removesuffix(".j2")
        body, metadata = parse_template_file(entry.read_text(encoding="utf-8"))
        result = await registry.publish(name, body, metadata, actor=actor)
        # If production already exists, someone chose what it serves: leave it.
        with contextlib.suppress(LabelConflictError):
            await registry.promote(
                name, "production", result.artifact.version, expected_current=ABSENT, actor=actor
            )
        seeded.append(result.artifact.ref)
    return seeded
