"""Triggered campaigns (issue 15), end to end: a campaign created through the real HTTP app
with a trigger, operator events POSTed to ``/gateway/events``, and the engine sending through
the SMPP simulator on 127.0.0.1 under a ManualClock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from dispatcher.kernel.states import Role
from tests.dispatch_helpers import Rig, dispatch_rig
from tests.factories import dnc, members, subscribers
from tests.test_campaign_support import BASE, action, create, info_payload, report
from tests.web_helpers import Api, running_api

ASTANA = timedelta(hours=5)
MEMBER = "77011234567"
OTHER = "77021234567"
OUTSIDER = "77051234567"  # a subscriber, not a SMART member
BLOCKED = "77071234567"  # a member who dialled 1204
CAPPED = "77081234567"  # a member at this month's info cap
NUMBERS = [MEMBER, OTHER, BLOCKED, CAPPED]


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An Astana wall-clock time in November 2026, as UTC."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC) - ASTANA


def triggered_payload(**trigger: Any) -> dict[str, Any]:
    spec = {
        "event": "top_up",
        "condition": {"field": "amount", "op": ">=", "value": 1000},
        "max_delay": "PT13H",
        **trigger,
    }
    return info_payload(
        name="Top-up thanks",
        variables=[],
        texts={"kk": "Рақмет, толтырдыңыз!", "ru": "Спасибо за пополнение!"},
        trigger=spec,
    )


async def start_triggered(api: Api, **trigger: Any) -> int:
    body = await create(api, triggered_payload(**trigger))
    cid = int(body["id"])
    status, started = await action(api, cid, "start")
    assert status == 200, started
    assert started["state"] == "running"
    return cid


async def event(api: Api, msisdn: str, kind: str = "top_up", **fields: Any) -> dict[str, Any]:
    payload = {"type": kind, "msisdn": msisdn, **fields}
    response = await api.client.post(
        "/gateway/events", json=payload, headers=api.auth(Role.GATEWAY)
    )
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


def sent_to(rig: Rig) -> list[str]:
    return sorted(sm.destination_addr for _, sm in rig.sim.submits())


async def test_a_matching_top_up_sends_once(settings, clock, database) -> None:
    """A top-up meeting the condition sends the campaign's SMS; a second matching top-up
    (another event_id) sends nothing more; a repeated event_id changes nothing."""
    await members(database, [MEMBER])
    async with (
        dispatch_rig(database, settings, clock) as rig,
        running_api(settings, clock, database) as api,
    ):
        cid = await start_triggered(api)
        first = await event(api, MEMBER, amount=1500, event_id="t-1")
        assert first == {"status": "applied", "triggered": 1}
        await rig.drain()
        assert sent_to(rig) == [MEMBER]
        again = await event(api, MEMBER, amount=2000, event_id="t-2")
        assert again == {"status": "applied", "triggered": 0}
        repeat = await event(api, MEMBER, amount=1500, event_id="t-1")
        assert repeat == {"status": "duplicate"}
        await rig.drain()
        assert sent_to(rig) == [MEMBER]
        await rig.engine.run_services_once()  # housekeeping: a triggered campaign runs on
        body = await report(api, cid)
        assert body["state"] == "running"
        assert body["triggered"] == {"matched": 1, "waiting": 0, "sent": 1, "stale": 0}
        assert body["status"]["reason"] == "waiting_for_events"
        assert body["status"]["message"].startswith(
            "Waiting — for events: each matching one queues its message"
        )
        events = await database.pool.fetchval(
            "SELECT count(*) FROM subscriber_events WHERE event_type = 'top_up'"
        )
        assert events == 2


async def test_a_non_matching_amount_does_nothing(settings, clock, database) -> None:
    """A top-up below the threshold queues nothing and sends nothing; the event is still
    recorded; 1000 exactly (the boundary) matches."""
    await members(database, [MEMBER, OTHER])
    async with (
        dispatch_rig(database, settings, clock) as rig,
        running_api(settings, clock, database) as api,
    ):
        cid = await start_triggered(api)
        assert await event(api, MEMBER, amount=999.99) == {"status": "applied", "triggered": 0}
        assert await event(api, OTHER, amount="1000.00") == {"status": "applied", "triggered": 1}
        await rig.drain()
        assert sent_to(rig) == [OTHER]
        assert await rig.states(cid) == {"submitted": 1}


async def test_event_at_22_waits_for_10_next_day(settings, clock, database) -> None:
    """An event at 22:00 Astana (window shut) queues the message; nothing is sent before
    10:00 the next day, and at 10:00 it is (max delay 13h: not stale yet)."""
    await members(database, [MEMBER])
    async with (
        dispatch_rig(database, settings, clock) as rig,
        running_api(settings, clock, database) as api,
    ):
        cid = await start_triggered(api)
        clock.set(local(23, 22, 0))
        assert (await event(api, MEMBER, amount=5000))["triggered"] == 1
        await rig.drain()
        clock.set(local(24, 9, 59, 59))
        await rig.drain()
        assert sent_to(rig) == []
        assert (await report(api, cid))["triggered"]["waiting"] == 1
        clock.set(local(24, 10, 0, 0))
        await rig.drain()
        assert sent_to(rig) == [MEMBER]


async def test_an_event_older_than_max_delay_is_stale(settings, clock, database) -> None:
    """With a 6-hour max delay, an event at 22:00 is 12 hours old at the 10:00 opening: it
    is dropped as stale (suppressed, reason stale) and never sent, not even later."""
    await members(database, [MEMBER])
    async with (
        dispatch_rig(database, settings, clock) as rig,
        running_api(settings, clock, database) as api,
    ):
        cid = await start_triggered(api, max_delay="PT6H")
        clock.set(local(23, 22, 0))
        assert (await event(api, MEMBER, amount=5000))["triggered"] == 1
        clock.set(local(24, 10, 0))
        await rig.drain()
        clock.set(local(24, 12, 0))
        await rig.drain()
        assert sent_to(rig) == []
        assert await rig.states(cid) == {"stale": 1}
        body = await report(api, cid)
        assert body["suppressed"]["stale"] == 1
        assert body["triggered"]["stale"] == 1


async def test_an_event_within_max_delay_edge(settings, clock, database) -> None:
    """The max delay's boundary: an event exactly max_delay before the claim is sent; one a
    second older is stale (occurred_at given by the operator)."""
    await members(database, [MEMBER, OTHER])
    async with (
        dispatch_rig(database, settings, clock) as rig,
        running_api(settings, clock, database) as api,
    ):
        await start_triggered(api, max_delay="PT1H")
        now = clock.now()
        on_edge = (now - timedelta(hours=1)).isoformat()
        past = (now - timedelta(hours=1, seconds=1)).isoformat()
        await event(api, MEMBER, amount=1000, occurred_at=on_edge)
        await event(api, OTHER, amount=1000, occurred_at=past)
        await rig.drain()
        assert sent_to(rig) == [MEMBER]


async def test_the_normal_rules_apply(settings, clock, database) -> None:
    """A non-member, a 1204-blocked member and a member at the info cap are suppressed by
    the claim's own rules (not_member, dnc, cap_info); a member in good standing gets it."""
    await members(database, NUMBERS)
    await dnc(database, [BLOCKED], at=datetime(2026, 11, 10, tzinfo=UTC))
    await database.pool.execute(
        "INSERT INTO contact_counters (msisdn, month, info_count, survey_count, info_cap, "
        "survey_cap) VALUES ($1, $2, 10, 0, 10, 2)",
        CAPPED,
        date(2026, 11, 1),
    )
    async with (
        dispatch_rig(database, settings, clock) as rig,
        running_api(settings, clock, database) as api,
    ):
        cid = await start_triggered(api)
        for number in (MEMBER, OUTSIDER, BLOCKED, CAPPED):
            assert (await event(api, number, amount=1000))["triggered"] == 1
        await rig.drain()
        assert sent_to(rig) == [MEMBER]
        assert await rig.states(cid) == {
            "submitted": 1,
            "not_member": 1,
            "dnc": 1,
            "cap_info": 1,
        }


