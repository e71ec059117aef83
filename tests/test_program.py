"""The SMART program through the real HTTP endpoints and database (R1, R2, R9, R10, R12)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from tests.factories import campaign, deliveries, subscribers
from tests.web_helpers import Api

MSISDN = "77011234567"
_sessions = itertools.count(1)


async def dial(api: Api, code: str, msisdn: str = MSISDN, session: str | None = None) -> Any:
    body = {"msisdn": msisdn, "session_id": session or f"s{next(_sessions)}", "input": code}
    resp = await api.client.post("/gateway/ussd", json=body, headers=api.auth(Role.GATEWAY))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def event(api: Api, **body: Any) -> Any:
    body.setdefault("msisdn", MSISDN)
    resp = await api.client.post("/gateway/events", json=body, headers=api.auth(Role.GATEWAY))
    return resp.status, await resp.json()


async def view(api: Api, msisdn: str = MSISDN) -> Any:
    resp = await api.client.get(f"/api/v1/subscribers/{msisdn}", headers=api.auth(Role.VIEWER))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def queue_delivery(database: Database, scope: str, msisdn: str = MSISDN) -> int:
    campaign_id = await campaign(database, [], scope=scope, texts={"ru": "x"})
    [delivery_id] = await deliveries(database, campaign_id, [msisdn])
    return delivery_id


async def delivery_state(database: Database, delivery_id: int) -> tuple[str, str | None]:
    row = await database.pool.fetchrow(
        "SELECT state, suppressed FROM deliveries WHERE id = $1", delivery_id
    )
    return row["state"], row["suppressed"]


async def test_join_by_code_records_consent(api: Api, clock: ManualClock) -> None:
    """R1: *555*1# joins, replies with a confirmation, and records consent with channel."""
    reply = await dial(api, "*555*1#")
    assert reply["end"] is True and "500" in reply["text"]
    sub = await view(api)
    assert sub["member"] is True and sub["status"] == "active"
    [consent] = sub["consent"]
    assert consent["event"] == "joined" and consent["channel"] == "ussd"
    assert set(consent["scopes"]) >= {"partner_sms", "survey_calls", "personal_data"}
    assert consent["evidence"]["ussd_session"].startswith("s")
    assert consent["occurred_at"] == clock.now().isoformat()


async def test_join_twice_says_already_member(api: Api) -> None:
    """R1: joining again while a member changes nothing and says so."""
    await dial(api, "*555*1#")
    again = await dial(api, "*555*1#")
    assert "already" in again["text"].lower() or "уже" in again["text"]
    sub = await view(api)
    assert len(sub["memberships"]) == 1 and len(sub["consent"]) == 1


async def test_menu_session_join_then_leave(api: Api) -> None:
    """The *555# menu keeps its session: 1 joins, and in a new menu 2 leaves."""
    menu = await dial(api, "*555#", session="m1")
    assert menu["end"] is False and "1" in menu["text"]
    assert (await dial(api, "1", session="m1"))["end"] is True
    assert (await view(api))["member"] is True
    await dial(api, "*555#", session="m2")
    await dial(api, "2", session="m2")
    assert (await view(api))["member"] is False


async def test_bare_digit_without_menu_is_unknown(api: Api, database: Database) -> None:
    """A menu choice outside a menu session is an unknown code that ends the session."""
    reply = await dial(api, "1")
    assert reply["end"] is True
    assert await database.pool.fetchval("SELECT count(*) FROM memberships") == 0


@pytest.mark.parametrize("code", ["*556#", "*555*9#", "hello", "*111*3"])
async def test_unknown_code_ends_session(api: Api, code: str) -> None:
    """Anything but the program's codes gets a clear 'unknown code' and ends the session."""
    reply = await dial(api, code)
    assert reply["end"] is True and "*555#" in reply["text"]


async def test_leave_suppresses_queued_smart_messages(api: Api, database: Database) -> None:
    """R2: a leave suppresses queued SMART-scope messages in its transaction; operator-scope
    messages stay (only 1204 stops those)."""
    await dial(api, "*555*1#")
    smart = await queue_delivery(database, "smart")
    operator = await queue_delivery(database, "operator")
    reply = await dial(api, "*555*2#")
    assert reply["end"] is True
    assert await delivery_state(database, smart) == ("suppressed", "opted_out")
    assert await delivery_state(database, operator) == ("queued", None)
    events = [c["event"] for c in (await view(api))["consent"]]
    assert events == ["joined", "left"]


async def test_leave_when_not_member(api: Api) -> None:
    """R2: leaving without membership changes nothing and says how to join."""
    reply = await dial(api, "*555*2#")
    assert "*555*1#" in reply["text"]
    assert (await view(api))["consent"] == []


async def test_confirmations_queued_outside_window(api: Api, database: Database) -> None:
    """Join and leave confirmations are service messages that may go outside the window."""
    await dial(api, "*555*1#")
    await dial(api, "*555*2#")
    rows = await database.pool.fetch(
        "SELECT kind, in_window FROM service_messages WHERE msisdn = $1 ORDER BY id", MSISDN
    )
    assert [(r["kind"], r["in_window"]) for r in rows] == [
        ("join_confirmation", False),
        ("leave_confirmation", False),
    ]


