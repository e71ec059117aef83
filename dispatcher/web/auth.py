"""Bearer-token authentication and per-route roles: one mechanism for every route.

Each handler declares who may call it with :func:`requires` or :func:`public`;
:func:`check_routes` refuses to start an app with an undeclared route, so no endpoint is
ever open by omission. Failures are 401 (no or bad token) and 403 (wrong role).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from dispatcher.kernel.states import Role
from dispatcher.kernel.values import header_token
from dispatcher.web.errors import ApiError
from dispatcher.web.keys import CALLER, CLOCK, TOKENS, Handler, TokenInfo

_ACCESS = "__smartd_access__"
PUBLIC = "public"

#: The endpoint roles a token of each role may call.
GRANTS: dict[Role, frozenset[Role]] = {
    Role.ADMIN: frozenset(Role),
    Role.MARKETER: frozenset({Role.MARKETER, Role.VIEWER}),
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.GATEWAY: frozenset({Role.GATEWAY}),
}

H = TypeVar("H", bound=Callable[..., object])


def requires(role: Role) -> Callable[[H], H]:
    """Declare the role an endpoint needs (an admin token may call every endpoint)."""

    def mark(handler: H) -> H:
        setattr(handler, _ACCESS, role)
        return handler

    return mark


def public(handler: H) -> H:
    """Declare an endpoint open without a token (health, metrics, sign-in page)."""
    setattr(handler, _ACCESS, PUBLIC)
    return handler


def access_of(handler: object) -> Role | str | None:
    return getattr(handler, _ACCESS, None)


def check_routes(app: web.Application) -> None:
    """Fail at start-up if any route's handler lacks an access declaration."""
    for route in app.router.routes():
        if access_of(route.handler) is None:
            raise RuntimeError(f"route {route.method} {route.resource} declares no access role")


def bearer_token(request: web.Request) -> str | None:
    """The bearer token of ``Authorization``; None when absent or not printable ASCII (bytes
    that are not UTF-8 arrive as surrogates and are refused here, never encoded again)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return header_token(token.strip())


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    match = request.match_info
    if match.http_exception is not None:  # 404 / 405: nothing to protect
        raise match.http_exception
    needed = access_of(match.handler)
    if needed == PUBLIC:
        return await handler(request)
    if not isinstance(needed, Role):
        raise ApiError(403, "forbidden", "this endpoint declares no access")
    caller = await _authenticate(request)
    if needed not in GRANTS[caller.role]:
        raise ApiError(
            403,
            "forbidden",
            f"role {caller.role} may not call this endpoint",
            {"required": needed.value},
        )
    request[CALLER] = caller
    return await handler(request)


async def _authenticate(request: web.Request) -> TokenInfo:
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "unauthorized", "missing bearer token")
    now = request.app[CLOCK].now()
    caller = await request.app[TOKENS].authenticate(token, now)
    if caller is None:
        raise ApiError(401, "unauthorized", "invalid, expired or revoked token")
    return caller
