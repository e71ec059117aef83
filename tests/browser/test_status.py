"""The campaign page says what is happening, in Debian's chromium (issue 14): "waiting —
window closed until 10:00" before the window opens, then, once the clock is in the window and
the engine has sent, "sent" — without a reload: console.js refreshes the page's live parts
while the campaign may still change, and stops once it is finished.

Nothing sleeps waiting for work: the engine is driven by ``run_once`` on a ManualClock and the
page is polled with Playwright's ``expect``. Screenshots: ``test-artifacts/console/status-*``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from tests.browser.test_console_flow import chromium, serve, shot, sign_in
from tests.dispatch_helpers import dispatch_rig
from tests.factories import campaign, members

RECIPIENTS = [f"7701666{n:04d}" for n in range(12)]
ASTANA = timedelta(hours=5)
#: The page's refresh interval (campaign_status.html data-refresh) is 5 s: a few of them.
REFRESHED = 20_000


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC) - ASTANA


async def test_status_waits_for_the_window_then_shows_sent_without_reload(
    settings, clock, database
) -> None:
    await members(database, RECIPIENTS)
    token, _ = await TokenRepository(database.pool).create("ops-aida", Role.MARKETER)
    clock.set(local(24, 9, 58))
    cid = await campaign(
        database, RECIPIENTS, name="Morning offer", partner="Kofe", started_at=clock.now()
    )
    app = create_app(settings, clock=clock, database=database)
    async with (
        dispatch_rig(database, settings, clock) as rig,
        serve(app) as base,
        chromium() as browser,
    ):
        await rig.engine.run_services_once()  # the bind report: this engine is bound
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await sign_in(page, base, token)
        await page.goto(f"{base}/console/campaigns/{cid}")
        status = page.locator("#campaign-status")
        await expect(page.locator("#status-phrase")).to_have_text("waiting")
        # a marketer reads counts as partners do (R11): the sentence names none
        await expect(page.locator("#status-message")).to_have_text(
            "Waiting — window closed until 10:00 (local time); messages wait for it."
        )
        await expect(status).to_have_attribute("data-refresh", "5000")
        # the engine's own states are one click away
        await page.get_by_text("Engine details").click()
        await expect(page.locator('#status-details dd[data-state="queued"]')).to_have_text("12")
        await shot(page, "status-01-waiting-window-closed")

        await page.evaluate("window.__notReloaded = true")
        clock.set(local(24, 10, 0))
        await rig.drain()
        await rig.receipts_settled(len(RECIPIENTS))
        await rig.engine.run_services_once()  # housekeeping completes it

        await expect(page.locator("#status-phrase")).to_have_text("sent", timeout=REFRESHED)
        await expect(page.locator("#status-message")).to_contain_text("Sent — finished at 10:00")
        await expect(page.locator("h1 .badge")).to_have_text("completed")
        assert await page.evaluate("window.__notReloaded === true")  # refreshed in place
        await expect(status).not_to_have_attribute("data-refresh", "5000")  # it stops
        # the details stayed open across the refresh, with the final counts
        await expect(page.locator("#status-details")).to_have_attribute("open", "")
        await expect(page.locator('#status-details dd[data-state="queued"]')).not_to_have_text("12")
        await shot(page, "status-02-sent-without-reload")

        await page.goto(f"{base}/console/campaigns")
        await expect(page.locator(".status-note").first).to_contain_text("Sent — finished")
        await shot(page, "status-03-list")
