"""The policy file against its model (`document.py`): every error, named by its dotted path.

Pydantic stops at the first error of each value but goes on with the rest, so one pass finds
every error in the values. The names that tie the file together are checked afterwards, on the
document (`resolve.py`); so that they are checked even in a file with errors, the broken values
are dropped and the rest read again, until what is left reads without error. An error caused
by a dropped value is not reported. Rules about how a mapping's entries combine (type
`COMBINATION`) drop nothing: once they are the only errors left, they are waived.
"""

from __future__ import annotations

import copy
import types
from typing import Annotated, Any, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from trivium.gateway.policy.document import (
    COMBINATION,
    PATTERN_MESSAGES,
    ROAD_CLASSES,
    ROAD_NEEDS,
    WAIVE_COMBINATIONS,
    PolicyFile,
)
from trivium.gateway.policy.errors import ROOT, PolicyIssue
from trivium.gateway.policy.model import Road

__all__ = ("dotted", "validate")

Path = tuple[str | int, ...]

_INTEGER = frozenset({"int_type", "int_parsing", "int_from_float"})
_NUMBER = frozenset({"float_type", "float_parsing", "finite_number"})
_BOOLEAN = frozenset({"bool_type", "bool_parsing"})
_TEXT = frozenset({"string_type", "string_too_short"})
_MAPPING = frozenset({"dict_type", "model_type", "model_attributes_type"})
_BOUNDS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def validate(data: object) -> tuple[PolicyFile | None, list[PolicyIssue]]:
    """The file as a document and every error in its values; with errors, the document holds
    what reads without them (None: nothing does), for the cross-reference checks only."""
    working = copy.deepcopy(data)
    issues: list[PolicyIssue] = []
    dropped: list[Path] = []
    waive = False
    while True:
        try:
            document = PolicyFile.model_validate(working, context={WAIVE_COMBINATIONS: waive})
        except ValidationError as exc:
            errors = [(error, *_describe(error)) for error in exc.errors()]
        else:
            return document, issues
        for _, path, message in errors:
            issue = PolicyIssue(dotted(path), message)
            if not any(path[: len(gone)] == gone for gone in dropped) and issue not in issues:
                issues.append(issue)
        progress = False
        for error, path, _ in errors:
            if error["type"] != COMBINATION and (gone := _drop(working, path)) is not None:
                dropped.append(gone)
                progress = True
        if not progress:
            if waive:
                return None, issues
            waive = True


def dotted(path: Path) -> str:
    """`("features", "x", "fallback", 1)` -> `features.x.fallback[1]`; `()` -> the file."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text or ROOT


class _Place(NamedTuple):
    """Where an error is, followed through the model along its location."""

    path: Path
    """Through the file's own keys and indexes: union tags and `[key]` markers left out."""
    model: type[BaseModel] | None
    """The model holding the field (or the unknown key) the error is about."""
    field: FieldInfo | None
    declared: Any
    """The type declared at the error, without Annotated and None."""


def _place(loc: tuple[str | int, ...]) -> _Place:
    path: list[str | int] = []
    model: type[BaseModel] | None = None
    field: FieldInfo | None = None
    declared: Any = PolicyFile
    for part in loc:
        declared = _bare(declared)
        members = _union_members(declared)
        if members:
            declared = members.get(str(part))
            continue
        if part == "[key]":
            declared = get_args(declared)[0] if get_origin(declared) is dict else None
            continue
        path.append(part)
        if isinstance(declared, type) and issubclass(declared, BaseModel):
            model, field = declared, declared.model_fields.get(str(part))
            declared = field.annotation if field is not None else None
        elif get_origin(declared) is dict:
            declared = get_args(declared)[1]
        elif get_origin(declared) is list:
            declared = get_args(declared)[0]
        else:
            declared = None
    return _Place(tuple(path), model, field, _bare(declared))


def _bare(declared: Any) -> Any:
    """`declared` without Annotated and, when one type is left, without None."""
    while True:
        if get_origin(declared) is Annotated:
            declared = get_args(declared)[0]
            continue
        if get_origin(declared) in (Union, types.UnionType):
            members = [arg for arg in get_args(declared) if arg is not type(None)]
            if len(members) == 1:
                declared = members[0]
                continue
        return declared


