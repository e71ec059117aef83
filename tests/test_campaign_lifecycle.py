"""The engine's periodic campaign functions and the progress report, on a real database."""

from __future__ import annotations

from datetime import timedelta

from campaigns.repository import CampaignRepository
from tests.test_campaign_support import action, create, info_payload, report, upload
from tests.web_helpers import running_api

NUMBERS = b"77011234567\n77021234567\n77051234567\n77071234567\n"


async def _running(api, clock, **overrides) -> int:
    payload = info_payload(variables=[], texts={"kk": "Hi"}, **overrides)
    cid = (await create(api, payload))["id"]
    await upload(api, cid, NUMBERS)
    assert (await action(api, cid, "start"))[1]["state"] == "running"
    return cid


async def test_expire_due_suppresses_what_is_left(settings, clock, database) -> None:
    """Past end_at a campaign expires; its queued rows become outside_campaign_window, the
    submitted one keeps its state."""
    end_at = clock.now() + timedelta(hours=2)
    async with running_api(settings, clock, database) as api:
        cid = await _running(api, clock, end_at=end_at.isoformat())
        await database.pool.execute(
            "UPDATE deliveries SET state='submitted', submitted_at=$2 "
            "WHERE id = (SELECT min(id) FROM deliveries WHERE campaign_id=$1)",
            cid,
            clock.now(),
        )
        repo = CampaignRepository(database.pool)
        assert await repo.expire_due(clock.now()) == {}
        assert await repo.expire_due(end_at) == {cid: 3}
        summary = await report(api, cid)
        assert summary["state"] == "expired"
        assert summary["states"]["submitted"] == 1
        assert summary["suppressed"]["outside_campaign_window"] == 3


async def test_complete_finished_waits_for_in_flight(settings, clock, database) -> None:
    """A running campaign completes only when nothing is queued, claimed or in flight."""
    async with running_api(settings, clock, database) as api:
        cid = await _running(api, clock)
        repo = CampaignRepository(database.pool)
        await database.pool.execute(
            "UPDATE deliveries SET state='delivered', finished_at=$3 "
            "WHERE campaign_id=$1 AND msisdn <> $2",
            cid,
            "77011234567",
            clock.now(),
        )
        await database.pool.execute(
            "UPDATE deliveries SET state='in_flight', cap_month='2026-11-01' "
            "WHERE campaign_id=$1 AND msisdn = $2",
            cid,
            "77011234567",
        )
        assert await repo.complete_finished(clock.now()) == []
        await database.pool.execute(
            "UPDATE deliveries SET state='unknown', finished_at=$2 "
            "WHERE campaign_id=$1 AND state='in_flight'",
            cid,
            clock.now(),
        )
        assert await repo.complete_finished(clock.now()) == [cid]
        assert (await report(api, cid))["state"] == "completed"


async def test_report_progress_throughput_and_eta(settings, clock, database) -> None:
    """Progress: throughput from recent submits and an estimated completion for the rest."""
    async with running_api(settings, clock, database) as api:
        cid = await _running(api, clock)
        await database.pool.execute(
            "UPDATE deliveries SET state='delivered', submitted_at=$2, finished_at=$2 "
            "WHERE id IN (SELECT id FROM deliveries WHERE campaign_id=$1 ORDER BY id LIMIT 3)",
            cid,
            clock.now() - timedelta(seconds=30),
        )
        summary = await report(api, cid)
        assert summary["total"] == 4
        assert summary["states"]["delivered"] == 3 and summary["states"]["queued"] == 1
        assert set(summary["states"]) >= {"queued", "claimed", "in_flight", "unknown", "suppressed"}
        progress = summary["progress"]
        assert progress["done"] == 3 and progress["remaining"] == 1 and progress["percent"] == 75.0
        assert progress["throughput_per_s"] == 0.01  # 3 submits in the 300 s window
        assert (
            progress["estimated_completion"] == (clock.now() + timedelta(seconds=100)).isoformat()
        )
