"""The JSON Schema shipped for editors is the one the policy model generates."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from trivium.gateway.policy import policy_schema, policy_schema_text

DEPLOY = Path(__file__).parents[2] / "deploy"
REGENERATE = "regenerate it: trivium policy schema > deploy/policy.schema.json"


def test_the_shipped_schema_is_the_generated_one() -> None:
    shipped = (DEPLOY / "policy.schema.json").read_text(encoding="utf-8")
    assert shipped == policy_schema_text(), f"deploy/policy.schema.json is stale; {REGENERATE}"
    assert json.loads(shipped) == policy_schema()


def test_the_examples_point_editors_at_the_schema_and_satisfy_it() -> None:
    validator = jsonschema.Draft202012Validator(policy_schema())
    for name in ("policy.example.yaml", "policy.example.next.yaml"):
        text = (DEPLOY / name).read_text(encoding="utf-8")
        first = text.splitlines()[0]
        assert first == "# yaml-language-server: $schema=./policy.schema.json"
        validator.validate(yaml.safe_load(text))
