"""The bonus ledger on a real database with a ManualClock (R2-R4, R6, R12; invariant 5)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import CreditState, GrantState, Language
from dispatcher.program import texts
from dispatcher.program.bonus import DEADLINE, VALIDITY, BonusLedger
from dispatcher.program.bonus_models import Activation
from dispatcher.program.membership import Membership
from dispatcher.settings import ASTANA
from tests.bonus_helpers import NUMBERS, credits, forfeits, grants_of, join, leave, utc

A, B = NUMBERS[0], NUMBERS[1]


async def test_join_grant_activate_then_expired_after_7_days(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R3/R4: joining grants 500 units at once; *555*00# activates them for 7 days; then expired."""
    pool, joined_at = database.pool, clock.now()
    change = await join(pool, membership, A, joined_at)
    [grant] = await grants_of(pool, A)
    assert change.grant_id == grant.id
    assert (grant.state, grant.units, grant.deadline_at) == (
        GrantState.PENDING,
        500,
        joined_at + DEADLINE,
    )
    clock.advance(timedelta(days=2))
    result = await ledger.activate(A, clock.now())
    assert result.outcome is Activation.ACTIVATED
    assert (result.units, result.expires_at) == (500, clock.now() + VALIDITY)
    [credit] = await credits(pool)
    assert (credit["grant_id"], credit["state"]) == (grant.id, CreditState.CREDITED)
    balance = await ledger.balance(A, clock.now())
    assert balance.active is not None and balance.remaining_units == 500
    clock.advance(VALIDITY - timedelta(seconds=1))
    assert (await ledger.sweep(clock.now())).expired == 0
    clock.advance(timedelta(seconds=1))
    assert (await ledger.sweep(clock.now())).expired == 1
    [grant] = await grants_of(pool, A)
    assert grant.state is GrantState.EXPIRED
    assert (await ledger.balance(A, clock.now())).active is None


