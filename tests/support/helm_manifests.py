"""Values merging and manifest access for the Helm chart tests (no helm binary here)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.helm_render import render_chart

__all__ = (
    "CHART_DIR",
    "Manifests",
    "chart_values",
    "load_yaml_strict",
    "merge_values",
    "render",
)

CHART_DIR = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "trivium"


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


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing: maps merge recursively, other values replace, null deletes a key."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def chart_values(*overrides: Mapping[str, Any] | str) -> dict[str, Any]:
    """values.yaml with overrides on top: mappings, or file names relative to the chart."""
    values: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text("utf-8"))
    for override in overrides:
        if isinstance(override, str):
            override = yaml.safe_load((CHART_DIR / override).read_text("utf-8"))
        values = merge_values(values, override)
    return values


@dataclass
class Manifests:
    docs: list[dict[str, Any]]
    notes: str

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.docs)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
        return found[0]


def render(values: Mapping[str, Any], release: str = "trivium") -> Manifests:
    """Render the chart and parse every document (duplicate keys are errors)."""
    rendered = render_chart(CHART_DIR, values, release_name=release, namespace="llm")
    docs: list[dict[str, Any]] = []
    for name, text in rendered.manifests.items():
        for data in yaml.load_all(text, Loader=_StrictLoader):
            if data is None:
                continue
            assert isinstance(data, dict), f"{name}: a document that is not a mapping"
            docs.append(data)
    return Manifests(docs, rendered.notes)
