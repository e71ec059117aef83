"""Issue 12, through the HTTP API with the clock set: a number is not an owner (R3, R7, R12),
no reply promises what won't come (R3, R4, R6), bonuses only for an active number (R4, seed
000), and consent as given (R1, R9)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from dispatcher.db import Database
from dispatcher.engine.repository import DispatchRepository, DispatchSQL
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from dispatcher.web.keys import BONUS
from tests.bonus_helpers import utc
from tests.factories import campaign, subscribers
from tests.web_helpers import Api

MSISDN = "77017770001"
_sessions = itertools.count(1)


async def dial(api: Api, code: str, msisdn: str = MSISDN) -> str:
    body = {"msisdn": msisdn, "session_id": f"own{next(_sessions)}", "input": code}
    resp = await api.client.post("/gateway/ussd", json=body, headers=api.auth(Role.GATEWAY))
    assert resp.status == 200, await resp.text()
    text: str = (await resp.json())["text"]
    return text


async def event(api: Api, **body: Any) -> None:
    body.setdefault("msisdn", MSISDN)
    resp = await api.client.post("/gateway/events", json=body, headers=api.auth(Role.GATEWAY))
    assert resp.status == 200, await resp.text()


async def view(api: Api, msisdn: str = MSISDN) -> Any:
    resp = await api.client.get(f"/api/v1/subscribers/{msisdn}", headers=api.auth(Role.VIEWER))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def reserve(api: Api, **body: Any) -> Any:
    body.setdefault("msisdn", MSISDN)
    resp = await api.client.post(
        "/api/v1/contacts/reserve", json=body, headers=api.auth(Role.GATEWAY)
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def service_bodies(database: Database, kind: str, msisdn: str = MSISDN) -> list[str]:
    """The bodies of ``kind`` messages to ``msisdn``; the monthly grant's notices are first
    queued from its grant rows as the engine's service claim would, window open (0023)."""
    if kind == "bonus_notice":
        await database.pool.fetchval(DispatchSQL.queue_bonus_notices, 1000, True)
    rows = await database.pool.fetch(
        "SELECT body FROM service_messages WHERE msisdn = $1 AND kind = $2 ORDER BY id",
        msisdn,
        kind,
    )
    return [r["body"] for r in rows]


# ---------------------------------------------------------------- a number is not an owner


