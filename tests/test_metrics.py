"""/metrics against a real app, database and SMPP session bound to the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from dispatcher.db import Database, create_pool
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.metrics import METRICS
from dispatcher.runtime import SESSION
from dispatcher.settings import Settings
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from smpp.session import Session
from tests.dispatch_helpers import dispatch_rig
from tests.factories import campaign, members, subscribers

MEMBERS = ["77011000001", "77011000002", "77011000003"]
OUTSIDER = "77011000009"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@asynccontextmanager
async def metrics_client(
    settings: Settings, clock: ManualClock, database: Database, session: Session | None = None
) -> AsyncIterator[TestClient]:
    """A real server whose /metrics reads ``session`` (as ``smartd serve`` does)."""
    app = create_app(settings, clock=clock, database=database)
    if session is not None:
        app[SESSION] = session
    app[METRICS].refresh_interval = 0.0  # every scrape reads the database
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def scrape(client: TestClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_smpp_and_database_figures_after_a_campaign(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Submits, responses, session state, receipts, suppressions and queue depth."""
    await members(database, MEMBERS)
    await subscribers(database, [OUTSIDER])
    async with (
        dispatch_rig(database, settings, clock) as rig,
        metrics_client(settings, clock, database, rig.session) as client,
    ):
        before = await scrape(client)
        assert value(before, "smartd_smpp_session_state", state="bound") == 1.0
        assert value(before, "smartd_smpp_session_state", state="disconnected") == 0.0
        campaign_id = await campaign(database, [*MEMBERS, OUTSIDER])
        assert value(await scrape(client), "smartd_queue_depth", queue="deliveries") == 4
        await rig.drain()
        await rig.receipts_settled(len(MEMBERS))
        after = await scrape(client)
    assert await rig.states(campaign_id) == {"delivered": 3, "not_member": 1}
    assert value(after, "smartd_smpp_submits_total") == 3
    assert value(after, "smartd_smpp_responses_total", outcome="accepted") == 3
    assert value(after, "smartd_smpp_responses_by_status_total", status="0x00000000") == 3
    assert value(after, "smartd_smpp_receipts_total") == 3
    assert value(after, "smartd_receipts_total", state="delivered") == 3
    assert value(after, "smartd_suppressed_deliveries", reason="not_member") == 1
    assert value(after, "smartd_queue_depth", queue="deliveries") == 0
    assert value(after, "smartd_configured_tps") == settings.smpp_tps


async def test_without_an_smpp_session_no_state_is_current(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """With the engine off, every session state reads 0 and there are no SMPP counters."""
    async with metrics_client(settings, clock, database) as client:
        samples = await scrape(client)
    assert value(samples, "smartd_smpp_session_state", state="bound") == 0.0
    assert ("smartd_smpp_submits_total", ()) not in samples


async def test_send_window_gauge_follows_the_clock(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """17:00 Astana time is inside the window (1); 22:00 is outside (0)."""
    async with metrics_client(settings, clock, database) as client:
        assert value(await scrape(client), "smartd_send_window_open") == 1.0
        clock.advance(timedelta(hours=5))
        assert value(await scrape(client), "smartd_send_window_open") == 0.0


async def test_http_and_ussd_requests_are_counted(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Requests count by route template and status; USSD gets a latency histogram."""
    token, _ = await TokenRepository(database.pool).create("gw", Role.GATEWAY)
    auth = {"Authorization": f"Bearer {token}"}
    async with metrics_client(settings, clock, database) as client:
        ussd = {"msisdn": MEMBERS[0], "session_id": "s", "input": "*555*1#"}
        assert (await client.post("/gateway/ussd", json=ussd, headers=auth)).status == 200
        assert (await client.post("/gateway/ussd", json={}, headers=auth)).status == 400
        assert (await client.get("/api/v1/campaigns/7")).status == 401
        assert (await client.get("/no/such/page")).status == 404
        samples = await scrape(client)
    route = "/api/v1/campaigns/{id}"
    assert value(samples, "smartd_http_requests_total", route=route, method="GET", status="401")
    assert value(
        samples, "smartd_http_requests_total", route="unmatched", method="GET", status="404"
    )
    assert value(samples, "smartd_ussd_requests_total", status="200") == 1
    assert value(samples, "smartd_ussd_requests_total", status="400") == 1
    assert value(samples, "smartd_ussd_request_seconds_count") == 2


async def test_each_app_has_its_own_registry(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Two apps in one process count their own requests (no global registry)."""
    async with (
        metrics_client(settings, clock, database) as first,
        metrics_client(settings, clock, database) as second,
    ):
        for _ in range(3):
            await first.get("/healthz")
        await second.get("/healthz")
        counted = [
            value(
                await scrape(c),
                "smartd_http_requests_total",
                route="/healthz",
                method="GET",
                status="200",
            )
            for c in (first, second)
        ]
    assert counted == [3.0, 1.0]


async def test_metrics_answer_while_the_database_is_unreachable(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """With the database gone, /metrics still answers, with smartd_database_up 0."""
    pool = await create_pool(database.url, min_size=1, max_size=2)
    async with metrics_client(settings, clock, Database(pool=pool, url=database.url)) as client:
        assert value(await scrape(client), "smartd_database_up") == 1.0
        await pool.close()
        samples = await scrape(client)
    assert value(samples, "smartd_database_up") == 0.0
    assert value(samples, "smartd_send_window_open") == 1.0
