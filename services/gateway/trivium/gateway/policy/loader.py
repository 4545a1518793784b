"""Policy YAML -> a `Policy`, or `InvalidPolicyError` listing every problem at once.

The file model (`document.py`) checks each value, `resolve.py` the names that tie entries
together; this module only reads the YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from trivium.gateway.policy.errors import ROOT, InvalidPolicyError, PolicyIssue
from trivium.gateway.policy.model import Policy
from trivium.gateway.policy.resolve import resolve, with_arms
from trivium.gateway.policy.validation import validate

__all__ = ("load_policy_file", "parse_policy")


def load_policy_file(path: Path) -> Policy:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InvalidPolicyError(str(path), [PolicyIssue(ROOT, f"cannot read: {exc}")]) from exc
    return parse_policy(text, str(path))


def parse_policy(text: str | bytes, source: str) -> Policy:
    try:
        loader = _Loader(text)  # reads the text's start: a non-printable character fails here
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise InvalidPolicyError(source, [PolicyIssue(ROOT, f"not valid YAML: {exc}")]) from exc
    document, issues = validate({} if data is None else data)
    policy, unresolved = resolve(document, data) if document is not None else (Policy(), [])
    problems = [*loader.duplicates, *issues, *unresolved]
    if problems:
        raise InvalidPolicyError(source, problems)
    return with_arms(policy)


class _Loader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a twice-defined feature must be an error."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self.duplicates: list[PolicyIssue] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    line = key_node.start_mark.line + 1
                    self.duplicates.append(
                        PolicyIssue(ROOT, f"line {line}: duplicate key {key_node.value!r}")
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)
