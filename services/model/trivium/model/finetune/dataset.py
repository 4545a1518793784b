"""Fine-tuning data: JSONL of prompt/completion records or chat transcripts, checked line by line.

Each non-blank line is one JSON object, either

* ``{"prompt": "...", "completion": "..."}``: the prompt becomes one user message, or
* ``{"messages": [{"role": "...", "content": "..."}, ...]}``: the last message must be the
  assistant's and is the completion; the messages before it are the prompt.

Errors name the line (``field="data:line 7"``), so a bad record in a large file is one look away.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trivium.common.errors import InvalidInputError

__all__ = ("ROLES", "Example", "Message", "dataset_sha256", "load_dataset")

ROLES = frozenset({"system", "user", "assistant"})


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Example:
    """One training example: the conversation so far and the answer the model should give."""

    prompt: tuple[Message, ...]
    completion: str
    line: int


def dataset_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_dataset(path: Path) -> list[Example]:
    """Read and check every record of a JSONL file; raise InvalidInputError naming the line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read dataset {path}: {exc}", field="data") from exc
    examples = []
    for number, line_bytes in enumerate(raw.splitlines(), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _error(number, f"is not UTF-8 text ({exc.reason})") from exc
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _error(number, f"is not JSON: {exc.msg} (column {exc.colno})") from exc
        examples.append(_parse_record(record, number))
    if not examples:
        raise InvalidInputError(f"dataset {path} holds no records", field="data")
    return examples


def _error(line: int, problem: str) -> InvalidInputError:
    return InvalidInputError(f"line {line}: {problem}", field=f"data:line {line}")


def _parse_record(record: Any, line: int) -> Example:
    if not isinstance(record, dict):
        raise _error(line, f"expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        return _parse_chat(record["messages"], line)
    for key in ("prompt", "completion"):
        if key not in record:
            raise _error(line, f"missing {key!r} (or give a 'messages' list)")
    prompt = _text(record["prompt"], "prompt", line)
    completion = _text(record["completion"], "completion", line)
    return Example((Message("user", prompt),), completion, line)


def _parse_chat(messages: Any, line: int) -> Example:
    if not isinstance(messages, list):
        raise _error(line, f"'messages' must be a list, got {type(messages).__name__}")
    parsed = [_parse_message(message, index, line) for index, message in enumerate(messages)]
    if len(parsed) < 2:
        raise _error(line, "'messages' needs a prompt and a final assistant message")
    if parsed[-1].role != "assistant":
        raise _error(line, f"the last message must be the assistant's, not {parsed[-1].role!r}")
    return Example(tuple(parsed[:-1]), parsed[-1].content, line)


def _parse_message(message: Any, index: int, line: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise _error(line, f"{where} must be an object, got {type(message).__name__}")
    for key in ("role", "content"):
        if key not in message:
            raise _error(line, f"{where} is missing {key!r}")
    role = _text(message["role"], f"{where}.role", line)
    if role not in ROLES:
        raise _error(line, f"{where}.role must be one of {', '.join(sorted(ROLES))}, not {role!r}")
    return Message(role, _text(message["content"], f"{where}.content", line))


def _text(value: Any, name: str, line: int) -> str:
    if not isinstance(value, str):
        raise _error(line, f"{name!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise _error(line, f"{name!r} is empty")
    return value
