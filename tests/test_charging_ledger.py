"""The bonus ledger with an HTTP charging system that fails (R2, R4, R6; invariant 5).

The fake charging server counts the idempotency keys it applied: "credited once" means one
key, applied once, whatever failed on the way.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import CreditState, GrantState, Language
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.bonus_models import Activation
from dispatcher.program.charging import CreditReceipt, CreditRequest, HttpChargingAdapter
from dispatcher.program.membership import Membership
from dispatcher.settings import ASTANA, Settings
from tests.bonus_helpers import NUMBERS, credits, forfeits, grants_of, join, leave
from tests.charging_server import FakeCharging

A = NUMBERS[0]


async def _no_wait(delay: float) -> None:
    return None


@pytest.fixture
async def charging() -> AsyncIterator[FakeCharging]:
    fake = FakeCharging()  # not started: tests start it when the charging system is "up"
    yield fake
    await fake.stop()


@pytest.fixture
async def ledger(  # overrides tests/conftest.py's: charging over HTTP, to a fake that fails
    database: Database, settings: Settings, clock: ManualClock, charging: FakeCharging
) -> AsyncIterator[BonusLedger]:
    settings = dataclasses.replace(
        settings, charging_url=charging.url, charging_timeout=0.3, charging_attempts=2
    )
    adapter = HttpChargingAdapter(
        charging.url, timeout=0.3, attempts=2, backoff=0.01, sleep=_no_wait
    )
    ledger = BonusLedger(database.pool, settings, clock, adapter)
    yield ledger
    await ledger.close()


@pytest.fixture
async def member(database: Database, membership: Membership, clock: ManualClock) -> str:
    await join(database.pool, membership, A, clock.now())
    return A


async def test_charging_down_answers_try_again_then_retry_credits_once(
    database: Database, ledger: BonusLedger, charging: FakeCharging, clock: ManualClock, member: str
) -> None:
    """R4/invariant 5: charging down → "try again shortly", the activation stands; the retry
    job credits it once when charging is back."""
    result = await ledger.activate(member, clock.now())
    assert result.outcome is Activation.TRY_AGAIN
    assert result.text(Language.EN, ASTANA) == (
        "Service temporarily unavailable, please try again shortly."
    )
    [grant] = await grants_of(database.pool, member)
    [credit] = await credits(database.pool)
    assert grant.state is GrantState.ACTIVE
    assert credit["state"] == CreditState.PENDING and credit["lease_until"] is None
    assert (await ledger.run_charging_once(clock.now())).credited == 0  # not due yet
    await charging.start()
    clock.advance(timedelta(minutes=1))
    run = await ledger.run_charging_once(clock.now())
    assert run.credited == 1
    assert list(charging.applied) == [str(grant.id)]
    assert (await credits(database.pool))[0]["state"] == CreditState.CREDITED
    assert (await ledger.run_charging_once(clock.now())).credited == 0
    again = await ledger.activate(member, clock.now())
    assert again.outcome is Activation.ALREADY_ACTIVATED


async def test_subscriber_retry_after_try_again_credits_same_grant(
    database: Database, ledger: BonusLedger, charging: FakeCharging, clock: ManualClock, member: str
) -> None:
    """R4: dialling *555*00# again after "try again" re-sends the same grant's credit."""
    assert (await ledger.activate(member, clock.now())).outcome is Activation.TRY_AGAIN
    await charging.start()
    clock.advance(timedelta(seconds=5))
    result = await ledger.activate(member, clock.now())
    assert result.outcome is Activation.ACTIVATED and result.units == 500
    [grant] = await grants_of(database.pool, member)
    assert list(charging.applied) == [str(grant.id)]


async def test_lost_answers_never_credit_twice(
    database: Database, ledger: BonusLedger, charging: FakeCharging, clock: ManualClock, member: str
) -> None:
    """Invariant 5: every answer lost (applied, connection dropped) → try again; the retry
    re-sends the same key; charging applied it once."""
    await charging.start()
    charging.script = ["lost", "lost"]
    assert (await ledger.activate(member, clock.now())).outcome is Activation.TRY_AGAIN
    clock.advance(timedelta(minutes=1))
    assert (await ledger.run_charging_once(clock.now())).credited == 1
    assert len(charging.applied) == 1 and len(charging.requests) == 3


