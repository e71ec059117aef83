"""The console in a real browser: Debian's chromium, headless, driven by Playwright against
the app served on 127.0.0.1, with the dispatch engine sending to the SMSC simulator.

Nothing sleeps waiting for work: the test drives the dispatcher's ``run_once`` and the
receipts on a ManualClock (inside the send window) and polls the page with Playwright's
``expect``. Screenshots go to ``test-artifacts/console/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright, expect

from campaigns.repository import CampaignRepository
from dispatcher.engine.engine import EngineConfig
from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from tests.dispatch_helpers import Rig, dispatch_rig
from tests.factories import members

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
MEMBERS = [f"7701555{n:04d}" for n in range(40)]
NOT_A_MEMBER = "77015559999"
BATCH = 8  # recipients per dispatcher pass; one pass per simulated minute


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """The app on a real TCP port of 127.0.0.1, in this event loop; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def require_chromium() -> str:
    """The browser's path; a missing browser fails the test (CI installs it), never skips."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
            "`.ci/run` does this. Playwright's own browser download is not used."
        )
    return str(CHROMIUM)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's chromium, headless, under Playwright."""
    executable = require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


def artifact(name: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=artifact(name), full_page=True)


async def run_campaign(rig: Rig, campaign_id: int, recipients: int) -> None:
    """Send the campaign one batch per simulated minute, apply every receipt, and let the
    housekeeping pass complete it (what ``smartd serve`` does on its timers)."""
    while await rig.dispatcher.run_once():
        rig.clock.advance(timedelta(minutes=1))
    await rig.receipts_settled(recipients)
    await CampaignRepository(rig.database.pool).complete_finished(rig.clock.now())


async def test_console_flow_sign_in_create_upload_start_complete(settings, clock, database) -> None:
    """A marketer signs in, creates a campaign with an audience file, starts it, and sees it
    complete against the SMSC simulator."""
    await members(database, MEMBERS)
    token, _ = await TokenRepository(database.pool).create("ops-aida", Role.MARKETER)
    app = create_app(settings, clock=clock, database=database)
    sim = {"receipt_mix": {"DELIVRD": 0.9, "UNDELIV": 0.1}}
    engine = EngineConfig(batch_size=BATCH, window=64)
    async with (
        dispatch_rig(database, settings, clock, sim_options=sim, engine=engine) as rig,
        serve(app) as base,
        chromium() as browser,
    ):
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await sign_in(page, base, token, screenshot="01-sign-in")
        campaign_id = await create_with_audience(page)
        await page.get_by_role("button", name="Start").click()
        await page.get_by_role("button", name="Confirm start").click()  # issue 14
        await expect(page.locator("h1 .badge")).to_have_text("running")
        await shot(page, "04-campaign-running")

        await run_campaign(rig, campaign_id, len(MEMBERS))
        await page.goto(f"{base}/console/campaigns/{campaign_id}")
        await expect(page.locator("h1 .badge")).to_have_text("completed")
        states = await rig.states(campaign_id)
        assert states["delivered"] + states.get("undelivered", 0) == len(MEMBERS)
        assert states["not_member"] == 1
        await expect(page.locator("#stat-delivered")).to_have_text(str(states["delivered"]))
        await expect(page.locator("#suppressed")).to_contain_text("not member")
        # One bar per simulated minute that submitted something: 40 members, 8 a pass. The
        # upload queues deliveries in msisdn order (test_audience_upload's
        # test_deliveries_are_queued_in_msisdn_order), so the non-member 77015559999 is
        # claimed last, alone, in a sixth pass that suppresses it and submits nothing.
        bars = page.locator("#throughput-chart rect.chart-bar")
        await expect(bars).to_have_count(5)
        for bar in await bars.all():
            await expect(bar.locator("title")).to_contain_text(f": {BATCH} submitted")
        await shot(page, "05-campaign-completed")

        nav = page.get_by_role("navigation", name="Main")
        await nav.get_by_role("link", name="Campaigns").click()
        await expect(page.locator("table.campaigns")).to_contain_text("completed")
        await shot(page, "06-campaigns-list")
        await look_up_subscriber(page)


async def sign_in(
    page: Page, base: str, token: str, name: str = "ops-aida", *, screenshot: str | None = None
) -> None:
    """Sign in as the console's users do: /console sends an unknown browser to the sign-in
    form, which leads on to the campaigns, with ``name`` (the token's) in the header."""
    await page.goto(base + "/console")
    await expect(page).to_have_url(f"{base}/console/login?next=%2Fconsole%2Fcampaigns")
    if screenshot:
        await shot(page, screenshot)
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(base + "/console/campaigns")
    await expect(page.locator(".who .user")).to_have_text(name)


