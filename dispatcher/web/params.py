"""Path and query parameters: ids and integers through :mod:`dispatcher.kernel.values`.

A campaign id that is no ``bigint`` (too long, non-ASCII digits) names no campaign: 404, as an
unknown id does. A query integer out of range is a 400 ``invalid_query``.
"""

from __future__ import annotations

from aiohttp import web

from dispatcher.kernel.values import parse_id, parse_int
from dispatcher.web.errors import ApiError


def path_id(request: web.Request, name: str = "id") -> int:
    """The id in the path, or 404 (no such thing can exist)."""
    raw = request.match_info.get(name)
    value = parse_id(raw)
    if value is None:
        raise ApiError(404, "not_found", f"no campaign {(raw or '')[:24]!r}")
    return value


def query_int(request: web.Request, name: str, low: int, high: int) -> int | None:
    """``?name=`` as an integer in ``low..high``; None when absent, else 400."""
    raw = request.query.get(name)
    if raw is None:
        return None
    value = parse_int(raw, low, high)
    if value is None:
        raise ApiError(
            400, "invalid_query", f"{name} must be an integer {low}-{high}", {"field": name}
        )
    return value
