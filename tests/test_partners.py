"""The partners view (issue 15): partners ranked by opt-out rate over a period — through the
real HTTP API, the console and the CLI; partner-facing roles (viewer, marketer) see small
counts hidden and no rate that would tell one, and those rows come last (R11)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Channel, Role
from dispatcher.program.membership import Membership
from dispatcher.settings import Settings
from tests.factories import campaign, members
from tests.test_console import sign_in
from tests.web_helpers import Api, running_api

_serial = iter(range(1, 10_000))


async def reached(database: Database, clock: ManualClock, count: int, partner: str) -> list[str]:
    """A campaign of ``partner`` that reached ``count`` new members an hour ago."""
    numbers = [f"7708{next(_serial):07d}" for _ in range(count)]
    await members(database, numbers)
    campaign_id = await campaign(database, numbers, partner=partner, name=f"{partner} offer")
    await database.pool.execute(
        "UPDATE deliveries SET state = 'delivered', submitted_at = $2, finished_at = $2, "
        "attempts = 1 WHERE campaign_id = $1",
        campaign_id,
        clock.now() - timedelta(hours=1),
    )
    return numbers


async def opt_out(
    database: Database, membership: Membership, now: Any, numbers: list[str], dnc: bool = False
) -> None:
    """``numbers`` text STOP (or 1204) now, through Membership as the SMS path does."""
    for number in numbers:
        async with database.pool.acquire() as conn, conn.transaction():
            if dnc:
                await membership.dnc_block(conn, number, Channel.SMS, {}, now)
            else:
                await membership.leave(conn, number, Channel.SMS, {}, now, reason="stop")


@pytest.fixture
async def ranking(database: Database, clock: ManualClock, membership: Membership) -> None:
    """Kofe 6 of 20 (30%), Tea 5 of 20 over two campaigns (25%), Shop 1 of 10 (10%),
    Kid 0 of 3."""
    now = clock.now()
    kofe = await reached(database, clock, 20, "Kofe")
    await opt_out(database, membership, now, kofe[:6])
    tea = await reached(database, clock, 10, "Tea") + await reached(database, clock, 10, "Tea")
    await opt_out(database, membership, now, tea[:3])
    await opt_out(database, membership, now, tea[10:12], dnc=True)
    shop = await reached(database, clock, 10, "Shop")
    await opt_out(database, membership, now, shop[:1])
    await reached(database, clock, 3, "Kid")


async def partners(api: Api, role: Role, query: str = "") -> Any:
    response = await api.client.get(f"/api/v1/partners{query}", headers=api.auth(role))
    assert response.status == 200, await response.text()
    return await response.json()


def table(body: Any) -> list[tuple[Any, ...]]:
    return [
        (p["rank"], p["partner"], p["campaigns"], p["reached"], p["opt_outs"], p["rate"])
        for p in body["partners"]
    ]


@pytest.mark.usefixtures("ranking")
async def test_admin_sees_partners_ranked_by_exact_rate(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Highest rate first: Kofe 30%, Tea 25% (two campaigns, STOP and 1204), Shop 10%,
    Kid 0%, with exact counts."""
    async with running_api(settings, clock, database) as api:
        body = await partners(api, Role.ADMIN)
    assert table(body) == [
        (1, "Kofe", 1, 20, 6, 30.0),
        (2, "Tea", 2, 20, 5, 25.0),
        (3, "Shop", 1, 10, 1, 10.0),
        (4, "Kid", 1, 3, 0, 0.0),
    ]
    assert body["partners"][1]["by_kind"] == {"stop": 3, "dnc": 2, "leave": 0}
    assert (body["since"], body["until"], body["span_days"]) == (None, None, 7)


@pytest.mark.usefixtures("ranking")
@pytest.mark.parametrize("role", [Role.VIEWER, Role.MARKETER])
async def test_partner_facing_roles_see_no_small_count_nor_a_rate_made_of_one(
    settings: Settings, clock: ManualClock, database: Database, role: Role
) -> None:
    """R11: Shop's 1 opt-out and Kid's 3 reached are "< 5", their rates hidden, and they
    come last by name (ranked by their exact rate they would give the counts away)."""
    async with running_api(settings, clock, database) as api:
        body = await partners(api, role)
    assert table(body) == [
        (1, "Kofe", 1, 20, 6, 30.0),
        (2, "Tea", 2, 20, 5, 25.0),
        (3, "Kid", 1, "< 5", "< 5", None),
        (4, "Shop", 1, 10, "< 5", None),
    ]
    assert body["partners"][1]["by_kind"] == {"stop": "< 5", "dnc": "< 5", "leave": "< 5"}
    assert "7708" not in str(body)


