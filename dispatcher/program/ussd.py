"""USSD: the ``*555#`` menu and the short codes (R1, R2, R4, R6), over HTTP or SMPP.

:func:`parse_request` is pure: the dialled string (or a menu choice inside an open menu
session, or ``0`` for the next page of a paged answer) → an action. :class:`UssdDesk`
carries the action out and answers with screens that fit (R14) and whether the session
ends; :class:`UssdSessions` remembers which gateway sessions are inside a menu or a paged
answer, and the pages still to show. The subscriber chooses their language in the menu;
the gateway's language hint fills a language not known yet.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import Channel, Language, SubscriberStatus
from dispatcher.program import texts
from dispatcher.program.membership import Membership

MENU = "main"
LANGUAGE_MENU = "language"
#: A paged answer whose last page ends the session (join, balance …): no menu is open.
ANSWER = "answer"


class Action(enum.Enum):
    MENU = "menu"
    JOIN = "join"
    LEAVE = "leave"
    ACTIVATE = "activate"
    BALANCE = "balance"
    CONDITIONS = "conditions"
    LANGUAGE_MENU = "language_menu"
    CHOOSE_LANGUAGE = "choose_language"
    NEXT_PAGE = "next_page"
    UNKNOWN = "unknown"


_CODES = {
    "*555#": Action.MENU,
    "*555*1#": Action.JOIN,
    "*555*2#": Action.LEAVE,
    "*555*00#": Action.ACTIVATE,
    "*111*3#": Action.BALANCE,
}
_MENU_CHOICES = {
    "1": Action.JOIN,
    "2": Action.LEAVE,
    "3": Action.ACTIVATE,
    "4": Action.BALANCE,
    "5": Action.CONDITIONS,
    "6": Action.LANGUAGE_MENU,
}
#: The language menu's choices (R14), in the order it lists them.
LANGUAGE_CHOICES = {"1": Language.KK, "2": Language.RU, "3": Language.EN}
#: How gateways name the languages (ISO 639-1 and -2, the country code some send for kk).
_HINTS = {
    "kk": Language.KK,
    "kaz": Language.KK,
    "kz": Language.KK,
    "ru": Language.RU,
    "rus": Language.RU,
    "en": Language.EN,
    "eng": Language.EN,
}


def parse_request(dialled: str, menu: str | bool | None, more: bool = False) -> Action:
    """The action a USSD input asks for. Inside a menu session (``menu``: which one; True
    for the main menu) a bare digit is a choice; ``0`` shows the next page of a paged
    answer (``more``)."""
    compact = "".join(dialled.split())
    if menu is True:
        menu = MENU
    if more and compact == texts.NEXT_CHOICE:
        return Action.NEXT_PAGE
    if menu == MENU and compact in _MENU_CHOICES:
        return _MENU_CHOICES[compact]
    if menu == LANGUAGE_MENU and compact in LANGUAGE_CHOICES:
        return Action.CHOOSE_LANGUAGE
    return _CODES.get(compact, Action.UNKNOWN)


def code_action(dialled: str) -> Action | None:
    """The action of a short code (``*555#``, ``*111*3#`` …), which means the same inside a
    session or outside one; None for any other input (a menu choice, ``0``, a code not
    ours), whose meaning :func:`parse_request` decides from the session."""
    return _CODES.get("".join(dialled.split()))


def language_hint(raw: str | None) -> Language | None:
    """R14: the gateway's language hint as a program language (``kk``, ``kaz``, ``ru-RU``,
    ``EN`` …), or None when absent or not one of ours (then it is ignored)."""
    if not raw:
        return None
    code = raw.strip().lower().replace("_", "-").split("-", 1)[0]
    return _HINTS.get(code)


class UssdSQL(SqlFile, domain="ussd"):
    get_session: str
    get_context: str
    put_session: str
    open_menu: str
    end_session: str
    expire_sessions: str


@dataclass(frozen=True, slots=True)
class UssdSession:
    """A gateway session inside a menu or a paged answer: who opened it, which menu it
    shows, and the pages of the answer still to show."""

    session_id: str
    msisdn: str
    menu: str
    pages: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> UssdSession:
        return cls(
            session_id=row["session_id"],
            msisdn=row["msisdn"],
            menu=row["menu"],
            pages=tuple(row["pages"] or ()),
        )


@dataclass(frozen=True, slots=True)
class UssdContext:
    """What a request needs before it acts, read in one round trip: the open session (None
    when none), the number's own language (None: not known), its status (None: a number not
    seen yet) and whether it is a member now."""

    session: UssdSession | None
    language: str | None
    status: SubscriberStatus | None
    member: bool


class UssdSessions:
    """The only caller of ``ussd.sql``: open menu sessions, keyed by the gateway's id."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, session_id: str) -> UssdSession | None:
        row = await self._pool.fetchrow(UssdSQL.get_session, session_id)
        return None if row is None else UssdSession.from_row(row)

    async def context(self, session_id: str, msisdn: str) -> UssdContext:
        row = await self._pool.fetchrow(UssdSQL.get_context, session_id, msisdn)
        return UssdContext(
            session=None if row["session_id"] is None else UssdSession.from_row(row),
            language=row["language"],
            status=None if row["status"] is None else SubscriberStatus(row["status"]),
            member=row["member"],
        )

    async def put(
        self,
        session_id: str,
        msisdn: str,
        menu: str,
        now: datetime,
        pages: Sequence[str] = (),
    ) -> None:
        """Open the session on ``menu`` (or move it there), with ``pages`` still to show."""
        await self._pool.execute(UssdSQL.put_session, session_id, msisdn, menu, now, list(pages))

    async def open_menu(
        self,
        session_id: str,
        msisdn: str,
        menu: str,
        now: datetime,
        pages: Mapping[Language, Sequence[str]],
        default: Sequence[str],
    ) -> str | None:
        """Open the session on ``menu`` with the pages still to show in the number's language
        (``pages`` by language, ``default`` for a number with none) in one statement; returns
        the number's language (None: none known)."""
        language: str | None = await self._pool.fetchval(
            UssdSQL.open_menu,
            session_id,
            msisdn,
            menu,
            now,
            pages[Language.KK],
            pages[Language.RU],
            pages[Language.EN],
            default,
        )
        return language

    async def end(self, session_id: str) -> None:
        await self._pool.execute(UssdSQL.end_session, session_id)

    async def expire(self, cutoff: datetime) -> int:
        """Forget sessions last touched before ``cutoff``; returns how many."""
        return int(await self._pool.fetchval(UssdSQL.expire_sessions, cutoff))


