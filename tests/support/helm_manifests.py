"""The Helm chart rendered by Helm itself (helm-python-sdk: Helm v4's Go engine, no binary)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

__all__ = (
    "CHART_DIR",
    "Manifests",
    "chart",
    "chart_values",
    "load_yaml_strict",
    "render",
)

CHART_DIR = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "trivium"
NAMESPACE = "llm"


class _StrictLoader(yaml.SafeLoader):
    """YAML that refuses duplicate keys (PyYAML silently keeps the last; Kubernetes may not)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return dict(loader.construct_mapping(node, deep=True))


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_strict(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)


@cache
def chart() -> helm.Chart:
    """The chart as Helm loads it (.helmignore applied); loaded once per test process."""
    return helm.Chart.load(CHART_DIR)


def overrides_of(override: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """A values override: a mapping, or a file name relative to the chart (like `-f`)."""
    if override is None:
        return {}
    if isinstance(override, str):
        return helm.values_from_yaml((CHART_DIR / override).read_text("utf-8"))
    return dict(override)


def chart_values(override: Mapping[str, Any] | str | None = None) -> dict[str, Any]:
    """The values a release would use: Helm's own coalescing of values.yaml and the override."""
    return chart().merge_values(overrides_of(override))


@dataclass
class Manifests:
    docs: list[dict[str, Any]]
    hooks: list[dict[str, Any]]
    notes: str

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.docs)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
        return found[0]


def render(override: Mapping[str, Any] | str | None = None, release: str = "trivium") -> Manifests:
    """`helm template`: render, then parse every document (duplicate keys are errors).

    Hook objects (`helm.sh/hook`, e.g. the `helm test` pods) are kept apart from the release's
    objects, as Helm installs them apart."""
    rendered = chart().render(
        overrides_of(override), name=release, namespace=NAMESPACE, is_install=True
    )
    docs: list[dict[str, Any]] = []
    hooks: list[dict[str, Any]] = []
    notes = ""
    for name, text in sorted(rendered.items()):
        if name.endswith("NOTES.txt"):
            notes = text
            continue
        for data in yaml.load_all(text, Loader=_StrictLoader):
            if data is None:
                continue
            assert isinstance(data, dict), f"{name}: a document that is not a mapping"
            annotations = data.get("metadata", {}).get("annotations") or {}
            (hooks if "helm.sh/hook" in annotations else docs).append(data)
    return Manifests(docs, hooks, notes)