async def test_status_and_tariff_triggers(settings, clock, database) -> None:
    """``status`` (the issue's name for subscriber_status) back to active triggers a
    campaign on ``status = active``; the old name works too; a tariff trigger with ``in``."""
    await members(database, [MEMBER, OTHER])
    async with (
        dispatch_rig(database, settings, clock) as rig,
        running_api(settings, clock, database) as api,
    ):
        back = await start_triggered(
            api, event="status", condition={"field": "status", "op": "=", "value": "active"}
        )
        tariff = await start_triggered(
            api,
            event="tariff_change",
            condition={"field": "tariff", "op": "in", "value": ["Smart 5000", "Smart 9000"]},
        )
        body = await report(api, back)
        assert body["trigger"]["event"] == "subscriber_status"
        assert (await event(api, MEMBER, "status", status="outgoing_blocked"))["triggered"] == 0
        assert (await event(api, MEMBER, "status", status="active"))["triggered"] == 1
        assert (await event(api, OTHER, "subscriber_status", status="active"))["triggered"] == 1
        assert (await event(api, OTHER, "tariff_change", tariff="Smart 1000"))["triggered"] == 0
        assert (await event(api, OTHER, "tariff_change", tariff="Smart 9000"))["triggered"] == 1
        await rig.drain()
        assert await rig.states(back) == {"submitted": 2}
        assert await rig.states(tariff) == {"submitted": 1}


