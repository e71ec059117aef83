"""Access to console pages: a signed-in session, the role, and CSRF on every POST.

Console handlers are declared with :func:`view` (GET pages) or :func:`action` (POST forms
and the JSON preview) instead of the API's bearer-token roles. For the API's middleware
they are ``public`` — a browser sends no ``Authorization`` header — and the decorator
itself enforces the session, so ``check_routes`` still sees every route declared. The
role a page needs is kept on the handler (:func:`console_role_of`) for tests and docs.

An action is refused with 403 unless it carries the session's CSRF token: the form field
``csrf`` (for multipart bodies, the *first* field), or the ``X-CSRF-Token`` header for
JSON. A POST whose ``Origin`` names another host is refused too.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import BodyPartReader, MultipartReader, web

from dispatcher.console.sessions import (
    COOKIE,
    ConsoleUser,
    SessionRepository,
    cookie_secret,
    same_secret,
)
from dispatcher.kernel.audit import Actor
from dispatcher.kernel.states import Role
from dispatcher.kernel.values import header_token
from dispatcher.web.auth import GRANTS, public
from dispatcher.web.keys import CLOCK, DATABASE, SETTINGS

ConsoleHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Body = Literal["urlencoded", "multipart", "json"]

USER = web.RequestKey("console_user", ConsoleUser)
#: The multipart reader of an action whose CSRF field was already read from it.
MULTIPART = web.RequestKey("console_multipart", MultipartReader)
_ROLE = "__console_role__"
_BODY = "__console_body__"
LOGIN_PATH = "/console/login"
MAX_NEXT = 2000

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def console_role_of(handler: object) -> Role | None:
    """The role a console handler needs (None for pages open without a session)."""
    return getattr(handler, _ROLE, None)


def view(role: Role) -> Callable[[ConsoleHandler], ConsoleHandler]:
    """A page for a signed-in user of at least ``role``; without a session, the browser
    is sent to the sign-in page (and back here afterwards)."""
    return _guard(role, None)


def action(role: Role, body: Body = "urlencoded") -> Callable[[ConsoleHandler], ConsoleHandler]:
    """A POST of a signed-in user of at least ``role`` carrying the session's CSRF token
    in a ``body`` of the given kind; otherwise 403 (no side effect happens)."""
    return _guard(role, body)


def _guard(role: Role, body: Body | None) -> Callable[[ConsoleHandler], ConsoleHandler]:
    def wrap(handler: ConsoleHandler) -> ConsoleHandler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            user = await signed_in(request)
            if user is None:
                if body is None:
                    return redirect_to_login(request)
                return error_page(request, 403, "Signed out", "Your session ended; sign in again.")
            if role not in GRANTS[user.role]:
                return error_page(
                    request, 403, "Not allowed", f"A {user.role} token cannot do this."
                )
            request[USER] = user
            if body is not None and not await _csrf_ok(request, user, body):
                return error_page(
                    request, 403, "Form expired", "The form's security token did not match."
                )
            return secured(await handler(request))

        setattr(guarded, _ROLE, role)
        setattr(guarded, _BODY, body)
        return public(guarded)

    return wrap


async def signed_in(request: web.Request) -> ConsoleUser | None:
    """The session named by the request's cookie, if it is live."""
    session_id = cookie_secret(request, COOKIE)
    if session_id is None:
        return None
    repository = SessionRepository(request.app[DATABASE].pool)
    return await repository.find(session_id, request.app[CLOCK].now())


def see_other(location: str) -> web.Response:
    """303 See Other: the browser GETs ``location`` (after a POST, no resubmission)."""
    return secured(web.Response(status=303, headers={"Location": location}))


def redirect_to_login(request: web.Request) -> web.Response:
    return see_other(f"{LOGIN_PATH}?next={quote(request.path_qs, safe='')}")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path, never another site, and only printable
    ASCII (it becomes a ``Location`` header: a control character there would drop the
    connection after the session was opened)."""
    default = "/console/campaigns"
    if not value or not value.startswith("/console") or "\\" in value:
        return default
    if header_token(value, MAX_NEXT) is None:
        return default
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else default


def same_origin(request: web.Request) -> bool:
    """False when the browser says the POST comes from a page of another host."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    if header_token(origin) is None:
        return False
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:  # e.g. an invalid IPv6 literal
        return False
    public = request.app[SETTINGS].public_url
    return netloc == request.host or (public is not None and netloc == urlsplit(public).netloc)


async def _csrf_ok(request: web.Request, user: ConsoleUser, body: Body) -> bool:
    if not same_origin(request):
        return False
    if body == "json":
        return same_secret(request.headers.get("X-CSRF-Token"), user.csrf)
    if body == "urlencoded":
        if request.content_type != "application/x-www-form-urlencoded":
            return False
        form = await request.post()
        presented = form.get("csrf")
        return same_secret(presented if isinstance(presented, str) else None, user.csrf)
    return await _multipart_csrf_ok(request, user)


async def _multipart_csrf_ok(request: web.Request, user: ConsoleUser) -> bool:
    """The first multipart field must be ``csrf``; the reader is kept for the handler."""
    if not request.content_type.startswith("multipart/form-data"):
        return False
    reader = await request.multipart()
    part = await reader.next()
    if not isinstance(part, BodyPartReader) or part.name != "csrf":
        return False
    presented = await read_field(part, 128)
    request[MULTIPART] = reader
    return same_secret(presented, user.csrf)


async def read_field(part: BodyPartReader, limit: int) -> str | None:
    """A multipart text field of at most ``limit`` bytes (None if longer: it is drained,
    never held in memory whole)."""
    data = bytearray()
    while chunk := await part.read_chunk(4096):
        if len(data) + len(chunk) > limit:
            while await part.read_chunk(1 << 16):
                pass
            return None
        data.extend(chunk)
    return bytes(data).decode("utf-8", "replace")


R = TypeVar("R", bound=web.StreamResponse)


def secured(response: R) -> R:
    """Add the console's security headers (CSP, no framing, no caching) to a response."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def console_actor(request: web.Request) -> Actor:
    """The signed-in person as the audit trail records them: the token's name and role."""
    user = request[USER]
    return Actor(user.name, user.role.value)


def can_act(user: ConsoleUser | None) -> bool:
    """Whether the user may create campaigns and change their state."""
    return user is not None and Role.MARKETER in GRANTS[user.role]


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    """A page: ``template`` with ``context`` and the signed-in user, CSRF token and rights."""
    user = request.get(USER)
    base = {
        "user": user,
        "csrf": user.csrf if user else None,
        "can_act": can_act(user),
        "path": request.path,
    }
    response = aiohttp_jinja2.render_template(template, request, base | context, status=status)
    secured(response)
    return response


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    """An HTML error page (the console never answers with the API's JSON errors)."""
    return render(request, "error.html", {"title": title, "message": message}, status=status)


def refusal_page(request: web.Request, status: int, code: str, message: str) -> web.Response | None:
    """The error middleware's answer under ``/console`` (``HTML_ERRORS``): an error page,
    except for a JSON action (the preview), which keeps the API's error shape."""
    if getattr(request.match_info.handler, _BODY, None) == "json":
        return None
    if status == 404:
        return error_page(request, 404, "Page not found", f"There is no page at {request.path}.")
    if status >= 500:
        title, message = "Something went wrong", SERVER_ERROR
    else:
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
    return error_page(request, status, title, message)


SERVER_ERROR = (
    "The console could not show this page; the error has been logged. Try again in a "
    "moment, or go back to the campaigns."
)
