"""The inbox (issue 14): subscribers' replies, STOP and 1204 as they arrive over SMPP, each
attributed at arrival to the campaign that last reached the number within the attribution
span (SMARTD_INBOX_ATTRIBUTION_DAYS); the operator's admins see each message and its number,
partner-facing roles only counts per campaign, small ones hidden (R11). Real PostgreSQL, real
SMPP over 127.0.0.1 against the simulator, real HTTP."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from tests.dispatch_helpers import Rig, dispatch_rig
from tests.factories import campaign, members
from tests.test_console import sign_in
from tests.web_helpers import running_api

X, Y = "77020000001", "77020000002"
CROWD = [f"7707000{n:04d}" for n in range(1, 8)]


async def reached(database: Database, msisdn: str, at: datetime, *, partner: str, name: str) -> int:
    """A running campaign whose message to ``msisdn`` the SMSC accepted at ``at``."""
    campaign_id = await campaign(database, [msisdn], partner=partner, name=name)
    await database.pool.execute(
        "UPDATE deliveries SET state = 'submitted', submitted_at = $2, attempts = 1 "
        "WHERE campaign_id = $1",
        campaign_id,
        at,
    )
    return campaign_id


async def attributed(database: Database) -> list[tuple[str, str, int | None]]:
    """(number, text, campaign) of every MO, in arrival order."""
    rows = await database.pool.fetch(
        "SELECT msisdn, body, campaign_id FROM mo_messages ORDER BY id"
    )
    return [(r["msisdn"], r["body"], r["campaign_id"]) for r in rows]


async def mo(rig: Rig, msisdn: str, text: str, to: str | None = None) -> None:
    destination = to or rig.settings.short_code
    assert await rig.sim.inject_mo(msisdn, destination, text) == [0]


async def test_a_reply_goes_to_the_last_campaign_that_reached_the_number(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """X was reached by an older campaign, then a newer one; Y by a third after both: X's
    reply is the newer campaign's, not the older's nor Y's."""
    await members(database, [X, Y])
    now = clock.now()
    older = await reached(database, X, now - timedelta(days=3), partner="Kofe", name="older")
    newer = await reached(database, X, now - timedelta(days=1), partner="Shop", name="newer")
    await reached(database, Y, now - timedelta(hours=1), partner="Tea", name="other")
    async with dispatch_rig(database, settings, clock) as rig:
        await mo(rig, X, "hello")
    assert await attributed(database) == [(X, "hello", newer)]
    assert newer != older


