"""USSD: the ``*555#`` menu and the short codes (R1, R2, R4, R6), over HTTP or SMPP.

:func:`parse_request` is pure: the dialled string (or a menu choice inside an open menu
session) → an action. :class:`UssdDesk` carries the action out and answers with a text that
fits one screen and whether the session ends; :class:`UssdSessions` remembers which gateway
sessions are inside the menu.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import Channel, Language
from dispatcher.program import texts
from dispatcher.program.membership import Membership

MENU = "main"


class Action(enum.Enum):
    MENU = "menu"
    JOIN = "join"
    LEAVE = "leave"
    ACTIVATE = "activate"
    BALANCE = "balance"
    UNKNOWN = "unknown"


_CODES = {
    "*555#": Action.MENU,
    "*555*1#": Action.JOIN,
    "*555*2#": Action.LEAVE,
    "*555*00#": Action.ACTIVATE,
    "*111*3#": Action.BALANCE,
}
_MENU_CHOICES = {"1": Action.JOIN, "2": Action.LEAVE, "3": Action.ACTIVATE, "4": Action.BALANCE}


def parse_request(dialled: str, in_menu: bool) -> Action:
    """The action a USSD input asks for. Inside a menu session a bare digit is a choice."""
    compact = "".join(dialled.split())
    if in_menu and compact in _MENU_CHOICES:
        return _MENU_CHOICES[compact]
    return _CODES.get(compact, Action.UNKNOWN)


class UssdSQL(SqlFile, domain="ussd"):
    get_session: str
    put_session: str
    end_session: str
    expire_sessions: str


@dataclass(frozen=True, slots=True)
class UssdSession:
    """A gateway session inside a menu: who opened it and which menu it shows."""

    session_id: str
    msisdn: str
    menu: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> UssdSession:
        return cls(session_id=row["session_id"], msisdn=row["msisdn"], menu=row["menu"])


class UssdSessions:
    """The only caller of ``ussd.sql``: open menu sessions, keyed by the gateway's id."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, session_id: str) -> UssdSession | None:
        row = await self._pool.fetchrow(UssdSQL.get_session, session_id)
        return None if row is None else UssdSession.from_row(row)

    async def put(self, session_id: str, msisdn: str, menu: str, now: datetime) -> None:
        """Open the session on ``menu`` (or move it there)."""
        await self._pool.execute(UssdSQL.put_session, session_id, msisdn, menu, now)

    async def end(self, session_id: str) -> None:
        await self._pool.execute(UssdSQL.end_session, session_id)

    async def expire(self, cutoff: datetime) -> int:
        """Forget sessions last touched before ``cutoff``; returns how many."""
        status = await self._pool.execute(UssdSQL.expire_sessions, cutoff)
        return int(status.rsplit(" ", 1)[-1])  # the command tag: DELETE <n>


@dataclass(frozen=True, slots=True)
class UssdReply:
    text: str
    end: bool


#: Bonus actions answer with a text: (msisdn, language, now) → text. The bonus ledger
#: provides them; they run their own transactions (a charging call must not hold a lock).
BonusAction = Callable[[str, Language, datetime], Awaitable[str]]


class UssdDesk:
    """Carries out USSD requests; joins and leaves are committed before the reply."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        membership: Membership,
        activate: BonusAction,
        balance: BonusAction,
    ) -> None:
        self._pool = pool
        self._sessions = UssdSessions(pool)
        self._membership = membership
        self._bonus = {Action.ACTIVATE: activate, Action.BALANCE: balance}

    async def handle(self, msisdn: str, session_id: str, dialled: str, now: datetime) -> UssdReply:
        session = await self._sessions.get(session_id)
        in_menu = session is not None and session.msisdn == msisdn
        action = parse_request(dialled, in_menu)
        if action is Action.MENU:
            await self._sessions.put(session_id, msisdn, MENU, now)
            return UssdReply(await self._text("menu", msisdn), end=False)
        if in_menu:
            await self._sessions.end(session_id)
        evidence = {"ussd_session": session_id, "input": dialled}
        if action is Action.JOIN:
            return UssdReply(await self._change("join", msisdn, evidence, now), end=True)
        if action is Action.LEAVE:
            return UssdReply(await self._change("leave", msisdn, evidence, now), end=True)
        if action in self._bonus:
            lang = await self._language(msisdn)
            return UssdReply(await self._bonus[action](msisdn, lang, now), end=True)
        return UssdReply(await self._text("unknown_code", msisdn), end=True)

    async def expire_sessions(self, now: datetime, idle: timedelta) -> int:
        """Forget menu sessions the gateway abandoned (untouched for ``idle``: the
        ``ussd_session_timeout`` setting); returns how many."""
        return await self._sessions.expire(now - idle)

    async def _change(self, what: str, msisdn: str, evidence: dict[str, str], now: datetime) -> str:
        async with self._pool.acquire() as conn, conn.transaction():
            if what == "join":
                change = await self._membership.join(conn, msisdn, Channel.USSD, evidence, now)
            else:
                change = await self._membership.leave(
                    conn, msisdn, Channel.USSD, evidence, now, reason="ussd"
                )
        return change.text

    async def _language(self, msisdn: str) -> Language:
        return await self._membership.language_of(self._pool, msisdn)

    async def _text(self, key: str, msisdn: str) -> str:
        return texts.text(key, await self._language(msisdn))
