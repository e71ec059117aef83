"""Other channels reserve contacts against the same caps (R7, R8, R9, R12)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest

from dispatcher.db import Database
from dispatcher.engine.repository import DispatchRepository
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from tests.dispatch_helpers import add_campaign
from tests.factories import dnc, members, subscribers
from tests.web_helpers import Api

MEMBER, OUTSIDER = "77016660001", "77016660002"


@pytest.fixture(autouse=True)
async def numbers(database: Database) -> None:
    """A member, and a subscriber who is not one, known before the app starts."""
    await members(database, [MEMBER])
    await subscribers(database, [OUTSIDER])


async def reserve(api: Api, **body: Any) -> Any:
    body.setdefault("msisdn", MEMBER)
    resp = await api.client.post(
        "/api/v1/contacts/reserve", json=body, headers=api.auth(Role.GATEWAY)
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_ivr_survey_calls_share_the_survey_cap(api: Api, database: Database) -> None:
    """R7: two survey contacts a month, whatever the channel; the third is refused."""
    first = await reserve(api, kind="survey", channel="ivr")
    assert first["granted"] and first["remaining"] == 1 and first["month"] == "2026-11-01"
    assert (await reserve(api, kind="survey"))["granted"]
    assert await reserve(api, kind="survey") == {
        "granted": False,
        "reason": "cap_survey",
        "reservation_id": None,
        "month": None,
        "remaining": None,
    }
    assert await database.pool.fetchval("SELECT survey_count FROM contact_counters") == 2


async def test_repeated_reference_is_idempotent(api: Api, database: Database) -> None:
    """A retried request with the same reference takes one slot, not two."""
    one = await reserve(api, kind="info", reference="call-1")
    two = await reserve(api, kind="info", reference="call-1")
    assert one["reservation_id"] == two["reservation_id"]
    assert await database.pool.fetchval("SELECT info_count FROM contact_counters") == 1


async def test_refusals(api: Api, database: Database, clock: ManualClock) -> None:
    """Non-members (SMART scope), 1204, blocked numbers and the closed window are refused."""
    assert (await reserve(api, msisdn=OUTSIDER, kind="info"))["reason"] == "not_member"
    assert (await reserve(api, msisdn=OUTSIDER, kind="info", scope="operator"))["granted"]
    await dnc(database, [MEMBER], channel="ivr")
    assert (await reserve(api, kind="info"))["reason"] == "dnc"
    await subscribers(database, [OUTSIDER], status="blocked")
    assert (await reserve(api, msisdn=OUTSIDER, kind="info", scope="operator"))["reason"] == (
        "blocked"
    )
    clock.set(datetime(2026, 11, 23, 17, 0, tzinfo=UTC))  # 22:00 Astana
    assert (await reserve(api, kind="info"))["reason"] == "outside_window"


async def test_bad_requests_are_400(api: Api) -> None:
    """A missing kind or an unknown scope is 400 naming the field."""
    for body, field in (
        ({"msisdn": MEMBER}, "kind"),
        ({"msisdn": MEMBER, "kind": "info", "scope": "all"}, "scope"),
    ):
        resp = await api.client.post(
            "/api/v1/contacts/reserve", json=body, headers=api.auth(Role.GATEWAY)
        )
        assert resp.status == 400
        assert (await resp.json())["error"]["details"]["field"] == field


async def test_claim_and_reservation_share_one_cap(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R7: the claim and a reservation take slots by the same upsert on the same counter; the
    second survey of the month is the claim's, the third is refused to both."""
    assert (await reserve(api, kind="survey", channel="ivr"))["remaining"] == 1
    first = await add_campaign(database, [MEMBER], kind="survey")
    second = await add_campaign(database, [MEMBER], kind="survey")
    repo = DispatchRepository(database.pool, "node-1", "smsc")
    for campaign in (first, second):
        await repo.claim_campaign(campaign, 10, clock.now(), date(2026, 11, 1), (10, 2))
    states = await database.pool.fetch(
        "SELECT coalesce(suppressed::text, state::text) FROM deliveries ORDER BY campaign_id"
    )
    assert [r[0] for r in states] == ["claimed", "cap_survey"]
    assert (await reserve(api, kind="survey"))["reason"] == "cap_survey"
    assert await database.pool.fetchval("SELECT survey_count FROM contact_counters") == 2


async def test_a_number_twice_in_one_call_is_an_error(database: Database) -> None:
    """take_cap_slots refuses a repeated number rather than count one slot for two contacts."""
    with pytest.raises(asyncpg.CardinalityViolationError):
        await database.pool.fetch(
            "SELECT * FROM take_cap_slots($1, date '2026-11-01', 'info', 10, 2)",
            [MEMBER, MEMBER],
        )
    assert await database.pool.fetchval("SELECT count(*) FROM contact_counters") == 0
