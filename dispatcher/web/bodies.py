"""Request bodies: JSON objects and their fields, with 400s in the error shape.

Every JSON body of the API and the console is read by :func:`json_value`: at most
:data:`MAX_JSON_DEPTH` levels of arrays and objects (200,000 ``[`` would otherwise exhaust
the parser's recursion and the handlers that walk the value).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from dispatcher.kernel.msisdn import InvalidMsisdn, normalise
from dispatcher.web.errors import ApiError
from dispatcher.web.keys import SETTINGS

MAX_JSON_DEPTH = 32


async def json_value(request: web.Request) -> Any:
    """The body as JSON nested at most :data:`MAX_JSON_DEPTH` deep, or 400 ``invalid_json``."""
    try:
        body = await request.json(loads=json.loads)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", "request body is not valid JSON") from exc
    except RecursionError:
        body = None
    else:
        if json_depth(body) <= MAX_JSON_DEPTH:
            return body
    raise ApiError(400, "invalid_json", f"request body nests deeper than {MAX_JSON_DEPTH} levels")


def json_depth(value: Any) -> int:
    """How deep arrays and objects nest in ``value`` (0 for a scalar); iterative."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or 400 ``invalid_json``."""
    body = await json_value(request)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "request body must be a JSON object")
    return body


def string_field(
    body: dict[str, Any], name: str, *, max_length: int = 200, required: bool = True
) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ApiError(400, "invalid_field", f"{name} must be a non-empty string", {"field": name})
    if len(value) > max_length:
        raise ApiError(
            400, "invalid_field", f"{name} is longer than {max_length} characters", {"field": name}
        )
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise ApiError(400, "invalid_field", f"{name} contains a NUL character", {"field": name})
    return value


def msisdn_field(request: web.Request, body: dict[str, Any], name: str = "msisdn") -> str:
    raw = string_field(body, name, max_length=32)
    assert raw is not None
    return msisdn_value(request, raw)


def msisdn_value(request: web.Request, raw: str) -> str:
    try:
        return normalise(raw, request.app[SETTINGS].default_region)
    except InvalidMsisdn as exc:
        raise ApiError(400, "invalid_msisdn", exc.reason, {"value": "…" + raw[-4:]}) from exc
