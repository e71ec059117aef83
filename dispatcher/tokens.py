"""API tokens: random bearer secrets of which only a SHA-256 hash is stored.

A token is 32 random bytes (256 bits), so a plain hash is enough: nothing can be guessed or
brute-forced from it, and lookup stays one index probe per request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import Role

TOKEN_PREFIX = "smartd_"


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

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self, name: str, role: Role, expires_at: datetime | None = None
    ) -> tuple[str, TokenInfo]:
        """Create a token; the plain token is returned here once and never stored."""
        token = new_token()
        row = await self._pool.fetchrow(
            TokenSQL.insert_token, name, role.value, hash_token(token), expires_at
        )
        return token, TokenInfo.from_row(row)

    async def authenticate(self, token: str, now: datetime) -> TokenInfo | None:
        row = await self._pool.fetchrow(TokenSQL.authenticate, hash_token(token), now)
        return None if row is None else TokenInfo.from_row(row)

    async def list(self) -> list[TokenInfo]:
        return [TokenInfo.from_row(r) for r in await self._pool.fetch(TokenSQL.list_tokens)]

    async def revoke(self, token_id: int, now: datetime) -> bool:
        return await self._pool.fetchval(TokenSQL.revoke_token, token_id, now) is not None