@dataclass(frozen=True, slots=True)
class UssdReply:
    text: str
    end: bool


#: Bonus actions answer with a text: (msisdn, language, now) → text. The bonus ledger
#: provides them; they run their own transactions (a charging call must not hold a lock).
BonusAction = Callable[[str, Language, datetime], Awaitable[str]]


class UssdDesk:
    """Carries out USSD requests; joins, leaves and language choices are committed before
    the reply. Every answer is shown as screens that fit (R14): a longer one pages, the
    session staying open for ``0`` until its last page."""

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
        self._settings = membership.settings
        self._bonus = {Action.ACTIVATE: activate, Action.BALANCE: balance}
        #: The main menu's screens in each language (texts and settings are fixed), the
        #: pages kept after the first by language and for a number without one.
        self._menus = {lang: texts.screens(texts.text("menu", lang), lang) for lang in Language}
        self._menu_rest = {lang: screens[1:] for lang, screens in self._menus.items()}
        self._menu_default = self._menu_rest[membership.language_named(None)]

    async def handle(
        self,
        msisdn: str,
        session_id: str,
        dialled: str,
        now: datetime,
        hint: Language | None = None,
    ) -> UssdReply:
        """Answer one USSD input. ``hint``: the gateway's language for the subscriber, used
        when none is known for the number (R14: never over one the subscriber chose)."""
        if hint is not None:
            await self._membership.hint_language(self._pool, msisdn, hint, now)
        if code_action(dialled) is Action.MENU:
            # The busiest input (issue 16): one statement, the session read not needed.
            return await self._open_menu(session_id, msisdn, now)
        context = await self._sessions.context(session_id, msisdn)
        session = context.session
        if session is not None and session.msisdn != msisdn:
            session = None  # another number's session id: not this subscriber's menu
        lang = self._membership.language_named(context.language)
        menu = None if session is None else session.menu
        action = parse_request(dialled, menu, more=session is not None and bool(session.pages))
        if action is Action.NEXT_PAGE:
            assert session is not None
            return await self._page(session, now)
        if action is Action.MENU:
            return await self._show(session_id, msisdn, "menu", MENU, now, lang)
        if action is Action.LANGUAGE_MENU:
            return await self._show(session_id, msisdn, "language_menu", LANGUAGE_MENU, now, lang)
        if action is Action.CHOOSE_LANGUAGE:
            chosen = LANGUAGE_CHOICES["".join(dialled.split())]
            await self._membership.choose_language(self._pool, msisdn, chosen, now)
            shown = texts.text("language_set", chosen)
            return await self._answer(session_id, msisdn, shown, now, session is not None, chosen)
        evidence = {"ussd_session": session_id, "input": dialled}
        if action is Action.JOIN and context.member and context.status is SubscriberStatus.ACTIVE:
            # R1 is idempotent for a member: nothing to change, so no transaction to open
            # (what Membership.join answers an active member; issue 16: most joins dialled
            # at a busy gateway are members').
            shown = texts.text("already_member", lang)
        elif action is Action.JOIN:
            shown = await self._change("join", msisdn, evidence, now)
        elif action is Action.LEAVE:
            shown = await self._change("leave", msisdn, evidence, now)
        elif action in self._bonus:
            shown = await self._bonus[action](msisdn, lang, now)
        elif action is Action.CONDITIONS:
            shown = self._conditions(lang)
        else:
            shown = texts.text("unknown_code", lang)
        return await self._answer(session_id, msisdn, shown, now, session is not None, lang)

    async def expire_sessions(self, now: datetime, idle: timedelta) -> int:
        """Forget menu sessions the gateway abandoned (untouched for ``idle``: the
        ``ussd_session_timeout`` setting); returns how many."""
        return await self._sessions.expire(now - idle)

    async def _show(
        self, session_id: str, msisdn: str, key: str, menu: str, now: datetime, lang: Language
    ) -> UssdReply:
        """A menu: its first screen, the session open on ``menu`` (later pages kept)."""
        first, *rest = texts.screens(texts.text(key, lang), lang)
        await self._sessions.put(session_id, msisdn, menu, now, rest)
        return UssdReply(first, end=False)

    async def _open_menu(self, session_id: str, msisdn: str, now: datetime) -> UssdReply:
        """The main menu dialled by its code: what :meth:`_show` does for it, in the
        number's language, with one statement (the pages kept are chosen by the database
        from the number's language, which it returns)."""
        language = await self._sessions.open_menu(
            session_id, msisdn, MENU, now, self._menu_rest, self._menu_default
        )
        return UssdReply(self._menus[self._membership.language_named(language)][0], end=False)

    async def _answer(
        self,
        session_id: str,
        msisdn: str,
        shown: str,
        now: datetime,
        in_session: bool,
        lang: Language,
    ) -> UssdReply:
        """An answer that ends the session: at once when it fits one screen, else after its
        last page (the session stays open for ``0`` meanwhile). ``in_session``: a menu or a
        paged answer of this session is open (and is closed now). ``lang``: the number's
        language, read once per request."""
        first, *rest = texts.screens(shown, lang)
        if not rest:
            if in_session:
                await self._sessions.end(session_id)
            return UssdReply(first, end=True)
        await self._sessions.put(session_id, msisdn, ANSWER, now, rest)
        return UssdReply(first, end=False)

    async def _page(self, session: UssdSession, now: datetime) -> UssdReply:
        """``0``: the next page; the last page of an answer ends the session."""
        page, *rest = session.pages
        if rest or session.menu != ANSWER:
            await self._sessions.put(session.session_id, session.msisdn, session.menu, now, rest)
            return UssdReply(page, end=False)
        await self._sessions.end(session.session_id)
        return UssdReply(page, end=True)

    def _conditions(self, lang: Language) -> str:
        """R14: the program's conditions in short and the support line (settings), and
        where the full conditions are published when that is set."""
        settings = self._settings
        shown = texts.text(
            "conditions",
            lang,
            units=settings.bonus_units,
            info_cap=settings.info_cap,
            survey_cap=settings.survey_cap,
            support=settings.support_line,
        )
        if settings.conditions_url:
            shown += texts.text("conditions_url", lang, url=settings.conditions_url)
        return shown

    async def _change(self, what: str, msisdn: str, evidence: dict[str, str], now: datetime) -> str:
        async with self._pool.acquire() as conn, conn.transaction():
            if what == "join":
                change = await self._membership.join(conn, msisdn, Channel.USSD, evidence, now)
            else:
                change = await self._membership.leave(
                    conn, msisdn, Channel.USSD, evidence, now, reason="ussd"
                )
        return change.text