async def test_only_running_campaigns_trigger(settings, clock, database) -> None:
    """A draft, a paused and a cancelled triggered campaign queue nothing; cancelling one
    suppresses what it had queued."""
    await members(database, [MEMBER, OTHER])
    async with running_api(settings, clock, database) as api:
        draft = int((await create(api, triggered_payload()))["id"])
        paused = await start_triggered(api)
        assert (await action(api, paused, "pause"))[0] == 200
        cancelled = await start_triggered(api)
        assert (await event(api, MEMBER, amount=1000))["triggered"] == 1
        assert (await action(api, cancelled, "cancel"))[0] == 200
        assert (await event(api, OTHER, amount=1000))["triggered"] == 0
        for cid in (draft, paused):
            assert (await report(api, cid))["total"] == 0
        assert (await report(api, cancelled))["suppressed"]["cancelled"] == 1


async def test_audience_refused_for_a_triggered_campaign(api: Api) -> None:
    """A triggered campaign takes no audience file nor segment: 409 with the reason."""
    cid = int((await create(api, triggered_payload()))["id"])
    headers = {**api.auth(Role.MARKETER), "Content-Type": "text/csv"}
    response = await api.client.post(
        f"{BASE}/{cid}/audience", data=b"77011234567\n", headers=headers
    )
    body = await response.json()
    assert response.status == 409, body
    assert "triggered by operator events" in body["error"]["details"]["reason"]
    response = await api.client.post(
        f"{BASE}/{cid}/audience", json={"segment": "smart_members"}, headers=api.auth(Role.MARKETER)
    )
    assert response.status == 409


async def test_bad_triggers_are_400_naming_the_field(api: Api) -> None:
    """Each bad trigger is refused with 400 and the part of the trigger that is wrong."""
    cases = [
        ({"event": "dnc_optout"}, "event"),
        (
            {"event": "top_up", "condition": {"field": "tariff", "op": "=", "value": "x"}},
            "condition",
        ),
        ({"event": "top_up", "condition": {"field": "amount", "op": "~", "value": 1}}, "condition"),
        (
            {"event": "top_up", "condition": {"field": "amount", "op": ">", "value": "lots"}},
            "condition",
        ),
        (
            {"event": "tariff_change", "condition": {"field": "tariff", "op": "<", "value": "A"}},
            "condition",
        ),
        (
            {"event": "status", "condition": {"field": "status", "op": "=", "value": "gone"}},
            "condition",
        ),
        (
            {"event": "top_up", "condition": {"field": "amount", "op": "in", "value": []}},
            "condition",
        ),
        ({"event": "top_up", "condition": "amount >= 1000"}, "condition"),
        ({"event": "top_up", "max_delay": "12 hours"}, "max_delay"),
        ({"event": "top_up", "max_delay": "P30D"}, "max_delay"),
        ({"event": "top_up", "eval": "1"}, "trigger"),
    ]
    for trigger, part in cases:
        payload = info_payload(variables=[], texts={"kk": "Сәлем"}, trigger=trigger)
        response = await api.client.post(BASE, json=payload, headers=api.auth(Role.MARKETER))
        body = await response.json()
        assert response.status == 400, (trigger, body)
        assert part in body["error"]["details"]["trigger"], (trigger, body)
    payload = info_payload(trigger={"event": "top_up"})  # {name} without a default
    response = await api.client.post(BASE, json=payload, headers=api.auth(Role.MARKETER))
    assert response.status == 400
    assert "triggered" in (await response.json())["error"]["details"]["variables"]


