"""Opt-out attribution (issue 15): every STOP, 1204 and leave — SMS through the SMSC
simulator, USSD and the IVR's event through the real HTTP gateway — is written with the
campaign whose message last reached the number within the attribution span
(SMARTD_INBOX_ATTRIBUTION_DAYS, the inbox's rule); each campaign's report shows its opt-outs
and rate. Real PostgreSQL, real SMPP over 127.0.0.1, real HTTP."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from tests.dispatch_helpers import Rig, dispatch_rig
from tests.factories import campaign, members
from tests.test_console import sign_in
from tests.web_helpers import Api, running_api

X, Y, Z = "77020000001", "77020000002", "77020000003"


async def reach(rig: Rig, numbers: list[str], *, partner: str, name: str) -> int:
    """A running campaign to ``numbers``, sent through the simulator now (submitted)."""
    campaign_id = await campaign(rig.database, numbers, partner=partner, name=name)
    await rig.drain()
    states = await rig.states(campaign_id)
    assert states == {"submitted": len(numbers)}, states
    return campaign_id


async def mo(rig: Rig, msisdn: str, text: str, to: str | None = None) -> None:
    destination = to or rig.settings.short_code
    assert await rig.sim.inject_mo(msisdn, destination, text) == [0]


async def opt_outs(database: Database) -> list[tuple[str, str, str, int | None]]:
    """(number, kind, channel, campaign) of every opt-out, in the order written."""
    rows = await database.pool.fetch(
        "SELECT msisdn, kind::text, channel::text, campaign_id FROM opt_outs ORDER BY id"
    )
    return [(r["msisdn"], r["kind"], r["channel"], r["campaign_id"]) for r in rows]


async def report(api: Api, campaign_id: int, role: Role = Role.ADMIN) -> Any:
    response = await api.client.get(f"/api/v1/campaigns/{campaign_id}", headers=api.auth(role))
    assert response.status == 200, await response.text()
    return await response.json()


async def gateway(api: Api, path: str, body: dict[str, Any]) -> Any:
    response = await api.client.post(path, json=body, headers=api.auth(Role.GATEWAY))
    assert response.status == 200, await response.text()
    return await response.json()


async def test_stop_is_attributed_to_the_campaign_that_reached_the_number(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A campaign delivers to X and Y through the simulator; X texts STOP: one opt-out
    (stop, sms) for that campaign; X's second STOP (already left) writes none. The report
    shows 1 opt-out of 2 reached: 50%."""
    await members(database, [X, Y])
    async with dispatch_rig(database, settings, clock) as rig:
        coffee = await reach(rig, [X, Y], partner="Kofe", name="Coffee week")
        await rig.receipts_settled(2)
        assert await rig.states(coffee) == {"delivered": 2}
        clock.advance(timedelta(hours=3))
        await mo(rig, X, "STOP")
        await mo(rig, X, "stop")
    assert await opt_outs(database) == [(X, "stop", "sms", coffee)]
    async with running_api(settings, clock, database) as api:
        body = (await report(api, coffee))["opt_outs"]
    assert body == {
        "total": 1,
        "by_kind": {"stop": 1, "dnc": 0, "leave": 0},
        "reached": 2,
        "rate": 50.0,
        "rate_of": "reached",
        "span_days": 7,
    }


