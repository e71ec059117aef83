"""Maker-checker in the browser (issue 15; Debian's chromium under Playwright): a marketer
creates a campaign with its audience and cannot start it (the button waits, disabled; the
URL typed by hand is refused) or approve it; an admin, in a browser of their own, approves
the version shown; the marketer then starts it, and the History names
each step and person. Screenshots: test-artifacts/console/audit-*.png."""

from __future__ import annotations

import dataclasses

from playwright.async_api import Browser, Page, expect

from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from tests.browser.test_console_flow import chromium, serve, shot, sign_in
from tests.factories import members

MEMBERS = [f"7701777{n:04d}" for n in range(6)]


async def signed_in(browser: Browser, base: str, token: str, name: str) -> Page:
    """A browser context of its own (its own cookies: another person), signed in."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, base, token, name)
    return page


async def create_with_audience(page: Page) -> int:
    await (
        page.get_by_role("navigation", name="Main").get_by_role("link", name="New campaign").click()
    )
    await page.get_by_label("Name").fill("Kofe Day −20%")
    await page.get_by_label("Partner").fill("Kofe Coffee")
    await page.get_by_label("Text (kk)").fill("Kofe Day-де кофеге 20% жеңілдік!")
    await page.get_by_label("Text (ru)").fill("Кофе со скидкой 20% в Kofe Day!")
    csv = ("msisdn\n" + "\n".join(MEMBERS) + "\n").encode()
    await page.set_input_files(
        "#file", files=[{"name": "kofe.csv", "mimeType": "text/csv", "buffer": csv}]
    )
    await page.get_by_role("button", name="Create campaign").click()
    await expect(page.locator(".alert-ok")).to_contain_text(f"{len(MEMBERS)} accepted")
    return int(page.url.split("/console/campaigns/")[1].split("?")[0])


async def test_maker_creates_checker_approves_maker_starts(settings, clock, database) -> None:
    """The four-eyes path from both chairs, with the History as the record of it."""
    await members(database, MEMBERS)
    tokens = TokenRepository(database.pool)
    maker, _ = await tokens.create("ops-aida", Role.MARKETER)
    checker, _ = await tokens.create("ops-bolat", Role.ADMIN)
    app = create_app(
        dataclasses.replace(settings, approval_required=True), clock=clock, database=database
    )
    async with serve(app) as base, chromium() as browser:
        aida = await signed_in(browser, base, maker, "ops-aida")
        campaign_id = await create_with_audience(aida)
        approval = aida.locator("#approval")
        await expect(approval).to_contain_text("Not approved.")
        await expect(approval).to_contain_text(
            "You created this campaign: another person must approve it."
        )
        await expect(approval.get_by_role("button")).to_have_count(0)
        start = aida.get_by_role("button", name="Start")
        await expect(start).to_be_disabled()  # no Start that can only be refused
        await expect(start).to_have_accessible_description("needs an approval first")
        await aida.goto(f"{base}/console/campaigns/{campaign_id}/start")  # the URL, by hand
        await expect(aida.locator(".alert-error")).to_contain_text(
            "Cannot start: it needs an approval by someone other than its creator first."
        )
        await expect(aida.get_by_role("button", name="Confirm start")).to_have_count(0)
        await shot(aida, "audit-01-maker-cannot-start")

        bolat = await signed_in(browser, base, checker, "ops-bolat")
        await bolat.goto(f"{base}/console/campaigns/{campaign_id}")
        await expect(bolat.locator("#approval")).to_contain_text("content version 2")
        await shot(bolat, "audit-02-checker-sees-approve")
        await bolat.get_by_role("button", name="Approve version 2").click()
        await expect(bolat.locator(".alert-ok")).to_contain_text("Campaign approved")
        await expect(bolat.locator("#approval-state")).to_contain_text(
            "Approved by ops-bolat (admin) at 2026-11-23 17:00, content version 2."
        )
        await shot(bolat, "audit-03-approved")

        await aida.goto(f"{base}/console/campaigns/{campaign_id}")
        await aida.get_by_role("button", name="Start").click()
        await aida.get_by_role("button", name="Confirm start").click()
        await expect(aida.locator("h1 .badge")).to_have_text("running")
        history = aida.locator("#history tbody tr")
        await expect(history).to_have_count(4)
        await expect(history.nth(0)).to_contain_text("ops-aida")
        await expect(history.nth(0)).to_contain_text("start")
        await expect(history.nth(1)).to_contain_text("ops-bolat")
        await expect(history.nth(1)).to_contain_text("approve")
        await expect(history.nth(2)).to_contain_text("upload 1: 6 accepted")
        await expect(history.nth(3)).to_contain_text("“Kofe Day −20%”")
        await aida.locator("#history").scroll_into_view_if_needed()
        await shot(aida, "audit-04-started-with-history")
