"""The HTTP charging adapter against a real server on 127.0.0.1 (R5; invariant 5)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.program.charging import (
    ChargingRejected,
    ChargingUnavailable,
    CreditRequest,
    HttpChargingAdapter,
    backoff_delay,
)
from tests.bonus_helpers import utc
from tests.charging_server import FakeCharging

REQUEST = CreditRequest("42", "77010000001", 500, utc(2026, 11, 30, 12))


@pytest.fixture
async def server() -> AsyncIterator[FakeCharging]:
    fake = FakeCharging()
    await fake.start()
    yield fake
    await fake.stop()


class Sleeps(list[float]):
    """Records backoff delays instead of waiting them out."""

    async def __call__(self, delay: float) -> None:
        self.append(delay)


def adapter(url: str, sleeps: Sleeps, attempts: int = 3) -> HttpChargingAdapter:
    return HttpChargingAdapter(
        url, token="t0k", timeout=0.3, attempts=attempts, backoff=0.1, sleep=sleeps
    )


async def test_credit_carries_key_scope_and_expiry(server: FakeCharging) -> None:
    """R5: the credit names the grant as idempotency key, on-net voice/SMS/data scope, expiry."""
    client = adapter(server.url, Sleeps())
    try:
        receipt = await client.credit(REQUEST)
    finally:
        await client.close()
    assert receipt.reference == "ref-42"
    body = server.applied["42"]
    assert body["units"] == 500 and body["expires_at"] == "2026-11-30T12:00:00+00:00"
    assert body["scope"] == {
        "services": ["voice", "sms", "data"],
        "network": "on_net",
        "roaming": False,
        "international": False,
        "transferable": False,
    }


async def test_5xx_is_retried_with_backoff_then_applied_once(server: FakeCharging) -> None:
    """Invariant 5: 5xx answers are retried with growing delays; the credit lands once."""
    server.script = ["503", "503"]
    sleeps = Sleeps()
    client = adapter(server.url, sleeps)
    try:
        await client.credit(REQUEST)
    finally:
        await client.close()
    assert server.requests == [("credit", "42")] * 3
    assert list(server.applied) == ["42"]
    assert 0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2


async def test_lost_response_is_resent_with_the_same_key(server: FakeCharging) -> None:
    """Invariant 5: a credit applied whose answer is lost is sent again with the same key and
    applied once."""
    server.script = ["lost"]
    client = adapter(server.url, Sleeps())
    try:
        await client.credit(REQUEST)
    finally:
        await client.close()
    assert server.requests == [("credit", "42"), ("credit", "42")]
    assert list(server.applied) == ["42"]


async def test_timeout_after_apply_is_resent_and_applied_once(server: FakeCharging) -> None:
    """Invariant 5: a slow charging system times out; the resend with the same key applies once."""
    server.script = ["slow"]
    client = adapter(server.url, Sleeps())
    try:
        await client.credit(REQUEST)
    finally:
        await client.close()
    assert len(server.requests) == 2 and list(server.applied) == ["42"]


async def test_4xx_is_not_retried(server: FakeCharging) -> None:
    """A refusal (4xx) is permanent: one request, ChargingRejected."""
    server.script = ["400"]
    client = adapter(server.url, Sleeps())
    try:
        with pytest.raises(ChargingRejected):
            await client.credit(REQUEST)
    finally:
        await client.close()
    assert len(server.requests) == 1 and server.applied == {}


async def test_charging_down_is_unavailable_after_all_attempts() -> None:
    """A charging system that refuses connections is ChargingUnavailable after every try."""
    sleeps = Sleeps()
    client = adapter(FakeCharging().url, sleeps, attempts=3)
    try:
        with pytest.raises(ChargingUnavailable):
            await client.credit(REQUEST)
    finally:
        await client.close()
    assert len(sleeps) == 2


async def test_balance_reads_main_balance(server: FakeCharging) -> None:
    """R6: the charging system's main balance is read for *111*3#."""
    client = adapter(server.url, Sleeps())
    try:
        balance = await client.balance("77010000001")
    finally:
        await client.close()
    assert balance is not None and balance.main_text() == "1234.50 KZT"


@given(
    attempt=st.integers(1, 30),
    base=st.floats(0.001, 100),
    jitter=st.floats(0, 1, exclude_max=True),
)
def test_backoff_grows_is_capped_and_jittered(attempt: int, base: float, jitter: float) -> None:
    """Retry policy: half to all of base·2^(attempt-1), never above the cap."""
    cap = base * 50
    delay = backoff_delay(attempt, base, cap, jitter)
    full = min(cap, base * 2 ** (attempt - 1))
    assert full / 2 <= delay <= full