async def test_1204_by_sms_and_ivr_and_a_ussd_leave_are_attributed(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Whatever the channel: X texts 1204 (dnc, sms), Y's 1204 comes as the IVR's
    dnc_optout event (dnc, ivr), Z leaves in the USSD menu (leave, ussd) — each the
    campaign's; the IVR event repeated writes nothing more."""
    await members(database, [X, Y, Z])
    async with dispatch_rig(database, settings, clock) as rig:
        tea = await reach(rig, [X, Y, Z], partner="Tea", name="Tea days")
        clock.advance(timedelta(days=2))
        await mo(rig, X, "1204", to=settings.dnc_code)
    async with running_api(settings, clock, database) as api:
        event = {"type": "dnc_optout", "msisdn": Y, "event_id": "ivr-77"}
        assert (await gateway(api, "/gateway/events", event))["status"] == "applied"
        assert (await gateway(api, "/gateway/events", event))["status"] == "duplicate"
        ussd = {"msisdn": Z, "session_id": "u1", "input": "*555*2#"}
        await gateway(api, "/gateway/ussd", ussd)
        body = (await report(api, tea))["opt_outs"]
    assert await opt_outs(database) == [
        (X, "dnc", "sms", tea),
        (Y, "dnc", "ivr", tea),
        (Z, "leave", "ussd", tea),
    ]
    assert body["by_kind"] == {"stop": 0, "dnc": 2, "leave": 1}
    assert (body["total"], body["reached"], body["rate"]) == (3, 3, 100.0)


async def test_the_span_is_exact_at_its_boundary(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """An opt-out exactly the span (7 days) after the message is the campaign's; one a
    second later is nobody's."""
    settings = dataclasses.replace(settings, inbox_attribution_days=7)
    await members(database, [X, Y])
    async with dispatch_rig(database, settings, clock) as rig:
        sent = clock.now()
        week = await reach(rig, [X, Y], partner="Kofe", name="week")
        clock.set(sent + timedelta(days=7))
        await mo(rig, X, "STOP")
        clock.set(sent + timedelta(days=7, seconds=1))
        await mo(rig, Y, "STOP")
    assert await opt_outs(database) == [(X, "stop", "sms", week), (Y, "stop", "sms", None)]


async def test_the_later_of_two_campaigns_is_blamed(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Two campaigns reached X, an hour apart: X's STOP is the later one's, and the
    earlier one's report counts none."""
    await members(database, [X])
    async with dispatch_rig(database, settings, clock) as rig:
        earlier = await reach(rig, [X], partner="Kofe", name="earlier")
        clock.advance(timedelta(hours=1))
        later = await reach(rig, [X], partner="Shop", name="later")
        clock.advance(timedelta(minutes=5))
        await mo(rig, X, "STOP")
    assert await opt_outs(database) == [(X, "stop", "sms", later)]
    async with running_api(settings, clock, database) as api:
        assert (await report(api, earlier))["opt_outs"]["total"] == 0
        assert (await report(api, later))["opt_outs"]["total"] == 1


async def test_rejoin_and_leave_again_counts_again_but_one_message_is_blamed_once(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """X leaves after campaign A (A's); rejoins and leaves again with no newer message: a
    second opt-out, nobody's (A's message is blamed once); rejoins, campaign B reaches X,
    X leaves: B's."""
    await members(database, [X])
    join = {"msisdn": X, "session_id": "j", "input": "*555*1#"}
    async with dispatch_rig(database, settings, clock) as rig:
        first = await reach(rig, [X], partner="Kofe", name="A")
        await mo(rig, X, "STOP")
        async with running_api(settings, clock, database) as api:
            await gateway(api, "/gateway/ussd", join)
            clock.advance(timedelta(minutes=1))
            await mo(rig, X, "STOP")
            await gateway(api, "/gateway/ussd", {**join, "session_id": "j2"})
        clock.advance(timedelta(minutes=1))
        second = await reach(rig, [X], partner="Shop", name="B")
        await mo(rig, X, "СТОП")
    assert await opt_outs(database) == [
        (X, "stop", "sms", first),
        (X, "stop", "sms", None),
        (X, "stop", "sms", second),
    ]


async def test_partner_facing_report_hides_small_opt_out_counts(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R11: a viewer or marketer sees the campaign's opt-outs "< 5" and no rate made from
    them, on the API and the console page; the admin sees 1 of 6 reached, 16.67%."""
    crowd = [f"7707000{n:04d}" for n in range(1, 7)]
    await members(database, crowd)
    async with dispatch_rig(database, settings, clock) as rig:
        shop = await reach(rig, crowd, partner="Shop", name="Shop days")
        await mo(rig, crowd[0], "STOP")
    async with running_api(settings, clock, database) as api:
        admin = (await report(api, shop))["opt_outs"]
        assert (admin["total"], admin["reached"], admin["rate"]) == (1, 6, 16.67)
        for role in (Role.VIEWER, Role.MARKETER):
            shown = (await report(api, shop, role))["opt_outs"]
            assert shown["total"] == "< 5" and shown["rate"] is None
            assert shown["by_kind"] == {"stop": "< 5", "dnc": "< 5", "leave": "< 5"}
            assert shown["reached"] == ">= 6"  # submitted 6, delivered 0 hidden ("< 5")
        await sign_in(api, Role.VIEWER)
        page = await (await api.client.get(f"/console/campaigns/{shop}")).text()
    card = page[page.index('id="opt-outs"') : page.index('id="live-throughput"')]
    # The page's progress bar hides submitted too (">= 5"): reached is what it shows.
    assert "<strong>&lt; 5</strong> opt-outs of <strong>&gt;= 5</strong>" in card
    assert "rate <strong>" not in card


async def test_console_and_cli_show_a_campaigns_opt_outs(
    database: Database, database_url: str, settings: Settings, clock: ManualClock
) -> None:
    """The campaign page's Opt-outs card (exact for the admin) and `smartd campaign show`'s
    opt-out line, after a STOP through the simulator."""
    from tests.test_cli import _run

    await members(database, [X, Y])
    async with dispatch_rig(database, settings, clock) as rig:
        coffee = await reach(rig, [X, Y], partner="Kofe", name="Coffee week")
        await mo(rig, Y, "Stop")
    async with running_api(settings, clock, database) as api:
        await sign_in(api, Role.ADMIN)
        page = await (await api.client.get(f"/console/campaigns/{coffee}")).text()
    card = page[page.index('id="opt-outs"') :]
    assert "<strong>1</strong> opt-outs of <strong>2</strong>" in card
    assert "rate <strong>50.0%</strong>" in card and "within 7 days" in card
    shown = _run("campaign", "show", str(coffee), env={"SMARTD_DATABASE_URL": database_url})
    assert shown.returncode == 0, shown.stderr
    assert (
        "opt-outs within 7 days of a message: 1 opt-out (STOP 1, 1204 0, leave 0) of 2 "
        "reached: 50.0%" in shown.stdout
    )
