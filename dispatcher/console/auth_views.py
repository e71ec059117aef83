"""Sign-in with an API token, and sign-out.

The sign-in form is protected against login CSRF by a double-submit token: a random value
in a ``SameSite=Strict`` cookie and in the form, which must match. A successful sign-in
always starts a *new* session (a session id planted before cannot be adopted).
"""

from __future__ import annotations

import structlog
from aiohttp import web

from dispatcher.console.guard import (
    USER,
    action,
    error_page,
    render,
    safe_next,
    same_origin,
    see_other,
    signed_in,
)
from dispatcher.console.sessions import (
    COOKIE,
    LOGIN_COOKIE,
    SessionRepository,
    clear_cookie,
    cookie_secret,
    new_secret,
    same_secret,
    set_login_cookie,
    set_session_cookie,
)
from dispatcher.kernel.states import Role
from dispatcher.web.auth import public
from dispatcher.web.keys import CLOCK, DATABASE, TOKENS

log = structlog.get_logger(__name__)
MAX_TOKEN_CHARS = 200


@public
async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in page (or straight on, when a live session exists)."""
    target = safe_next(request.query.get("next"))
    if await signed_in(request) is not None:
        return see_other(target)
    return _login_page(request, target)


def _login_page(
    request: web.Request, target: str, error: str | None = None, status: int = 200
) -> web.Response:
    form_token = new_secret()
    context = {"form_token": form_token, "next": target, "error": error}
    response = render(request, "login.html", context, status=status)
    set_login_cookie(request, response, form_token)
    return response


@public
async def login(request: web.Request) -> web.StreamResponse:
    """Check the token; on success a session cookie and 303 to ``next``; otherwise the
    form again with 401 (bad token), 403 (a gateway token, or a forged form)."""
    form = await request.post()
    target = safe_next(_field(form, "next"))
    forged = not same_origin(request) or not same_secret(
        _field(form, "csrf"), cookie_secret(request, LOGIN_COOKIE) or ""
    )
    if forged:
        return error_page(request, 403, "Form expired", "Reload the sign-in page and retry.")
    token = _field(form, "token").strip()
    now = request.app[CLOCK].now()
    caller = None
    if 0 < len(token) <= MAX_TOKEN_CHARS:
        caller = await request.app[TOKENS].authenticate(token, now)
    if caller is None:
        log.info("console sign-in refused", reason="invalid token")
        return _login_page(request, target, "That token is unknown, expired or revoked.", 401)
    if caller.role is Role.GATEWAY:
        log.info("console sign-in refused", reason="gateway token", token=caller.name)
        return _login_page(request, target, "Gateway tokens cannot use the console.", 403)
    sessions = SessionRepository(request.app[DATABASE].pool)
    if old := cookie_secret(request, COOKIE):
        await sessions.close(old)
    session_id, user = await sessions.open(caller, now)
    log.info("console sign-in", token=user.name, role=user.role.value)
    response = see_other(target)
    set_session_cookie(request, response, session_id)
    clear_cookie(response, LOGIN_COOKIE)
    return response


def _field(form: object, name: str) -> str:
    value = form.get(name) if hasattr(form, "get") else None
    return value if isinstance(value, str) else ""


@action(Role.VIEWER)
async def logout(request: web.Request) -> web.StreamResponse:
    """End the session (its row is deleted) and forget the cookie."""
    session_id = cookie_secret(request, COOKIE) or ""
    user = request[USER]
    await SessionRepository(request.app[DATABASE].pool).sign_out(
        session_id, user, request.app[CLOCK].now()
    )
    log.info("console sign-out", token=user.name)
    response = see_other("/console/login")
    clear_cookie(response, COOKIE)
    return response
