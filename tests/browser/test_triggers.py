"""Triggered campaigns in a real browser (issue 15): an operator creates a campaign
"Triggered by event" (top-up of 1,000 or more, 12 hours at most), starts it, and sees a top-up
POSTed by the operator's gateway queue and send its message through the SMSC simulator, once.
Debian's chromium under Playwright against the app on 127.0.0.1; screenshots
``triggers-*.png`` beside the console flow's."""

from __future__ import annotations

import aiohttp
from playwright.async_api import expect

from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from tests.browser.test_console_flow import chromium, serve, shot, sign_in
from tests.dispatch_helpers import dispatch_rig
from tests.factories import members

MEMBER = "77011234567"
OTHER = "77021234567"


async def test_create_a_triggered_campaign_and_watch_it_send(settings, clock, database) -> None:
    """The create form's "Triggered by event" makes the trigger; the page shows the rule;
    a matching top-up sends the message once, a small one nothing; the counts say so."""
    await members(database, [MEMBER, OTHER])
    tokens = TokenRepository(database.pool)
    admin, _ = await tokens.create("ops-aida", Role.ADMIN)
    gateway, _ = await tokens.create("crm", Role.GATEWAY)
    app = create_app(settings, clock=clock, database=database)
    async with (
        dispatch_rig(database, settings, clock) as rig,
        serve(app) as base,
        chromium() as browser,
        aiohttp.ClientSession(base, headers={"Authorization": f"Bearer {gateway}"}) as crm,
    ):
        page = await browser.new_page(viewport={"width": 1280, "height": 1000})
        await sign_in(page, base, admin)
        nav = page.get_by_role("navigation", name="Main")
        await nav.get_by_role("link", name="New campaign").click()
        await page.get_by_label("Name").fill("Top-up thanks")
        await page.get_by_label("Partner").fill("Operator")
        await page.get_by_label("Text (kk)").fill("Рақмет, шотыңыз толтырылды!")
        await page.get_by_label("Text (ru)").fill("Спасибо за пополнение!")
        await page.get_by_label("Event").select_option("top_up")
        await page.get_by_label("Condition").fill("amount >= 1000")
        await page.get_by_label("Max delay").fill("12h")
        await page.locator("#trigger-fields").scroll_into_view_if_needed()
        await shot(page, "triggers-01-create-form")
        await page.get_by_role("button", name="Create campaign").click()
        await expect(page.locator(".alert-ok")).to_contain_text("Campaign created as a draft")
        rule = page.locator("#trigger-rule")
        await expect(rule).to_contain_text("Each top_up event where amount >= 1000")
        await expect(rule).to_contain_text("12h after its event is dropped as stale")
        await expect(page.locator("#audience-triggered")).to_be_visible()
        await page.get_by_role("button", name="Start").click()
        await page.get_by_role("button", name="Confirm start").click()
        await expect(page.locator("h1 .badge")).to_have_text("running")
        await shot(page, "triggers-02-running")

        for amount, event_id in ((1500, "crm-1"), (200, "crm-2"), (5000, "crm-3")):
            number = OTHER if event_id == "crm-2" else MEMBER
            body = {"type": "top_up", "msisdn": number, "amount": amount, "event_id": event_id}
            async with crm.post("/gateway/events", json=body) as response:
                assert response.status == 200, await response.text()
        await rig.drain()
        assert [sm.destination_addr for _, sm in rig.sim.submits()] == [MEMBER]
        await page.reload()
        await expect(page.locator("#trigger-matched")).to_have_text("1")
        await expect(page.locator("#trigger-sent")).to_have_text("1")
        await expect(page.locator("#trigger-stale")).to_have_text("0")
        await expect(page.locator("h1 .badge")).to_have_text("running")
        await page.locator("#trigger-counts").scroll_into_view_if_needed()
        await shot(page, "triggers-03-sent-once")
