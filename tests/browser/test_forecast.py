"""Issue 14 in the browser (Debian's chromium under Playwright): the campaign page counts
SMS parts with the audience's own values (an English text is UCS-2 in 2 parts for a Cyrillic
name), Start asks first on a page with the forecast, then starts; Cancel asks first and says
it is for good. Screenshots: test-artifacts/console/forecast-*.png."""

from __future__ import annotations

import re

from playwright.async_api import expect

from campaigns.repository import CampaignRepository
from campaigns.spec import parse_campaign
from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from tests.browser.test_console_flow import chromium, serve, shot, sign_in
from tests.factories import members, subscribers

LATIN = [f"7701666{n:04d}" for n in range(6)]
CYRILLIC = [f"7701667{n:04d}" for n in range(8)]
STRANGERS = [f"7701668{n:04d}" for n in range(5)]
EN = "{name}, your SMART bonus of 500 tenge is waiting: dial *111*3# today to use it"


async def test_forecast_start_and_cancel_confirmations(settings, clock, database) -> None:
    await members(database, LATIN + CYRILLIC)
    await subscribers(database, LATIN + CYRILLIC, language="en")
    await subscribers(database, STRANGERS)
    spec = {
        "name": "Bonus reminder",
        "partner": "SMART",
        "kind": "info",
        "variables": ["name"],
        "texts": {"kk": "{name}, SMART бонусыңыз дайын", "ru": "{name}, бонус ждёт", "en": EN},
    }
    repository = CampaignRepository(database.pool)
    campaign = await repository.create(parse_campaign(spec, clock.now(), 10), "test", clock.now())
    token, _ = await TokenRepository(database.pool).create("ops-aida", Role.ADMIN)
    app = create_app(settings, clock=clock, database=database)
    async with serve(app) as base, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await sign_in(page, base, token)
        await page.goto(f"{base}/console/campaigns/{campaign.id}")
        # The text alone, placeholders as written, is GSM-7 in one part ...
        await expect(page.locator(".text-block", has_text="tenge")).to_contain_text(
            "GSM7 · 1 SMS part"
        )
        rows = ["msisdn,name"] + [f"{m},Aigerim" for m in LATIN]
        rows += [f"{m},Айгерим" for m in CYRILLIC] + [f"{m},Dana" for m in STRANGERS]
        csv = ("\n".join(rows) + "\n").encode()
        await page.set_input_files(
            "#file", files=[{"name": "names.csv", "mimeType": "text/csv", "buffer": csv}]
        )
        await page.get_by_role("button", name="Upload").click()
        await expect(page.locator("#upload-result")).to_contain_text("19 accepted")
        # ... but with the names uploaded, 8 recipients get UCS-2 in 2 parts.
        forecast = page.locator("#forecast")
        await expect(forecast.locator("#forecast-distribution")).to_contain_text("UCS-2")
        ucs2 = forecast.locator("#forecast-distribution tr", has_text="UCS-2")
        await expect(ucs2).to_contain_text("2")
        await expect(ucs2.locator("td").nth(2)).to_have_text("8")
        await expect(forecast.locator("#forecast-worst")).to_contain_text("UCS-2 · 2 parts")
        await expect(forecast.locator("#forecast-eligible")).to_have_text("14")
        await expect(forecast.locator("#forecast-parts")).to_have_text("22")
        await expect(forecast.locator("#forecast-reasons")).to_contain_text("not a SMART member")
        await shot(page, "forecast-01-campaign-page")

        await page.get_by_role("button", name="Start").click()
        await expect(page).to_have_url(re.compile(f"/console/campaigns/{campaign.id}/start"))
        await expect(page.locator("h1")).to_contain_text("Start")
        await expect(page.locator("#forecast-eligible")).to_have_text("14")
        await expect(page.locator("#forecast-finish")).not_to_have_text("—")
        await shot(page, "forecast-02-confirm-start")
        await page.get_by_role("button", name="Confirm start").click()
        await expect(page.locator("h1 .badge")).to_have_text("running")
        await shot(page, "forecast-03-running")

        await page.get_by_role("button", name="Cancel").click()
        await expect(page.locator("#confirm-question")).to_contain_text("for good")
        await shot(page, "forecast-04-confirm-cancel")
        await page.get_by_role("link", name="Back, change nothing").click()
        await expect(page.locator("h1 .badge")).to_have_text("running")
        await page.get_by_role("button", name="Cancel").click()
        await page.get_by_role("button", name="Confirm cancel").click()
        await expect(page.locator("h1 .badge")).to_have_text("cancelled")
        await shot(page, "forecast-05-cancelled")
