"""A campaign that isn't sending says why (issue 14), over real HTTP, a real database, a real
SMPP bind to the simulator and a ManualClock: the API's ``status``, the console's campaign
page and list, and the bind as every replica reads it (smsc_binds)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from campaigns.repository import CampaignRepository
from dispatcher.engine.nodes import NodeLock, new_node_id
from dispatcher.engine.status import BindReport, smsc_bound
from dispatcher.kernel.states import Role
from tests.bonus_helpers import join
from tests.dispatch_helpers import dispatch_rig
from tests.factories import campaign, members
from tests.test_campaign_support import action, create, info_payload, report, upload
from tests.test_cli import _run
from tests.test_console import sign_in
from tests.web_helpers import Api, running_api

ASTANA_OFFSET = timedelta(hours=5)
NUMBERS = ["77011234567", "77021234567", "77051234567", "77071234567"]


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An Astana wall-clock time in November 2026, as UTC."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC) - ASTANA_OFFSET


async def _running(api: Api, **overrides: Any) -> int:
    payload = info_payload(variables=[], texts={"kk": "Сәлем", "ru": "Привет"}, **overrides)
    cid = int((await create(api, payload))["id"])
    status, body = await upload(api, cid, "\n".join(NUMBERS).encode())
    assert status == 200, body
    assert (await action(api, cid, "start"))[1]["state"] in ("running", "scheduled")
    return cid


async def _status(api: Api, cid: int, role: Role = Role.ADMIN) -> dict[str, Any]:
    body = await report(api, cid, role)
    status: dict[str, Any] = body["status"]
    return status


async def test_window_closed_at_21_exactly_and_until_10(settings, clock, database) -> None:
    """At 21:00:00 local exactly a running campaign waits for 10:00 the next day (named with
    its date); at 09:59:59 for 10:00 today; at 10:00 and the bind up, it is sending."""
    await members(database, NUMBERS)
    async with (
        dispatch_rig(database, settings, clock) as rig,
        running_api(settings, clock, database) as api,
    ):
        await rig.engine.run_services_once()  # the bind report: bound
        clock.set(local(23, 20, 0))
        cid = await _running(api)
        clock.set(local(23, 21, 0, 0))
        status = await _status(api, cid)
        assert status == {
            "phrase": "waiting",
            "reason": "window_closed",
            "until": local(24, 10).isoformat(),
            "count": 4,
            "message": "Waiting — window closed until 10:00 on 24 Nov (local time); "
            "4 messages wait for it.",
        }
        clock.set(local(24, 9, 59, 59))
        status = await _status(api, cid)
        assert status["reason"] == "window_closed"
        assert status["message"].startswith("Waiting — window closed until 10:00 (local time)")
        clock.set(local(24, 10, 0, 0))
        status = await _status(api, cid)
        assert (status["phrase"], status["reason"]) == ("sending", "sending")
        await rig.drain()
        await rig.engine.run_services_once()  # housekeeping: completed
        body = await report(api, cid)
        assert body["state"] == "completed"
        assert body["status"]["phrase"] == "sent"


async def test_paused_and_scheduled(settings, clock, database) -> None:
    """A paused campaign says so with what waits; a scheduled one names its start."""
    async with running_api(settings, clock, database) as api:
        paused = await _running(api)
        assert (await action(api, paused, "pause"))[0] == 200
        status = await _status(api, paused)
        assert (status["phrase"], status["reason"], status["count"]) == ("paused", "paused", 4)
        assert status["message"] == (
            "Paused — nothing more is sent until it is resumed; 4 messages wait."
        )
        start_at = clock.now() + timedelta(hours=20)  # 13:00 next day, Astana
        scheduled = await _running(api, start_at=start_at.isoformat())
        status = await _status(api, scheduled)
        assert status["phrase"] == "scheduled" and status["until"] == start_at.isoformat()
        assert status["message"] == "Scheduled — sending starts at 13:00 on 24 Nov (local time)."


async def test_behind_program_messages(settings, clock, database) -> None:
    """Program messages queued and due are sent first: the campaign waits behind them; once
    the engine sent them, it is sending."""
    await members(database, NUMBERS)
    async with (
        dispatch_rig(database, settings, clock) as rig,
        running_api(settings, clock, database) as api,
    ):
        await rig.engine.run_services_once()
        cid = await _running(api)
        await database.pool.execute(
            "INSERT INTO service_messages (msisdn, kind, body, in_window) "
            "SELECT m, 'help', 'Help text', false FROM unnest($1::text[]) m",
            NUMBERS[:3],
        )
        status = await _status(api, cid)
        assert (status["phrase"], status["reason"], status["count"]) == (
            "waiting",
            "behind_service_messages",
            3,
        )
        assert status["message"].startswith("Waiting — behind 3 program messages")
        assert await rig.dispatcher.run_once() == 3  # service messages first
        assert (await _status(api, cid))["reason"] == "sending"


async def test_smsc_not_bound(settings, clock, database) -> None:
    """With no engine bound (none running, or its session down) a running campaign in the
    window waits for the SMSC; the bind is read from PostgreSQL, so any replica knows it."""
    async with running_api(settings, clock, database) as api:
        cid = await _running(api)
        status = await _status(api, cid)
        assert (status["phrase"], status["reason"]) == ("waiting", "smsc_not_bound")
        assert status["message"] == (
            "Waiting — SMSC not bound: nothing can be sent until the connection is back; "
            "4 messages wait."
        )
        # an engine whose session is down, then up, then gone
        node = new_node_id()
        lock = NodeLock(database.pool, node)
        await lock.hold()
        bound = False
        report_ = BindReport(database.pool, "smsc", lambda: node, lambda: bound, clock.now)
        await report_.run_once()
        assert not await smsc_bound(database.pool)
        assert (await _status(api, cid))["reason"] == "smsc_not_bound"
        bound = True
        await report_.run_once()
        assert await smsc_bound(database.pool)
        assert (await _status(api, cid))["reason"] == "sending"
        await lock.release()  # the engine died: its row is no one's
        assert not await smsc_bound(database.pool)
        assert (await _status(api, cid))["reason"] == "smsc_not_bound"


async def test_partner_facing_status_names_no_count(settings, clock, database) -> None:
    """R11: a viewer (partner-facing) reads the same status without its counts."""
    async with running_api(settings, clock, database) as api:
        cid = await _running(api)
        status = await _status(api, cid, Role.VIEWER)
        assert status["count"] is None
        assert status["message"] == (
            "Waiting — SMSC not bound: nothing can be sent until the connection is back; "
            "messages wait."
        )


async def test_console_page_says_why_with_engine_details(settings, clock, database) -> None:
    """The campaign page puts the plain words first, the engine's counts in a <details>, and
    asks console.js to refresh while the campaign may change; the list says it too."""
    async with running_api(settings, clock, database) as api:
        clock.set(local(23, 22, 0))
        cid = await _running(api)
        await sign_in(api, Role.ADMIN)
        page = await (await api.client.get(f"/console/campaigns/{cid}")).text()
        section = page[page.index('id="campaign-status"') :]
        section = section[: section.index("</section>")]
        assert 'data-refresh="5000"' in section
        assert "Waiting — window closed until 10:00 on 24 Nov (local time); 4 messages wait" in (
            section
        )
        details = section[section.index("<details") :]
        assert "<summary>Engine details</summary>" in details
        assert re.search(r'data-state="queued">4<', details)
        assert '<meta http-equiv="refresh"' not in page.split("<noscript>")[0]
        listing = await (await api.client.get("/console/campaigns")).text()
        assert "Waiting — window closed until 10:00 on 24 Nov" in listing
        assert (await action(api, cid, "cancel"))[0] == 200
        page = await (await api.client.get(f"/console/campaigns/{cid}")).text()
        assert "Cancelled — ended for good" in page
        assert "data-refresh" not in page  # finished: the page stops refreshing


async def test_a_finished_campaign_is_completed_even_paused(settings, clock, database) -> None:
    """Issue 14: a campaign paused while its last messages were in flight stayed "paused" at
    100% for good once they were delivered. The engine's housekeeping completes it like a
    running one; its status says sent."""
    async with running_api(settings, clock, database) as api:
        cid = await _running(api)
        await database.pool.execute(
            "UPDATE deliveries SET state = 'in_flight', cap_month = '2026-11-01' "
            "WHERE campaign_id = $1",
            cid,
        )
        assert (await action(api, cid, "pause"))[0] == 200
        await database.pool.execute(
            "UPDATE deliveries SET state = 'delivered', finished_at = $2 WHERE campaign_id = $1",
            cid,
            clock.now(),
        )
        assert await CampaignRepository(database.pool).complete_finished(clock.now()) == [cid]
        body = await report(api, cid)
        assert body["progress"]["percent"] == 100.0
        assert (body["state"], body["status"]["phrase"]) == ("completed", "sent")
        assert body["status"]["message"].startswith("Sent — finished at ")


async def test_cli_show_says_why(database, database_url) -> None:
    """`smartd campaign show ID` prints the same status line under its title (local time)."""
    cid = await campaign(database, NUMBERS[:2], name="Night offer", started_at=local(23, 21, 30))
    result = _run(
        "campaign",
        "show",
        str(cid),
        env={"SMARTD_DATABASE_URL": database_url, "SMARTD_CLOCK_START": "2026-11-23T17:00:00Z"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"campaign {cid} Night offer — running")
    assert lines[1] == (
        "Waiting — window closed until 10:00 on 24 Nov (local time); 2 messages wait for it."
    )


async def test_behind_the_monthly_notices_not_yet_queued(
    settings, clock, database, ledger, membership
) -> None:
    """The month's bonus notices are queued by the engine from the grant rows as it goes
    (migration 0023), yet each goes before any campaign: counted as program messages ahead
    before they are queued."""
    for msisdn in NUMBERS[:3]:
        await join(database.pool, membership, msisdn, clock.now())
    await database.pool.execute(  # the join confirmations went out in November
        "UPDATE service_messages SET state = 'delivered', finished_at = $1", clock.now()
    )
    assert await ledger.grant_month(datetime(2026, 11, 30, 19, 5, tzinfo=UTC)) == 3
    assert await database.pool.fetchval("SELECT count(*) FROM service_messages") == 3
    clock.set(datetime(2026, 12, 1, 5, 0, tzinfo=UTC))  # 10:00 on 1 December, Astana
    node = new_node_id()
    lock = NodeLock(database.pool, node)
    await lock.hold()
    try:
        await BindReport(database.pool, "smsc", lambda: node, lambda: True, clock.now).run_once()
        async with running_api(settings, clock, database) as api:
            cid = await campaign(database, NUMBERS, started_at=clock.now())
            status = await _status(api, cid)
            assert (status["reason"], status["count"]) == ("behind_service_messages", 3)
    finally:
        await lock.release()