async def test_grant_left_31_days_is_cancelled(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R4: a grant not activated within 30 days is cancelled and can no longer be activated."""
    await join(database.pool, membership, A, clock.now())
    clock.advance(timedelta(days=31))
    assert (await ledger.activate(A, clock.now())).outcome is Activation.NOTHING_TO_ACTIVATE
    assert (await ledger.sweep(clock.now())).cancelled == 1
    [grant] = await grants_of(database.pool, A)
    assert grant.state is GrantState.CANCELLED
    assert (await ledger.sweep(clock.now())).cancelled == 0


async def test_one_activation_per_calendar_month(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R4: with two pending grants, the oldest is activated; a second activation waits for
    the next calendar month (Astana time)."""
    await join(database.pool, membership, A, clock.now())  # November's grant
    assert await ledger.grant_month(utc(2026, 11, 30, 19, 5)) == 1  # Dec 1, 00:05 Astana
    first = await ledger.activate(A, utc(2026, 12, 2, 6))
    assert first.outcome is Activation.ACTIVATED
    again = await ledger.activate(A, utc(2026, 12, 3, 6))
    assert again.outcome is Activation.ALREADY_ACTIVATED
    november, december = await grants_of(database.pool, A)
    assert first.grant_id == november.id and november.state is GrantState.ACTIVE
    assert december.state is GrantState.PENDING


async def test_activation_month_follows_astana_midnight(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R4: 23:30 and 00:30 Astana time on either side of the 1st are different months."""
    await join(database.pool, membership, A, clock.now())
    nov_30_2330 = utc(2026, 11, 30, 18, 30)
    assert (await ledger.activate(A, nov_30_2330)).outcome is Activation.ACTIVATED
    await ledger.grant_month(utc(2026, 11, 30, 19, 5))
    dec_1_0030 = utc(2026, 11, 30, 19, 30)
    assert (await ledger.activate(A, dec_1_0030)).outcome is Activation.ACTIVATED
    months = [g.activated_month for g in await grants_of(database.pool, A)]
    assert [str(m) for m in months] == ["2026-11-01", "2026-12-01"]


async def test_database_refuses_second_activation_in_a_month(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R4/invariant 5: the schema itself holds one activation per number and month."""
    await join(database.pool, membership, A, clock.now())
    await ledger.grant_month(utc(2026, 11, 30, 19, 5))
    await ledger.activate(A, utc(2026, 12, 2))
    with pytest.raises(asyncpg.UniqueViolationError):
        await database.pool.execute(
            "UPDATE bonus_grants SET state = 'active', activated_at = $2, "
            "activated_month = '2026-12-01' WHERE msisdn = $1 AND state = 'pending'",
            A,
            utc(2026, 12, 3),
        )


async def test_leave_forfeits_pending_and_active_grants(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R2: leaving loses unused units, pending or active; credited units get a removal that
    is delivered to the charging system after commit."""
    pool = database.pool
    await join(pool, membership, A, clock.now())
    await join(pool, membership, B, clock.now())
    await ledger.activate(A, clock.now())
    clock.advance(timedelta(hours=1))
    await leave(pool, membership, A, clock.now())
    await leave(pool, membership, B, clock.now())
    states = [g.state for m in (A, B) for g in await grants_of(pool, m)]
    assert states == [GrantState.FORFEITED, GrantState.FORFEITED]
    [removal] = await forfeits(pool)  # only A's units ever reached charging
    assert removal["msisdn"] == A and removal["done_at"] is None
    run = await ledger.run_charging_once(clock.now())
    assert run.forfeited == 1
    assert (await forfeits(pool))[0]["done_at"] is not None
    assert (await ledger.run_charging_once(clock.now())).forfeited == 0
    assert (await ledger.activate(A, clock.now())).outcome is Activation.ALREADY_ACTIVATED
    assert (await ledger.balance(A, clock.now())).active is None


async def test_join_leave_rejoin_in_one_month_grants_once(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R3: joining, leaving and rejoining in one calendar month grants once."""
    pool = database.pool
    assert (await join(pool, membership, A, clock.now())).grant_id is not None
    clock.advance(timedelta(hours=1))
    await leave(pool, membership, A, clock.now())
    clock.advance(timedelta(hours=1))
    rejoined = await join(pool, membership, A, clock.now())
    assert rejoined.changed and rejoined.grant_id is None
    [grant] = await grants_of(pool, A)
    assert grant.state is GrantState.FORFEITED
    assert (await ledger.activate(A, clock.now())).outcome is Activation.NOTHING_TO_ACTIVATE


async def test_twenty_concurrent_activations_credit_once(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R4/invariant 5: the same *555*00# sent 20 times at once activates and credits once."""
    await join(database.pool, membership, A, clock.now())
    results = await asyncio.gather(*(ledger.activate(A, clock.now()) for _ in range(20)))
    outcomes = sorted(r.outcome.value for r in results)
    assert outcomes == ["activated"] + ["already_activated_this_month"] * 19
    [credit] = await credits(database.pool)
    assert credit["state"] == CreditState.CREDITED and credit["attempts"] == 1


async def test_balance_shows_pending_grant_and_deadline(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R6: *111*3# answers the pending bonus and its deadline, then the active one and expiry."""
    assert (await ledger.balance(A, clock.now())).text(Language.EN, ASTANA) == (
        "You have no bonus units."
    )
    await join(database.pool, membership, A, clock.now())
    pending = await ledger.balance_text(A, Language.EN, clock.now())
    assert pending == "500 bonus units await activation: dial *555*00# by 23.12.2026 17:00."
    await ledger.activate(A, clock.now())
    assert await ledger.balance_text(A, Language.EN, clock.now()) == (
        "Bonus: 500 units until 30.11.2026 17:00."
    )


async def test_activation_texts_fit_a_ussd_screen(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R14: the activation answer is in the subscriber's language, on one USSD screen."""
    await join(database.pool, membership, A, clock.now())
    text = await ledger.activate_text(A, Language.KK, clock.now())
    assert text == "500 бонус белсендірілді, 30.11.2026 17:00 дейін жарамды."
    for language in Language:
        assert texts.fits_screen(await ledger.activate_text(A, language, clock.now()))


async def test_forfeit_outside_a_transaction_is_refused(
    database: Database, ledger: BonusLedger, clock: ManualClock
) -> None:
    """R2: forfeit belongs in the caller's transaction (its lock and outbox row need one)."""
    async with database.pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            await ledger.forfeit(conn, A, clock.now())