async def test_bad_events_are_400(api: Api) -> None:
    """A top-up needs a positive decimal amount; unknown types are named with the list."""
    for amount in (None, 0, -5, "12 KZT", True, "1e9", 10**13):
        payload = {"type": "top_up", "msisdn": MEMBER, "amount": amount}
        response = await api.client.post(
            "/gateway/events", json=payload, headers=api.auth(Role.GATEWAY)
        )
        body = await response.json()
        assert response.status == 400, (amount, body)
        assert body["error"]["details"]["field"] == "amount"
    response = await api.client.post(
        "/gateway/events",
        json={"type": "refill", "msisdn": MEMBER},
        headers=api.auth(Role.GATEWAY),
    )
    body = await response.json()
    assert response.status == 400 and "top_up" in body["error"]["message"]


async def test_trigger_survives_edit_and_duplicate(api: Api) -> None:
    """The trigger is part of the campaign: shown, kept by an edit of another field and by a
    copy; an edit can change it."""
    cid = int((await create(api, triggered_payload()))["id"])
    response = await api.client.patch(
        f"{BASE}/{cid}", json={"name": "Renamed"}, headers=api.auth(Role.MARKETER)
    )
    body = await response.json()
    assert response.status == 200, body
    assert body["trigger"] == {
        "event": "top_up",
        "condition": {"field": "amount", "op": ">=", "value": 1000},
        "max_delay": "PT13H",
    }
    response = await api.client.patch(
        f"{BASE}/{cid}",
        json={"trigger": {"event": "top_up", "max_delay": "P1D"}},
        headers=api.auth(Role.MARKETER),
    )
    body = await response.json()
    assert body["trigger"] == {"event": "top_up", "condition": None, "max_delay": "P1D"}
    response = await api.client.post(f"{BASE}/{cid}/duplicate", headers=api.auth(Role.MARKETER))
    assert (await response.json())["trigger"]["max_delay"] == "P1D"


async def test_a_triggered_campaign_keeps_its_holdout_and_variants(
    settings, clock, database
) -> None:
    """Variants and a holdout (issue 15) on a triggered campaign: each matching number gets
    the arm the documented formula gives it — a holdout number is recorded (suppressed
    'holdout'), never sent, holds no cap slot and is not counted as triggered; a variant
    number receives its own variant's text."""
    from smpp.inbound import decode_text, payload_of
    from tests.test_variants import TEXT_A, TEXT_B
    from tests.test_variants_assignment import arm as documented_arm

    numbers = [f"7701555{n:04d}" for n in range(40)]
    await members(database, numbers)
    await subscribers(database, numbers, language="en")
    payload = triggered_payload() | {
        "texts": TEXT_A,
        "variants": [
            {"name": "A", "texts": TEXT_A, "percent": 50},
            {"name": "B", "texts": TEXT_B, "percent": 50},
        ],
        "holdout_percent": 30,
    }
    async with (
        dispatch_rig(database, settings, clock) as rig,
        running_api(settings, clock, database) as api,
    ):
        created = await create(api, payload)
        cid = int(created["id"])
        assert (await action(api, cid, "start"))[0] == 200
        arms = {n: documented_arm(cid, n, 30, [50, 50]) for n in numbers}
        held = {n for n, a in arms.items() if a is None}
        assert 0 < len(held) < len(numbers)
        for n in numbers:
            answer = await event(api, n, amount=1500)
            assert answer == {"status": "applied", "triggered": 0 if n in held else 1}
        await rig.drain()
        received = {
            sm.destination_addr: decode_text(sm.data_coding, payload_of(sm))
            for _, sm in rig.sim.submits()
        }
        assert set(received) == set(numbers) - held
        for n, text in received.items():
            assert text == (TEXT_A, TEXT_B)[arms[n]]["en"]
        assert await rig.states(cid) == {
            "submitted": len(numbers) - len(held),
            "holdout": len(held),
        }
        slots = await database.pool.fetchval(
            "SELECT count(*) FROM contact_counters WHERE info_count > 0 AND msisdn = ANY($1)",
            list(held),
        )
        assert slots == 0
