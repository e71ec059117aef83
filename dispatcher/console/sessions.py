"""Console sessions: a random id in the browser's cookie, its SHA-256 in the database.

Signing in exchanges an API token (checked by :class:`TokenRepository`) for a session of
:data:`SESSION_TTL`. The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict``
(no other site's page can make the browser send it) and ``Secure`` when the request came
over https or the service is published over https (``SMARTD_PUBLIC_URL``: behind a TLS
proxy the app itself sees plain http). Each session has its own CSRF secret, put in every
form and compared in constant time. The SQL is in ``console.sql``;
:class:`SessionRepository` is its only caller.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from dispatcher.kernel.audit import Actor, AuditAction, record
from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import Role
from dispatcher.kernel.values import header_token
from dispatcher.settings import Settings
from dispatcher.tokens import TokenInfo
from dispatcher.web.keys import SETTINGS

COOKIE = "smartd_console"
LOGIN_COOKIE = "smartd_login_csrf"  # double-submit token of the sign-in form
COOKIE_PATH = "/console"
SESSION_TTL = timedelta(hours=8)


class ConsoleSQL(SqlFile, domain="console", directory=Path(__file__).parent):
    open_session: str
    session_of: str
    close_session: str
    sweep_expired: str
    campaign_progress: str
    submits_over_time: str


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """Who is signed in: the token's id and name, the role, and the session's CSRF secret."""

    token_id: int
    name: str
    role: Role
    csrf: str
    expires_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ConsoleUser:
        """From a ``session_of`` row (the session joined to its token)."""
        return cls(
            token_id=row["token_id"],
            name=row["name"],
            role=Role(row["role"]),
            csrf=row["csrf_secret"],
            expires_at=row["expires_at"],
        )


def new_secret() -> str:
    """256 random bits, URL-safe: a session id or a CSRF token."""
    return secrets.token_urlsafe(32)


def hash_id(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8")).digest()


def same_secret(presented: str | None, expected: str) -> bool:
    """Constant-time comparison; a missing value, or one that is not printable ASCII (no
    secret of ours is), never matches."""
    presented = header_token(presented)
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("ascii"), expected.encode("utf-8"))


def cookie_secret(request: web.Request, name: str) -> str | None:
    """A session id or form token from the cookie ``name``; None when absent or not printable
    ASCII (a cookie of bytes that are not UTF-8 arrives as surrogates)."""
    return header_token(request.cookies.get(name))


class SessionRepository:
    """The only caller of the session queries of ``console.sql``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def open(self, token: TokenInfo, now: datetime) -> tuple[str, ConsoleUser]:
        """A new session for ``token``: returns the cookie value (never stored) and the
        user. Expired sessions of anyone are swept on the way."""
        session_id, csrf = new_secret(), new_secret()
        expires_at = now + SESSION_TTL
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(ConsoleSQL.sweep_expired, now)
            await conn.execute(
                ConsoleSQL.open_session,
                hash_id(session_id),
                token.id,
                token.role.value,
                csrf,
                now,
                expires_at,
            )
            by = Actor(token.name, token.role.value)
            await record(conn, by, AuditAction.SIGN_IN, now, target=f"token:{token.id}")
        return session_id, ConsoleUser(token.id, token.name, token.role, csrf, expires_at)

    async def find(self, session_id: str, now: datetime) -> ConsoleUser | None:
        """The live session of a cookie value, or None (unknown, expired, token revoked)."""
        row = await self._pool.fetchrow(ConsoleSQL.session_of, hash_id(session_id), now)
        return None if row is None else ConsoleUser.from_row(row)

    async def close(self, session_id: str) -> None:
        """Forget a session replaced by a new sign-in (the sign-in is the record)."""
        await self._pool.execute(ConsoleSQL.close_session, hash_id(session_id))

    async def sign_out(self, session_id: str, user: ConsoleUser, now: datetime) -> None:
        """End ``user``'s session, recorded in the same transaction (once: a second
        sign-out of the same session finds no row and records nothing)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(ConsoleSQL.close_session, hash_id(session_id)) is not None:
                by = Actor(user.name, user.role.value)
                await record(conn, by, AuditAction.SIGN_OUT, now, target=f"token:{user.token_id}")


def _published_over_https(request: web.Request) -> bool:
    """``SMARTD_PUBLIC_URL`` is https (an app without settings, a unit test's, is not)."""
    settings = request.app.get(SETTINGS)
    return isinstance(settings, Settings) and settings.public_https


def _cookie_options(request: web.Request) -> dict[str, Any]:
    return {
        "path": COOKIE_PATH,
        "httponly": True,
        "samesite": "Strict",
        "secure": request.secure or _published_over_https(request),
    }


def set_session_cookie(request: web.Request, response: web.StreamResponse, session_id: str) -> None:
    """The session cookie; it lives as long as the session (no longer)."""
    max_age = int(SESSION_TTL.total_seconds())
    response.set_cookie(COOKIE, session_id, max_age=max_age, **_cookie_options(request))


def set_login_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    """The sign-in form's double-submit token (there is no session to hold it yet)."""
    response.set_cookie(LOGIN_COOKIE, value, max_age=3600, **_cookie_options(request))


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path=COOKIE_PATH)
