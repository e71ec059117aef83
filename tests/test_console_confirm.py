"""Issue 14, "What will happen before it happens", in the console over real HTTP: Start and
Cancel ask first (server-side confirm pages, no JavaScript needed; a POST without
``confirm=yes`` changes nothing), the start confirmation shows the forecast, the campaign page
shows the parts per recipient with the audience's values, and a running campaign's ETA walks
the send window across days."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatcher.console import campaign_views
from dispatcher.kernel.states import Role
from tests import factories
from tests.test_console import api_campaign, campaign_state, sign_in
from tests.web_helpers import running_api

LATIN = [f"7701000{n:04d}" for n in range(3)]
CYRILLIC = [f"7701100{n:04d}" for n in range(6)]
STRANGERS = [f"7702000{n:04d}" for n in range(2)]
EN = "{name}, your SMART bonus of 500 tenge is waiting: dial *111*3# today to use it"
TEXTS = {"kk": "{name}, SMART бонусыңыз дайын", "ru": "{name}, ваш бонус SMART ждёт", "en": EN}


async def _audience(database) -> list[str]:
    await factories.members(database, LATIN + CYRILLIC)
    await factories.subscribers(database, LATIN + CYRILLIC, language="en")
    await factories.subscribers(database, STRANGERS)
    return (
        ["msisdn,name"]
        + [f"{m},Aigerim" for m in LATIN]
        + [f"{m},Айгерим" for m in CYRILLIC]
        + [f"{m},Dana" for m in STRANGERS]
    )


async def test_start_without_confirmation_changes_nothing(settings, clock, database) -> None:
    """A start POST without confirm=yes (the one-click start of before) is sent to the
    confirm page: the campaign stays a draft. The same for cancel."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(
            api, await _audience(database), variables=["name"], texts=TEXTS
        )
        csrf = await sign_in(api, Role.MARKETER)
        for name in ("start", "cancel"):
            url = f"/console/campaigns/{campaign_id}/{name}"
            response = await api.client.post(url, data={"csrf": csrf}, allow_redirects=False)
            assert response.status == 303
            assert response.headers["Location"] == url
            assert await campaign_state(database, campaign_id) == "draft"


async def test_start_confirmation_shows_the_forecast_then_starts(settings, clock, database) -> None:
    """GET …/start is a page with the forecast (would be sent, suppressed by reason, parts
    per encoding with the names, the finish) and a form; its POST starts the campaign."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(
            api, await _audience(database), variables=["name"], texts=TEXTS
        )
        csrf = await sign_in(api, Role.ADMIN)  # exact counts (R11: admins only)
        draft = await (await api.client.get(f"/console/campaigns/{campaign_id}")).text()
        assert 'id="forecast"' in draft and 'action="/console/campaigns/' in draft
        assert f'<form method="get" action="/console/campaigns/{campaign_id}/start"' in draft
        page = await api.client.get(f"/console/campaigns/{campaign_id}/start")
        html = await page.text()
        assert page.status == 200
        assert 'id="forecast-eligible">9<' in html
        assert "not a SMART member" in html
        assert '<td>UCS-2</td><td class="num">2</td><td class="num">6</td>' in html
        assert '<td>GSM-7</td><td class="num">1</td><td class="num">3</td>' in html
        assert 'id="forecast-parts">15<' in html
        assert "UCS-2 · 2 parts" in html and 'name="confirm" value="yes"' in html
        assert await campaign_state(database, campaign_id) == "draft"
        response = await api.client.post(
            f"/console/campaigns/{campaign_id}/start",
            data={"csrf": csrf, "confirm": "yes"},
            allow_redirects=False,
        )
        assert response.status == 303
        assert await campaign_state(database, campaign_id) == "running"
        again = await api.client.get(f"/console/campaigns/{campaign_id}/start")
        assert again.status == 409 and "Cannot start" in await again.text()


async def test_cancel_confirmation_says_it_is_for_good(settings, clock, database) -> None:
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(
            api, await _audience(database), variables=["name"], texts=TEXTS
        )
        csrf = await sign_in(api, Role.MARKETER)
        page = await api.client.get(f"/console/campaigns/{campaign_id}/cancel")
        assert page.status == 200
        assert "ends this campaign for good" in await page.text()
        response = await api.client.post(
            f"/console/campaigns/{campaign_id}/cancel",
            data={"csrf": csrf, "confirm": "yes"},
            allow_redirects=False,
        )
        assert response.status == 303
        assert await campaign_state(database, campaign_id) == "cancelled"


async def test_viewer_sees_the_forecast_hidden_below_five_but_cannot_confirm(
    settings, clock, database
) -> None:
    """R11 on the page: a viewer (partner-facing) sees small counts as "< 5"; the confirm
    pages are for marketers."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(
            api, await _audience(database), variables=["name"], texts=TEXTS
        )
        await sign_in(api, Role.VIEWER)
        page = await (await api.client.get(f"/console/campaigns/{campaign_id}")).text()
        assert 'id="forecast-eligible">9<' in page
        assert "&lt; 5" in page and 'id="forecast-parts">–<' in page
        confirm = await api.client.get(f"/console/campaigns/{campaign_id}/start")
        assert confirm.status == 403


