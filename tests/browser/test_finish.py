"""The console's finish in Debian's chromium (issue 14, "Accessibility and finish"): usable at
a phone's width (375 px: the page never scrolls sideways; the campaign table scrolls in its
own box), a visible focus ring after Tab, texts marked with their language, and an HTML page
for an unknown address. Screenshots: ``test-artifacts/console/finish-*.png``."""

from __future__ import annotations

import aiohttp
from playwright.async_api import Page, expect

from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from tests.browser.test_console_flow import chromium, serve, shot
from tests.factories import members

PHONE = {"width": 375, "height": 740}
MEMBERS = [f"7701666{n:04d}" for n in range(12)]
TEXTS = {
    "kk": "Coffee Boom-да SMART кодымен 20% жеңілдік жексенбіге дейін.",
    "ru": "Скидка 20% в Coffee Boom по коду SMART до воскресенья.",
    "en": "20% off at Coffee Boom with code SMART until Sunday.",
}


async def no_sideways_scroll(page: Page) -> None:
    """The page is no wider than the window (nothing sticks out to the right)."""
    widths = await page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], (page.url, widths)


async def campaigns(base: str, token: str) -> int:
    """A few campaigns with long names, partners and audiences, one running; the id of the
    running one."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base, headers=headers) as http:
        ids = []
        for n, name in enumerate(
            ["Coffee Boom: 20% off every Sunday in November", "Survey-less info", "Spring"]
        ):
            body = {"name": name, "partner": "Coffee Boom Kazakhstan", "kind": "info"}
            async with http.post("/api/v1/campaigns", json=body | {"texts": TEXTS}) as resp:
                assert resp.status == 201, await resp.text()
                ids.append(int((await resp.json())["id"]))
            csv = "msisdn\n" + "\n".join(MEMBERS[: 4 * (n + 1)])
            path = f"/api/v1/campaigns/{ids[-1]}/audience"
            async with http.post(path, data=csv, headers={"Content-Type": "text/csv"}) as resp:
                assert resp.status == 200, await resp.text()
        async with http.post(f"/api/v1/campaigns/{ids[0]}/start") as resp:
            assert resp.status == 200, await resp.text()
    return ids[0]


async def test_console_at_phone_width_with_focus_ring_lang_and_404(
    settings, clock, database
) -> None:
    await members(database, MEMBERS)
    tokens = TokenRepository(database.pool)
    marketer, _ = await tokens.create("ops-phone", Role.MARKETER)
    app = create_app(settings, clock=clock, database=database)
    async with serve(app) as base, chromium() as browser:
        running = await campaigns(base, marketer)
        page = await browser.new_page(viewport=PHONE)

        # The bare address leads to the console's sign-in.
        await page.goto(base + "/")
        await expect(page).to_have_url(f"{base}/console/login?next=%2Fconsole%2Fcampaigns")
        await no_sideways_scroll(page)
        await page.get_by_label("API token").fill(marketer)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(base + "/console/campaigns")

        # The campaign list: the page fits; the table scrolls inside its own box.
        await expect(page.locator("table.campaigns tbody tr")).to_have_count(3)
        await no_sideways_scroll(page)
        table = await page.evaluate(
            "(() => { const t = document.querySelector('table.campaigns');"
            " return [t.scrollWidth, t.clientWidth, getComputedStyle(t).overflowX]; })()"
        )
        assert table[1] <= PHONE["width"] and table[2] == "auto", table
        await shot(page, "finish-01-campaigns-375px")

        # Keyboard: Tab reaches a link, and it shows a ring of at least 2px.
        await page.keyboard.press("Tab")
        ring = await page.evaluate(
            "(() => { const e = document.activeElement; const s = getComputedStyle(e);"
            " return [e.tagName, e.matches(':focus-visible'), s.outlineStyle,"
            " parseFloat(s.outlineWidth)]; })()"
        )
        assert ring[0] in {"A", "BUTTON", "INPUT", "SELECT"} and ring[1], ring
        assert ring[2] == "solid" and ring[3] >= 2, ring
        focused: list[object] = []
        for _ in range(10):  # past the top bar to the state filter, a field of the page
            await page.keyboard.press("Tab")
            focused = await page.evaluate(
                "(() => { const e = document.activeElement; const s = getComputedStyle(e);"
                " return [e.tagName, s.outlineStyle, parseFloat(s.outlineWidth)]; })()"
            )
            if focused[0] == "SELECT":
                break
        assert focused[0] == "SELECT", focused
        assert focused[1] == "solid" and float(str(focused[2])) >= 2, focused
        await shot(page, "finish-02-focus-ring")

        # A campaign page and the create form fit the phone; texts carry their language.
        await page.goto(f"{base}/console/campaigns/{running}")
        await expect(page.locator("h1 .badge")).to_have_text("running")
        assert await page.evaluate("document.documentElement.lang") == "en"
        for lang, text in TEXTS.items():
            await expect(page.locator(f'pre.sms[lang="{lang}"]')).to_have_text(text)
        await no_sideways_scroll(page)
        await shot(page, "finish-03-campaign-375px")
        await page.goto(base + "/console/campaigns/new")
        for lang in ("kk", "ru", "en"):
            await expect(page.locator(f"#text_{lang}")).to_have_attribute("lang", lang)
        await no_sideways_scroll(page)
        await page.goto(base + "/console/subscribers")
        await no_sideways_scroll(page)

        # An unknown address: an HTML page that says so, with a way back.
        response = await page.goto(base + "/console/no-such-page")
        assert response is not None and response.status == 404
        await expect(page.locator("h1")).to_have_text("Page not found")
        await expect(page.get_by_role("link", name="Back to campaigns")).to_be_visible()
        await no_sideways_scroll(page)
        await shot(page, "finish-04-not-found")
        response = await page.goto(base + "/no-such-page")
        assert response is not None and response.status == 404
        await expect(page.locator("h1")).to_have_text("Page not found")
