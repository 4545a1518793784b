"""The policy file's JSON Schema, from its model: editors complete and check a policy with it.

Shipped as `deploy/policy.schema.json`; regenerate it with
`trivium policy schema > deploy/policy.schema.json` after changing `document.py`.
"""

from __future__ import annotations

import json
from typing import Any

from trivium.gateway.policy.document import PolicyFile

__all__ = ("JSON_SCHEMA_DIALECT", "policy_schema", "policy_schema_text")

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""What pydantic generates; named in the schema so editors read it right."""


def policy_schema() -> dict[str, Any]:
    return {"$schema": JSON_SCHEMA_DIALECT, **PolicyFile.model_json_schema()}


def policy_schema_text() -> str:
    """The schema as the shipped file holds it: two-space indents, a final newline."""
    return json.dumps(policy_schema(), indent=2, ensure_ascii=False) + "\n"
