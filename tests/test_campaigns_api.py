"""Campaign creation, validation, roles, state changes and reports over real HTTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from tests.test_campaign_support import BASE, action, create, info_payload, report, upload
from tests.web_helpers import running_api


async def test_create_returns_draft_with_preview(settings, clock, database) -> None:
    """A valid info campaign is created as a draft, with encoding and parts per language."""
    async with running_api(settings, clock, database) as api:
        body = await create(api, info_payload())
        assert body["state"] == "draft" and isinstance(body["id"], int)
        assert body["preview"]["en"]["encoding"] == "gsm7"
        assert body["preview"]["ru"]["encoding"] == "ucs2"
        assert body["preview"]["ru"]["segments"] == 1


async def test_viewer_cannot_create(settings, clock, database) -> None:
    """A viewer token gets 403 in the error shape on create."""
    async with running_api(settings, clock, database) as api:
        response = await api.client.post(BASE, json=info_payload(), headers=api.auth(Role.VIEWER))
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "forbidden"


async def test_undeclared_variable_is_rejected_per_language(settings, clock, database) -> None:
    """A text using a variable that is not an audience column is a 400 naming the language."""
    payload = info_payload(texts={"ru": "Привет, {nme}!", "en": "Hi {name}"})
    async with running_api(settings, clock, database) as api:
        response = await api.client.post(BASE, json=payload, headers=api.auth(Role.MARKETER))
        body = await response.json()
        assert response.status == 400
        assert body["error"]["code"] == "invalid_campaign"
        assert "nme" in body["error"]["details"]["texts"]["ru"]
        assert "en" not in body["error"]["details"]["texts"]


async def test_too_long_text_is_rejected(settings, clock, database) -> None:
    """A text needing more SMS parts than allowed (here 300 UCS-2 parts) is a 400."""
    payload = info_payload(texts={"kk": "Ә" * 67 * 300})
    async with running_api(settings, clock, database) as api:
        response = await api.client.post(BASE, json=payload, headers=api.auth(Role.MARKETER))
        body = await response.json()
        assert response.status == 400
        assert "SMS parts" in body["error"]["details"]["texts"]["kk"]


async def test_malformed_payload_reports_every_field(settings, clock, database) -> None:
    """Missing name, bad kind, unknown language and past end_at are all reported at once."""
    payload = {"kind": "spam", "texts": {"de": "Hallo"}, "end_at": "2020-01-01T00:00:00+00:00"}
    async with running_api(settings, clock, database) as api:
        response = await api.client.post(BASE, json=payload, headers=api.auth(Role.MARKETER))
        details = (await response.json())["error"]["details"]
        assert response.status == 400
        assert {"name", "kind", "texts", "end_at"} <= set(details)


async def test_preview_endpoint(settings, clock, database) -> None:
    """Preview gives encoding, parts and characters per language, with sample values."""
    texts = {"en": "x" * 161, "ru": "{name}, привет"}
    async with running_api(settings, clock, database) as api:
        response = await api.client.post(
            f"{BASE}/preview",
            json={"texts": texts, "variables": {"name": "Ann"}},
            headers=api.auth(Role.MARKETER),
        )
        body = await response.json()
        assert body["en"] == {"encoding": "gsm7", "segments": 2, "characters": 161}
        assert body["ru"] == {"encoding": "ucs2", "segments": 1, "characters": 11}


async def test_start_needs_an_audience(settings, clock, database) -> None:
    """Starting a campaign without an audience is a 409 saying so."""
    async with running_api(settings, clock, database) as api:
        campaign = await create(api, info_payload())
        status, body = await action(api, campaign["id"], "start")
        assert status == 409
        assert "no audience" in body["error"]["details"]["reason"]


async def test_state_machine(settings, clock, database) -> None:
    """draft → running → paused → running → cancelled; invalid steps are 409; queued rows
    of a cancelled campaign are suppressed 'cancelled'."""
    async with running_api(settings, clock, database) as api:
        cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
        assert (await upload(api, cid, b"77011234567\n77011234568\n"))[0] == 200
        assert (await action(api, cid, "resume"))[0] == 409
        assert (await action(api, cid, "start"))[1]["state"] == "running"
        assert (await action(api, cid, "start"))[0] == 409
        assert (await action(api, cid, "pause"))[1]["state"] == "paused"
        assert (await action(api, cid, "resume"))[1]["state"] == "running"
        assert (await action(api, cid, "cancel"))[1]["state"] == "cancelled"
        status, body = await action(api, cid, "resume")
        assert status == 409 and body["error"]["details"]["state"] == "cancelled"
        summary = await report(api, cid)
        assert summary["states"]["suppressed"] == 2 and summary["suppressed"]["cancelled"] == 2


async def test_future_start_schedules(settings, clock, database) -> None:
    """A start_at in the future makes start → scheduled; activate_due runs it at start_at."""
    from campaigns.repository import CampaignRepository

    start_at = (clock.now() + timedelta(hours=1)).isoformat()
    async with running_api(settings, clock, database) as api:
        cid = (
            await create(api, info_payload(variables=[], texts={"kk": "Hi"}, start_at=start_at))
        )["id"]
        await upload(api, cid, b"77011234567\n")
        assert (await action(api, cid, "start"))[1]["state"] == "scheduled"
        repo = CampaignRepository(database.pool)
        assert await repo.activate_due(clock.now()) == []
        assert await repo.activate_due(clock.now() + timedelta(hours=1)) == [cid]
        assert (await report(api, cid))["state"] == "running"


async def test_concurrent_start_and_cancel_one_wins(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Three starts and three cancels racing: at most one start and exactly one cancel win."""
    async with running_api(settings, clock, database) as api:
        for _ in range(5):
            cid = (await create(api, info_payload(variables=[], texts={"kk": "Hi"})))["id"]
            await upload(api, cid, b"77011234567\n")
            calls = [action(api, cid, name) for name in ("start", "cancel") * 3]
            results = await asyncio.gather(*calls)
            starts = [status for status, _ in results[0::2]]
            cancels = [status for status, _ in results[1::2]]
            assert starts.count(200) <= 1 and set(starts) <= {200, 409}
            assert sorted(cancels) == [200, 409, 409]
            assert (await report(api, cid))["state"] == "cancelled"


async def test_list_is_paged_newest_first(settings, clock, database) -> None:
    """The list returns newest first and a cursor for the next page."""
    async with running_api(settings, clock, database) as api:
        ids = [(await create(api, info_payload(name=f"c{i}")))["id"] for i in range(3)]
        headers = api.auth(Role.VIEWER)
        first = await (await api.client.get(f"{BASE}?limit=2", headers=headers)).json()
        assert [c["id"] for c in first["campaigns"]] == ids[::-1][:2]
        url = f"{BASE}?limit=2&before={first['next_before']}"
        second = await (await api.client.get(url, headers=headers)).json()
        assert [c["id"] for c in second["campaigns"]] == [ids[0]]


async def test_unknown_campaign_is_404(settings, clock, database) -> None:
    """GET and actions on an unknown id answer 404 in the error shape."""
    async with running_api(settings, clock, database) as api:
        response = await api.client.get(f"{BASE}/999", headers=api.auth(Role.VIEWER))
        assert response.status == 404
        assert (await action(api, 999, "start"))[0] == 404
