"""Issue 16: the USSD desk's database round trips per request are few and counted. The
session and the subscriber's language (and membership) come in one statement; a member
dialling the join code is answered from it without a transaction; the menu dialled by its
code is one statement (the session opened with the pages of the number's language); the
balance reads the standing and the usable grants in one."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.db import Database
from dispatcher.engine.build import Program
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Channel, Language
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.charging import LedgerCharging
from dispatcher.program.membership import Membership
from dispatcher.program.texts import screens, text
from dispatcher.settings import Settings

MEMBER = "77071112233"


class CountingPool:
    """The desk's pool, counting the statements and transactions it is asked for (a
    transaction counts BEGIN and COMMIT too)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self.trips = 0

    def _counted(self, name: str) -> Any:
        async def call(*args: Any) -> Any:
            self.trips += 1
            return await getattr(self._pool, name)(*args)

        return call

    def __getattr__(self, name: str) -> Any:
        if name in {"fetch", "fetchrow", "fetchval", "execute"}:
            return self._counted(name)
        if name == "acquire":
            self.trips += 3  # at least BEGIN, a statement and COMMIT
        return getattr(self._pool, name)


async def test_round_trips_per_request(
    database: Database,
    settings: Settings,
    clock: ManualClock,
    ledger: BonusLedger,
    membership: Membership,
) -> None:
    pool = CountingPool(database.pool)
    desk = Program.over(pool, settings, ledger).ussd  # type: ignore[arg-type]
    async with database.pool.acquire() as conn, conn.transaction():
        await membership.join(conn, MEMBER, Channel.USSD, {}, clock.now())
    now = clock.now()

    pool.trips = 0
    reply = await desk.handle(MEMBER, "s1", "*555#", now)
    assert not reply.end and pool.trips == 1  # the session opened, the language read

    pool.trips = 0
    reply = await desk.handle(MEMBER, "s2", "*555*1#", now)
    assert reply.end and reply.text.startswith(text("already_member", settings.default_language))
    assert pool.trips == 1  # the context alone: nothing changes for a member

    pool.trips = 0
    reply = await desk.handle(MEMBER, "s3", "*111*3#", now)
    assert reply.end and pool.trips == 1  # the context; the balance is the ledger's own


async def test_balance_round_trips(
    database: Database, settings: Settings, clock: ManualClock, membership: Membership
) -> None:
    """The balance: the context, then the standing and the usable grants together."""
    pool = CountingPool(database.pool)
    ledger = BonusLedger(pool, settings, clock, LedgerCharging())  # type: ignore[arg-type]
    try:
        desk = Program.over(pool, settings, ledger).ussd  # type: ignore[arg-type]
        async with database.pool.acquire() as conn, conn.transaction():
            await membership.join(conn, MEMBER, Channel.USSD, {}, clock.now())
        pool.trips = 0
        reply = await desk.handle(MEMBER, "b1", "*111*3#", clock.now())
        assert reply.end and pool.trips == 2
        pool.trips = 0
        reply = await desk.handle("77071112299", "b2", "*111*3#", clock.now())  # never seen
        assert reply.end and pool.trips == 2
    finally:
        await ledger.close()


@pytest.mark.parametrize("language", [None, *Language])
async def test_menu_in_one_statement_keeps_the_numbers_pages(
    database: Database,
    settings: Settings,
    clock: ManualClock,
    ledger: BonusLedger,
    membership: Membership,
    language: Language | None,
) -> None:
    """The menu opened in one statement shows and keeps the pages of the number's own
    language (the default's for a number without one, or never seen), as the menu shown
    after reading the language did: ``0`` then walks the same pages."""
    desk = Program.over(database.pool, settings, ledger).ussd
    number = MEMBER if language is not None else "77071112200"
    if language is not None:
        await membership.choose_language(database.pool, number, language, clock.now())
    shown_in = language or membership.language_named(None)
    expected = screens(text("menu", shown_in), shown_in)
    reply = await desk.handle(number, "m1", "*555#", clock.now())
    seen = [reply.text]
    while not reply.end and len(seen) < len(expected):
        reply = await desk.handle(number, "m1", "0", clock.now())
        seen.append(reply.text)
    assert seen == expected
    again = await desk.handle(number, "m1", "*555#", clock.now())  # the same session reopened
    assert again.text == expected[0]


async def test_only_menu_sessions_skip_the_wal(database: Database) -> None:
    """Migration 0028: the menu sessions every *555# writes are unlogged (a commit that
    writes only them waits for no WAL flush); every other table, the consent ledger and
    memberships among them, stays logged."""
    unlogged = await database.pool.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relpersistence <> 'p'"
    )
    assert [r["relname"] for r in unlogged] == ["ussd_sessions"]
