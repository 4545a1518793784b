"""Request bodies read as strictly as the OpenAPI schema states them.

Litestar converts a decoded body into the route's msgspec struct in lax mode, so `"rerank": 0`
is read as `false` and `"k": "10"` as `10`: bodies the schema refuses would be served.
`decode_body_strictly` (an app's `before_request`) converts a JSON body into the route's struct
strictly first and answers 400 naming the member (`rerank`, `documents[0].text`); Litestar then
decodes it again as usual. As in JSON Schema, a number with no fractional part (`3.0`) is an
integer. Malformed JSON is left to Litestar's own 400.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

__all__ = ("decode_body_strictly",)

_AT = re.compile(r" - at `\$\.?([^`]*)`$")


async def decode_body_strictly(request: Request[Any, Any, Any]) -> None:
    data = request.route_handler.parsed_data_field
    target = None if data is None else data.annotation
    if not (isinstance(target, type) and issubclass(target, msgspec.Struct)):
        return
    try:
        value = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        return
    try:
        msgspec.convert(_integral_floats_as_ints(value), target, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        at = _AT.search(message)
        key = at.group(1) if at and at.group(1) else "data"
        raise ValidationException(
            message, extra=[{"message": message, "key": key, "source": "body"}]
        ) from exc


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    return value
