"""Before it happens, in a real browser (issue 14): the create form counts a survey's first
message as sent (intro + question 1 + options), a draft is edited and warned about a start
outside the send window, a campaign is duplicated, and the list is searched. Debian's chromium
under Playwright against the app on 127.0.0.1; screenshots ``create-*.png`` beside the
console flow's."""

from __future__ import annotations

from playwright.async_api import expect

from campaigns.repository import CampaignRepository
from campaigns.spec import parse_campaign
from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from tests.browser.test_console_flow import chromium, serve, shot, sign_in

INTRO_KK = "Сауалнамаға қатысыңыз!"  # one UCS-2 part alone
SURVEY_KK = (
    "Жаңа кофе қалай ұнады? Біз үшін пікіріңіз маңызды\n1. Керемет\n2. Жақсы\n3. Жаман"
    "\n\nТағы келесіз бе?\n1. Иә\n2. Жоқ"
)


async def test_create_edit_duplicate_and_search(settings, clock, database) -> None:
    """A marketer sees the survey's first message counted as two parts, creates it, edits the
    draft (a start at 08:00 is warned: nothing before 10:00), duplicates it, and finds it by
    searching the list while another partner's campaign is left out."""
    token, _ = await TokenRepository(database.pool).create("ops-aida", Role.MARKETER)
    other = {"name": "Tea time", "partner": "Chaihana", "kind": "info", "texts": {"kk": "Шай"}}
    spec = parse_campaign(other, clock.now(), settings.campaign_max_segments)
    await CampaignRepository(database.pool).create(spec, "ops-aida", clock.now())
    app = create_app(settings, clock=clock, database=database)
    async with serve(app) as base, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await sign_in(page, base, token)
        nav = page.get_by_role("navigation", name="Main")
        await nav.get_by_role("link", name="New campaign").click()
        await page.get_by_label("Name").fill("Kofe taste")
        await page.get_by_label("Partner").fill("Kofe Coffee")
        await page.get_by_label("Kind").select_option("survey")
        await page.get_by_label("Text (kk)").fill(INTRO_KK)
        await page.get_by_label("Questions (kk)").fill(SURVEY_KK)
        await page.get_by_label("Thank-you (kk)").fill("Рақмет!")
        first = page.locator('#preview-messages tr[data-key="question 1"] td[data-lang="kk"]')
        await expect(first).to_have_text("UCS-2 · 2 parts")
        await expect(page.locator("#preview-kk")).to_contain_text("First message: UCS-2 · 2 SMS")
        follow_up = page.locator('#preview-messages tr[data-key="question 2"] td[data-lang="kk"]')
        await expect(follow_up).to_have_text("UCS-2 · 1 part")
        await shot(page, "create-01-survey-preview")
        await page.get_by_role("button", name="Create campaign").click()
        await expect(page.locator(".alert-ok")).to_contain_text("Campaign created as a draft")
        draft_url = page.url.split("?")[0]

        await page.get_by_role("link", name="Edit").click()
        await expect(page.get_by_label("Name")).to_have_value("Kofe taste")
        await expect(page.get_by_label("Questions (kk)")).to_have_value(SURVEY_KK)
        await page.get_by_label("Name").fill("Kofe taste v2")
        await page.locator("#start_at").fill("2026-11-24T08:00")
        await shot(page, "create-02-edit-form")
        await page.get_by_role("button", name="Save changes").click()
        await expect(page).to_have_url(draft_url)  # the notice's query is dropped on load
        await expect(page.locator(".alert-ok")).to_contain_text("Campaign saved")
        await expect(page.locator("h1")).to_contain_text("Kofe taste v2")
        warning = page.locator("#schedule-warnings")
        await expect(warning).to_contain_text("nothing is sent before it opens at 2026-11-24 10:00")
        await shot(page, "create-03-edited-draft")

        await page.get_by_role("button", name="Duplicate").click()
        await expect(page.locator("h1")).to_contain_text("Kofe taste v2 (copy)")
        await expect(page.locator(".alert-ok")).to_contain_text("copy of campaign #")
        await expect(page.get_by_role("link", name="Edit")).to_be_visible()
        await shot(page, "create-04-duplicate")

        await nav.get_by_role("link", name="Campaigns").click()
        await expect(page.locator("table.campaigns tbody tr")).to_have_count(3)
        await page.get_by_label("Search by name or partner").fill("KOFE")
        await page.get_by_role("button", name="Filter").click()
        rows = page.locator("table.campaigns tbody tr")
        await expect(rows).to_have_count(2)
        await expect(page.locator("table.campaigns")).not_to_contain_text("Tea time")
        await expect(rows.first).to_contain_text("Kofe taste v2 (copy)")
        await expect(rows.first.locator("td.schedule")).to_contain_text("2026-11-24 08:00")
        await shot(page, "create-05-search")
