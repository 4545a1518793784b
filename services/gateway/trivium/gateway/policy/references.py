"""Does what a valid policy names exist? Templates and adapters in the registry, collections in
the retriever; each one missing is an issue at the path that names it (`policy check
--registry`, `--retriever`). Unreachable services raise, they are not a policy's fault.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

from trivium.common.errors import NotFoundError
from trivium.gateway.policy.errors import PolicyIssue
from trivium.gateway.policy.model import Policy, Retrieval

__all__ = ("CollectionLookup", "ReferenceLookup", "check_references", "named_references")


class ReferenceLookup(Protocol):
    """A registry of one kind (`trivium.registry.Registry`)."""

    async def resolve(self, ref: str) -> object: ...


class CollectionLookup(Protocol):
    """The retriever (`trivium.gateway.clients.RetrieverClient`)."""

    async def collection(self, name: str) -> object | None: ...


def named_references(policy: Policy, kind: str) -> Iterator[tuple[str, str]]:
    """Each (path, value) naming a `template`, an `adapter` or a `collection`, in file order."""
    for name, feature in policy.features.items():
        places = [(f"features.{name}", feature.template, feature.adapter, feature.retrieval)]
        places += [
            (f"features.{name}.variants.{variant}", spec.template, spec.adapter, spec.retrieval)
            for variant, spec in feature.variants.items()
        ]
        for path, template, adapter, retrieval in places:
            value = _named(kind, template, adapter, retrieval)
            if value is not None:
                yield f"{path}.{'retrieval.collection' if kind == 'collection' else kind}", value


def _named(
    kind: str, template: str | None, adapter: str | None, retrieval: Retrieval | None
) -> str | None:
    if kind == "template":
        return template
    if kind == "adapter":
        return adapter
    return None if retrieval is None else retrieval.collection


async def check_references(
    policy: Policy,
    *,
    templates: ReferenceLookup | None = None,
    adapters: ReferenceLookup | None = None,
    collections: CollectionLookup | None = None,
) -> list[PolicyIssue]:
    """An issue for each reference that does not resolve; each distinct one is looked up once."""
    issues: list[PolicyIssue] = []
    for kind, lookup in (
        ("template", None if templates is None else templates.resolve),
        ("adapter", None if adapters is None else adapters.resolve),
        ("collection", None if collections is None else _collection(collections)),
    ):
        if lookup is None:
            continue
        answers: dict[str, str | None] = {}
        for path, value in named_references(policy, kind):
            if value not in answers:
                answers[value] = await _problem(lookup, value)
            problem = answers[value]
            if problem is not None:
                issues.append(PolicyIssue(path, problem))
    return issues


def _collection(collections: CollectionLookup) -> Callable[[str], Awaitable[object]]:
    async def lookup(name: str) -> object:
        if await collections.collection(name) is None:
            raise NotFoundError(f"no collection {name!r} in the retriever")
        return name

    return lookup


async def _problem(lookup: Callable[[str], Awaitable[object]], value: str) -> str | None:
    try:
        await lookup(value)
    except NotFoundError as exc:
        return exc.message
    return None
