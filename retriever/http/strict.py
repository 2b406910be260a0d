"""The app's `before_request` hook: a request is checked strictly against its schema before Litestar reads it.

Litestar ignores query parameters a route does not declare, and converts bodies with
msgspec in lax mode (`strict=False` in its signature model), which takes "5" for 5, "1"
or 1 for true and "null" for null. Here an undeclared query parameter is a 422 naming
it, and a string, number or boolean of the wrong type in a body is a 422 naming the
field, as the OpenAPI document says; ints are floats (weights), as in JSON, but booleans
are not ints, and an int field takes no float (not even 5.0). A request that passes is
then handled by Litestar as before, with nothing left to coerce. Path parameters are all
strings; declared query parameters (the document listing's `limit`, `after`, `prefix`)
are typed by Litestar itself, which refuses a wrong type (`limit=ten`) or a value out of
range with a 422.
"""

from __future__ import annotations

import inspect
import re
from functools import cache
from typing import Any

import msgspec
from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import SerializationException, ValidationException
from litestar.handlers import HTTPRouteHandler

__all__ = ["strict_request"]

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$\.?(?P<key>.*)`)?$", re.DOTALL)  # msgspec: "... - at `$.a[0].b`"
_UNKNOWN = re.compile(r"^Object contains unknown field `(.*)`$", re.DOTALL)
# Handler arguments that are never query parameters: the body, the injected engine, Litestar's own.
_NOT_QUERY = frozenset({"data", "engine", "request", "state", "headers", "cookies", "scope"})


@cache
def _arguments(handler: HTTPRouteHandler) -> frozenset[str]:
    """The handler's arguments that can be query parameters (its path parameters among them)."""
    return frozenset(set(inspect.signature(handler.fn).parameters) - _NOT_QUERY)


async def strict_request(request: Request[Any, Any, State]) -> None:
    """Refuse an undeclared query parameter, and a body of the wrong types, with a 422 naming them."""
    unknown = sorted(set(request.query_params) - (_arguments(request.route_handler) - set(request.path_params)))
    if unknown:
        raise ValidationException(
            detail=f"Validation failed for {request.method} {request.url.path}",
            extra=[{"message": "unknown query parameter", "key": name, "source": "query"} for name in unknown],
        )
    await _strict_body(request)


async def _strict_body(request: Request[Any, Any, State]) -> None:
    """A body against its Struct, strictly (see the module docstring)."""
    field = request.route_handler.parsed_data_field
    if field is None or not await request.body():  # no body expected or none sent: Litestar answers as before
        return
    try:
        body = await request.json()
    except SerializationException:  # malformed JSON: Litestar's own 400, as before
        return
    try:
        msgspec.convert(body, field.annotation, strict=True)
    except msgspec.ValidationError as exc:
        found = _AT.match(str(exc))
        message, key = (found["message"], found["key"] or None) if found else (str(exc), None)
        if unknown := _UNKNOWN.match(message):  # the key is the unknown field itself
            key = f"{key}.{unknown[1]}" if key else unknown[1]
        raise ValidationException(
            detail=f"Validation failed for {request.method} {request.url.path}",
            extra=[{"message": message, "key": key, "source": "body"}],
        ) from exc
