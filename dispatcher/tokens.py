"""API tokens: random bearer secrets of which only a SHA-256 hash is stored.

A token is 32 random bytes (256 bits), so a plain hash is enough: nothing can be guessed or
brute-forced from it, and lookup stays one index probe per request.

A repository remembers the tokens it authenticated for :data:`AUTH_CACHE_SECONDS` (by the
caller's clock), so a busy gateway costs one token query per few seconds, not one per request
(issue 16). The bound this puts on revocation: a token revoked through the same repository
(the service's own) stops at once; one revoked elsewhere (``smartd token revoke``, another
replica) stops within :data:`AUTH_CACHE_SECONDS`. An expiry is checked on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from dispatcher.kernel.audit import SYSTEM, Actor, AuditAction, record
from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import Role

TOKEN_PREFIX = "smartd_"
#: How long an authenticated token is taken on trust without asking the database again: the
#: longest a token revoked by another process keeps working here.
AUTH_CACHE_SECONDS = 5.0
#: At most this many tokens remembered (forgotten all at once past it: tokens are few).
AUTH_CACHE_SIZE = 1024


class TokenSQL(SqlFile, domain="tokens"):
    insert_token: str
    authenticate: str
    list_tokens: str
    revoke_token: str


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    role: Role
    created_at: datetime | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record | dict[str, Any]) -> TokenInfo:
        data = dict(row)
        return cls(**{**data, "role": Role(data["role"])})


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenRepository:
    """The only caller of tokens.sql."""

    def __init__(self, pool: asyncpg.Pool, *, cache_seconds: float = AUTH_CACHE_SECONDS) -> None:
        self._pool = pool
        self._cache_for = timedelta(seconds=cache_seconds)
        #: token hash -> (the token, when it was checked in the database, its expiry)
        self._cache: dict[bytes, tuple[TokenInfo, datetime, datetime | None]] = {}

    async def create(
        self,
        name: str,
        role: Role,
        expires_at: datetime | None = None,
        *,
        actor: Actor = SYSTEM,
        now: datetime | None = None,
    ) -> tuple[str, TokenInfo]:
        """Create a token; the plain token is returned here once and never stored. Recorded
        in the audit trail (its id, name, role and expiry; never the token) in the same
        transaction, at ``now`` (default: the database's clock)."""
        token = new_token()
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                TokenSQL.insert_token, name, role.value, hash_token(token), expires_at
            )
            info = TokenInfo.from_row(row)
            details = {
                "name": info.name,
                "role": info.role.value,
                "expires_at": None if expires_at is None else expires_at.isoformat(),
            }
            await record(
                conn,
                actor,
                AuditAction.TOKEN_CREATE,
                now,
                target=f"token:{info.id}",
                details=details,
            )
        return token, info

    async def authenticate(self, token: str, now: datetime) -> TokenInfo | None:
        """The live token's holder, or None (unknown, expired or revoked). Asks the database
        (and stamps ``last_used_at``) at most once per :data:`AUTH_CACHE_SECONDS` per token;
        an unknown token is never remembered."""
        digest = hash_token(token)
        cached = self._cache.get(digest)
        if cached is not None:
            info, checked_at, expires_at = cached
            fresh = checked_at <= now < checked_at + self._cache_for
            if fresh and (expires_at is None or now < expires_at):
                return info
            del self._cache[digest]
        row = await self._pool.fetchrow(TokenSQL.authenticate, digest, now)
        if row is None:
            return None
        info = TokenInfo.from_row({k: row[k] for k in ("id", "name", "role")})
        if self._cache_for > timedelta(0):
            if len(self._cache) >= AUTH_CACHE_SIZE:
                self._cache.clear()
            self._cache[digest] = (info, now, row["expires_at"])
        return info

    async def list(self) -> list[TokenInfo]:
        return [TokenInfo.from_row(r) for r in await self._pool.fetch(TokenSQL.list_tokens)]

    async def revoke(self, token_id: int, now: datetime, *, actor: Actor = SYSTEM) -> bool:
        """Revoke a token (recorded in the audit trail in the same transaction); this
        repository forgets it at once (others within the bound)."""
        async with self._pool.acquire() as conn, conn.transaction():
            revoked = await conn.fetchval(TokenSQL.revoke_token, token_id, now) is not None
            if revoked:
                await record(conn, actor, AuditAction.TOKEN_REVOKE, now, target=f"token:{token_id}")
        for digest, (info, _, _) in list(self._cache.items()):
            if info.id == token_id:
                del self._cache[digest]
        return revoked