async def test_the_span_is_exact_at_its_boundary(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A reply exactly the span after the message is attributed; one a second later is
    not (and a campaign reaching the number later than the reply never is)."""
    settings = dataclasses.replace(settings, inbox_attribution_days=7)
    await members(database, [X])
    sent = clock.now()
    reaching = await reached(database, X, sent, partner="Kofe", name="week")
    await reached(database, X, sent + timedelta(days=30), partner="Later", name="future")
    async with dispatch_rig(database, settings, clock) as rig:
        clock.set(sent + timedelta(days=7))
        await mo(rig, X, "at the boundary")
        clock.set(sent + timedelta(days=7, seconds=1))
        await mo(rig, X, "a second late")
    assert await attributed(database) == [
        (X, "at the boundary", reaching),
        (X, "a second late", None),
    ]


async def test_stop_and_1204_arrive_with_their_kind(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """STOP to the short code and anything to 1204 are in the inbox as kinds stop and dnc,
    attributed like replies; the operator's API shows them newest first, filtered by kind
    and campaign, with the full number."""
    await members(database, [X, Y])
    first = await reached(database, X, clock.now(), partner="Kofe", name="first")
    second = await reached(database, Y, clock.now(), partner="Tea", name="second")
    async with dispatch_rig(database, settings, clock) as rig:
        await mo(rig, X, "Интересно")
        await mo(rig, X, "STOP")
        await mo(rig, Y, "1204", to=settings.dnc_code)
    async with running_api(settings, clock, database) as api:
        admin = api.auth(Role.ADMIN)
        body = await (await api.client.get("/api/v1/inbox", headers=admin)).json()
        kinds = [(m["kind"], m["msisdn"], m["campaign"]["id"]) for m in body["messages"]]
        assert kinds == [("dnc", Y, second), ("stop", X, first), ("reply", X, first)]
        assert body["messages"][2]["text"] == "Интересно"
        assert body["messages"][0]["campaign"]["partner"] == "Tea"
        stops = await (await api.client.get("/api/v1/inbox?kind=stop", headers=admin)).json()
        assert [m["kind"] for m in stops["messages"]] == ["stop"]
        url = f"/api/v1/inbox?campaign={first}&limit=1"
        page = await (await api.client.get(url, headers=admin)).json()
        assert [m["kind"] for m in page["messages"]] == ["stop"]
        url += f"&before={page['next_before']}"
        rest = await (await api.client.get(url, headers=admin)).json()
        assert [m["kind"] for m in rest["messages"]] == ["reply"]
        for bad in ("kind=hello", "campaign=x", "before=-1", "limit=0x10"):
            response = await api.client.get(f"/api/v1/inbox?{bad}", headers=admin)
            assert response.status == 400, bad
            assert "error" in await response.json()


async def test_partners_see_counts_per_campaign_only(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Viewer and marketer (partner-facing): per campaign the replies, STOP and 1204 counts,
    "< 5" below the minimum cell size, and no number or text anywhere; the admin's console
    page lists each message with its number, newest first."""
    await members(database, CROWD)
    crowd = await campaign(database, CROWD, partner="Kofe", name="Crowd week")
    await database.pool.execute(
        "UPDATE deliveries SET state = 'delivered', submitted_at = $2, finished_at = $2, "
        "attempts = 1 WHERE campaign_id = $1",
        crowd,
        clock.now(),
    )
    async with dispatch_rig(database, settings, clock) as rig:
        for n, number in enumerate(CROWD):
            clock.advance(timedelta(seconds=1))
            await mo(rig, number, "STOP" if n == 0 else f"answer {n}")
    async with running_api(settings, clock, database) as api:
        for role in (Role.VIEWER, Role.MARKETER):
            response = await api.client.get("/api/v1/inbox", headers=api.auth(role))
            text = await response.text()
            assert response.status == 200
            assert not any(number in text for number in CROWD)
            assert "answer" not in text
            body = await response.json()
            assert "messages" not in body
            (row,) = body["campaigns"]
            assert (row["id"], row["name"], row["partner"]) == (crowd, "Crowd week", "Kofe")
            assert row["counts"] == {"reply": 6, "stop": "< 5", "dnc": "< 5", "total": 7}
        await sign_in(api, Role.VIEWER)
        page = await (await api.client.get("/console/inbox")).text()
        assert not any(number in page for number in CROWD)
        assert "Crowd week" in page and "&lt; 5" in page
    async with running_api(settings, clock, database) as api:
        await sign_in(api, Role.ADMIN)
        page = await (await api.client.get("/console/inbox")).text()
        listed = re.findall(r"<code>(7707000\d{4})</code>", page)
        assert listed[: len(CROWD)] == CROWD[::-1]  # newest first
        assert "Crowd week" in page and "answer 6" in page


async def test_cli_inbox_lists_messages_and_counts(
    database: Database, database_url: str, settings: Settings, clock: ManualClock
) -> None:
    """`smartd inbox` (the operator's view): messages newest first in Astana time to the
    minute, with their kind, number, campaign and text; --kind and --campaign filter,
    --limit pages with the --before to go on; --counts gives exact counts per campaign."""
    from tests.test_cli import _run

    await members(database, [X, Y])
    first = await reached(database, X, clock.now(), partner="Kofe", name="first")
    await reached(database, Y, clock.now(), partner="Tea", name="second")
    async with dispatch_rig(database, settings, clock) as rig:
        await mo(rig, X, "Интересно")
        await mo(rig, X, "STOP")
        await mo(rig, Y, "1204", to=settings.dnc_code)
    env = {"SMARTD_DATABASE_URL": database_url}
    listed = _run("inbox", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[3] for line in lines] == ["dnc", "stop", "reply"]
    assert f"+{X} ← campaign {first} first 'Интересно'" in lines[2]
    local = clock.now().astimezone(settings.calendar.zone).strftime("%Y-%m-%d %H:%M")
    assert all(f" {local} " in line for line in lines)  # to the minute, no offset
    stops = _run("inbox", "--kind", "stop", env=env)
    assert [line.split()[3] for line in stops.stdout.splitlines()] == ["stop"]
    paged = _run("inbox", "--campaign", str(first), "--limit", "1", env=env)
    older = paged.stdout.splitlines()[-1]
    assert older.startswith("… older: --before ")
    rest = _run("inbox", "--campaign", str(first), "--before", older.split()[-1], env=env)
    assert "reply" in rest.stdout and "stop" not in rest.stdout
    counts = _run("inbox", "--counts", env=env)
    assert f"campaign {first} first (Kofe): reply 1, stop 1, dnc 0, total 2" in counts.stdout
    bad = _run("inbox", "--kind", "hello", env=env)
    assert bad.returncode != 0 and "invalid choice" in bad.stderr