async def test_dnc_while_member_leaves_and_blocks(api: Api, database: Database) -> None:
    """R9: 1204 from the IVR blocks all telemarketing, and a member leaves SMART (R2)."""
    await dial(api, "*555*1#")
    smart = await queue_delivery(database, "smart")
    operator = await queue_delivery(database, "operator")
    status, body = await event(api, type="dnc_optout", event_id="ivr-1")
    assert (status, body) == (200, {"status": "applied", "triggered": 0})
    sub = await view(api)
    assert sub["member"] is False and sub["dnc"]["channel"] == "ivr"
    assert [c["event"] for c in sub["consent"]] == ["joined", "dnc_blocked", "left"]
    assert await delivery_state(database, smart) == ("suppressed", "dnc")
    assert await delivery_state(database, operator) == ("suppressed", "dnc")


async def test_rejoin_lifts_dnc_and_ledger_shows_both(api: Api) -> None:
    """R9: joining after 1204 is new explicit consent that lifts the block for SMART partner
    messages (the 1204 record stays for operator telemarketing); both are recorded."""
    await event(api, type="dnc_optout")
    await dial(api, "*555*1#")
    sub = await view(api)
    assert sub["dnc"] is not None and sub["member"] is True
    assert [c["event"] for c in sub["consent"]] == ["dnc_blocked", "joined", "dnc_lifted"]


async def test_repeated_event_is_recognised(api: Api) -> None:
    """An operator event with a seen event_id is acknowledged as duplicate and not re-applied."""
    assert (await event(api, type="dnc_optout", event_id="e1"))[1]["status"] == "applied"
    await dial(api, "*555*1#")
    assert (await event(api, type="dnc_optout", event_id="e1"))[1]["status"] == "duplicate"
    assert (await view(api))["member"] is True


async def test_tariff_change_keeps_membership(api: Api) -> None:
    """R10: a tariff change is recorded; membership stays."""
    await dial(api, "*555*1#")
    status, _ = await event(api, type="tariff_change", tariff="SMART-Plus")
    assert status == 200
    sub = await view(api)
    assert sub["tariff"] == "SMART-Plus" and sub["member"] is True


async def test_blocked_number_cannot_join(api: Api) -> None:
    """R1/R12: joining is for active subscribers only."""
    await event(api, type="subscriber_status", status="blocked")
    reply = await dial(api, "*555*1#")
    assert reply["end"] is True
    sub = await view(api)
    assert sub["member"] is False and sub["status"] == "blocked"


async def test_recycle_ends_everything_of_old_owner(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R12: recycling ends membership, consent, 1204 and queued messages; the next owner
    starts with nothing."""
    await dial(api, "*555*1#")
    await event(api, type="dnc_optout")
    operator = await queue_delivery(database, "operator")
    clock.advance(timedelta(days=90))
    await event(api, type="subscriber_status", status="recycled")
    assert await delivery_state(database, operator) == ("suppressed", "recycled")
    sub = await view(api)
    assert sub["status"] == "recycled" and sub["member"] is False and sub["dnc"] is None
    assert [c["event"] for c in sub["consent"]] == ["recycled"]
    assert sub["memberships"] == []
    clock.advance(timedelta(days=1))
    await event(api, type="subscriber_status", status="active")
    await dial(api, "*555*1#")
    sub = await view(api)
    assert sub["member"] is True and len(sub["memberships"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "bogus"}, "type"),
        ({"type": "subscriber_status", "status": "asleep"}, "status"),
        ({"type": "tariff_change"}, "tariff"),
        ({"type": "dnc_optout", "occurred_at": "yesterday"}, "occurred_at"),
    ],
)
async def test_bad_events_are_400(api: Api, body: dict[str, Any], field: str) -> None:
    """Unknown event types and bad fields get 400 naming the field."""
    status, reply = await event(api, **body)
    assert status == 400 and reply["error"]["details"]["field"] == field


@pytest.mark.parametrize(
    "body",
    [
        {"msisdn": "123", "session_id": "s", "input": "*555#"},
        {"msisdn": MSISDN, "session_id": "", "input": "*555#"},
        {"msisdn": MSISDN, "session_id": "s"},
        {"msisdn": MSISDN, "session_id": "s", "input": "x" * 200},
    ],
)
async def test_bad_ussd_requests_are_400(
    api: Api, database: Database, body: dict[str, Any]
) -> None:
    """Malformed USSD requests get 400 and change nothing."""
    resp = await api.client.post("/gateway/ussd", json=body, headers=api.auth(Role.GATEWAY))
    assert resp.status == 400
    assert "error" in await resp.json()
    assert await database.pool.fetchval("SELECT count(*) FROM subscribers") == 0


async def test_malformed_json_is_400(api: Api) -> None:
    """A body that is not JSON gets 400 invalid_json."""
    resp = await api.client.post("/gateway/ussd", data=b"{not json", headers=api.auth(Role.GATEWAY))
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"


async def test_number_forms_are_normalised(api: Api) -> None:
    """+7 701 …, 8701… and 7701… are one subscriber."""
    await dial(api, "*555*1#", msisdn="+7 701 123 45 67")
    await dial(api, "*555*1#", msisdn="87011234567")
    sub = await view(api, "77011234567")
    assert len(sub["memberships"]) == 1


async def test_unknown_subscriber_is_404(api: Api) -> None:
    """GET of a number never seen is 404 with the error shape."""
    resp = await api.client.get("/api/v1/subscribers/77019999999", headers=api.auth(Role.VIEWER))
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"


async def test_menu_texts_in_subscriber_language(api: Api, database: Database) -> None:
    """R14: the menu is shown in the subscriber's language."""
    await subscribers(database, [MSISDN], language="kk")
    assert "Қосылу" in (await dial(api, "*555#"))["text"]
