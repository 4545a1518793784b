"""Artifact references: `name`, `name@label`, `name@3`."""

from __future__ import annotations

import re

import msgspec

from trivium.registry.errors import MalformedReferenceError

__all__ = (
    "DEFAULT_LABEL",
    "LABEL_PATTERN",
    "MAX_VERSION",
    "NAME_PATTERN",
    "SELECTOR_PATTERN",
    "Reference",
    "parse_reference",
    "validate_label",
    "validate_name",
)

DEFAULT_LABEL = "production"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_LABEL = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_VERSION = re.compile(r"[1-9][0-9]{0,8}")
NAME_PATTERN = f"^{_NAME.pattern}$"
LABEL_PATTERN = f"^{_LABEL.pattern}$"
SELECTOR_PATTERN = f"^(?:{_LABEL.pattern}|{_VERSION.pattern})$"
"""What follows `@` in a reference: a label or a version."""
MAX_VERSION = 999_999_999


class Reference(msgspec.Struct, frozen=True):
    """A parsed reference: exactly one of `label` and `version` is set."""

    name: str
    label: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.label if self.version is None else self.version}"


def validate_name(name: str, field: str = "name") -> str:
    if not _NAME.fullmatch(name):
        raise MalformedReferenceError(
            f"invalid name {name!r}: use 1-64 of a-z 0-9 . _ -, starting with a letter or digit",
            field=field,
        )
    return name


def validate_label(label: str, field: str = "label") -> str:
    if not _LABEL.fullmatch(label):
        raise MalformedReferenceError(
            f"invalid label {label!r}: use 1-32 of a-z 0-9 _ -, starting with a letter",
            field=field,
        )
    return label


def parse_reference(text: str, field: str = "ref") -> Reference:
    """Parse `name`, `name@label` or `name@<version>`; anything else is a clear error."""
    name, sep, selector = text.partition("@")
    if not sep:
        return Reference(validate_name(name, field), label=DEFAULT_LABEL)
    if "@" in selector or not selector:
        raise MalformedReferenceError(
            f"malformed reference {text!r}: expected name, name@label or name@version", field=field
        )
    validate_name(name, field)
    if selector.isdigit():
        if not _VERSION.fullmatch(selector):
            raise MalformedReferenceError(f"invalid version in {text!r}", field=field)
        return Reference(name, version=int(selector))
    return Reference(name, label=validate_label(selector, field))
