"""Shared set-up of the bonus tests: a ledger, members joined through Membership, row reads;
and :class:`NoBonus`, the hooks of a service run without the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from dispatcher.kernel.states import Channel, Language
from dispatcher.program import texts
from dispatcher.program.bonus_models import Forfeit, Grant
from dispatcher.program.membership import Change, Membership

NUMBERS = [f"7701000{n:04d}" for n in range(100)]


class NoBonus:
    """Bonus hooks for a service run without the bonus ledger (dispatch tests that are not
    about bonuses)."""

    async def grant_on_join(self, conn: asyncpg.Connection, msisdn: str, now: datetime) -> None:
        return None

    async def join_text(
        self,
        conn: asyncpg.Connection,
        msisdn: str,
        granted: bool,
        language: Language,
        now: datetime,
    ) -> str:
        return texts.text("joined_see_balance", language)

    async def grant_on_return(
        self, conn: asyncpg.Connection, msisdn: str, language: Language, now: datetime
    ) -> None:
        return None

    async def forfeit(self, conn: asyncpg.Connection, msisdn: str, now: datetime) -> Forfeit:
        return Forfeit()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


async def join(pool: asyncpg.Pool, membership: Membership, msisdn: str, now: datetime) -> Change:
    """R1 join through the real membership code, which calls the ledger's grant_on_join."""
    async with pool.acquire() as conn, conn.transaction():
        return await membership.join(conn, msisdn, Channel.USSD, {"ussd_session": "t"}, now)


async def leave(pool: asyncpg.Pool, membership: Membership, msisdn: str, now: datetime) -> Change:
    """R2 leave through the real membership code, which calls the ledger's forfeit."""
    async with pool.acquire() as conn, conn.transaction():
        return await membership.leave(
            conn, msisdn, Channel.USSD, {"ussd_session": "t"}, now, reason="ussd"
        )


async def grants_of(pool: asyncpg.Pool, msisdn: str) -> list[Grant]:
    rows = await pool.fetch("SELECT * FROM bonus_grants WHERE msisdn = $1 ORDER BY id", msisdn)
    return [Grant.from_row(r) for r in rows]


async def credits(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM bonus_credits ORDER BY grant_id")
    return [dict(r) for r in rows]


async def forfeits(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM bonus_forfeits ORDER BY grant_id")
    return [dict(r) for r in rows]
