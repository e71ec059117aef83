"""Issue 14, "Why didn't this number get it?", in Debian's chromium: a campaign is sent by the
engine to the SMSC simulator (half the receipts undelivered), then the subscriber page shows a
delivered and an undelivered number's history differently, the why form answers for the
campaign, and a foreign number is named for what it is. Screenshots: why-*.png."""

from __future__ import annotations

from playwright.async_api import Page, expect

from dispatcher.engine.engine import EngineConfig
from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from tests.browser.test_console_flow import chromium, run_campaign, serve, shot, sign_in
from tests.dispatch_helpers import dispatch_rig
from tests.factories import campaign, members

NUMBERS = [f"7701666{n:04d}" for n in range(12)]


async def look_up(page: Page, number: str) -> None:
    nav = page.get_by_role("navigation", name="Main")
    await nav.get_by_role("link", name="Subscribers").click()
    await page.get_by_label("Mobile number").fill(number)
    await page.get_by_role("button", name="Look up").click()


async def test_subscriber_history_and_why(settings, clock, database) -> None:
    await members(database, NUMBERS)
    campaign_id = await campaign(database, NUMBERS, name="Kofe Day", partner="Kofe Coffee")
    other = await campaign(database, NUMBERS[:1], name="Tea week", partner="Shai", state="paused")
    token, _ = await TokenRepository(database.pool).create("ops-aida", Role.MARKETER)
    app = create_app(settings, clock=clock, database=database)
    sim = {"receipt_mix": {"DELIVRD": 0.5, "UNDELIV": 0.5}, "seed": 14}
    async with (
        dispatch_rig(database, settings, clock, sim_options=sim, engine=EngineConfig()) as rig,
        serve(app) as base,
        chromium() as browser,
    ):
        await run_campaign(rig, campaign_id, len(NUMBERS))
        rows = await database.pool.fetch(
            "SELECT msisdn, state::text FROM deliveries WHERE campaign_id = $1", campaign_id
        )
        by_state = {r["state"]: r["msisdn"] for r in rows}
        delivered, undelivered = by_state["delivered"], by_state["undelivered"]

        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await sign_in(page, base, token)
        await look_up(page, f"+{delivered[0]} {delivered[1:4]} {delivered[4:]}")
        row = page.locator("#messages tbody tr").first
        await expect(row).to_have_class("msg msg-delivered")
        await expect(row).to_contain_text("Kofe Day")
        await expect(row.locator(".badge")).to_have_text("delivered")
        await shot(page, "why-01-delivered")

        await look_up(page, "8" + undelivered[1:])
        row = page.locator("#messages tbody tr").first
        await expect(row).to_have_class("msg msg-undelivered")
        await expect(row.locator(".badge")).to_have_text("undelivered")
        await shot(page, "why-02-undelivered")

        await page.get_by_label("Campaign").select_option(str(campaign_id))
        await page.get_by_role("button", name="Why?").click()
        await expect(page.locator("#why-answer")).to_have_text("sent")
        await expect(page.locator("#why-summary")).to_contain_text("undelivered")
        await shot(page, "why-03-answer-undelivered")

        if undelivered != NUMBERS[0]:
            await page.get_by_label("Campaign").select_option(str(other))
            await page.get_by_role("button", name="Why?").click()
            await expect(page.locator("#why-answer")).to_have_text("not in audience")
        await look_up(page, NUMBERS[0])
        await page.get_by_label("Campaign").select_option(str(other))
        await page.get_by_role("button", name="Why?").click()
        await expect(page.locator("#why-answer")).to_have_text("waiting")
        await expect(page.locator("#why-summary")).to_contain_text("paused")
        await shot(page, "why-04-answer-waiting")

        await look_up(page, "+7 916 123 45 67")
        await expect(page.locator("#number-note")).to_contain_text(
            "not a Kazakhstan mobile number: a mobile number of Russia"
        )
        await shot(page, "why-05-foreign-number")