def _union_members(declared: Any) -> dict[str, Any]:
    """A tagged union's members by tag (a `Tag`, else the member's one-value Literal)."""
    if get_origin(declared) not in (Union, types.UnionType):
        return {}
    members = {}
    for member in get_args(declared):
        tags = [getattr(meta, "tag", None) for meta in getattr(member, "__metadata__", ())]
        model = _bare(member)
        if isinstance(model, type) and issubclass(model, BaseModel):
            tags += [
                args[0]
                for field in model.model_fields.values()
                if len(args := get_args(field.annotation)) == 1 and isinstance(args[0], str)
            ]
        members.update({tag: model for tag in tags if isinstance(tag, str)})
    return members


def _describe(error: ErrorDetails) -> tuple[Path, str]:
    """The error's path through the file and a message for whoever edits it."""
    place = _place(error["loc"])
    kind, value, ctx = error["type"], error["input"], error.get("ctx", {})
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "")).strip("'")
        tags = ", ".join(_union_members(place.declared))
        if kind == "union_tag_invalid":
            return (*place.path, key), f"must be one of: {tags} (got {ctx.get('tag')!r})"
        return (*place.path, key), f"is required (one of: {tags})"
    return place.path, _message(kind, value, ctx, place) or error["msg"]


def _message(kind: str, value: Any, ctx: dict[str, Any], place: _Place) -> str | None:
    if kind == "missing":
        road = _ROAD_OF.get(place.model) if place.model is not None else None
        if road is not None and place.path[-1] in ROAD_NEEDS[road]:
            return f"required by route {road}"
        return "is required"
    if kind == "extra_forbidden":
        known = ", ".join(place.model.model_fields) if place.model is not None else ""
        return f"unknown key {place.path[-1]!r}; expected one of: {known}"
    if kind == "literal_error":
        options = ", ".join(str(option) for option in get_args(place.declared))
        return f"must be one of: {options} (got {value!r})"
    if kind == "string_pattern_mismatch":
        return PATTERN_MESSAGES.get(ctx["pattern"], "invalid value {value!r}").format(value=value)
    if kind in _BOUNDS:
        return _bounds(place.field)
    if kind in _MAPPING:
        names = get_origin(place.declared) is dict
        return "must be a mapping of names" if names else "must be a mapping"
    return _TYPES.get(kind)


_ROAD_OF: dict[type[BaseModel], Road] = {cls: road for road, cls in ROAD_CLASSES.items()}
_TYPES = {
    **dict.fromkeys(_INTEGER, "must be an integer"),
    **dict.fromkeys(_NUMBER, "must be a number"),
    **dict.fromkeys(_BOOLEAN, "must be true or false"),
    **dict.fromkeys(_TEXT, "must be a non-empty string"),
    "list_type": "must be a list of names",
}


def _bounds(field: FieldInfo | None) -> str | None:
    """The field's whole range, not just the bound crossed: `must be between 1 and 100`."""
    bounds: dict[str, Any] = {}
    for meta in field.metadata if field is not None else ():
        for name in ("gt", "ge", "le"):
            if getattr(meta, name, None) is not None:
                bounds[name] = getattr(meta, name)
    if "gt" in bounds and "le" in bounds:
        return f"must be above {_number(bounds['gt'])} and at most {_number(bounds['le'])}"
    if "ge" in bounds and "le" in bounds:
        return f"must be between {_number(bounds['ge'])} and {_number(bounds['le'])}"
    if bounds.get("ge") == 0:
        return "must be a non-negative integer"
    return None


def _number(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def _drop(data: Any, path: Path) -> Path | None:
    """Remove the value at `path` from `data`: a list item takes its list with it, a missing
    value the object lacking it. The path removed; None when nothing could be."""
    if not path:
        return None
    parent: Any = data
    for part in path[:-1]:
        parent = _child(parent, part)
        if parent is _ABSENT:
            return None
    if isinstance(parent, list):
        return _drop(data, path[:-1])
    if isinstance(parent, dict) and path[-1] in parent:
        del parent[path[-1]]
        return path
    return _drop(data, path[:-1])


_ABSENT = object()


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part, _ABSENT)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _ABSENT