async def test_running_campaign_eta_walks_the_window_into_tomorrow(
    settings, clock, database
) -> None:
    """20:50 Astana, 1,000 messages left at 1/s over the last 5 minutes: 600 s today until
    the 21:00 close, the other 400 s tomorrow from 10:00 — ETA 10:06 (the old estimate,
    now + 1,000 s, said 21:06, when nothing may be sent)."""
    numbers = [f"7703{n:07d}" for n in range(1300)]
    clock.set(datetime(2026, 11, 23, 15, 50, tzinfo=UTC))
    campaign_id = await factories.campaign(database, numbers, texts={"kk": "Сәлем", "ru": "Привет"})
    await database.pool.execute(
        "UPDATE deliveries SET state = 'submitted', "
        "submitted_at = $2::timestamptz - interval '1 second' * (id % 290) "
        "WHERE campaign_id = $1 AND id IN "
        "(SELECT id FROM deliveries WHERE campaign_id = $1 ORDER BY id LIMIT 300)",
        campaign_id,
        clock.now(),
    )
    async with running_api(settings, clock, database) as api:
        await sign_in(api, Role.VIEWER)
        page = await (await api.client.get(f"/console/campaigns/{campaign_id}")).text()
        assert "ETA (send window)" in page
        assert 'id="stat-eta">2026-11-24 10:06<' in page
        assert 'id="forecast"' not in page


async def test_a_large_audience_is_forecast_on_request_and_at_start(
    settings, clock, database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above INLINE_FORECAST_MAX queued recipients the draft's page does not forecast on
    every view (seconds at a million): it offers the forecast, shows it on request, and the
    start confirmation still shows it. At the threshold itself it is inline."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(
            api, await _audience(database), variables=["name"], texts=TEXTS
        )
        await sign_in(api, Role.ADMIN)
        queued = await database.pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE campaign_id = $1", campaign_id
        )
        url = f"/console/campaigns/{campaign_id}"
        monkeypatch.setattr(campaign_views, "INLINE_FORECAST_MAX", queued)
        inline = await (await api.client.get(url)).text()
        assert 'id="forecast"' in inline and 'id="forecast-deferred"' not in inline
        monkeypatch.setattr(campaign_views, "INLINE_FORECAST_MAX", queued - 1)
        deferred = await (await api.client.get(url)).text()
        assert 'id="forecast"' not in deferred and 'id="forecast-deferred"' in deferred
        assert f"The forecast of {queued} queued recipients takes a few seconds" in deferred
        assert f'href="{url}?forecast=1#forecast">Show the forecast</a>' in deferred
        asked = await (await api.client.get(url + "?forecast=1")).text()
        assert 'id="forecast-eligible">9<' in asked
        confirm = await (await api.client.get(url + "/start")).text()
        assert 'id="forecast-eligible">9<' in confirm