@pytest.mark.usefixtures("ranking")
async def test_the_period_bounds_reached_and_opt_outs(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """?since/?until: Astana dates (until through its last second) or instants; a day
    before everything or after it shows nobody; bad bounds are 400 with the field named."""
    async with running_api(settings, clock, database) as api:
        today = await partners(api, Role.ADMIN, "?since=2026-11-23&until=2026-11-23")
        assert [p["partner"] for p in today["partners"]] == ["Kofe", "Tea", "Shop", "Kid"]
        assert today["since"] == "2026-11-23T00:00:00+05:00"
        assert today["until"] == "2026-11-24T00:00:00+05:00"
        assert (await partners(api, Role.ADMIN, "?since=2026-11-24"))["partners"] == []
        assert (await partners(api, Role.ADMIN, "?until=2026-11-22"))["partners"] == []
        # Reached an hour before the opt-outs: a period from between them keeps only those
        # (no rate without anyone reached: ranked by their opt-outs).
        after = (clock.now() - timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
        late = await partners(api, Role.ADMIN, f"?since={after}")
        assert [(p["partner"], p["reached"], p["opt_outs"]) for p in late["partners"]] == [
            ("Kofe", 0, 6),
            ("Tea", 0, 5),
            ("Shop", 0, 1),
        ]
        assert {p["rate"] for p in late["partners"]} == {None}
        for query, field in [
            ("?since=2026-13-01", "since"),
            ("?until=yesterday", "until"),
            ("?since=2026-11-23T10:00", "since"),  # no offset
            ("?since=2026-11-24&until=2026-11-22", "until"),
        ]:
            response = await api.client.get(
                f"/api/v1/partners{query}", headers=api.auth(Role.ADMIN)
            )
            assert response.status == 400, query
            error = (await response.json())["error"]
            assert (error["code"], error["details"]["field"]) == ("invalid_query", field)
        gateway = await api.client.get("/api/v1/partners", headers=api.auth(Role.GATEWAY))
        assert gateway.status == 403


@pytest.mark.usefixtures("ranking")
async def test_console_partners_page(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """The Partners page (a nav link): a viewer sees the ranking with "< 5" and no number;
    the admin sees the exact counts; a bad date is named and the whole history shown."""
    async with running_api(settings, clock, database) as api:
        await sign_in(api, Role.VIEWER)
        page = await (await api.client.get("/console/partners")).text()
        assert 'href="/console/partners" aria-current="page"' in page
        assert page.index("Kofe") < page.index("Tea") < page.index("Kid") < page.index("Shop")
        assert "30.0%" in page and "&lt; 5" in page and "7708" not in page
    async with running_api(settings, clock, database) as api:
        await sign_in(api, Role.ADMIN)
        page = await (await api.client.get("/console/partners?since=2026-11-23")).text()
        assert page.index("Kofe") < page.index("Tea") < page.index("Shop") < page.index("Kid")
        assert "10.0%" in page and "&lt; 5" not in page
        bad = await (await api.client.get("/console/partners?since=2026-02-30")).text()
        assert "since must be a date" in bad and "Kofe" in bad


@pytest.mark.usefixtures("ranking")
async def test_cli_partners(
    database: Database, database_url: str, settings: Settings, clock: ManualClock
) -> None:
    """`smartd partners`: one line per partner, highest rate first, exact counts by kind;
    --since/--until bound the period; a bad date is an error with exit status 1."""
    from tests.test_cli import _run

    env = {"SMARTD_DATABASE_URL": database_url}
    listed = _run("partners", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("partners by opt-out rate, the start to now")
    assert lines[1] == (
        "  1. Kofe: 6 opt-outs (STOP 6, 1204 0, leave 0) of 20 reached: 30.0%, 1 campaign"
    )
    assert lines[2].startswith("  2. Tea: 5 opt-outs (STOP 3, 1204 2, leave 0) of 20 reached")
    assert [line.split()[1] for line in lines[1:]] == ["Kofe:", "Tea:", "Shop:", "Kid:"]
    later = _run("partners", "--since", "2026-11-24", env=env)
    assert later.returncode == 0 and "no campaign reached anyone" in later.stdout
    bad = _run("partners", "--until", "soon", env=env)
    assert bad.returncode == 1 and "--until: until must be a date" in bad.stderr


async def test_a_large_finished_campaign_shows_partners_its_rate(
    settings: Settings, clock: ManualClock, database: Database, membership: Membership
) -> None:
    """R11 without blinding: 2,000 delivered and none left "submitted" (hidden, "< 5"), 20
    opt-outs: a viewer sees reached ">= 2000" and the rate 1.0%, the same for any hidden
    count the report allows."""
    numbers = await reached(database, clock, 2000, "Big")
    await opt_out(database, membership, clock.now(), numbers[:20])
    campaign_id = await database.pool.fetchval("SELECT id FROM campaigns WHERE partner = 'Big'")
    async with running_api(settings, clock, database) as api:
        response = await api.client.get(
            f"/api/v1/campaigns/{campaign_id}", headers=api.auth(Role.VIEWER)
        )
        body = await response.json()
    assert body["states"]["submitted"] == "< 5"
    opted = body["opt_outs"]
    assert (opted["total"], opted["reached"], opted["rate"]) == (20, ">= 2000", 1.0)
