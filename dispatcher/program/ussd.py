"""USSD: the ``*555#`` menu and the short codes (R1, R2, R4, R6), over HTTP or SMPP.

:func:`parse_request` is pure: the dialled string (or a menu choice inside an open menu
session) → an action. :class:`UssdDesk` carries the action out and answers with a text that
fits one screen and whether the session ends.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from dispatcher.program import texts
from dispatcher.program.membership import Membership, ProgramSQL
from dispatcher.states import Channel, Language

MENU = "main"
SESSION_TTL = timedelta(minutes=3)


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
        self._membership = membership
        self._bonus = {Action.ACTIVATE: activate, Action.BALANCE: balance}

    async def handle(self, msisdn: str, session_id: str, dialled: str, now: datetime) -> UssdReply:
        session = await self._pool.fetchrow(ProgramSQL.ussd_session_get, session_id)
        in_menu = session is not None and session["msisdn"] == msisdn
        action = parse_request(dialled, in_menu)
        if action is Action.MENU:
            await self._pool.execute(ProgramSQL.ussd_session_put, session_id, msisdn, MENU, now)
            return UssdReply(await self._text("menu", msisdn), end=False)
        if in_menu:
            await self._pool.execute(ProgramSQL.ussd_session_end, session_id)
        evidence = {"ussd_session": session_id, "input": dialled}
        if action is Action.JOIN:
            return UssdReply(await self._change("join", msisdn, evidence, now), end=True)
        if action is Action.LEAVE:
            return UssdReply(await self._change("leave", msisdn, evidence, now), end=True)
        if action in self._bonus:
            lang = await self._language(msisdn)
            return UssdReply(await self._bonus[action](msisdn, lang, now), end=True)
        return UssdReply(await self._text("unknown_code", msisdn), end=True)

    async def expire_sessions(self, now: datetime) -> None:
        """Forget menu sessions the gateway abandoned."""
        await self._pool.execute(ProgramSQL.ussd_sessions_expire, now - SESSION_TTL)

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