async def test_new_owner_of_recycled_number_gets_present_and_fresh_caps(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R3/R7/R12: the old owner joined, activated and used the month's 10 info contacts; the
    number is recycled the same month; the new owner's join grants the present, which they
    can activate, and their month's counters start at zero."""
    await subscribers(database, [MSISDN], language="en")
    await dial(api, "*555*1#")
    assert (await dial(api, "*555*00#")).startswith("500 bonus units activated")
    for _ in range(10):
        assert (await reserve(api, kind="info"))["granted"]
    assert (await reserve(api, kind="info"))["reason"] == "cap_info"
    clock.advance(timedelta(hours=1))
    await event(api, type="subscriber_status", status="recycled")
    clock.advance(timedelta(hours=1))
    await event(api, type="subscriber_status", status="active")
    await subscribers(database, [MSISDN], language="en")
    assert await dial(api, "*555*1#") == (
        "You joined SMART. A present of 500 bonus units: dial *555*00#."
    )
    sub = await view(api)
    assert [(g["month"], g["state"]) for g in sub["grants"]] == [("2026-11-01", "pending")]
    assert sub["counters"]["info"] == 0
    first = await reserve(api, kind="info")
    assert first["granted"] and first["remaining"] == 9
    assert (await dial(api, "*555*00#")).startswith("500 bonus units activated")


async def test_new_owners_first_partner_message_is_claimed_not_capped(
    api: Api, database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R7/R12: the old owner's month is full (9 IVR contacts and one SMS in flight); after the
    recycling the new owner's first SMART message is claimed with a slot of their own; the old
    owner's message failing later gives nothing back to the new owner's counter, theirs does."""
    month, caps = utc(2026, 11, 1).date(), (settings.info_cap, settings.survey_cap)
    repo = DispatchRepository(database.pool, "node-1", "smsc")
    await dial(api, "*555*1#")
    old = await campaign(database, [MSISDN])
    await repo.claim_campaign(old, 10, clock.now(), month, caps)
    await database.pool.execute(
        "UPDATE deliveries SET state = 'in_flight' WHERE campaign_id = $1", old
    )
    for _ in range(9):
        assert (await reserve(api, kind="info"))["granted"]
    clock.advance(timedelta(hours=1))
    await event(api, type="subscriber_status", status="recycled")
    clock.advance(timedelta(hours=1))
    await event(api, type="subscriber_status", status="active")
    await dial(api, "*555*1#")
    new = await campaign(database, [MSISDN])
    await repo.claim_campaign(new, 10, clock.now(), month, caps)
    state = await database.pool.fetchrow(
        "SELECT state::text, suppressed::text FROM deliveries WHERE campaign_id = $1", new
    )
    assert (state["state"], state["suppressed"]) == ("claimed", None)
    await database.pool.execute(
        "UPDATE deliveries SET state = 'failed', finished_at = $2 WHERE campaign_id = $1",
        old,
        clock.now(),
    )
    assert (await view(api))["counters"]["info"] == 1
    await database.pool.execute(  # the new owner's own slot does go back to them
        "UPDATE deliveries SET state = 'failed', finished_at = $2 WHERE campaign_id = $1",
        new,
        clock.now(),
    )
    assert (await view(api))["counters"]["info"] == 0


# ---------------------------------------------------------------- never promise what won't come


async def test_rejoin_in_the_same_month_promises_no_present(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R3: leaving and rejoining in a month grants nothing; the reply, the confirmation SMS
    and *111*3# say this month's bonus was received and when the next one comes."""
    await subscribers(database, [MSISDN], language="en")
    await dial(api, "*555*1#")
    await dial(api, "*555*2#")
    clock.advance(timedelta(hours=1))
    rejoined = await dial(api, "*555*1#")
    expected = (
        "You joined SMART. This month's bonus was already received; "
        "the next 500 units come on 01.12.2026."
    )
    assert rejoined == expected
    assert (await service_bodies(database, "join_confirmation"))[-1] == expected
    assert await dial(api, "*111*3#") == (
        "No bonus units: this month's bonus was already received. "
        "The next 500 units come on 01.12.2026."
    )
    assert (
        await dial(api, "*555*00#")
        == "No bonus to activate. The next 500 units come on 01.12.2026."
    )


async def test_used_activation_is_told_by_notice_activation_and_balance(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R3/R4/R6: a member activates November's units at 00:03 on 1 December; the monthly
    grant at 00:05 cannot be activated in December and lapses on the 31st — the notice and
    *555*00# say so, neither says "dial *555*00#"."""
    await subscribers(database, [MSISDN], language="en")
    clock.set(utc(2026, 10, 31, 19, 10))  # 1 November 00:10 Astana: joins
    await dial(api, "*555*1#")
    clock.set(utc(2026, 11, 30, 19, 3))  # 1 December 00:03: November's grant, still in time
    assert (await dial(api, "*555*00#")).startswith("500 bonus units activated until 08.12")
    clock.set(utc(2026, 11, 30, 19, 5))
    assert await api.client.app[BONUS].grant_month(clock.now()) == 1
    [notice] = await service_bodies(database, "bonus_notice")
    assert notice == (
        "Your 500 SMART bonus units are granted, but this month's activation is used: "
        "they lapse on 31.12.2026 00:05."
    )
    assert await dial(api, "*555*00#") == (
        "This month's activation is used: your 500 bonus units lapse on 31.12.2026 00:05."
    )
    assert await dial(api, "*111*3#") == "Bonus: 500 units until 08.12.2026 00:03."


async def test_pending_units_after_used_activation_say_from_when(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R4/R6: October's units activated on 3 November; November's grant waits for December:
    *111*3# and *555*00# give the first day it can be activated and its deadline."""
    await subscribers(database, [MSISDN], language="en")
    clock.set(utc(2026, 10, 10, 7))  # 10 October, 12:00 Astana
    await dial(api, "*555*1#")
    clock.set(utc(2026, 10, 31, 19, 5))  # 1 November 00:05
    await api.client.app[BONUS].grant_month(clock.now())
    clock.set(utc(2026, 11, 3, 7))
    assert (await dial(api, "*555*00#")).startswith("500 bonus units activated until 10.11")
    clock.set(utc(2026, 11, 12, 7))  # October's units have expired
    await api.client.app[BONUS].sweep(clock.now())
    expected = (
        "This month's activation is used: 500 bonus units can be activated "
        "from 01.12.2026 until 01.12.2026 00:05."
    )
    assert await dial(api, "*111*3#") == expected
    assert await dial(api, "*555*00#") == expected


# ---------------------------------------------------------------- bonus only for an active number


async def test_blocked_number_cannot_activate(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R4, seed 000: a fully blocked (or outgoing-blocked) number's activation is refused with a
    clear reply; the grant stays pending and activates once the number is active again."""
    await subscribers(database, [MSISDN], language="en")
    await dial(api, "*555*1#")
    for status in ("blocked", "outgoing_blocked"):
        await event(api, type="subscriber_status", status=status)
        assert await dial(api, "*555*00#") == (
            "Bonus not activated: your number is not active. Top up first."
        )
    assert [g["state"] for g in (await view(api))["grants"]] == ["pending"]
    assert await dial(api, "*111*3#") == (
        "500 bonus units await activation by 23.12.2026 17:00; your number is not active: "
        "top up first."
    )
    await event(api, type="subscriber_status", status="active")
    assert (await dial(api, "*555*00#")).startswith("500 bonus units activated")


async def test_member_active_again_within_the_month_gets_its_grant(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R3: blocked when December's grant ran, topped up the same morning: the member receives
    December's grant then, with its notice; a second status change grants nothing more."""
    await subscribers(database, [MSISDN], language="en")
    await dial(api, "*555*1#")
    await event(api, type="subscriber_status", status="blocked")
    clock.set(utc(2026, 11, 30, 19, 5))
    await api.client.app[BONUS].grant_month(clock.now())
    assert [g["month"] for g in (await view(api))["grants"]] == ["2026-11-01"]
    clock.set(utc(2026, 12, 1, 3))  # 1 December, 08:00 Astana: top-up
    await event(api, type="subscriber_status", status="active")
    grants = (await view(api))["grants"]
    assert [(g["month"], g["state"]) for g in grants] == [
        ("2026-11-01", "pending"),
        ("2026-12-01", "pending"),
    ]
    assert (await service_bodies(database, "bonus_notice")) == [
        "Your 500 SMART bonus units are ready: dial *555*00#."
    ]
    await event(api, type="subscriber_status", status="outgoing_blocked")
    await event(api, type="subscriber_status", status="active")
    assert len((await view(api))["grants"]) == 2


async def test_member_unblocked_by_import_gets_the_months_grant(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R3: the subscriber import is another way a number becomes active again: a member it
    unblocks receives the month's grant missed while blocked; a non-member gets nothing."""
    other = "77017770002"
    await subscribers(database, [MSISDN, other], language="en")
    await dial(api, "*555*1#")
    csv = f"{MSISDN},blocked,\n{other},blocked,\n"
    headers = {**api.auth(Role.ADMIN), "Content-Type": "text/csv"}
    resp = await api.client.post("/api/v1/subscribers/import", data=csv, headers=headers)
    assert resp.status == 200, await resp.text()
    clock.set(utc(2026, 11, 30, 19, 5))
    await api.client.app[BONUS].grant_month(clock.now())
    clock.set(utc(2026, 12, 2, 5))
    csv = f"{MSISDN},active,\n{other},active,\n"
    resp = await api.client.post("/api/v1/subscribers/import", data=csv, headers=headers)
    assert resp.status == 200, await resp.text()
    assert [g["month"] for g in (await view(api))["grants"]] == ["2026-11-01", "2026-12-01"]
    assert (await view(api, other))["grants"] == []


# ---------------------------------------------------------------- consent as given


async def test_member_dialling_1204_is_told_they_left_smart_and_what_they_lost(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R9/R2: 1204 by a member ends the membership and forfeits the pending units; the
    confirmation says so, with the units. A non-member is told only that marketing is off."""
    await subscribers(database, [MSISDN], language="en")
    await dial(api, "*555*1#")
    await event(api, type="dnc_optout", event_id="ivr-1")
    assert await service_bodies(database, "dnc_confirmation") == [
        "Marketing messages and surveys to your number are switched off (1204). "
        "You left SMART and lost your 500 unused bonus units."
    ]
    other = "77017770002"
    await subscribers(database, [other], language="en")
    await event(api, type="dnc_optout", msisdn=other, event_id="ivr-2")
    assert await service_bodies(database, "dnc_confirmation", other) == [
        "Marketing messages and surveys to your number are switched off (1204)."
    ]
    third = "77017770003"  # an activated bonus: how much of it was used, charging knows
    await subscribers(database, [third], language="en")
    await dial(api, "*555*1#", third)
    await dial(api, "*555*00#", third)
    await event(api, type="dnc_optout", msisdn=third, event_id="ivr-3")
    assert await service_bodies(database, "dnc_confirmation", third) == [
        "Marketing messages and surveys to your number are switched off (1204). "
        "You left SMART and lost your unused bonus units."
    ]


async def test_join_after_1204_lifts_it_for_smart_partner_messages_only(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R9: a join after 1204 lets SMART partner contacts through; operator telemarketing stays
    blocked (the 1204 record stays), the ledger records what was lifted, and the consent
    scopes say surveys go by SMS. A second 1204 ends the membership again."""
    await event(api, type="dnc_optout", event_id="ivr-1")
    clock.advance(timedelta(days=1))
    await dial(api, "*555*1#")
    sub = await view(api)
    assert sub["member"] is True and sub["dnc"]["channel"] == "ivr"
    joined, lifted = sub["consent"][1:]
    assert (joined["event"], lifted["event"]) == ("joined", "dnc_lifted")
    assert "survey_sms" in joined["scopes"] and lifted["scopes"] == joined["scopes"]
    assert (await reserve(api, kind="info", scope="smart"))["granted"]
    assert (await reserve(api, kind="survey", scope="smart"))["granted"]
    assert (await reserve(api, kind="info", scope="operator"))["reason"] == "dnc"
    clock.advance(timedelta(days=1))
    await event(api, type="dnc_optout", event_id="ivr-2")
    assert (await view(api))["member"] is False
    assert (await reserve(api, kind="info", scope="smart"))["reason"] == "dnc"


async def test_segments_follow_the_consent_given(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R9: a member who joined after their 1204 is in the SMART campaigns' segments and in no
    operator campaign's."""
    await event(api, type="dnc_optout")
    clock.advance(timedelta(days=1))
    await dial(api, "*555*1#")
    queued = {}
    for scope in ("smart", "operator"):
        for segment in ("smart_members", "active_subscribers"):
            campaign_id = await campaign(database, [], scope=scope, state="draft")
            resp = await api.client.post(
                f"/api/v1/campaigns/{campaign_id}/audience",
                json={"segment": segment},
                headers=api.auth(Role.MARKETER),
            )
            assert resp.status == 200, await resp.text()
            queued[scope, segment] = (await resp.json())["accepted"]
    assert queued == {
        ("smart", "smart_members"): 1,
        ("smart", "active_subscribers"): 1,
        ("operator", "smart_members"): 0,
        ("operator", "active_subscribers"): 0,
    }