async def test_crash_between_credit_and_commit_resends_same_key_after_lease(
    database: Database,
    settings: Settings,
    ledger: BonusLedger,
    charging: FakeCharging,
    clock: ManualClock,
    member: str,
) -> None:
    """Invariant 5: a process that dies after charging applied the credit but before its
    commit leaves a leased credit; after the lease the retry job re-sends the same key, once."""
    await charging.start()
    adapter = _DiesAfterCredit(charging.url, timeout=0.3, attempts=1, sleep=_no_wait)
    crashing = BonusLedger(database.pool, settings, clock, adapter)
    with pytest.raises(asyncio.CancelledError):
        await crashing.activate(member, clock.now())
    await adapter.close()
    assert (await credits(database.pool))[0]["lease_until"] is not None
    assert (await ledger.run_charging_once(clock.now())).credited == 0  # leased: in flight
    clock.advance(timedelta(minutes=1))
    assert (await ledger.run_charging_once(clock.now())).credited == 1
    assert len(charging.applied) == 1 and len(charging.requests) == 2
    assert {key for _, key in charging.requests} == set(charging.applied)


async def test_twenty_concurrent_activations_send_one_credit(
    database: Database, ledger: BonusLedger, charging: FakeCharging, clock: ManualClock, member: str
) -> None:
    """R4/invariant 5: 20 simultaneous *555*00# → one activation, one credit request."""
    await charging.start()
    results = await asyncio.gather(*(ledger.activate(member, clock.now()) for _ in range(20)))
    assert sum(r.outcome is Activation.ACTIVATED for r in results) == 1
    assert sum(r.outcome is Activation.ALREADY_ACTIVATED for r in results) == 19
    assert len(charging.applied) == 1 and len(charging.requests) == 1


async def test_forfeit_after_leave_reaches_charging_when_it_is_back(
    database: Database,
    membership: Membership,
    ledger: BonusLedger,
    charging: FakeCharging,
    clock: ManualClock,
    member: str,
) -> None:
    """R2/invariant 5: leaving with credited units removes them at the charging system, retried
    until it answers, and only once."""
    await charging.start()
    assert (await ledger.activate(member, clock.now())).outcome is Activation.ACTIVATED
    await charging.stop()
    await leave(database.pool, membership, member, clock.now())
    run = await ledger.run_charging_once(clock.now())
    assert (run.forfeited, run.forfeit_failures) == (0, 1)
    await charging.start()
    clock.advance(timedelta(minutes=2))
    assert (await ledger.run_charging_once(clock.now())).forfeited == 1
    [removal] = await forfeits(database.pool)
    assert removal["done_at"] is not None and charging.forfeited == {str(removal["grant_id"])}
    clock.advance(timedelta(hours=2))
    assert (await ledger.run_charging_once(clock.now())).forfeited == 0


async def test_leave_while_credit_owed_stops_the_credit_and_sends_a_removal(
    database: Database,
    membership: Membership,
    ledger: BonusLedger,
    charging: FakeCharging,
    clock: ManualClock,
    member: str,
) -> None:
    """R2: a credit never confirmed is not retried after leaving; its removal still goes out
    (the lost call may have landed)."""
    assert (await ledger.activate(member, clock.now())).outcome is Activation.TRY_AGAIN
    await leave(database.pool, membership, member, clock.now())
    await charging.start()
    clock.advance(timedelta(minutes=5))
    run = await ledger.run_charging_once(clock.now())
    assert (run.credited, run.forfeited) == (0, 1)
    assert charging.applied == {} and len(charging.forfeited) == 1
    assert (await credits(database.pool))[0]["state"] == CreditState.FAILED


async def test_balance_adds_main_balance_from_charging(
    ledger: BonusLedger, charging: FakeCharging, clock: ManualClock, member: str
) -> None:
    """R6: *111*3# adds the main balance when the charging system reports it."""
    await charging.start()
    text = await ledger.balance_text(member, Language.EN, clock.now())
    assert text.endswith(" Main balance: 1234.50 KZT.")
    await charging.stop()
    text = await ledger.balance_text(member, Language.EN, clock.now())
    assert "Main balance" not in text and text.startswith("500 bonus units await")


class _DiesAfterCredit(HttpChargingAdapter):
    """Charging applies the credit, then this process 'dies' before it can commit."""

    async def credit(self, request: CreditRequest) -> CreditReceipt:
        await super().credit(request)
        raise asyncio.CancelledError