async def create_with_audience(page: Page) -> int:
    """Fill the create form (watching the live preview), attach the CSV, submit."""
    await (
        page.get_by_role("navigation", name="Main").get_by_role("link", name="New campaign").click()
    )
    await page.get_by_label("Name").fill("Kofe Day −20%")
    await page.get_by_label("Partner").fill("Kofe Coffee")
    await page.get_by_label("Text (kk)").fill("Kofe Day-де кофеге 20% жеңілдік! Жауап қажет емес.")
    await page.get_by_label("Text (ru)").fill("Кофе со скидкой 20% в Kofe Day! Ответ не требуется.")
    await page.get_by_label("Text (en)").fill("Coffee -20% on Kofe Day! No reply needed.")
    await expect(page.locator("#preview-ru")).to_contain_text("UCS-2 · 1 SMS part")
    await expect(page.locator("#preview-en")).to_contain_text("GSM-7 · 1 SMS part")
    await expect(page.locator("#survey-fields")).to_be_hidden()
    lines = ["msisdn", *MEMBERS, NOT_A_MEMBER, "not-a-number"]
    await page.set_input_files(
        "#file",
        files=[{"name": "kofe.csv", "mimeType": "text/csv", "buffer": "\n".join(lines).encode()}],
    )
    await shot(page, "02-create-form")
    await page.get_by_role("button", name="Create campaign").click()
    await expect(page.locator(".alert-ok")).to_contain_text(
        f"{len(MEMBERS) + 1} accepted, 1 rejected, 0 duplicates"
    )
    await shot(page, "03-campaign-draft")
    return int(page.url.split("/console/campaigns/")[1].split("?")[0])


async def look_up_subscriber(page: Page) -> None:
    await (
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Subscribers").click()
    )
    await page.get_by_label("Mobile number").fill("+7 701 555 0001")
    await page.get_by_role("button", name="Look up").click()
    await expect(page.locator("#membership")).to_have_text("member")
    await expect(page.locator("#info-count")).to_have_text("1 / 10")
    await shot(page, "07-subscriber")


SURVEY_RU = (
    "Как вам новый кофе?\n1. Отлично\n2. Нормально\n3. Не понравился\n\nПридёте ещё?\n1. Да\n2. Нет"
)
SURVEY_KK = "Жаңа кофе қалай?\n1. Керемет\n2. Жақсы\n3. Ұнамады\n\nТағы келесіз бе?\n1. Иә\n2. Жоқ"
#: Each respondent's replies to Q1 and Q2 (R11: the page shows only their counts).
REPLIES = [("1", "1")] * 6 + [("2", "1")] * 3 + [("3", "2")] * 2


async def test_console_survey_results_as_charts(settings, clock, database) -> None:
    """A survey made with the form's scripts, its audience uploaded on its page, answered
    by SMS through the simulator, shows its results as bar charts of counts."""
    respondents = MEMBERS[: len(REPLIES)]
    await members(database, respondents)
    token, _ = await TokenRepository(database.pool).create("ops-aida", Role.MARKETER)
    app = create_app(settings, clock=clock, database=database)
    async with (
        dispatch_rig(database, settings, clock) as rig,
        serve(app) as base,
        chromium() as browser,
    ):
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await sign_in(page, base, token)
        nav = page.get_by_role("navigation", name="Main")
        await nav.get_by_role("link", name="New campaign").click()
        await page.get_by_label("Name").fill("Kofe taste survey")
        await page.get_by_label("Kind").select_option("survey")
        await expect(page.locator("#survey-fields")).to_be_visible()
        await page.get_by_label("Questions (ru)").fill(SURVEY_RU)
        await page.get_by_label("Questions (kk)").fill(SURVEY_KK)
        await page.get_by_label("Thank-you (ru)").fill("Спасибо!")
        await page.get_by_label("Thank-you (kk)").fill("Рақмет!")
        await page.get_by_role("button", name="Create campaign").click()
        await expect(page.locator(".alert-ok")).to_contain_text("Campaign created as a draft")

        csv = "\n".join(respondents).encode()
        await page.set_input_files(
            "#file", files=[{"name": "panel.csv", "mimeType": "text/csv", "buffer": csv}]
        )
        await page.get_by_role("button", name="Upload").click()
        await expect(page.locator("#upload-result")).to_contain_text(f"{len(REPLIES)} accepted")
        await page.get_by_role("button", name="Start").click()
        await page.get_by_role("button", name="Confirm start").click()  # issue 14
        await expect(page.locator("h1 .badge")).to_have_text("running")

        await rig.drain()
        for question in (0, 1):
            # the same words from a number within 10 minutes count as one MO (a repeat)
            clock.advance(timedelta(minutes=11))
            for msisdn, answers in zip(respondents, REPLIES, strict=True):
                await rig.sim.inject_mo(msisdn, settings.short_code, answers[question])
        await rig.drain()
        url = page.url.split("?")[0]
        await page.goto(url)
        results = page.locator("#survey-results")
        await expect(results).to_contain_text("Как вам новый кофе?")
        await expect(results.locator("svg.hbars")).to_have_count(2)
        await expect(results.locator("svg.hbars").first).to_contain_text("6 · 54.5%")
        await expect(results).to_contain_text("completed 11")
        for msisdn in respondents:
            await expect(page.locator("body")).not_to_contain_text(msisdn)
        await shot(page, "08-survey-results")
