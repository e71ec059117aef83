"""Opt-outs and partners in a real browser (issue 15): Debian's chromium under Playwright
against the app on 127.0.0.1, the engine sending two partners' campaigns to the SMSC
simulator over SMPP and subscribers texting STOP back through it.

The admin sees the campaign's opt-outs on its page (count by kind, rate) and the Partners
page ranking the partner whose campaign drove more people out first; a viewer
(partner-facing) sees the same ranking with small counts hidden and no rate made from one.
Screenshots: test-artifacts/console/optout-*.png.
"""

from __future__ import annotations

from datetime import timedelta

from playwright.async_api import expect

from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from tests.browser.test_console_flow import chromium, serve, shot, sign_in
from tests.dispatch_helpers import dispatch_rig
from tests.factories import campaign, members

COFFEE = [f"7701777{n:04d}" for n in range(12)]
TEA = [f"7701778{n:04d}" for n in range(8)]


async def test_opt_outs_on_the_campaign_page_and_partners_ranked(settings, clock, database) -> None:
    """Six of Kofe's twelve recipients text STOP, one of Tea's eight: Kofe's page shows 6
    opt-outs of 12 reached, 50%; Partners ranks Kofe first for the admin (Tea 12.5%); the
    viewer sees Tea's opt-outs "< 5" and no rate, after Kofe."""
    await members(database, COFFEE + TEA)
    tokens = TokenRepository(database.pool)
    admin, _ = await tokens.create("ops-aida", Role.ADMIN)
    viewer, _ = await tokens.create("kofe-viewer", Role.VIEWER)
    app = create_app(settings, clock=clock, database=database)
    async with (
        dispatch_rig(database, settings, clock) as rig,
        serve(app) as base,
        chromium() as browser,
    ):
        coffee = await campaign(database, COFFEE, partner="Kofe Coffee", name="Kofe Day")
        tea = await campaign(database, TEA, partner="Tea House", name="Tea week")
        await rig.drain()
        assert await rig.states(coffee) == {"submitted": len(COFFEE)}
        assert await rig.states(tea) == {"submitted": len(TEA)}
        clock.advance(timedelta(hours=2))
        for number in COFFEE[:6] + TEA[:1]:
            assert await rig.sim.inject_mo(number, settings.short_code, "STOP") == [0]

        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await sign_in(page, base, admin, "ops-aida")
        await page.goto(f"{base}/console/campaigns/{coffee}")
        card = page.locator("#opt-outs")
        await expect(card.locator("#opt-out-rate")).to_contain_text(
            "6 opt-outs of 12 recipients reached: rate 50.0%"
        )
        await expect(card.locator("#opt-out-kinds")).to_contain_text("STOP (SMS)")
        await card.scroll_into_view_if_needed()
        await shot(page, "optout-01-campaign")

        nav = page.get_by_role("navigation", name="Main")
        await nav.get_by_role("link", name="Partners").click()
        rows = page.locator("#partners tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0)).to_contain_text("Kofe Coffee")
        await expect(rows.nth(0)).to_contain_text("50.0%")
        await expect(rows.nth(1)).to_contain_text("Tea House")
        await expect(rows.nth(1)).to_contain_text("12.5%")
        local_day = clock.now().astimezone(settings.calendar.zone).date().isoformat()
        await page.get_by_label("From").fill(local_day)
        await page.get_by_role("button", name="Show").click()
        await expect(page).to_have_url(f"{base}/console/partners?since={local_day}&until=")
        await expect(rows).to_have_count(2)
        await shot(page, "optout-02-partners-admin")

        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        partner_page = await context.new_page()
        await sign_in(partner_page, base, viewer, "kofe-viewer")
        await partner_page.goto(f"{base}/console/partners")
        shown = partner_page.locator("#partners tbody tr")
        await expect(shown.nth(0)).to_contain_text("50.0%")
        await expect(shown.nth(1)).to_contain_text("Tea House")
        await expect(shown.nth(1)).to_contain_text("< 5")
        await expect(shown.nth(1)).not_to_contain_text("%")
        assert "7701777" not in await partner_page.content()
        await shot(partner_page, "optout-03-partners-viewer")
